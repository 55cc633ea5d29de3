"""The DLQ worker: ``python worker.py [--handlers pkg.mod,other.mod]``.

A thin entry point; installed, the same worker is ``dlq-worker`` or ``dlq worker``.
"""

from dlq._worker import main

if __name__ == "__main__":
    main()
