"""Jobs: an unblessed candidate stops at the blessing check (nothing registered, its MLflow run ended), retrain is
train tagged as a retrain, walkforward writes its report, and every job loads from the module pointer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_homes import LAX_BLESSING, SAMPLE_LAST, pipeline_settings, write_bars

from tradeops.pipelines.run import run_job

pytestmark = pytest.mark.slow
STRICT = {**LAX_BLESSING, "min_macro_f1": 0.99}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("jobs")
    bars_dir = write_bars(root / "bars")
    settings = pipeline_settings(root / "home", bars_dir)
    (run,) = run_job(settings, "ingest_daily", day=SAMPLE_LAST)
    assert run.ok, run.message()
    return root, bars_dir, settings


def test_unblessed_candidate_stops_before_registration_and_its_run_is_ended(ingested):
    root, bars_dir, _ = ingested
    strict = pipeline_settings(root / "home", bars_dir, model={"blessing": STRICT})
    (run,) = run_job(strict, "train", day=SAMPLE_LAST)
    assert run.status == "FAILURE"
    assert [c["check"] for c in run.failed_checks] == ["candidate_blessed"]
    assert "blessing:candidate_blessed" in run.message()
    assert set(run.materializations) == {"training_window", "candidate_model", "evaluation", "blessing"}
    assert run.materializations["blessing"]["blessed"] is False

    from mlflow.tracking import MlflowClient

    client = MlflowClient(strict.tracking_uri)
    mlrun = client.get_run(run.materializations["blessing"]["mlflow_run_id"])
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.tags["tradeops.stopped_at"] == "blessing"
    assert client.search_registered_models() == []


def test_retrain_is_the_train_graph_tagged_as_a_retrain(ingested):
    from tradeops.pipelines.definitions import build_defs

    _, _, settings = ingested
    defs = build_defs(settings)
    train, retrain = defs.resolve_job_def("train"), defs.resolve_job_def("retrain")
    assert retrain.tags["tradeops/trigger"] == "retrain"
    assert {n.name for n in retrain.nodes} == {n.name for n in train.nodes}
    # promote acts on the version the challenger sensor tags (tests/pipelines/test_sensor_wiring.py)
    assert {n.name for n in defs.resolve_job_def("promote").nodes} == {"promote_tagged_version"}


def test_walkforward_job_writes_its_report_for_the_last_known_year(ingested):
    _, _, settings = ingested
    (run,) = run_job(settings, "walkforward", day=SAMPLE_LAST)
    assert run.ok, run.message()
    meta = run.materializations["walkforward_report"]
    assert meta["test_years"] == "2012"
    doc = json.loads(Path(meta["report_path"]).read_text())
    assert doc["as_of"] == SAMPLE_LAST and doc["tickers"] == ["IBM"]
    assert all(f["test_year"] == 2012 for f in doc["folds"])


def test_defs_load_from_the_module_pointer_with_the_environment_settings(tmp_path, monkeypatch):
    """Executor workers and the webserver re-import `tradeops.pipelines.defs` from TRADEOPS_* alone."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    monkeypatch.setenv("TRADEOPS_HOME", str(tmp_path / "env-home"))
    monkeypatch.setenv("TRADEOPS_CONFIG", str(tmp_path / "none.yaml"))
    monkeypatch.setenv("TRADEOPS_PIPELINES__UNIVERSE", '["IBM","MSFT"]')
    import tradeops.pipelines.definitions as definitions

    monkeypatch.delitem(definitions.__dict__, "defs", raising=False)
    repo = ReconstructableRepository.for_module("tradeops.pipelines", "defs").get_definition()
    assert {"ingest_daily", "train", "retrain", "promote", "walkforward"} <= set(repo.job_names)
    keys = repo.get_job("ingest_daily").partitions_def.get_partition_keys()
    assert f"{SAMPLE_LAST}|MSFT" in keys
    assert not (tmp_path / "env-home").exists()  # building the definitions touches no state
