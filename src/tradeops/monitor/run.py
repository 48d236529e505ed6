"""One monitoring pass: read what was served and what has matured, run every monitor, record the metrics, evaluate
the rules and carry out their actions, with the evidence in the audit tables.

Time convention: ``as_of`` is a trading date (the close the pass looks back from). The pass reads prediction-log
rows whose ``as_of`` is at or before it, bars up to and including it, and labels known by its close; nothing later.
``tradeops monitor``, the Dagster ``monitor`` job and the simulator all call :func:`monitor_pass`.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from tradeops.config import Settings
from tradeops.data import store as st
from tradeops.data.calendar import trading_dates
from tradeops.deploy import predlog
from tradeops.errors import TradeopsError
from tradeops.features.labels import CLASSES, label_horizon
from tradeops.model.backtest import Costs
from tradeops.monitor import actions as act
from tradeops.monitor import drift, quality, rules, trading
from tradeops.monitor.metrics import Metric, missing
from tradeops.monitor.service import service_health

P = predlog.predictions
LOG_COLUMNS = (
    P.c.ticker,
    P.c.as_of,
    P.c.received_at,
    P.c.champion_version,
    P.c.champion_signal,
    P.c.champion_proba,
    P.c.challenger_version,
    P.c.challenger_signal,
    P.c.answered_by,
)


@dataclass
class ModelView:
    """What one pass knows of a served model: its aliases and the tickers it serves."""

    name: str
    champion: str
    challenger: str | None
    tickers: tuple[str, ...]


@dataclass
class PassResult:
    """The outcome of one pass: metrics, rule firings (executed or suppressed) and action results."""

    as_of: date
    metrics: list[Metric]
    firings: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    report: str | None = None

    @property
    def failed_actions(self) -> list[dict[str, Any]]:
        return [a for a in self.actions if not a.get("ok", False)]

    def summary(self) -> dict[str, Any]:
        """Flat scalars for Dagster metadata: counts, the kill switch, the report path."""
        return {
            "as_of": self.as_of.isoformat(),
            "metrics": len(self.metrics),
            "metrics_missing": sum(1 for m in self.metrics if m.value is None),
            "firings": len(self.firings),
            "actions": len(self.actions),
            "failed_actions": len(self.failed_actions),
            "halted": bool(self.status.get("halted", False)),
            "report": self.report or "",
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "metrics": [m.to_dict() for m in self.metrics],
            "firings": self.firings,
            "actions": self.actions,
            "status": self.status,
            "report": self.report,
        }


def report_path(settings: Settings) -> Path:
    """Where the monitoring report lives: ``<home>/reports/monitoring.html`` (the service's ``/dashboard``)."""
    return Path(settings.home) / "reports" / "monitoring.html"


def sessions_back(end: date, n: int, calendar: str) -> list[date]:
    """The last ``n`` sessions of ``calendar`` up to and including ``end`` (oldest first)."""
    lookback = pd.Timestamp(end) - pd.Timedelta(days=int(n * 1.6) + 10)
    days = trading_dates(lookback.date(), end, calendar)
    return days[-n:]


def sessions_between(calendar: str) -> Callable[[date, date], int]:
    """``f(a, b)``: sessions after ``a`` up to and including ``b`` (0 when ``b <= a``)."""

    def f(a: date, b: date) -> int:
        return 0 if b <= a else len(trading_dates(a, b, calendar)) - (1 if trading_dates(a, a, calendar) else 0)

    return f


def _features(rows: Sequence[bytes]) -> np.ndarray:
    """Logged feature vectors (float64 bytes each) as one float32 matrix."""
    if not rows:
        return np.empty((0, 0), dtype=np.float32)
    flat = np.frombuffer(b"".join(bytes(r) for r in rows), dtype="<f8")
    return flat.reshape(len(rows), -1).astype(np.float32)


def read_served(
    engine: sa.Engine, model: str, start: date, end: date, *, with_features: bool, max_rows: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Logged answers (HTTP 200) of ``model`` for ``as_of`` in ``[start, end]``; one row per (ticker, as_of): the
    last request. Feature rows (float32, the model's feature order) when asked, a uniform subsample of at most
    ``max_rows`` (seeded). Rows without an ``as_of`` (caller-supplied features) are kept for drift only."""
    cols: list[Any] = [*LOG_COLUMNS, P.c.challenger_proba]
    if with_features:
        cols.append(sa.type_coerce(P.c.features, sa.LargeBinary()).label("features"))
    query = (
        sa.select(*cols)
        .where(P.c.model == model, P.c.status == 200, P.c.as_of >= start, P.c.as_of <= end)
        .order_by(P.c.received_at)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame([r._mapping for r in rows], columns=[c.name for c in cols])
    feats = None
    if with_features:
        raw = list(frame.pop("features")) if len(frame) else []
        if len(raw) > max_rows:
            keep = np.sort(np.random.default_rng(seed).choice(len(raw), size=max_rows, replace=False))
            raw = [raw[i] for i in keep]
        feats = _features(raw)
    if len(frame):
        frame["as_of"] = pd.to_datetime(frame["as_of"])
        frame = frame.drop_duplicates(["ticker", "as_of"], keep="last").reset_index(drop=True)
    else:
        frame = pd.DataFrame(columns=[c.name for c in cols if c.name != "features"])
    return frame, feats


def _proba_matrix(values: Sequence[Any]) -> np.ndarray:
    out = np.full((len(values), len(CLASSES)), np.nan)
    for i, v in enumerate(values):
        if isinstance(v, dict):
            out[i] = [float(v.get(c, np.nan)) for c in CLASSES]
    return out[~np.isnan(out).any(axis=1)]


def _window(days: Sequence[date]) -> str:
    return f"{days[0]}..{days[-1]} ({len(days)} sessions)" if days else "no sessions"


def _bars(lake: st.Lake, tickers: Sequence[str], as_of: date) -> dict[str, pd.DataFrame]:
    """Stored bars per ticker up to and including ``as_of`` (DatetimeIndex), nothing later."""
    frame = lake.read_bars(list(tickers))
    out: dict[str, pd.DataFrame] = {}
    for t, g in frame.groupby("ticker"):
        g = g.assign(date=pd.to_datetime(g["date"])).set_index("date").sort_index()
        out[str(t)] = g.loc[: pd.Timestamp(as_of)]
    return out


def scrape(url: str, timeout: float = 5.0) -> str:
    """The service's Prometheus text from ``<url>/metrics``; :class:`TradeopsError` naming the URL when unreachable."""
    target = url.rstrip("/") + "/metrics"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as r:  # noqa: S310 - configured operator URL
            return r.read().decode("utf-8")
    except (urllib.error.URLError, OSError) as exc:
        raise TradeopsError(f"monitor: [service_url] {target} is unreachable ({exc})") from exc


def model_metrics(
    settings: Settings,
    engine: sa.Engine,
    view: ModelView,
    as_of: date,
    *,
    reference: Any | None,
    reference_error: str | None,
    lake: st.Lake,
    metrics_text: str | None,
) -> list[Metric]:
    """Every monitor for one model at ``as_of`` (pure functions fed from the log, the lake and the reference)."""
    cfg, cal = settings.monitor, settings.ingest.calendar
    name = view.name
    recent = sessions_back(as_of, cfg.window_days, cal)
    window = _window(recent)
    served, feats = read_served(
        engine, name, recent[0], as_of, with_features=True, max_rows=cfg.max_rows, seed=cfg.seed
    )
    out: list[Metric] = []
    if reference is None:
        why = f"no training reference: {reference_error}"
        for n in ("data.nonfinite_rate", "data.psi_max", "data.psi_drifted_share", "data.ks_drifted_share"):
            out.append(missing(name, n, why, window=window))
        out += [missing(name, n, why, window=window) for n in ("data.domain_auc", "predictions.signal_mix_psi")]
        out.append(missing(name, "predictions.proba_ks_max", why, window=window))
    else:
        assert feats is not None
        if feats.shape[0] and feats.shape[1] != len(reference.feature_names):
            raise TradeopsError(
                f"monitor {name}: [features] logged rows have {feats.shape[1]} values, the reference "
                f"{len(reference.feature_names)} features"
            )
        if not feats.shape[0]:
            feats = np.empty((0, len(reference.feature_names)), dtype=np.float32)
        out += drift.data_drift(name, reference, feats, cfg=cfg, window=window)
        signals = [s for s in served.get("champion_signal", []) if s]
        out += drift.prediction_drift(
            name, reference, signals, _proba_matrix(list(served.get("champion_proba", []))), window=window
        )
    ranges = {t: r[1] for t, r in _bar_ranges(lake).items() if t in view.tickers}
    out.append(drift.staleness(name, ranges, as_of, cal))
    # Live quality and paper trading read further back: a label for t matures h sessions later.
    h = label_horizon(settings.features.label_window)
    span = sessions_back(as_of, max(cfg.quality_window + h, cfg.trading_window) + 1, cal)
    history, _ = read_served(engine, name, span[0], as_of, with_features=False, max_rows=cfg.max_rows, seed=cfg.seed)
    bars = _bars(lake, view.tickers, as_of)
    stamp = pd.Timestamp(as_of)
    labels = {t: quality.matured_labels(b["close"], stamp, settings.features.label_window) for t, b in bars.items()}
    out += quality.live_quality(name, history, labels, as_of=stamp, window=cfg.quality_window)
    c = settings.model.costs
    costs = Costs(c.commission_bps, c.slippage_bps, c.fixed_per_trade)
    out += trading.paper_trading(name, history, bars, as_of=stamp, window=cfg.trading_window, costs=costs)
    if metrics_text is None:
        why = "monitor.service_url is not set (service metrics are scraped from the running service)"
        out += [missing(name, n, why) for n in ("service.error_rate", "data.rejected_rate", "service.latency_p99_ms")]
    else:
        out += service_health(name, metrics_text)
    return out


def _bar_ranges(lake: st.Lake) -> dict[str, tuple[date, date]]:
    from tradeops.deploy.signals import bar_ranges

    return bar_ranges(lake)


def served_models(settings: Settings) -> list[tuple[ModelView, Any | None, str | None]]:
    """Registered models with a champion (``service.models`` when set): aliases, the champion's tickers, and its
    training reference (or why there is none)."""
    from tradeops.deploy.models import registry_aliases
    from tradeops.model import registry as reg
    from tradeops.model.serving import load_registered_reference

    out = []
    for name, aliases in sorted(registry_aliases(settings).items()):
        champion = aliases.get(reg.CHAMPION)
        if champion is None:
            continue
        meta, ref, problem = load_registered_reference(settings, name, champion)
        tickers = tuple(sorted(str(t).upper() for t in meta.get("tickers") or []))
        out.append((ModelView(name, champion, aliases.get(reg.CHALLENGER), tickers), ref, problem))
    return out


def status(settings: Settings, engine: sa.Engine, views: Sequence[ModelView]) -> dict[str, Any]:
    """The kill switch, the served versions, the open alerts (fired and not yet cooled down) and recent actions."""
    shared = predlog.read_state(engine).get("halt", {}).get("value") or {}
    recent = predlog.events(engine, limit=50)
    return {
        "halted": bool(shared.get("halted", False)),
        "reason": shared.get("reason"),
        "halted_by": shared.get("key_id"),
        "models": {v.name: {"champion": v.champion, "challenger": v.challenger} for v in views},
        "open_alerts": sum(1 for e in recent if e["status"] in ("fired", "done", "failed")),
        "recent": recent[-10:],
    }


def monitor_pass(
    settings: Settings,
    as_of: date,
    *,
    context: act.ActionContext | None = None,
    rule_set: rules.RuleSet | None = None,
    report: Path | None = None,
    now: datetime | None = None,
    retrain_here: bool = False,
) -> PassResult:
    """Run every monitor for every served model at ``as_of``, record the metrics, evaluate the rules and execute
    the actions (``context`` carries how: notify, retrain, rollback); write the HTML report when ``report`` is given.
    ``retrain_here``: a ``retrain`` action runs the retrain job in-process (no daemon) unless ``context`` brings its
    own; otherwise it writes a retrain request for the Dagster sensor. A failing action is recorded and reported,
    and the other actions still run."""
    engine = context.engine if context is not None else predlog.open_database(settings.service_database_url)
    ctx = context or act.ActionContext(settings=settings, engine=engine)
    rule_set = rule_set or rules.load_rules(settings.monitor.rules_path or rules.default_rules_path())
    served = served_models(settings)
    if not served:
        raise TradeopsError("monitor: [models] no registered model has a champion: train one (tradeops train)")
    views = [v for v, _, _ in served]
    if retrain_here and ctx.retrain is None:
        ctx.retrain = retrain_in_process(settings, as_of, views)
    lake = st.lake_for(settings)
    text = scrape(settings.monitor.service_url) if settings.monitor.service_url else None
    metrics: list[Metric] = []
    for v, ref, err in served:
        metrics += model_metrics(
            settings, engine, v, as_of, reference=ref, reference_error=err, lake=lake, metrics_text=text
        )
    predlog.record_metrics(engine, as_of, metrics)
    history = predlog.events(engine)
    firings = rules.evaluate(
        rule_set, metrics, history, as_of=as_of, sessions_between=sessions_between(settings.ingest.calendar)
    )
    result = PassResult(as_of, metrics)
    for f in firings:
        outcome = act.apply(ctx, f, as_of)
        result.firings.append(outcome)
        if f.suppressed is None:
            result.actions.append(outcome)
    resumed = act.auto_resume(ctx, rule_set, as_of)
    if resumed is not None:
        result.actions.append(resumed)
    result.status = status(settings, engine, views)
    if report is not None:
        result.report = str(write_report(settings, engine, result, report, now=now))
    return result


def write_report(
    settings: Settings, engine: sa.Engine, result: PassResult, path: Path, *, now: datetime | None = None
) -> Path:
    """The monitoring report (self-contained HTML) of the recorded history and this pass, written atomically."""
    from tradeops.report.monitoring import render_monitoring_report

    html = render_monitoring_report(
        title="tradeops monitoring",
        generated_at=now or datetime.now(UTC),
        metric_history=pd.DataFrame(predlog.metric_history(engine)),
        events=predlog.events(engine),
        latest=result.metrics,
        status=result.status,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def retrain_in_process(settings: Settings, as_of: date, views: Sequence[ModelView]) -> Callable[[str, str], dict]:
    """The ``retrain`` action without a Dagster daemon: the ``retrain`` job run in-process as of ``as_of`` on the
    model's tickers (train on matured labels, evaluate on the latest matured window, bless against the champion on
    that window, promote only when blessed and allowed). The result says whether it was promoted and why (not)."""
    from tradeops.pipelines.run import run_job, train_outcome_of
    from tradeops.pipelines.sensors import TICKERS_TAG, TRIGGER_TAG

    tickers = {v.name: v.tickers for v in views}

    def run(model: str, reason: str) -> dict:
        picked = tickers.get(model) or tuple(settings.pipelines.train_tickers)
        tags = {TICKERS_TAG: ",".join(picked), TRIGGER_TAG: "monitor"}
        (result,) = run_job(settings, "retrain", day=as_of, tags=tags)
        out: dict[str, Any] = {"ok": result.ok, "run_id": result.run_id, "reason": reason, "tickers": list(picked)}
        if not result.ok:
            blocked = [f"{c['asset']}:{c['check']}" for c in result.failed_checks]
            out["ok"] = blocked == ["blessing:candidate_blessed"]  # a rejected challenger is an outcome, not a failure
            out.update(promoted=False, why=result.message())
            return out
        trained = train_outcome_of(settings, result)
        out.update(
            version=trained.version,
            blessed=bool(trained.decision.get("blessed")),
            promoted=trained.promoted,
            champion_before=trained.champion_before,
            champion_after=trained.champion_after,
            why="promoted" if trained.promoted else f"not promoted: {trained.decision.get('reasons') or 'see run'}",
        )
        return out

    return run
