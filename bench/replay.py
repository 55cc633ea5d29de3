"""Benchmark: bulk redrive throughput next to bare updates, and the throttle's convergence.

**Part 1: bulk_replay vs bare updates**, on one throw-away stack
(:func:`bench._replay_support.replay_stack`: a dev server, the real DLQ worker
started as ``python worker.py --handlers bench._replay_handlers``, and a bare
worker process), in one run:

1. Untimed set-up: ``--n`` entries stored with ``store_failure(...,
   recommended_action="manual_check", mode="sync")`` (64 at once) in a domain
   whose replay handler succeeds at once, and ``--n`` ``BareUpdateWorkflow``
   runs started (each waits for one update).
2. Baseline: one ``replay`` update to each bare workflow, 32 in flight (the
   bulk redrive's ``UNTHROTTLED_CONCURRENCY``); each update runs one no-op
   activity and the workflow then completes, like an entry a replay resolved.
3. DLQ: ``bulk_replay({"domain": ...}, throttle=False, rate_per_second=None,
   page_size=...)`` then ``wait_bulk_replay``; rate = replayed / (start call
   -> redrive completed). Every entry gets one ``retry`` update (the replay
   activity plus the entry's ``persist_entry`` activities).

A warm-up of both sides runs first and is not counted. Printed: both rates,
``ratio bulk_replay/bare`` and PASS/MISS against 0.7; the cores each process
(server, DLQ worker, bare worker, this client, everything else) used per
phase, the CPU they spent per replay and the **cost ratio** (bare CPU per
update / DLQ CPU per replay: the rate ratio a machine whose cores are the
limit shows, and much less sensitive than rates to other load on the
machine); and a profile of where the time goes: the redrive's activities
(freeze, pages, gaps), and the milestones of sampled updates from their
workflow histories on both sides (workflow tasks, activities, queueing).
``--page-sizes 200,1000`` repeats steps 1-3 per page size (a fresh baseline
each); the first one is the headline. ``--interleave 5`` cuts both sides
into 5 chunks run alternately (bare, DLQ, DLQ, bare, ...; each DLQ chunk a
redrive of its own), so that a busy machine hits both sides alike.

**Security on/off.** Unless ``--no-onoff``, the DLQ runs as two sides
(:mod:`bench._features`, scope ``security``; metrics and grouping keep their
defaults on both): the DLQ worker above with redaction off and no key ring
(``DLQ_REDACT_ENABLED=false``), and a second one with redaction on and
encryption (a throw-away ``DLQ_ENCRYPTION_KEYS``), each with its own task
queue and read model. After the rounds, ``--n`` entries are stored on each
side and redriven in ``--interleave`` (at least 2) alternating chunks, and
``ratio security on/off bulk_replay`` is printed (goal >= 0.9). With
``--no-onoff`` the one DLQ worker has the DLQ's default settings.

**Part 2: AdaptiveThrottle convergence** (no Temporal): ``--workers`` asyncio
tasks loop ``async with throttle.slot(): await downstream.call()`` against a
simulated downstream that saturates at ``--k`` concurrent calls, with the
throttle at its default parameters, for ``--sim-seconds`` (40) of loop time.
Two downstream models (``--model``): **shedding** (k workers; a call over k in
flight is refused after 2 ms, like a concurrency-limiting proxy) and
**queueing** (k workers and a FIFO queue: calls over k wait, latency grows
with the queue; the caller times out after 5 s). The in-flight average per
5-second window is printed; PASS if it lies within [0.7k, 1.0k] from some
window ending at or before 30 s to the end. ``--sim-clock virtual`` runs the
same code on an event loop whose clock skips idle time (default with
``--quick``).

The exit code is 1 if a replay or update failed, 2 if the stack did not
start, else 0 (a missed goal is a figure, not an error).

Usage::

    python bench/replay.py [--n 1000] [--page-sizes 200] [--interleave 1] [--k 8] [--quick]
                           [--only replay|throttle] [--model shedding|queueing|both]
                           [--sim-clock real|virtual] [--throttle NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import signal
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from dlq import AsyncDLQService, DLQConfig
from dlq._connect import connect
from dlq._temporal import workflow_id_for

if __package__ in (None, ""):
    # Run as `python bench/replay.py`: `bench` is not installed.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._features import GOAL as ONOFF_GOAL
from bench._features import Side, feature_settings, side_config
from bench._replay_handlers import BENCH_DOMAIN, WARMUP_DOMAIN
from bench._replay_support import (
    Milestones,
    QueueingDownstream,
    ReplayStack,
    SheddingDownstream,
    SimResult,
    page_profile,
    profile_histories,
    replay_stack,
    run_virtual,
    simulate_throttle,
    worker_log_tail,
)
from bench._stack import cpu_seconds, machine_busy_seconds

GOAL_RATIO = 0.7
BAND = (0.7, 1.0)
SETTLE_BY = 30.0
# The concurrency of an unthrottled page (activities/bulk.py UNTHROTTLED_CONCURRENCY).
REPLAY_CONCURRENCY = 32
SETUP_CONCURRENCY = 64
BUSY_MACHINE = 0.2

console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)


# ---------------------------------------------------------------------- part 1


@dataclass
class Phase:
    """One timed phase of part 1."""

    name: str
    ok: int
    elapsed: float
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cores: dict[str, float | None] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Successful replays (updates) per second of wall time."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def cpu_per_op(self) -> float | None:
        """CPU seconds the benchmark's own processes spent per successful operation."""
        ours = [v for k, v in self.cores.items() if k != "other"]
        if not self.ok or any(v is None for v in ours):
            return None
        return sum(ours) * self.elapsed / self.ok  # type: ignore[arg-type]


