"""Benchmark: what ``import dlq`` costs a process, against ``import temporalio.client``.

Each figure is the wall time of the import inside a fresh interpreter (the
interpreter's own start-up is not counted), over ``--runs`` interpreters,
interleaved so machine noise hits every variant alike:

1. baseline: ``import temporalio.client`` (what any Temporal client pays);
2. ``import dlq`` (public names are loaded on first use);
3. ``import dlq`` then ``dlq.DLQService`` (a web or Celery process's first store
   pays this once).

It prints the median and p90 of each and their ratios to the baseline. The
goal for (2) is at most 0.3 s on this machine.

Usage::

    python bench/import.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

VARIANTS = {
    "import temporalio.client (baseline)": "import temporalio.client",
    "import dlq": "import dlq",
    "import dlq; dlq.DLQService": "import dlq; dlq.DLQService",
}
PROBE = ("import time; t = time.perf_counter(); {code}; "
         "print(time.perf_counter() - t)")
GOAL_SECONDS = 0.3


def time_import(code: str) -> float:
    """Seconds ``code`` takes in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", PROBE.format(code=code)], check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="interpreters per variant")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for code in VARIANTS.values():  # warm the file cache once
        time_import(code)
    for _ in range(args.runs):
        for name, code in VARIANTS.items():
            samples[name].append(time_import(code))
    base = statistics.median(samples["import temporalio.client (baseline)"])
    print(f"{'variant':<38} {'median':>8} {'p90':>8} {'ratio':>7}")
    for name, values in samples.items():
        values.sort()
        median = statistics.median(values)
        p90 = values[int(0.9 * (len(values) - 1))]
        print(f"{name:<38} {median:8.3f} {p90:8.3f} {median / base:7.2f}")
    dlq_median = statistics.median(samples["import dlq"])
    print(f"goal: import dlq <= {GOAL_SECONDS:g} s: "
          f"{'met' if dlq_median <= GOAL_SECONDS else 'MISSED'} ({dlq_median:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
