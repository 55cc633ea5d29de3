"""Failure grouping on vs off in one benchmark run: alternating rounds, merged results.

The two configurations run in turns (off, on, off, on, ...) on the same
stack, so a machine that gets busier or a read model that grows during the
run weighs on both alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Phase = Callable[..., Awaitable[tuple[Any, int]]]


def merge(results: list[Any]) -> Any:
    """One result of several rounds of one phase: counts and times added, CPU time-weighted."""
    first = results[0]
    elapsed = sum(r.elapsed for r in results)
    cores: dict[str, float | None] = {}
    for proc in first.cores:
        values = [(r.cores.get(proc), r.elapsed) for r in results]
        cores[proc] = (None if any(v is None for v, _ in values)
                       else sum(v * t for v, t in values if v is not None) / elapsed)
    return type(first)(name=first.name, ok=sum(r.ok for r in results), elapsed=elapsed,
                       latencies=[x for r in results for x in r.latencies],
                       errors=[e for r in results for e in r.errors], cores=cores,
                       warmup_ok=sum(r.warmup_ok for r in results))


async def grouping_rounds(phase: Phase, stack: Any, args: Any, pids: dict[str, int],
                          rounds: int) -> tuple[Any, Any, int]:
    """Run ``phase`` with grouping off and on, alternating, ``rounds`` times each.

    Returns:
        (grouping off, grouping on, rows in the read model at the end).
    """
    per_round = type(args)(**{**vars(args), "n": max(1, args.n // rounds)})
    off, on, rows = [], [], 0
    for i in range(rounds):
        per_round.expected = 2 * (i + 1) * (per_round.n + args.warmup)
        result, _ = await phase(stack, per_round, pids, grouping=False)
        off.append(result)
        result, rows = await phase(stack, per_round, pids, grouping=True)
        on.append(result)
    return merge(off), merge(on), rows
