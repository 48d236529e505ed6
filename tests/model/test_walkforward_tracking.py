"""Walk-forward in MLflow: one parent run (params, metrics, artifacts) and one child run per fold whose metrics are
those of the fold's own test predictions; the CLI records it unless ``--no-track``."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from tradeops.errors import TradeopsError
from tradeops.model.tracking import (
    confusion_matrix_text,
    flatten_params,
    log_walkforward,
    walkforward_run_name,
    walkforward_runs,
)

pytestmark = pytest.mark.slow  # trains models; `pytest -m 'not slow'` skips

CLASSES = ["BUY", "SELL", "HOLD"]
CONFIG = {"preset": "cnn-ta", "tickers": ["IBM"], "train_years": 3, "epochs": 1, "workers": 1, "extra": {"a": 2}}


@pytest.fixture(scope="module")
def home(tmp_path_factory, tradeops) -> Path:
    h = tmp_path_factory.mktemp("walkforward-tracking")
    assert tradeops(h, "ingest", "--tickers", "IBM").exit_code == 0
    return h


@pytest.fixture(scope="module")
def settings(home, tmp_path_factory):
    from tradeops.config import load_settings

    with pytest.MonkeyPatch.context() as mp:  # the developer's TRADEOPS_* and config file stay out
        for key in [k for k in os.environ if k.startswith("TRADEOPS_")]:
            mp.delenv(key)
        mp.setenv("TRADEOPS_CONFIG", str(tmp_path_factory.mktemp("no-config") / "tradeops.yaml"))
        return load_settings(home=home)


@pytest.fixture(scope="module")
def logged(settings):
    from tradeops.model.walkforward import run_walkforward

    result = run_walkforward(
        settings, preset="cnn-ta", tickers=["IBM"], test_years=[2011, 2012], train_years=3, epochs=1
    )
    return result, log_walkforward(settings, result, config=CONFIG)


@pytest.fixture(scope="module")
def client(settings, logged):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri)


def children(client, run_id: str) -> list:
    exp = client.get_run(run_id).info.experiment_id
    return client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'")


def test_parent_run_has_params_metrics_and_artifacts(logged, client, tmp_path):
    result, run_id = logged
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "walkforward-cnn-ta-IBM-2011-2012"
    assert run.data.tags["tradeops.kind"] == "walkforward"
    assert run.data.tags.get("mlflow.parentRunId") is None
    params = run.data.params
    versions = result.evaluation["versions"]
    assert params["preset"] == "cnn-ta" and params["tickers"] == "IBM" and params["n_tickers"] == "1"
    assert params["train_years"] == "3" and params["epochs"] == "1" and params["workers"] == "1"
    assert params["extra.a"] == "2"  # nested config flattened
    assert params["test_years"] == "2011,2012" and params["mode"] == "realistic" and params["pooled"] == "False"
    assert params["seeds"] == ",".join(map(str, result.seeds))
    assert {params[f"{k}_version"] for k in ("bars", "features", "labels")} == {
        str(versions[k]) for k in ("bars", "features", "labels")
    }
    metrics = run.data.metrics
    summary = result.evaluation["summary"]
    for key in ("macro_f1", "accuracy", "net_annualized_return", "bh_annualized_return", "f1_BUY"):
        assert metrics[key] == pytest.approx(summary[key]), key
    assert metrics["timing.wall_seconds"] == pytest.approx(result.timing["wall_seconds"])
    assert metrics["timing.cnn_fit_seconds"] == pytest.approx(result.timing["cnn_fit_seconds"])
    assert metrics["n_folds"] == 2
    assert metrics["table.model.mean"] == pytest.approx(result.table.loc["IBM", "model"])

    assert {a.path for a in client.list_artifacts(run_id)} == {
        "walkforward.json",
        "table.csv",
        "predictions.parquet",
        "confusion_matrix.txt",
    }
    local = Path(client.download_artifacts(run_id, "", str(tmp_path)))
    doc = json.loads((local / "walkforward.json").read_text())
    assert doc["folds"] == json.loads(json.dumps(result.folds))
    assert doc["evaluation"]["summary"]["macro_f1"] == pytest.approx(summary["macro_f1"])
    table = pd.read_csv(local / "table.csv", index_col="ticker")
    assert table.loc["IBM", "buy_and_hold"] == pytest.approx(result.table.loc["IBM", "buy_and_hold"])
    preds = pd.read_parquet(local / "predictions.parquet")
    assert len(preds) == len(result.predictions) and list(preds.columns) == list(result.predictions.columns)
    assert preds["signal"].tolist() == result.predictions["signal"].tolist()
    cm = result.evaluation["classification"]["confusion_matrix"]
    text = (local / "confusion_matrix.txt").read_text()
    assert text == confusion_matrix_text(cm, CLASSES)
    lines = text.splitlines()
    assert lines[1].split()[2:] == [str(v) for v in cm[0]]  # "true BUY" row


def test_one_child_run_per_fold_with_its_own_metrics(logged, client):
    result, run_id = logged
    kids = children(client, run_id)
    assert len(kids) == 2
    assert sorted(k.info.run_name for k in kids) == ["IBM-2011", "IBM-2012"]
    folds = {f"{f['who']}-{f['test_year']}": f for f in result.folds}
    seed = result.seeds[0]
    for kid in kids:
        assert kid.info.status == "FINISHED"
        assert kid.data.tags["mlflow.parentRunId"] == run_id
        assert kid.data.tags["tradeops.kind"] == "walkforward_fold"
        fold = folds[kid.info.run_name]
        assert kid.data.params["test_year"] == str(fold["test_year"]) and kid.data.params["fit"] == fold["fit"]
        assert kid.data.params["seed"] == str(seed)
        assert kid.data.metrics["trained_samples"] == fold["trained_samples"]
        assert kid.data.metrics["best_epoch"] == fold["best_epoch"] == 1  # one epoch, 1-based
        p = result.predictions
        rows = p.loc[(p["test_year"] == fold["test_year"]) & (p["seed"] == seed) & p["y_true"].notna()]
        assert len(rows) > 100  # a year of labelled test rows
        y, s = rows["y_true"].tolist(), rows["signal"].tolist()
        m = kid.data.metrics
        assert m["labelled_rows"] == len(rows)
        assert m["macro_f1"] == pytest.approx(f1_score(y, s, labels=CLASSES, average="macro", zero_division=0))
        assert m["accuracy"] == pytest.approx(accuracy_score(y, s))
        per_class = f1_score(y, s, labels=CLASSES, average=None, zero_division=0)
        for cls, value in zip(CLASSES, per_class, strict=True):
            assert m[f"f1_{cls}"] == pytest.approx(value), cls
    assert kids[0].data.metrics["macro_f1"] != pytest.approx(kids[1].data.metrics["macro_f1"])  # per fold, not pooled


def test_walkforward_runs_lists_the_parent_with_its_key_metrics(logged, settings):
    result, run_id = logged
    runs = {r["run_id"]: r for r in walkforward_runs(settings)}
    assert run_id in runs
    r = runs[run_id]
    assert r["run_name"] == "walkforward-cnn-ta-IBM-2011-2012" and r["status"] == "FINISHED"
    assert r["preset"] == "cnn-ta" and r["tickers"] == "IBM" and r["test_years"] == "2011,2012"
    assert r["metrics"]["macro_f1"] == pytest.approx(result.evaluation["summary"]["macro_f1"])
    assert r["start_time"].endswith("+00:00")
    assert not any(x.get("run_name", "").startswith("IBM-") for x in runs.values())  # children are not listed


def test_a_failure_while_logging_marks_the_parent_failed(logged, settings, client):
    result, _ = logged
    broken = dataclasses.replace(result, predictions=result.predictions.iloc[:0])
    with pytest.raises(TradeopsError, match="IBM: fold 2011 has no test predictions"):
        log_walkforward(settings, broken, config=CONFIG, run_name="walkforward-broken")
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("tradeops").experiment_id],
        filter_string="attributes.run_name = 'walkforward-broken'",
    )
    assert parent.info.status == "FAILED"
    assert [k.info.status for k in children(client, parent.info.run_id)] == ["FAILED"]


def test_cli_json_has_the_mlflow_run_id_and_no_track_logs_nothing(home, tradeops, settings, client, logged):
    args = ["walkforward", "--tickers", "IBM", "--train-years", "3", "--test-years", "2011-2012", "--epochs", "1"]
    r = tradeops(home, *args, "--json")
    assert r.exit_code == 0, r.output
    doc = r.json()  # stdout stays one JSON object
    run = client.get_run(doc["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["tradeops.kind"] == "walkforward"
    assert run.data.params["epochs"] == "1" and run.data.params["recipe"] == settings.model.recipe
    assert run.data.params["threads"] == str(settings.model.torch_threads)
    assert len(run.data.params["git_commit"]) >= 7
    assert len(children(client, doc["mlflow_run_id"])) == 2

    before = {x["run_id"] for x in walkforward_runs(settings)}
    r = tradeops(home, *args, "--json", "--no-track")
    assert r.exit_code == 0, r.output
    assert "mlflow_run_id" not in r.json()
    assert {x["run_id"] for x in walkforward_runs(settings)} == before


def test_cli_prints_the_run_and_its_fold_count(home, tradeops, settings):
    r = tradeops(home, "walkforward", "--tickers", "IBM", "--train-years", "3", "--test-years", "2012", "--epochs", "1")
    assert r.exit_code == 0, r.output
    newest = walkforward_runs(settings)[0]
    assert f"MLflow run {newest['run_id']} (1 fold runs)" in r.stdout
    assert newest["run_name"] == "walkforward-cnn-ta-IBM-2012-2012"


def test_flatten_params_and_run_name():
    assert flatten_params({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": True}) == {
        "a.b": "1",
        "a.c": "1,2",
        "d": "None",
        "e": "True",
    }

    @dataclasses.dataclass
    class Fake:
        preset: str
        tickers: list[str]
        test_years: list[int]

    many = Fake("thesis", [f"T{i}" for i in range(6)], [2012, 2009, 2010])
    assert walkforward_run_name(many) == "walkforward-thesis-6 tickers-2009-2012"
    assert walkforward_run_name(Fake("cnn-ta", ["AAPL", "IBM"], [2010])) == "walkforward-cnn-ta-AAPL,IBM-2010-2010"


def test_the_pipelines_walkforward_report_names_its_mlflow_run(settings, client):
    from datetime import date

    from tradeops.model.training import walkforward_as_of

    report = walkforward_as_of(settings, as_of=date(2013, 1, 20), tickers=["IBM"], epochs=1)
    doc = json.loads(Path(report.path).read_text())
    assert doc["mlflow_run_id"] == report.mlflow_run_id
    run = client.get_run(report.mlflow_run_id)
    assert run.info.status == "FINISHED" and run.data.params["as_of"] == "2013-01-20"
    assert run.data.params["test_years"] == "2012" and run.data.params["epochs"] == "1"
    assert [k.info.run_name for k in children(client, report.mlflow_run_id)] == ["IBM-2012"]
