"""Assets of the tradeops code location (thin wiring: every body calls one domain function and reports metadata).

Data: ``raw_bars`` (staged file per date x ticker) -> ``bars`` (the ingest path). Features: ``features`` and
``labels`` (one build per date x ticker). Model, per trading date (as_of = the date, tickers =
``pipelines.train_tickers``): ``training_window`` -> ``candidate_model`` -> ``evaluation`` -> ``blessing`` ->
``registered_model`` -> ``champion``; ``walkforward_report`` (job ``walkforward``). Stage outputs cross processes
through the IO manager (pickle).
"""

import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from tradeops.config import Settings
from tradeops.data.calendar import parse_day
from tradeops.data.staging import LandingFileSource, StagedFile, ingest_staged, stage_raw
from tradeops.errors import TradeopsError
from tradeops.model import training as tr
from tradeops.pipelines.partitions import split_key
from tradeops.pipelines.resources import LOCK_WAIT_SECONDS, SETTINGS_KEY
from tradeops.pipelines.sensors import LANDING_FILE_TAG, LANDING_SHA_TAG, TICKERS_TAG

DATA, FEATURES, MODEL, MONITORING = "data", "features", "model", "monitoring"
TRAINING_ASSETS = ("training_window", "candidate_model", "evaluation", "blessing", "registered_model", "champion")
INGEST_ASSETS = ("raw_bars", "bars", "features", "labels")


def _key(context: AssetExecutionContext) -> tuple[str, str | None]:
    return split_key(str(context.partition_key))


def _tickers_of(context: AssetExecutionContext, settings: Settings) -> list[str]:
    """The run's ``tradeops/tickers`` tag (a retrain request naming tickers), else ``pipelines.train_tickers``."""
    tagged = context.run.tags.get(TICKERS_TAG, "")
    return [t.strip().upper() for t in tagged.split(",") if t.strip()] or list(settings.pipelines.train_tickers)


def network_retry(settings: Settings) -> dg.RetryPolicy | None:
    """Exponential backoff for the network source (Alpha Vantage) only; deterministic steps never retry."""
    if settings.pipelines.source != "alphavantage" or settings.pipelines.retry_max == 0:
        return None
    return dg.RetryPolicy(
        max_retries=settings.pipelines.retry_max,
        delay=settings.pipelines.retry_delay_seconds,
        backoff=dg.Backoff.EXPONENTIAL,
    )


def _run_meta(prepared: tr.PreparedWindow) -> dict[str, Any]:
    return {
        "mlflow_run_id": prepared.run_id,
        "model_name": prepared.name,
        "bars_version": prepared.versions.bars,
        "features_version": prepared.versions.features,
        "labels_version": prepared.versions.labels,
    }


