"""The shop app: a checkout view whose payment gateway times out, and its replay handler."""
