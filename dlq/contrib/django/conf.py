"""The DLQ configuration of a Django project: ``settings.DLQ`` over ``DLQ_*`` variables."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pydantic import ValidationError

from dlq._config import DLQConfig, DLQSettings

__all__ = ["dlq_config"]


def dlq_config() -> DLQConfig:
    """The configuration from ``settings.DLQ`` (keys of ``DLQ_*`` without the prefix).

    Keys are case-insensitive; a ``DLQ_*`` variable fills a key the dict
    lacks, and the defaults the rest.

    Raises:
        ImproperlyConfigured: ``settings.DLQ`` is not a dict, names an unknown
            key, or has a value that does not validate (the message says which).
    """
    values: Any = getattr(settings, "DLQ", {})
    if not isinstance(values, dict):
        raise ImproperlyConfigured(f"settings.DLQ must be a dict, got {type(values).__name__}")
    known = DLQSettings.model_fields
    given = {str(key).lower(): value for key, value in values.items()}
    unknown = sorted(key.upper() for key in given if key not in known)
    if unknown:
        raise ImproperlyConfigured(f"settings.DLQ has unknown keys {', '.join(unknown)}; "
                                   f"known: {', '.join(sorted(k.upper() for k in known))}")
    try:
        return DLQConfig.from_settings(DLQSettings(**given))
    except (ValidationError, ValueError) as err:
        raise ImproperlyConfigured(f"settings.DLQ: {err}") from err