def build_assets(
    settings: Settings, date_ticker: dg.MultiPartitionsDefinition, dates: dg.TimeWindowPartitionsDefinition
) -> list[dg.AssetsDefinition]:
    """Every asset, for the given partitions (built from ``settings``)."""
    with warnings.catch_warnings():  # beta in dagster 1.13; the mapping the design asks for
        warnings.simplefilter("ignore", dg.BetaWarning)
        by_date = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date")

    @dg.asset(
        partitions_def=date_ticker,
        group_name=DATA,
        retry_policy=network_retry(settings),
        output_required=False,
        kinds={"csv"},
        description="The ticker's raw file from pipelines.source as known after the date's close (rows <= date), "
        "staged under <home>/staging/<date>/ with its provenance. Not emitted when the ticker has no bar yet.",
    )
    def raw_bars(context: AssetExecutionContext, tradeops: dg.ResourceParam[Settings]) -> Iterator[dg.Output]:
        day, ticker = _key(context)
        tags = context.run.tags
        landing = (
            LandingFileSource(tags[LANDING_FILE_TAG], str(ticker), tags.get(LANDING_SHA_TAG))
            if LANDING_FILE_TAG in tags
            else None
        )
        staged = stage_raw(tradeops, str(ticker), day, source=landing)
        if not staged.listed:
            context.log.info(f"{ticker} {day}: no bar dated by this day ({staged.later_rows} later): not listed yet")
            return
        yield dg.Output(
            staged,
            metadata={
                "staged_path": dg.MetadataValue.path(staged.path),
                "rows": staged.rows,
                "later_rows": staged.later_rows,
                "sha256": staged.sha256,
                "source": staged.source,
                "location": staged.location,
            },
        )

    @dg.asset(
        partitions_def=date_ticker,
        group_name=DATA,
        kinds={"deltalake"},
        ins={"staged": dg.AssetIn("raw_bars")},
        description="Validated, adjusted bars: the staged file written through `tradeops ingest`'s path "
        "(home lock, quarantine, report, crash safety) with today = the partition date.",
    )
    def bars(context: AssetExecutionContext, tradeops: dg.ResourceParam[Settings], staged: StagedFile):
        report = ingest_staged(tradeops, staged, lock_wait_seconds=LOCK_WAIT_SECONDS)
        result = report.results[0]
        return dg.Output(
            report,
            metadata={
                "bars_version_before": report.bars_version_before,
                "bars_version_after": report.bars_version_after,
                "bars_version": report.bars_version_after,
                "rows_written": result.rows_written,
                "rows_total": result.rows_total,
                "status": result.status,
                "warnings": len(result.warnings),
                "report_id": report.report_id,
                "report_path": dg.MetadataValue.path(str(report.path)),
            },
        )

    @dg.multi_asset(
        partitions_def=date_ticker,
        group_name=FEATURES,
        outs={
            "features": dg.AssetOut(kinds={"deltalake"}, description="Indicator features of the preset"),
            "labels": dg.AssetOut(kinds={"deltalake"}, description="Sezer labels with label_known_at"),
        },
        deps=["bars"],
        description="Features and labels of pipelines.preset for the ticker (built when stale).",
    )
    def features_and_labels(context: AssetExecutionContext, tradeops: dg.ResourceParam[Settings]):
        _day, ticker = _key(context)
        built = tr.refresh_features(
            tradeops, preset=tradeops.pipelines.preset, tickers=[str(ticker)], lock_wait_seconds=LOCK_WAIT_SECONDS
        )
        common: dict[str, Any] = {
            "feature_set_version": built.feature_set_version,
            "preset": built.preset,
            "bars_version": built.versions.bars,
        }
        yield dg.Output(
            built,
            output_name="features",
            metadata={
                **common,
                "table": built.features_table,
                "features_version": built.versions.features,
                "rows": built.feature_rows,
            },
        )
        yield dg.Output(
            built,
            output_name="labels",
            metadata={
                **common,
                "table": built.labels_table,
                "labels_version": built.versions.labels,
                "rows": built.label_rows,
            },
        )

    model_deps = [dg.AssetDep("features", partition_mapping=by_date), dg.AssetDep("labels", partition_mapping=by_date)]

    @dg.asset(
        partitions_def=dates,
        group_name=MODEL,
        deps=model_deps,
        description="Stage 1: the training window as of the date (features, holdout fold, MLflow run).",
    )
    def training_window(context: AssetExecutionContext, tradeops: dg.ResourceParam[Settings]):
        day, _ = _key(context)
        prepared = tr.prepare_window(
            tradeops,
            preset=tradeops.pipelines.preset,
            tickers=_tickers_of(context, tradeops),
            as_of=parse_day(day),
            extra_tags={"dagster.run_id": context.run.run_id},
        )
        return dg.Output(
            prepared,
            metadata={
                **_run_meta(prepared),
                "as_of": day,
                "tickers": ",".join(prepared.tickers),
                "fit_rows": len(prepared.data.fit),
                "val_rows": len(prepared.data.val),
                "test_rows": len(prepared.data.test),
            },
        )

    @dg.asset(partitions_def=dates, group_name=MODEL, description="Stage 2: fit the CNN, export ONNX, check parity.")
    def candidate_model(tradeops: dg.ResourceParam[Settings], training_window: tr.PreparedWindow):
        with tr.failing_run(tradeops, training_window.run_id):
            fitted = tr.fit_candidate(tradeops, training_window, epochs=tradeops.pipelines.epochs)
        return dg.Output(
            fitted,
            metadata={
                **_run_meta(training_window),
                "onnx_parity_max_abs_diff": float(fitted.parity),
                "best_epoch": int(fitted.window.classifier.best_epoch_),
            },
        )

    @dg.asset(partitions_def=dates, group_name=MODEL, description="Stage 3: classification and backtests.")
    def evaluation(
        tradeops: dg.ResourceParam[Settings], training_window: tr.PreparedWindow, candidate_model: tr.FittedCandidate
    ):
        with tr.failing_run(tradeops, training_window.run_id):
            evaluated = tr.evaluate_candidate(tradeops, training_window, candidate_model)
        summary = {k: float(v) for k, v in evaluated.summary.items() if isinstance(v, (int, float))}
        return dg.Output(evaluated, metadata={**_run_meta(training_window), **summary})

    @dg.asset(
        partitions_def=dates,
        group_name=MODEL,
        description="Stage 4: bless against the floors and the champion re-scored on the same window.",
    )
    def blessing(
        tradeops: dg.ResourceParam[Settings], training_window: tr.PreparedWindow, evaluation: tr.CandidateEvaluation
    ):
        with tr.failing_run(tradeops, training_window.run_id):
            blessed = tr.bless_candidate(tradeops, training_window, evaluation)
        return dg.Output(
            blessed,
            metadata={
                **_run_meta(training_window),
                "blessed": blessed.blessed,
                "champion_before": str(blessed.champion_version),
                "reasons": "; ".join(blessed.decision.to_dict().get("reasons", [])),
            },
        )

    @dg.asset(
        partitions_def=dates,
        group_name=MODEL,
        description="Stage 5: package, register (challenger alias) and record lineage.",
    )
    def registered_model(
        tradeops: dg.ResourceParam[Settings],
        training_window: tr.PreparedWindow,
        candidate_model: tr.FittedCandidate,
        evaluation: tr.CandidateEvaluation,
        blessing: tr.BlessingOutcome,
    ):
        with tr.failing_run(tradeops, training_window.run_id):
            registered = tr.register_candidate(tradeops, training_window, candidate_model, evaluation, blessing)
        return dg.Output(registered, metadata={**_run_meta(training_window), "model_version": registered.version})

    @dg.asset(
        partitions_def=dates,
        group_name=MODEL,
        description="Stage 6: promotion of a blessed candidate (auto_promote), by registry alias.",
    )
    def champion(
        tradeops: dg.ResourceParam[Settings], registered_model: tr.RegisteredModel, blessing: tr.BlessingOutcome
    ):
        promotion = tr.promote_candidate(tradeops, registered_model, blessing)
        return dg.Output(
            promotion,
            metadata={
                "mlflow_run_id": registered_model.run_id,
                "model_name": registered_model.name,
                "model_version": registered_model.version,
                "promoted": promotion.promoted,
                "champion_before": str(promotion.champion_before),
                "champion_after": str(promotion.champion_after),
                "reason": promotion.reason,
            },
        )

    @dg.asset(
        partitions_def=dates,
        group_name=MODEL,
        deps=model_deps,
        description="Walk-forward evaluation of pipelines.preset on the train tickers as of the date "
        "(test year: the last calendar year whose labels are all known by then).",
    )
    def walkforward_report(context: AssetExecutionContext, tradeops: dg.ResourceParam[Settings]):
        day, _ = _key(context)
        report = tr.walkforward_as_of(tradeops, as_of=parse_day(day))
        return dg.Output(
            report.path,
            metadata={
                "report_path": dg.MetadataValue.path(report.path),
                "test_years": ",".join(map(str, report.test_years)),
                "tickers": ",".join(report.tickers),
                "mlflow_run_id": report.mlflow_run_id or "",
                **report.versions,
            },
        )

    @dg.asset(
        partitions_def=dates,
        group_name=MONITORING,
        description="One monitoring pass as of the date: data, prediction, quality, trading and service monitors, "
        "the rules and their actions (a retrain is requested through the retrain sensor), the HTML report.",
    )
    def monitoring(context: AssetExecutionContext, tradeops: dg.ResourceParam[Settings]):
        from tradeops.monitor.run import monitor_pass, report_path

        day, _ = _key(context)
        result = monitor_pass(tradeops, parse_day(day), report=report_path(tradeops))
        if result.failed_actions:
            raise TradeopsError(f"monitoring {day}: actions failed: {result.failed_actions}")
        return dg.Output(result.to_dict(), metadata=result.summary())

    return [
        raw_bars,
        bars,
        features_and_labels,
        training_window,
        candidate_model,
        evaluation,
        blessing,
        registered_model,
        champion,
        walkforward_report,
        monitoring,
    ]


__all__ = ["INGEST_ASSETS", "SETTINGS_KEY", "TRAINING_ASSETS", "build_assets", "network_retry"]
