"""The relay against a real outbox file and a deliver function that fails on purpose."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from dlq._entry import new_entry_input
from dlq._messages import EntryInput
from dlq._outbox import Outbox
from dlq._relay import Relay
from tests.support.helpers import eventually


async def count(items: list[str]) -> int:
    """``len(items)``, as a probe for :func:`eventually`."""
    return len(items)


async def test_while_temporal_is_down_the_relay_probes_one_record_at_a_time(
        tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    entries = [new_entry_input("webhook", "HTTP_503") for _ in range(50)]
    for entry in entries:
        outbox.append(entry)
    down = True
    calls: list[str] = []
    delivered: list[str] = []

    async def deliver(entry: EntryInput) -> None:
        calls.append(entry.dlq_id)
        if down:
            raise ConnectionError("Temporal unreachable")
        delivered.append(entry.dlq_id)

    async def depth() -> int:
        return outbox.stats().depth

    relay = Relay(outbox, deliver, batch_size=20, max_probe_interval=0.05)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.6)
        # The first round tries a whole batch; after that, one probe per round.
        failed = len(calls)
        assert 20 < failed < 20 + 15, failed
        assert relay.errors == failed and outbox.stats().depth == 50
        down = False
        await eventually(depth, lambda n: n == 0, timeout=10, interval=0.05)
        # Records that failed wait out their own backoff; all arrive, once each.
        await eventually(lambda: count(delivered), lambda n: n == 50, interval=0.05)
    finally:
        task.cancel()
    assert sorted(delivered) == sorted(e.dlq_id for e in entries)
    assert outbox.stats().depth == 0


def test_appends_leave_checkpoints_to_the_relays_delete(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    for _ in range(1500):
        outbox.append(new_entry_input("webhook", "HTTP_503"))
    # SQLite's default would have checkpointed (and restarted the WAL) every
    # 1,000 frames inside some caller's append; here all frames are still there.
    page = outbox._conn().execute("PRAGMA page_size").fetchone()[0]
    frames = ((tmp_path / "o.db-wal").stat().st_size - 32) // (page + 24)
    assert frames > 2000, frames
    records = outbox.claim(1500)
    outbox.delete([r.seq for r in records])
    probe = sqlite3.connect(tmp_path / "o.db")
    busy, log_frames, checkpointed = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    probe.close()
    assert busy == 0 and log_frames == checkpointed and outbox.stats().depth == 0


async def test_an_unreachable_destination_uses_up_no_attempts(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    for _ in range(10):
        outbox.append(new_entry_input("webhook", "HTTP_503"))
    checks: list[int] = []
    delivered: list[str] = []

    async def ready() -> None:
        checks.append(1)
        if len(checks) < 4:
            raise ConnectionError("Temporal unreachable")

    async def deliver(entry: EntryInput) -> None:
        delivered.append(entry.dlq_id)

    relay = Relay(outbox, deliver, ready=ready, max_probe_interval=0.05)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: count(delivered), lambda n: n == 10, timeout=5, interval=0.05)
    finally:
        task.cancel()
    assert len(checks) >= 4 and relay.errors == 3 and len(set(delivered)) == 10
    assert outbox.stats().depth == 0 and outbox.stats().failing == 0


async def test_a_delivery_error_quoting_a_secret_is_filtered_in_the_outbox_and_the_log(
        tmp_path: Path, caplog) -> None:
    outbox_path = tmp_path / "o.db"
    outbox = Outbox(outbox_path)
    outbox.append(new_entry_input("webhook", "HTTP_503"))
    secret = "Zq7sk_live_51Habc9XyZ0123"

    async def deliver(entry: EntryInput) -> None:
        raise ConnectionError(f"proxy refused Bearer {secret} (password={secret}x)")

    relay = Relay(outbox, deliver, batch_size=5)
    with caplog.at_level("DEBUG", logger="dlq"):
        await relay.drain_once()
    assert relay.errors == 1
    # A value runs to the next space or quote: a ")" may be part of a password.
    assert relay.last_error == ("ConnectionError: proxy refused Bearer [Filtered] "
                                "(password=[Filtered]")
    assert "[Filtered]" in caplog.text and secret not in caplog.text
    assert outbox.stats().last_error == relay.last_error
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("o.db*"))
    assert b"proxy refused" in stored and secret.encode() not in stored
