"""Benchmark: ``store_failure(mode="async")`` latency, and draining a 20,000-entry storm.

One run measures, each next to its own same-run baseline:

(a) **Store latency**, no Temporal needed. ``mode="async"`` stores of a
    realistic entry (about 500 bytes of snapshot/request data) into a fresh
    outbox file, through the blocking ``DLQService`` (what a Django view or a
    Celery task calls) and through ``AsyncDLQService``, one call at a time.
    Baseline: a plain ``sqlite3`` INSERT of the same JSON row (``json.dumps``
    of the same fields, a fresh uuid4) into a table of the outbox's shape in
    another file, same pragmas (WAL, ``synchronous=NORMAL``), autocommit.
    The goal rows run with the relay **off** (a subclass whose
    ``start_relay`` does nothing), interleaved in rounds so drift on a noisy
    machine hits all three alike. Then both APIs again with the product's
    relay **on** against a closed port (Temporal down): the relay retries
    every record with backoff in the background of the same process.
    Goals: p99 <= 2 ms and rate >= 0.5x the plain insert.

(b) **Storm**, on a throw-away stack (:func:`bench._stack.running_stack`: a
    dev server on a WAL SQLite file plus the DLQ worker process).

    1. Baseline: ``--n-bare`` ``BareWorkflow`` starts (one no-op activity),
       64 in flight, as fast as possible; the start rate, and the rate until
       all completed (first start to last close time). The latter is the fair
       twin of "delivered into a workflow that wrote its SQL row".
    2. Storm: ``--n-storm`` ``store_failure(mode="async")`` calls from one
       producer thread through ``DLQService`` with the **product defaults**
       (its in-process relay: batch 100, 32 deliveries in flight). Reported:
       the enqueue rate and latency, the time until the outbox is empty (every
       entry's workflow exists), and the time until every entry has its row in
       the worker's SQLite read model. Drain rate = n / (first store -> last
       row). Checks: the SQL id set equals the returned ``dlq_id`` set (0
       lost), ``count_workflows`` of the storm's domain equals n once
       visibility catches up (0 duplicates).
       Goal: drain rate >= 0.7x the bare start-and-complete rate.
    3. ``--tune B:C,...`` (optional): the same storm with a relay of batch
       size B and concurrency C (``bench._capture_support.TunedRelayService``),
       each after a fresh bare baseline, to find defaults that meet the goal.

Warm-ups are excluded everywhere. The exit code is 1 if an entry was lost or
duplicated or a store failed, 2 if the stack did not start, else 0 (a missed
goal is a figure, not an error).

Usage::

    python bench/capture.py [--n-latency 5000] [--n-storm 20000] [--n-bare 2000]
                            [--tune 100:64,500:64] [--n-tune 20000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from temporalio.client import Client

from dlq import AsyncDLQService, DLQConfig, DLQService
from dlq._connect import connect
from dlq._temporal import workflow_id_for

if __package__ in (None, ""):
    # Run as `python bench/capture.py`: `bench` is not installed.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._bare import BareWorkflow
from bench._capture_support import (
    NoRelayService,
    PlainSQLiteOutbox,
    Quantiles,
    TunedRelayService,
    blocking_service,
    entry_json_row,
    loadavg,
    quantiles,
    sample_failure,
    stop_relay,
    stop_relay_blocking,
)
from bench._stack import (
    Stack,
    cpu_seconds,
    free_port,
    machine_busy_seconds,
    running_stack,
)

P99_GOAL_MS = 2.0
STORE_RATE_GOAL = 0.5
DRAIN_GOAL = 0.7
BARE_CONCURRENCY = 64
DLQ_TASK_QUEUE = "dlq-capture"
BARE_TASK_QUEUE = "bare-capture"
POLL = 0.25
STALL_TIMEOUT = 180.0  # seconds without a new row before the storm is declared stuck
VISIBILITY_TIMEOUT = 90.0

console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


# --- (a) store latency ------------------------------------------------------------------


@dataclass
class Series:
    """Latencies of one variant, accumulated over rounds."""

    name: str
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    cpu: float = 0.0
    failed: int = 0
    note: str = ""

    def summary(self) -> Quantiles:
        """p50/p99/max and rate so far."""
        return quantiles(self.latencies, self.elapsed)


def _time_plain(plain: PlainSQLiteOutbox, rows: list[dict[str, Any]], series: Series) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    for row in rows:
        t = time.perf_counter()
        plain.insert(row)
        series.latencies.append(time.perf_counter() - t)
    series.elapsed += time.perf_counter() - start
    series.cpu += time.process_time() - cpu


def _time_blocking(service: DLQService, calls: list[dict[str, Any]], series: Series) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    for kwargs in calls:
        t = time.perf_counter()
        result = service.store_failure(**kwargs, mode="async")
        series.latencies.append(time.perf_counter() - t)
        series.failed += not result.success
    series.elapsed += time.perf_counter() - start
    series.cpu += time.process_time() - cpu


async def _time_async(service: AsyncDLQService, calls: list[dict[str, Any]],
                      series: Series) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    for kwargs in calls:
        t = time.perf_counter()
        result = await service.store_failure(**kwargs, mode="async")
        series.latencies.append(time.perf_counter() - t)
        series.failed += not result.success
        # Untimed: an asyncio app yields between requests, so background
        # tasks (the relay, when on) get the loop as they would in production.
        await asyncio.sleep(0)
    series.elapsed += time.perf_counter() - start
    series.cpu += time.process_time() - cpu


def _chunks(items: list[Any], parts: int) -> list[list[Any]]:
    size = -(-len(items) // parts)
    return [items[i:i + size] for i in range(0, len(items), size)]


def run_latency(args: argparse.Namespace, tmp: Path) -> list[Series]:
    """Part (a): the three relay-off series interleaved, then the two relay-on series."""
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there: connects are refused

    def config(name: str) -> DLQConfig:
        return DLQConfig(outbox_path=str(tmp / f"{name}.db"), temporal_address=closed,
                         database_url=f"sqlite:///{tmp / 'unused-read-model.db'}")

    n, warm = args.n_latency, args.warmup_latency
    calls = [sample_failure(i) for i in range(warm + n)]
    template = config("plain")
    rows = [entry_json_row(kwargs, template) for kwargs in calls]
    payload_bytes = len(json.dumps(rows[0]).encode())
    console.print(f"[bold](a) store latency[/]: {n} calls per series after {warm} warm-up "
                  f"calls; entry JSON {payload_bytes} bytes; relay-off series interleaved in "
                  f"{args.rounds} rounds; load average {loadavg()}")

    busy0, own0, wall0 = machine_busy_seconds(), time.process_time(), time.perf_counter()
    plain = PlainSQLiteOutbox(tmp / "plain.db")
    blocking = blocking_service(NoRelayService(config("blocking-off")))
    aio = NoRelayService(config("async-off"))
    runner = asyncio.Runner()
    series = [Series("plain sqlite3 INSERT (baseline)"),
              Series("DLQService, relay off"), Series("AsyncDLQService, relay off")]
    try:
        # Warm-up: open files, import lazily-loaded code, fill caches.
        _time_plain(plain, rows[:warm], Series("warm"))
        _time_blocking(blocking, calls[:warm], Series("warm"))
        runner.run(_time_async(aio, calls[:warm], Series("warm")))
        order = [
            lambda part: _time_plain(plain, [rows[warm + i] for i in part], series[0]),
            lambda part: _time_blocking(blocking, [calls[warm + i] for i in part], series[1]),
            lambda part: runner.run(_time_async(aio, [calls[warm + i] for i in part],
                                                series[2])),
        ]
        for number, part in enumerate(_chunks(list(range(n)), args.rounds)):
            # Rotate who goes first, so no series always runs on a warmer cache.
            for k in range(len(order)):
                order[(number + k) % len(order)](part)
        depth = (blocking.get_capture_stats()["outbox_depth"],
                 runner.run(aio.get_capture_stats())["outbox_depth"])
        series[1].note = f"outbox holds {depth[0]} records"
        series[2].note = f"outbox holds {depth[1]} records"
    finally:
        plain.close()
        blocking.close()
        runner.run(aio.close())
        runner.close()

    # Relay on, Temporal unreachable: what a producer sees while Temporal is down.
    warm_calls, measured = calls[:warm], calls[warm:]
    series.append(_relay_on_blocking(config("blocking-on"), warm_calls, measured))
    series.append(asyncio.run(_relay_on_async(config("async-on"), warm_calls, measured)))
    busy1 = machine_busy_seconds()
    if busy0 is not None and busy1 is not None:
        other = ((busy1 - busy0) - (time.process_time() - own0)) / (time.perf_counter() - wall0)
        console.print(f"other processes used {other:.2f} of {os.cpu_count()} cores during "
                      f"(a); load average {loadavg()}")
    return series


def _note_extra_cancels(series: Series, extra: int) -> None:
    if extra:
        series.note += (f"; the relay ignored {extra} cancel(s) (Relay.run wait_for race, "
                        f"Python 3.11): close() alone would have hung")


def _relay_note(stats: dict[str, Any]) -> str:
    return (f"relay running={stats['relay_running']}, {stats['relay_errors']} failed "
            f"deliveries, outbox {stats['outbox_depth']}")


def _relay_on_blocking(config: DLQConfig, warm: list[dict[str, Any]],
                       measured: list[dict[str, Any]]) -> Series:
    """``DLQService`` as shipped: its relay retries in the background of the producer."""
    one = Series("DLQService, relay on, Temporal down")
    service = DLQService(config)
    try:
        _time_blocking(service, warm, Series("warm"))
        _time_blocking(service, measured, one)
        one.note = _relay_note(service.get_capture_stats())
    finally:
        _note_extra_cancels(one, stop_relay_blocking(service))
        service.close()
    return one


async def _relay_on_async(config: DLQConfig, warm: list[dict[str, Any]],
                          measured: list[dict[str, Any]]) -> Series:
    """``AsyncDLQService`` as shipped: its relay task shares the producer's loop."""
    one = Series("AsyncDLQService, relay on, Temporal down")
    service = AsyncDLQService(config)
    try:
        await _time_async(service, warm, Series("warm"))
        await _time_async(service, measured, one)
        one.note = _relay_note(await service.get_capture_stats())
    finally:
        _note_extra_cancels(one, await stop_relay(service))
        await service.close()
    return one


