"""The registry without training: completeness of versions, promotion guards, the champion stack behind rollback,
champion lookups that fail loudly, reaping runs of killed trainings, and lineage read from the package's checkout.

Versions here are registered directly (a dummy source, the tags `train` writes), one registered model per test, in
one MLflow home per module.
"""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as hst
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
from mlflow.tracking import MlflowClient

from tradeops.config import load_settings
from tradeops.errors import TradeopsError, UsageError
from tradeops.model import registry as reg
from tradeops.model.training import git_commit, tradeops_version

CHECKOUT = Path(__file__).resolve().parents[2]
_names = itertools.count()


def full_tags(**overrides: str) -> dict[str, str]:
    """The tags `train` registers a finished version with."""
    tags = {
        "run_id": "r" * 32,
        "feature_set_version": "fs1",
        "git_commit": "abc",
        "tradeops_version": "0.1.0",
        "bars_version": "0",
        "features_version": "0",
        "labels_version": "0",
        "blessed": "true",
        reg.COMPLETE_TAG: "true",
    }
    return {**tags, **overrides}


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    s = load_settings(home=tmp_path_factory.mktemp("registry"))
    reg.configure_mlflow(s)
    return s


@pytest.fixture(scope="module")
def source(settings) -> str:
    path = settings.home / "dummy-model"
    path.mkdir(exist_ok=True)
    return path.as_uri()


def new_model(settings, source: str, *tag_sets: dict[str, str]) -> str:
    """A fresh registered model with one version per tag set (v1, v2, ...); returns its name."""
    c = reg.client(settings)
    name = f"m{next(_names)}"
    c.create_registered_model(name)
    for tags in tag_sets:
        c.create_model_version(name, source=source, tags=tags)
    return name


def champion(settings, name: str) -> str | None:
    return reg.alias_version(reg.client(settings), name, reg.CHAMPION)


# --- completeness and promotion guards -----------------------------------------------------------------------------


def test_promote_refuses_a_version_registered_without_its_tags(settings, source):
    # What a kill right after registration left before registration carried its tags.
    name = new_model(settings, source, full_tags(), {})
    reg.promote(settings, name, "1", reason="test")
    with pytest.raises(TradeopsError, match=r"v2 is incomplete.*feature_set_version.*blessed") as err:
        reg.promote(settings, name, "2", reason="test", force=True)
    assert not isinstance(err.value, UsageError) and err.value.exit_code == 1
    assert champion(settings, name) == "1"


def test_promote_refuses_a_version_flagged_incomplete(settings, source):
    name = new_model(settings, source, full_tags(**{reg.COMPLETE_TAG: "false"}))
    with pytest.raises(TradeopsError, match=r"v1 is incomplete.*tradeops\.complete"):
        reg.promote(settings, name, "1", reason="test", force=True)
    assert champion(settings, name) is None
    (version,) = reg.describe(settings, name)["versions"]
    assert version["complete"] is False and version["missing_tags"] == [reg.COMPLETE_TAG]


def test_versions_from_before_the_complete_flag_count_as_complete_when_fully_tagged(settings, source):
    legacy = full_tags()
    del legacy[reg.COMPLETE_TAG], legacy["tradeops_version"]
    name = new_model(settings, source, legacy)
    assert reg.describe(settings, name)["versions"][0]["complete"] is True
    assert reg.promote(settings, name, "1", reason="test")["champion"] == "1"


def test_promoting_an_unblessed_version_needs_force(settings, source):
    name = new_model(settings, source, full_tags(blessed="false"))
    with pytest.raises(UsageError, match="v1 is not blessed.*--force"):
        reg.promote(settings, name, "1", reason="test")
    assert champion(settings, name) is None
    entry = reg.promote(settings, name, "1", reason="test", force=True)
    assert entry["forced"] and entry["changed"] and champion(settings, name) == "1"


def test_promoting_the_champion_again_records_nothing(settings, source):
    name = new_model(settings, source, full_tags())
    reg.promote(settings, name, "1", reason="test")
    again = reg.promote(settings, name, "1", reason="test")
    assert again["changed"] is False and len(reg.describe(settings, name)["history"]) == 1


def test_promote_of_an_unknown_version_is_a_usage_error(settings, source):
    name = new_model(settings, source, full_tags())
    with pytest.raises(UsageError, match="no version 9"):
        reg.promote(settings, name, "9", reason="test")


