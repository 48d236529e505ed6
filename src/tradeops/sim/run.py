"""``tradeops simulate``: replay history day by day as production would have lived it, through production's code.

Bootstrap (a fresh home): the ``ingest_daily`` chain as of the session before ``start`` for every ticker, then the
Dagster ``train`` job as of that session (the champion), then a challenger trained by the same stages with
auto-promotion off (what shadow routing compares against). Each trading day ``d`` of ``[start, end]``:

1. **ingest**: :func:`tradeops.sim.daily.ingest_day` per ticker (the ``ingest_daily`` assets' functions in order:
   stage the rows dated <= d, blocking data tests, ingest, destination check, features); a blocked ticker keeps its
   stored bars and is not served that day;
2. **serve**: the signal service (:func:`tradeops.deploy.service.create_app`, its clock at d's close) reloads the
   registry through ``POST /v1/admin/reload`` and answers ``POST /v1/signals:batch`` with ``{ticker, as_of: d}``
   for every ingested ticker; routing (shadow/canary), the kill switch and the prediction log are the service's;
3. **monitor** (every ``monitor_every`` sessions and on the last day): :func:`tradeops.monitor.run.monitor_pass`
   as of d with the configured rules; a ``retrain`` runs the Dagster ``retrain`` job in-process as of d, a
   ``rollback``/``halt``/``notify`` does what it does in production (alerts go to a local receiver unless
   ``pipelines.alert_webhook_url`` is set);
4. the day's record is appended to the journal (:mod:`tradeops.sim.journal`).

Nothing reads a bar dated after d while simulating d: the source's rows are cut at d before the checks see them,
the service refuses ``as_of`` after its clock, and the monitors read the log and bars up to d. A kill loses at most
the day in progress; the same command resumes from the last completed day, and because every step is
deterministic (seeded training at a fixed thread count, frozen clocks) the results are identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd

from tradeops.config import Settings
from tradeops.data.calendar import EXCHANGE_TZ
from tradeops.data.clean import sessions as calendar_sessions
from tradeops.data.raw import RawFile
from tradeops.data.sources import Source
from tradeops.errors import TradeopsError, UsageError
from tradeops.sim.daily import DayIngest, ingest_day
from tradeops.sim.journal import Journal, Plan

__all__ = ["DayHook", "SimResult", "Plan", "simulation_settings", "simulate", "trading_days", "close_time"]

#: ``hook(step, day)`` is called before each step ("ingest", "serve", "monitor") and after each completed day
#: ("done"); raising from it (KeyboardInterrupt for Ctrl-C) stops the simulation there.
DayHook = Callable[[str, date], None]
#: The service clock while simulating a day: 17:30 in New York, after the close and the day's bars.
CLOSE_TIME = time(17, 30)


def close_time(day: date) -> datetime:
    """The UTC instant after the exchange close of ``day`` (17:30 New York time) that the service clock reads."""
    return datetime.combine(day, CLOSE_TIME, tzinfo=EXCHANGE_TZ).astimezone(UTC)


def trading_days(calendar: str, start: date, end: date) -> list[date]:
    """The exchange sessions from ``start`` to ``end`` inclusive."""
    return [d.date() for d in calendar_sessions(calendar, pd.Timestamp(start), pd.Timestamp(end))]


def previous_session(calendar: str, day: date) -> date:
    """The last session strictly before ``day``."""
    back = trading_days(calendar, (pd.Timestamp(day) - pd.Timedelta(days=10)).date(), day)
    before = [d for d in back if d < day]
    if not before:
        raise UsageError(f"--start {day}: no {calendar} session in the 10 days before it")
    return before[-1]


class _FetchOnce:
    """The configured source fetched once per ticker (an API is not asked again every simulated day); each day's
    staging then cuts the same payload at that day, as the daily job does with the source's full history."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.name = inner.name
        self._files: dict[str, RawFile] = {}

    def fetch(self, tickers: list[str] | None, stored_last: dict[str, date]) -> list[RawFile]:
        wanted = list(tickers or [])
        missing = [t for t in wanted if t not in self._files]
        if missing:
            for raw in self.inner.fetch(missing, {}):
                self._files[raw.ticker] = raw
        return [self._files[t] for t in wanted if t in self._files]


