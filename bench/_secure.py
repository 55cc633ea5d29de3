"""The benchmarks' security switch: the ``DLQ_*`` settings of the "secure" side.

``bench/store.py`` and ``bench/replay.py`` measure the DLQ twice in one run,
as configured by default and with the settings below on, and print the ratio
secure/plain. The switch is environment-driven:

* ``DLQ_BENCH_SECURE`` = ``both`` (default: measure both sides) or ``off``
  (the plain side only, as before);
* ``DLQ_BENCH_SECURE_SETTINGS``: a JSON object of ``DLQ_*`` variables the
  secure side gets; by default encryption with a throw-away key ring
  (redaction, ``DLQ_REDACT_ENABLED``, joins it here).

The secure side runs its own task queue and read model, served by a worker
that has these settings, so both sides share the server and the machine.
"""

from __future__ import annotations

import dataclasses
import json
import os

from dlq import DLQConfig, DLQSettings
from dlq._keys import generate_key

__all__ = ["GOAL", "secure_config", "secure_enabled", "secure_settings"]

GOAL = 0.9  # secure/plain rate


def secure_enabled() -> bool:
    """Whether to measure the secure side (``DLQ_BENCH_SECURE``, default ``both``)."""
    value = os.environ.get("DLQ_BENCH_SECURE", "both").strip().lower()
    if value not in ("both", "off"):
        raise RuntimeError(f"DLQ_BENCH_SECURE must be 'both' or 'off', got {value!r}")
    return value == "both"


def secure_settings() -> dict[str, str]:
    """The ``DLQ_*`` variables of the secure side (the same for the client and its worker)."""
    raw = os.environ.get("DLQ_BENCH_SECURE_SETTINGS", "").strip()
    if raw:
        settings = json.loads(raw)
        if not isinstance(settings, dict) or not all(
                isinstance(k, str) and k.startswith("DLQ_") for k in settings):
            raise RuntimeError("DLQ_BENCH_SECURE_SETTINGS must be a JSON object of DLQ_* "
                               "variables")
        return {k: str(v) for k, v in settings.items()}
    return {"DLQ_ENCRYPTION_KEYS": generate_key("bench")}


def secure_config(config: DLQConfig, settings: dict[str, str]) -> DLQConfig:
    """``config`` with ``settings`` applied (parsed as ``DLQSettings`` parses them)."""
    names = {name.removeprefix("DLQ_").lower(): value for name, value in settings.items()}
    parsed = DLQSettings(**names)  # type: ignore[arg-type]
    return dataclasses.replace(config, **{name: getattr(parsed, name) for name in names})