# --- rollback: a stack of champions --------------------------------------------------------------------------------


def test_rollback_walks_back_past_the_previous_champion_instead_of_flipping(settings, source):
    # Regression: promote 3; promote 1; rollback -> 3; rollback went back to 1, and the champion before 3 was lost.
    name = new_model(settings, source, full_tags(), full_tags(), full_tags())
    for v in ("2", "3", "1"):
        reg.promote(settings, name, v, reason="test")
    assert reg.rollback(settings, name)["champion"] == "3"
    entry = reg.rollback(settings, name)
    assert entry["champion"] == "2" and entry["previous"] == "3" and entry["undoes"] == 1
    with pytest.raises(UsageError, match="no earlier champion recorded before v2"):
        reg.rollback(settings, name)
    assert champion(settings, name) == "2"


def test_rollback_reads_histories_written_before_entries_had_an_action(settings, source):
    import json

    name = new_model(settings, source, full_tags(), full_tags(), full_tags())
    c = reg.client(settings)
    legacy = [
        {"champion": "1", "previous": None, "run_id": None, "reason": "blessed"},
        {"champion": "2", "previous": "1", "run_id": None, "reason": "manual"},
        {"champion": "3", "previous": "2", "run_id": None, "reason": "manual"},
        {"champion": "2", "previous": "3", "run_id": None, "reason": "rollback from v3"},
    ]
    c.set_registered_model_tag(name, reg.HISTORY_TAG, json.dumps(legacy))
    c.set_registered_model_alias(name, reg.CHAMPION, "2")
    assert reg.rollback(settings, name)["champion"] == "1"


def test_rollback_refuses_when_the_alias_was_moved_outside_tradeops(settings, source):
    name = new_model(settings, source, full_tags(), full_tags(), full_tags())
    reg.promote(settings, name, "1", reason="test")
    reg.promote(settings, name, "2", reason="test")
    reg.client(settings).set_registered_model_alias(name, reg.CHAMPION, "3")
    with pytest.raises(TradeopsError, match="points at v3 but the last recorded champion is v2"):
        reg.rollback(settings, name)
    assert champion(settings, name) == "3"


def test_rollback_without_a_champion_is_a_usage_error(settings, source):
    name = new_model(settings, source, full_tags())
    with pytest.raises(UsageError, match="no champion to roll back"):
        reg.rollback(settings, name)


STEPS = hst.lists(
    hst.one_of(hst.tuples(hst.just("promote"), hst.sampled_from(["1", "2", "3"])), hst.just(("rollback", None))),
    max_size=8,
)


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STEPS)
def test_promote_and_rollback_sequences_follow_a_stack_of_champions(settings, source, steps):
    name = new_model(settings, source, full_tags(), full_tags(), full_tags())
    stack: list[str] = []  # the model: promote pushes (unless already on top), rollback pops down to the one before
    for action, version in steps:
        if action == "promote":
            entry = reg.promote(settings, name, version, reason="test")
            assert entry["changed"] == (not stack or stack[-1] != version)
            if entry["changed"]:
                stack.append(version)
        elif len(stack) < 2:
            with pytest.raises(UsageError):
                reg.rollback(settings, name)
        else:
            stack.pop()
            assert reg.rollback(settings, name)["champion"] == stack[-1]
        assert champion(settings, name) == (stack[-1] if stack else None)


def test_champion_stack_pops_one_promotion_per_rollback():
    history = [
        {"action": "promote", "champion": "1"},
        {"action": "promote", "champion": "2"},
        {"action": "rollback", "champion": "1"},
        {"action": "promote", "champion": "3"},
        {"action": "rollback", "champion": "1"},
        {"action": "rollback", "champion": None},
    ]
    assert reg.champion_stack(history[:4]) == [0, 3]
    assert reg.champion_stack(history) == []


# --- champion lookup: only "does not exist" means no champion ---------------------------------------------------


def test_alias_lookup_reports_no_champion_only_when_model_or_alias_is_missing(settings, source):
    c = reg.client(settings)
    assert reg.alias_version(c, "never-registered", reg.CHAMPION) is None
    name = new_model(settings, source, full_tags())
    assert reg.alias_version(c, name, reg.CHAMPION) is None


