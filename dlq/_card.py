"""What the Temporal Web UI shows of an entry: its card, its audit trail, how it ended.

The entry workflow sets :func:`render_card` as its current details (Markdown
the Web UI renders on the entry's "User Metadata" tab), answers the ``audit``
and ``audit_text`` queries with :func:`audit_records` and :func:`audit_text`,
and returns :func:`result_summary` in its result. Everything here is a pure
function of the entry's state and the time it is given (``workflow.now()``
in the workflow), so workflow code may call it.

The Web UI (2.54.1, measured) renders current details by putting the
Markdown into the query string of a ``/render`` request: 1 MB passed, 3 MB
was refused (HTTP 431). Every text an entry carries is cut to a few hundred
characters here and the whole card to :data:`CARD_LIMIT`, so a card stays a
few KB whatever the entry holds. Its renderer passes raw HTML through and
links bare URLs, so text that comes from callers or operators is escaped
(:func:`md_text`).
"""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

from dlq import _state as sm
from dlq._messages import AuditRecord, EntryInput, EntryResult
from dlq._models import AuditEvent, DLQStatus, EntryState

__all__ = ["AUDIT_ROWS", "CARD_LIMIT", "COMMAND_HELP", "action_signals", "audit_records",
           "audit_text", "clip", "entry_result", "format_time", "human_delta", "md_light",
           "md_text", "relative", "render_card", "result_summary", "static_details",
           "static_summary", "when"]

CARD_LIMIT = 6000
"""Most characters a card may have (the worst case the unit tests build: about 3,900)."""
AUDIT_ROWS = 5
"""Audit events on the card (the newest); the ``audit`` query has all the workflow keeps."""
ERROR_CHARS = 300
TEXT_CHARS = 120
REASON_CHARS = 80
NAME_CHARS = 60
URL_CHARS = 200
RESULT_TEXT_CHARS = 500

# Paste-ready input of each operator signal. ``<...>`` marks what to fill in.
_ACTOR = "you@example.com"
RETRY_JSON = json.dumps({"actor": _ACTOR})
FORCE_REDRIVE_JSON = json.dumps({"actor": _ACTOR, "reason": "<what was fixed>",
                                 "ticket_url": "<https://...>"})
RESOLVE_JSON = json.dumps({"actor": _ACTOR, "notes": "<what you did>"})
DISCARD_JSON = json.dumps({"actor": _ACTOR, "notes": "<why>", "status": "discarded"})

COMMAND_HELP = {
    "retry": f"Replay now, within the budget. Input: {RETRY_JSON} (or {{}})",
    "force_redrive": f"Replay past the budget with a fresh one (audited). Input: "
                     f"{FORCE_REDRIVE_JSON}",
    "resolve": f"Close as resolved, or discarded. Input: {RESOLVE_JSON} (add "
               f"\"status\": \"discarded\" to discard)",
    "edit_data": "Edit the data before the next replay (JSON merge patches, audited). Input: "
                 '{"actor": "<you>", "reason": "<why>", "request_data": {"<key>": "<value>"}}',
    "expire": "Maintenance only: expire the entry if its expiry time has passed.",
    "capture": "Used by DLQ clients when they store a failure; not for operators.",
    "get_state": "The entry's full state (fields, attempts, audit trail) as JSON.",
    "audit": "The audit trail: one object per event (when, action, actor, reason, ticket).",
    "audit_text": "The audit trail as text, one event per line.",
}
"""One line per message handler, shown by the Web UI's signal, update and query pickers."""

_STATUS_MEANING = {
    DLQStatus.PENDING: "waiting for a replay",
    DLQStatus.REPLAYING: "a replay attempt is running",
    DLQStatus.REQUIRES_REVIEW: "replay budget spent; it needs a person",
    DLQStatus.RESOLVED: "closed: fixed",
    DLQStatus.DISCARDED: "closed without a fix",
    DLQStatus.EXPIRED: "closed: nobody handled it before it expired",
    DLQStatus.ARCHIVED: "closed and archived",
}

# Punctuation the Web UI's Markdown renderer un-escapes after a backslash
# (measured: it leaves the backslash before " % ' , / ; = ? @).
_ESCAPABLE = frozenset(string.punctuation) - set("\"%',/;=?@")
# The fields shown raw by ``temporal workflow describe`` as well: only what
# would turn into HTML, links, emphasis or code is escaped there.
_ESCAPABLE_LIGHT = frozenset("\\`*[]<>")


