"""``python -m dlq``: the operator command line."""

from dlq._cli import app

app(prog_name="dlq")