@dataclass
class Round:
    """A baseline and a redrive at one page size."""

    page_size: int
    bare: Phase
    dlq: Phase
    bulk_workflow_ids: list[str]
    dlq_ids: list[str]
    bare_ids: list[str]

    @property
    def ratio(self) -> float:
        """DLQ rate over bare rate."""
        return self.dlq.rate / self.bare.rate if self.bare.rate else 0.0

    @property
    def cost_ratio(self) -> float | None:
        """Bare CPU per operation over DLQ CPU per replay (the ratio a CPU-bound box gives)."""
        bare, dlq = self.bare.cpu_per_op, self.dlq.cpu_per_op
        return None if bare is None or not dlq else bare / dlq


class CpuMeter:
    """Cores each benchmark process (and everything else) used during a phase."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def snapshot(self) -> dict[str, float | None]:
        """CPU seconds so far per process, plus ``other``."""
        snap = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        busy = machine_busy_seconds()
        ours = [v for v in snap.values() if v is not None]
        snap["other"] = None if busy is None or len(ours) < len(snap) else busy - sum(ours)
        return snap

    @staticmethod
    def cores(before: dict[str, float | None], after: dict[str, float | None],
              elapsed: float) -> dict[str, float | None]:
        """Average cores per process between two snapshots."""
        return {k: None if before[k] is None or after[k] is None
                else (after[k] - before[k]) / elapsed for k in before}


async def gather_limited(coros: list[Any], limit: int) -> list[Any]:
    """Await ``coros`` at most ``limit`` at once; exceptions are returned, not raised."""
    sem = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with sem:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


async def store_entries(service: AsyncDLQService, domain: str, n: int,
                        serial: itertools.count, failure_type: str = "BENCH_TIMEOUT") -> list[str]:
    """Store ``n`` manual-check entries in ``domain`` (untimed); their ids."""
    async def one() -> str:
        i = next(serial)
        result = await service.store_failure(
            domain=domain, failure_type=failure_type, entity_type="order",
            entity_id=f"order-{i}", error_code="504", error_message="gateway timeout",
            snapshot_data={"amount": 1250, "currency": "EUR", "attempt": 3},
            recommended_action="manual_check", mode="sync")
        if not result.success or not result.dlq_id:
            raise RuntimeError(f"store failed: {result.error}")
        return result.dlq_id

    results = await gather_limited([one() for _ in range(n)], SETUP_CONCURRENCY)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise RuntimeError(f"{len(failed)}/{n} stores failed, first: {failed[0]}")
    return list(results)


async def start_bare(client: Client, stack: ReplayStack, prefix: str, n: int) -> list[str]:
    """Start ``n`` ``BareUpdateWorkflow`` runs that wait for their update (untimed)."""
    ids = [f"{prefix}-{i}" for i in range(n)]
    results = await gather_limited(
        [client.start_workflow("BareUpdateWorkflow", id=wid, task_queue=stack.bare_task_queue,
                               id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
         for wid in ids], SETUP_CONCURRENCY)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        raise RuntimeError(f"{len(failed)}/{n} bare starts failed, first: {failed[0]!r}")
    await wait_first_task(client, ids)
    return ids


async def wait_first_task(client: Client, ids: list[str], timeout: float = 300.0) -> None:
    """Wait until every workflow in ``ids`` completed its first workflow task.

    Stored entries have (a sync store waits for their SQL row); without this
    the baseline would also pay for the bare worker's backlog of first tasks.
    """
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending:
        lengths = await gather_limited(
            [client.get_workflow_handle(wid).describe() for wid in pending], SETUP_CONCURRENCY)
        # Started, task scheduled, started, completed: 4 events at least.
        pending = [wid for wid, d in zip(pending, lengths, strict=True)
                   if isinstance(d, BaseException) or d.history_length < 4]
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} bare workflows did not run their first "
                               f"workflow task within {timeout:g}s")
        if pending:
            await asyncio.sleep(0.2)


async def bare_phase(client: Client, ids: list[str], meter: CpuMeter, name: str) -> Phase:
    """One ``replay`` update per bare workflow, ``REPLAY_CONCURRENCY`` in flight."""
    latencies: list[float] = []

    async def one(wid: str) -> None:
        start = time.perf_counter()
        await client.get_workflow_handle(wid).execute_update(
            "replay", id=f"replay-{wid}", result_type=bool)
        latencies.append(time.perf_counter() - start)

    before = meter.snapshot()
    start = time.perf_counter()
    results = await gather_limited([one(wid) for wid in ids], REPLAY_CONCURRENCY)
    elapsed = time.perf_counter() - start
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return Phase(name=name, ok=len(ids) - len(errors), elapsed=elapsed, errors=errors,
                 latencies=latencies,
                 cores=meter.cores(before, meter.snapshot(), elapsed))


async def dlq_phase(service: AsyncDLQService, filters: dict[str, str], page_size: int,
                    meter: CpuMeter, name: str) -> tuple[Phase, str]:
    """``bulk_replay`` of every pending entry matching ``filters``, unthrottled, until it ends."""
    before = meter.snapshot()
    start = time.perf_counter()
    started = await service.bulk_replay(filters, throttle=False,
                                        rate_per_second=None, actor_id="bench", reason="bench",
                                        page_size=page_size)
    progress = await service.wait_bulk_replay(started["workflow_id"])
    elapsed = time.perf_counter() - start
    errors = []
    if progress.status != "completed":
        errors.append(f"redrive ended {progress.status}: {progress.early_stop_reason}")
    if progress.failed or progress.skipped:
        errors.append(f"{progress.failed} failed, {progress.skipped} skipped of "
                      f"{progress.total}")
    if progress.total != started["total"]:
        errors.append(f"froze {progress.total} entries, preview said {started['total']}")
    return Phase(name=name, ok=progress.succeeded, elapsed=elapsed, errors=errors,
                 cores=meter.cores(before, meter.snapshot(), elapsed)), started["workflow_id"]


def combine(name: str, parts: list[Phase]) -> Phase:
    """One phase out of its interleaved chunks (times summed, cores time-weighted)."""
    elapsed = sum(p.elapsed for p in parts)
    cores: dict[str, float | None] = {}
    for key in parts[0].cores:
        values = [p.cores[key] for p in parts]
        cores[key] = (None if any(v is None for v in values) or not elapsed
                      else sum(v * p.elapsed for v, p in zip(values, parts, strict=True))
                      / elapsed)
    return Phase(name=name, ok=sum(p.ok for p in parts), elapsed=elapsed,
                 errors=[e for p in parts for e in p.errors],
                 latencies=[x for p in parts for x in p.latencies], cores=cores)


def _split(items: list[str], parts: int) -> list[list[str]]:
    size, extra = divmod(len(items), parts)
    out, at = [], 0
    for i in range(parts):
        step = size + (1 if i < extra else 0)
        out.append(items[at:at + step])
        at += step
    return out


async def run_round(stack: ReplayStack, client: Client, service: AsyncDLQService,
                    meter: CpuMeter, page_size: int, n: int, tag: str,
                    serial: itertools.count, interleave: int) -> Round:
    """Set up ``n`` of each side untimed, then time the baseline and the redrive.

    With ``interleave`` > 1 both sides are cut into that many chunks, run
    alternately (bare, DLQ, DLQ, bare, ...) so that load from elsewhere on the
    machine hits both alike; each DLQ chunk is a redrive of its own.
    """
    t = time.perf_counter()
    failure_types = [f"BENCH_{tag}_{i}" for i in range(interleave)]
    sizes = [len(c) for c in _split([""] * n, interleave)]
    dlq_ids: list[str] = []
    for ftype, size in zip(failure_types, sizes, strict=True):
        dlq_ids += await store_entries(service, BENCH_DOMAIN, size, serial, ftype)
    bare_ids = await start_bare(client, stack, f"bare-{tag}", n)
    console.print(f"[dim]round {tag}: stored {n} entries and started {n} bare workflows "
                  f"in {time.perf_counter() - t:.1f}s (untimed)[/]")
    bare_parts: list[Phase] = []
    dlq_parts: list[Phase] = []
    wids: list[str] = []

    async def run_bare(chunk: list[str]) -> None:
        bare_parts.append(await bare_phase(client, chunk, meter, "bare updates"))

    async def run_dlq(ftype: str) -> None:
        phase, wid = await dlq_phase(service, {"domain": BENCH_DOMAIN, "failure_type": ftype},
                                     page_size, meter, f"bulk_replay p{page_size}")
        dlq_parts.append(phase)
        wids.append(wid)

    for i, (chunk, ftype) in enumerate(zip(_split(bare_ids, interleave), failure_types,
                                           strict=True)):
        if i % 2 == 0:
            await run_bare(chunk)
            await run_dlq(ftype)
        else:
            await run_dlq(ftype)
            await run_bare(chunk)
    bare = combine("bare updates", bare_parts)
    dlq = combine(f"bulk_replay p{page_size}", dlq_parts)
    console.print(f"  bare updates: {bare.ok} in {bare.elapsed:.2f}s = {bare.rate:.1f}/s")
    console.print(f"  bulk_replay (page_size={page_size}): {dlq.ok} in {dlq.elapsed:.2f}s "
                  f"= {dlq.rate:.1f}/s")
    return Round(page_size=page_size, bare=bare, dlq=dlq, bulk_workflow_ids=wids,
                 dlq_ids=dlq_ids, bare_ids=bare_ids)


async def warm_up(stack: ReplayStack, client: Client, service: AsyncDLQService,
                  meter: CpuMeter, n: int, page_size: int, serial: itertools.count) -> None:
    """Both sides once, small and uncounted (connections, caches, sandbox imports)."""
    if n <= 0:
        return
    await store_entries(service, WARMUP_DOMAIN, n, serial)
    ids = await start_bare(client, stack, "bare-warmup", n)
    bare = await bare_phase(client, ids, meter, "warm-up")
    dlq, _ = await dlq_phase(service, {"domain": WARMUP_DOMAIN}, page_size, meter, "warm-up")
    for phase in (bare, dlq):
        if phase.errors:
            raise RuntimeError(f"warm-up failed: {phase.errors[0]}\n"
                               f"DLQ worker log tail:\n{worker_log_tail(stack)}")
    console.print(f"[dim]warm-up: {n} bare updates, {n} replays (not counted)[/]")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ranked = sorted(values)
    return ranked[min(len(ranked) - 1, max(0, round(q * len(ranked)) - 1))]


def _ms(value: float) -> str:
    return "-" if value != value else f"{value * 1000:.0f}"  # NaN check


def milestone_rows(samples: list[Milestones]) -> list[tuple[str, str, str]]:
    """(label, median ms, p95 ms) rows describing sampled updates."""
    rows = [("update received -> accepted", _ms(statistics.median(m.accepted for m in samples)),
             _ms(_pct([m.accepted for m in samples], 0.95)))]
    by_name: dict[str, list[tuple[float, float, float]]] = {}
    for m in samples:
        seen: Counter[str] = Counter()
        for name, s, st, c in m.activities:
            seen[name] += 1
            by_name.setdefault(f"{name} #{seen[name]}", []).append((s, st, c))
    for label, spans in sorted(by_name.items(), key=lambda kv: statistics.median(
            s for s, _, _ in kv[1])):
        if len(spans) < len(samples) / 2:
            continue
        rows.append((f"{label} scheduled at", _ms(statistics.median(s for s, _, _ in spans)),
                     _ms(_pct([s for s, _, _ in spans], 0.95))))
        rows.append((f"{label} queued (sched -> start)",
                     _ms(statistics.median(st - s for s, st, _ in spans)),
                     _ms(_pct([st - s for s, st, _ in spans], 0.95))))
        rows.append((f"{label} ran (start -> done)",
                     _ms(statistics.median(c - st for _, st, c in spans)),
                     _ms(_pct([c - st for _, st, c in spans], 0.95))))
    rows.append(("update completed (total span)",
                 _ms(statistics.median(m.update_span for m in samples)),
                 _ms(_pct([m.update_span for m in samples], 0.95))))
    return rows


async def profile(stack: ReplayStack, client: Client, rnd: Round, sample: int) -> None:
    """Print where the time went in one round."""
    table = Table(title="bulk redrive(s): their activities in order")
    for col in ("redrive", "activity", "gap before (ms)", "queued (ms)", "ran (ms)", "entries",
                "replays/s in page"):
        table.add_column(col, justify="left" if col in ("redrive", "activity") else "right")
    overhead = 0.0
    for wid in rnd.bulk_workflow_ids:
        pages = await page_profile(client, wid)
        for row in pages:
            page = row["activity"] == "replay_bulk_page"
            processed = row.get("processed")
            per_s = f"{processed / row['run']:.1f}" if page and processed and row["run"] else "-"
            table.add_row(wid[-8:], row["activity"], f"{row['gap'] * 1000:.0f}",
                          f"{row['queued'] * 1000:.0f}", f"{row['run'] * 1000:.0f}",
                          "-" if processed is None else str(processed), per_s)
            overhead += row["gap"] + row["queued"] + (0.0 if page else row["run"])
    console.print(table)
    console.print(f"Redrive time outside replay pages (freeze, gaps between pages, "
                  f"completion): {overhead:.2f}s of {rnd.dlq.elapsed:.2f}s; the client's "
                  f"start and result round trips are the rest.")

    step = max(1, len(rnd.dlq_ids) // sample)
    dlq_samples = await profile_histories(
        client, [workflow_id_for(i) for i in rnd.dlq_ids[::step]][:sample], "retry")
    bare_samples = await profile_histories(client, rnd.bare_ids[::step][:sample], "replay")
    for title, samples, phase in (("bare update (BareUpdateWorkflow)", bare_samples, rnd.bare),
                                  ("DLQ retry update (DLQEntryWorkflow)", dlq_samples, rnd.dlq)):
        if not samples:
            console.print(f"[red]{title}: no update found in the sampled histories[/]")
            continue
        table = Table(title=f"{title}: milestones after the update reached the server, "
                            f"{len(samples)} sampled histories")
        table.add_column("milestone")
        table.add_column("median ms", justify="right")
        table.add_column("p95 ms", justify="right")
        for row in milestone_rows(samples):
            table.add_row(*row)
        console.print(table)
        mean_span = statistics.fmean(m.update_span for m in samples)
        console.print(
            f"  per update: {statistics.median(m.workflow_tasks for m in samples):.0f} workflow "
            f"tasks until it completed, {statistics.median(len(m.activities) for m in samples):.0f}"
            f" activities, {statistics.median(m.events for m in samples):.0f} history events "
            f"in the whole run; mean span {mean_span * 1000:.0f} ms -> updates in flight at the "
            f"server on average (rate x span, Little's law): {phase.rate * mean_span:.1f} "
            f"of {REPLAY_CONCURRENCY}")
    if bare_samples and rnd.bare.latencies:
        console.print(f"  bare client-side update latency: p50 "
                      f"{_ms(statistics.median(rnd.bare.latencies))} ms, p95 "
                      f"{_ms(_pct(rnd.bare.latencies, 0.95))} ms")


def _fmt_cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report_part1(rounds: list[Round], n: int, interleave: int) -> None:
    """The rounds table and the headline ratio."""
    procs = list(rounds[0].bare.cores)
    chunks = (f", each side in {interleave} alternating chunks (one redrive per chunk)"
              if interleave > 1 else "")
    table = Table(title=f"Part 1: bulk_replay vs bare updates, n={n} each, "
                        f"{REPLAY_CONCURRENCY} in flight{chunks}")
    for col in ("phase", "ok", "failed", "wall s", "rate /s", "ratio",
                *(f"CPU {p}" for p in procs), "CPU ms/op", "cost ratio"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for rnd in rounds:
        cost = "-" if rnd.cost_ratio is None else f"{rnd.cost_ratio:.2f}"
        for phase, ratio, cost_ratio in ((rnd.bare, "", ""), (rnd.dlq, f"{rnd.ratio:.2f}", cost)):
            per_op = phase.cpu_per_op
            table.add_row(phase.name, str(phase.ok), str(len(phase.errors)),
                          f"{phase.elapsed:.2f}", f"{phase.rate:.1f}", ratio,
                          *(_fmt_cores(phase.cores[p]) for p in procs),
                          "-" if per_op is None else f"{per_op * 1000:.0f}", cost_ratio)
    console.print(table)
    console.print(f"CPU columns: cores used on average during the phase, out of "
                  f"{os.cpu_count()}; 'other' is every other process on the machine. "
                  f"CPU ms/op: CPU of the server, both workers and this client per "
                  f"replay (update); cost ratio = bare ms/op / DLQ ms/op, the rate ratio a "
                  f"machine whose cores are the limit would show, and robust to other load.")
    for rnd in rounds:
        for phase in (rnd.bare, rnd.dlq):
            other = phase.cores.get("other")
            if other is not None and other > BUSY_MACHINE:
                console.print(f"[yellow]{phase.name} (page size {rnd.page_size}): other "
                              f"processes used {other:.2f} cores meanwhile; its rate is "
                              f"disturbed: compare the cost ratio, or run again on a quiet "
                              f"machine or with --interleave 5[/]")
            for error, count in Counter(phase.errors).most_common(5):
                console.print(f"[red]{phase.name}: {count} x {error}[/]")
    best = max(rounds, key=lambda r: r.ratio)
    if len(rounds) > 1:
        console.print(f"Fastest page size: {best.page_size} (ratio {best.ratio:.2f}).")
    head = rounds[0]
    print(f"bare updates:  {head.bare.rate:.1f}/s ({head.bare.ok} in {head.bare.elapsed:.2f}s)")
    print(f"bulk_replay:   {head.dlq.rate:.1f}/s ({head.dlq.ok} in {head.dlq.elapsed:.2f}s, "
          f"page_size={head.page_size})")
    verdict = "PASS" if head.ratio >= GOAL_RATIO else "MISS"
    print(f"ratio bulk_replay/bare = {head.ratio:.2f} (goal >= {GOAL_RATIO}): {verdict}")
    if head.cost_ratio is not None:
        print(f"CPU per replay: bare {head.bare.cpu_per_op * 1000:.0f} ms, "  # type: ignore[operator]
              f"bulk_replay {head.dlq.cpu_per_op * 1000:.0f} ms; "  # type: ignore[operator]
              f"cost ratio {head.cost_ratio:.2f}")


def security_sides() -> tuple[Side, Side]:
    """Security off (the main DLQ worker) and on (a second one), as bench/store.py's sides."""
    scope = ("security",)
    return (Side("off", "dlq-replay-bench", feature_settings((), scope=scope)),
            Side("on", "dlq-replay-bench-on", feature_settings(scope, scope=scope)))


