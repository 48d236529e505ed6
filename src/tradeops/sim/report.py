"""After a simulation: its results (equity, per-year table, model timeline), the HTML reports under
``<home>/reports/`` and one MLflow run ``simulate-<start>-<end>`` holding them as artifacts.

The model timeline is read from the journal (which version each alias named at each simulated close, and the
monitoring action that moved it) and the registry (data versions each version was trained on, its training date).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tradeops.config import Settings
from tradeops.data import store as st
from tradeops.model.backtest import Costs
from tradeops.sim import results as res
from tradeops.sim.journal import Plan
from tradeops.sim.run import SimResult, close_time, plan_fingerprint, simulation_settings

__all__ = ["model_timeline", "finish"]


def _reason(actions: Sequence[Mapping[str, Any]], kinds: tuple[str, ...]) -> str | None:
    for a in actions:
        if a.get("action") in kinds and a.get("status") == "done":
            why = a.get("result", {}).get("why") if isinstance(a.get("result"), dict) else None
            return f"monitor rule {a.get('rule')}: {a.get('metric')} = {a.get('value')}" + (f" ({why})" if why else "")
    return None


def model_timeline(
    boot: Mapping[str, Any], days: Sequence[Mapping[str, Any]], versions: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per version: data versions and training date (``versions``: version -> registry facts) and its events on
    simulated dates: registered (first named by an alias), promoted, rollback, halt, resume, with the reason."""
    out: dict[str, dict[str, Any]] = {}

    def entry(v: str) -> dict[str, Any]:
        if v not in out:
            facts = dict(versions.get(v, {}))
            out[v] = {"name": boot.get("model"), "version": v, **facts, "events": []}
        return out[v]

    for role in ("champion", "challenger"):
        v = boot.get(role)
        if v:
            entry(str(v))["events"].append(
                {"as_of": boot["date"], "event": "registered", "reason": f"bootstrap {role}"}
            )
            if role == "champion":
                entry(str(v))["events"].append(
                    {"as_of": boot["date"], "event": "promoted", "reason": "bootstrap: first champion (train job)"}
                )
    champion = str(boot.get("champion") or "")
    for d in days:
        actions = d.get("monitor", {}).get("actions", [])
        aliases = d.get("aliases", {})
        for role in ("challenger", "champion"):
            v = aliases.get(role)
            if v and str(v) not in out:
                entry(str(v))["events"].append(
                    {"as_of": d["date"], "event": "registered", "reason": _reason(actions, ("retrain",)) or role}
                )
        now = str(aliases.get("champion") or "")
        if now and now != champion:
            rolled = _reason(actions, ("rollback",))
            event = "rollback" if rolled else "promoted"
            why = rolled or _reason(actions, ("retrain",)) or "champion alias moved"
            entry(now)["events"].append({"as_of": d["date"], "event": event, "reason": why})
            champion = now
        for kind in ("halt", "resume"):
            said = _reason(actions, (kind,))
            if said and champion:
                entry(champion)["events"].append({"as_of": d["date"], "event": kind, "reason": said})
    return [out[v] for v in sorted(out, key=int)]


def _registry_facts(settings: Settings, name: str) -> dict[str, dict[str, Any]]:
    from tradeops.model import registry as reg

    c = reg.client(settings)
    facts: dict[str, dict[str, Any]] = {}
    for v in reg.describe(settings, name)["versions"]:
        tags = v["tags"]
        run_tags = c.get_run(v["run_id"]).data.tags if v["run_id"] else {}
        facts[v["version"]] = {
            "run_id": v["run_id"],
            "trained_as_of": run_tags.get("tradeops.as_of") or None,
            "bars_version": tags.get("bars_version"),
            "features_version": tags.get("features_version"),
            "labels_version": tags.get("labels_version"),
            "blessed": tags.get("blessed") == "true",
        }
    return facts


def _bars(settings: Settings, tickers: Sequence[str], end: pd.Timestamp) -> dict[str, pd.DataFrame]:
    frame = st.lake_for(settings).read_bars(list(tickers))
    out: dict[str, pd.DataFrame] = {}
    for t, g in frame.groupby("ticker"):
        g = g.assign(date=pd.to_datetime(g["date"])).set_index("date").sort_index()
        out[str(t)] = g.loc[:end]
    return out