def report_latency(series: list[Series]) -> list[str]:
    """Print the table of part (a); returns the goal lines."""
    base = series[0].summary()
    table = Table(title="(a) mode=\"async\" store, one call at a time, one process")
    table.add_column("series")
    for name in ("calls", "failed", "p50 ms", "p99 ms", "max ms", "rate /s", "x plain",
                 "CPU us/call"):
        table.add_column(name, justify="right")
    table.add_column("note")
    for one in series:
        s = one.summary()
        table.add_row(one.name, str(s.n), str(one.failed), f"{s.p50_ms:.3f}",
                      f"{s.p99_ms:.3f}", f"{s.max_ms:.1f}", f"{s.rate:,.0f}",
                      f"{s.rate / base.rate:.2f}" if base.rate else "-",
                      f"{one.cpu * 1e6 / s.n:.0f}" if s.n else "-", one.note)
    console.print(table)
    console.print("CPU us/call: CPU time of this whole process (every thread, the relay "
                  "included) per call; unlike wall time it barely moves with the machine's "
                  "load.")
    lines = []
    for one in series[1:]:
        s = one.summary()
        ok = s.p99_ms <= P99_GOAL_MS and s.rate >= STORE_RATE_GOAL * base.rate
        lines.append(f"(a) {one.name}: p99 {s.p99_ms:.2f} ms (goal <= {P99_GOAL_MS:g}), "
                     f"rate {s.rate:,.0f}/s = {s.rate / base.rate:.2f}x plain "
                     f"{base.rate:,.0f}/s (goal >= {STORE_RATE_GOAL}) -> "
                     f"{'MET' if ok else 'MISSED'}")
    return lines