async def onoff_compare(stack: ReplayStack, off_service: AsyncDLQService, meter: CpuMeter,
                        page_size: int, n: int, warmup: int, chunks: int,
                        serial: itertools.count) -> tuple[Phase, Phase]:
    """The same redrive of ``n`` entries with security off and on, in alternating chunks.

    Both sides store untimed first, then redrive ``chunks`` chunks each,
    off, on, on, off, ..., each chunk a redrive of its own (its own
    ``failure_type``), so that load from other processes hits both alike.
    """
    on_side = stack.sides[1]
    service = AsyncDLQService(side_config(DLQConfig(
        temporal_address=stack.address, task_queue=on_side.task_queue,
        database_url=on_side.database_url, store_timeout=60, temporal_envconfig=False,
        outbox_path=str(stack.tmpdir / "client-outbox-on.db")), on_side.settings))
    services = {"off": off_service, "on": service}
    parts: dict[str, list[Phase]] = {"off": [], "on": []}
    try:
        if warmup > 0:  # the second worker's caches and sandbox imports
            await store_entries(service, WARMUP_DOMAIN, warmup, serial)
            await dlq_phase(service, {"domain": WARMUP_DOMAIN}, page_size, meter, "warm-up")
        sizes = [n // chunks + (1 if i < n % chunks else 0) for i in range(chunks)]
        for i, size in enumerate(sizes):
            for name in ("off", "on"):
                await store_entries(services[name], BENCH_DOMAIN, size, serial,
                                    f"BENCH_ONOFF_{i}")
        for i in range(chunks):
            for name in ("off", "on") if i % 2 == 0 else ("on", "off"):
                filters = {"domain": BENCH_DOMAIN, "failure_type": f"BENCH_ONOFF_{i}"}
                phase, _ = await dlq_phase(services[name], filters, page_size, meter,
                                           f"bulk_replay security {name}")
                parts[name].append(phase)
    finally:
        await service.close()
    off = combine("bulk_replay security off", parts["off"])
    on = combine("bulk_replay security on", parts["on"])
    console.print(f"  security on/off (page_size={page_size}, {chunks} chunks): off "
                  f"{off.rate:.1f}/s, on {on.rate:.1f}/s")
    return off, on


async def part1(args: argparse.Namespace) -> int:
    """Run part 1 on its own stack; the exit code."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    logging.getLogger("dlq").setLevel(logging.ERROR)
    started = time.perf_counter()
    compared: tuple[Phase, Phase] | None = None
    async with replay_stack(sides=() if args.no_onoff else security_sides()) as stack:
        console.print(f"stack ready in {time.perf_counter() - started:.1f}s: Temporal "
                      f"{stack.address}, DLQ worker (worker.py) pid {stack.pids['dlq worker']}, "
                      f"bare worker pid {stack.pids['bare worker']}")
        client = await connect(stack.address)
        service = AsyncDLQService(side_config(
            DLQConfig(temporal_address=stack.address, task_queue=stack.dlq_task_queue,
                      database_url=stack.database_url, store_timeout=60,
                      outbox_path=str(stack.tmpdir / "client-outbox.db")),
            stack.sides[0].settings), client=client)
        meter = CpuMeter({**stack.pids, "client": os.getpid()})
        serial = itertools.count(1)
        try:
            await warm_up(stack, client, service, meter, args.warmup, args.page_sizes[0],
                          serial)
            rounds = []
            for i, page_size in enumerate(args.page_sizes):
                rounds.append(await run_round(stack, client, service, meter, page_size,
                                              args.n, f"r{i}", serial, args.interleave))
            if len(stack.sides) > 1:
                compared = await onoff_compare(stack, service, meter, args.page_sizes[0],
                                               args.n, args.warmup,
                                               min(args.n, max(2, args.interleave)), serial)
            console.print()
            console.rule("Part 1 profile (first round)")
            await profile(stack, client, rounds[0], args.profile_sample)
        finally:
            await service.close()
    console.print()
    report_part1(rounds, args.n, args.interleave)
    if compared is not None:
        off, on = compared
        for phase in compared:
            for error, count in Counter(phase.errors).most_common(5):
                console.print(f"[red]{phase.name}: {count} x {error}[/]")
        # CPU per replay is steadier than rates when other processes take cores unevenly.
        cpu = {p.name: p.cpu_per_op for p in compared}
        if all(cpu.values()):
            console.print("CPU per replay: " + ", ".join(
                f"{name} {value * 1000:.0f} ms" for name, value in cpu.items()  # type: ignore[operator]
            ) + "; other processes " + ", ".join(
                f"{p.cores.get('other') or 0.0:.2f}" for p in compared) + " cores")
        ratio = on.rate / off.rate if off.rate else 0.0
        verdict = "PASS" if ratio >= ONOFF_GOAL else "MISS"
        print(f"ratio security on/off bulk_replay = {ratio:.2f} (goal >= {ONOFF_GOAL}; "
              f"on {on.rate:.1f}/s vs off {off.rate:.1f}/s; on = encryption + redaction): "
              f"{verdict}")
    return 1 if any(r.bare.errors or r.dlq.errors for r in rounds) or (
        compared is not None and any(p.errors for p in compared)) else 0


# ---------------------------------------------------------------------- part 2


def parse_throttle_overrides(items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs for :class:`AdaptiveThrottle` (numbers, or ``none``)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--throttle wants NAME=VALUE, got {item!r}")
        out[name.strip()] = None if value.strip().lower() == "none" else float(value)
    return out


def report_sim(result: SimResult, model: str, clock: str, cpu: float, wall: float,
               overrides: dict[str, Any]) -> bool:
    """Print one simulation's windows and verdict; True on PASS."""
    k = result.k
    params = ", ".join(f"{k_}={v}" for k_, v in overrides.items()) or "default parameters"
    table = Table(title=f"Part 2, {model} downstream: AdaptiveThrottle ({params}) vs "
                        f"{result.downstream}; {clock} clock")
    for col in ("window s", "in-flight avg", "x k", "serving avg", "limit avg", "ok/s",
                "failed", "health", "in band"):
        table.add_column(col, justify="right")
    low, high = BAND[0] * k, BAND[1] * k
    for w in result.windows:
        inside = low <= w.in_flight <= high
        table.add_row(f"{w.start:.0f}-{w.end:.0f}", f"{w.in_flight:.2f}",
                      f"{w.in_flight / k:.2f}", f"{w.serving:.2f}", f"{w.limit:.2f}",
                      f"{w.ok_per_s:.1f}", str(w.failed), w.health,
                      "yes" if inside else "[red]no[/]")
    console.print(table)
    stats = result.stats
    console.print(f"  end: limit {stats['limit']}, health {stats['health']}, succeeded "
                  f"{stats['succeeded']}, failed {stats['failed']}, p50 latency "
                  f"{_ms(stats['p50_latency'] or float('nan'))} ms; simulation used "
                  f"{cpu:.1f} CPU s in {wall:.1f} s wall")
    ok = result.passed(SETTLE_BY)
    settled = "never" if result.settled_at is None else f"from {result.settled_at:.0f}s on"
    print(f"throttle, {model} downstream, k={k}: in-flight average within [{low:.1f}, {high:.1f}] "
          f"{settled} (goal: by {SETTLE_BY:.0f}s): {'PASS' if ok else 'MISS'}")
    return ok


def part2(args: argparse.Namespace) -> None:
    """Run the throttle simulation(s) and print the verdicts."""
    overrides = parse_throttle_overrides(args.throttle)
    models = ["shedding", "queueing"] if args.model == "both" else [args.model]
    for model in models:
        async def run(model: str = model) -> SimResult:
            downstream = (SheddingDownstream(args.k) if model == "shedding"
                          else QueueingDownstream(args.k))
            return await simulate_throttle(downstream, seconds=args.sim_seconds,
                                           workers=args.workers, band=BAND,
                                           throttle_kwargs=overrides)

        wall, cpu = time.perf_counter(), time.process_time()
        result = run_virtual(run()) if args.sim_clock == "virtual" else asyncio.run(run())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        report_sim(result, model, args.sim_clock, cpu, wall, overrides)
        if args.sim_clock == "real" and cpu > 0.5 * wall:
            console.print(f"[yellow]  the simulation kept a core {cpu / wall:.0%} busy; on a "
                          f"loaded machine its timers run late (compare --sim-clock virtual)[/]")


# ------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None,
                        help="entries replayed and bare updates per round (default 1000, "
                             "200 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="n=200, small warm-up and profile, virtual-clock simulation")
    parser.add_argument("--k", type=int, default=8,
                        help="concurrency at which the simulated downstream saturates")
    parser.add_argument("--page-sizes", default="200",
                        help="comma-separated bulk_replay page sizes, one round each; the "
                             "first is the headline (default 200)")
    parser.add_argument("--interleave", type=int, default=1,
                        help="cut each side into this many alternating chunks (bare, DLQ, DLQ, "
                             "bare...), each DLQ chunk a redrive of its own; evens out load "
                             "from other processes (default 1: one redrive of --n)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="uncounted replays and updates first (default 32, 16 quick)")
    parser.add_argument("--profile-sample", type=int, default=None,
                        help="histories sampled per side for the profile (default 200)")
    parser.add_argument("--no-onoff", action="store_true",
                        help="skip the security on/off comparison (one DLQ worker, defaults)")
    parser.add_argument("--only", choices=("replay", "throttle"), default=None,
                        help="run only part 1 (replay) or part 2 (throttle)")
    parser.add_argument("--model", choices=("shedding", "queueing", "both"), default="both",
                        help="downstream model(s) of part 2")
    parser.add_argument("--sim-clock", choices=("real", "virtual"), default=None,
                        help="part 2 in real time (default) or on a virtual clock (--quick)")
    parser.add_argument("--sim-seconds", type=float, default=40.0,
                        help="length of each simulation (loop seconds)")
    parser.add_argument("--workers", type=int, default=32,
                        help="asyncio tasks competing for throttle permits in part 2")
    parser.add_argument("--throttle", action="append", default=[], metavar="NAME=VALUE",
                        help="override an AdaptiveThrottle parameter in part 2 (repeatable)")
    args = parser.parse_args(argv)
    args.n = args.n if args.n is not None else (200 if args.quick else 1000)
    args.warmup = args.warmup if args.warmup is not None else (16 if args.quick else 32)
    args.profile_sample = args.profile_sample or (50 if args.quick else 200)
    args.sim_clock = args.sim_clock or ("virtual" if args.quick else "real")
    try:
        args.page_sizes = [int(p) for p in args.page_sizes.split(",") if p.strip()]
        parse_throttle_overrides(args.throttle)
    except ValueError as err:
        parser.error(str(err))
    if not args.page_sizes or not all(1 <= p <= 1000 for p in args.page_sizes):
        parser.error("--page-sizes must be within 1..1000")
    for name in ("n", "k", "workers", "profile_sample", "interleave"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.interleave > args.n:
        parser.error("--interleave must not exceed --n")
    if args.warmup < 0 or args.sim_seconds <= 0:
        parser.error("--warmup must be >= 0 and --sim-seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point; every process started is stopped, even on Ctrl-C."""
    args = parse_args(argv)
    code = 0
    try:
        if args.only != "throttle":
            code = asyncio.run(part1(args))
        if args.only != "replay":
            console.print()
            console.rule("Part 2: AdaptiveThrottle convergence (no Temporal)")
            part2(args)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: workers and server stopped, temporary files removed",
              file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