def simulation_settings(base: Settings, plan: Plan) -> Settings:
    """``base`` with the plan's source, universe and preset for the pipelines, the model's epochs when the plan
    sets them, and the service re-reading the shared halt/routing state on every request (a halt written by the
    day's monitoring pass holds from the next day's first signal, as it does within ``state_seconds`` live).
    The lake, the MLflow store and the service database are the simulation home's own (configured URLs dropped)."""
    pipelines = base.pipelines.model_copy(
        update={
            "source": plan.source,
            "source_path": None if plan.path is None else Path(plan.path),
            "universe": tuple(plan.tickers),
            "train_tickers": tuple(plan.tickers),
            "preset": plan.preset,
        }
    )
    model = base.model if plan.epochs is None else base.model.model_copy(update={"epochs": plan.epochs})
    service = base.service.model_copy(update={"state_seconds": 0.0})
    monitor = base.monitor.model_copy(update={"service_url": None})
    # Every store lives in the simulation's home: a simulation must never register models in, or write signals and
    # bars to, the production backends a config names.
    stores = {"lake_uri": None, "mlflow_tracking_uri": None, "database_url": None}
    return base.model_copy(
        update={"pipelines": pipelines, "model": model, "service": service, "monitor": monitor, **stores}
    )


@dataclass
class SimResult:
    """What a simulation did: the plan, the completed days' records, the models, the report paths."""

    plan: Plan
    home: Path
    days: list[dict[str, Any]]
    models: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)
    resumed_from: str | None = None

    def decisions(self) -> list[dict[str, Any]]:
        """Every action a monitoring pass took (not the suppressed firings), in order."""
        return [a for d in self.days for a in d.get("monitor", {}).get("actions", [])]

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "home": str(self.home),
            "resumed_from": self.resumed_from,
            "summary": self.summary,
            "models": self.models,
            "decisions": self.decisions(),
            "reports": self.reports,
            "days": len(self.days),
        }


# --------------------------------------------------------------------------------------------------- bootstrap


def _ingest_all(settings: Settings, tickers: Sequence[str], day: date, source: Source, preset: str) -> list[DayIngest]:
    return [ingest_day(settings, t, day, source, preset=preset) for t in tickers]


def bootstrap(settings: Settings, plan: Plan, source: Source, say: Callable[[str], None]) -> dict[str, Any]:
    """History up to the session before ``start``, the champion (Dagster ``train`` job as of that session) and a
    challenger (the same stages, seed + 1, auto-promotion off). A champion that is not blessed stops here."""
    from tradeops.model import registry as reg
    from tradeops.model.training import train_model
    from tradeops.pipelines.run import run_job

    day0 = previous_session(settings.ingest.calendar, plan.start_date)
    say(f"bootstrap: ingest_daily as of {day0}")
    ingested = _ingest_all(settings, plan.tickers, day0, source, plan.preset)
    bad = [i for i in ingested if i.status != "ingested"]
    if bad:
        raise TradeopsError(
            "simulate bootstrap: "
            + "; ".join(f"{i.ticker} {i.day}: [{i.check or i.status}] {'; '.join(i.findings) or i.status}" for i in bad)
        )
    say(f"bootstrap: Dagster train job as of {day0} (the champion)")
    (run,) = run_job(settings, "train", day=day0)
    if not run.ok:
        raise TradeopsError(f"simulate bootstrap: the first champion was not trained: {run.message()}")
    say("bootstrap: a challenger (seed + 1, auto-promotion off) for shadow routing")
    blessing = settings.model.blessing.model_copy(update={"auto_promote": False})
    quick = settings.model_copy(
        update={"model": settings.model.model_copy(update={"blessing": blessing, "seed": settings.model.seed + 1})}
    )
    challenger = train_model(quick, preset=plan.preset, tickers=list(plan.tickers), as_of=day0)
    name = reg.model_name(plan.preset, list(plan.tickers))
    c = reg.client(settings)
    return {
        "date": day0.isoformat(),
        "ingest": [i.to_dict() for i in ingested],
        "model": name,
        "champion": reg.alias_version(c, name, reg.CHAMPION),
        "challenger": challenger.version,
        "dagster_run": run.run_id,
    }


# --------------------------------------------------------------------------------------------------- one day


