"""Benchmarks of the DLQ against a real Temporal dev server (``python bench/store.py``)."""
