"""A small real Django project for the integration tests (``dlq.contrib.django``).

``settings.DLQ`` is read from ``TEST_DLQ_*`` variables the tests set, so what
reaches the DLQ provably came through Django's settings, not ``DLQ_*``.
"""
