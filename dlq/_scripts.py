"""Console scripts: ``dlq`` and ``dlq-worker``, with a clear line when an extra is missing."""

from __future__ import annotations

import sys

__all__ = ["cli", "worker"]


def _missing(extra: str, err: ImportError) -> None:
    print(f"error: this command needs the [{extra}] extra ({err.name} is not installed); "
          f"run: pip install 'temporal-dlq[{extra}]'", file=sys.stderr)
    sys.exit(2)


def cli() -> None:
    """The ``dlq`` operator command line (needs the ``cli`` extra)."""
    try:
        from dlq._cli import app
    except ImportError as err:
        _missing("cli", err)
    app(prog_name="dlq")


def worker() -> None:
    """The ``dlq-worker`` command (needs the ``worker`` extra for migrations)."""
    try:
        import alembic  # noqa: F401 - checked here, used when the worker migrates
    except ImportError as err:
        _missing("worker", err)
    from dlq._worker import main

    main()
