"""`tradeops ui dagster`: webserver + daemon as children, stopped cleanly on Ctrl-C, both stopped if one dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tradeops.cli.model import dagster_ui_commands
from tradeops.cli.supervise import supervise

PY = sys.executable


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def sleeper(pidfile: Path) -> list[str]:
    return [PY, "-c", f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"]


def wait_for(pred, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_help_names_dagster(tradeops):
    result = tradeops(None, "ui", "dagster", "--help")
    assert result.exit_code == 0 and "dagster" in result.stdout and "--port" in result.stdout


def test_commands_are_webserver_and_daemon_on_the_code_location():
    (web_name, web), (daemon_name, daemon) = dagster_ui_commands("0.0.0.0", 3111)
    assert (web_name, daemon_name) == ("dagster-webserver", "dagster-daemon")
    location = ["-m", "tradeops.pipelines", "-a", "defs"]  # -a: Dagster's module scan cannot see a lazy `defs`
    assert web[1:] == ["-m", "dagster_webserver", *location, "-h", "0.0.0.0", "-p", "3111"]
    assert daemon[1:] == ["-m", "dagster._daemon", "run", *location]


def test_a_dying_child_stops_the_other_and_fails(tmp_path):
    pidfile = tmp_path / "a.pid"
    outcome = supervise(
        [("a", sleeper(pidfile)), ("b", [PY, "-c", "import time; time.sleep(0.5); raise SystemExit(3)"])],
        env=dict(os.environ),
        poll_seconds=0.05,
    )
    assert outcome.exit_code == 1 and outcome.message == "b exited with code 3; stopped a"
    assert not alive(int(pidfile.read_text()))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_both_children_and_exits_0(tmp_path, sig):
    pids = [tmp_path / "a.pid", tmp_path / "b.pid"]
    script = (
        "import os, sys\n"
        "from tradeops.cli.supervise import supervise\n"
        f"out = supervise([('a', {sleeper(pids[0])!r}), ('b', {sleeper(pids[1])!r})], env=dict(os.environ),"
        " poll_seconds=0.05, grace_seconds=5)\n"
        "print(out.message); sys.exit(out.exit_code)\n"
    )
    proc = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE, text=True)
    wait_for(lambda: all(p.exists() and p.read_text() for p in pids))
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert out.startswith("stopped a, b")
    assert not any(alive(int(p.read_text())) for p in pids)


def test_ui_dagster_gives_children_the_home_and_reports_a_dead_child(tradeops, tmp_path, monkeypatch):
    envfile = tmp_path / "env.json"
    keys = ["DAGSTER_HOME", "DAGSTER_DISABLE_TELEMETRY", "TRADEOPS_HOME"]
    dump = f"import json, os, time; json.dump({{k: os.environ.get(k) for k in {keys!r}}}, open({str(envfile)!r}, 'w'))"
    monkeypatch.setattr(
        "tradeops.cli.model.dagster_ui_commands",
        lambda host, port: [
            ("dagster-webserver", [PY, "-c", dump + "; time.sleep(60)"]),
            ("dagster-daemon", [PY, "-c", "import time; time.sleep(1); raise SystemExit(4)"]),
        ],
    )
    home = tmp_path / "home"
    result = tradeops(home, "ui", "dagster", "--port", "3999")
    assert result.exit_code == 1, result.output
    assert "http://127.0.0.1:3999" in result.stdout
    assert "dagster-daemon exited with code 4" in result.stderr
    env = json.loads(envfile.read_text())
    assert env == {
        "DAGSTER_HOME": str((home / "dagster").resolve()),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "TRADEOPS_HOME": str(home.resolve()),
    }
    assert (home / "dagster" / "dagster.yaml").is_file()


def test_unknown_ui_is_a_usage_error(tradeops, tmp_path):
    result = tradeops(tmp_path, "ui", "kibana")
    assert result.exit_code == 2 and "dagster, mlflow" in result.output


@pytest.mark.slow
def test_real_webserver_and_daemon_start_and_stop_on_sigint(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_")}
    env["TRADEOPS_CONFIG"] = str(tmp_path / "none.yaml")
    proc = subprocess.Popen(
        [PY, "-m", "tradeops.cli.main", "--home", str(tmp_path / "home"), "ui", "dagster", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def up() -> bool:
        if proc.poll() is not None:
            # communicate with a timeout, not read(): a child still holding the pipe would block read() forever
            try:
                out = proc.communicate(timeout=30)[0]
            except subprocess.TimeoutExpired:
                out = "(no end of output within 30 s: a child process still holds the pipe)"
            raise AssertionError(f"tradeops ui dagster exited with {proc.returncode}:\n{out}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    jobs: list[str] = []
    last: list[tuple[str, str]] = []

    def location_loaded() -> bool:
        # Regression: `-m tradeops.pipelines` without `-a defs` served a code location that failed to load
        # ("No Definitions ... found"), so the UI showed runs but no jobs or assets. A load error fails at once
        # with Dagster's message; a location still loading is waited for (slow on a busy 2-core CI machine).
        gql = (
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError {"
            " __typename ... on PythonError { message }"
            " ... on RepositoryLocation { repositories { jobs { name } } } } } } } }"
        )
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=json.dumps({"query": gql}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            body = json.loads(r.read())
        entries = body["data"]["workspaceOrError"]["locationEntries"]
        last[:] = [(e["name"], e["loadStatus"]) for e in entries]
        for entry in entries:
            loaded = entry["locationOrLoadError"] or {}
            if loaded.get("__typename") == "PythonError":
                raise AssertionError(f"code location {entry['name']} failed to load: {loaded['message']}")
        jobs[:] = [
            j["name"]
            for e in entries
            for repo in (e["locationOrLoadError"] or {}).get("repositories", [])
            for j in repo["jobs"]
        ]
        return bool(jobs)

    try:
        wait_for(up, timeout=90)
        try:
            wait_for(location_loaded, timeout=240)
        except AssertionError as exc:
            proc.kill()
            raise AssertionError(f"{exc}; locations {last}; output:\n{proc.communicate()[0]}") from exc
        assert {"ingest_daily", "train", "retrain", "walkforward", "promote"} <= set(jobs)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert f"Dagster UI on http://127.0.0.1:{port}" in out and "stopped dagster-webserver, dagster-daemon" in out
