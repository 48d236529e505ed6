"""The simulation report (report/simulation.py): sections, figures, tables from the inputs, no-data messages,
input validation naming the column, escaping, self-containment."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from tradeops.errors import TradeopsError
from tradeops.report.simulation import SECTIONS, render_simulation_report

TICKERS = ("AAA", "BBB")
N_DAYS = 150
HALTED = range(70, 75)  # day indices halted for every ticker
EVIL = "<script>alert('x')</script>"
GENERATED = datetime(2020, 6, 1, 22, 0, tzinfo=UTC)
DATES = pd.bdate_range("2019-10-01", periods=N_DAYS)


def _champion(i: int) -> str:
    """v1 until day 59, v2 from its promotion on day 60, v1 again after the rollback on day 100."""
    return "2" if 60 <= i < 100 else "1"


def _challenger(i: int) -> str | None:
    return "2" if 30 <= i < 60 else ("3" if i >= 90 else None)


def synthetic_inputs(seed: int = 3) -> dict:
    """Two tickers over 150 trading days (2019 and 2020): a promotion, a halt of five days, a rollback, drift
    passes every fifth day (one missing value with a reason), monitor events (one reason carrying a script tag)."""
    rng = np.random.default_rng(seed)
    rows = []
    for ticker in TICKERS:
        close = 100 * np.cumprod(1 + rng.normal(0, 0.01, N_DAYS))
        for i, d in enumerate(DATES):
            champ = str(rng.choice(["BUY", "SELL", "HOLD"], p=[0.15, 0.15, 0.7]))
            chall_v = _challenger(i)
            chall = None if chall_v is None else str(rng.choice(["BUY", "SELL", "HOLD"]))
            by_challenger = chall_v is not None and i % 10 == 0
            halted = i in HALTED
            rows.append(
                {
                    "date": d,
                    "ticker": ticker,
                    "close": float(close[i]),
                    "signal": "HOLD" if halted else (chall if by_challenger else champ),
                    "answered_by": "challenger" if by_challenger else "champion",
                    "champion_signal": champ,
                    "challenger_signal": chall,
                    "champion_version": _champion(i),
                    "challenger_version": chall_v,
                    "halted": halted,
                }
            )
    days = pd.DataFrame(rows)
    eq_rows = []
    curves: dict[str, list[np.ndarray]] = {s: [] for s in ("champion", "challenger", "buy_and_hold")}
    for ticker in TICKERS:
        for series in curves:
            curve = np.cumprod(1 + rng.normal(0.0005, 0.01, N_DAYS))
            curve = curve / curve[0]
            curves[series].append(curve)
            eq_rows += [(d, series, ticker, float(v)) for d, v in zip(DATES, curve)]
    for series, cs in curves.items():
        eq_rows += [(d, series, "portfolio", float(v)) for d, v in zip(DATES, np.mean(cs, axis=0))]
    equity = pd.DataFrame(eq_rows, columns=["date", "series", "ticker", "equity"])

    def day(i: int) -> str:
        return str(DATES[i].date())

    models = [
        {
            "name": "cnn_ta",
            "version": "1",
            "trained_as_of": "2019-09-30",
            "bars_version": 0,
            "features_version": 0,
            "labels_version": 0,
            "run_id": "run-one",
            "blessed": True,
            "events": [
                {"as_of": "2019-09-30", "event": "registered", "reason": "initial training"},
                {"as_of": "2019-09-30", "event": "promoted", "reason": "first blessed model"},
                {"as_of": day(100), "event": "rollback", "reason": "v2 drawdown 0.31 > 0.25: back to v1"},
            ],
        },
        {
            "name": "cnn_ta",
            "version": "2",
            "trained_as_of": day(29),
            "bars_version": 3,
            "features_version": 4,
            "labels_version": 5,
            "run_id": "run-two",
            "blessed": True,
            "events": [
                {"as_of": day(29), "event": "registered", "reason": "retrain after drift (psi 0.41)"},
                {"as_of": day(60), "event": "promoted", "reason": "challenger macro F1 0.45 > champion 0.38"},
                {"as_of": day(70), "event": "halt", "reason": "kill switch: drawdown 0.31 > 0.25"},
                {"as_of": day(75), "event": "resume", "reason": "operator resumed"},
            ],
        },
        {
            "name": "cnn_ta",
            "version": "3",
            "trained_as_of": day(89),
            "bars_version": 7,
            "features_version": 8,
            "labels_version": 9,
            "run_id": "run-three",
            "blessed": False,
            "events": [{"as_of": day(89), "event": "registered", "reason": EVIL}],
        },
    ]
    events = [
        {
            "id": k + 1,
            "at": datetime(2020, 1, 1, 22, tzinfo=UTC) + pd.Timedelta(days=k),
            "as_of": DATES[i].date(),
            "model": "cnn_ta",
            "rule": rule,
            "metric": metric,
            "value": value,
            "threshold": threshold,
            "comparison": ">",
            "severity": severity,
            "action": action,
            "status": status,
            "reason": reason,
            "evidence": {"window": "20 sessions"},
            "result": {"ok": status == "done"},
        }
        for k, (i, rule, metric, value, threshold, severity, action, status, reason) in enumerate(
            [
                (29, "psi_retrain", "data.psi_max", 0.41, 0.25, "warning", "retrain", "done", None),
                (70, "drawdown_halt", "trading.champion.drawdown", 0.31, 0.25, "critical", "halt", "done", None),
                (100, "dd_rollback", "trading.champion.drawdown", 0.33, 0.25, "critical", "rollback", "done", None),
                (110, "psi_retrain", "data.psi_max", 0.3, 0.25, "warning", "retrain", "failed", EVIL),
            ]
        )
    ]
    hist = []
    for i in range(0, N_DAYS, 5):
        for name in ("data.psi_max", "data.psi_drifted_share", "data.ks_drifted_share", "data.domain_auc"):
            value = np.nan if (i == 0 and name == "data.domain_auc") else float(rng.uniform(0.05, 0.6))
            reason = "too few rows for the domain classifier (12 < 50)" if np.isnan(value) else None
            hist.append({"as_of": DATES[i].date(), "model": "cnn_ta", "name": name, "value": value, "reason": reason})
        hist.append({"as_of": DATES[i].date(), "model": "cnn_ta", "name": "quality.champion.macro_f1", "value": 0.4})
    metric_history = pd.DataFrame(hist)
    yearly = pd.DataFrame(
        [
            (year, series, ticker, 0.1234 if series == "champion" else -0.05, -0.0812, 1.234, 7, 0.5714)
            for year in (2019, 2020)
            for series in ("champion", "challenger", "buy_and_hold")
            for ticker in ("portfolio", *TICKERS)
        ],
        columns=["year", "series", "ticker", "return", "max_drawdown", "sharpe", "trades", "hit_rate"],
    )
    yearly.loc[(yearly["series"] == "buy_and_hold"), ["trades", "hit_rate"]] = [1, np.nan]
    summary = {
        "start": date(2019, 10, 1),
        "end": DATES[-1].date(),
        "tickers": list(TICKERS),
        "trading days": N_DAYS,
        "decisions": N_DAYS * len(TICKERS),
        "final equity champion": 1.0734,
        "note": EVIL,
    }
    return {
        "title": "tradeops simulation",
        "generated_at": GENERATED,
        "days": days,
        "equity": equity,
        "models": models,
        "events": events,
        "metric_history": metric_history,
        "yearly": yearly,
        "summary": summary,
    }


def empty_inputs() -> dict:
    return {
        "title": "empty simulation",
        "generated_at": GENERATED,
        "days": pd.DataFrame(),
        "equity": pd.DataFrame(),
        "models": [],
        "events": [],
        "metric_history": pd.DataFrame(),
        "yearly": pd.DataFrame(),
        "summary": {},
    }


def table_rows(page: str) -> list[list[str]]:
    """Every table row of the page as its cells' text."""
    rows = re.findall(r"<tr>(.*?)</tr>", page, flags=re.S)
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, flags=re.S) for r in rows]


