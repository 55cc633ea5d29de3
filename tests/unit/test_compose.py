"""docker-compose.yml and deploy/: valid Compose, and consistent with itself and the project.

There is no Docker engine here, so instead of ``docker compose up`` this checks
what can be checked statically: the file against the Compose Specification's
JSON schema (the copy vendored by the ``check-jsonschema`` package), then that
images carry explicit tags matching the dev server's Temporal versions, that
every service has a healthcheck (one-shot jobs: waited for to complete), that
every ``depends_on`` condition fits its target, that ports and ``host:port``
references agree, that volumes are declared and bind-mounted files exist, and
that the worker's Dockerfile is multi-stage, non-root and health-checked.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import subprocess
import tomllib
from functools import cache
from typing import Any

import jsonschema
import pytest
import yaml

from dlq._procs import BIN, ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's interpolation with no variables set: defaults, ``$$`` -> ``$``."""
    if isinstance(value, str):
        text = _VARIABLE.sub(lambda m: m.group("default") or "", value)
        return text.replace("$$", "$")
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@cache
def compose() -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE.read_text()))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


@cache
def dev_server_versions() -> dict[str, str]:
    """``{"Server": "1.32.0", "UI": "2.54.1"}`` from ``temporal --version``."""
    out = subprocess.run([str(BIN / "temporal"), "--version"], capture_output=True, text=True,
                         check=True).stdout
    return dict(re.findall(r"(Server|UI) (\d+\.\d+\.\d+)", out))


def test_the_file_follows_the_compose_specification() -> None:
    schema_file = (importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
                   / "compose-spec.json")
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(compose())]
    assert not errors, "\n".join(errors)


def test_every_image_has_an_explicit_tag() -> None:
    for name, service in services().items():
        image = service.get("image")
        assert image, f"{name} has no image"
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and "/" not in tag, (name, image)


def test_temporal_images_match_the_dev_server() -> None:
    versions = dev_server_versions()
    assert set(versions) == {"Server", "UI"}
    images = {s["image"].rpartition(":")[0]: s["image"].rpartition(":")[2]
              for s in services().values()}
    assert images["temporalio/server"] == versions["Server"]
    assert images["temporalio/admin-tools"] == versions["Server"]
    assert images["temporalio/ui"] == versions["UI"]
    assert "temporalio/auto-setup" not in images  # deprecated upstream


def test_the_worker_image_is_built_here_and_tagged_with_the_release() -> None:
    worker = services()["worker"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert worker["image"] == f"temporal-dlq-worker:{version}"
    assert (ROOT / worker["build"]["context"] / worker["build"]["dockerfile"]) == DOCKERFILE


def _jobs() -> set[str]:
    """Services some other service waits on to complete (one-shot jobs)."""
    return {target for s in services().values()
            for target, dep in (s.get("depends_on") or {}).items()
            if dep.get("condition") == "service_completed_successfully"}


def test_every_service_has_a_healthcheck_or_is_a_job_waited_for() -> None:
    jobs = _jobs()
    for name, service in services().items():
        check = service.get("healthcheck")
        assert check is not None, f"{name} has no healthcheck"
        if check.get("disable"):
            assert name in jobs, f"{name} disables its healthcheck but is no job"
            assert str(service.get("restart", "no")).startswith(("no", "on-failure")), name
        else:
            assert check["test"][0] in ("CMD", "CMD-SHELL"), name
            assert name not in jobs, f"{name} is waited for as a job but runs for good"


def test_depends_on_conditions_fit_their_targets() -> None:
    for name, service in services().items():
        for target, dep in (service.get("depends_on") or {}).items():
            assert target in services(), f"{name} depends on unknown {target}"
            condition = dep["condition"]
            checked = not services()[target]["healthcheck"].get("disable")
            if condition == "service_healthy":
                assert checked, f"{name} waits for {target} to be healthy; it has no check"
            else:
                assert condition == "service_completed_successfully", (name, target)
            # A profile-less service must not wait on one that runs only in a profile.
            if not service.get("profiles"):
                assert not services()[target].get("profiles"), (name, target)


def _listening(service: dict[str, Any]) -> set[int]:
    ports = {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}
    return ports | {int(p) for p in service.get("expose", [])}


def test_published_ports_are_unique_and_references_hit_listening_ports() -> None:
    published = [str(p).rsplit(":", 1)[0] for s in services().values()
                 for p in s.get("ports", [])]
    assert len(published) == len(set(published)), published
    text = json.dumps({n: {k: v for k, v in s.items() if k != "image"}
                       for n, s in services().items()})
    references = set(re.findall(r"(?:@|//|\b)([a-z][a-z0-9-]*):(\d{2,5})\b", text))
    names = set(services())
    hits = [(host, int(port)) for host, port in references if host in names]
    assert ("temporal", 7233) in hits and ("postgresql", 5432) in hits
    for host, port in hits:
        assert port in _listening(services()[host]), f"{host}:{port} is not a port {host} has"


def test_healthchecks_probe_ports_their_service_listens_on() -> None:
    for name, service in services().items():
        check = service["healthcheck"]
        if check.get("disable"):
            continue
        text = " ".join(check["test"][1:])
        for port in re.findall(r"(?:127\.0\.0\.1|localhost)[: ](\d{2,5})\b|-p (\d{2,5})", text):
            number = int(next(p for p in port if p))
            assert number in _listening(service), f"{name} probes {number}"


def test_volumes_are_declared_and_bind_mounts_exist() -> None:
    declared = set(compose().get("volumes") or {})
    used = set()
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"


def test_the_worker_stops_within_its_grace() -> None:
    worker = services()["worker"]
    grace = float(worker["environment"]["DLQ_SHUTDOWN_GRACE"])
    stop = worker["stop_grace_period"]
    assert stop.endswith("s") and float(stop[:-1]) > grace


def test_the_codec_endpoint_is_wired_to_the_web_ui() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())["services"]["temporal-ui"]["environment"]
    assert raw["TEMPORAL_CODEC_ENDPOINT"] == "${DLQ_CODEC_ENDPOINT:-}"


def test_the_metrics_profile_scrapes_what_exists() -> None:
    metrics = {n for n, s in services().items() if "metrics" in s.get("profiles", [])}
    assert metrics == {"prometheus", "grafana"}
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, port = target.split(":")
            assert int(port) in _listening(services()[host]), target


@pytest.mark.parametrize("rule", ["multi-stage", "non-root", "healthcheck", "entrypoint"])
def test_the_worker_dockerfile(rule: str) -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    if rule == "multi-stage":
        stages = [line for line in lines if line.startswith("FROM ")]
        assert len(stages) >= 2 and " AS " in stages[0]
        assert any(line.startswith("COPY --from=") for line in lines)
    elif rule == "non-root":
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        assert users and users[-1] not in ("root", "0")
    elif rule == "healthcheck":
        check = next(line for line in lines if line.startswith("HEALTHCHECK"))
        command = DOCKERFILE.read_text().split("HEALTHCHECK", 1)[1].split("CMD", 1)[1]
        assert json.loads(command.strip().splitlines()[0]) == \
            services()["worker"]["healthcheck"]["test"][1:]
        assert "--interval" in check
    else:
        assert 'ENTRYPOINT ["dlq-worker"]' in lines
        assert "STOPSIGNAL SIGTERM" in lines
    # What the image copies exists (a renamed folder would break the build).
    for line in lines:
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