# --- (b) storm --------------------------------------------------------------------------


@dataclass
class BareResult:
    """Bare workflow baseline: start only, and start until completed."""

    n: int
    start_elapsed: float
    complete_elapsed: float
    errors: int
    cpu_ms: dict[str, float | None]
    events: int

    @property
    def start_rate(self) -> float:
        """Starts acknowledged per second."""
        return self.n / self.start_elapsed

    @property
    def complete_rate(self) -> float:
        """Workflows started and completed per second (first start to last close)."""
        return self.n / self.complete_elapsed


@dataclass
class StormResult:
    """One storm: enqueue, drain, and the loss/duplicate checks."""

    label: str
    n: int
    enqueue: Quantiles
    failed: int
    started_elapsed: float | None
    rows_elapsed: float | None
    returned: int
    rows: int
    lost: int
    extra: int
    workflows: int
    relay: dict[str, Any]
    cores: dict[str, float | None]
    cpu_ms: dict[str, float | None]
    events: int
    timeline: list[tuple[float, int, int, int]]
    bare: tuple[BareResult, BareResult] | None = None

    @property
    def broken(self) -> bool:
        """A store failed, or an entry was lost, unexpected or duplicated."""
        return bool(self.failed or self.lost or self.extra or self.rows_elapsed is None
                    or self.workflows != self.returned)

    @property
    def duplicates(self) -> int:
        """Workflow runs beyond one per returned id."""
        return max(0, self.workflows - self.returned)

    @property
    def drain_rate(self) -> float:
        """Entries per second from the first store to the last SQL row."""
        return self.n / self.rows_elapsed if self.rows_elapsed else 0.0


