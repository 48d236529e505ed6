"""Actions of rule firings and their audit trail: notify through a local webhook, retrain requests, rollback,
the shared halt state in the service's format, the resume policy (never an operator's halt), and the monitoring
tables (migration 0003, metrics replaced on a re-run, events)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from tradeops.config import PipelinesConfig, Settings
from tradeops.deploy import predlog
from tradeops.deploy.requests import pending_retrain_requests
from tradeops.deploy.signals import HaltState
from tradeops.errors import UsageError
from tradeops.monitor.actions import NO_WEBHOOK, ActionContext, apply, auto_resume, set_halt
from tradeops.monitor.metrics import Metric
from tradeops.monitor.rules import Firing, ResumePolicy, Rule, RuleSet
from webhook import webhook_receiver

NOW = datetime(2024, 3, 4, 22, 30, tzinfo=UTC)
DAY = date(2024, 3, 4)


def rule(**kw) -> Rule:
    base = {
        "name": "dd",
        "metric": "trading.champion.drawdown",
        "comparison": ">",
        "threshold": 0.2,
        "severity": "critical",
        "action": "halt",
        "cooldown": 5,
    }
    return Rule.model_validate(base | kw)


def firing(r: Rule, value: float = 0.31, model: str = "ibm-cnn", day: date = DAY, suppressed=None) -> Firing:
    m = Metric(model, r.metric, value, "2024-02-01..2024-03-04 (23 sessions)", {"peak": 120.5, "trough": 83.1})
    return Firing(r, model, m, day, suppressed)


@pytest.fixture()
def engine(tmp_path):
    eng = predlog.open_database(f"sqlite:///{tmp_path / 'service.db'}")
    yield eng
    eng.dispose()


def context(tmp_path, engine, url: str | None = None, **kw) -> ActionContext:
    settings = Settings(home=tmp_path / "home", pipelines=PipelinesConfig(alert_webhook_url=url))
    return ActionContext(settings=settings, engine=engine, clock=lambda: NOW, **kw)


# ---------------------------------------------------------------------------------------------------------- tables


def test_migration_0003_creates_the_monitoring_tables_on_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert predlog.current_revision(url) is None
    predlog.upgrade(url)
    assert predlog.current_revision(url) == predlog.head_revision() == "0003"
    eng = predlog.make_engine(url)
    insp = sa.inspect(eng)
    assert {"monitor_events", "monitor_metrics"} <= set(insp.get_table_names())
    assert {i["name"] for i in insp.get_indexes("monitor_events")} == {
        "ix_monitor_events_model_rule_as_of",
        "ix_monitor_events_at",
    }
    assert insp.get_pk_constraint("monitor_metrics")["constrained_columns"] == ["as_of", "model", "name"]
    eng.dispose()


def test_rerunning_a_date_replaces_its_metrics_and_keeps_other_dates_and_models(engine):
    d1, d2 = date(2024, 3, 1), date(2024, 3, 4)
    predlog.record_metrics(engine, d1, [Metric("a", "data.psi_max", 0.1, "w", {"k": 1})])
    predlog.record_metrics(engine, d2, [Metric("a", "data.psi_max", 0.2), Metric("b", "data.psi_max", 0.5)])
    predlog.record_metrics(
        engine, d2, [Metric("a", "data.psi_max", 0.3), Metric("a", "data.domain_auc", None, reason="too few rows")]
    )
    rows = predlog.metric_history(engine)
    got = [(r["as_of"], r["model"], r["name"], r["value"], r["reason"]) for r in rows]
    assert got == [
        (d1, "a", "data.psi_max", 0.1, None),
        (d2, "a", "data.domain_auc", None, "too few rows"),
        (d2, "a", "data.psi_max", 0.3, None),
        (d2, "b", "data.psi_max", 0.5, None),
    ]
    assert rows[0]["evidence"] == {"k": 1} and rows[0]["window"] == "w"
    assert [r["value"] for r in predlog.metric_history(engine, model="a", names=["data.psi_max"])] == [0.1, 0.3]


def test_events_filter_by_model_date_and_keep_the_last_n_oldest_first(engine):
    base = dict(metric="data.psi_max", value=0.5, threshold=0.2, comparison=">", severity="info", action="none")
    ids = [
        predlog.record_event(engine, as_of=date(2024, 3, d), model=m, rule="r", status="done", **base)
        for d, m in ((1, "a"), (4, "b"), (5, "a"))
    ]
    assert [e["id"] for e in predlog.events(engine)] == ids
    assert [e["id"] for e in predlog.events(engine, model="a")] == [ids[0], ids[2]]
    assert [e["id"] for e in predlog.events(engine, since=date(2024, 3, 4))] == ids[1:]
    assert [e["id"] for e in predlog.events(engine, limit=2)] == ids[1:]
    predlog.update_event(engine, ids[0], "failed", {"error": "x"}, reason="x")
    first = predlog.events(engine)[0]
    assert (first["status"], first["result"], first["reason"]) == ("failed", {"error": "x"}, "x")
    assert first["at"].tzinfo is not None
    with pytest.raises(UsageError, match="status"):
        predlog.record_event(engine, as_of=DAY, model="a", rule="r", status="pending", **base)
    with pytest.raises(UsageError, match="missing field"):
        predlog.record_event(engine, as_of=DAY, model="a", status="done", **base)
    with pytest.raises(UsageError, match="not_found"):
        predlog.update_event(engine, 999, "done", {})


# ---------------------------------------------------------------------------------------------------------- notify


def test_notify_posts_the_payload_and_records_the_evidence(tmp_path, engine):
    r = rule(name="drift-notify", metric="data.psi_drifted_share", threshold=0.3, severity="warning", action="notify")
    with webhook_receiver() as hook:
        out = apply(context(tmp_path, engine, hook.url), firing(r, 0.45), DAY)
    assert out["ok"] and out["status"] == "done" and out["result"] == {"http_status": 200}
    assert hook.bodies == [
        {
            "rule": "drift-notify",
            "model": "ibm-cnn",
            "metric": "data.psi_drifted_share",
            "value": 0.45,
            "threshold": 0.3,
            "severity": "warning",
            "as_of": "2024-03-04",
            "action": "notify",
            "evidence": {"peak": 120.5, "trough": 83.1},
        }
    ]
    (e,) = predlog.events(engine)
    assert (e["id"], e["rule"], e["status"], e["value"], e["as_of"]) == (
        out["event_id"],
        "drift-notify",
        "done",
        0.45,
        DAY,
    )
    assert e["evidence"] == {"peak": 120.5, "trough": 83.1, "window": "2024-02-01..2024-03-04 (23 sessions)"}
    assert e["at"] == NOW


def test_notify_without_a_webhook_url_is_recorded_failed_not_skipped(tmp_path, engine):
    out = apply(context(tmp_path, engine, None), firing(rule(action="notify")), DAY)
    assert (out["ok"], out["status"], out["reason"]) == (False, "failed", NO_WEBHOOK)
    assert NO_WEBHOOK == "no pipelines.alert_webhook_url configured"
    (e,) = predlog.events(engine)
    assert (e["status"], e["reason"]) == ("failed", NO_WEBHOOK)


def test_a_failing_webhook_is_recorded_without_the_hook_token_and_the_next_action_still_runs(tmp_path, engine):
    calls = []
    with webhook_receiver() as hook:
        hook.status = 500
        ctx = context(tmp_path, engine, hook.url, rollback=lambda m: calls.append(m) or {"champion": "1"})
        first = apply(ctx, firing(rule(name="tell", action="notify")), DAY)
        second = apply(ctx, firing(rule(name="decay", action="rollback")), DAY)
    assert first["status"] == "failed" and "webhook_status" in first["reason"] and "500" in first["reason"]
    assert "s3cr3t-token" not in first["reason"] and "127.0.0.1" in first["reason"]
    assert second["ok"] and second["result"] == {"rollback": {"champion": "1"}} and calls == ["ibm-cnn"]
    assert [e["status"] for e in predlog.events(engine)] == ["failed", "done"]


# ------------------------------------------------------------------------------------------ retrain and rollback


def test_retrain_without_a_runner_writes_a_request_for_the_retrain_sensor(tmp_path, engine):
    ctx = context(tmp_path, engine)
    r = rule(name="feature-drift", metric="data.psi_drifted_share", threshold=0.3, action="retrain")
    out = apply(ctx, firing(r, 0.5), DAY)
    (req,) = pending_retrain_requests(ctx.settings.home)
    assert out["ok"] and out["result"]["request"].endswith(f"{req.id}.json")
    assert req.requested_by == "monitor" and req.tickers is None
    assert req.reason.startswith("monitor rule feature-drift: data.psi_drifted_share = 0.5 > 0.3 (ibm-cnn")
    assert req.requested_at == NOW.isoformat()


def test_an_injected_retrain_result_and_a_raising_runner(tmp_path, engine):
    r = rule(name="feature-drift", action="retrain")
    ok = apply(
        context(tmp_path, engine, retrain=lambda m, why: {"ok": True, "promoted": False, "why": "n"}), firing(r), DAY
    )
    assert ok["status"] == "done" and ok["result"] == {"promoted": False, "why": "n"}

    def boom(model, why):
        raise RuntimeError("trainer crashed for token=abc123")

    bad = apply(context(tmp_path, engine, retrain=boom), firing(r, day=DAY + timedelta(days=1)), DAY)
    assert bad["status"] == "failed" and not bad["ok"]
    assert bad["reason"] == "RuntimeError: trainer crashed for token=***"


def test_rollback_binds_the_registry_by_default(tmp_path, engine, monkeypatch):
    from tradeops.model import registry

    seen = []
    monkeypatch.setattr(registry, "rollback", lambda settings, name: seen.append((settings, name)) or {"v": "1"})
    ctx = context(tmp_path, engine)
    out = apply(ctx, firing(rule(name="decay", action="rollback")), DAY)
    assert out["result"] == {"rollback": {"v": "1"}} and seen == [(ctx.settings, "ibm-cnn")]


# ------------------------------------------------------------------------------------------------ halt and resume


def shared_halt(engine) -> dict:
    return predlog.read_state(engine)["halt"]["value"]


def as_service_reads_it(value: dict) -> HaltState:
    """What ``SignalService.sync_state`` builds from the shared value."""
    since = datetime.fromisoformat(value["since"]) if value.get("since") else None
    return HaltState(bool(value["halted"]), value.get("reason"), since, value.get("key_id"))


def test_set_halt_round_trips_in_the_service_format_with_an_audit_row(engine):
    value = set_halt(engine, halted=True, reason="drawdown", key_id="monitor", now=NOW)
    assert (
        shared_halt(engine)
        == value
        == {
            "halted": True,
            "reason": "drawdown",
            "since": NOW.isoformat(),
            "key_id": "monitor",
        }
    )
    assert as_service_reads_it(shared_halt(engine)) == HaltState(True, "drawdown", NOW, "monitor")
    set_halt(engine, halted=False, reason="recovered", key_id="monitor", now=NOW + timedelta(days=1))
    assert as_service_reads_it(shared_halt(engine)) == HaltState(False, None, None, "monitor")
    rows = predlog.audit_rows(engine)
    assert [(a["action"], a["key_id"], a["ok"], a["arguments"]["reason"]) for a in rows] == [
        ("halt", "monitor", True, "drawdown"),
        ("resume", "monitor", True, "recovered"),
    ]
    with pytest.raises(UsageError, match="timezone"):
        set_halt(engine, halted=True, reason="x", key_id="monitor", now=datetime(2024, 3, 4))


def test_a_halt_firing_halts_the_service_with_the_rule_in_the_reason(tmp_path, engine):
    out = apply(context(tmp_path, engine), firing(rule(name="max-drawdown")), DAY)
    assert out["ok"] and out["status"] == "done"
    halt = as_service_reads_it(shared_halt(engine))
    assert halt.halted and halt.key_id == "monitor" and halt.since == NOW
    assert halt.reason == (
        "monitor rule max-drawdown: trading.champion.drawdown = 0.31 > 0.2 (ibm-cnn, as of 2024-03-04, critical)"
    )


def test_a_halt_firing_never_takes_over_an_operator_halt(tmp_path, engine):
    operator = set_halt(engine, halted=True, reason="operator: earnings", key_id="k-ops", now=NOW)
    out = apply(context(tmp_path, engine), firing(rule()), DAY)
    assert out["ok"] and out["result"]["left_as_is"] == "already halted by key k-ops"
    assert shared_halt(engine) == operator


def halt_then_passes(ctx, engine, days, *, dirty=()):
    """A monitor halt on ``days[0]``, then one recorded pass per later day; a halt rule's condition held (held
    back by its cooldown) on the ``dirty`` days."""
    r = rule()
    apply(ctx, firing(r, day=days[0]), days[0])
    for d in days:
        predlog.record_metrics(engine, d, [Metric("ibm-cnn", r.metric, 0.31 if d in dirty or d == days[0] else 0.05)])
        if d in dirty:
            apply(ctx, firing(r, day=d, suppressed="cooldown until ..."), d)


def test_auto_resume_lifts_a_monitor_halt_after_n_clean_passes(tmp_path, engine):
    ctx = context(tmp_path, engine)
    rules = RuleSet(rules=(rule(),), resume=ResumePolicy(after_clean_passes=3))
    days = [date(2024, 3, d) for d in (4, 5, 6, 7, 8)]
    halt_then_passes(ctx, engine, days, dirty=(days[1],))
    # Clean since the dirty pass of 3/5: 3/6 and 3/7 are two passes, 3/8 the third.
    assert auto_resume(ctx, rules, days[3]) is None and shared_halt(engine)["halted"]
    out = auto_resume(ctx, rules, days[4])
    assert out is not None and out["ok"] and out["action"] == "resume" and out["value"] == 3.0
    assert not shared_halt(engine)["halted"]
    e = predlog.events(engine)[-1]
    assert (e["rule"], e["status"], e["as_of"], e["evidence"]["halted_by_rule"]) == (
        "auto-resume",
        "done",
        days[4],
        "dd",
    )
    assert predlog.audit_rows(engine)[-1]["action"] == "resume"
    assert auto_resume(ctx, rules, days[4]) is None  # nothing left to resume


def test_auto_resume_never_resumes_an_operator_halt(tmp_path, engine):
    ctx = context(tmp_path, engine)
    days = [date(2024, 3, d) for d in (4, 5, 6, 7, 8)]
    halt_then_passes(ctx, engine, days)
    operator = set_halt(engine, halted=True, reason="operator: hold everything", key_id="k-ops", now=NOW)
    rules = RuleSet(rules=(rule(),), resume=ResumePolicy(after_clean_passes=1))
    assert auto_resume(ctx, rules, days[4]) is None
    assert shared_halt(engine) == operator
    assert auto_resume(ctx, RuleSet(rules=(rule(),)), days[4]) is None  # no policy: manual only


def test_a_resume_rule_lifts_only_a_monitor_halt(tmp_path, engine):
    ctx = context(tmp_path, engine)
    back = rule(name="recovered", comparison="<", threshold=0.1, action="resume", severity="info")
    set_halt(engine, halted=True, reason="operator", key_id="k-ops", now=NOW)
    out = apply(ctx, firing(back, 0.05), DAY)
    assert out["ok"] and out["result"]["resumed"] is False and shared_halt(engine)["halted"]
    set_halt(engine, halted=True, reason="monitor rule dd", key_id="monitor", now=NOW)
    out = apply(ctx, firing(back, 0.05, day=DAY + timedelta(days=1)), DAY + timedelta(days=1))
    assert out["result"]["resumed"] is True and not shared_halt(engine)["halted"]


# ------------------------------------------------------------------------------------------------- suppression


def test_a_held_back_firing_is_recorded_with_its_reason_and_a_rerun_records_nothing(tmp_path, engine):
    ctx = context(tmp_path, engine)
    out = apply(ctx, firing(rule(), suppressed="cooldown until 2024-03-08 (fired 2024-03-01, 5 sessions)"), DAY)
    assert (out["status"], out["ok"], out["reason"]) == (
        "suppressed",
        True,
        "cooldown until 2024-03-08 (fired 2024-03-01, 5 sessions)",
    )
    assert "halt" not in predlog.read_state(engine)
    again = apply(ctx, firing(rule(), suppressed="already evaluated"), DAY)
    assert again["event_id"] is None and again["reason"] == "already evaluated"
    assert [e["status"] for e in predlog.events(engine)] == ["suppressed"]
