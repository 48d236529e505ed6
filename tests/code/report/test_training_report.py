"""The training report (report/training.py): sections and figures from one run's artifacts, numbers equal to the
evaluation's, equity curves consistent with the logged backtests, no-data messages, input validation, escaping."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from tradeops.errors import TradeopsError
from tradeops.model.backtest import Costs
from tradeops.model.windows import evaluate_signals, slice_metrics
from tradeops.report.training import SECTIONS, backtest_equity, candidate_report, render_training_report

TICKERS = ("AAA", "BBB")
N_BARS = 320
N_TEST = 120
EVIL = "<script>alert('x')</script>"
GENERATED = datetime(2021, 3, 1, 22, 0, tzinfo=UTC)
CARD = f"""# Model card: cnn_ta

CNN-TA signal model for AAA, BBB.

## Data
- Bars table version 3, features `features_abc` version 4, labels
  `labels_w11` version 5.
- Fit window 2020-01-01..2020-06-30.

## Metrics on the test window
| metric | value |
|---|---|
| macro_f1 | 0.4321 |

## Limitations
Note: {EVIL} and **bold**.
"""


def synthetic_run(seed: int = 5) -> dict:
    """Bars of two tickers, test-window signals that look at the next bar's return (so they trade), evaluated with
    the project's own evaluate_signals / slice_metrics, and a three-epoch history."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-01", periods=N_BARS)
    bars, rows = {}, []
    for ticker in TICKERS:
        close = 50 * np.cumprod(1 + rng.normal(0.0004, 0.012, N_BARS))
        opens = close * (1 + rng.normal(0, 0.002, N_BARS))
        bars[ticker] = pd.DataFrame({"open": opens, "close": close}, index=pd.DatetimeIndex(dates, name="date"))
        nxt = np.r_[close[1:] / close[:-1] - 1, 0.0]
        for i in range(N_BARS - N_TEST, N_BARS):
            signal = "BUY" if nxt[i] > 0.01 else ("SELL" if nxt[i] < -0.01 else "HOLD")
            if rng.random() < 0.3:
                signal = str(rng.choice(["BUY", "SELL", "HOLD"]))
            label = str(rng.choice(["BUY", "SELL", "HOLD"], p=[0.2, 0.2, 0.6])) if i < N_BARS - 5 else None
            rows.append({"ticker": ticker, "date": dates[i], "signal": signal, "y_true": label})
    preds = pd.DataFrame(rows)
    evaluation = evaluate_signals(preds, bars, Costs())
    slices = slice_metrics(preds, bars, pd.DatetimeIndex(dates[: N_BARS - N_TEST - 10]))
    evaluation.classification["slices"] = slices.to_dict("records")
    history = [
        {"epoch": e, "train_loss": 1.1 - 0.1 * e, "val_loss": 1.0 - 0.05 * e, "val_macro_f1": 0.3 + 0.02 * e}
        for e in (1, 2, 3)
    ]
    meta = {
        "name": "cnn_ta",
        "preset": "cnn-ta",
        "feature_set_version": "0123456789abcdef",
        "tickers": list(TICKERS),
        "fold": {
            "index": 0,
            "train_start": "2020-01-01",
            "train_end": "2020-06-30",
            "val_start": None,
            "val_end": None,
            "test_start": str(dates[N_BARS - N_TEST].date()),
            "test_end": str(dates[-1].date()),
        },
        "table_versions": {"bars": 3, "features": 4, "labels": 5},
        "as_of": "2021-03-01",
        "git_commit": "abc123",
        "run_id": "run-42",
        "seed": 0,
        "config": {"recipe": "default", "epochs": 3},
    }
    return {
        "meta": meta,
        "evaluation": evaluation,
        "history": history,
        "slices": slices,
        "preds": preds,
        "bars": bars,
    }


@pytest.fixture(scope="module")
def run() -> dict:
    return synthetic_run()


def inputs_of(run: dict, **changes: object) -> dict:
    """Keyword arguments of render_training_report, as a run's artifacts give them."""
    args = {
        "title": "tradeops training",
        "generated_at": GENERATED,
        "meta": run["meta"],
        "evaluation": run["evaluation"].to_dict(),
        "history": run["history"],
        "slices": run["slices"],
        "model_card": CARD,
        "equity": backtest_equity(run["preds"], run["bars"], Costs()),
    }
    return args | changes


