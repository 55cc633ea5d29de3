"""``dlq_worker``, ``dlq_migrate`` and ``dlq_relay``."""
