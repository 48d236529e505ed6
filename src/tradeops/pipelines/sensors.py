"""Sensors of the tradeops code location (thin wiring over domain functions).

- ``landing_sensor`` -> ``ingest_daily``: a new or changed ``<TICKER>.csv`` in the landing directory;
- ``alert_on_run_failure``: any failed run -> the alert webhook (``pipelines.alert_webhook_url``);
- ``retrain_request_sensor`` -> ``retrain``: a pending retrain request (written by monitoring);
- ``challenger_sensor`` -> ``promote``: a new blessed challenger, unless ``pipelines.require_approval``.

Jobs are targeted by name. ``SENSORS`` is built on first access (the interval is part of the definition); with
``settings=None`` every evaluation reads the configuration again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
from dagster import MultiPartitionKey

from tradeops.config import Settings, load_settings
from tradeops.data.calendar import EXCHANGE_TZ, ready_trading_dates
from tradeops.errors import TradeopsError
from tradeops.pipelines.schedules import INGEST_JOB, clock_time

RETRAIN_JOB = "retrain"
PROMOTE_JOB = "promote"
# Tags a run carries to say what triggered it and what to act on (read by the jobs' assets).
TRIGGER_TAG = "tradeops/trigger"
LANDING_FILE_TAG = "tradeops/landing_file"
LANDING_SHA_TAG = "tradeops/landing_sha256"
RETRAIN_REQUEST_TAG = "tradeops/retrain_request"
RETRAIN_REASON_TAG = "tradeops/retrain_reason"
TICKERS_TAG = "tradeops/tickers"
MODEL_TAG = "tradeops/model"
MODEL_VERSION_TAG = "tradeops/model_version"


def _load(cursor: str | None, default):
    if not cursor:
        return default
    try:
        return json.loads(cursor)
    except ValueError:
        return default  # a cursor from an older layout: start over (run keys still stop repeats)


def _partition_of(tags: dict[str, str]) -> str | None:
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    dims = {k.split("/", 2)[2]: v for k, v in tags.items() if k.startswith("dagster/partition/")}
    return "|".join(dims[k] for k in sorted(dims)) or None


def build_sensors(settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None) -> list:
    """The sensors; ``settings=None`` reads the configuration at every evaluation; ``clock`` (tz-aware now) is
    for tests."""
    get: Callable[[], Settings] = (lambda: settings) if settings is not None else load_settings
    now: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
    interval = (settings or load_settings()).pipelines.sensor_interval_seconds

    @dg.sensor(
        name="landing_sensor",
        job_name=INGEST_JOB,
        minimum_interval_seconds=interval,
        description="a new or changed <TICKER>.csv in the landing directory -> ingest_daily for that ticker",
    )
    def landing_sensor(context: dg.SensorEvaluationContext):
        from tradeops.data.landing import latest_session_in_file, new_landing_files, scan_landing

        s = get()
        cursor = _load(context.cursor, {})
        seen: dict[str, dict] = dict(cursor.get("seen", {}))
        scan = scan_landing(s.landing_dir, s.pipelines.universe, known=seen)
        today = now().astimezone(EXCHANGE_TZ).date()
        requests, rejected = [], []
        for f in new_landing_files(scan, seen):
            try:
                day = latest_session_in_file(f.path, f.ticker, today=today, calendar=s.ingest.calendar)
            except TradeopsError as exc:
                context.log.error(str(exc))
                rejected.append(str(exc))
                seen[f.ticker] = {**f.fingerprint(), "rejected": str(exc)}  # reported once per content
                continue
            requests.append(
                dg.RunRequest(
                    run_key=f.run_key,
                    partition_key=MultiPartitionKey({"date": day.isoformat(), "ticker": f.ticker}),
                    tags={
                        TRIGGER_TAG: "landing",
                        LANDING_FILE_TAG: str(f.path.resolve()),
                        LANDING_SHA_TAG: f.sha256,
                    },
                )
            )
            seen[f.ticker] = f.fingerprint()
        for f in scan.files:  # refresh size/mtime of unchanged content so its hash is reused next time
            if seen.get(f.ticker, {}).get("sha256") == f.sha256:
                seen[f.ticker] = {**seen[f.ticker], **f.fingerprint()}
        foreign = sorted(p.name for p in scan.foreign)
        if foreign and foreign != cursor.get("foreign"):
            context.log.warning(
                f"landing files of tickers outside the universe ({', '.join(s.pipelines.universe)}) "
                f"are not ingested: {', '.join(foreign)}"
            )
        new_cursor = json.dumps({"seen": seen, "foreign": foreign}, sort_keys=True)
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=new_cursor)
        parts = [f"no new or changed <TICKER>.csv in {s.landing_dir}"]
        if foreign:
            parts.append(f"ignored (ticker not in the universe): {', '.join(foreign)}")
        if rejected:
            parts.append(f"rejected: {'; '.join(rejected)}")
        return dg.SensorResult(skip_reason="; ".join(parts), cursor=new_cursor)

    @dg.run_failure_sensor(
        name="alert_on_run_failure",
        minimum_interval_seconds=interval,
        description="POST every failed run to pipelines.alert_webhook_url",
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext):
        from tradeops.deploy.notify import post_alert, run_failure_alert

        s = get()
        run = context.dagster_run
        url = s.pipelines.alert_webhook_url
        if not url:
            context.log.info(f"run {run.run_id} of {run.job_name} failed; no pipelines.alert_webhook_url to alert")
            return
        error = context.failure_event.message or ""
        for event in context.get_step_failure_events()[:1]:
            info = getattr(event.event_specific_data, "error", None)
            while info is not None and info.cause is not None:  # Dagster wraps the op's own exception
                info = info.cause
            if info is not None:
                error += f" {event.step_key}: {info.cls_name}: {info.message.strip()}"
        payload = run_failure_alert(
            job=run.job_name,
            run_id=run.run_id,
            partition=_partition_of(dict(run.tags)),
            error=error,
            dagster_url=f"{s.pipelines.dagster_url.rstrip('/')}/runs/{run.run_id}",
        )
        post_alert(url, payload)
        context.log.info(f"alerted run failure of {run.job_name} {run.run_id}")

    @dg.sensor(
        name="retrain_request_sensor",
        job_name=RETRAIN_JOB,
        minimum_interval_seconds=interval,
        description="each pending retrain request (requests/retrain/*.json) -> one retrain run",
    )
    def retrain_request_sensor(context: dg.SensorEvaluationContext):
        from tradeops.deploy.requests import mark_handled, pending_retrain_requests, requests_dir

        s = get()
        pending = pending_retrain_requests(s.home)
        if not pending:
            return dg.SkipReason(f"no pending retrain request in {requests_dir(s.home)}")
        days = ready_trading_dates(
            now(), after=clock_time(s.pipelines.schedule_time), lookback=1, calendar=s.ingest.calendar
        )
        out = []
        for r in pending:
            tags = {TRIGGER_TAG: "retrain_request", RETRAIN_REQUEST_TAG: r.id, RETRAIN_REASON_TAG: r.reason[:200]}
            if r.tickers:
                tags[TICKERS_TAG] = ",".join(r.tickers)
            out.append(dg.RunRequest(run_key=r.id, partition_key=days[-1].isoformat(), tags=tags))
            mark_handled(s.home, r.id, handled_by="dagster sensor retrain_request_sensor")
        return out

    @dg.sensor(
        name="challenger_sensor",
        job_name=PROMOTE_JOB,
        minimum_interval_seconds=interval,
        description="a new complete, blessed challenger -> promote (unless pipelines.require_approval)",
    )
    def challenger_sensor(context: dg.SensorEvaluationContext):
        from tradeops.deploy.challenger import challenger_decisions
        from tradeops.model.registry import describe_all

        s = get()
        handled: list[str] = list(_load(context.cursor, []))
        decisions = challenger_decisions(describe_all(s), handled)
        waiting = [d for d in decisions if d.promotable and s.pipelines.require_approval]
        ready = [d for d in decisions if d.promotable and not s.pipelines.require_approval]
        for d in decisions:
            if not d.promotable:
                context.log.info(f"{d.model} v{d.version}: challenger not promoted: {d.reason}")
        handled += [d.key for d in decisions if d.settled and d not in waiting]
        cursor = json.dumps(sorted(set(handled)))
        if ready:
            requests = [
                dg.RunRequest(
                    run_key=d.key,
                    tags={TRIGGER_TAG: "challenger", MODEL_TAG: d.model, MODEL_VERSION_TAG: d.version},
                )
                for d in ready
            ]
            return dg.SensorResult(run_requests=requests, cursor=cursor)
        if waiting:
            why = "; ".join(
                f"{d.model} v{d.version} is a blessed challenger waiting for approval: "
                f"run `tradeops promote {d.version}`"
                for d in waiting
            )
            return dg.SensorResult(skip_reason=f"{why} (pipelines.require_approval is set)", cursor=cursor)
        return dg.SensorResult(skip_reason="no new blessed challenger", cursor=cursor)

    return [landing_sensor, alert_on_run_failure, retrain_request_sensor, challenger_sensor]


def __getattr__(name: str) -> list:
    # SENSORS is built on first use, not at import: reading the configuration is not an import side effect.
    if name == "SENSORS":
        value = build_sensors()
        globals()["SENSORS"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
