"""Benchmark: DLQ read queries at 1M rows, next to their raw-SQL twins.

Seeds ``--rows`` entries (default 1,000,000; see :mod:`bench._query_seed`) in
SQLite and, when reachable, PostgreSQL, then measures p50/p95 of:

* ``list_entries({"status": "pending", "domain": "payment"}, page=1, page_size=20)``
  (a filtered first page with its total count);
* ``get_facet_counts(status="pending")`` and, separately, ``get_facet_counts()``;
* ``get_stats()``;
* ``iter_entries({}, limit=20)``: the first page and a page 500,000 rows deep
  (the cursor at row ``rows // 2`` is found once, untimed, by walking with
  ``limit=1000``; then the page at that cursor is fetched repeatedly).

Each operation is timed at three layers, interleaved run by run:

* **API**: the blocking ``DLQService``, i.e. what an application calls (its SQL
  reads run on the caller's thread: validation, repository, result shape);
* **repo**: the ``SQLModelRepository`` method the service calls (the
  thread's held connection, cached SQL, row conversion to dicts with ISO times);
* **raw**: the same SQL, hand-written, on a plain DBAPI connection
  (``sqlite3`` / ``psycopg``, autocommit) to the same database, rows fetched.

Facet counts and the status/domain counts of ``get_stats`` read
``dlq_entry_counts``, one row per (domain, status) kept exact by triggers on
``dlq_entries`` (migration 0005), instead of a GROUP BY over every entry. Their
raw twins are the same GROUP BYs over that counter table, so each raw/API
ratio compares the same work; the price of the counters is paid on writes
(one counter upsert per insert, status change or delete) and is not measured
here. The other statements of ``stats`` still scan ``dlq_entries`` in both.

Goals (from the issue): filtered page and facets p95 <= 25 ms at 1M rows; the
deep cursor page within 2x of the first page; each operation within 1.5x of
its raw-SQL twin (API p95 / raw p95). Misses are printed as measured; the exit
code is 0 unless something failed to run or the API and raw answers differ.

Usage::

    python bench/query.py [--rows 1000000] [--runs 50] [--warmup 5]
                          [--backend sqlite|postgresql|both] [--keep PATH] [--explain]

``--keep PATH`` keeps the seeded SQLite file at PATH and the PostgreSQL database
``dlq_bench_query`` after the run, and reuses both on the next run when they
hold exactly ``--rows`` rows (delete the file or pass ``--reseed`` to reseed);
a kept database is first migrated to the head revision. A run without
``--keep`` drops and recreates ``dlq_bench_query`` (a kept one too) and drops
it at the end.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dlq import DLQConfig, DLQService
from dlq._db import create_db_engine
from dlq._filters import EntryFilters
from dlq._sql import DATETIME_COLUMNS, LIST_COLUMNS, OPEN, SQLModelRepository

if __package__ in (None, ""):
    # Run as `python bench/query.py`: import `bench` from the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._query_seed import migrate_kept, seed_postgresql, seed_sqlite

PAGE_GOAL_MS = 25.0
RAW_RATIO_GOAL = 1.5
DEEP_RATIO_GOAL = 2.0
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_DB = "dlq_bench_query"
PG_LIBPQ_URL = f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
FILTERS = {"status": "pending", "domain": "payment"}
PAGE = 20
WALK = 1000

console = Console(width=200)

# --- the raw-SQL twins (qmark style; "?" becomes "%s" for psycopg) -------------------

# The product's list columns (everything but the JSON blobs), so the twin fetches the same.
RAW_COLUMNS = ", ".join(LIST_COLUMNS)
TIME_POSITIONS = [(LIST_COLUMNS.index(c), c) for c in DATETIME_COLUMNS]
RAW_PAGE = (f"SELECT {RAW_COLUMNS} FROM dlq_entries WHERE status = ? AND domain = ? "
            "ORDER BY created_at DESC, id DESC LIMIT 20")
RAW_COUNT = "SELECT count(*) FROM dlq_entries WHERE status = ? AND domain = ?"
# Facets and the status/domain counts of stats read the trigger-kept counter table
# dlq_entry_counts, and so do their twins (see the module docstring).
RAW_BY_STATUS = "SELECT status, sum(n) FROM dlq_entry_counts GROUP BY status HAVING sum(n) > 0"
RAW_BY_DOMAIN = "SELECT domain, sum(n) FROM dlq_entry_counts GROUP BY domain HAVING sum(n) > 0"
RAW_BY_DOMAIN_SCOPED = ("SELECT domain, sum(n) FROM dlq_entry_counts WHERE status = ? "
                        "GROUP BY domain HAVING sum(n) > 0")
RAW_OLDEST_OPEN = "SELECT min(created_at) FROM dlq_entries WHERE status IN (?, ?, ?)"
RAW_RECENT = ("SELECT count(*) FILTER (WHERE created_at >= ?), "
              "count(*) FILTER (WHERE created_at >= ?) "
              "FROM dlq_entries WHERE created_at >= ?")
RAW_REPLAYS = ("SELECT count(*) FILTER (WHERE last_attempt_at IS NOT NULL), "
               "count(*) FILTER (WHERE resolution_type = ?) FROM dlq_entries")
RAW_FIRST = (f"SELECT {RAW_COLUMNS} FROM dlq_entries "
             "ORDER BY created_at DESC, id DESC LIMIT 20")
RAW_AFTER = (f"SELECT {RAW_COLUMNS} FROM dlq_entries WHERE (created_at, id) < (?, ?) "
             "ORDER BY created_at DESC, id DESC LIMIT 20")


class Raw:
    """Hand-written SQL on a plain DBAPI connection (autocommit, one connection)."""

    def __init__(self, conn: Any, *, qmark: bool, sqlite_times: bool) -> None:
        self.conn = conn
        self.qmark = qmark
        self.sqlite_times = sqlite_times

    def _sql(self, sql: str) -> str:
        return sql if self.qmark else sql.replace("?", "%s")

    def ts(self, value: datetime) -> Any:
        """A datetime as the backend stores it (SQLite: naive UTC text with microseconds)."""
        if self.sqlite_times:
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(
                sep=" ", timespec="microseconds")
        return value

    def all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Execute ``sql`` and fetch every row."""
        cur = self.conn.cursor()
        try:
            cur.execute(self._sql(sql), params)
            return cur.fetchall()
        finally:
            cur.close()

    def page(self) -> tuple[list[Any], int]:
        """Filtered first page and its total count."""
        params = (FILTERS["status"], FILTERS["domain"])
        return self.all(RAW_PAGE, params), self.all(RAW_COUNT, params)[0][0]

    def sums(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, int]:
        """A counter-table GROUP BY as a dict (PostgreSQL's sum() is numeric: as int)."""
        return {key: int(n) for key, n in self.all(sql, params)}

    def facets(self, status: str | None) -> dict[str, dict[str, int]]:
        """The two counter-table GROUP BYs of ``facet_counts`` (by_status is unscoped)."""
        by_domain = (self.sums(RAW_BY_DOMAIN_SCOPED, (status,)) if status
                     else self.sums(RAW_BY_DOMAIN))
        return {"by_status": self.sums(RAW_BY_STATUS), "by_domain": by_domain}

    def stats(self) -> dict[str, Any]:
        """The five statements of ``dlq._sql.queries.stats``."""
        now = datetime.now(UTC)
        hour, day = self.ts(now - timedelta(hours=1)), self.ts(now - timedelta(days=1))
        return {
            "by_status": self.sums(RAW_BY_STATUS),
            "by_domain": self.sums(RAW_BY_DOMAIN),
            "oldest": self.all(RAW_OLDEST_OPEN, OPEN)[0][0],
            "recent": self.all(RAW_RECENT, (hour, day, day))[0],
            "replays": self.all(RAW_REPLAYS, ("replay",))[0],
        }

    def shaped(self, rows: list[Any]) -> list[dict[str, Any]]:
        """Rows shaped by hand into what the API returns, the cheapest way: a dict per
        row and ISO times (SQLite: string edits, skipping isoformat's zero-microsecond
        case; PostgreSQL: ``isoformat()`` of the driver's datetimes)."""
        out = []
        for row in rows:
            item = dict(zip(LIST_COLUMNS, row, strict=True))
            for i, name in TIME_POSITIONS:
                value = row[i]
                if value is not None:
                    item[name] = (value.replace(" ", "T") + "+00:00" if self.sqlite_times
                                  else value.isoformat())
            out.append(item)
        return out

    def first(self) -> list[Any]:
        """First keyset page, no filter."""
        return self.all(RAW_FIRST)

    def after(self, key: tuple[datetime, str]) -> list[Any]:
        """Keyset page strictly after (created_at, id)."""
        return self.all(RAW_AFTER, (self.ts(key[0]), key[1]))


