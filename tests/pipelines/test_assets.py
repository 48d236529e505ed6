"""The whole asset graph materialised in-process on a tiny home: ingest_daily then train, as of one date."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from pipeline_homes import SAMPLE_LAST, pipeline_settings, write_bars

from tradeops.data import store as st
from tradeops.pipelines.instance import instance_for
from tradeops.pipelines.run import run_job

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("graph")
    settings = pipeline_settings(root / "home", write_bars(root / "bars"))
    ingest = run_job(settings, "ingest_daily", day=SAMPLE_LAST)
    train = run_job(settings, "train", day=SAMPLE_LAST)
    return settings, ingest, train


def test_ingest_daily_materialises_raw_bars_bars_features_labels_with_versions(graph):
    settings, ingest, _ = graph
    (run,) = ingest
    assert run.ok, run.message()
    assert run.partition == f"{SAMPLE_LAST}|IBM"
    assert set(run.materializations) == {"raw_bars", "bars", "features", "labels"}
    assert {c["check"] for c in run.checks} == {
        "contract",
        "statistical_schema",
        "anomalies",
        "conflicts",
        "drift",
        "destination",
    }
    assert all(c["passed"] for c in run.checks)
    lake = st.lake_for(settings)
    bars = run.materializations["bars"]
    assert bars["bars_version_before"] is None and bars["bars_version_after"] == lake.version(st.BARS) == 0
    assert bars["rows_total"] == len(lake.read_bars(["IBM"])) == run.materializations["raw_bars"]["rows"]
    feats, labels = run.materializations["features"], run.materializations["labels"]
    assert feats["features_version"] == lake.version(feats["table"])
    assert labels["labels_version"] == lake.version(labels["table"])
    assert feats["rows"] == bars["rows_total"] and 0 < labels["rows"] < feats["rows"]
    assert Path(bars["report_path"]).is_file()
    staged = Path(run.materializations["raw_bars"]["staged_path"])
    assert staged == settings.home.resolve() / "staging" / SAMPLE_LAST / "IBM.csv"
    assert staged.with_suffix(".json").is_file()


def test_train_materialises_every_stage_and_links_mlflow_and_tables(graph):
    settings, ingest, train = graph
    (run,) = train
    assert run.ok, run.message()
    assert set(run.materializations) == {
        "training_window",
        "candidate_model",
        "evaluation",
        "blessing",
        "registered_model",
        "champion",
    }
    run_ids = {m["mlflow_run_id"] for m in run.materializations.values()}
    assert len(run_ids) == 1
    window = run.materializations["training_window"]
    assert window["as_of"] == SAMPLE_LAST
    assert window["bars_version"] == ingest[0].materializations["bars"]["bars_version"]
    assert window["features_version"] == ingest[0].materializations["features"]["features_version"]
    champ = run.materializations["champion"]
    assert champ["promoted"] is True and champ["champion_after"] == champ["model_version"] == "1"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    mlrun = client.get_run(run_ids.pop())
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.tags["dagster.run_id"] == run.run_id
    assert mlrun.data.tags["tradeops.as_of"] == SAMPLE_LAST
    assert str(client.get_model_version_by_alias("cnn-ta-IBM", "champion").version) == "1"


def test_lineage_records_are_the_ones_catalog_reads(graph):
    settings, ingest, train = graph
    from tradeops.data.catalog import build_catalog

    lake = st.lake_for(settings)
    lineage = lake.read(st.LINEAGE)
    model_rows = lineage.loc[lineage["consumer_kind"] == "model"]
    assert set(model_rows["dataset"]) == {"bars", ingest[0].materializations["features"]["table"], "labels_w11"}
    assert set(model_rows["consumer_version"]) == {train[0].materializations["registered_model"]["model_version"]}
    assert build_catalog(lake)  # the catalog reads the same lake records without error


def test_runs_are_recorded_in_the_homes_dagster_instance(graph):
    settings, ingest, train = graph
    import dagster as dg

    instance = instance_for(settings)
    assert instance.get_run_by_id(ingest[0].run_id).status == dg.DagsterRunStatus.SUCCESS
    assert instance.get_run_by_id(train[0].run_id).tags["dagster/partition"] == SAMPLE_LAST
    assert instance.get_materialized_partitions(dg.AssetKey("bars")) == {f"{SAMPLE_LAST}|IBM"}
    assert (settings.dagster_home / "storage").is_dir()


def test_stage_outputs_round_trip_through_pickle(graph):
    """Regression: OnnxPredictor held an onnxruntime session, which cannot be pickled across processes."""
    settings, _, _ = graph
    path = settings.dagster_home / "storage" / "candidate_model" / SAMPLE_LAST
    fitted = pickle.loads(path.read_bytes())
    again = pickle.loads(pickle.dumps(fitted.bundle.predictor))
    assert again.image_shape == fitted.bundle.predictor.image_shape
    import numpy as np

    x = np.zeros((2, *again.image_shape), dtype=np.float32)
    assert np.array_equal(again.predict_proba(x), fitted.bundle.predictor.predict_proba(x))


def test_re_running_the_same_day_writes_no_new_bars_version(graph):
    settings, _, _ = graph
    lake = st.lake_for(settings)
    before = lake.version(st.BARS)
    (again,) = run_job(settings, "ingest_daily", day=SAMPLE_LAST)
    assert again.ok, again.message()
    assert again.materializations["bars"]["rows_written"] == 0
    assert lake.version(st.BARS) == before
