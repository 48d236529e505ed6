"""The monitoring chain end to end on the trained IBM home, through the production code: prediction-log rows ->
monitors -> rules -> actions (halt read by the service, rollback through the registry, retrain through the
Dagster retrain job in-process) -> audit rows. Each test injects one condition: a drawdown breach, decayed live
accuracy, a regime shift of the served inputs; and a repeated alert is held back by its cooldown."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from browser import browser_missing, open_in_chromium
from monitor_homes import NAME, home_settings, inject

from tradeops.data.calendar import trading_dates
from tradeops.deploy import predlog
from tradeops.features.labels import label_sezer
from tradeops.model import registry as reg
from tradeops.model.serving import load_registered_reference
from tradeops.monitor.actions import ActionContext
from tradeops.monitor.rules import load_rules
from tradeops.monitor.run import monitor_pass, report_path, retrain_in_process, served_models

RULE = """rules:
  - name: {name}
    metric: {metric}
    window: 20
    comparison: "{cmp}"
    threshold: {threshold}
    severity: {severity}
    action: {action}
    cooldown: {cooldown}
"""


def rules_text(**kw) -> str:
    base = {"severity": "critical", "cooldown": 5}
    return RULE.format(**(base | kw))


def champion_of(settings) -> str | None:
    return reg.alias_version(reg.client(settings), NAME, reg.CHAMPION)


def reference_rows(settings) -> np.ndarray:
    _, ref, problem = load_registered_reference(settings, NAME, "champion")
    assert ref is not None, problem
    return ref.sample


def open_engine(settings):
    return predlog.open_database(settings.service_database_url)


def test_drawdown_breach_halts_and_the_service_answers_hold_with_the_reason(
    ibm_home, trained_ibm, write_rules, tmp_path
):
    from fastapi.testclient import TestClient

    from tradeops.deploy.service import create_app

    base, _ = trained_ibm
    settings = home_settings(ibm_home, base, trading_window=60)
    engine = open_engine(settings)
    # IBM fell from ~122 to ~80 between September and late November 2008: a BUY at the start, then HOLD.
    days = trading_dates(date(2008, 8, 1), date(2008, 11, 24))[-60:]  # the paper-trading window
    inject(engine, days, ["BUY"] + ["HOLD"] * (len(days) - 1), features=reference_rows(settings))
    rules = load_rules(
        write_rules(
            rules_text(name="max-drawdown", metric="trading.champion.drawdown", cmp=">", threshold=0.2, action="halt")
        )
    )
    result = monitor_pass(
        settings,
        days[-1],
        context=ActionContext(settings=settings, engine=engine),
        rule_set=rules,
        report=report_path(settings),
    )

    dd = next(m for m in result.metrics if m.name == "trading.champion.drawdown")
    assert dd.value is not None and dd.value > 0.25, dd
    assert [a["action"] for a in result.actions] == ["halt"] and result.status["halted"]
    assert "max-drawdown" in result.status["reason"]
    event = predlog.events(engine)[-1]
    assert event["rule"] == "max-drawdown" and event["status"] == "done" and event["value"] == pytest.approx(dd.value)

    app = create_app(settings)
    with TestClient(app) as client:
        from tradeops.deploy.auth import create_key

        _, token = create_key(app.state.engine, role="reader", name="t")
        auth = {"Authorization": f"Bearer {token}"}
        r = client.post("/v1/signals", json={"ticker": "IBM", "as_of": "2012-06-01"}, headers=auth)
        page = client.get("/dashboard", headers=auth)
        assert client.get("/dashboard").status_code == 401
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "max-drawdown" in page.text and "HALTED" in page.text
    missing_browser = browser_missing()
    if missing_browser is None:  # the page the service serves, opened in headless Chromium
        served = tmp_path / "dashboard.html"
        served.write_bytes(page.content)
        assert open_in_chromium(served, tmp_path / "dashboard.png") == []
        assert (tmp_path / "dashboard.png").stat().st_size > 0
    body = r.json()
    assert r.status_code == 200 and body["signal"] == "HOLD" and body["halted"] is True
    assert "max-drawdown" in body["reason"]


def test_decayed_live_accuracy_rolls_back_to_the_previous_champion(ibm_home, trained_ibm, write_rules):
    from tradeops.model.training import train_model

    base, _ = trained_ibm
    settings = home_settings(ibm_home, base, quality_window=40)
    model = settings.model.model_dump()
    model["seed"] = 1
    model["blessing"]["auto_promote"] = False
    second = train_model(
        home_settings(ibm_home, base).model_copy(update={"model": type(settings.model)(**model)}),
        preset="cnn-ta",
        tickers=["IBM"],
        epochs=1,
    )
    reg.promote(settings, NAME, second.version, reason="test: v2 takes over", force=True)
    assert champion_of(settings) == second.version

    engine = open_engine(settings)
    close = pd.read_csv(settings_sample("IBM"), index_col=0, parse_dates=True)["Adj Close"]
    days = trading_dates(date(2011, 3, 1), date(2011, 6, 30))
    labels = label_sezer(close.loc[: pd.Timestamp(days[-1])]).reindex(pd.DatetimeIndex(days))
    wrong = {"BUY": "SELL", "SELL": "BUY", "HOLD": "BUY"}
    served = [wrong[str(x)] if isinstance(x, str) else "HOLD" for x in labels]
    inject(engine, days, served, features=reference_rows(settings), version=second.version)
    rules = load_rules(
        write_rules(
            rules_text(name="live-decay", metric="quality.champion.macro_f1", cmp="<", threshold=0.2, action="rollback")
        )
    )
    result = monitor_pass(settings, days[-1], context=ActionContext(settings=settings, engine=engine), rule_set=rules)

    f1 = next(m for m in result.metrics if m.name == "quality.champion.macro_f1")
    assert f1.value is not None and f1.value < 0.2, f1
    assert [a["action"] for a in result.actions] == ["rollback"]
    assert champion_of(settings) == "1"
    event = predlog.events(engine)[-1]
    assert event["rule"] == "live-decay" and event["status"] == "done"


def settings_sample(ticker: str):
    from importlib.resources import files

    return files("tradeops.sample_data") / f"{ticker}.csv"


@pytest.mark.slow
def test_regime_shift_raises_drift_retrains_and_promotes_only_if_blessed(ibm_home, trained_ibm, write_rules):
    base, _ = trained_ibm
    settings = home_settings(ibm_home, base)
    engine = open_engine(settings)
    ref = reference_rows(settings)
    rng = np.random.default_rng(0)
    shifted = ref * 3.0 + rng.normal(0, ref.std(axis=0) + 1e-9, ref.shape) * 2.0  # a new regime: scale and noise
    days = trading_dates(date(2012, 2, 1), date(2012, 6, 1))[-60:]
    inject(engine, days, ["HOLD"] * len(days), features=shifted[: len(days)].astype(np.float32))
    rules = load_rules(
        write_rules(
            rules_text(
                name="feature-drift",
                metric="data.psi_drifted_share",
                cmp=">",
                threshold=0.5,
                action="retrain",
                severity="warning",
            )
        )
    )
    before = champion_of(settings)
    ctx = ActionContext(settings=settings, engine=engine)
    views = [v for v, _, _ in served_models(settings)]
    ctx.retrain = retrain_in_process(settings, days[-1], views)
    result = monitor_pass(settings, days[-1], context=ctx, rule_set=rules)

    share = next(m for m in result.metrics if m.name == "data.psi_drifted_share")
    assert share.value is not None and share.value > 0.5, share
    (action,) = result.actions
    assert action["action"] == "retrain" and action["ok"], action
    outcome = action["result"]
    after = champion_of(settings)
    if outcome["promoted"]:
        assert after == outcome["version"] != before
    else:
        assert after == before and outcome["why"]
    assert predlog.events(engine)[-1]["status"] == "done"


def test_cooldown_holds_back_a_repeated_alert(ibm_home, trained_ibm, write_rules):
    from webhook import webhook_receiver

    base, _ = trained_ibm
    ref_settings = home_settings(ibm_home, base)
    ref = reference_rows(ref_settings)
    days = trading_dates(date(2012, 2, 1), date(2012, 6, 1))[-60:]
    with webhook_receiver() as hook:
        settings = load_settings_with_hook(ibm_home, base, hook.url)
        engine = open_engine(settings)
        inject(engine, days, ["HOLD"] * len(days), features=(ref * 3.0)[: len(days)])
        rules = load_rules(
            write_rules(
                rules_text(
                    name="drift-notify",
                    metric="data.psi_drifted_share",
                    cmp=">",
                    threshold=0.5,
                    action="notify",
                    severity="warning",
                    cooldown=10,
                )
            )
        )
        ctx = ActionContext(settings=settings, engine=engine)
        results = [monitor_pass(settings, d, context=ctx, rule_set=rules) for d in days[-3:]]
    assert [len(r.actions) for r in results] == [1, 0, 0]
    assert len(hook.bodies) == 1 and hook.bodies[0]["rule"] == "drift-notify"
    assert all("cooldown" in (f["reason"] or "") for r in results[1:] for f in r.firings)


def load_settings_with_hook(home, base, url):
    from tradeops.config import load_settings

    return load_settings(home=home, model=base.model.model_dump(), pipelines={"alert_webhook_url": url})
