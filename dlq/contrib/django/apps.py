"""The Django app: checks ``settings.DLQ`` and builds the process-wide service at start-up."""

from __future__ import annotations

from django.apps import AppConfig

from dlq import _blocking
from dlq.contrib.django.conf import dlq_config

__all__ = ["DLQAppConfig"]


class DLQAppConfig(AppConfig):
    """``dlq.contrib.django``: the DLQ in a Django project.

    ``ready()`` reads ``settings.DLQ`` (a bad value stops start-up with
    ``ImproperlyConfigured``) and builds the service that
    ``dlq.store_to_dlq`` and ``dlq.get_dlq_service()`` return. Nothing
    connects yet: Temporal and SQL are reached on first use.
    """

    name = "dlq.contrib.django"
    label = "dlq"
    verbose_name = "Dead-letter queue"
    default = True

    def ready(self) -> None:
        """Point the process-wide service at ``settings.DLQ`` and build it."""
        dlq_config()  # fail at start-up, not at the first store
        _blocking.use_config(dlq_config)
        _blocking.get_dlq_service()