class _Service:
    """The signal service in-process: the production app (auth on, prediction log, routing, kill switch) called
    through its ASGI interface with a reader key for signals and an operator key for reloads."""

    def __init__(self, settings: Settings) -> None:
        import warnings

        from starlette.exceptions import StarletteDeprecationWarning

        with warnings.catch_warnings():  # starlette nudges towards httpx2; the httpx client works the same here
            warnings.simplefilter("ignore", StarletteDeprecationWarning)
            from starlette.testclient import TestClient

        from tradeops.deploy.auth import create_key
        from tradeops.deploy.predlog import open_database
        from tradeops.deploy.service import create_app

        self.now = close_time(date(1970, 1, 2))
        self.app = create_app(settings, clock=lambda: self.now)
        self.engine = open_database(settings.service_database_url)
        _, self.reader = create_key(self.engine, role="reader", name="simulate reader")
        _, self.operator = create_key(self.engine, role="operator", name="simulate operator")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StarletteDeprecationWarning)
            self.client = TestClient(self.app)

    def close(self) -> None:
        self.app.state.predlog.close()
        self.app.state.engine.dispose()
        self.engine.dispose()

    def call(self, path: str, body: Any, key: str) -> tuple[int, Any]:
        r = self.client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
        return r.status_code, r.json()

    def day(self, day: date, tickers: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Reload the registry, then one batch of ``as_of = day`` requests; the swaps and one record per ticker
        (what was answered and what the prediction log holds for it)."""
        from tradeops.deploy.predlog import logged_prediction

        self.now = close_time(day)
        status, reloaded = self.call("/v1/admin/reload", {}, self.operator)
        if status != 200:
            raise TradeopsError(f"simulate {day}: [reload] the service refused the reload ({status}: {reloaded})")
        if not tickers:
            return reloaded.get("events", []), []
        items = [{"ticker": t, "as_of": day.isoformat()} for t in tickers]
        status, body = self.call("/v1/signals:batch", {"items": items}, self.reader)
        if status != 200:
            raise TradeopsError(f"simulate {day}: [serve] the batch was refused ({status}: {body})")
        out = []
        for t, r in zip(tickers, body["results"], strict=True):
            rec: dict[str, Any] = {"ticker": t, "status": r.get("status")}
            if r.get("status") == 200:
                logged = logged_prediction(self.app.state.engine, r["request_id"]) or {}
                rec.update(
                    signal=r["signal"],
                    answered_by=r["answered_by"],
                    halted=bool(r["halted"]),
                    model=r["model"],
                    version=r["version"],
                    routing_mode=r["routing_mode"],
                    probabilities=r["probabilities"],
                    champion_version=logged.get("champion_version"),
                    champion_signal=logged.get("champion_signal"),
                    challenger_version=logged.get("challenger_version"),
                    challenger_signal=logged.get("challenger_signal"),
                )
            else:
                rec.update(error=r.get("error"), rule=r.get("rule"), field=r.get("field"))
            out.append(rec)
        return reloaded.get("events", []), out


def _swap_summary(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("model", "role", "result", "from", "to", "reason")
    return [{k: e[k] for k in keep if k in e} for e in events if e.get("result") not in (None, "unchanged")]


def _monitor(settings: Settings, engine: Any, day: date, webhook: str, report: Path | None) -> dict[str, Any]:
    """One monitoring pass as of ``day`` (actions executed, a retrain run in-process); what it decided."""
    from tradeops.monitor.actions import ActionContext
    from tradeops.monitor.run import monitor_pass

    cfg = settings.model_copy(
        update={"pipelines": settings.pipelines.model_copy(update={"alert_webhook_url": webhook})}
    )
    now = close_time(day)
    ctx = ActionContext(settings=cfg, engine=engine, clock=lambda: now)
    result = monitor_pass(cfg, day, context=ctx, retrain_here=True, now=now, report=report)
    metrics = {f"{m.model}|{m.name}": m.value for m in result.metrics}
    keep = (
        "data.psi_max",
        "data.psi_drifted_share",
        "data.domain_auc",
        "quality.champion.macro_f1",
        "trading.champion.return",
        "trading.buy_and_hold.return",
    )
    return {
        "ran": True,
        "firings": [_firing(f) for f in result.firings],
        "actions": [_firing(a) for a in result.actions],
        "failed": len(result.failed_actions),
        "metrics": {k: v for k, v in sorted(metrics.items()) if k.split("|", 1)[1] in keep},
        "halted": bool(result.status.get("halted")),
    }


def _firing(f: dict[str, Any]) -> dict[str, Any]:
    """A firing/action without what differs between identical runs (event ids, wall-clock times, run ids)."""
    drop = {"event_id", "at", "run_id", "dagster_run_id", "request", "http_status"}
    out = {k: v for k, v in f.items() if k not in drop}
    result = out.get("result")
    if isinstance(result, dict):
        out["result"] = {k: v for k, v in result.items() if k not in drop}
    return json.loads(json.dumps(out, default=str))


def _aliases(settings: Settings, name: str) -> dict[str, str | None]:
    from tradeops.model import registry as reg

    c = reg.client(settings)
    return {
        "champion": reg.alias_version(c, name, reg.CHAMPION),
        "challenger": reg.alias_version(c, name, reg.CHALLENGER),
    }


@contextlib.contextmanager
def _alerts(settings: Settings) -> Iterator[str]:
    from tradeops.deploy.notify import local_receiver

    if settings.pipelines.alert_webhook_url:
        yield settings.pipelines.alert_webhook_url
        return
    with local_receiver() as hook:
        yield hook.url


def simulate(
    base: Settings,
    plan: Plan,
    *,
    hook: DayHook | None = None,
    on_day: Callable[[dict[str, Any], int, int], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> SimResult:
    """Run (or resume) ``plan`` in ``base.home``; see the module docstring for what each day does.

    ``hook(step, day)`` before each step (tests interrupt there); ``on_day(record, done, total)`` after each
    completed day (the CLI's progress bar); ``say(text)`` for bootstrap progress. Returns every completed day's
    record, the models and the report paths (reports are written by :func:`tradeops.sim.report.finish`).
    """
    from tradeops.data.staging import source_for
    from tradeops.model import registry as reg
    from tradeops.monitor.run import report_path

    say = say or (lambda _t: None)
    step = hook or (lambda _s, _d: None)
    if plan.end_date < plan.start_date:
        raise UsageError(f"--end {plan.end} is before --start {plan.start}")
    if plan.monitor_every < 1:
        raise UsageError(f"--monitor-every must be >= 1 (sessions), got {plan.monitor_every}")
    settings = simulation_settings(base, plan)
    days = trading_days(settings.ingest.calendar, plan.start_date, plan.end_date)
    if not days:
        raise UsageError(f"--start {plan.start} --end {plan.end}: no {settings.ingest.calendar} session in the range")
    journal = Journal(settings.home)
    done = journal.open(plan)
    source = _FetchOnce(source_for(settings))
    name = reg.model_name(plan.preset, list(plan.tickers))
    boot_path = journal.dir / "bootstrap.json"
    if not boot_path.exists():
        boot = bootstrap(settings, plan, source, say)
        tmp = boot_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(boot, indent=2, default=str))
        tmp.replace(boot_path)
    resumed_from = done[-1]["date"] if done else None
    completed = {d["date"] for d in done}
    todo = [d for d in days if d.isoformat() not in completed]
    service = _Service(settings)
    try:
        with _alerts(settings) as webhook:
            for day in todo:
                index = days.index(day)
                step("ingest", day)
                ingested = _ingest_all(settings, plan.tickers, day, source, plan.preset)
                step("serve", day)
                servable = [i.ticker for i in ingested if i.status == "ingested"]
                swaps, served = service.day(day, servable)
                monitoring: dict[str, Any] = {"ran": False}
                if (index + 1) % plan.monitor_every == 0 or day == days[-1]:
                    step("monitor", day)
                    last = day == days[-1]
                    monitoring = _monitor(
                        settings, service.engine, day, webhook, report_path(settings) if last else None
                    )
                record = {
                    "date": day.isoformat(),
                    "ingest": [i.to_dict() for i in ingested],
                    "swaps": _swap_summary(swaps),
                    "served": served,
                    "monitor": monitoring,
                    "aliases": _aliases(settings, name),
                }
                journal.append(record)
                done.append(record)
                step("done", day)
                if on_day is not None:
                    on_day(record, len(done), len(days))
    finally:
        service.close()
    return SimResult(plan, settings.home, done, resumed_from=resumed_from)


def plan_fingerprint(plan: Plan) -> str:
    """A short stable id of a plan (used to name the simulation's MLflow run)."""
    return hashlib.sha256(json.dumps(plan.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
