"""Helpers of ``bench/replay.py``: its stack, the bare worker, history profiles, a throttle sim.

* :func:`replay_stack`: a Temporal dev server (from :mod:`bench._stack`), the
  **real DLQ worker** started as in production, ``python worker.py --handlers
  bench._replay_handlers`` with ``DLQ_*`` variables, and a separate **bare
  worker** process (this module run as ``python -m bench._replay_support``)
  serving :class:`bench._replay_handlers.BareUpdateWorkflow`. Two worker
  processes, so each side has a Python process (and GIL) of its own, as the
  DLQ side's update calls come from inside its worker. Everything is stopped
  and the temporary folder removed on exit, on errors and on Ctrl-C.
* :func:`profile_histories`: milestones of sampled workflow histories (update
  received, activities, update completed), to show where an update's time goes.
* The part-2 simulation: :class:`SheddingDownstream`, :class:`QueueingDownstream`,
  :func:`simulate_throttle`, and :class:`VirtualTimeLoop` for a faithful
  faster-than-real-time run of the unchanged throttle code.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import heapq
import json
import logging
import random
import signal
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from dlq._connect import connect
from dlq._throttle import AdaptiveThrottle

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._features import Side
from bench._stack import ROOT, bench_env, start_dev_server, stopped_on_exit
from dlq._procs import ManagedProcess, WorkerProcess, tail_file

__all__ = [
    "Milestones",
    "QueueingDownstream",
    "ReplayStack",
    "SheddingDownstream",
    "SimResult",
    "VirtualTimeLoop",
    "profile_histories",
    "replay_stack",
    "simulate_throttle",
]

# --------------------------------------------------------------------------- stack


@dataclass(frozen=True)
class ReplayStack:
    """A running stack for the replay benchmark.

    Attributes:
        address: ``host:port`` of the Temporal frontend.
        database_url: SQLAlchemy URL of the first side's SQLite read model.
        dlq_task_queue: Task queue of the first side's DLQ worker (``worker.py``).
        bare_task_queue: Task queue of the bare worker.
        pids: Process id of ``server``, ``dlq worker`` (the first side's),
            ``bare worker`` and ``dlq worker NAME`` for each further side.
        tmpdir: Folder of databases and logs (removed on exit).
        sides: The DLQ workers' sides (:class:`bench._features.Side`), read
            models filled in; the first is the one the bare worker is compared with.
    """

    address: str
    database_url: str
    dlq_task_queue: str
    bare_task_queue: str
    pids: dict[str, int]
    tmpdir: Path
    sides: tuple[Side, ...]


@asynccontextmanager
async def replay_stack(*, dlq_task_queue: str = "dlq-replay-bench",
                       bare_task_queue: str = "bare-replay-bench",
                       startup_timeout: float = 90.0,
                       sides: tuple[Side, ...] = ()) -> AsyncIterator[ReplayStack]:
    """Start the server, the real DLQ worker(s) and the bare worker; stop all on exit.

    Each of ``sides`` (:mod:`bench._features`; by default one with the DLQ's
    default settings on ``dlq_task_queue``) gets a ``worker.py`` process with
    its ``DLQ_*`` settings, on its task queue and a read model of its own.

    Raises:
        RuntimeError: A process exited or was not ready in time (with its log tail).
    """
    with tempfile.TemporaryDirectory(prefix="dlq-replay-bench-") as tmp_name, \
            ExitStack() as procs:
        tmp = Path(tmp_name)
        server = await start_dev_server(tmp, procs, startup_timeout)
        address = server.address

        ready = tuple(dataclasses.replace(side, database_url=f"sqlite:///{tmp}/dlq-{side.name}.db")
                      for side in sides or (Side("default", dlq_task_queue, {}),))
        env = bench_env()
        workers = []
        for i, side in enumerate(ready):
            suffix = "" if i == 0 else f"-{side.name}"
            workers.append(stopped_on_exit(WorkerProcess(
                address=address, task_queue=side.task_queue, handlers=["bench._replay_handlers"],
                name=f"DLQ worker{suffix} (worker.py)", log_path=tmp / f"dlq-worker{suffix}.log",
                cwd=ROOT, env={
                    **env, **side.settings,
                    "DLQ_DATABASE_URL": side.database_url,
                    "DLQ_MAINTENANCE_ENABLED": "false",
                    # The worker's relay drains this outbox; keep it out of the repository.
                    "DLQ_OUTBOX_PATH": str(tmp / f"outbox{suffix}.db"),
                }), procs))
        bare_worker = stopped_on_exit(ManagedProcess(
            "bare worker", [sys.executable, "-m", "bench._replay_support", "--address",
                            address, "--task-queue", bare_task_queue],
            log_path=tmp / "bare-worker.log", cwd=ROOT, env=env), procs)
        for worker in workers:
            await worker.wait_ready(startup_timeout)
        await bare_worker.wait_polling(address, bare_task_queue, timeout=startup_timeout)
        pids = {"server": server.pid, "dlq worker": workers[0].pid,
                "bare worker": bare_worker.pid}
        pids.update({f"dlq worker {side.name}": worker.pid
                     for side, worker in zip(ready[1:], workers[1:], strict=True)})
        yield ReplayStack(address=address, database_url=ready[0].database_url,
                          dlq_task_queue=ready[0].task_queue, bare_task_queue=bare_task_queue,
                          pids=pids, tmpdir=tmp, sides=ready)
        # A worker that died mid-run would make the figures meaningless.
        for worker in (*workers, bare_worker):
            worker.check_alive()


def worker_log_tail(stack: ReplayStack, lines: int = 20) -> str:
    """The last lines of the DLQ worker's log (for error reports)."""
    return tail_file(stack.tmpdir / "dlq-worker.log", lines)


# --------------------------------------------------------------------- bare worker


async def serve_bare(address: str, task_queue: str) -> None:
    """Run the bare worker until SIGINT or SIGTERM.

    Same client (pydantic converter) and activity slots (64) as the DLQ worker
    built by ``dlq._worker.build_worker``; everything else at SDK defaults there too.
    """
    from temporalio.worker import Worker

    from bench._replay_handlers import BareUpdateWorkflow, bare_noop

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = await connect(address)
    worker = Worker(client, task_queue=task_queue, workflows=[BareUpdateWorkflow],
                    activities=[bare_noop], max_concurrent_activities=64)
    async with worker:
        await stop.wait()


# ------------------------------------------------------------------ history profile


@dataclass
class Milestones:
    """Where one update's time went, from its workflow's history.

    Times are seconds after the workflow task that delivered the update was
    scheduled (the update's arrival at the server).

    Attributes:
        update_span: Arrival to ``WorkflowExecutionUpdateCompleted``.
        accepted: Arrival to ``WorkflowExecutionUpdateAccepted``.
        activities: Per activity: (type, scheduled, started, completed).
        workflow_tasks: Workflow tasks completed from arrival to update completion.
        events: Events in the whole history.
        arrival: Wall-clock time of the arrival.
    """

    update_span: float
    accepted: float
    activities: list[tuple[str, float, float, float]] = field(default_factory=list)
    workflow_tasks: int = 0
    events: int = 0
    arrival: datetime | None = None


def _milestones(events: Sequence[Any], update_name: str) -> Milestones | None:
    """Milestones of the ``update_name`` update in a history, or None if it has none."""
    def at(ev: Any) -> datetime:
        return ev.event_time.ToDatetime()

    accepted_kind = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    accepted_idx = next((i for i, ev in enumerate(events) if ev.event_type == accepted_kind
                         and ev.workflow_execution_update_accepted_event_attributes
                         .accepted_request.input.name == update_name), None)
    if accepted_idx is None:
        return None
    arrival_ev = next(ev for ev in reversed(events[:accepted_idx])
                      if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)
    t0 = at(arrival_ev)
    done = next((ev for ev in events[accepted_idx:]
                 if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED),
                None)
    if done is None:
        return None
    t_done = at(done)
    scheduled: dict[int, tuple[str, float]] = {}
    started: dict[int, float] = {}
    activities = []
    wfts = 0
    for ev in events[accepted_idx:]:
        if at(ev) > t_done:
            break
        kind = ev.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            wfts += 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = ev.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[ev.event_id] = (name, (at(ev) - t0).total_seconds())
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[ev.activity_task_started_event_attributes.scheduled_event_id] = \
                (at(ev) - t0).total_seconds()
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = ev.activity_task_completed_event_attributes.scheduled_event_id
            name, s = scheduled[sid]
            # A started event is written with the completion; take its own time.
            activities.append((name, s, started.get(sid, s), (at(ev) - t0).total_seconds()))
    return Milestones(update_span=(t_done - t0).total_seconds(),
                      accepted=(at(events[accepted_idx]) - t0).total_seconds(),
                      activities=activities, workflow_tasks=wfts + 1, events=len(events),
                      arrival=t0)


async def profile_histories(client: Client, workflow_ids: Sequence[str], update_name: str, *,
                            concurrency: int = 16) -> list[Milestones]:
    """Fetch the histories of ``workflow_ids``; the milestones of their ``update_name`` update."""
    sem = asyncio.Semaphore(concurrency)

    async def one(wid: str) -> Milestones | None:
        async with sem:
            history = await client.get_workflow_handle(wid).fetch_history()
        return _milestones(list(history.events), update_name)

    found = await asyncio.gather(*(one(wid) for wid in workflow_ids))
    return [m for m in found if m is not None]


async def page_profile(client: Client, workflow_id: str) -> list[dict[str, Any]]:
    """Activities of a bulk redrive's history: name, queue wait, run time, gap before it.

    Page activities also give ``processed`` (entries replayed).

    ``gap`` is the time from the previous activity's completion to this one's
    scheduling: the workflow task between pages.
    """
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    rows: list[dict[str, Any]] = []
    scheduled: dict[int, tuple[str, datetime]] = {}
    started: dict[int, datetime] = {}
    first = None
    last_done: datetime | None = None
    for ev in history.events:
        t = ev.event_time.ToDatetime()
        first = first or t
        if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[ev.event_id] = (ev.activity_task_scheduled_event_attributes
                                      .activity_type.name, t)
        elif ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[ev.activity_task_started_event_attributes.scheduled_event_id] = t
        elif ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = ev.activity_task_completed_event_attributes.scheduled_event_id
            name, s = scheduled[sid]
            st = started.get(sid, s)
            rows.append({"activity": name,
                         "gap": (s - (last_done or first)).total_seconds(),
                         "queued": (st - s).total_seconds(),
                         "run": (t - st).total_seconds(),
                         "processed": _processed(ev.activity_task_completed_event_attributes)})
            last_done = t
        elif ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED and last_done:
            rows.append({"activity": "(complete)", "gap": (t - last_done).total_seconds(),
                         "queued": 0.0, "run": 0.0})
    return rows


def _processed(attrs: Any) -> int | None:
    """``processed`` of a page activity's result (JSON from the pydantic converter)."""
    try:
        return int(json.loads(attrs.result.payloads[0].data)["processed"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


# ------------------------------------------------------------- throttle simulation


class Overloaded(Exception):
    """The downstream refused a call (HTTP 429/503 from a load shedder)."""


class SheddingDownstream:
    """A downstream with ``k`` workers that sheds load: a call finding all busy fails fast.

    Like a service behind a concurrency-limiting proxy (Envoy's
    ``max_requests``, a connection pool without a wait queue): an accepted
    call takes ``service_time`` (+-``jitter``, uniform); one arriving while
    ``k`` calls are being served is refused with :class:`Overloaded` after
    ``reject_time``.
    """

    name = "shedding"

    def __init__(self, k: int, *, service_time: float = 0.05, jitter: float = 0.2,
                 reject_time: float = 0.002, seed: int = 1) -> None:
        self.k = k
        self.service_time = service_time
        self.jitter = jitter
        self.reject_time = reject_time
        self.rng = random.Random(seed)
        self.busy = 0
        self.ok = 0
        self.refused = 0

    def describe(self) -> str:
        """One line for the report."""
        return (f"{self.k} workers, service {self.service_time * 1000:.0f} ms "
                f"+-{self.jitter:.0%}; a call over {self.k} in flight is refused after "
                f"{self.reject_time * 1000:.0f} ms")

    async def serve_one(self) -> None:
        """Serve one call: ``service_time`` +- ``jitter``, counted in ``busy`` and ``ok``."""
        self.busy += 1
        try:
            await asyncio.sleep(self.service_time
                                * (1 + self.jitter * (2 * self.rng.random() - 1)))
        finally:
            self.busy -= 1
        self.ok += 1

    async def call(self) -> None:
        """One call; raises :class:`Overloaded` when refused."""
        if self.busy >= self.k:
            self.refused += 1
            await asyncio.sleep(self.reject_time)
            raise Overloaded("downstream at capacity")
        await self.serve_one()


class QueueingDownstream(SheddingDownstream):
    """A downstream with ``k`` workers and an unbounded FIFO queue: it slows down instead.

    Like a thread-pool server with a deep accept backlog: a call over ``k``
    in flight waits for a worker, so latency grows with the queue
    (``service_time * in_flight / k``); the caller gives up after
    ``timeout`` (a failure).
    """

    name = "queueing"

    def __init__(self, k: int, *, timeout: float = 5.0, **kwargs: Any) -> None:
        super().__init__(k, **kwargs)
        self.timeout = timeout
        self._workers = asyncio.Semaphore(k)

    def describe(self) -> str:
        """One line for the report."""
        return (f"{self.k} workers, service {self.service_time * 1000:.0f} ms "
                f"+-{self.jitter:.0%}, FIFO queue beyond {self.k}, caller timeout "
                f"{self.timeout:g} s")

    async def call(self) -> None:
        """One call; raises TimeoutError when the caller gives up."""
        try:
            await asyncio.wait_for(self._serve(), self.timeout)
        except TimeoutError:
            self.refused += 1
            raise

    async def _serve(self) -> None:
        async with self._workers:
            await self.serve_one()


@dataclass
class SimWindow:
    """Averages over one window of the simulation."""

    start: float
    end: float
    in_flight: float
    serving: float
    limit: float
    ok_per_s: float
    failed: int
    health: str  # at the window's last sample


@dataclass
class SimResult:
    """Outcome of one simulation run."""

    downstream: str
    k: int
    windows: list[SimWindow]
    stats: dict[str, Any]
    settled_at: float | None

    def passed(self, deadline: float) -> bool:
        """Whether the in-flight average was in band from ``settled_at`` <= ``deadline`` on."""
        return self.settled_at is not None and self.settled_at <= deadline


async def simulate_throttle(downstream: SheddingDownstream, *, seconds: float,
                            workers: int = 64, window: float = 5.0, sample_every: float = 0.01,
                            band: tuple[float, float] = (0.7, 1.0),
                            throttle_kwargs: dict[str, Any] | None = None) -> SimResult:
    """Drive ``downstream`` through an :class:`AdaptiveThrottle` from ``workers`` tasks.

    Each worker loops ``async with throttle.slot(): await downstream.call()``
    (a refusal or timeout raises, so the throttle records a failure). A sampler
    reads ``throttle.in_flight`` every ``sample_every`` seconds of loop time.

    Returns:
        Per-window averages; ``settled_at`` is the end of the first window from
        which every window's in-flight average lies in ``band`` times ``k``.
    """
    loop = asyncio.get_running_loop()
    kwargs = dict(throttle_kwargs or {})
    throttle = AdaptiveThrottle(clock=loop.time, **kwargs)
    start = loop.time()
    stop_at = start + seconds
    samples: list[tuple[float, int, int, int, str]] = []
    completions: list[tuple[float, bool]] = []

    async def worker() -> None:
        while loop.time() < stop_at:
            try:
                async with throttle.slot():
                    await downstream.call()
            except (Overloaded, TimeoutError):
                completions.append((loop.time() - start, False))
            else:
                completions.append((loop.time() - start, True))

    async def sampler() -> None:
        while loop.time() < stop_at:
            samples.append((loop.time() - start, throttle.in_flight, downstream.busy,
                            throttle.limit, throttle.health))
            await asyncio.sleep(sample_every)

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await sampler()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    windows = []
    t = 0.0
    while t < seconds - 1e-9:
        end = min(t + window, seconds)
        inside = [s for s in samples if t <= s[0] < end]
        done = [c for c in completions if t <= c[0] < end]
        windows.append(SimWindow(
            start=t, end=end,
            in_flight=statistics.fmean(s[1] for s in inside) if inside else 0.0,
            serving=statistics.fmean(s[2] for s in inside) if inside else 0.0,
            limit=statistics.fmean(s[3] for s in inside) if inside else 0.0,
            ok_per_s=sum(1 for c in done if c[1]) / (end - t),
            failed=sum(1 for c in done if not c[1]),
            health=inside[-1][4] if inside else "-",
        ))
        t = end
    k = downstream.k
    low, high = band[0] * k, band[1] * k
    settled_at = None
    for i, win in enumerate(windows):
        if all(low <= w.in_flight <= high for w in windows[i:]):
            settled_at = win.end
            break
    return SimResult(downstream=downstream.describe(), k=k, windows=windows,
                     stats=throttle.stats(), settled_at=settled_at)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever nothing is ready.

    Every ``asyncio.sleep``, ``wait_for`` timeout and ``call_later`` fires in
    the same order as in real time, but idle time costs nothing, so a 40 s
    simulation runs in well under a second per thousand events. Code that
    reads ``loop.time()`` (the throttle gets it as its clock) sees virtual
    seconds. Computation takes zero virtual time, which is the ideal the
    real-time run approaches on an idle machine.
    """

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0

    def time(self) -> float:
        """Virtual seconds since the loop was made."""
        return self._virtual_now

    def _run_once(self) -> None:
        ready = self._ready  # type: ignore[attr-defined]
        heap = self._scheduled  # type: ignore[attr-defined]
        if not ready and not self._stopping:  # type: ignore[attr-defined]
            while heap and heap[0]._cancelled:
                self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
                handle = heapq.heappop(heap)
                handle._scheduled = False
            if heap:
                self._virtual_now = max(self._virtual_now, heap[0]._when)
        super()._run_once()  # type: ignore[misc]


def run_virtual(coro: Any) -> Any:
    """Run ``coro`` to completion on a fresh :class:`VirtualTimeLoop`."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# ------------------------------------------------------------------------- main


def main() -> None:
    """``python -m bench._replay_support --address A --task-queue Q``: the bare worker."""
    parser = argparse.ArgumentParser(description="bare worker of bench/replay.py")
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve_bare(args.address, args.task_queue))


if __name__ == "__main__":
    main()
