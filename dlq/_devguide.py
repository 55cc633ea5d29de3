"""What ``make run`` shows people: where to look and what to try, then the demo entries."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from rich.console import Console
from rich.text import Text

from dlq import DLQService, workflow_id_for
from dlq.demo import DemoEntry

if TYPE_CHECKING:
    from dlq._devstack import DevStack

__all__ = ["print_guide", "watch"]

SETTLE_TIMEOUT = 40.0  # seconds to wait for the demo entries to settle
console = Console(highlight=False)


def _rel(path: Path) -> str:
    """``path`` relative to the working directory when it is under it (shorter to copy)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _dlq(*args: str) -> str:
    """A copy-pasteable ``dlq`` command (this virtualenv's, so it runs from any folder)."""
    return shlex.join([str(Path(sys.executable).parent / "dlq"), *args])


def _cli(stack: DevStack, *args: str) -> str:
    """A copy-pasteable ``temporal`` command against the stack."""
    cmd = [_rel(stack.temporal_bin), *args]
    if stack.port != 7233:
        cmd += ["--address", stack.address]
    if stack.config.namespace != "default":
        cmd += ["--namespace", stack.config.namespace]
    if stack.config.key_ring is not None:  # payloads are encrypted: decode them
        cmd += ["--codec-endpoint", f"http://127.0.0.1:{stack.http_port}/codec"]
    return shlex.join(cmd)


def print_guide(stack: DevStack, entries: list[DemoEntry]) -> None:
    # Commands are printed with soft wrapping, so they stay copy-pasteable in
    # narrow terminals (a panel or table would hard-wrap them).
    for entry in entries:
        console.print(f"  [bold]{workflow_id_for(entry.dlq_id)}[/]  {entry.domain:<9}  "
                      f"{entry.label} [dim]-> {entry.expected_status}[/]", soft_wrap=True)
    by_status = {e.expected_status: e for e in entries}
    pending = workflow_id_for(by_status["pending"].dlq_id)
    review = workflow_id_for(by_status["requires_review"].dlq_id)
    console.print()
    console.rule("Try it", align="left")
    console.print(f"[bold]Web UI[/]          {stack.ui_url}  "
                  f"[dim](workflows: {stack.ui_url}/namespaces/{stack.config.namespace}"
                  "/workflows)[/]", soft_wrap=True)
    query = quote('DlqStatus="requires_review"')
    console.print(f"[bold]Needs a person[/]  {stack.ui_url}/namespaces/{stack.config.namespace}"
                  f"/workflows?query={query}", soft_wrap=True)
    console.print("                [dim]open an entry, then its User Metadata tab: the card "
                  "says what to do (docs/operating.md, The Temporal Web UI)[/]", soft_wrap=True)
    console.print(f"[bold]Console[/]         http://127.0.0.1:{stack.http_port}/  "
                  f"[dim](API docs: /docs; no sign-in: --insecure-local)[/]", soft_wrap=True)
    commands = [
        ("List what needs a person, then show one (any folder; the ids above work too):",
         _dlq("list", "--status", "requires_review") + "; " + _dlq("show", review)),
        ("Replay the pending inventory entry now (its handler succeeds -> resolved):",
         _dlq("retry", pending)),
        ("Edit the poison pill's data, then force it past its cap (audited):",
         _dlq("edit", review, "--set", "snapshot_data.note=checked", "--reason", "demo")
         + "; " + _dlq("force-redrive", review, "--reason", "gateway fixed")),
        ("The same entry's audit trail from the temporal CLI (get_state has everything):",
         _cli(stack, "workflow", "query", "--workflow-id", review, "--name", "audit",
              "--output", "json")),
    ]
    for title, command in commands:
        console.print(f"[bold]{title}[/]")
        console.print(Text(f"  {command}", style="green"), soft_wrap=True)
    console.print(f"[dim]State and logs in DLQ_HOME={stack.state_dir} (the default `dlq` "
                  f"uses). Other DLQ clients: DLQ_TEMPORAL_ADDRESS={stack.address}[/]",
                  soft_wrap=True)
    console.print()


def watch(service: DLQService, entries: list[DemoEntry], stack: DevStack) -> None:
    """Wait (up to ``SETTLE_TIMEOUT``) for the demo entries to settle and show them."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    rows: dict[str, dict[str, Any]] = {}
    with console.status("Waiting for the automatic replays to settle the demo entries..."):
        while True:
            for entry in entries:
                rows[entry.dlq_id] = service.get_entry(entry.dlq_id) or {}
            settled = all(rows[e.dlq_id].get("status") == e.expected_status for e in entries)
            if settled or time.monotonic() > deadline or stack.exited():
                break
            time.sleep(1)
    console.print("Demo entries now ([dim]read back with DLQService.get_entry[/]):")
    for entry in entries:
        row = rows[entry.dlq_id]
        status = str(row.get("status", "?"))
        color = "green" if status == entry.expected_status else "yellow"
        line = Text.assemble(
            (f"  {workflow_id_for(entry.dlq_id)}  ", "bold"), (f"{status:<16}", color),
            f" retries {row.get('retry_count', '?')}/{row.get('max_retries', '?')}",
        )
        if row.get("last_error"):
            line.append(f"  last error: {row['last_error']}", style="dim")
        console.print(line, soft_wrap=True)
