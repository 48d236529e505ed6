"""`tradeops train | models | promote | rollback | walkforward | tune` end to end (IBM, few epochs)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # trains models or starts processes; `pytest -m 'not slow'` skips

LAX = {
    "TRADEOPS_MODEL__BLESSING__MIN_MACRO_F1": "0",
    "TRADEOPS_MODEL__BLESSING__MIN_RECALL_BUY": "0",
    "TRADEOPS_MODEL__BLESSING__MIN_RECALL_SELL": "0",
    "TRADEOPS_MODEL__BLESSING__MIN_NET_SHARPE": "-100",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory, tradeops):
    h = tmp_path_factory.mktemp("model-cli")
    assert tradeops(h, "ingest", "--tickers", "IBM,MSFT").exit_code == 0
    return h


def test_train_prints_run_version_metrics_backtest_and_blessing(home, tradeops):
    r = tradeops(home, "train", "--preset", "cnn-ta", "--tickers", "IBM", "--epochs", "2", env=LAX)
    assert r.exit_code == 0, r.output
    for text in (
        "model cnn-ta-IBM v",
        "run ",
        "macro-F1",
        "backtests",
        "buy_and_hold",
        "lightgbm",
        "blessing: BLESSED",
        "champion -> v",
    ):
        assert text in r.stdout, text
    j = tradeops(home, "train", "--preset", "cnn-ta", "--tickers", "IBM", "--epochs", "2", "--json", env=LAX).json()
    assert {"run_id", "version", "summary", "decision", "evaluation"} <= set(j)
    assert j["decision"]["blessed"] is False  # the same model cannot beat the champion by the margin
    assert j["champion_before"] == j["champion_after"]

    models = tradeops(home, "models", "--json").json()
    assert models[0]["name"] == "cnn-ta-IBM" and models[0]["aliases"]["challenger"] == j["version"]
    r = tradeops(home, "promote", j["version"], "--force")  # not blessed: needs --force
    assert r.exit_code == 0 and f"champion is now v{j['version']}" in r.stdout
    r = tradeops(home, "rollback")
    assert r.exit_code == 0 and "rolled back" in r.stdout
    assert tradeops(home, "promote", "99").exit_code == 2


def test_usage_errors(home, tradeops, tmp_path):
    assert tradeops(home, "train", "--preset", "cnn-ta").exit_code == 2  # no tickers
    assert tradeops(home, "train", "--tickers", "IBM", "--recipe", "fancy").exit_code == 2
    assert tradeops(tmp_path / "empty", "train", "--tickers", "IBM").exit_code == 2  # nothing ingested
    assert tradeops(home, "walkforward", "--tickers", "IBM", "--test-years", "soon").exit_code == 2
    assert tradeops(home, "walkforward", "--tickers", "IBM", "--seeds", "1,x").exit_code == 2
    assert tradeops(home, "walkforward", "--tickers", "IBM", "--workers", "0").exit_code == 2
    assert tradeops(home, "ui", "kibana").exit_code == 2  # unknown UI (dagster and mlflow exist)


def test_walkforward_prints_the_paper_table(home, tradeops):
    r = tradeops(
        home,
        "walkforward",
        "--preset",
        "cnn-ta",
        "--tickers",
        "IBM,MSFT",
        "--train-years",
        "3",
        "--test-years",
        "2011-2012",
        "--epochs",
        "2",
        "--mode",
        "paper",
    )
    assert r.exit_code == 0, r.output
    for text in (
        "annualised return (paper fills)",
        "CNN-TA",
        "Buy&Hold",
        "LightGBM",
        "RSI 30/70",
        "SMA50 cross",
        "IBM",
        "MSFT",
        "confusion matrix",
        "4 folds",
    ):
        assert text in r.stdout, text


def test_tune_runs_a_shared_optuna_study(home, tradeops):
    env = {"TRADEOPS_MODEL__TUNE__EPOCHS": "2"}
    r = tradeops(home, "tune", "--preset", "cnn-ta", "--tickers", "IBM", "--trials", "2", "--json", env=env)
    assert r.exit_code == 0, r.output
    first = r.json()
    assert first["n_trials"] == 2 and set(first["best_params"]) == {"lr", "batch_size", "dense", "dropout_dense"}
    again = tradeops(home, "tune", "--preset", "cnn-ta", "--tickers", "IBM", "--trials", "1", "--json", env=env).json()
    assert again["n_trials"] == 3  # the second worker joined the same study in the RDB storage
