"""Public exceptions of the DLQ.

The hierarchy mirrors the reference service so HTTP layers can map them:
``DLQEntryNotFoundError`` -> 404, ``DLQStateConflictError`` -> 409,
``DLQReplayError`` -> 500, ``DLQUnavailableError`` -> 503, any other
``DLQError`` -> 400.
"""

from __future__ import annotations

__all__ = [
    "ERROR_TYPES",
    "HTTP_STATUS",
    "DLQCommandPendingError",
    "DLQEntryNotFoundError",
    "DLQError",
    "DLQKeyError",
    "DLQInvalidInputError",
    "DLQReplayError",
    "DLQStateConflictError",
    "DLQUnavailableError",
    "as_public_error",
    "http_status",
]


class DLQError(Exception):
    """Base class of every error the DLQ raises on purpose (HTTP 400)."""


class DLQInvalidInputError(DLQError, ValueError):
    """A command's argument is not acceptable (HTTP 400, CLI exit 2).

    A :class:`DLQError`, as the reference raises for a bad resolve status,
    and a ``ValueError``, as every other bad argument is: the message names
    the argument and what is wrong. Raised before anything is sent.
    """


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


class DLQKeyError(DLQError):
    """Encrypted data cannot be decrypted with the configured key ring (HTTP 500).

    The message names the key id the data was sealed with; add that key back
    to ``DLQ_ENCRYPTION_KEYS`` (anywhere after the first) to read the data.

    Attributes:
        key_id: Id of the key the data needs, if known.
    """

    def __init__(self, message: str, *, key_id: str | None = None) -> None:
        super().__init__(message)
        self.key_id = key_id


class DLQCommandPendingError(DLQError):
    """A command was sent but not confirmed in time (HTTP 202, CLI exit 3): do not repeat it.

    Not a failure: the command may still take effect. ``accepted`` True means
    the entry's workflow accepted it (it is in its history and will be
    applied; the confirmation waits for SQL to catch up or for the replay to
    finish). False means Temporal holds it but no worker has taken it yet (no
    worker polling the task queue): a worker applies it, or rejects it as
    the entry's state then requires, when one polls. ``dlq show <id>`` tells
    which; sending it again could apply it twice (a retry replays twice).

    Attributes:
        entry_id: The entry.
        command: ``retry``, ``force_redrive``, ``resolve`` or ``edit_data``.
        accepted: Whether the entry's workflow accepted the command.
        update_id: The Temporal update id the command was sent with.
    """

    def __init__(self, message: str, *, entry_id: str = "", command: str = "",
                 accepted: bool = False, update_id: str = "") -> None:
        super().__init__(message)
        self.entry_id, self.command = entry_id, command
        self.accepted, self.update_id = accepted, update_id

    def details(self) -> dict[str, object]:
        """The fields an HTTP 202 body carries besides the message."""
        return {"pending": True, "accepted": self.accepted, "id": self.entry_id,
                "command": self.command, "update_id": self.update_id}


# The HTTP status of each public error (the reference's mapping); checked in
# MRO order, so a subclass's entry wins. ValueError is bad input (422).
HTTP_STATUS: dict[type[Exception], int] = {
    DLQCommandPendingError: 202,
    DLQEntryNotFoundError: 404,
    DLQStateConflictError: 409,
    DLQReplayError: 500,
    DLQKeyError: 500,
    DLQUnavailableError: 503,
    DLQInvalidInputError: 400,
    DLQError: 400,
    ValueError: 422,
}


def http_status(err: BaseException) -> int:
    """The HTTP status of a public error (500 for anything else)."""
    for cls in type(err).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


# Errors travel from workflow to client as ApplicationError.type strings; this
# maps them back to the classes callers catch.
ERROR_TYPES: dict[str, type[Exception]] = {
    "DLQError": DLQError,
    "DLQEntryNotFoundError": DLQEntryNotFoundError,
    "DLQStateConflictError": DLQStateConflictError,
    "DLQReplayError": DLQReplayError,
    "DLQKeyError": DLQKeyError,
    "DLQUnavailableError": DLQUnavailableError,
    "DLQCommandPendingError": DLQCommandPendingError,
    "DLQInvalidInputError": DLQInvalidInputError,
    "ValueError": ValueError,
}


def as_public_error(err: BaseException, *, database_url: str = "",
                    temporal_address: str = "") -> DLQError | None:
    """The public error an infrastructure failure means, or None if it is not one.

    The CLI and the HTTP service call this on what escaped a service call:
    SQL that cannot be reached or has no DLQ schema, and Temporal that
    cannot be reached, become :class:`DLQUnavailableError` with a message
    that says what to check. Payloads and credentials never appear in it.
    """
    if isinstance(err, DLQError):
        return err
    # Imported here: a producer that never hits these paths pays nothing.
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url
    from temporalio.service import RPCError, RPCStatusCode

    where = "the SQL read model"
    if database_url:
        try:
            where += f" at {make_url(database_url).render_as_string(hide_password=True)}"
        except Exception:  # noqa: BLE001 - only for the message
            pass
    # SQLAlchemy wraps driver errors; the hot read path meets them bare.
    raw = err.orig if isinstance(err, sqlalchemy.exc.DBAPIError) else err
    driver = type(raw).__module__.split(".")[0] in ("sqlite3", "psycopg", "psycopg2")
    if isinstance(err, sqlalchemy.exc.DBAPIError) or driver:
        first = str(raw or err).strip().splitlines()
        detail = first[0] if first else type(raw).__name__
        if "no such table" in detail or ("relation" in detail and "does not exist" in detail):
            return DLQUnavailableError(
                f"{where} has no DLQ schema ({detail}); check DLQ_HOME or DLQ_DATABASE_URL, "
                "or create it with `dlq migrate`")
        names = {cls.__name__ for cls in type(raw).__mro__} | {type(err).__name__}
        if names & {"OperationalError", "InterfaceError"}:
            return DLQUnavailableError(f"cannot reach {where}: {detail}")
        return None
    if isinstance(err, RPCError) and err.status in (RPCStatusCode.UNAVAILABLE,
                                                    RPCStatusCode.DEADLINE_EXCEEDED):
        target = f" at {temporal_address}" if temporal_address else ""
        return DLQUnavailableError(f"cannot reach Temporal{target}: {err.message}")
    return None