# --- text -----------------------------------------------------------------------------


def clip(text: str | None, limit: int) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``limit`` characters with an ellipsis."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[:max(limit - 1, 0)].rstrip() + "…"


def md_text(text: str | None, limit: int = TEXT_CHARS) -> str:
    r"""Caller or operator text, clipped, that renders as itself in Markdown.

    Raw HTML, emphasis, links, autolinks (``https\://``, ``www\.``) and table
    pipes are escaped with backslashes.
    """
    return "".join(f"\\{c}" if c in _ESCAPABLE else c for c in clip(text, limit))


def md_light(text: str | None, limit: int) -> str:
    """Like :func:`md_text`, escaping only what would become HTML, a link, emphasis or code."""
    return "".join(f"\\{c}" if c in _ESCAPABLE_LIGHT else c for c in clip(text, limit))


def _code(text: str) -> str:
    """An inline code span that holds ``text`` literally, whatever backticks it has."""
    longest = run = 0
    for c in text:
        run = run + 1 if c == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}" if longest else f"`{text}`"


def _link(url: str | None) -> str:
    """A Markdown link to an http(s) ticket URL; other values as escaped text."""
    if not url:
        return ""
    text = clip(url, URL_CHARS)
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. "http://[": not a URL, only text
        return md_text(url, URL_CHARS)
    if parts.scheme not in ("http", "https") or not parts.netloc or text != url.strip():
        return md_text(url, URL_CHARS)
    label = md_text(f"{parts.netloc}{parts.path}".rstrip("/"), 48)
    # Percent-encoding leaves nothing that could end the <...> destination early.
    return f"[{label}](<{quote(text, safe=':/?#[]@!$&*+,;=%-._~')}>)"


# --- time -----------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """An absolute time in UTC to the second: ``2026-12-02 04:00:08 UTC``."""
    return _utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def human_delta(delta: timedelta) -> str:
    """A duration in the two largest units that matter: ``45 s``, ``3 min 20 s``, ``2 d 5 h``."""
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    while len(units) > 1 and units[0][0] == 0:
        units.pop(0)
    shown = [f"{value} {unit}" for value, unit in units[:2] if value]
    return " ".join(shown) or "0 s"


def relative(moment: datetime, now: datetime) -> str:
    """``in 2 h 5 min``, ``3 min ago`` or ``now`` (within a second)."""
    delta = _utc(moment) - _utc(now)
    if abs(delta) < timedelta(seconds=1):
        return "now"
    return f"in {human_delta(delta)}" if delta > timedelta(0) else f"{human_delta(delta)} ago"


def when(moment: datetime, now: datetime) -> str:
    """Relative and absolute: ``in 2 d 23 h (2026-12-02 04:00:08 UTC)``."""
    return f"{relative(moment, now)} ({format_time(moment)})"


# --- the static summary and details (set once, when the entry starts) ---------------------


def static_summary(entry: EntryInput) -> str:
    """One line for the workflow's static summary: ``payment/PG_TIMEOUT order:ord-1042``."""
    entity = f" {entry.entity_type}:{entry.entity_id or ''}" if entry.entity_type else ""
    return md_light(f"{entry.domain}/{entry.failure_type}{entity}", 2 * TEXT_CHARS)


def static_details(entry: EntryInput) -> str:
    """The static details: the original error and the recommended action (Markdown)."""
    return (f"**{md_light(entry.error_code or 'error', NAME_CHARS)}**: "
            f"{md_light(entry.error_message, ERROR_CHARS)}\n\n"
            f"recommended action: {md_light(entry.recommended_action or '-', NAME_CHARS)}")


# --- the card -----------------------------------------------------------------------


def action_signals(state: EntryState) -> list[tuple[str, str, str]]:
    """The operator signals the entry accepts now: ``(name, input JSON, what it does)``.

    The same rules as the commands' gates (:mod:`dlq._state`), so the card
    never offers what the entry would refuse.
    """
    if sm.is_closed(state) or state.status == DLQStatus.REPLAYING:
        return []
    actions = []
    if sm.is_retryable(state.status, state.retry_count, state.max_retries):
        actions.append(("retry", RETRY_JSON, "replay now, within the budget"))
    else:
        actions.append(("force_redrive", FORCE_REDRIVE_JSON,
                        "replay with a fresh budget once the cause is fixed (audited)"))
    actions.append(("resolve", RESOLVE_JSON, "close it: you fixed it another way"))
    actions.append(("resolve", DISCARD_JSON, "close it without a fix"))
    return actions


