"""The fields of a failure: defined once, used by every model, signature and column list.

A failure is what a service hands to the DLQ. :class:`FailureFields` lists its
fields in the reference API's positional order; the entry models and the
workflow input extend it, the SQL repository derives its column lists from
it, and every public store entry point takes its arguments through
:func:`store_args` (wrapped with :func:`takes_store_args`), so a field added
here reaches all of them and none can drift.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Concatenate, Literal, NamedTuple, ParamSpec, TypeVar

from pydantic import BaseModel, Field

__all__ = [
    "DATA_FIELDS",
    "FAILURE_FIELDS",
    "TEXT_FIELDS",
    "FailureFields",
    "StoreArgs",
    "StoreMode",
    "adopt_store_signature",
    "store_args",
    "takes_store_args",
]

StoreMode = Literal["sync", "async"]


class FailureFields(BaseModel):
    """A failed operation as the caller describes it.

    Attributes:
        domain: Business domain, e.g. ``payment``.
        failure_type: Specific failure, e.g. ``PG_TIMEOUT``.
        entity_type: Type of the related entity, e.g. ``order``.
        entity_id: Id of the related entity.
        user_id: Related user id.
        error_code: Error code from the external system.
        error_message: Human-readable error message.
        snapshot_data: State snapshot for recovery.
        request_data: Original request payload.
        response_data: External system response.
        metadata: Additional debug context.
        next_action_hint: Guidance for operators.
        recommended_action: ``replay`` enables automatic replay.
        dedup_key: Groups repeats of one failure into one entry.
    """

    domain: str
    failure_type: str
    entity_type: str | None = None
    entity_id: str | None = None
    user_id: int | None = None
    error_code: str = ""
    error_message: str = ""
    snapshot_data: dict[str, Any] = Field(default_factory=dict)
    request_data: dict[str, Any] = Field(default_factory=dict)
    response_data: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    next_action_hint: str = ""
    recommended_action: str = ""
    dedup_key: str | None = None


FAILURE_FIELDS: tuple[str, ...] = tuple(FailureFields.model_fields)
# The JSON dicts (large, immutable, claim-checked when too big for Temporal).
DATA_FIELDS = ("snapshot_data", "request_data", "response_data", "metadata")
# Free text a caller may leave empty (None means "").
TEXT_FIELDS = ("error_code", "error_message", "next_action_hint", "recommended_action")


class StoreArgs(NamedTuple):
    """The arguments of a store, bound by :func:`store_args`."""

    fields: dict[str, Any]
    request: Any
    mode: StoreMode | None


def store_args(
    domain: str,
    failure_type: str,
    entity_type: str | None = None,
    entity_id: str | None = None,
    user_id: int | None = None,
    error_code: str = "",
    error_message: str = "",
    snapshot_data: dict[str, Any] | None = None,
    request_data: dict[str, Any] | None = None,
    response_data: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    next_action_hint: str = "",
    recommended_action: str = "",
    request: Any = None,
    mode: StoreMode | None = None,
    *,
    dedup_key: str | None = None,
) -> StoreArgs:
    """The one signature of every store entry point (the reference's, plus ``dedup_key``).

    Python binds the caller's arguments here, so positional order, defaults
    and ``TypeError`` for an unknown keyword are the same everywhere.

    Returns:
        The failure fields (unvalidated), the request object and the mode.
    """
    return StoreArgs(
        {"domain": domain, "failure_type": failure_type, "entity_type": entity_type,
         "entity_id": entity_id, "user_id": user_id, "error_code": error_code,
         "error_message": error_message, "snapshot_data": snapshot_data,
         "request_data": request_data, "response_data": response_data, "metadata": metadata,
         "next_action_hint": next_action_hint, "recommended_action": recommended_action,
         "dedup_key": dedup_key},
        request, mode)


P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def takes_store_args(
    method: Callable[[S, StoreArgs], R],
) -> Callable[Concatenate[S, P], R]:
    """Give a method ``(self, args: StoreArgs)`` the public signature of :func:`store_args`.

    Callers see (and type checkers check) the reference signature; the body
    receives the bound :class:`StoreArgs`.
    """

    @functools.wraps(method)
    def call(self: S, *args: Any, **kwargs: Any) -> R:
        return method(self, store_args(*args, **kwargs))

    adopt_store_signature(call, method, self_param=True)
    return call


def adopt_store_signature(call: Any, source: Callable[..., Any], *, self_param: bool = False,
                          drop: tuple[str, ...] = (),
                          extra: tuple[inspect.Parameter, ...] = ()) -> None:
    """Show :func:`store_args`' parameters as ``call``'s signature (for ``help`` and IDEs).

    Args:
        call: The function whose ``__signature__`` is set.
        source: Where the return annotation comes from.
        self_param: Put ``self`` first (a method).
        drop: Parameters of :func:`store_args` that ``call`` does not take.
        extra: Keyword-only parameters ``call`` takes beside them.
    """
    params = [p for p in inspect.signature(store_args).parameters.values() if p.name not in drop]
    if self_param:
        params.insert(0, inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD))
    returns = inspect.signature(source).return_annotation
    call.__signature__ = inspect.Signature([*params, *extra], return_annotation=returns)
    # inspect.signature follows __wrapped__; it must show the store signature.
    call.__dict__.pop("__wrapped__", None)
