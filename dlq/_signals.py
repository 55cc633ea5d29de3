"""Parsing the input of the entry workflow's signals, which must never fail a workflow task.

A signal reaches ``DLQEntryWorkflow`` from anyone who can run ``temporal
workflow signal``: any number of inputs, any JSON. An exception in a signal
handler fails the workflow task, and the task fails again on every retry, so
the entry would stop answering queries and its timers would never fire. The
handlers therefore take ``*args`` and hand them to :func:`parse_signal`,
which never raises: it returns the command or the reason the signal is
ignored. The workflow records an ignored signal in the audit trail as
``signal_rejected`` (:func:`dlq._state.record_rejection`).

Everything here is pure, so workflow code may call it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pydantic

from dlq._checks import command_problem, operator_text_problem
from dlq._messages import EditDataInput, ForceRedriveInput, ResolveInput, RetryInput

__all__ = ["COMMAND_INPUTS", "REASON_CHARS", "SIGNAL_PATCH", "ParsedSignal", "clip_reason",
           "known_keys", "parse_signal"]

# The workflow.patched() id of strict signal handling (arity, unknown keys, text
# limits, and the signal_rejected audit event). Entries whose history predates it
# replay with the lenient handling they ran with.
SIGNAL_PATCH = "signal-rejected-audit"
# A rejection reason is at most this long: it lands in the audit trail and get_state.
REASON_CHARS = 300
# How many of pydantic's errors a reason names.
_ERRORS_NAMED = 3

COMMAND_INPUTS: dict[str, type[pydantic.BaseModel]] = {
    "retry": RetryInput, "force_redrive": ForceRedriveInput, "resolve": ResolveInput,
    "edit_data": EditDataInput,
}


class ParsedSignal(NamedTuple):
    """What a signal asks for: ``command`` set, or ``problem`` says why it is ignored.

    ``actor`` is who the input claims sent it (clipped), for the audit event
    of a rejection; None when the input names nobody usable.
    """

    command: pydantic.BaseModel | None
    problem: str | None
    actor: str | None


def known_keys(model: type[pydantic.BaseModel]) -> set[str]:
    """The input keys ``model`` takes: its field names and their aliases."""
    keys = set(model.model_fields)
    for field in model.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            keys.add(alias)
        elif isinstance(alias, pydantic.AliasChoices):
            keys.update(c for c in alias.choices if isinstance(c, str))
    return keys


def clip_reason(text: str) -> str:
    """``text`` cut to :data:`REASON_CHARS` (a rejection reason stays small)."""
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 1] + "…"


def _claimed_actor(raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return None
    actor = raw.get("actor", raw.get("actor_id"))
    if not isinstance(actor, str) or operator_text_problem("actor", actor):
        return None
    return actor


def _describe(err: pydantic.ValidationError) -> str:
    # Only locations and messages: pydantic's str() would quote the input,
    # and signal payloads are never logged or recorded.
    problems = [f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
                for e in err.errors(include_url=False, include_input=False)[:_ERRORS_NAMED]]
    more = err.error_count() - _ERRORS_NAMED
    return "invalid input: " + "; ".join(problems) + (f" (+{more} more)" if more > 0 else "")


def parse_signal(name: str, args: tuple[Any, ...], *, strict: bool = True) -> ParsedSignal:
    """Turn a signal's raw inputs into its command, or the reason to ignore it. Never raises.

    Args:
        name: ``retry``, ``force_redrive``, ``resolve`` or ``edit_data``.
        args: The decoded inputs, as many as the sender sent.
        strict: Also refuse more than one input, unknown keys and operator
            text over its limit (:data:`dlq._checks.OPERATOR_TEXT_LIMITS`).
            False only when replaying a history from before
            :data:`SIGNAL_PATCH`, which accepted those.
    """
    try:
        return _parse(name, args, strict=strict)
    except Exception as err:  # noqa: BLE001 - a signal must never fail the workflow task
        return ParsedSignal(None, clip_reason(f"unreadable input ({type(err).__name__})"), None)


def _parse(name: str, args: tuple[Any, ...], *, strict: bool) -> ParsedSignal:
    if len(args) > 1:
        return ParsedSignal(None, f"{name} takes at most one input, got {len(args)}",
                            _claimed_actor(args[0]))
    raw = args[0] if args else None
    if isinstance(raw, str) and name == "resolve":
        raw = {"notes": raw}  # `--input '"fixed by hand"'`: a bare string is the notes
    actor = _claimed_actor(raw)
    model = COMMAND_INPUTS[name]
    if strict:
        if raw is not None and not isinstance(raw, dict):
            return ParsedSignal(None, f"{name} input must be a JSON object, got "
                                      f"{type(raw).__name__}", actor)
        unknown = sorted(str(k) for k in (raw or {}) if k not in known_keys(model))
        if unknown:
            return ParsedSignal(None, clip_reason(
                f"unknown key(s) {', '.join(unknown)}; {name} takes "
                f"{', '.join(sorted(known_keys(model)))}"), actor)
    try:
        command = model.model_validate(raw or {})
    except pydantic.ValidationError as err:
        return ParsedSignal(None, clip_reason(_describe(err)), actor)
    problem = command_problem(command) if strict else None
    if problem:
        return ParsedSignal(None, problem, actor)
    return ParsedSignal(command, None, actor)
