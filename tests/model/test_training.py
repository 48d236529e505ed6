"""The train pipeline end to end on IBM (few epochs): tracking, packaging, registry, blessing, promotion, rollback."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tradeops.config import load_settings
from tradeops.data import store as st
from tradeops.data.ingest import ingest
from tradeops.data.sources import SampleSource
from tradeops.errors import UsageError
from tradeops.features.store import FeatureSet, read_features
from tradeops.model import registry as reg
from tradeops.model.package import FeatureSetMismatch
from tradeops.model.serving import load_registered
from tradeops.model.training import train_model

pytestmark = pytest.mark.slow  # trains models or starts processes; `pytest -m 'not slow'` skips

LAX = {
    "blessing": {
        "min_recall_buy": 0.0,
        "min_recall_sell": 0.0,
        "min_macro_f1": 0.0,
        "min_net_sharpe": None,
        "champion_margin": 0.05,
    }
}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("pipeline")
    ingest(SampleSource(), load_settings(home=home), ["IBM"], today=date(2026, 11, 26))
    return home


@pytest.fixture()
def home(ingested, tmp_path) -> Path:
    return Path(shutil.copytree(ingested, tmp_path / "home"))


@pytest.fixture(scope="module")
def trained(ingested, tmp_path_factory):
    """One default-config training shared by the read-only tests of this module: ``(settings, outcome)``."""
    home = Path(shutil.copytree(ingested, tmp_path_factory.mktemp("trained") / "home"))
    settings = load_settings(home=home)
    return settings, train_model(settings, preset="cnn-ta", tickers=["IBM"], epochs=2)


def test_train_tracks_packages_and_registers_a_challenger(trained):
    settings, out = trained
    assert out.name == "cnn-ta-IBM" and out.version == "1"
    c = reg.client(settings)
    assert reg.alias_version(c, out.name, reg.CHALLENGER) == "1"
    run = c.get_run(out.run_id)
    assert run.data.params["preset"] == "cnn-ta" and run.data.params["seed"] == "0"
    assert "val_macro_f1" in run.data.metrics and "net_sharpe" in run.data.metrics
    assert run.data.tags["tradeops.bars_version"] == "0"
    assert run.data.metrics["onnx_parity_max_abs_diff"] < 1e-5
    inputs = {d.dataset.name for d in run.inputs.dataset_inputs}
    assert {"bars", FeatureSet.from_preset("cnn-ta").table, "labels_w11"} <= inputs
    artifacts = {a.path for a in c.list_artifacts(out.run_id, "evaluation")}
    assert {"evaluation/confusion_matrix.json", "evaluation/blessing.json", "evaluation/slices.csv"} <= artifacts
    assert {a.path for a in c.list_artifacts(out.run_id, "config")} == {
        "config/settings.json",
        "config/environment.json",
    }
    slices = {(s["slice"], str(s["value"])) for s in out.evaluation["classification"]["slices"]}
    assert ("ticker", "IBM") in slices and ("year", "2012") in slices
    assert {v for k, v in slices if k == "vol_regime"} <= {"low", "mid", "high", "unknown"}
    mv = c.get_model_version(out.name, "1")
    assert (
        mv.tags["run_id"] == out.run_id and mv.tags["feature_set_version"] == FeatureSet.from_preset("cnn-ta").version
    )
    lineage = st.lake_for(settings).read(st.LINEAGE)
    assert ((lineage["consumer"] == out.name) & (lineage["dataset"] == st.BARS)).any()


def test_packaged_model_serves_what_training_fitted_and_refuses_another_feature_set(trained):
    settings, out = trained
    fs = FeatureSet.from_preset("cnn-ta")
    bundle = load_registered(settings, out.name, out.version, expected_feature_set_version=fs.version)
    rows = read_features(st.lake_for(settings), fs, ["IBM"]).tail(5)
    direct = bundle.predict_frame(rows)
    pyfunc = mlflow.pyfunc.load_model(
        f"models:/{out.name}@challenger", model_config={"feature_set_version": fs.version}
    )
    served = pyfunc.predict(rows)
    np.testing.assert_allclose(served[["p_BUY", "p_SELL", "p_HOLD"]], direct[["p_BUY", "p_SELL", "p_HOLD"]])
    assert set(served["signal"]) <= {"BUY", "SELL", "HOLD"}
    with pytest.raises(Exception, match="refusing to load"):
        mlflow.pyfunc.load_model(f"models:/{out.name}@challenger", model_config={"feature_set_version": "other"})
    with pytest.raises(FeatureSetMismatch, match="missing"):
        bundle.predict_frame(rows.drop(columns=["rsi_6"]))


def test_training_is_deterministic_then_blessing_guards_the_champion_and_rollback_restores(home):
    settings = load_settings(home=home, model=LAX)
    first = train_model(settings, preset="cnn-ta", tickers=["IBM"], epochs=2)
    assert first.decision["blessed"] and first.promoted and first.champion_after == "1"
    # Same data, same seed: bit-identical weights and metrics, so the challenger cannot beat the champion by the
    # margin.
    second = train_model(settings, preset="cnn-ta", tickers=["IBM"], epochs=2)
    c = reg.client(settings)
    sha = [c.get_run(r.run_id).data.tags["tradeops.weights_sha256"] for r in (first, second)]
    assert sha[0] == sha[1]
    assert first.summary == second.summary
    assert second.champion_before == "1" and not second.decision["blessed"]
    assert any("champion" in r for r in second.decision["reasons"])
    assert second.champion_after == "1"
    reg.promote(settings, "cnn-ta-IBM", "2", reason="test", force=True)  # v2 is not blessed
    assert reg.alias_version(reg.client(settings), "cnn-ta-IBM", reg.CHAMPION) == "2"
    entry = reg.rollback(settings, "cnn-ta-IBM")
    assert entry["champion"] == "1"
    with pytest.raises(UsageError, match="no version 9"):
        reg.promote(settings, "cnn-ta-IBM", "9", reason="test")


def test_holdout_needs_enough_history(tmp_path):
    from tradeops.model.windows import holdout_fold

    dates = pd.bdate_range("2012-01-02", periods=400)
    with pytest.raises(UsageError, match="too few"):
        holdout_fold(dates, test_days=300, train_years=5, embargo=5, val_fraction=0.1)
    with pytest.raises(UsageError, match="too few"):  # shorter than the test window itself (FB in the sample)
        holdout_fold(dates[:196], test_days=504, train_years=5, embargo=5, val_fraction=0.1)
    with pytest.raises(UsageError, match="embargo"):
        holdout_fold(dates, test_days=50, train_years=1, embargo=2, val_fraction=0.1)
