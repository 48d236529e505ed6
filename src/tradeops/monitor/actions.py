"""Carrying out rule firings: notify (webhook), retrain (a request file or an injected runner), rollback (registry),
halt / resume (the shared kill switch every service worker reads), each recorded in ``monitor_events``.

An action that fails is recorded ``failed`` with its error and returned with ``ok: False``; it never stops the
other actions of the pass (the CLI exits non-zero when any failed). Times are UTC-aware; ``as_of`` is a trading
date. Nothing sent out or recorded carries a secret: error text passes through :func:`notify.redact`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from tradeops.config import Settings
from tradeops.deploy import predlog
from tradeops.deploy.notify import post_alert, redact
from tradeops.deploy.requests import write_retrain_request
from tradeops.errors import TradeopsError, UsageError
from tradeops.monitor.rules import ALREADY_EVALUATED, AUTO_RESUME_RULE, Firing, RuleSet

MONITOR_KEY = "monitor"  # the key_id of every halt/resume the monitor makes (an operator's halt has its own key)
HALT_KEY = "halt"  # the service_state key the service reads (tradeops.deploy.signals.SignalService.sync_state)
NO_WEBHOOK = "no pipelines.alert_webhook_url configured"


def _registry_rollback(settings: Settings, model: str) -> dict[str, Any]:
    from tradeops.model import registry  # mlflow is heavy: only imported when a rollback runs

    return dict(registry.rollback(settings, model))


@dataclass
class ActionContext:
    """How actions are carried out. ``notify(url, payload) -> HTTP status``; ``retrain(model, reason) -> result``
    (``None``: write a retrain request file for the Dagster ``retrain`` sensor); ``rollback(model) -> result``
    (``None``: ``registry.rollback`` with ``settings``, bound at construction); ``clock``: now, UTC-aware."""

    settings: Settings
    engine: sa.Engine
    notify: Callable[[str, dict[str, Any]], int] = post_alert
    retrain: Callable[[str, str], dict[str, Any]] | None = None
    rollback: Callable[[str], dict[str, Any]] | None = None
    clock: Callable[[], datetime] = predlog.utcnow

    def __post_init__(self) -> None:
        if self.rollback is None:
            settings = self.settings
            self.rollback = lambda model: _registry_rollback(settings, model)


# ------------------------------------------------------------------------------------------------------- kill switch


def halt_value(*, halted: bool, reason: str | None, key_id: str | None, now: datetime) -> dict[str, Any]:
    """The shared ``halt`` state value exactly as the service writes and reads it (``signals._write_halt``)."""
    return {
        "halted": bool(halted),
        "reason": reason if halted else None,
        "since": now.isoformat() if halted else None,
        "key_id": key_id,
    }


def current_halt(engine: sa.Engine) -> dict[str, Any]:
    """The shared halt state value (``{"halted": False, ...}`` when none was ever set)."""
    value = predlog.read_state(engine).get(HALT_KEY, {}).get("value")
    return dict(value) if value else {"halted": False, "reason": None, "since": None, "key_id": None}


def set_halt(engine: sa.Engine, *, halted: bool, reason: str | None, key_id: str | None, now: datetime) -> dict:
    """Write the shared halt state (the service adopts it within ``service.state_seconds``) and an ``audit`` row
    (action ``halt`` / ``resume``, key ``monitor`` unless another is given); returns the state written."""
    if now.utcoffset() is None:
        raise UsageError(f"set_halt: [now] {now.isoformat()} has no timezone; pass a UTC-aware datetime")
    value = halt_value(halted=halted, reason=reason, key_id=key_id, now=now)
    predlog.write_state(engine, HALT_KEY, value, key_id=key_id)
    predlog.audit(
        engine,
        key_id=key_id or MONITOR_KEY,
        action="halt" if halted else "resume",
        arguments={"reason": reason},
        result=value,
        ok=True,
        at=now,
    )
    return value


# ------------------------------------------------------------------------------------------------------------ apply


def _describe(f: Firing) -> str:
    r = f.rule
    return (
        f"monitor rule {r.name}: {r.metric} = {f.metric.value:.4g} {r.comparison} {r.threshold:g} "
        f"({f.model}, as of {f.as_of.isoformat()}, {r.severity})"
    )


def _payload(f: Firing, as_of: date) -> dict[str, Any]:
    r = f.rule
    return {
        "rule": r.name,
        "model": f.model,
        "metric": r.metric,
        "value": f.metric.value,
        "threshold": r.threshold,
        "severity": r.severity,
        "as_of": as_of.isoformat(),
        "action": r.action,
        "evidence": f.metric.evidence,
    }


def _evidence(f: Firing) -> dict[str, Any]:
    out = dict(f.metric.evidence)
    out.setdefault("window", f.metric.window)
    return out


def _run_action(ctx: ActionContext, f: Firing, as_of: date) -> dict[str, Any]:
    """Carry out the firing's action; returns its result (``ok`` False: it did not do what it should)."""
    action, reason = f.rule.action, _describe(f)
    if action == "none":
        return {"ok": True, "done": "recorded only"}
    if action == "notify":
        url = ctx.settings.pipelines.alert_webhook_url
        if not url:
            return {"ok": False, "error": NO_WEBHOOK}
        return {"ok": True, "http_status": int(ctx.notify(url, _payload(f, as_of)))}
    if action == "retrain":
        if ctx.retrain is not None:
            result = dict(ctx.retrain(f.model, reason))
            return {"ok": bool(result.get("ok", True)), **{k: v for k, v in result.items() if k != "ok"}}
        path = write_retrain_request(ctx.settings.home, reason=reason, requested_by=MONITOR_KEY, now=ctx.clock())
        return {"ok": True, "request": str(path)}
    if action == "rollback":
        if ctx.rollback is None:  # pragma: no cover - bound in __post_init__
            raise TradeopsError("no rollback function bound")
        return {"ok": True, "rollback": ctx.rollback(f.model)}
    shared = current_halt(ctx.engine)
    if action == "halt":
        if shared.get("halted") and shared.get("key_id") != MONITOR_KEY:
            # Never take over an operator's halt: auto-resume would then lift it.
            return {"ok": True, "halted": True, "left_as_is": f"already halted by key {shared.get('key_id')}"}
        state = set_halt(ctx.engine, halted=True, reason=reason, key_id=MONITOR_KEY, now=ctx.clock())
        return {"ok": True, **state}
    if action == "resume":
        return _resume(ctx, shared, reason)
    raise UsageError(f"monitor rule {f.rule.name}: [action] {action!r} is not an action")  # pragma: no cover


