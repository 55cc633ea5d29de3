"""Benchmark: sync stores during a Temporal outage, with the capture circuit breaker.

``DLQService`` points at a closed port (Temporal is down; ``--outage
silent``: a port that accepts connections and never answers, so detecting
the outage takes ``store_timeout``). ``--n`` sync
stores run from ``--threads`` threads. The first stores find Temporal
unreachable and open the breaker (:mod:`dlq._breaker`); every later store
goes straight to the outbox. In the same run, the same threads make the
same number of plain ``Outbox.append`` calls of the same entries (the
baseline: what a store cannot be faster than).

Per round (a fresh service each) it prints when the first store detected
the outage, the slowest store of all (the bound: ``store_timeout`` + 10 %)
and how many stores the breaker answered; then, pooled over the rounds, the
p50/p99 of the stores that started after the first detection, the plain
append's, and ``ratio p99 store/append``. Exit code 1 if a store exceeded the bound or an entry is
missing from the outbox, else 0 (the ratio is a figure, not an error).

Usage::

    python bench/outage.py [--n 200] [--threads 8] [--store-timeout 5] [--rounds 5]
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dlq import DLQConfig, DLQService
from dlq._entry import new_entry_input
from dlq._outbox import Outbox
from dlq._procs import free_port


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def _run_threads(threads: int, n: int, call: object) -> list[tuple[float, float]]:
    """(start, elapsed) of ``n`` calls of ``call(i)`` from ``threads`` threads at once."""
    gate = threading.Barrier(threads)
    per_thread = [range(t, n, threads) for t in range(threads)]

    def work(indexes: range) -> list[tuple[float, float]]:
        gate.wait()
        out = []
        for i in indexes:
            started = time.monotonic()
            call(i)  # type: ignore[operator]
            out.append((started, time.monotonic() - started))
        return out

    with ThreadPoolExecutor(threads) as pool:
        return [t for chunk in pool.map(work, per_thread) for t in chunk]


def one_round(args: argparse.Namespace, folder: Path, number: int) -> dict[str, object]:
    """One outage: a fresh service on a closed port, then the plain appends."""
    silent = None
    if args.outage == "silent":
        # Listens, never answers: connecting hangs until store_timeout.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
    else:
        address = f"127.0.0.1:{free_port()}"  # closed: connections are refused
    config = DLQConfig(temporal_address=address,
                       store_timeout=args.store_timeout,
                       database_url=f"sqlite:///{folder}/read-{number}.db",
                       outbox_path=str(folder / f"outbox-{number}.db"))
    service = DLQService(config)
    ids: list[str | None] = [None] * args.n
    try:
        def store(i: int) -> None:
            result = service.store_failure("bench", "OUTAGE", entity_id=str(i),
                                           error_message="gateway timed out",
                                           snapshot_data={"order": i, "amount": 1299})
            ids[i] = result.dlq_id if result.fallback_path else None

        stores = _run_threads(args.threads, args.n, store)
        stats = service.get_capture_stats()
    finally:
        service.close()
        if silent is not None:
            silent.close()
    first_back = min(s + e for s, e in stores)
    after = [e for s, e in stores if s > first_back]
    kept = Outbox(config.outbox_path)
    missing = sum(1 for i in ids if i is None)
    depth = kept.stats().depth

    # The baseline, same threads, same entries: a plain append to another file.
    plain = Outbox(folder / f"plain-{number}.db")
    entries = [new_entry_input("bench", "OUTAGE", entity_id=str(i),
                               error_message="gateway timed out",
                               snapshot_data={"order": i, "amount": 1299}, config=config)
               for i in range(args.n)]
    appends = [e for _, e in _run_threads(args.threads, args.n,
                                          lambda i: plain.append(entries[i]))]
    return {"after_samples": after, "append_samples": appends,
            "after": len(after), "store_p50": _quantile(after, 0.5),
            "store_p99": _quantile(after, 0.99), "store_max_after": max(after),
            "slowest": max(e for _, e in stores), "detect": first_back - min(s for s, _ in stores),
            "append_p50": _quantile(appends, 0.5), "append_p99": _quantile(appends, 0.99),
            "short_circuited": stats["circuit_short_circuited"], "missing": missing,
            "depth": depth}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="sync stores per round")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--store-timeout", type=float, default=5.0)
    parser.add_argument("--outage", choices=["refused", "silent"], default="refused",
                        help="a closed port, or a port that accepts and never answers")
    parser.add_argument("--rounds", type=int, default=5,
                        help="outages; the quantiles pool every round's calls")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the breaker's warnings are expected here
    bound = args.store_timeout * 1.1
    failed = False
    after: list[float] = []
    appends: list[float] = []
    with tempfile.TemporaryDirectory(prefix="dlq-outage-") as tmp:
        for number in range(args.rounds):
            r = one_round(args, Path(tmp), number)
            after += r["after_samples"]  # type: ignore[arg-type]
            appends += r["append_samples"]  # type: ignore[arg-type]
            print(f"round {number + 1}: first detection after {_ms(r['detect'])}; slowest "
                  f"store {_ms(r['slowest'])} (bound {_ms(bound)}); breaker answered "
                  f"{r['short_circuited']}; after detection p99 {_ms(r['store_p99'])} vs "
                  f"append p99 {_ms(r['append_p99'])}; in the outbox {r['depth']} of {args.n}")
            if r["slowest"] > bound or r["missing"] or r["depth"] != args.n:  # type: ignore[operator]
                failed = True
    store_p99, append_p99 = _quantile(after, 0.99), _quantile(appends, 0.99)
    print(f"{args.rounds} rounds of {args.n} sync stores from {args.threads} threads, Temporal "
          f"down ({args.outage}), store_timeout {args.store_timeout:g}s:")
    print(f"  sync store after first detection ({len(after)}): p50 {_ms(_quantile(after, 0.5))}, "
          f"p99 {_ms(store_p99)}")
    print(f"  plain outbox append ({len(appends)}): p50 {_ms(_quantile(appends, 0.5))}, "
          f"p99 {_ms(append_p99)}")
    print(f"  ratio p99 store/append {store_p99 / append_p99:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
