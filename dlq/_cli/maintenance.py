"""``dlq cleanup-stats|archive|purge|purges``: retention, by hand and audited."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer
from rich.table import Table

from dlq._blocking import DLQService
from dlq._cli._common import (
    BAD_INPUT,
    ActorOption,
    JsonOption,
    app,
    console,
    fail,
    print_json,
    print_result,
    run,
)
from dlq._errors import DLQEntryNotFoundError

DryRun = Annotated[bool, typer.Option("--dry-run", help="Only count; change nothing.")]


@app.command("cleanup-stats")
def cleanup_stats(as_json: JsonOption = False) -> None:
    """What retention maintenance would find now (age buckets, archivable, purgeable)."""
    stats = run(lambda s: s.get_cleanup_stats())
    out = {**dataclasses.asdict(stats), "can_archive": stats.can_archive,
           "can_purge": stats.can_purge}
    if as_json:
        print_json(out)
        return
    print_result(out)


@app.command()
def archive(
    actor: ActorOption,
    older_than_days: Annotated[int | None, typer.Option(
        help="Closed more than N days ago (default: DLQ_RETENTION_DAYS).")] = None,
    dry_run: DryRun = False,
) -> None:
    """Archive closed entries (audited with --actor on every entry)."""
    n = run(lambda s: s.archive_old_entries(
        s.config.retention_days if older_than_days is None else older_than_days,
        dry_run=dry_run, actor=actor))
    console.print(f"{n} entries {'would be ' if dry_run else ''}archived")


@app.command()
def purge(
    actor: ActorOption,
    older_than_days: Annotated[int | None, typer.Option(
        help="Archived entries closed more than N days ago.")] = None,
    ids: Annotated[list[str] | None, typer.Option(
        "--id", help="Only this archived entry (repeat for several).")] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the purge record).")] = "",
    dry_run: DryRun = False,
) -> None:
    """Delete archived entries for good; the purge record keeps who, when, why and what."""
    if older_than_days is None and not ids:
        raise fail("give --older-than-days N and/or --id ID; a purge never takes everything",
                   BAD_INPUT)

    def call(s: DLQService) -> int:
        pks = [s.resolve_entry_id(i) for i in ids] if ids else None
        return s.purge_archived(pks, older_than_days, dry_run=dry_run, actor=actor,
                                reason=reason)

    n = run(call)
    console.print(f"{n} archived entries {'would be ' if dry_run else ''}purged"
                  + ("" if dry_run or not n else "; see `dlq purges`"))


@app.command()
def purges(
    purge_id: Annotated[str | None, typer.Argument(
        help="Show one purge with the entries it deleted.")] = None,
    limit: Annotated[int, typer.Option(help="At most N rows.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The purge record: who purged what, when and why (newest first)."""
    if purge_id is None:
        rows = run(lambda s: s.list_purges(limit))
        if as_json:
            print_json(rows)
            return
        table = Table(title="purges", title_justify="left")
        for name in ("purge", "at", "actor", "count", "reason"):
            table.add_column(name, overflow="fold")
        for r in rows:
            table.add_row(r["purge_id"], r["at"], r["actor"], str(r["count"]), r["reason"])
        console.print(table)
        return

    def one(s: DLQService) -> dict[str, Any]:
        found = s.get_purge(purge_id, limit)
        if found is None:
            raise DLQEntryNotFoundError(f"no purge {purge_id}")
        return found

    out = run(one)
    if as_json:
        print_json(out)
        return
    entries = out.pop("entries")
    print_result(out)
    table = Table(title=f"{len(entries)} of {out['count']} purged entries", title_justify="left")
    for name in ("id", "domain / failure type", "created", "closed"):
        table.add_column(name, overflow="fold")
    for e in entries:
        table.add_row(e["id"], f"{e['domain']} / {e['failure_type']}", e["created_at"],
                      e["closed_at"] or "")
    console.print(table)
