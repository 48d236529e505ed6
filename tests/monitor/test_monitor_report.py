"""The monitoring report (report/monitoring.py): sections, HALTED banner, escaping, self-containment, empty input."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tradeops.errors import TradeopsError
from tradeops.monitor.metrics import Metric, missing
from tradeops.report.monitoring import DRIFT_METRICS, SECTIONS, STATUS_HEADING, render_monitoring_report

MODELS = ("lgbm_daily", "cnn_ta")
PASSES = [date(2012, 6, 1) + timedelta(days=7 * i) for i in range(6)]
HALT_REASON = "rule drawdown_halt: trading.champion.drawdown 0.31 > 0.25"
EVIL = "<script>alert('x')</script>"
GENERATED = datetime(2012, 7, 9, 22, 0, tzinfo=UTC)


def synthetic_inputs(seed: int = 7) -> dict:
    """Six passes of two models: drift and quality history (one missing value with a reason), events of every
    status (one reason carrying a script tag), the last pass's metrics with equity and per-feature drift, a halt."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in MODELS:
        for k, as_of in enumerate(PASSES):
            for name in DRIFT_METRICS:
                rows.append((as_of, model, name, float(rng.uniform(0.05, 0.6)), None))
            f1_champion = np.nan if k == 0 else float(rng.uniform(0.3, 0.5))
            reason = "too few matured labels (3 < 20)" if k == 0 else None
            rows.append((as_of, model, "quality.champion.macro_f1", f1_champion, reason))
            rows.append((as_of, model, "quality.challenger.macro_f1", float(rng.uniform(0.3, 0.5)), None))
    history = pd.DataFrame(rows, columns=["as_of", "model", "name", "value", "reason"])

    events = []
    statuses = ("fired", "suppressed", "done", "failed")
    severities = ("info", "warning", "critical", "warning")
    for m_i, model in enumerate(MODELS):
        for s_i, status in enumerate(statuses):
            as_of = PASSES[2 + s_i]
            events.append(
                {
                    "at": datetime(2012, 6, 15, 22, tzinfo=UTC) + timedelta(days=7 * s_i, minutes=m_i),
                    "as_of": as_of,
                    "model": model,
                    "rule": f"rule_{status}",
                    "metric": "data.psi_max",
                    "value": 0.4 + s_i / 10,
                    "threshold": 0.25,
                    "comparison": ">",
                    "severity": severities[s_i],
                    "action": "retrain" if status != "failed" else "notify",
                    "status": status,
                    "reason": EVIL if status == "failed" else f"reason {status} of {model}",
                    "evidence": {"top": ["rsi_14"]},
                    "result": {"ok": status != "failed"},
                }
            )

    n = 20
    dates = [str(pd.Timestamp(PASSES[-1]) - pd.Timedelta(days=n - 1 - i))[:10] for i in range(n)]
    latest: list[Metric] = []
    for model in MODELS:
        top = [
            {"feature": f"feat_{j}", "psi": float(v), "ks_pvalue": float(p)}
            for j, (v, p) in enumerate(zip(np.sort(rng.uniform(0, 0.5, 5))[::-1], rng.uniform(0, 1, 5)))
        ]
        equity = {
            "dates": dates,
            "champion": list(np.cumprod(1 + rng.normal(0, 0.01, n)) / (1 + 0.0)),
            "challenger": list(np.cumprod(1 + rng.normal(0, 0.01, n))) if model == MODELS[0] else None,
            "buy_and_hold": list(np.cumprod(1 + rng.normal(0, 0.01, n))),
        }
        latest += [
            Metric(model, "data.psi_max", top[0]["psi"], "2012-06-12..2012-07-06 (20 sessions)", {"top_features": top}),
            Metric(model, "trading.champion.return", 0.031, "2012-06-12..2012-07-06", {"equity": equity}),
            Metric(model, "quality.champion.macro_f1", 0.41, "2012-06-01..2012-06-29"),
            missing(model, "quality.challenger.macro_f1", "no challenger served"),
        ]
    status = {
        "halted": True,
        "reason": HALT_REASON,
        "models": {MODELS[0]: {"champion": "7", "challenger": "8"}, MODELS[1]: {"champion": "3", "challenger": None}},
        "open_alerts": 3,
    }
    return {
        "title": "tradeops monitoring",
        "generated_at": GENERATED,
        "metric_history": history,
        "events": events,
        "latest": latest,
        "status": status,
    }


@pytest.fixture(scope="module")
def page() -> str:
    return render_monitoring_report(**synthetic_inputs())


def test_every_section_once_per_model(page: str) -> None:
    assert f">{STATUS_HEADING}</h2>" in page
    for anchor, heading in SECTIONS:
        assert page.count(f">{html.escape(heading)}</h3>") == len(MODELS), heading
        for i in range(len(MODELS)):
            assert f'id="{anchor}-{i}"' in page
    for model in MODELS:
        assert f"Model {model}</h2>" in page
    assert "no data yet" not in page
    # drift, top features, quality, equity, alerts: five plots per model, plotly.js inlined by the first only
    assert page.count('class="plotly-graph-div"') == 5 * len(MODELS)
    assert page.count("window.PlotlyConfig") == 1


