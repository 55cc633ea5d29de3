"""The benchmarks' on/off switch: the ``DLQ_*`` settings of "features on" and "features off".

``bench/store.py`` and ``bench/replay.py`` measure the DLQ twice in one run,
with the features a production deployment runs on and with all of them off,
and print the ratio on/off (goal :data:`GOAL`). The features:

* ``metrics``: the worker counts the ``dlq_*`` metrics and serves
  ``/metrics`` (``DLQ_METRICS_PORT``; the benchmark scrapes it), off with
  ``DLQ_METRICS_PORT=0``;
* ``grouping``: failure groups (``DLQ_GROUPING_ENABLED``);
* ``security``: redaction at capture (``DLQ_REDACT_ENABLED``) and payload
  encryption (``DLQ_ENCRYPTION_KEYS``, a throw-away key ring; none when off).

Each side is a :class:`Side`: its own task queue, read model and settings,
given to both its worker (:mod:`bench._worker`, or ``worker.py``'s
environment) and the client's :class:`~dlq.DLQConfig` (:func:`side_config`),
so the two sides share the server and the machine and differ only in these
settings. ``bench/store.py --only FEATURE`` isolates one feature (on alone
vs all off), so a reader sees what each costs; ``bench/replay.py`` compares
``security`` alone and leaves the rest at the DLQ's defaults on both sides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from dlq import DLQConfig, DLQSettings
from dlq._keys import generate_key

__all__ = ["FEATURES", "GOAL", "SIDES_ENV", "Side", "feature_settings", "side_config"]

GOAL = 0.9  # features on / features off, rate
FEATURES = ("metrics", "grouping", "security")
# How bench._stack hands the sides to bench._worker (JSON; not argv: it may hold keys).
SIDES_ENV = "DLQ_BENCH_SIDES_JSON"


@dataclass(frozen=True)
class Side:
    """One configuration of the DLQ under measurement.

    Attributes:
        name: ``on``, ``off`` or ``default`` (the report's label, file names).
        task_queue: Its DLQ worker's task queue.
        settings: Its ``DLQ_*`` variables (:func:`feature_settings`).
        database_url: Its read model (set by the stack that starts its worker).
    """

    name: str
    task_queue: str
    settings: dict[str, str]
    database_url: str = ""

    @property
    def metrics_port(self) -> int:
        """Where its worker serves ``/metrics`` (0: metrics off)."""
        return int(self.settings.get("DLQ_METRICS_PORT", "0"))


def feature_settings(on: Iterable[str], *, scope: Iterable[str] = FEATURES,
                     metrics_port: int = 0) -> dict[str, str]:
    """The ``DLQ_*`` variables of one side.

    Args:
        on: The features turned on; every other one in ``scope`` is off.
        scope: The features set at all; the rest keep the DLQ's defaults.
        metrics_port: Where the worker serves ``/metrics`` (needed when
            ``metrics`` is on: counting is on whenever the port is not 0).

    Raises:
        ValueError: ``on`` or ``scope`` names no feature, or metrics on without a port.
    """
    on, scope = set(on), set(scope)
    unknown = (on | scope) - set(FEATURES)
    if unknown or not on <= scope:
        raise ValueError(f"features must be among {', '.join(sorted(scope))} of "
                         f"{', '.join(FEATURES)}, got {', '.join(sorted(on | scope))}")
    if "metrics" in on and metrics_port <= 0:
        raise ValueError("metrics on needs a metrics_port > 0")
    settings: dict[str, str] = {}
    if "metrics" in scope:
        settings["DLQ_METRICS_PORT"] = str(metrics_port if "metrics" in on else 0)
    if "grouping" in scope:
        settings["DLQ_GROUPING_ENABLED"] = str("grouping" in on).lower()
    if "security" in scope:
        settings["DLQ_REDACT_ENABLED"] = str("security" in on).lower()
        if "security" in on:
            # A throw-away key ring; the side's client and worker get the same one.
            settings["DLQ_ENCRYPTION_KEYS"] = generate_key("bench")
    return settings


def side_config(config: DLQConfig, settings: dict[str, str]) -> DLQConfig:
    """``config`` with ``settings`` applied (parsed as ``DLQSettings`` parses them)."""
    names = {name.removeprefix("DLQ_").lower(): value for name, value in settings.items()}
    parsed = DLQSettings(**names)  # type: ignore[arg-type]
    return dataclasses.replace(config, **{name: getattr(parsed, name) for name in names})
