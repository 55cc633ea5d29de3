"""Benchmark: ``dlq serve``'s list, facets and entry endpoints at 1M rows vs the Python calls.

Seeds ``--rows`` entries (default 1,000,000; :mod:`bench._query_seed`) in SQLite
and, with ``--backend both|postgresql``, PostgreSQL. Then it starts ``dlq serve``
as its own process (uvicorn, one worker, a bearer token) on that read model and
times, interleaved run by run, each operation two ways in this process:

* **HTTP**: a request over one keep-alive connection (``http.client``) and the
  JSON parsed: what a script or the console's browser sees;
* **Python**: the same call on the blocking ``DLQService`` (what the endpoint
  calls, minus the HTTP layer): ``list_entries({"status": "pending", "domain":
  "payment"}, page=1, page_size=20)``, ``get_facet_counts(status="pending")``
  and ``get_entry(id)``.

The goal (issue #11): HTTP p95 <= 1.3x Python p95 for each. The ratio is the
HTTP layer's cost (parsing, routing, the token check, JSON encoding and
decoding, the loopback round trip) relative to the call. Misses are printed
as measured.

Usage::

    python bench/api.py [--rows 1000000] [--runs 200] [--warmup 20]
                        [--backend sqlite|postgresql|both] [--keep PATH]
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._query_seed import migrate_kept, seed_postgresql, seed_sqlite
from bench.query import PG_ADMIN_URL, PG_DB, PG_LIBPQ_URL, PG_URL, check_quiet, pct
from dlq import DLQConfig, DLQService
from dlq._db import create_db_engine
from dlq._procs import free_port
from dlq._serve_process import ServeProcess

GOAL = 1.3
TOKEN = "bench-token-0123456789abcdef"
FILTERS = {"status": "pending", "domain": "payment"}
console = Console(width=160)


def _wait(coro: Any) -> None:
    import asyncio

    asyncio.run(coro)


class Http:
    """One keep-alive connection to the server, authenticated with the bench token."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}

    def get(self, path: str) -> Any:
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return json.loads(body)


def measure(ops: dict[str, tuple[Callable[[], Any], Callable[[], Any]]], *, runs: int,
            warmup: int) -> dict[str, dict[str, list[float]]]:
    """Warm up, then time ``runs`` calls of each way of each operation, interleaved (ms)."""
    for http_call, py_call in ops.values():
        for _ in range(warmup):
            http_call()
            py_call()
    samples = {name: {"http": [], "python": []} for name in ops}
    gc.collect()
    for i in range(runs):
        for name, (http_call, py_call) in ops.items():
            pair = [("http", http_call), ("python", py_call)]
            for way, fn in (pair if i % 2 else pair[::-1]):
                start = time.perf_counter_ns()
                fn()
                samples[name][way].append((time.perf_counter_ns() - start) / 1e6)
    return samples


def run_backend(label: str, url: str, args: argparse.Namespace, home: Path) -> list[str]:
    """Serve ``url``, measure, print the table; return the goals missed."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DLQ_")},
           "DLQ_DATABASE_URL": url, "DLQ_API_TOKENS": f"bench:viewer:{TOKEN}",
           "DLQ_HOME": str(home), "DLQ_TEMPORAL_ADDRESS": "127.0.0.1:9"}
    server = ServeProcess(port=free_port(), log_path=home / f"serve-{label}.log", env=env)
    server.start()
    try:
        _wait(server.wait_ready(60))
        client = Http(server.port)
        with DLQService(DLQConfig(database_url=url, home=str(home))) as svc:
            page = svc.list_entries(FILTERS, page=1, page_size=20)
            entry_id = page["results"][0]["id"]
            assert client.get("/api/entries?status=pending&domain=payment&page_size=20"
                              ) == page, "HTTP and Python list pages differ"
            ops = {
                "list page (pending, payment, 20 + count)": (
                    lambda: client.get("/api/entries?status=pending&domain=payment"
                                       "&page_size=20"),
                    lambda: svc.list_entries(FILTERS, page=1, page_size=20)),
                "facets (status=pending)": (
                    lambda: client.get("/api/facets?status=pending"),
                    lambda: svc.get_facet_counts(status="pending")),
                "entry (with audit trail)": (
                    lambda: client.get(f"/api/entries/{entry_id}"),
                    lambda: svc.get_entry(entry_id)),
            }
            check_quiet(f"{label}: before measuring")
            samples = measure(ops, runs=args.runs, warmup=args.warmup)
    finally:
        server.stop(10)
    table = Table(title=f"{label}: HTTP vs Python, {args.runs} runs each", title_justify="left")
    for col in ("operation", "Python p50", "Python p95", "HTTP p50", "HTTP p95",
                "HTTP/Python p95", "goal", "result"):
        table.add_column(col, justify="left" if col in ("operation", "goal", "result")
                         else "right")
    misses = []
    for name, s in samples.items():
        py95, http95 = pct(s["python"], 95), pct(s["http"], 95)
        ratio = http95 / py95
        ok = ratio <= GOAL
        if not ok:
            misses.append(f"{label}: {name}: {ratio:.2f}x (+{http95 - py95:.2f} ms)")
        table.add_row(name, f"{pct(s['python'], 50):.2f}", f"{py95:.2f}",
                      f"{pct(s['http'], 50):.2f}", f"{http95:.2f}", f"{ratio:.2f}x",
                      f"<= {GOAL}x", "[green]PASS[/]" if ok else
                      f"[red]MISS[/] +{http95 - py95:.2f} ms")
    console.print(table)
    return misses


def main() -> int:
    """Seed, serve, measure; exit 0 unless something failed to run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the SQLite file here")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="dlq-bench-api-"))
    misses: list[str] = []
    if args.backend in ("sqlite", "both"):
        path = args.keep or home / "api.db"
        url = f"sqlite:///{path}"
        if path.exists():
            migrate_kept(create_db_engine(url))
            console.print(f"reusing {path}")
        else:
            took = seed_sqlite(url, args.rows)
            console.print(f"seeded {args.rows:,} rows in {path} ({took:.0f} s)")
        misses += run_backend("SQLite", url, args, home)
    if args.backend in ("postgresql", "both"):
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{PG_DB}"')
        try:
            engine = create_db_engine(PG_URL)
            took = seed_postgresql(engine, PG_LIBPQ_URL, args.rows)
            engine.dispose()
            console.print(f"seeded {args.rows:,} rows in PostgreSQL ({took:.0f} s)")
            misses += run_backend("PostgreSQL", PG_URL, args, home)
        finally:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
    for miss in misses:
        console.print(f"[red]goal missed[/]: {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
