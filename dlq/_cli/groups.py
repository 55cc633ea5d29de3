"""``dlq groups list|show`` and ``dlq alerts``: failure groups and the alerts raised."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dlq._cli._common import NOT_FOUND, JsonOption, app, console, fail, print_json, run
from dlq._cli._render import list_table

groups_app = typer.Typer(help="Failure groups: entries with the same fingerprint (domain, "
                              "failure type, error code, normalised message).",
                         no_args_is_help=True)
app.add_typer(groups_app, name="groups")


def _groups_table(rows: list[dict[str, Any]]) -> Table:
    # The fingerprint never wraps (it is what the other commands take); the rest folds.
    table = Table(title_justify="left")
    table.add_column("fingerprint", no_wrap=True)
    for name in ("domain / failure / code", "message"):
        table.add_column(name, overflow="fold")
    for name in ("count", "open", "1h", "24h"):
        table.add_column(name, justify="right")
    for g in rows:
        what = " / ".join(p for p in (g["domain"], g["failure_type"], g["error_code"]) if p)
        table.add_row(g["fingerprint"], escape(what), escape(g["message"][:80]),
                      str(g["count"]), str(g["open_count"]), str(g["last_hour"]),
                      str(g["last_day"]))
    return table


@groups_app.command("list")
def list_groups(
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
    failure_type: Annotated[str | None, typer.Option(help="Only this failure type.")] = None,
    error_code: Annotated[str | None, typer.Option(help="Only this error code.")] = None,
    open_only: Annotated[bool, typer.Option(
        "--open", help="Only groups with open entries.")] = False,
    page: Annotated[int, typer.Option(help="Page number.")] = 1,
    page_size: Annotated[int, typer.Option(help="Groups per page (1-100).")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Failure groups, most recently seen first, with counts (all, open, last hour and day)."""
    filters = {"domain": domain, "failure_type": failure_type, "error_code": error_code,
               "open": open_only or None}
    out = run(lambda s: s.list_groups({k: v for k, v in filters.items() if v is not None},
                                      page=page, page_size=page_size))
    if as_json:
        print_json(out)
        return
    console.print(_groups_table(out["results"]))
    console.print(f"[dim]{out['total_count']} groups[/dim]"
                  + (f"[dim]; next page: --page {out['page'] + 1}[/dim]"
                     if out["has_next"] else ""))


@groups_app.command("show")
def show_group(
    fingerprint: Annotated[str, typer.Argument(help="The group's fingerprint.")],
    as_json: JsonOption = False,
) -> None:
    """One group and its newest entries (redrive them: `dlq redrive --group FINGERPRINT`)."""
    def call(s: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        group = s.get_group(fingerprint)
        if group is None:
            return None, None
        return group, s.list_entries({"group": fingerprint}, page_size=10)

    group, entries = run(call)
    if group is None or entries is None:
        raise fail(f"no failure group {fingerprint}", NOT_FOUND)
    if as_json:
        print_json({**group, "entries": entries["results"]})
        return
    console.print(_groups_table([group]))
    console.print(list_table(entries, console))


@app.command("alerts")
def alerts(
    rule: Annotated[str | None, typer.Option(help="Only this rule's alerts.")] = None,
    limit: Annotated[int, typer.Option(help="At most N (newest first).")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Alerts the alert rules (DLQ_ALERT_RULES) raised, and whether they were delivered."""
    out = run(lambda s: s.list_alerts(limit=limit, rule=rule))
    if as_json:
        print_json(out)
        return
    if not out:
        console.print("no alerts raised" + (f" by rule {rule!r}" if rule else "")
                      + " (rules: DLQ_ALERT_RULES; docs/observability.md#alerts)")
        return
    table = Table("raised", "rule", "subject", "what", "count", "since", "status", "tries",
                  title_justify="left")
    for a in out:
        table.add_row(a["created_at"], escape(a["rule"]), escape(a["subject"]),
                      escape(a["title"]), str(a["count"]), a["since"] or "-", a["status"],
                      str(a["attempts"]))
    console.print(table)
