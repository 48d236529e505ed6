"""A half-written registry and a failing champion comparison, end to end: `kill -9` during `train`, versions without
their tags, `promote` guards, `rollback` walking back, and `train` refusing to bless against a champion it could not
re-score (IBM, 2 epochs; one trained home per module, copied per test)."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
from mlflow.tracking import MlflowClient

from homes import copy_home
from tradeops.config import load_settings
from tradeops.model import registry as reg

pytestmark = pytest.mark.slow  # trains models or starts processes; `pytest -m 'not slow'` skips

LAX = {
    "TRADEOPS_MODEL__BLESSING__MIN_MACRO_F1": "0",
    "TRADEOPS_MODEL__BLESSING__MIN_RECALL_BUY": "0",
    "TRADEOPS_MODEL__BLESSING__MIN_RECALL_SELL": "0",
    "TRADEOPS_MODEL__BLESSING__MIN_NET_SHARPE": "-100",
}
NAME = "cnn-ta-IBM"
CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tradeops) -> Path:
    """IBM ingested and trained once (v1, blessed, auto-promoted champion), trained from an unrelated directory."""
    home = tmp_path_factory.mktemp("registry-cli")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    assert tradeops(home, "ingest", "--tickers", "IBM").exit_code == 0
    cwd = os.getcwd()
    os.chdir(elsewhere)
    try:
        r = tradeops(home, "train", "--tickers", "IBM", "--epochs", "2", env=LAX)
    finally:
        os.chdir(cwd)
    assert r.exit_code == 0, r.output
    return home


@pytest.fixture()
def home(trained, tmp_path) -> Path:
    return copy_home(trained, tmp_path / "home")


def client(home: Path) -> MlflowClient:
    return reg.client(load_settings(home=home))


def aliases(home: Path) -> dict[str, str]:
    return {k: str(v) for k, v in client(home).get_registered_model(NAME).aliases.items()}


def add_version(home: Path, tags: dict[str, str]) -> str:
    """Register v1's model again with ``tags`` (what an interrupted or a different `train` leaves)."""
    c = client(home)
    v1 = c.get_model_version(NAME, "1")
    return str(c.create_model_version(NAME, source=v1.source, run_id=v1.run_id, tags=tags).version)