def _resume(ctx: ActionContext, shared: dict[str, Any], reason: str) -> dict[str, Any]:
    if not shared.get("halted"):
        return {"ok": True, "resumed": False, "why": "not halted"}
    if shared.get("key_id") != MONITOR_KEY:
        return {"ok": True, "resumed": False, "why": f"halted by key {shared.get('key_id')}: an operator resumes it"}
    state = set_halt(ctx.engine, halted=False, reason=reason, key_id=MONITOR_KEY, now=ctx.clock())
    return {"ok": True, "resumed": True, "previous_reason": shared.get("reason"), **state}


def _outcome(f: Firing, as_of: date, *, event_id: int | None, status: str, reason: str | None, result: dict) -> dict:
    r = f.rule
    return {
        "event_id": event_id,
        "rule": r.name,
        "model": f.model,
        "metric": r.metric,
        "value": f.metric.value,
        "threshold": r.threshold,
        "comparison": r.comparison,
        "severity": r.severity,
        "action": r.action,
        "as_of": as_of.isoformat(),
        "status": status,
        "reason": reason,
        "ok": status != "failed",
        "result": result,
    }


def apply(ctx: ActionContext, firing: Firing, as_of: date) -> dict[str, Any]:
    """Record ``firing`` in ``monitor_events`` with the metric's evidence and carry out its action: ``fired`` then
    ``done`` or ``failed`` (with the error; ``ok`` False, nothing raised, so the other actions still run). A held
    back firing is recorded ``suppressed`` with the reason; a re-run of an evaluated date records nothing new."""
    f = firing
    if f.suppressed == ALREADY_EVALUATED:
        return _outcome(f, as_of, event_id=None, status="suppressed", reason=f.suppressed, result={})
    fields = {
        "at": ctx.clock(),
        "as_of": as_of,
        "model": f.model,
        "rule": f.rule.name,
        "metric": f.rule.metric,
        "value": f.metric.value,
        "threshold": f.rule.threshold,
        "comparison": f.rule.comparison,
        "severity": f.rule.severity,
        "action": f.rule.action,
        "evidence": _evidence(f),
    }
    if f.suppressed is not None:
        eid = predlog.record_event(ctx.engine, **fields, status="suppressed", reason=f.suppressed)
        return _outcome(f, as_of, event_id=eid, status="suppressed", reason=f.suppressed, result={})
    eid = predlog.record_event(ctx.engine, **fields, status="fired")
    try:
        result = _run_action(ctx, f, as_of)
    except Exception as exc:  # noqa: BLE001 - any failure of one action is recorded; the pass goes on
        result = {"ok": False, "error": redact(f"{type(exc).__name__}: {exc}")}
    ok = bool(result.pop("ok"))
    status, reason = ("done", None) if ok else ("failed", str(result.get("error", "the action failed")))
    predlog.update_event(ctx.engine, eid, status, result, reason=reason)
    return _outcome(f, as_of, event_id=eid, status=status, reason=reason, result=result)