async def bare_baseline(client: Client, stack: Stack, n: int, warmup: int, tag: str,
                        pids: dict[str, int]) -> BareResult:
    """Start ``n`` bare workflows, 64 in flight; time the starts and the completions."""
    async def run(ids: list[str]) -> int:
        sem = asyncio.Semaphore(BARE_CONCURRENCY)
        errors = 0

        async def one(wid: str) -> None:
            nonlocal errors
            async with sem:
                try:
                    await client.start_workflow(BareWorkflow.run, id=wid,
                                                task_queue=stack.bare_task_queue)
                except Exception:  # noqa: BLE001 - counted
                    errors += 1

        await asyncio.gather(*(one(wid) for wid in ids))
        return errors

    async def completed() -> int:
        return (await client.count_workflows(
            'WorkflowType="BareWorkflow" AND ExecutionStatus="Completed"')).count

    before = await completed()
    if warmup:
        await run([f"bare-{tag}-warm-{i}" for i in range(warmup)])
        await _until(lambda: completed(), before + warmup, timeout=120)
    before = await completed()
    prefix = f"bare-{tag}-m-"
    cpu0 = _cpu(pids)
    epoch0, t0 = time.time(), time.perf_counter()
    errors = await run([f"{prefix}{i}" for i in range(n)])
    start_elapsed = time.perf_counter() - t0
    await _until(lambda: completed(), before + n - errors, timeout=max(120.0, n / 5))
    polled = time.perf_counter() - t0
    cpu1 = _cpu(pids)
    # Exact: the last close time among the measured runs (same machine clock).
    last = 0.0
    async for wf in client.list_workflows('WorkflowType="BareWorkflow"'):
        if wf.id.startswith(prefix) and wf.close_time is not None:
            last = max(last, wf.close_time.timestamp())
    complete_elapsed = last - epoch0 if last else polled
    events = len((await client.get_workflow_handle(f"{prefix}0").fetch_history()).events)
    return BareResult(n=n - errors, start_elapsed=start_elapsed,
                      complete_elapsed=complete_elapsed, errors=errors,
                      cpu_ms=_cpu_ms(cpu0, cpu1, n - errors), events=events)


async def _until(value: Callable[[], Any], target: int, *, timeout: float) -> int:
    """Poll the coroutine function ``value`` until it returns >= ``target`` (or time out)."""
    deadline = time.perf_counter() + timeout
    while True:
        got = await value()
        if got >= target or time.perf_counter() > deadline:
            return got
        await asyncio.sleep(0.1)


