"""``dlq list|stats|facets|sla``: finding entries, from SQL."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from dlq._cli._common import JsonOption, app, console, print_json, print_result, run
from dlq._cli._render import list_table, status_style


@app.command("list")
def list_cmd(
    status: Annotated[list[str] | None, typer.Option(
        help="Only this status (repeat for several).")] = None,
    domain: Annotated[str | None, typer.Option(help="Only this domain.")] = None,
    failure_type: Annotated[str | None, typer.Option(help="Only this failure type.")] = None,
    entity_type: Annotated[str | None, typer.Option(help="Only this entity type.")] = None,
    entity_id: Annotated[str | None, typer.Option(help="Only this entity id.")] = None,
    user_id: Annotated[int | None, typer.Option(help="Only this user id.")] = None,
    error_code: Annotated[str | None, typer.Option(help="Only this error code.")] = None,
    group: Annotated[str | None, typer.Option(
        help="Only this failure group (fingerprint, see `dlq groups`).")] = None,
    search: Annotated[str | None, typer.Option(
        help="Text the error message contains (case-insensitive).")] = None,
    created_after: Annotated[str | None, typer.Option(help="ISO 8601 time.")] = None,
    created_before: Annotated[str | None, typer.Option(help="ISO 8601 time.")] = None,
    page: Annotated[int, typer.Option(help="Page number.")] = 1,
    page_size: Annotated[int, typer.Option(help="Entries per page (1-100).")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List entries, newest first, with the list_entries filters."""
    filters: dict[str, Any] = {
        "status": status, "domain": domain, "failure_type": failure_type,
        "entity_type": entity_type, "entity_id": entity_id, "user_id": user_id,
        "error_code": error_code, "error_message": search, "created_after": created_after,
        "created_before": created_before, "group": group}
    out = run(lambda s: s.list_entries({k: v for k, v in filters.items() if v},
                                       page=page, page_size=page_size))
    if as_json:
        print_json(out)
        return
    console.print(list_table(out, console))
    if out["has_next"]:
        console.print(f"[dim]next page: --page {out['page'] + 1}[/dim]")


def _counts(title: str, counts: dict[str, int], *, styled: bool = False) -> Table:
    table = Table(title, "count", title_justify="left")
    for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(Text(key, style=status_style(key) if styled else ""), str(n))
    return table


@app.command()
def stats(as_json: JsonOption = False) -> None:
    """Counts by status and domain, oldest open entry, replay success rate."""
    out = run(lambda s: s.get_stats())
    if as_json:
        print_json(out)
        return
    print_result({k: v for k, v in out.items() if k not in ("by_status", "by_domain")})
    console.print(_counts("status", out["by_status"], styled=True))
    console.print(_counts("domain", out["by_domain"]))


@app.command()
def facets(
    status: Annotated[str | None, typer.Option(help="Scope the domain counts.")] = None,
    domain: Annotated[str | None, typer.Option(help="Scope the status counts.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Status x domain counts (each map scoped by the other filter)."""
    out = run(lambda s: s.get_facet_counts(status=status, domain=domain))
    if as_json:
        print_json(out)
        return
    console.print(_counts(f"status{f' (domain {domain})' if domain else ''}",
                          out["by_status"], styled=True))
    console.print(_counts(f"domain{f' (status {status})' if status else ''}",
                          out["by_domain"]))


@app.command()
def sla(limit: Annotated[int, typer.Option(help="At most N entries.")] = 100,
        as_json: JsonOption = False) -> None:
    """Open entries older than their domain's SLA (DLQ_SLA_THRESHOLDS)."""
    rows = run(lambda s: [e.model_dump(mode="json", exclude={
        "snapshot_data", "request_data", "response_data", "metadata"})
        for e in s.get_sla_breached_entries(limit=limit)])
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} entries past their SLA", title_justify="left")
    for name in ("id", "status", "domain / failure type", "created"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(row["id"], Text(row["status"], style=status_style(row["status"])),
                      f"{row['domain']} / {row['failure_type']}", row["created_at"])
    console.print(table)