def table_rows(page: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", page, flags=re.S)
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, flags=re.S) for r in rows]


def figure_json(page: str, div_id: str) -> dict:
    m = re.search(rf'Plotly\.newPlot\(\s*"{div_id}",\s*(\[.*?\]),\s*(\{{.*?\}}),\s*\{{"displaylogo"', page, re.S)
    assert m, div_id
    return {"data": json.loads(m.group(1)), "layout": json.loads(m.group(2))}


def values(array: object) -> list:
    """A plotly JSON array as a list (plotly >= 6 writes numpy arrays as base64 typed arrays)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    assert isinstance(array, list)
    return array


FIGURES = ("fig-confusion", "fig-slices", "fig-curves", "fig-backtest", "fig-equity")


@pytest.fixture(scope="module")
def page(run: dict) -> str:
    return render_training_report(**inputs_of(run))


def test_every_section_in_order_with_its_figure_and_plotly_inlined_once(page: str) -> None:
    positions = [page.index(f'<h2 id="{anchor}">{html.escape(heading)}</h2>') for anchor, heading in SECTIONS]
    assert positions == sorted(positions)
    assert "no data yet" not in page
    assert page.count('class="plotly-graph-div"') == len(FIGURES)
    assert all(f'id="{f}"' in page for f in FIGURES)
    assert page.count(get_plotlyjs()[:400]) == 1
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, flags=re.I)


def test_summary_names_the_run_data_versions_and_windows(page: str, run: dict) -> None:
    rows: dict[str, str] = {}
    for r in table_rows(page):  # the first two-column tables are the summary's (the model card's come last)
        if len(r) == 2:
            rows.setdefault(r[0], r[1])
    assert rows["run id"] == "run-42" and rows["tickers"] == "AAA, BBB"
    assert rows["table versions"] == "bars v3, features v4, labels v5"
    assert rows["fit window"] == "2020-01-01 .. 2020-06-30" and rows["validation window"] == "none"
    assert rows["macro_f1"] == f"{run['evaluation'].summary['macro_f1']:.4f}"


def test_confusion_matrix_and_per_class_tables_equal_the_evaluation(page: str, run: dict) -> None:
    cls = run["evaluation"].classification
    cm = cls["confusion_matrix"]
    fig = figure_json(page, "fig-confusion")
    assert fig["data"][0]["z"] == cm
    assert fig["data"][0]["y"] == ["true BUY", "true SELL", "true HOLD"]
    rows = {r[0]: r for r in table_rows(page) if len(r) == 5 and r[0] in {"true BUY", "true SELL", "true HOLD"}}
    for i, c in enumerate(("BUY", "SELL", "HOLD")):
        assert rows[f"true {c}"] == [f"true {c}", *(str(v) for v in cm[i]), str(sum(cm[i]))]
    per = {r[0]: r for r in table_rows(page) if len(r) == 5 and r[0] in {"BUY", "SELL", "HOLD", "macro average"}}
    for c in ("BUY", "SELL", "HOLD"):
        m = cls["per_class"][c]
        assert per[c] == [c, f"{m['precision']:.4g}", f"{m['recall']:.4g}", f"{m['f1']:.4g}", str(m["support"])]
    assert per["macro average"][3] == f"{cls['macro_f1']:.4g}" and per["macro average"][4] == str(cls["n"])


def test_slices_table_and_chart(page: str, run: dict) -> None:
    slices = run["slices"]
    rows = [
        r for r in table_rows(page) if len(r) == 10 and r[0] in {"ticker", "year", "vol_regime"} and r[1] != "strategy"
    ]
    assert len(rows) == len(slices)
    assert rows[0][:3] == ["ticker", "AAA", str(int(slices.iloc[0]["n"]))]
    fig = figure_json(page, "fig-slices")
    assert [t["name"] for t in fig["data"]] == ["macro_f1", "f1_BUY", "f1_SELL"]
    assert values(fig["data"][0]["y"]) == pytest.approx(slices["macro_f1"].tolist())


def test_training_curves_split_losses_from_scores(page: str) -> None:
    fig = figure_json(page, "fig-curves")
    by_name = {t["name"]: t for t in fig["data"]}
    assert set(by_name) == {"train_loss", "val_loss", "val_macro_f1"}
    assert by_name["train_loss"]["yaxis"] == "y" and by_name["val_macro_f1"]["yaxis"] == "y2"
    assert values(by_name["val_loss"]["y"]) == pytest.approx([0.95, 0.9, 0.85])


def test_backtest_table_is_net_of_costs_and_equity_ends_at_the_logged_return(page: str, run: dict) -> None:
    bt = run["evaluation"].backtests
    rows = {(r[0], r[1]): r for r in table_rows(page) if len(r) == 10 and r[0] in TICKERS}
    assert {s for _, s in rows} == {"model", "buy_and_hold", "rsi_14_30_70", "sma_50_cross"}
    model = bt["AAA"]["model"]["realistic"]
    assert rows[("AAA", "model")][2] == f"{model['total_return']:.1%}"
    assert rows[("AAA", "model")][6] == str(model["n_trades"]) and model["n_trades"] > 0
    assert rows[("AAA", "model")][9] == f"{bt['AAA']['model']['paper']['annualized_return']:.1%}"
    equity = backtest_equity(run["preds"], run["bars"], Costs())
    for (ticker, strategy), g in equity.groupby(["ticker", "strategy"]):
        logged = bt[ticker][strategy]["realistic"]["total_return"]
        assert g["equity"].iloc[-1] == pytest.approx(1 + logged, rel=1e-12), (ticker, strategy)
        assert len(g) == N_TEST
    fig = figure_json(page, "fig-equity")
    assert len(fig["data"]) == 4 * len(TICKERS)
    assert [b["label"] for b in fig["layout"]["updatemenus"][0]["buttons"]] == list(TICKERS)


def test_model_card_is_rendered_as_escaped_html(page: str) -> None:
    assert "<h3>Model card: cnn_ta</h3>" in page and "<h4>Data</h4>" in page
    item = "<li>Bars table version 3, features <code>features_abc</code> version 4, labels <code>labels_w11</code>"
    assert item in page  # the wrapped line joins its item
    assert "<th>metric</th><th>value</th></tr></thead><tbody><tr><td>macro_f1</td><td>0.4321</td></tr>" in page
    assert "<strong>bold</strong>" in page
    assert EVIL not in page and html.escape(EVIL) in page
    assert "<summary>markdown source</summary>" in page


def test_renders_from_the_artifacts_as_logged_to_mlflow(run: dict, page: str) -> None:
    """evaluation.json and history.json go through JSON, slices.csv through CSV: the same tables and figures
    (CSV may move a float by one ulp, so the figures' binary arrays are not compared byte for byte)."""
    evaluation = json.loads(json.dumps(run["evaluation"].to_dict()))
    history = json.loads(json.dumps({"history": run["history"]}))["history"]
    slices = pd.read_csv(io.StringIO(run["slices"].to_csv(index=False)))
    again = render_training_report(**inputs_of(run, evaluation=evaluation, history=history, slices=slices))
    assert table_rows(again) == table_rows(page)
    assert again.count('class="plotly-graph-div"') == len(FIGURES) and "no data yet" not in again


def test_candidate_report_builds_the_page_from_the_in_memory_run(run: dict) -> None:
    page = candidate_report(
        meta=run["meta"],
        evaluation=run["evaluation"],
        history=run["history"],
        model_card=CARD,
        preds=run["preds"],
        bars=run["bars"],
        costs=Costs(),
        generated_at=GENERATED,
    )
    assert page == render_training_report(**inputs_of(run, title="Training report: cnn_ta (run run-42)"))


def test_missing_pieces_say_why(run: dict) -> None:
    evaluation = run["evaluation"].to_dict()
    page = render_training_report(
        **inputs_of(
            run,
            evaluation={**evaluation, "backtests": {}},
            history=[],
            slices=pd.DataFrame(),
            model_card="  ",
            equity=None,
        )
    )
    for why in (
        "the run recorded no slice metrics",
        "the classifier recorded no epoch",
        "no ticker had two or more trading days in the test window",
        "the run logged an empty model card",
    ):
        assert f"no data yet: {why}" in page, why
    page = render_training_report(**inputs_of(run, equity=None, history=[{"epoch": 1, "train_loss": 1.0}]))
    assert "no data yet: no equity curve was passed" in page
    assert "No validation split: training loss only." in page


@pytest.mark.parametrize(
    ("key", "mutate", "match"),
    [
        ("meta", lambda m: {k: v for k, v in m.items() if k != "table_versions"}, "meta lacks key 'table_versions'"),
        ("evaluation", lambda e: {k: v for k, v in e.items() if k != "backtests"}, "evaluation lacks key 'backtests'"),
        (
            "evaluation",
            lambda e: {**e, "classification": {**e["classification"], "confusion_matrix": [[1, 2], [3, 4]]}},
            r"confusion_matrix must be 3x3",
        ),
        (
            "evaluation",
            lambda e: {**e, "classification": {**e["classification"], "per_class": {"BUY": {}, "SELL": {}}}},
            r"per_class\['BUY'\] lacks key 'precision'",
        ),
        (
            "evaluation",
            lambda e: {**e, "backtests": {"AAA": {"model": {"paper": {}}}}},
            r"backtests\['AAA'\]\['model'\] lacks key 'realistic'",
        ),
        ("slices", lambda s: s.drop(columns=["macro_f1"]), "slices lacks column 'macro_f1'"),
        ("history", lambda h: [{"epoch": 1, "train_loss": "low"}], r"history\[0\]\['train_loss'\] must be a number"),
        ("history", lambda h: [{"train_loss": 1.0}], r"history\[0\] lacks key 'epoch'"),
        ("equity", lambda e: e.drop(columns=["strategy"]), "equity lacks column 'strategy'"),
        ("model_card", lambda c: None, "model_card must be a string"),
    ],
)
def test_inputs_of_the_wrong_shape_are_rejected_naming_the_key(run: dict, key, mutate, match) -> None:
    args = inputs_of(run)
    args[key] = mutate(args[key])
    with pytest.raises(TradeopsError, match=match):
        render_training_report(**args)


@pytest.mark.slow
def test_every_registered_model_logs_its_training_report(tmp_path) -> None:
    """register_candidate logs reports/training.html next to MODEL_CARD.md, built from the same run's evaluation."""
    from datetime import date

    from tradeops.config import load_settings
    from tradeops.data.ingest import ingest
    from tradeops.data.sources import SampleSource
    from tradeops.model import registry as reg
    from tradeops.model import training as tr

    home = tmp_path / "home"
    ingest(SampleSource(), load_settings(home=home), ["IBM"], today=date(2026, 11, 26))
    lax = {"blessing": {"min_recall_buy": 0.0, "min_recall_sell": 0.0, "min_macro_f1": 0.0, "min_net_sharpe": None}}
    settings = load_settings(home=home, model={**lax, "baselines": False})
    prepared = tr.prepare_window(settings, preset="cnn-ta", tickers=["IBM"])
    fitted = tr.fit_candidate(settings, prepared, epochs=1)
    evaluation = tr.evaluate_candidate(settings, prepared, fitted)
    blessing = tr.bless_candidate(settings, prepared, evaluation)
    registered = tr.register_candidate(settings, prepared, fitted, evaluation, blessing)

    c = reg.client(settings)
    assert "reports/training.html" in {a.path for a in c.list_artifacts(registered.run_id, "reports")}

    def artifact(path: str) -> str:
        return Path(c.download_artifacts(registered.run_id, path, str(tmp_path))).read_text(encoding="utf-8")

    page = artifact("reports/training.html")
    logged = json.loads(artifact("evaluation/evaluation.json"))
    assert f"run <code>{registered.run_id}</code>" in page
    assert figure_json(page, "fig-confusion")["data"][0]["z"] == logged["classification"]["confusion_matrix"]
    assert all(f'id="{f}"' in page for f in FIGURES)
    rows = {(r[0], r[1]): r for r in table_rows(page) if len(r) == 10 and r[0] == "IBM"}
    assert rows[("IBM", "model")][2] == f"{logged['backtests']['IBM']['model']['realistic']['total_return']:.1%}"