def _next_replay(state: EntryState, now: datetime) -> str:
    if sm.is_closed(state):
        return "none: closed"
    if state.next_auto_attempt_at is not None:
        return when(state.next_auto_attempt_at, now)
    if state.status == DLQStatus.REPLAYING:
        return "an attempt is running now"
    if not sm.auto_enabled(state):
        return (f"off: recommended action is {md_text(state.recommended_action or '-', 40)}"
                if state.auto_replay else "off for this entry")
    return "none: budget spent"


def _audit_row(event: AuditEvent, now: datetime, *, tickets: bool) -> str:
    moved = f" → {event.to_status}" if event.to_status and event.from_status != event.to_status \
        else ""
    cells = [
        f"{_utc(event.at).strftime('%m-%d %H:%M:%S')} ({relative(event.at, now)})",
        f"{md_text(event.action, 40)}{moved}",
        md_text(event.actor, NAME_CHARS) or "–",
        md_text(event.reason, REASON_CHARS),
    ]
    if tickets:
        cells.append(_link(event.ticket_url))
    return "| " + " | ".join(cells) + " |"


def _audit_section(state: EntryState, now: datetime, rows: int) -> list[str]:
    events = state.audit[-rows:][::-1] if rows else []
    if not events:
        return []
    tickets = any(e.ticket_url for e in events)
    columns = ["when (UTC)", "action", "actor", "reason", *(["ticket"] if tickets else [])]
    return [
        f"**Audit trail**, newest first ({len(events)} of {state.audit_seq}; "
        "query `audit_text` for more):",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *(_audit_row(e, now, tickets=tickets) for e in events),
    ]


def render_card(state: EntryState, now: datetime, *, audit_rows: int = AUDIT_ROWS) -> str:
    """The entry's current details: Markdown for the Web UI, at most :data:`CARD_LIMIT` chars.

    Status and budget first, then the last error, the next automatic
    replay and the expiry (relative to ``now`` and absolute), occurrences,
    the signals an operator can send now with their input, and the newest
    audit events. Never raises: the workflow sets the card in its workflow
    task, and a failing task would stop the entry.

    Args:
        state: The entry.
        now: The time to describe against (``workflow.now()`` in the workflow).
        audit_rows: How many of the newest audit events to show.
    """
    try:
        return _render(state, now, audit_rows)
    except Exception as err:  # noqa: BLE001 - a view must not stop the entry (see above)
        return (f"### {state.status} · retries {state.retry_count} of {state.max_retries} "
                f"used\n\nThe card could not be rendered ({type(err).__name__}); query "
                "`get_state`.")


def _render(state: EntryState, now: datetime, audit_rows: int) -> str:
    entity = (f" · {md_text(state.entity_type, NAME_CHARS)}:{md_text(state.entity_id, NAME_CHARS)}"
              if state.entity_type or state.entity_id else "")
    lines = [
        f"### {state.status} · retries {state.retry_count} of {state.max_retries} used",
        f"{_STATUS_MEANING.get(state.status, '')} · **{md_text(state.domain, NAME_CHARS)} / "
        f"{md_text(state.failure_type, NAME_CHARS)}**{entity} · occurrences "
        f"{state.occurrences} · id {_code(state.id)}",
        "",
    ]
    if state.status in (DLQStatus.RESOLVED, DLQStatus.DISCARDED, DLQStatus.EXPIRED):
        lines += [f"**Outcome:** {md_text(result_summary(state), ERROR_CHARS)}", ""]
    if state.unprojected:
        lines += [f"**Not in SQL** (lists and stats miss it; not retried): "
                  f"{md_text(state.unprojected, ERROR_CHARS)}", ""]
    if state.last_error:
        attempt = state.attempts[-1] if state.attempts else None
        seen = (f" (attempt {attempt.number}, {attempt.trigger}, {relative(attempt.at, now)})"
                if attempt else "")
        lines += [f"**Last error**{seen}: {md_text(state.last_error, ERROR_CHARS)}", ""]
    if state.closed_at:
        lines.append(f"- **Closed** {when(state.closed_at, now)}")
    else:
        lines += [
            f"- **Next automatic replay:** {_next_replay(state, now)}",
            f"- **Expires** {when(state.expires_at, now) if state.expires_at else 'never'}",
        ]
    if state.created_at:
        lines.append(f"- **Created** {when(state.created_at, now)}")
    lines += [f"- **As of** {format_time(now)}: relative times count from here", ""]
    actions = action_signals(state)
    if actions:
        lines += ["**Actions now** (More Actions → Send a Signal, pick the name, paste the "
                  "JSON as Data):", ""]
        lines += [f"- `{name}` {_code(payload)}: {what}" for name, payload, what in actions]
        lines += ["", "Do not Request Cancellation, Terminate or Reset an entry: that ends its "
                  "workflow without closing the entry.", ""]
    elif state.status == DLQStatus.REPLAYING:
        lines += ["**Actions now:** none while the attempt runs; press R to refresh.", ""]
    else:
        lines += ["**Actions now:** none, the entry is closed.", ""]
    head = "\n".join(lines)
    # Whole audit rows go first when the card would be too long.
    for rows in range(audit_rows, -1, -1):
        card = "\n".join([head, *_audit_section(state, now, rows)]).rstrip()
        if len(card) <= CARD_LIMIT:
            return card
    return clip(card, CARD_LIMIT)


