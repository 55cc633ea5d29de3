"""Public exceptions of the DLQ.

The hierarchy mirrors the reference service so HTTP layers can map them:
``DLQEntryNotFoundError`` -> 404, ``DLQStateConflictError`` -> 409,
``DLQReplayError`` -> 500, ``DLQUnavailableError`` -> 503, any other
``DLQError`` -> 400.
"""

from __future__ import annotations

__all__ = [
    "DLQEntryNotFoundError",
    "DLQError",
    "DLQReplayError",
    "DLQStateConflictError",
    "DLQUnavailableError",
]


class DLQError(Exception):
    """Base class of every error the DLQ raises on purpose (HTTP 400)."""


class DLQEntryNotFoundError(DLQError):
    """No entry has the given id (HTTP 404)."""


class DLQStateConflictError(DLQError):
    """The command is not allowed in the entry's current state (HTTP 409).

    Raised for closed entries, entries at their retry cap, entries with an
    attempt already running, and commands sent to a completed entry workflow.
    """


class DLQReplayError(DLQError):
    """A replay could not run or failed unexpectedly (HTTP 500).

    Raised when no replay handler is registered for the entry (no budget is
    consumed) or when the replay activity itself failed, e.g. a worker crash.
    """


class DLQUnavailableError(DLQError):
    """Temporal or SQL cannot be reached now (HTTP 503); the cause says why.

    Nothing was changed by the call that raised it, unless its message says
    the command was accepted.
    """

    def __str__(self) -> str:
        message = super().__str__()
        if message:
            return message
        return f"cannot reach Temporal: {self.__cause__!r}" if self.__cause__ else "unavailable"


# Errors travel from workflow to client as ApplicationError.type strings; this
# maps them back to the classes callers catch.
ERROR_TYPES: dict[str, type[Exception]] = {
    "DLQError": DLQError,
    "DLQEntryNotFoundError": DLQEntryNotFoundError,
    "DLQStateConflictError": DLQStateConflictError,
    "DLQReplayError": DLQReplayError,
    "DLQUnavailableError": DLQUnavailableError,
    "ValueError": ValueError,
}