# ------------------------------------------------------------------------------------------------------ auto-resume


def _halting_event(ctx: ActionContext) -> dict[str, Any] | None:
    done = [e for e in predlog.events(ctx.engine) if e["action"] == "halt" and e["status"] == "done"]
    return done[-1] if done else None


def clean_passes(ctx: ActionContext, since: date, as_of: date) -> int:
    """Monitoring passes (dates with stored metrics) after ``since`` up to ``as_of`` since the last one on which a
    halt rule's condition held (fired or held back)."""
    passes = sorted(
        {_date(r["as_of"]) for r in predlog.metric_history(ctx.engine) if since < _date(r["as_of"]) <= as_of}
    )
    dirty = {
        _date(e["as_of"])
        for e in predlog.events(ctx.engine, since=since)
        if e["action"] == "halt" and e["rule"] != AUTO_RESUME_RULE
    }
    count = 0
    for d in reversed(passes):
        if d in dirty:
            break
        count += 1
    return count


def _date(v: Any) -> date:
    return v.date() if isinstance(v, datetime) else v if isinstance(v, date) else date.fromisoformat(str(v))


def auto_resume(ctx: ActionContext, rules: RuleSet, as_of: date) -> dict[str, Any] | None:
    """The resume policy: lift a halt the monitor made (key ``monitor``; an operator's halt never) once
    ``resume.after_clean_passes`` passes in a row had no halt rule's condition holding; recorded as a
    ``monitor_events`` row of rule ``auto-resume``. ``None`` when there is no policy or nothing to resume."""
    policy = rules.resume
    if policy is None:
        return None
    shared = current_halt(ctx.engine)
    if not shared.get("halted") or shared.get("key_id") != MONITOR_KEY:
        return None
    halting = _halting_event(ctx)
    if halting is None:
        return None
    n = clean_passes(ctx, _date(halting["as_of"]), as_of)
    if n < policy.after_clean_passes:
        return None
    reason = (
        f"monitor auto-resume: {n} clean passes (policy {policy.after_clean_passes}) since the halt of "
        f"{_date(halting['as_of']).isoformat()} by rule {halting['rule']}"
    )
    fields = {
        "at": ctx.clock(),
        "as_of": as_of,
        "model": halting["model"],
        "rule": AUTO_RESUME_RULE,
        "metric": "clean_passes",
        "value": float(n),
        "threshold": float(policy.after_clean_passes),
        "comparison": ">=",
        "severity": "info",
        "action": "resume",
        "evidence": {"halted_by_rule": halting["rule"], "halt_event": halting["id"], "previous": shared},
    }
    eid = predlog.record_event(ctx.engine, **fields, status="fired")
    try:
        state = set_halt(ctx.engine, halted=False, reason=reason, key_id=MONITOR_KEY, now=ctx.clock())
        status, why, result = "done", None, {"resumed": True, "previous_reason": shared.get("reason"), **state}
    except Exception as exc:  # noqa: BLE001 - recorded and reported like any failed action
        status, why = "failed", redact(f"{type(exc).__name__}: {exc}")
        result = {"error": why}
    predlog.update_event(ctx.engine, eid, status, result, reason=why)
    return {
        "event_id": eid,
        "rule": AUTO_RESUME_RULE,
        "model": halting["model"],
        "metric": "clean_passes",
        "value": float(n),
        "threshold": float(policy.after_clean_passes),
        "comparison": ">=",
        "severity": "info",
        "action": "resume",
        "as_of": as_of.isoformat(),
        "status": status,
        "reason": why,
        "ok": status == "done",
        "result": result,
    }
