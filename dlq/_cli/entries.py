"""``dlq show|retry|force-redrive|resolve|edit|create-test-entry``: one entry at a time.

Every ``<id>`` may be the bare id, ``dlq-<id>`` or a deduplicated entry's
workflow id (``dlq-dedup-<hex>``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dlq._blocking import DLQService
from dlq._cli._common import (
    BAD_INPUT,
    ERROR,
    REPLAY_FAILED,
    ActorOption,
    JsonOption,
    app,
    console,
    exit_code,
    fail,
    print_json,
    print_result,
    run,
)
from dlq._cli._render import entry_view
from dlq._errors import DLQEntryNotFoundError
from dlq._patch import check_patch, parse_assignments

IdArgument = Annotated[str, typer.Argument(
    metavar="ID", help="Entry id: bare, dlq-<id> or dlq-dedup-<hex>.")]


def _show(service: DLQService, ref: str) -> dict[str, Any]:
    pk = service.resolve_entry_id(ref)
    entry = service.get_entry(pk)
    if entry is not None:
        return entry
    purged = service.find_purged_entry(pk)
    if purged is not None:
        p = purged["purge"]
        raise DLQEntryNotFoundError(
            f"DLQ entry {pk} was purged at {p['at']} by {p['actor']} (purge {p['purge_id']}"
            f"{': ' + p['reason'] if p['reason'] else ''}); see `dlq purges {p['purge_id']}`")
    raise DLQEntryNotFoundError(f"DLQ entry {ref} not found (check the id, and DLQ_HOME or "
                                "DLQ_DATABASE_URL)")


@app.command()
def show(dlq_id: IdArgument, as_json: JsonOption = False) -> None:
    """Show one entry: status and budget first, fields, data, audit trail, attempts."""
    entry = run(lambda s: _show(s, dlq_id))
    if as_json:
        print_json(entry)
        return
    console.print(entry_view(entry))


def _replayed(out: dict[str, Any]) -> None:
    print_result(out)
    if not out["success"]:
        # The replay ran and failed: not a success for scripts either.
        raise fail(f"replay failed: {out['message']}", REPLAY_FAILED)


@app.command()
def retry(dlq_id: IdArgument, actor: ActorOption) -> None:
    """Replay an entry now, within its retry budget (exit 5 if the replay fails)."""
    _replayed(run(lambda s: s.retry_entry(s.resolve_entry_id(dlq_id), actor=actor)))


@app.command("force-redrive")
def force_redrive(
    dlq_id: IdArgument,
    reason: Annotated[str, typer.Option(help="Why (audited; required).")],
    actor: ActorOption,
    ticket_url: Annotated[str | None, typer.Option(help="Change or incident ticket.")] = None,
) -> None:
    """Replay an entry past its cap with a fresh budget (audited; exit 5 if it fails)."""
    _replayed(run(lambda s: s.force_redrive_entry(
        s.resolve_entry_id(dlq_id), actor_id=actor, reason=reason, ticket_url=ticket_url)))


@app.command()
def resolve(
    dlq_ids: Annotated[list[str], typer.Argument(metavar="ID...", help="One or more entry ids.")],
    actor: ActorOption,
    notes: str = "",
    status: Annotated[str, typer.Option(help="resolved or discarded")] = "resolved",
    resolution_type: str = "manual",
) -> None:
    """Close entries as resolved or discarded."""
    if len(dlq_ids) == 1:
        print_result(run(lambda s: s.resolve_entry(s.resolve_entry_id(dlq_ids[0]), notes,
                                                   resolution_type, status, actor=actor)))
        return

    def batch(s: DLQService) -> dict[str, Any]:
        ids, bad = [], []
        for ref in dlq_ids:
            try:
                ids.append(s.resolve_entry_id(ref))
            except DLQEntryNotFoundError as err:
                bad.append({"id": ref, "success": False, "error": str(err),
                            "error_type": "DLQEntryNotFoundError"})
        out = s.resolve_entries_batch(ids, resolution_type, status, notes, actor=actor)
        out["results"] += bad
        out["failed"] += len(bad)
        return out

    out = run(batch)
    table = Table("id", "ok", "status / error")
    for r in out["results"]:
        table.add_row(r["id"], "yes" if r["success"] else "no",
                      r.get("current_status") or f"{r['error_type']}: {r['error']}")
    console.print(table)
    failures = [r for r in out["results"] if not r["success"]]
    if failures:
        # The code of the first failure's error (e.g. 4 for an unknown id).
        from dlq import _errors

        first = getattr(_errors, failures[0]["error_type"], None)
        code = exit_code(first("")) if isinstance(first, type) else ERROR
        pending = sum(bool(r.get("pending")) for r in failures)
        failed = len(failures) - pending
        parts = ([f"{failed} of {len(dlq_ids)} entries were not resolved"] if failed else []) + (
            [f"{pending} pending: sent, not confirmed (check `dlq show` before repeating)"]
            if pending else [])
        raise fail("; ".join(parts), code)


@app.command()
def edit(
    dlq_id: IdArgument,
    actor: ActorOption,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="FIELD.PATH=VALUE",
        help="Set one value, e.g. request_data.amount=1299 (JSON values; null removes). "
             "Repeat for more.")] = None,
    patch_file: Annotated[Path | None, typer.Option(
        "--patch", metavar="FILE", help="A JSON merge patch: {\"request_data\": {...}, "
                                         "\"snapshot_data\": {...}} ('-' reads stdin).")] = None,
    reason: Annotated[str, typer.Option(help="Why (audited).")] = "",
) -> None:
    """Edit an entry's request_data/snapshot_data before its next replay (audited, with a diff)."""
    if bool(set_) == bool(patch_file):
        raise fail("give either --set FIELD.PATH=VALUE (repeatable) or --patch FILE",
                   BAD_INPUT)

    def patch() -> dict[str, Any]:
        if set_:
            return parse_assignments(set_)
        text = (typer.get_text_stream("stdin").read() if str(patch_file) == "-"
                else Path(patch_file).read_text())  # type: ignore[arg-type]
        try:
            loaded = json.loads(text)
        except ValueError as err:
            raise ValueError(f"--patch {patch_file}: not JSON: {err}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"--patch {patch_file}: must be a JSON object")
        return loaded

    def call(s: DLQService) -> dict[str, Any]:
        edits = check_patch(patch())
        return s.edit_entry_data(s.resolve_entry_id(dlq_id), actor=actor, reason=reason,
                                 **edits)

    out = run(call)
    console.print(f"edited entry {out['id']} ({out['status']}); edit #{out['data_edits']}:")
    for item in out["diff"]:
        old = json.dumps(item.get("old"), default=str) if "old" in item else "-"
        new = json.dumps(item.get("new"), default=str) if "new" in item else "-"
        console.print(f"  {item['op']:<7} {item['path']}: {old} -> {new}", soft_wrap=True,
                      markup=False)


@app.command("create-test-entry")
def create_test_entry(domain: str = "test", failure_type: str = "TEST_FAILURE",
                      created_by: str = "cli") -> None:
    """Store a synthetic entry through the production path."""
    out = run(lambda s: s.create_test_entry(domain, failure_type, created_by=created_by))
    print_result(out)
    if not out["success"]:
        raise fail(f"the test entry was not stored: {out['error']}", ERROR)

