"""Management commands of the DLQ app."""