# --- the audit queries and the result --------------------------------------------------


def _audit_line(event: AuditEvent) -> str:
    parts = [format_time(event.at), event.action]
    if event.to_status and event.from_status != event.to_status:
        parts.append(f"{event.from_status or '-'} → {event.to_status}")
    if event.actor:
        parts.append(f"by {clip(event.actor, NAME_CHARS)}")
    details = {k: v for k, v in event.details.items() if k in ("trigger", "attempt", "outcome")}
    if details:
        parts.append(" ".join(f"{k}={v}" for k, v in details.items()))
    if event.reason:
        parts.append(f"reason: {clip(event.reason, 500)}")
    if event.ticket_url:
        parts.append(f"ticket: {clip(event.ticket_url, URL_CHARS)}")
    return " · ".join(parts)


def audit_records(state: EntryState) -> list[AuditRecord]:
    """The audit trail the workflow keeps, oldest first, as small records with a text line."""
    return [
        AuditRecord(seq=e.seq, at=e.at, action=e.action, actor=e.actor, reason=e.reason,
                    ticket_url=e.ticket_url, from_status=e.from_status, to_status=e.to_status,
                    text=_audit_line(e))
        for e in state.audit
    ]


def audit_text(state: EntryState) -> str:
    """The audit trail as text, one event per line, oldest first."""
    lines = [_audit_line(e) for e in state.audit]
    dropped = state.audit_seq - len(state.audit)
    if dropped > 0:
        lines.insert(0, f"({dropped} older events are in SQL: dlq show {state.id})")
    return "\n".join(lines)


def result_summary(state: EntryState) -> str:
    """How a closed entry ended, in one line (the workflow result's ``summary``)."""
    last = next((e for e in reversed(state.audit) if e.to_status == state.status), None)
    attempts = sum(1 for a in state.attempts if a.counted)
    tried = f"after {attempts} replay attempt{'s' if attempts != 1 else ''}"
    if state.status == DLQStatus.EXPIRED:
        ended = f"expired unresolved {tried}"
        return f"{ended}; last error: {clip(state.last_error, 200)}" if state.last_error \
            else ended
    if state.resolution_type == "replay":
        return f"resolved: replay succeeded {tried}"
    by = f" by {clip(last.actor, NAME_CHARS)}" if last and last.actor else ""
    notes = f": {clip(state.resolution_notes, 200)}" if state.resolution_notes else ""
    kind = f" ({clip(state.resolution_type, 40)})" if state.resolution_type else ""
    return f"{state.status}{by}{kind}{notes}"


def entry_result(state: EntryState) -> EntryResult:
    """The workflow's result for a closed entry: how it ended, in fields and in words."""
    return EntryResult(
        dlq_id=state.id, status=state.status, summary=result_summary(state),
        retry_count=state.retry_count, version=state.version, closed_at=state.closed_at,
        resolution_type=state.resolution_type,
        resolution_notes=clip(state.resolution_notes, RESULT_TEXT_CHARS),
        last_error=clip(state.last_error, RESULT_TEXT_CHARS) if state.last_error else None,
        occurrences=state.occurrences,
    )
