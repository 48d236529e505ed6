"""Blocking asset checks: the Data level's test families on ``raw_bars``, source vs destination on ``bars``, and
the blessing gate on ``blessing``. A failed check (severity ERROR) stops every downstream asset of the run."""

import warnings
from collections.abc import Iterator

import dagster as dg

from tradeops.config import Settings
from tradeops.data.staging import FAMILIES, StagedFile, check_staged, destination_findings
from tradeops.errors import Finding
from tradeops.model import training as tr

FAMILY_DESCRIPTIONS = {
    "contract": "ingestion checks, parsing, the pandera bars contract and the exchange calendar",
    "statistical_schema": "new bars against the stored statistical schema (bar_stats) and history length",
    "anomalies": "unadjusted splits, price jumps, stale series, zero volume",
    "conflicts": "raw values that disagree with the stored bars on the same dates",
    "drift": "returns and volume of the new bars against the stored ones",
}
MAX_FINDINGS = 20


def findings_metadata(findings: list[Finding], **extra) -> dict:
    """Check metadata: counts and the first findings as (ticker, date, rule, message) records."""
    shown = [
        {"ticker": f.ticker, "date": f.date, "row": f.row, "rule": f.rule, "severity": f.severity, "message": f.message}
        for f in findings[:MAX_FINDINGS]
    ]
    return {
        "errors": sum(f.severity == "error" for f in findings),
        "warnings": sum(f.severity == "warning" for f in findings),
        "findings": dg.MetadataValue.json(shown),
        **extra,
    }


def build_checks(
    date_ticker: dg.MultiPartitionsDefinition, dates: dg.TimeWindowPartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    """The checks, partitioned like their assets (one result per partition)."""
    with warnings.catch_warnings():  # partitioned checks are a preview feature of dagster 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _build_checks(date_ticker, dates)


def _build_checks(
    date_ticker: dg.MultiPartitionsDefinition, dates: dg.TimeWindowPartitionsDefinition
) -> list[dg.AssetChecksDefinition]:
    @dg.multi_asset_check(
        name="raw_bars_data_tests",
        specs=[
            dg.AssetCheckSpec(
                family,
                asset="raw_bars",
                blocking=True,
                description=FAMILY_DESCRIPTIONS[family],
                partitions_def=date_ticker,
            )
            for family in FAMILIES
        ],
        ins={"staged": dg.AssetIn("raw_bars")},
    )
    def raw_bars_data_tests(tradeops: dg.ResourceParam[Settings], staged: StagedFile) -> Iterator[dg.AssetCheckResult]:
        result = check_staged(tradeops, staged)
        for family in FAMILIES:
            found = result.family(family)
            yield dg.AssetCheckResult(
                asset_key="raw_bars",
                check_name=family,
                passed=not result.errors(family),
                severity=dg.AssetCheckSeverity.ERROR,
                metadata=findings_metadata(
                    found, ticker=staged.ticker, date=staged.day, bars_version=str(result.bars_version)
                ),
            )

    @dg.asset_check(
        asset="bars",
        name="destination",
        blocking=True,
        additional_ins={"staged": dg.AssetIn("raw_bars")},
        description="Source vs destination: every staged bar is stored with the same raw values.",
        partitions_def=date_ticker,
    )
    def bars_destination(tradeops: dg.ResourceParam[Settings], staged: StagedFile) -> dg.AssetCheckResult:
        found = destination_findings(tradeops, staged)
        return dg.AssetCheckResult(
            passed=not found,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=findings_metadata(found, ticker=staged.ticker, date=staged.day),
        )

    @dg.asset_check(
        asset="blessing",
        name="candidate_blessed",
        blocking=True,
        additional_ins={"training_window": dg.AssetIn("training_window")},
        description="An unblessed candidate never reaches registration or promotion (its MLflow run is ended).",
        partitions_def=dates,
    )
    def candidate_blessed(
        tradeops: dg.ResourceParam[Settings], blessing: tr.BlessingOutcome, training_window: tr.PreparedWindow
    ) -> dg.AssetCheckResult:
        go_on = tr.stop_unblessed(tradeops, training_window, blessing)
        decision = blessing.decision.to_dict()
        return dg.AssetCheckResult(
            passed=go_on,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "mlflow_run_id": training_window.run_id,
                "model_name": training_window.name,
                "blessed": blessing.blessed,
                "reasons": dg.MetadataValue.json(list(decision.get("reasons", []))),
                "date": "" if training_window.as_of is None else training_window.as_of.date().isoformat(),
                "tickers": ",".join(training_window.tickers),
            },
        )

    return [raw_bars_data_tests, bars_destination, candidate_blessed]