class _Counter:
    """Reads the storm's progress straight from the two SQLite files."""

    def __init__(self, database_url: str, outbox_path: Path) -> None:
        self.read_model = sqlite3.connect(make_url(database_url).database, isolation_level=None,
                                          timeout=30)
        self.outbox = sqlite3.connect(outbox_path, isolation_level=None, timeout=30)

    def rows(self, domain: str) -> int:
        return self.read_model.execute("SELECT COUNT(*) FROM dlq_entries WHERE domain = ?",
                                       (domain,)).fetchone()[0]

    def ids(self, domain: str) -> set[str]:
        return {row[0] for row in self.read_model.execute(
            "SELECT id FROM dlq_entries WHERE domain = ?", (domain,))}

    def depth(self) -> int:
        return self.outbox.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        self.read_model.close()
        self.outbox.close()


def _produce(service: DLQService, calls: list[dict[str, Any]], stop: threading.Event,
             out: dict[str, Any]) -> None:
    """The producer thread: every store, as fast as possible."""
    ids, latencies, failed = out["ids"], out["latencies"], 0
    out["t0"] = start = time.perf_counter()
    for kwargs in calls:
        if stop.is_set():
            break
        t = time.perf_counter()
        result = service.store_failure(**kwargs, mode="async")
        latencies.append(time.perf_counter() - t)
        if result.success and result.dlq_id:
            ids.append(result.dlq_id)
        else:
            failed += 1
        out["enqueued"] = len(latencies)
    out["elapsed"] = time.perf_counter() - start
    out["failed"] = failed


async def storm(stack: Stack, client: Client, *, label: str, domain: str, n: int, warmup: int,
                make_service: Callable[[DLQConfig], DLQService],
                pids: dict[str, int]) -> StormResult:
    """Enqueue ``n`` async stores from one producer thread; wait for every SQL row."""
    outbox_path = stack.tmpdir / f"outbox-{domain}.db"
    config = DLQConfig(temporal_address=stack.address, task_queue=stack.dlq_task_queue,
                       database_url=stack.database_url, outbox_path=str(outbox_path))
    service = make_service(config)
    stop = threading.Event()
    counter: _Counter | None = None
    try:
        # Warm-up: the relay connects and the worker's code paths get hot.
        warm_domain = f"{domain}-warm"
        for i in range(warmup):
            service.store_failure(**sample_failure(i, domain=warm_domain), mode="async")
        counter = _Counter(stack.database_url, outbox_path)
        await _until(_as_async(counter.rows, warm_domain), warmup, timeout=120)

        calls = [sample_failure(i, domain=domain) for i in range(n)]
        out: dict[str, Any] = {"ids": [], "latencies": [], "enqueued": 0}
        before = _cpu(pids)
        producer = asyncio.create_task(asyncio.to_thread(_produce, service, calls, stop, out))
        timeline: list[tuple[float, int, int, int]] = []
        started_at = rows_at = None
        last_rows, last_change = -1, time.perf_counter()
        while True:
            await asyncio.sleep(POLL)
            now = time.perf_counter()
            rows, depth = counter.rows(domain), counter.depth()
            t = now - out.get("t0", now)
            timeline.append((t, max(out["enqueued"], depth), depth, rows))
            done_enqueue = producer.done()
            if started_at is None and done_enqueue and depth == 0:
                started_at = t
            if rows != last_rows:
                last_rows, last_change = rows, now
            if done_enqueue and rows >= len(out["ids"]):
                rows_at = t
                break
            if now - last_change > STALL_TIMEOUT:
                console.print(f"[red]{label}: no new row for {STALL_TIMEOUT:g}s "
                              f"({rows} rows, outbox {depth}); giving up[/]")
                break
        after = _cpu(pids)
        await producer
        span = rows_at or timeline[-1][0]
        cores = {proc: None if before[proc] is None or after[proc] is None
                 else (after[proc] - before[proc]) / span for proc in before}
        relay = service.get_capture_stats()
        returned = set(out["ids"])
        events = len((await client.get_workflow_handle(workflow_id_for(out["ids"][0]))
                      .fetch_history()).events) if out["ids"] else 0
        in_sql = counter.ids(domain)
        query = f'WorkflowType="DLQEntryWorkflow" AND DlqDomain="{domain}"'
        workflows = await _settled_count(client, query, len(returned))
        return StormResult(
            label=label, n=out["enqueued"],
            enqueue=quantiles(out["latencies"], out["elapsed"]), failed=out["failed"],
            started_elapsed=started_at, rows_elapsed=rows_at, returned=len(returned),
            rows=len(in_sql),
            lost=len(returned - in_sql), extra=len(in_sql - returned), workflows=workflows,
            relay=relay, cores=cores, cpu_ms=_cpu_ms(before, after, out["enqueued"]),
            events=events, timeline=timeline)
    finally:
        stop.set()
        if counter is not None:
            counter.close()
        extra = await asyncio.to_thread(stop_relay_blocking, service)
        if extra:
            console.print(f"  [yellow]the relay ignored {extra} cancel(s) (Relay.run "
                          f"wait_for race, Python 3.11): close() alone would have hung[/]")
        await asyncio.to_thread(service.close)