# --- measuring ------------------------------------------------------------------------


@dataclass
class Op:
    """One operation, its three implementations and its goals."""

    name: str
    api: Callable[[], Any]
    repo: Callable[[], Any]
    raw: Callable[[], Any]
    abs_goal_ms: float | None = None
    # The raw twin plus shaping its rows by hand into the API's answer: the floor
    # of any implementation that returns the same dicts (reported, not a goal).
    shaped: Callable[[], Any] | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)


def pct(samples: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of ``samples``."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def measure(op: Op, *, warmup: int, runs: int) -> None:
    """Warm each layer up, then time ``runs`` calls of each, interleaved, in ms."""
    layers = {"api": op.api, "repo": op.repo, "raw": op.raw}
    if op.shaped is not None:
        layers["shaped"] = op.shaped
    for fn in layers.values():
        for _ in range(warmup):
            fn()
    op.samples = {name: [] for name in layers}
    names = list(layers)
    gc.collect()
    for i in range(runs):
        # Rotate the order so no layer always runs right after another's cache misses.
        for name in names[i % len(names):] + names[:i % len(names)]:
            fn = layers[name]
            start = time.perf_counter_ns()
            fn()
            op.samples[name].append((time.perf_counter_ns() - start) / 1e6)


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def report(title: str, ops: list[Op], first: Op, deep: Op) -> list[str]:
    """Print the results table of one backend; return the goals missed."""
    table = Table(title=title, title_justify="left")
    for col in ("operation", "API p50", "API p95", "repo p50", "repo p95", "raw p50",
                "raw p95", "API/raw p95", "repo/raw p95", "goal", "result"):
        table.add_column(col, justify="left" if col in ("operation", "goal", "result")
                         else "right")
    misses: list[str] = []
    for op in ops:
        s = op.samples
        api95, repo95, raw95 = pct(s["api"], 95), pct(s["repo"], 95), pct(s["raw"], 95)
        ratio = api95 / raw95
        goals = [f"<= {RAW_RATIO_GOAL}x raw"]
        problems = []
        if ratio > RAW_RATIO_GOAL:
            problems.append(f"{ratio:.2f}x raw")
        if op.abs_goal_ms is not None:
            goals.insert(0, f"p95 <= {op.abs_goal_ms:.0f} ms")
            if api95 > op.abs_goal_ms:
                problems.append(f"p95 {_ms(api95)} ms")
        if op is deep:
            first95 = pct(first.samples["api"], 95)
            goals.insert(0, f"<= {DEEP_RATIO_GOAL:.0f}x first page")
            if api95 / first95 > DEEP_RATIO_GOAL:
                problems.append(f"{api95 / first95:.2f}x first page")
        result = "[green]PASS[/]" if not problems else "[red]MISS[/] " + ", ".join(problems)
        misses += [f"{title}: {op.name}: {p}" for p in problems]
        table.add_row(op.name, _ms(pct(s["api"], 50)), _ms(api95), _ms(pct(s["repo"], 50)),
                      _ms(repo95), _ms(pct(s["raw"], 50)), _ms(raw95), f"{ratio:.2f}x",
                      f"{repo95 / raw95:.2f}x", "; ".join(goals), result)
    console.print(table)
    for op in ops:
        if op.shaped is not None:
            raw95, floor95 = pct(op.samples["raw"], 95), pct(op.samples["shaped"], 95)
            api95 = pct(op.samples["api"], 95)
            console.print(
                f"  {op.name}: raw SQL + the same dicts built by hand p50 "
                f"{_ms(pct(op.samples['shaped'], 50))} / p95 {_ms(floor95)} ms = "
                f"{floor95 / raw95:.2f}x raw; the API is {api95 / floor95:.2f}x that")
    line = "  deep/first page p95: " + ", ".join(
        f"{layer} {pct(deep.samples[layer], 95) / pct(first.samples[layer], 95):.2f}x"
        for layer in ("api", "repo", "raw"))
    console.print(line + f" (goal <= {DEEP_RATIO_GOAL:.0f}x for API)")
    return misses


# --- one backend -----------------------------------------------------------------------


def _cpu_jiffies() -> tuple[int, int] | None:
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle, sum(fields[:8])


def _load(jiffies: tuple[int, int] | None, cpu: float, wall: float) -> str:
    """Cores the machine and this process kept busy since ``jiffies`` / ``cpu`` were read.

    The rest of the machine's load is the database server (PostgreSQL) and
    other processes; on SQLite it is other processes only.
    """
    now = _cpu_jiffies()
    own = (time.process_time() - cpu) / wall
    if jiffies is None or now is None or now[1] == jiffies[1]:
        return f"this process {own:.2f} cores"
    machine = (now[0] - jiffies[0]) / (now[1] - jiffies[1]) * (os.cpu_count() or 1)
    return f"machine busy {machine:.2f} of {os.cpu_count()} cores, this process {own:.2f}"


def check_quiet(label: str, seconds: float = 1.0) -> None:
    """Print how many cores other processes keep busy while this one sleeps (Linux only).

    Other load on the machine inflates every figure, the fast ones most.
    """
    before = _cpu_jiffies()
    time.sleep(seconds)
    after = _cpu_jiffies()
    if before is None or after is None or after[1] == before[1]:
        return
    cores = (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)
    style = "yellow" if cores > 0.25 else "dim"
    note = ": figures may be inflated" if cores > 0.25 else ""
    console.print(f"  [{style}]{label}: other processes busy {cores:.2f} of "
                  f"{os.cpu_count()} cores{note}[/]")


def _same(label: str, api: Any, raw: Any) -> bool:
    if api != raw:
        console.print(f"[red]ERROR[/] {label}: API and raw SQL disagree:\n  api={api!r}\n"
                      f"  raw={raw!r}")
        return False
    return True


def find_deep_cursor(svc: DLQService, depth: int) -> tuple[str, tuple[datetime, str]]:
    """Walk ``iter_entries`` (untimed) to the cursor after row ``depth``."""
    started = time.perf_counter()
    cursor, last = None, None
    for _ in range(depth // WALK):
        page = svc.iter_entries({}, cursor=cursor, limit=WALK)
        cursor, last = page["next_cursor"], page["results"][-1]
        if cursor is None:
            raise RuntimeError("ran out of rows before the deep page")
    assert cursor is not None and last is not None
    console.print(f"  cursor at row {depth:,} found in {time.perf_counter() - started:.1f} s "
                  f"({depth // WALK} calls of limit={WALK})")
    return cursor, (datetime.fromisoformat(last["created_at"]), last["id"])


def run_backend(title: str, url: str, raw: Raw, *, rows: int, warmup: int, runs: int,
                explain: Callable[[Raw, tuple[datetime, str]], None] | None = None,
                ) -> tuple[list[str], bool]:
    """Measure every operation on one database; return (goal misses, answers agree)."""
    engine = create_db_engine(url)
    old_rev, new_rev = migrate_kept(engine)
    if old_rev != new_rev:
        console.print(f"  migrated the kept database from revision {old_rev} to {new_rev} "
                      "(new columns are NULL), analysed again")
    repo = SQLModelRepository(engine)
    svc = DLQService(DLQConfig(database_url=url), repository=repo)
    try:
        total = svc.get_stats()["total"]
        if total != rows:
            raise RuntimeError(f"{title}: expected {rows:,} rows, found {total:,}")
        depth = rows // 2
        cursor, after = find_deep_cursor(svc, depth)
        if explain is not None:
            explain(raw, after)
        filters = EntryFilters(status=(FILTERS["status"],), domain=FILTERS["domain"])
        everything = EntryFilters()
        ops = [
            Op("filtered page 1 + count (pending, payment)",
               lambda: svc.list_entries(FILTERS, page=1, page_size=PAGE),
               lambda: repo.list_page(filters, 0, PAGE), raw.page, PAGE_GOAL_MS),
            Op("facet counts (status=pending)",
               lambda: svc.get_facet_counts(status="pending"),
               lambda: repo.facet_counts("pending", None),
               lambda: raw.facets("pending"), PAGE_GOAL_MS),
            Op("facet counts (unscoped)", lambda: svc.get_facet_counts(),
               lambda: repo.facet_counts(None, None), lambda: raw.facets(None), PAGE_GOAL_MS),
            Op("stats", lambda: svc.get_stats(), lambda: repo.stats(datetime.now(UTC)),
               raw.stats),
            Op("cursor page 1 (no filter)", lambda: svc.iter_entries({}, limit=PAGE),
               lambda: repo.list_after(everything, None, PAGE), raw.first,
               shaped=lambda: raw.shaped(raw.first())),
            Op(f"cursor page at row {depth:,}",
               lambda: svc.iter_entries({}, cursor=cursor, limit=PAGE),
               lambda: repo.list_after(everything, after, PAGE), lambda: raw.after(after),
               shaped=lambda: raw.shaped(raw.after(after))),
        ]
        ok = check_answers(svc, raw, cursor, after)
        check_quiet("before measuring")
        for op in ops:
            started, cpu, jiffies = time.perf_counter(), time.process_time(), _cpu_jiffies()
            measure(op, warmup=warmup, runs=runs)
            wall = time.perf_counter() - started
            console.print(f"  measured {op.name} ({wall:.1f} s; {_load(jiffies, cpu, wall)})")
        check_quiet("after measuring")
        return report(title, ops, ops[4], ops[5]), ok
    finally:
        svc.close()
        engine.dispose()


def check_answers(svc: DLQService, raw: Raw, cursor: str,
                  after: tuple[datetime, str]) -> bool:
    """Check once that each API call and its raw twin return the same answer."""
    listing = svc.list_entries(FILTERS, page=1, page_size=PAGE)
    raw_rows, raw_total = raw.page()
    ok = _same("filtered page", ([r["id"] for r in listing["results"]],
                                 listing["total_count"]),
               ([r[0] for r in raw_rows], raw_total))
    ok &= _same("facets (pending)", svc.get_facet_counts(status="pending"),
                raw.facets("pending"))
    ok &= _same("facets", svc.get_facet_counts(), raw.facets(None))
    api_stats, raw_stats = svc.get_stats(), raw.stats()
    ok &= _same("stats", (api_stats["by_status"], api_stats["by_domain"],
                          api_stats["replay_attempted"], api_stats["replay_succeeded"]),
                (raw_stats["by_status"], raw_stats["by_domain"], *raw_stats["replays"]))
    ok &= _same("cursor page 1", [r["id"] for r in svc.iter_entries({}, limit=PAGE)["results"]],
                [r[0] for r in raw.first()])
    deep = svc.iter_entries({}, cursor=cursor, limit=PAGE)["results"]
    ok &= _same("deep cursor page", [r["id"] for r in deep], [r[0] for r in raw.after(after)])
    return ok


# --- backends ------------------------------------------------------------------------


def _sqlite_rows(path: Path) -> int | None:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM dlq_entries").fetchone()[0]
    except sqlite3.Error:
        return None


def sqlite_backend(args: argparse.Namespace, tmp: Path) -> tuple[list[str], bool]:
    """Seed (or reuse) the SQLite file and measure it."""
    path = Path(args.keep).expanduser().resolve() if args.keep else tmp / "dlq_bench.db"
    url = f"sqlite:///{path}"
    found = _sqlite_rows(path) if path.exists() else None
    if found == args.rows and not args.reseed:
        console.print(f"[bold]SQLite[/]: reusing {path} ({found:,} rows)")
    else:
        if path.exists():
            console.print(f"[bold]SQLite[/]: {path} holds {found} rows, reseeding")
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        console.print(f"[bold]SQLite[/]: seeding {args.rows:,} rows into {path}")
        console.print(f"  seeded in {seed_sqlite(url, args.rows):.0f} s")
    size = path.stat().st_size / 2**20
    console.print(f"  SQLite {sqlite3.sqlite_version}, file {size:,.0f} MiB")
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        raw = Raw(conn, qmark=True, sqlite_times=True)
        return run_backend("SQLite", url, raw, rows=args.rows, warmup=args.warmup,
                           runs=args.runs, explain=explain_sqlite if args.explain else None)
    finally:
        conn.close()


def explain_sqlite(raw: Raw, after: tuple[datetime, str]) -> None:
    """Print EXPLAIN QUERY PLAN of each raw statement."""
    for name, sql, params in _explained(raw, after):
        plan = raw.all(f"EXPLAIN QUERY PLAN {sql}", params)
        console.print(f"  [dim]{name}[/]: " + " | ".join(row[-1] for row in plan))


def _explained(raw: Raw, after: tuple[datetime, str]) -> list[tuple[str, str, tuple[Any, ...]]]:
    day = raw.ts(datetime.now(UTC) - timedelta(days=1))
    return [
        ("page", RAW_PAGE, ("pending", "payment")),
        ("count", RAW_COUNT, ("pending", "payment")),
        ("by_status", RAW_BY_STATUS, ()),
        ("by_domain", RAW_BY_DOMAIN, ()),
        ("by_domain scoped", RAW_BY_DOMAIN_SCOPED, ("pending",)),
        ("oldest open", RAW_OLDEST_OPEN, OPEN),
        ("recent", RAW_RECENT, (day, day, day)),
        ("replays", RAW_REPLAYS, ("replay",)),
        ("first", RAW_FIRST, ()),
        ("after", RAW_AFTER, (raw.ts(after[0]), after[1])),
    ]


def postgresql_backend(args: argparse.Namespace) -> tuple[list[str], bool] | None:
    """Seed (or reuse) the PostgreSQL database and measure it; None if unreachable."""
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as err:
        console.print(f"[yellow]PostgreSQL skipped[/]: {PG_ADMIN_URL} unreachable: "
                      f"{str(err).strip()}")
        return None
    try:
        version = admin.execute("SHOW server_version").fetchone()[0]
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                               (PG_DB,)).fetchone()
        found = None
        if exists and args.keep and not args.reseed:
            try:
                with psycopg.connect(PG_LIBPQ_URL) as conn:
                    found = conn.execute("SELECT count(*) FROM dlq_entries").fetchone()[0]
            except psycopg.Error:
                found = None
        if found == args.rows:
            console.print(f"[bold]PostgreSQL[/]: reusing database {PG_DB} ({found:,} rows)")
        else:
            admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {PG_DB}")
            console.print(f"[bold]PostgreSQL[/]: seeding {args.rows:,} rows into {PG_DB}")
            engine = create_db_engine(PG_URL)
            try:
                console.print(f"  seeded in {seed_postgresql(engine, PG_LIBPQ_URL, args.rows):.0f}"
                              " s (COPY, then VACUUM ANALYZE)")
            finally:
                engine.dispose()
        conn = psycopg.connect(PG_LIBPQ_URL, autocommit=True)
        try:
            size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('dlq_entries'))"
                                ).fetchone()[0]
            console.print(f"  PostgreSQL {version}, dlq_entries {size} with indexes")
            return run_backend("PostgreSQL", PG_URL, Raw(conn, qmark=False, sqlite_times=False),
                               rows=args.rows, warmup=args.warmup, runs=args.runs,
                               explain=explain_postgresql if args.explain else None)
        finally:
            conn.close()
    finally:
        if not args.keep:
            admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        admin.close()