def figure_json(page: str, div_id: str) -> dict:
    """The data and layout plotly draws into ``div_id`` (the JSON passed to ``Plotly.newPlot``)."""
    m = re.search(rf'Plotly\.newPlot\(\s*"{div_id}",\s*(\[.*?\]),\s*(\{{.*?\}}),\s*\{{"displaylogo"', page, re.S)
    assert m, div_id
    return {"data": json.loads(m.group(1)), "layout": json.loads(m.group(2))}


FIGURES = (
    "fig-equity-portfolio",
    "fig-equity-tickers",
    "fig-signals",
    "fig-versions",
    "fig-drift",
    "fig-alerts",
    "fig-yearly",
)


@pytest.fixture(scope="module")
def page() -> str:
    return render_simulation_report(**synthetic_inputs())


def test_every_section_in_order_with_its_figure_and_plotly_inlined_once(page: str) -> None:
    positions = [page.index(f'<h2 id="{anchor}">{html.escape(heading)}</h2>') for anchor, heading in SECTIONS]
    assert positions == sorted(positions)
    assert "no data yet" not in page
    assert page.count('class="plotly-graph-div"') == len(FIGURES)
    assert all(f'id="{f}"' in page for f in FIGURES)
    assert page.count(get_plotlyjs()[:400]) == 1
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, flags=re.I)
    assert not re.search(r"<link[^>]*https?://", page, flags=re.I)


