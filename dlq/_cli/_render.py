"""How the CLI shows an entry and a list: readable at 80 columns, times in full."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

__all__ = ["entry_view", "list_table", "status_style"]

STATUS_STYLES = {"pending": "yellow", "replaying": "cyan", "requires_review": "bold red",
                 "resolved": "green", "discarded": "dim", "expired": "dim", "archived": "dim"}
# Fields shown under "entry", in this order (status and budget come first, apart).
FIELDS = ("domain", "failure_type", "entity_type", "entity_id", "user_id", "error_code",
          "error_message", "last_error", "recommended_action", "next_action_hint",
          "occurrences", "dedup_key", "workflow_id", "created_at", "updated_at",
          "last_attempt_at", "expires_at", "resolved_at", "closed_at", "resolution_type",
          "resolution_notes", "data_edits", "data_edited_at", "fingerprint")


def status_style(status: str) -> str:
    """The rich style of a status."""
    return STATUS_STYLES.get(status, "")


def _pairs(rows: list[tuple[str, Any]]) -> Table:
    # No box and a folding value column: long values wrap, never get cut.
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        if value is None or value == "":
            continue
        table.add_row(key, escape(value if isinstance(value, str)
                                  else json.dumps(value, default=str)))
    return table


def _data(title: str, value: Any) -> Group:
    text = json.dumps(value, indent=2, default=str) if value else "{}"
    return Group(Text(title, style="bold"), Text(text, overflow="fold"))


def entry_view(entry: dict[str, Any]) -> Group:
    """An entry for the terminal: status and budget first, fields, data, audit, attempts."""
    status = entry["status"]
    head = Text.assemble(
        ("entry ", "bold"), (entry["id"], "bold"), "\n",
        (status, status_style(status)),
        f"  retries {entry['retry_count']}/{entry['max_retries']}",
        "  (retryable)" if entry.get("can_retry") else "",
    )
    parts: list[Any] = [head, Rule(style="dim"),
                        _pairs([(f, entry.get(f)) for f in FIELDS])]
    parts.append(Rule("data", style="dim"))
    for name in ("request_data", "snapshot_data", "response_data", "metadata"):
        parts.append(_data(name, entry.get(name)))
    if entry.get("original_data"):
        parts.append(_data("original data (as captured, before the edits)",
                           entry["original_data"]))
    if entry.get("redacted_paths"):
        # So an operator knows why a field reads [Filtered] (docs/security.md).
        parts.append(Text(f"redacted at capture: {', '.join(entry['redacted_paths'])}",
                          style="dim"))
    parts.append(Rule(f"audit trail ({len(entry.get('audit_events', []))} events, oldest "
                      "first)", style="dim"))
    for event in entry.get("audit_events", []):
        parts.append(_audit_line(event))
    attempts = entry.get("attempts", [])
    parts.append(Rule(f"attempts ({len(attempts)})", style="dim"))
    for a in attempts:
        line = Text.assemble(
            (f"#{a['number']} ", "bold"), a["at"], f"  {a['trigger']}  ",
            (a["outcome"], "green" if a["outcome"] == "success" else "red"),
            f"  {a.get('duration_ms', 0):.0f} ms",
            f"  by {a['actor']}" if a.get("actor") else "")
        if a.get("error"):
            line.append(f"\n    {a['error']}", style="dim")
        parts.append(line)
    return Group(*parts)


def _audit_line(event: dict[str, Any]) -> Text:
    moved = (f"{event['from_status'] or '-'} -> {event['to_status']}"
             if event.get("from_status") != event.get("to_status") else "")
    line = Text.assemble((f"#{event['seq']} ", "bold"), event["at"], "  ",
                         (event["action"], "bold"),
                         f"  by {event['actor']}" if event.get("actor") else "",
                         f"  {moved}" if moved else "")
    if event.get("reason"):
        line.append(f"\n    reason: {event['reason']}")
    if event.get("ticket_url"):
        line.append(f"\n    ticket: {event['ticket_url']}")
    for item in (event.get("details") or {}).get("diff", []):
        old = json.dumps(item.get("old"), default=str) if "old" in item else ""
        new = json.dumps(item.get("new"), default=str) if "new" in item else ""
        line.append(f"\n    {item['op']} {item['path']}: {old}{' -> ' if old and new else ''}"
                    f"{new}", style="dim")
    return line


def list_table(page: dict[str, Any], console: Console) -> Table:
    """One list page as a table that fits the terminal (long cells fold)."""
    table = Table(title=(f"page {page['page']}/{max(page['total_pages'], 1)} · "
                         f"{page['total_count']} entries"), title_justify="left")
    for name in ("id", "status", "domain / failure type", "retries", "created", "error"):
        table.add_column(name, overflow="fold")
    for row in page["results"]:
        table.add_row(row["id"], Text(row["status"], style=status_style(row["status"])),
                      escape(f"{row['domain']} / {row['failure_type']}"),
                      f"{row['retry_count']}/{row['max_retries']}",
                      row["created_at"], escape((row.get("error_message") or "")[:120]))
    return table