def test_alias_lookup_during_a_tracking_outage_is_an_error_not_no_champion(settings, source, monkeypatch):
    name = new_model(settings, source, full_tags())
    reg.promote(settings, name, "1", reason="test")

    def outage(self, *args, **kwargs):
        raise MlflowException("connection refused", error_code=TEMPORARILY_UNAVAILABLE)

    monkeypatch.setattr(MlflowClient, "get_registered_model", outage)
    with pytest.raises(reg.RegistryError, match="TEMPORARILY_UNAVAILABLE.*connection refused"):
        reg.alias_version(MlflowClient(tracking_uri=settings.tracking_uri), name, reg.CHAMPION)


def test_an_unreachable_tracking_server_is_a_registry_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    s = load_settings(home=tmp_path, mlflow_tracking_uri="http://127.0.0.1:9")
    with pytest.raises(reg.RegistryError, match="tracking store http://127.0.0.1:9"):
        reg.configure_mlflow(s)


def test_a_garbled_tracking_store_is_a_registry_error(tmp_path):
    (tmp_path / "mlflow.db").write_text("not a database")
    with pytest.raises(reg.RegistryError, match="file is not a database"):
        reg.alias_version(reg.client(load_settings(home=tmp_path)), "m", reg.CHAMPION)


# --- reaping runs of killed trainings ---------------------------------------------------------------------------


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_runs_of_dead_processes_on_this_host_are_marked_killed_and_live_ones_are_left(settings):
    c = reg.client(settings)
    exp = c.get_experiment_by_name(reg.EXPERIMENT).experiment_id
    host = socket.gethostname()
    me = reg.run_owner_tags()
    cases = {
        "dead": {reg.PID_TAG: str(dead_pid()), reg.HOST_TAG: host},
        "live": me,
        "reused_pid": {**me, reg.PID_START_TAG: "1"},  # our pid, but not the process that started the run
        "other_host": {reg.PID_TAG: str(dead_pid()), reg.HOST_TAG: host + "-elsewhere"},
        "untagged": {},
    }
    runs = {k: c.create_run(exp, tags=tags).info.run_id for k, tags in cases.items()}
    reaped = reg.reap_orphaned_runs(settings)
    assert set(reaped) == {runs["dead"], runs["reused_pid"]}
    status = {k: c.get_run(r).info.status for k, r in runs.items()}
    assert status == {
        "dead": "KILLED",
        "live": "RUNNING",
        "reused_pid": "KILLED",
        "other_host": "RUNNING",
        "untagged": "RUNNING",
    }
    assert "is gone" in c.get_run(runs["dead"]).data.tags[reg.REAPED_TAG]
    assert reg.reap_orphaned_runs(settings) == []
    for k in ("live", "other_host", "untagged"):
        c.set_terminated(runs[k])


def test_reaping_a_home_that_never_tracked_anything_creates_no_store(tmp_path):
    s = load_settings(home=tmp_path)
    assert reg.reap_orphaned_runs(s) == []
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs procfs")
def test_a_killed_process_not_yet_waited_for_counts_as_gone():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert reg.process_alive(proc.pid, reg.process_start(proc.pid))
    proc.kill()
    for _ in range(500):  # until the kernel has made it a zombie (its parent, this test, has not waited yet)
        if Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.01)
    assert not reg.process_alive(proc.pid, None)
    proc.wait()
    assert not reg.process_alive(proc.pid, None)


# --- lineage: the commit of the running source, whatever the cwd -----------------------------------------------


def test_git_commit_is_read_from_the_package_checkout_not_the_current_directory(tmp_path, monkeypatch):
    # Regression: models trained from a directory outside the checkout recorded git_commit "unknown".
    head = subprocess.run(
        ["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.chdir(tmp_path)
    assert git_commit() in (head, head + "+dirty")


def test_git_commit_falls_back_to_the_commit_recorded_at_install(monkeypatch, tmp_path):
    import tradeops
    from tradeops.model import training as pipeline

    monkeypatch.setattr(tradeops, "__file__", str(tmp_path / "tradeops" / "__init__.py"))
    (tmp_path / "tradeops").mkdir()
    monkeypatch.setattr(pipeline, "_installed_commit", lambda: "f" * 40)
    assert git_commit() == "f" * 40
    monkeypatch.setattr(pipeline, "_installed_commit", lambda: None)
    assert git_commit() == "unknown"


def test_tradeops_version_is_the_installed_distribution():
    from importlib.metadata import version

    assert tradeops_version() == version("tradeops")