def _as_async(fn: Callable[..., int], *args: Any) -> Callable[[], Any]:
    async def call() -> int:
        return fn(*args)
    return call


async def _settled_count(client: Client, query: str, expected: int) -> int:
    """``count_workflows(query)`` once it reaches ``expected`` or stops moving."""
    deadline = time.perf_counter() + VISIBILITY_TIMEOUT
    previous, stable_since = -1, time.perf_counter()
    while True:
        count = (await client.count_workflows(query)).count
        now = time.perf_counter()
        if count != previous:
            previous, stable_since = count, now
        if count >= expected and now - stable_since >= 1.0:
            return count  # wait a second more: duplicates would show up as > expected
        if now > deadline or (count < expected and now - stable_since > 15):
            return count
        await asyncio.sleep(0.5)


def _cpu(pids: dict[str, int]) -> dict[str, float | None]:
    snapshot = {proc: cpu_seconds(pid) for proc, pid in pids.items()}
    busy = machine_busy_seconds()
    ours = [v for v in snapshot.values() if v is not None]
    snapshot["other"] = None if busy is None or len(ours) < len(pids) else busy - sum(ours)
    return snapshot


def _cpu_ms(before: dict[str, float | None], after: dict[str, float | None],
            n: int) -> dict[str, float | None]:
    """CPU milliseconds per workflow of each process between two snapshots."""
    return {proc: None if before[proc] is None or after[proc] is None or not n
            else (after[proc] - before[proc]) * 1000 / n for proc in before}


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def report_bare(bare: BareResult, title: str) -> None:
    """One line for a bare baseline."""
    console.print(f"{title}: {bare.n} BareWorkflow, {BARE_CONCURRENCY} in flight: starts "
                  f"{bare.start_elapsed:.1f}s = [bold]{bare.start_rate:.1f}/s[/]; start to "
                  f"last completion {bare.complete_elapsed:.1f}s = "
                  f"[bold]{bare.complete_rate:.1f}/s[/]"
                  + (f"; [red]{bare.errors} starts failed[/]" if bare.errors else ""))
    console.print(f"  per workflow: {bare.events} history events; CPU ms "
                  + ", ".join(f"{proc} {_fmt(value)}" for proc, value in bare.cpu_ms.items()
                              if proc != "other")
                  + f"; other processes used {_fmt(bare.cpu_ms.get('other'))} ms per workflow")


