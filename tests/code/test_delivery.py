"""Delivery files: the Dockerfile, docker-compose.yml, the locks and the CI workflow say what the docs promise."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"postgres", "mlflow", "dagster-webserver", "dagster-daemon", "signal-service"}
BACKEND_VARS = {
    "TRADEOPS_ENV",
    "TRADEOPS_MLFLOW_TRACKING_URI",
    "TRADEOPS_DATABASE_URL",
    "TRADEOPS_DAGSTER_POSTGRES_URL",
    "TRADEOPS_LAKE_URI",
    "DAGSTER_HOME",
}
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|build-essential|make|cmake|clang|python3-dev|libpq-dev)\b")


def _stages(text: str) -> list[tuple[str, str, list[str]]]:
    """``(image, name, instructions)`` per ``FROM``; continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
    stages: list[tuple[str, str, list[str]]] = []
    for line in (l.strip() for l in joined.splitlines()):
        m = re.match(r"(?i)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line)
        if m:
            stages.append((m.group(1), m.group(2) or "", []))
        elif line and stages:
            stages[-1][2].append(line)
    return stages


def _args(text: str) -> dict[str, str]:
    return dict(re.findall(r"(?m)^ARG\s+(\w+)=(\S+)", text))


def _pinned(image: str) -> bool:
    """A digest, or a tag naming a full patch release (``3.11.14-slim-bookworm``), never ``latest`` or ``3.11``."""
    return bool(re.search(r"@sha256:[0-9a-f]{64}$", image) or re.search(r":\d+\.\d+\.\d+[-\w.]*$", image))


def test_dockerfile_is_multi_stage_pinned_non_root_without_build_tools() -> None:
    text = (ROOT / "Dockerfile").read_text()
    args = _args(text)
    stages = _stages(text)
    assert [name for _, name, _ in stages] == ["builder", "runtime"]
    for image, name, _ in stages:
        resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert _pinned(resolved), f"stage {name}: base {resolved} is not pinned"
        assert resolved.startswith("python:3.11"), resolved
    builder, final = stages[0][2], stages[1][2]
    assert any("--require-hashes -r requirements-runtime.lock" in line for line in builder)
    assert any(line.startswith("COPY --from=builder /opt/venv") for line in final)
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}, users
    assert users[-1] == "tradeops"
    runs = " ".join(line for line in final if line.upper().startswith("RUN "))
    assert not BUILD_TOOLS.search(runs), f"build tools in the final stage: {runs}"
    assert any(line == 'ENTRYPOINT ["tradeops"]' for line in final)


def test_pinned_check_refuses_floating_tags() -> None:
    assert not _pinned("python:3.11-slim-bookworm")
    assert not _pinned("python:latest")
    assert _pinned("python:3.11.14-slim-bookworm")
    assert _pinned("python:3.11-slim-bookworm@sha256:" + "a" * 64)


def test_compose_runs_every_role_configured_by_env() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert SERVICES <= set(services)
    for name in SERVICES - {"postgres"}:
        env = services[name]["environment"]
        assert BACKEND_VARS <= set(env), f"{name}: missing {BACKEND_VARS - set(env)}"
        assert env["TRADEOPS_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert env["TRADEOPS_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["TRADEOPS_DAGSTER_POSTGRES_URL"].startswith("postgresql+psycopg2://")
        assert "postgres" in services[name]["depends_on"]
    assert services["signal-service"]["command"][0] == "serve"
    assert services["mlflow"]["entrypoint"] == ["mlflow"]
    assert "postgresql+psycopg://" in " ".join(services["mlflow"]["command"])
    assert services["dagster-daemon"]["command"][:1] == ["run"]
    assert "healthcheck" in services["postgres"]


def test_compose_dagster_yaml_is_what_tradeops_writes_for_postgres() -> None:
    """Identical content: ``ensure_dagster_home`` never tries to rewrite the read-only mounted file."""
    from tradeops.pipelines.instance import instance_yaml

    assert (ROOT / "deploy/compose/dagster.yaml").read_text() == instance_yaml(postgres=True)


def test_profiles_named_by_the_environments_exist() -> None:
    assert {p.stem for p in (ROOT / "config").glob("*.yaml")} >= {"dev", "staging", "prod"}


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([a-z0-9][a-z0-9._-]*)(?:\[[^]]*\])?==(\S+)", line)
        if m:
            pins[m.group(1)] = m.group(2)
    return pins


def test_locks_are_hashed_cpu_only_and_agree() -> None:
    full, runtime = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-runtime.lock")
    assert full["torch"] == "2.13.0+cpu"
    assert not [name for name in full if name.startswith("nvidia-")]
    assert {"pytest", "ruff", "mypy", "pre-commit", "pytest-cov"} <= set(full)
    assert "pytest" not in runtime
    assert {name: full.get(name) for name in runtime} == runtime  # the image runs the tested versions
    for lock in ("requirements.lock", "requirements-runtime.lock"):
        blocks = re.split(r"\n(?=[a-z0-9])", (ROOT / lock).read_text())
        unhashed = [b.split()[0] for b in blocks if "==" in b.split("\n")[0] and "--hash=sha256:" not in b]
        assert not unhashed, f"{lock}: no hash for {unhashed}"


def test_every_action_is_pinned_to_a_commit() -> None:
    text = (ROOT / ".github/workflows/ci.yml").read_text()
    uses = re.findall(r"(?m)^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", text)
    assert uses
    for ref, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), f"{ref} is not pinned to a commit SHA"
        assert re.search(r"#\s*v\d+", comment), f"{ref}: no version comment"
    workflow = yaml.safe_load(text)
    assert {"lint", "test", "lock", "pipeline", "image"} <= set(workflow["jobs"])
    assert {"postgres", "redis"} <= set(workflow["jobs"]["test"]["services"])


def _compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _compose_available(), reason="no docker compose client here")
def test_docker_compose_config_validates() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