def test_trained_version_records_complete_lineage_even_from_outside_the_checkout(home, tradeops):
    # Regression: trained from a directory outside the checkout, the model recorded git_commit "unknown".
    head = subprocess.run(
        ["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (model,) = tradeops(home, "models", "--json").json()
    (v1,) = model["versions"]
    assert v1["complete"] is True and v1["missing_tags"] == [] and v1["tags"][reg.COMPLETE_TAG] == "true"
    assert v1["tags"]["git_commit"] in (head, head + "+dirty")
    assert v1["tags"]["tradeops_version"] not in ("", "unknown")
    run = client(home).get_run(v1["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags[reg.PID_TAG].isdigit()
    assert run.data.tags[reg.HOST_TAG] == socket.gethostname()


def test_versions_left_half_written_are_shown_incomplete_and_refused(home, tradeops):
    bare = add_version(home, {})  # a kill between registering and tagging, before tags came with registration
    flagged = add_version(home, {**client(home).get_model_version(NAME, "1").tags, reg.COMPLETE_TAG: "false"})
    models = tradeops(home, "models")
    assert models.exit_code == 0 and models.stdout.count("INCOMPLETE") == 2, models.output
    (model,) = tradeops(home, "models", "--json").json()
    assert [v["complete"] for v in model["versions"]] == [True, False, False]
    r = tradeops(home, "promote", bare)
    assert r.exit_code == 1 and f"{NAME} v{bare} is incomplete" in r.stderr and "blessed" in r.stderr, r.output
    r = tradeops(home, "promote", flagged, "--force")
    assert r.exit_code == 1 and f"v{flagged} is incomplete" in r.stderr and reg.COMPLETE_TAG in r.stderr, r.output
    assert aliases(home) == {"champion": "1", "challenger": "1"}


def test_promoting_an_unblessed_version_warns_and_needs_force(home, tradeops):
    unblessed = add_version(home, {**client(home).get_model_version(NAME, "1").tags, "blessed": "false"})
    r = tradeops(home, "promote", unblessed)
    assert r.exit_code == 2 and "not blessed" in r.stderr and "--force" in r.stderr, r.output
    assert aliases(home)["champion"] == "1"
    r = tradeops(home, "promote", unblessed, "--force")
    assert r.exit_code == 0 and "warning" in r.stderr and "not blessed" in r.stderr, r.output
    assert f"champion is now v{unblessed}" in r.stdout and aliases(home)["champion"] == unblessed


def test_rollback_walks_back_one_champion_at_a_time(home, tradeops):
    # Regression: promote 3; promote 1; rollback -> 3; rollback -> 1; rollback -> 3 ... (the champion before 3 was
    # unreachable). Here v1 is champion first (auto-promoted), then v3, then v1 again.
    tags = client(home).get_model_version(NAME, "1").tags
    assert [add_version(home, tags), add_version(home, tags)] == ["2", "3"]
    assert tradeops(home, "promote", "3").exit_code == 0
    assert tradeops(home, "promote", "1").exit_code == 0
    r = tradeops(home, "rollback")
    assert r.exit_code == 0 and "champion is now v3 (was v1)" in r.stdout, r.output
    r = tradeops(home, "rollback")
    assert r.exit_code == 0 and "champion is now v1 (was v3)" in r.stdout, r.output
    r = tradeops(home, "rollback")
    assert r.exit_code == 2 and "no earlier champion recorded" in r.stderr, r.output
    assert aliases(home)["champion"] == "1"


def test_train_during_a_tracking_outage_fails_instead_of_skipping_the_champion(home, tradeops, monkeypatch):
    # Regression: any error of the champion lookup counted as "no champion yet", so the candidate was blessed
    # without a comparison and auto-promoted. Also: a run orphaned by a killed training ends KILLED at the start.
    c = client(home)
    orphan = c.create_run(
        c.get_experiment_by_name(reg.EXPERIMENT).experiment_id,
        tags={reg.PID_TAG: str(_dead_pid()), reg.HOST_TAG: socket.gethostname()},
    ).info.run_id

    def outage(self, name, *args, **kwargs):
        raise MlflowException(f"registered-models/get {name}: connection refused", error_code=TEMPORARILY_UNAVAILABLE)

    with monkeypatch.context() as m:
        m.setattr(MlflowClient, "get_registered_model", outage)
        r = tradeops(home, "train", "--tickers", "IBM", "--epochs", "2", env=LAX)
    assert r.exit_code == 1, r.output
    for text in (
        "cannot look up the champion of cnn-ta-IBM",
        "connection refused",
        "not registered",
        "no alias was changed",
    ):
        assert text in r.stderr, text
    assert aliases(home) == {"champion": "1", "challenger": "1"}
    assert [v.version for v in c.search_model_versions(f"name='{NAME}'")] == [1]
    assert c.get_run(orphan).info.status == "KILLED"
    failed = [
        run
        for run in c.search_runs([c.get_experiment_by_name(reg.EXPERIMENT).experiment_id])
        if run.info.run_id != orphan and run.info.status != "FINISHED"
    ]
    assert [run.info.status for run in failed] == ["FAILED"]


def test_train_with_the_champion_artifacts_missing_fails_with_a_message(home, tradeops):
    # Regression: `train` died with an MLflow traceback when the champion's files were gone.
    shutil.rmtree(home / "mlartifacts" / "models")
    r = tradeops(home, "train", "--tickers", "IBM", "--epochs", "2", env=LAX)
    assert r.exit_code == 1, r.output
    assert "cannot load champion cnn-ta-IBM v1" in r.stderr and "not registered" in r.stderr, r.output
    assert aliases(home) == {"champion": "1", "challenger": "1"}
    assert [v.version for v in client(home).search_model_versions(f"name='{NAME}'")] == [1]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_train_killed_with_sigkill_leaves_a_run_the_next_start_marks_killed(home, tmp_path):
    # Regression: `kill -9` during `train` left the MLflow run RUNNING forever.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEOPS_")}
    env["TRADEOPS_CONFIG"] = str(tmp_path / "none.yaml")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradeops.cli.main",
            "--home",
            str(home),
            "train",
            "--tickers",
            "IBM",
            "--epochs",
            "200",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = home / "mlflow.db"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            with sqlite3.connect(db) as con:
                running = con.execute("SELECT run_uuid FROM runs WHERE status = 'RUNNING'").fetchall()
            if running:
                break
            time.sleep(0.2)
        assert proc.poll() is None and len(running) == 1, "the training never started its run"
    finally:
        proc.kill()
        proc.wait()
    (run_id,) = running[0]
    settings = load_settings(home=home)
    c = reg.client(settings)
    assert c.get_run(run_id).info.status == "RUNNING"
    assert reg.reap_orphaned_runs(settings) == [run_id]
    run = c.get_run(run_id)
    assert run.info.status == "KILLED" and f"process {proc.pid}" in run.data.tags[reg.REAPED_TAG]
    assert aliases(home) == {"champion": "1", "challenger": "1"}