def report_storm(result: StormResult) -> list[str]:
    """Print one storm's figures; returns its goal lines."""
    e = result.enqueue
    console.print(
        f"[bold]{result.label}[/]: enqueued {e.n} in {e.elapsed:.1f}s = {e.rate:,.0f}/s "
        f"(store p50 {e.p50_ms:.2f} ms, p99 {e.p99_ms:.2f} ms, max {e.max_ms:.0f} ms, "
        f"{result.failed} failed)")
    console.print(
        f"  every workflow started (outbox empty) after {_fmt(result.started_elapsed)}s; "
        f"every SQL row after {_fmt(result.rows_elapsed)}s -> drain "
        f"[bold]{result.drain_rate:.1f}/s[/]")
    console.print(
        f"  SQL rows {result.rows}, lost {result.lost}, unexpected {result.extra}; "
        f"DLQEntryWorkflow runs in the domain {result.workflows} "
        f"(duplicates {result.duplicates}); relay delivered "
        f"{result.relay['relay_delivered']}, failed deliveries {result.relay['relay_errors']}"
        + (f" (last: {result.relay['last_outbox_error']})"
           if result.relay["last_outbox_error"] else ""))
    console.print("  CPU cores used, first store to last row: " + ", ".join(
        f"{proc} {_fmt(value, '.2f')}" for proc, value in result.cores.items()))
    console.print(f"  per entry: {result.events} history events (while open); CPU ms "
                  + ", ".join(f"{proc} {_fmt(value)}" for proc, value in result.cpu_ms.items()
                              if proc != "other")
                  + f"; other processes {_fmt(result.cpu_ms.get('other'))} ms per entry")
    _print_timeline(result)
    assert result.bare is not None
    # The baseline brackets the storm: the mean of the runs before and after.
    complete = sum(b.complete_rate for b in result.bare) / 2
    start = sum(b.start_rate for b in result.bare) / 2
    ratio_done = result.drain_rate / complete if complete else 0.0
    ratio_start = result.drain_rate / start if start else 0.0
    ok = (ratio_done >= DRAIN_GOAL and result.lost == 0 and result.duplicates == 0
          and result.workflows == result.returned)
    return [f"(b) {result.label}: drain {result.drain_rate:.1f}/s = {ratio_done:.2f}x bare "
            f"start+complete {complete:.1f}/s (goal >= {DRAIN_GOAL}) [{ratio_start:.2f}x bare "
            f"start-only {start:.1f}/s; bare = mean of before/after]; lost {result.lost}, "
            f"duplicates {result.duplicates} -> {'MET' if ok else 'MISSED'}"]


