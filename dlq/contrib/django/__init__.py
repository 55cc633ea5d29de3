"""Django integration: ``INSTALLED_APPS += ["dlq.contrib.django"]``.

* **Settings** come from ``settings.DLQ``, a dict with the keys of the
  ``DLQ_*`` variables without the prefix (``{"TEMPORAL_ADDRESS": ...,
  "DATABASE_URL": ...}``); a ``DLQ_*`` variable fills a key the dict lacks.
* **The app** (:class:`~dlq.contrib.django.apps.DLQAppConfig`) checks them at
  start-up and builds the process-wide service, so ``dlq.store_to_dlq(...)``
  and ``dlq.get_dlq_service()`` use them.
* **Management commands**: ``dlq_worker`` (the DLQ worker, with the replay
  handlers your apps register), ``dlq_migrate`` (the read model's schema) and
  ``dlq_relay`` (delivers the outbox of a host whose web processes store with
  ``mode="async"``).

Pass ``request=request`` to a store in a view: its method, path and
``X-Request-ID`` are copied on the calling thread, in every mode.
"""

from dlq.contrib.django.conf import dlq_config

__all__ = ["dlq_config"]
