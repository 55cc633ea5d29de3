"""Activities: the I/O the DLQ's workflows do (persistence, replay handlers, redrive pages)."""
