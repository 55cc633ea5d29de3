"""A shop's code run from a fresh virtualenv with the built wheel (``test_wheel.py``)."""
