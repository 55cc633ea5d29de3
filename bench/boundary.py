"""Benchmark: what the capture boundary check costs each store.

Every store runs :func:`dlq._boundary.check_failure` once before anything is
written (docs/limits.md). This measures, in one process and interleaved:

1. baseline: ``json.dumps`` of the same four data fields, the least a store
   that checks "is it JSON" must do;
2. ``json.loads(json.dumps(...))`` of them: the data check stores ran before
   the boundary check (a JSON round trip);
3. the boundary check (``check_failure``): texts, ``user_id``, and the data
   walk (key types, characters, floats, depth), then ``json.dumps`` for
   the size and a ``json.loads`` copy;
4. ``new_entry_input``: the check plus building the workflow input, as a
   store does before it talks to Temporal.

It does this for a realistic entry (about 500 bytes of data, as in
``bench/capture.py``) and for a large one (about 270 KiB of data in 2,000
small objects, over the inline limit). It prints the median time per
call of each, in µs, and their ratios to the baseline. For scale: a sync
store costs 13-14 ms of worker CPU, and an async store takes about 0.1 ms
(docs/benchmarks.md).

Usage::

    python bench/boundary.py [--runs 7] [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._capture_support import sample_failure
from dlq import DLQConfig, new_entry_input
from dlq._boundary import check_failure
from dlq._fields import DATA_FIELDS, store_args

CONFIG = DLQConfig()


def large_failure() -> dict[str, Any]:
    """About 270 KiB of data JSON (2,000 order lines, some non-ASCII text): claim-checked."""
    kwargs = sample_failure(1)
    kwargs["snapshot_data"] = {"lines": [
        {"sku": f"SKU-{n:05d}", "qty": n % 3 + 1, "unit_price": 19.99 + n, "name": "Käse-Brötchen",
         "tags": ["fresh", "bakery"], "discount": None} for n in range(2_000)]}
    return kwargs


def per_call(fn: Callable[[], Any], calls: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def measure(name: str, kwargs: dict[str, Any], runs: int, calls: int) -> None:
    fields = store_args(**kwargs).fields
    data = [fields[f] for f in DATA_FIELDS]
    size = len(json.dumps(data))
    limit = CONFIG.payload_max_bytes
    phases: dict[str, Callable[[], Any]] = {
        "json.dumps (baseline)": lambda: [json.dumps(d, allow_nan=False) for d in data],
        "dumps + loads (before)": lambda: [json.loads(json.dumps(d, allow_nan=False))
                                           for d in data],
        "boundary check": lambda: check_failure(fields, {}, max_data_bytes=limit),
        "new_entry_input": lambda: new_entry_input(**kwargs, config=CONFIG),
    }
    times: dict[str, list[float]] = {p: [] for p in phases}
    for _ in range(runs):  # interleaved, so drift on a noisy machine hits all alike
        for phase, fn in phases.items():
            times[phase].append(per_call(fn, calls))
    base = statistics.median(times["json.dumps (baseline)"])
    print(f"\n{name}: {size:,} bytes of data JSON, {runs} runs x {calls} calls (median)")
    for phase in phases:
        median = statistics.median(times[phase])
        print(f"  {phase:<24} {median * 1e6:9.1f} µs   {median / base:5.2f}x baseline")
    check = statistics.median(times["boundary check"])
    before = statistics.median(times["dumps + loads (before)"])
    print(f"  the check costs {check * 1e6:.1f} µs per store: {(check - base) * 1e6:.1f} µs "
          f"more than json.dumps, {(check - before) * 1e6:.1f} µs more than the check before")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    measure("realistic entry", sample_failure(1), args.runs, args.calls)
    measure("large entry", large_failure(), args.runs, max(1, args.calls // 100))


if __name__ == "__main__":
    main()