def explain_postgresql(raw: Raw, after: tuple[datetime, str]) -> None:
    """Print EXPLAIN ANALYZE of each raw statement (plan shape and execution time)."""
    for name, sql, params in _explained(raw, after):
        lines = [row[0].strip() for row in raw.all(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)]
        console.print(f"  [dim]{name}[/]: " + " | ".join(
            ln for ln in lines if not ln.startswith(("Planning", "Buffers"))))


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the selected backends, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per layer")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per layer")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--keep", metavar="PATH",
                        help="keep/reuse the SQLite file at PATH and the PostgreSQL database")
    parser.add_argument("--reseed", action="store_true", help="reseed even if reusable")
    parser.add_argument("--explain", action="store_true",
                        help="print the query plans of the raw statements")
    args = parser.parse_args(argv)
    if args.rows < 2 * WALK:
        parser.error(f"--rows must be at least {2 * WALK}")
    console.print(f"DLQ query benchmark: {args.rows:,} rows, {args.warmup} warm-up + "
                  f"{args.runs} timed runs per layer; times in ms")
    misses: list[str] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="dlq-bench-query-") as tmp:
        if args.backend in ("sqlite", "both"):
            found, agree = sqlite_backend(args, Path(tmp))
            misses, ok = misses + found, ok and agree
        if args.backend in ("postgresql", "both"):
            result = postgresql_backend(args)
            if result is not None:
                misses, ok = misses + result[0], ok and result[1]
    console.print("\n[bold]Goals missed[/]:" if misses else "\n[bold green]All goals met[/]")
    for miss in misses:
        console.print(f"  - {miss}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