def _print_timeline(result: StormResult, lines: int = 8) -> None:
    points = result.timeline
    if len(points) < 2:
        return
    step = max(1, len(points) // lines)
    picked = points[::step]
    if picked[-1] is not points[-1]:
        picked.append(points[-1])
    parts, prev = [], (0.0, 0, 0, 0)
    for t, enq, depth, rows in picked:
        rate = (rows - prev[3]) / (t - prev[0]) if t > prev[0] else 0.0
        parts.append(f"{t:5.1f}s enq {enq} started {enq - depth} rows {rows} "
                     f"({rate:.0f} rows/s)")
        prev = (t, enq, depth, rows)
    console.print("  timeline: " + "\n            ".join(parts))


async def _storm_step(stack: Stack, client: Client, args: argparse.Namespace, *, tag: str,
                      label: str, n: int, make_service: Callable[[DLQConfig], DLQService],
                      pids: dict[str, int]) -> StormResult:
    """A bare baseline, the storm, and the bare baseline again (it brackets the storm)."""
    before = await bare_baseline(client, stack, args.n_bare, args.warmup_bare, f"{tag}-before",
                                 pids)
    report_bare(before, "bare baseline before")
    result = await storm(stack, client, label=label, domain=tag, n=n, warmup=args.warmup_storm,
                         make_service=make_service, pids=pids)
    after = await bare_baseline(client, stack, args.n_bare, args.warmup_bare, f"{tag}-after",
                                pids)
    report_bare(after, "bare baseline after")
    result.bare = (before, after)
    return result


async def run_storm(args: argparse.Namespace) -> tuple[list[str], bool]:
    """Part (b) on one stack; returns the goal lines and whether anything was lost."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    begun = time.perf_counter()
    lines: list[str] = []
    bad = False
    async with running_stack(dlq_task_queue=DLQ_TASK_QUEUE,
                             bare_task_queue=BARE_TASK_QUEUE) as stack:
        console.print(f"\n[bold](b) storm[/]: stack ready in {time.perf_counter() - begun:.1f}s "
                      f"(Temporal {stack.address}, worker pid {stack.worker_pid}); load "
                      f"average {loadavg()}")
        client = await connect(stack.address)
        pids = {"server": stack.server_pid, "worker": stack.worker_pid, "producer": os.getpid()}
        steps: list[tuple[str, str, int, Callable[[DLQConfig], DLQService]]] = [
            ("storm", "storm, product defaults (relay batch 100, concurrency 32)",
             args.n_storm, DLQService)]
        for number, (batch, conc) in enumerate(args.tune):
            def make(config: DLQConfig, batch: int = batch, conc: int = conc) -> DLQService:
                return blocking_service(TunedRelayService(config, batch_size=batch,
                                                          concurrency=conc))

            steps.append((f"tune{number}", f"tuning: relay batch {batch}, concurrency {conc}",
                          args.n_tune, make))
        for tag, label, n, make_service in steps:
            console.print(f"\n[bold]{label}[/]: load average {loadavg()}")
            result = await _storm_step(stack, client, args, tag=tag, label=label, n=n,
                                       make_service=make_service, pids=pids)
            lines += report_storm(result)
            bad |= result.broken
    return lines, bad


# --- command line -----------------------------------------------------------------------


def _tune(value: str) -> list[tuple[int, int]]:
    pairs = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        batch, _, conc = part.partition(":")
        try:
            pairs.append((int(batch), int(conc)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected BATCH:CONCURRENCY, got {part!r}") from None
        if pairs[-1][0] < 1 or pairs[-1][1] < 1:
            raise argparse.ArgumentTypeError(f"batch and concurrency must be >= 1: {part!r}")
    return pairs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Async store latency vs a plain SQLite insert, and a storm's drain rate "
                    "vs bare workflow starts.")
    parser.add_argument("--n-latency", type=int, help="stores per latency series (5000)")
    parser.add_argument("--n-storm", type=int, help="async stores in the storm (20000)")
    parser.add_argument("--n-bare", type=int, help="bare workflows in the baseline (2000)")
    parser.add_argument("--tune", type=_tune, default=[],
                        help="extra storms with other relay settings, e.g. 100:64,500:64")
    parser.add_argument("--n-tune", type=int, help="stores per tuning storm (--n-storm)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds the relay-off latency series are interleaved in")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke run")
    parser.add_argument("--skip-latency", action="store_true", help="run part (b) only")
    parser.add_argument("--skip-storm", action="store_true", help="run part (a) only")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"n_latency": 500 if quick else 5000, "n_storm": 1000 if quick else 20000,
                "n_bare": 300 if quick else 2000}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.n_tune is None:
        args.n_tune = args.n_storm
    args.warmup_latency = 50 if quick else 300
    args.warmup_bare = 20 if quick else 100
    args.warmup_storm = 20 if quick else 200
    for name in ("n_latency", "n_storm", "n_bare", "n_tune", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run (a) then (b); every process and temporary file is gone on return, even on Ctrl-C."""
    args = parse_args(argv)
    # A SIGTERM during the blocking part (a) unwinds like Ctrl-C; (b) installs its own.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Failed deliveries (Temporal down in part (a)) are counted, not logged one by one.
    logging.getLogger("dlq").setLevel(logging.CRITICAL)
    console.print(f"capture benchmark: {os.cpu_count()} cores, load average {loadavg()}, "
                  f"python {sys.version.split()[0]}")
    lines: list[str] = []
    bad = False
    try:
        if not args.skip_latency:
            with tempfile.TemporaryDirectory(prefix="dlq-capture-") as tmp:
                series = run_latency(args, Path(tmp))
            lines += report_latency(series)
            bad |= any(one.failed for one in series)
        if not args.skip_storm:
            storm_lines, storm_bad = asyncio.run(run_storm(args))
            lines += storm_lines
            bad |= storm_bad
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: worker and server stopped, temporary files removed",
              file=sys.stderr)
        return 130
    console.print(f"load average at the end {loadavg()}")
    for line in lines:
        print(line)  # plain print: the summary is meant to be grepped
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
