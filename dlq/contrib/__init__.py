"""Integrations with frameworks (``dlq.contrib.django``)."""