def test_summary_is_a_key_value_table(page: str) -> None:
    rows = {r[0]: r[1] for r in table_rows(page) if len(r) == 2}
    assert rows["start"] == "2019-10-01" and rows["tickers"] == "AAA, BBB"
    assert rows["trading days"] == str(N_DAYS) and rows["decisions"] == str(2 * N_DAYS)
    assert rows["final equity champion"] == "1.0734"


def test_equity_portfolio_lines_and_a_ticker_selector(page: str) -> None:
    port = figure_json(page, "fig-equity-portfolio")
    assert [t["name"] for t in port["data"]] == ["champion", "challenger", "Buy &amp; Hold"]
    assert len(port["layout"]["shapes"]) == 1  # the five halted days are one shaded run
    shape = port["layout"]["shapes"][0]
    assert shape["x0"].startswith(str((DATES[HALTED[0]] - pd.Timedelta(hours=12)).date()))
    assert shape["x1"].startswith(str(DATES[HALTED[-1]].date()))
    per = figure_json(page, "fig-equity-tickers")
    assert len(per["data"]) == 3 * len(TICKERS)
    assert [t.get("visible", True) for t in per["data"]] == [True] * 3 + [False] * 3
    buttons = per["layout"]["updatemenus"][0]["buttons"]
    assert [b["label"] for b in buttons] == list(TICKERS)
    assert buttons[1]["args"][0]["visible"] == [False] * 3 + [True] * 3


def test_signal_markers_are_the_answered_signals_and_halts_are_counted(page: str) -> None:
    inputs = synthetic_inputs()
    days = inputs["days"]
    fig = figure_json(page, "fig-signals")
    assert [t["name"] for t in fig["data"]] == ["adjusted close", "BUY", "SELL"] * len(TICKERS)
    first = days[days["ticker"] == TICKERS[0]]
    assert len(fig["data"][1]["x"]) == int((first["signal"] == "BUY").sum())
    assert len(fig["data"][2]["x"]) == int((first["signal"] == "SELL").sum())
    assert "answered by" in fig["data"][1]["text"][0]
    rows = {r[0]: r for r in table_rows(page) if len(r) == 8 and r[0] in TICKERS and r[1] == str(N_DAYS)}
    for ticker in TICKERS:
        one = days[days["ticker"] == ticker]
        expected = [
            ticker,
            str(N_DAYS),
            *(str(int((one["signal"] == c).sum())) for c in ("BUY", "SELL", "HOLD")),
            str(int((one["answered_by"] == "challenger").sum())),
        ]
        assert rows[ticker][:6] == expected
        assert rows[ticker][7] == str(len(HALTED))


