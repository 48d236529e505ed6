"""One trading day of the ``ingest_daily`` job for one ticker, as the Dagster assets run it, in the same order:
``raw_bars`` (stage the source's rows dated <= the day) -> blocking ``raw_bars`` data tests -> ``bars`` (the one
ingest path) -> blocking ``destination`` check -> ``features``/``labels`` (rebuilt when stale).

The assets in :mod:`tradeops.pipelines.assets` call exactly these domain functions; this module only chains them
so the simulator can run a day without starting a Dagster run per partition. A failed check stops the chain for
that ticker and day and leaves the stored bars as they were (the ingest never ran, or wrote atomically).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from tradeops.config import Settings
from tradeops.data.sources import Source
from tradeops.data.staging import FAMILIES, check_staged, destination_findings, ingest_staged, stage_raw
from tradeops.errors import DataRejected, Finding
from tradeops.model.training import refresh_features

__all__ = ["DayIngest", "ingest_day"]


@dataclass
class DayIngest:
    """What the day's ingest did for one ticker. ``status``: ``ingested``, ``not_listed`` (no bar by the day yet)
    or ``blocked`` (a blocking check failed: ``check`` names it, ``findings`` say ticker, date and rule)."""

    ticker: str
    day: str
    status: str
    rows: int = 0
    bars_version: int | None = None
    features_version: int | None = None
    check: str | None = None
    findings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _text(findings: list[Finding]) -> list[str]:
    return [str(f) for f in findings]


def ingest_day(settings: Settings, ticker: str, day: date, source: Source, *, preset: str) -> DayIngest:
    """Run the ``ingest_daily`` chain for ``ticker`` after the close of ``day`` (reads only rows dated <= day)."""
    d = day.isoformat()
    staged = stage_raw(settings, ticker, day, source=source)
    if not staged.listed:
        return DayIngest(ticker, d, "not_listed")
    checks = check_staged(settings, staged)
    for family in FAMILIES:
        errors = checks.errors(family)
        if errors:
            return DayIngest(ticker, d, "blocked", staged.rows, checks.bars_version, None, family, _text(errors))
    try:
        report = ingest_staged(settings, staged)
    except DataRejected as exc:
        return DayIngest(ticker, d, "blocked", staged.rows, checks.bars_version, None, "ingest", [str(exc)])
    found = destination_findings(settings, staged)
    if found:
        return DayIngest(
            ticker, d, "blocked", staged.rows, report.bars_version_after, None, "destination", _text(found)
        )
    built = refresh_features(settings, preset=preset, tickers=[ticker])
    return DayIngest(ticker, d, "ingested", staged.rows, built.versions.bars, built.versions.features)