def _jsonable(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def finish(base: Settings, result: SimResult, *, log_to_mlflow: bool = True) -> SimResult:
    """Compute the results of the completed days, write ``simulation.html`` and ``monitoring.html`` under
    ``<home>/reports``, ``<home>/sim/summary.json``, and log them to an MLflow run; returns ``result`` filled."""
    from tradeops.deploy import predlog
    from tradeops.model import tracking
    from tradeops.monitor.run import report_path
    from tradeops.report.simulation import render_simulation_report

    plan: Plan = result.plan
    settings = simulation_settings(base, plan)
    cfg = settings.model.costs
    costs = Costs(cfg.commission_bps, cfg.slippage_bps, cfg.fixed_per_trade)
    boot = json.loads((settings.home / "sim" / "bootstrap.json").read_text())
    days = result.days
    end = pd.Timestamp(days[-1]["date"]) if days else pd.Timestamp(plan.start)
    bars = _bars(settings, plan.tickers, end)
    served = res.served_frame(days, bars)
    equity = res.equity_frame(served, bars, costs)
    yearly = res.yearly_frame(served, bars, costs)
    models = model_timeline(boot, days, _registry_facts(settings, boot["model"]))
    decisions = result.decisions()
    blocked = [i for d in days for i in d.get("ingest", []) if i.get("status") == "blocked"]
    final = res.headline(equity)
    summary: dict[str, Any] = {
        "start": plan.start,
        "end": plan.end,
        "completed_through": days[-1]["date"] if days else None,
        "tickers": ", ".join(plan.tickers),
        "trading_days": len(days),
        "signals_served": int(len(served)),
        "monitoring_passes": sum(1 for d in days if d.get("monitor", {}).get("ran")),
        "decisions": len(decisions),
        "retrains": sum(1 for a in decisions if a.get("action") == "retrain"),
        "promotions": sum(1 for m in models for e in m["events"] if e["event"] == "promoted") - 1,
        "rollbacks": sum(1 for m in models for e in m["events"] if e["event"] == "rollback"),
        "halts": sum(1 for a in decisions if a.get("action") == "halt" and a.get("status") == "done"),
        "blocked_ingests": len(blocked),
        "champion_final": days[-1]["aliases"].get("champion") if days else boot.get("champion"),
        "equity_champion": final["champion"],
        "equity_challenger": final["challenger"],
        "equity_buy_and_hold": final["buy_and_hold"],
        "fills": "realistic (next open), net of costs",
    }
    reports = settings.home / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    engine = predlog.open_database(settings.service_database_url)
    try:
        events = predlog.events(engine)
        history = pd.DataFrame(predlog.metric_history(engine))
        stamp = close_time(end.date())
        html = render_simulation_report(
            title=f"tradeops simulation {plan.start} to {plan.end} ({', '.join(plan.tickers)})",
            generated_at=stamp,
            days=served,
            equity=equity,
            models=models,
            events=events,
            metric_history=history,
            yearly=yearly,
            summary=summary,
        )
        sim_path = reports / "simulation.html"
        _write(sim_path, html)
        paths = {"simulation": str(sim_path)}
        mon = report_path(settings)  # written by the last day's monitoring pass
        if mon.exists():
            paths["monitoring"] = str(mon)
    finally:
        engine.dispose()
    summary_path = settings.home / "sim" / "summary.json"
    payload = {
        "summary": summary,
        "models": models,
        "decisions": decisions,
        "yearly": _jsonable(yearly),
        "generated_at": datetime.now(UTC).isoformat(),
    }
    _write(summary_path, json.dumps(payload, indent=2, default=str))
    paths["summary"] = str(summary_path)
    if log_to_mlflow:
        run_id = tracking.start_run(
            settings,
            f"simulate-{plan.start}-{plan.end}",
            {"tradeops.simulation": plan_fingerprint(plan), "tradeops.tickers": ",".join(plan.tickers)},
        )
        log = tracking.RunLog(settings, run_id)
        log.params({k: (",".join(v) if isinstance(v, list) else v) for k, v in plan.to_dict().items()})
        log.metrics({k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and v is not None})
        for p in paths.values():
            log.text(Path(p).read_text(), f"simulation/{Path(p).name}")
        tracking.end_run(settings, run_id, "FINISHED")
        paths["mlflow_run"] = run_id
    result.models, result.summary, result.reports = models, summary, paths
    return result


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