def test_version_timeline_follows_the_served_days_and_carries_the_reasons(page: str) -> None:
    fig = figure_json(page, "fig-versions")
    bars = {t["name"]: t for t in fig["data"] if t["type"] == "bar"}
    assert bars["champion"]["text"] == ["v1", "v2", "v1"]
    assert bars["challenger"]["text"] == ["v2", "v3"]
    assert bars["champion"]["base"][1].startswith(str(DATES[60].date()))
    assert bars["champion"]["x"][1] == (DATES[100] - DATES[60]) / pd.Timedelta(milliseconds=1)
    assert "bars v3, features v4, labels v5" in bars["champion"]["customdata"][1]
    assert "challenger macro F1 0.45 &gt; champion 0.38" in bars["champion"]["customdata"][1]
    marks = {t["name"]: t for t in fig["data"] if t["type"] == "scatter"}
    assert set(marks) == {"registered", "promoted", "rollback", "halt", "resume"}
    assert "v2 drawdown 0.31 &gt; 0.25: back to v1" in marks["rollback"]["text"][0]
    rows = {r[1]: r for r in table_rows(page) if len(r) == 12 and r[0] == "cnn_ta"}
    assert rows["1"][8] == str(60 + (N_DAYS - 100))
    assert rows["1"][9] == f"2019-10-01..{DATES[59].date()}; {DATES[100].date()}..{DATES[-1].date()}"
    assert rows["2"][3:6] == ["3", "4", "5"] and rows["2"][8] == "40" and rows["2"][10] == "30"
    assert rows["3"][7] == "no" and rows["3"][8] == "0" and rows["3"][9] == "–"
    events = [r for r in table_rows(page) if len(r) == 5 and r[1] == "cnn_ta"]
    assert len(events) == 8
    assert [DATES[60].date().isoformat(), "cnn_ta", "2", "promoted"] in [r[:4] for r in events]


def test_drift_draws_the_drift_metrics_and_marks_promotions(page: str) -> None:
    fig = figure_json(page, "fig-drift")
    names = [t["name"] for t in fig["data"]]
    assert names == ["data.psi_max", "data.psi_drifted_share", "data.ks_drifted_share", "data.domain_auc"]
    assert "quality.champion.macro_f1" not in names
    assert len(fig["layout"]["shapes"]) == 3  # promotions of v1 and v2, the rollback to v1
    assert "too few rows for the domain classifier (12 &lt; 50)" in page


def test_alerts_timeline_and_table(page: str) -> None:
    fig = figure_json(page, "fig-alerts")
    assert {t["name"] for t in fig["data"]} == {"warning", "critical"}
    assert "4 event(s) by action: retrain 2, halt 1, rollback 1" in page
    table = [r for r in table_rows(page) if len(r) == 12 and r[2] in {"psi_retrain", "drawdown_halt"}]
    assert len(table) == 3


def test_yearly_table_formats_fractions_as_percent(page: str) -> None:
    rows = [r for r in table_rows(page) if len(r) == 8 and r[1] in {"2019", "2020"}]
    assert len(rows) == 2 * 3 * 3
    assert rows[0] == ["portfolio", "2019", "champion", "12.3%", "-8.1%", "1.23", "7", "57.1%"]
    assert rows[2] == ["portfolio", "2019", "Buy &amp; Hold", "-5.0%", "-8.1%", "1.23", "1", "–"]
    assert [r[0] for r in rows[:6]] == ["portfolio"] * 6
    fig = figure_json(page, "fig-yearly")
    assert [t["x"] for t in fig["data"]] == [["2019", "2020"]] * 3


def test_text_from_the_inputs_is_escaped(page: str) -> None:
    assert EVIL not in page
    assert html.escape(EVIL) in page


def test_empty_inputs_say_why_every_figure_is_missing() -> None:
    page = render_simulation_report(**empty_inputs())
    assert 'class="plotly-graph-div"' not in page
    for why in (
        "the simulation passed no summary facts",
        "the simulation recorded no equity curve",
        "no day was served",
        "no day was served and no model version was registered",
        "no drift metrics recorded for the simulation yet",
        "no rule fired and no action was taken",
        "the simulation recorded no per-year metrics",
    ):
        assert f"no data yet: {why}" in page, why
    for anchor, _ in SECTIONS:
        assert f'<h2 id="{anchor}">' in page