def test_halted_banner_names_the_reason(page: str) -> None:
    assert f'<div class="banner halted" id="halted">HALTED: {html.escape(HALT_REASON)}</div>' in page
    assert page.index("HALTED") < page.index("Model lgbm_daily")
    assert "3 open alert(s)." in page


def test_not_halted_banner() -> None:
    inputs = synthetic_inputs()
    inputs["status"] = {**inputs["status"], "halted": False, "reason": None}
    out = render_monitoring_report(**inputs)
    assert "HALTED" not in out
    assert "Serving: not halted." in out


def test_event_rows_are_escaped(page: str) -> None:
    assert EVIL not in page
    assert html.escape(EVIL) in page
    for model in MODELS:
        for status in ("fired", "suppressed", "done", "failed"):
            assert f'<td class="st-{status}">{status}</td>' in page
        assert f"reason done of {model}" in page
    tables = re.findall(r'<table class="events">.*?</table>', page, flags=re.S)
    assert [t.count("<tr>") - 1 for t in tables] == [4, 4]  # header row + one row per event
    # newest first: the failed event (latest at) heads each table
    assert all(t.index("st-failed") < t.index("st-fired") for t in tables)


def test_no_external_resources(page: str) -> None:
    srcs = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", page, flags=re.I)
    assert srcs == []
    assert not re.search(r"<link[^>]+href", page, flags=re.I)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", page.split("<script", 1)[0])


def test_metrics_table_gives_reasons_for_missing_values(page: str) -> None:
    assert "<td>quality.challenger.macro_f1</td><td>missing</td><td>–</td><td>no challenger served</td>" in page
    assert '<td>trading.champion.return</td><td class="num">0.031</td>' in page
    assert "4 metric(s), 1 missing (each says why)." in page
    # the missing history value is a gap, with its reason stated
    assert "quality.champion.macro_f1 on 2012-06-01: too few matured labels (3 &lt; 20)." in page


def test_renders_with_empty_history() -> None:
    out = render_monitoring_report(
        title="t",
        generated_at=GENERATED,
        metric_history=pd.DataFrame(),
        events=[],
        latest=[],
        status={"halted": False, "reason": None, "models": {"m1": {"champion": "1", "challenger": None}}},
    )
    for _, heading in SECTIONS:
        assert f">{html.escape(heading)}</h3>" in out
    assert out.count('<p class="nodata">no data yet: ') == len(SECTIONS)
    assert "no drift metrics recorded for m1 yet" in out
    assert "no alert or action recorded for m1" in out
    assert "plotly-graph-div" not in out
    assert "Open alerts: not recorded." in out


def test_renders_with_nothing_at_all() -> None:
    out = render_monitoring_report(
        title="t", generated_at=GENERATED, metric_history=pd.DataFrame(), events=[], latest=[], status={}
    )
    assert "Status unknown" in out
    assert "no data yet: no monitoring pass has recorded a model, metric or event" in out


def test_all_missing_values_say_why() -> None:
    history = pd.DataFrame(
        {
            "as_of": PASSES[:2],
            "model": ["m1", "m1"],
            "name": ["data.psi_max", "data.psi_max"],
            "value": [None, None],
            "reason": ["no served rows", "no served rows since 2012-06-01"],
        }
    )
    latest = [missing("m1", "data.psi_max", "no served rows since 2012-06-01")]
    out = render_monitoring_report(
        title="t", generated_at=GENERATED, metric_history=history, events=[], latest=latest, status={"halted": False}
    )
    assert "every recorded value of the drift metrics of m1 is missing (last pass: data.psi_max: no served rows" in out
    assert "no data yet: data.psi_max is missing: no served rows since 2012-06-01" in out


def test_equity_with_mismatched_curve_is_reported_not_drawn() -> None:
    inputs = synthetic_inputs()
    bad = [m for m in inputs["latest"] if m.model == MODELS[1]]
    ret = next(m for m in bad if m.name == "trading.champion.return")
    equity = dict(ret.evidence["equity"])
    equity["buy_and_hold"] = equity["buy_and_hold"][:-1]
    fixed = Metric(ret.model, ret.name, ret.value, ret.window, {"equity": equity})
    inputs["latest"] = [fixed if m is ret else m for m in inputs["latest"]]
    out = render_monitoring_report(**inputs)
    assert "Buy &amp; Hold curve has 19 values for 20 dates, not drawn." in out


def test_bad_history_is_refused() -> None:
    with pytest.raises(TradeopsError, match=r"metric_history lacks column\(s\) \['value'\]"):
        render_monitoring_report(
            title="t",
            generated_at=GENERATED,
            metric_history=pd.DataFrame({"as_of": PASSES[:1], "model": ["m"], "name": ["data.psi_max"]}),
            events=[],
            latest=[],
            status={},
        )
    with pytest.raises(TradeopsError, match="metric_history.value must be numbers"):
        render_monitoring_report(
            title="t",
            generated_at=GENERATED,
            metric_history=pd.DataFrame(
                {"as_of": PASSES[:1], "model": ["m"], "name": ["data.psi_max"], "value": ["high"]}
            ),
            events=[],
            latest=[],
            status={},
        )