def test_partial_inputs_say_what_is_missing() -> None:
    inputs = synthetic_inputs()
    inputs["equity"] = inputs["equity"][inputs["equity"]["ticker"] != "portfolio"]
    inputs["yearly"] = inputs["yearly"][inputs["yearly"]["ticker"] != "portfolio"]
    hist = inputs["metric_history"]
    inputs["metric_history"] = hist[hist["name"] == "quality.champion.macro_f1"]
    page = render_simulation_report(**inputs)
    assert "no data yet: equity has no portfolio rows (ticker &#x27;portfolio&#x27;)" in page
    assert "no data yet: yearly has no portfolio rows" in page
    assert "no data yet: no drift metrics recorded for cnn_ta yet" in page
    assert 'id="fig-equity-tickers"' in page and 'id="fig-equity-portfolio"' not in page


@pytest.mark.parametrize(
    ("name", "mutate", "match"),
    [
        ("days", lambda f: f.drop(columns=["halted"]), "days lacks column 'halted'"),
        ("days", lambda f: f.drop(columns=["champion_version"]), "days lacks column 'champion_version'"),
        ("days", lambda f: f.assign(date=f["date"].dt.strftime("%Y-%m-%d")), r"days\.date must be tz-naive datetime64"),
        ("days", lambda f: f.assign(signal="UP"), r"days\.signal is 'UP' on AAA 2019-10-01; valid: BUY, SELL, HOLD"),
        ("days", lambda f: f.assign(answered_by="canary"), r"days\.answered_by is 'canary'"),
        ("days", lambda f: f.assign(halted="no"), r"days\.halted must be True or False"),
        ("days", lambda f: f.assign(close="x"), r"days\.close must hold numbers"),
        ("days", lambda f: pd.concat([f, f.iloc[:1]]), "days has two rows for AAA 2019-10-01"),
        ("equity", lambda f: f.drop(columns=["series"]), "equity lacks column 'series'"),
        ("equity", lambda f: f.assign(series="lgbm"), r"equity\.series is 'lgbm'"),
        ("yearly", lambda f: f.drop(columns=["max_drawdown"]), "yearly lacks column 'max_drawdown'"),
        ("yearly", lambda f: f.assign(series="lgbm"), r"yearly\.series is 'lgbm' for portfolio 2019"),
        ("metric_history", lambda f: f.drop(columns=["value"]), "metric_history lacks column 'value'"),
        ("metric_history", lambda f: f.assign(value="high"), r"simulation report: metric_history\.value"),
    ],
)
def test_inputs_of_the_wrong_shape_are_rejected_naming_the_column(name, mutate, match) -> None:
    inputs = synthetic_inputs()
    inputs[name] = mutate(inputs[name])
    with pytest.raises(TradeopsError, match=match):
        render_simulation_report(**inputs)


def test_models_and_events_of_the_wrong_shape_are_rejected_naming_the_key() -> None:
    inputs = synthetic_inputs()
    del inputs["models"][1]["labels_version"]
    with pytest.raises(TradeopsError, match=r"models\[1\] \(cnn_ta v2\) lacks key 'labels_version'"):
        render_simulation_report(**inputs)
    inputs = synthetic_inputs()
    inputs["models"][0]["events"][0]["event"] = "deleted"
    with pytest.raises(TradeopsError, match=r"models\[0\] \(cnn_ta v1\) events\[0\]\.event is 'deleted'"):
        render_simulation_report(**inputs)
    inputs = synthetic_inputs()
    del inputs["models"][2]["events"][0]["reason"]
    with pytest.raises(TradeopsError, match=r"events\[0\] lacks key 'reason'"):
        render_simulation_report(**inputs)
    inputs = synthetic_inputs()
    inputs["events"] = [*inputs["events"], "halt"]
    with pytest.raises(TradeopsError, match=r"events\[4\] must be a mapping"):
        render_simulation_report(**inputs)
    inputs = synthetic_inputs()
    inputs["summary"] = [("start", "2019")]
    with pytest.raises(TradeopsError, match="summary must be a mapping"):
        render_simulation_report(**inputs)


def test_rendering_is_deterministic(page: str) -> None:
    assert render_simulation_report(**synthetic_inputs()) == page
