"""Staging: a ticker's raw file as it was known after the close of trading date ``D``, kept under the home, checked
against the stored state WITHOUT writing bars, then written through the one ingest path.

Time convention: the bar of ``D`` is known after ``D``'s close, so the file staged for ``D`` holds the source's rows
dated <= ``D`` (a day-by-day arrival). Staged files live at ``<home>/staging/<D>/<TICKER>.csv`` with a provenance
JSON next to them (``<TICKER>.json``: the original source, location, sha256 and sizes of both payloads).

The Data level's tests are grouped into families (``contract``, ``statistical_schema``, ``anomalies``, ``conflicts``,
``drift``), each a blocking check in the pipelines; :func:`family_of` maps every finding rule of
:func:`tradeops.data.ingest.validate_ticker` to one family.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from tradeops.config import Settings
from tradeops.data import store as st
from tradeops.data.calendar import parse_day
from tradeops.data.ingest import IngestReport, ingest, preview_ticker
from tradeops.data.parse import parse_raw
from tradeops.data.quality import RAW_VALUE_COLUMNS
from tradeops.data.raw import RawFile
from tradeops.data.sources import CsvSource, SampleSource, Source
from tradeops.errors import DataRejected, Finding, TradeopsError, UsageError

FAMILIES = ("contract", "statistical_schema", "anomalies", "conflicts", "drift")

# Rule -> family. Every rule validate_ticker can produce is listed; an unknown rule counts as a contract breach
# (a rule added later must never slip through unchecked).
RULE_FAMILY: dict[str, str] = {
    # ingestion checks and parsing (tradeops.data.parse), batch duplicates (tradeops.data.ingest)
    **dict.fromkeys(
        (
            "size_mismatch",
            "empty_file",
            "html_body",
            "json_body",
            "not_text",
            "missing_columns",
            "duplicate_columns",
            "no_rows",
            "truncated_file",
            "malformed_csv",
            "row_count_mismatch",
            "wrong_ticker",
            "bad_date",
            "missing_value",
            "non_numeric",
            "non_finite",
            "unordered_rows",
            "duplicate_date",
            "duplicate_row",
            "duplicate_file",
            "duplicate_ticker",
            "duplicate_content",
        ),
        "contract",
    ),
    # the pandera bars contract (tradeops.data.contract) and the exchange calendar (tradeops.data.clean)
    **dict.fromkeys(
        (
            "date_not_in_future",
            "volume_non_negative",
            "price_positive",
            "high_ge_open_close",
            "low_le_open_close",
            "dates_increasing",
            "field_uniqueness",
            "not_nullable",
            "column_in_dataframe",
            "dtype",
            "not_a_session",
            "gap",
            "missing_sessions",
        ),
        "contract",
    ),
    # against the stored statistical schema (bar_stats) and the history it describes
    **dict.fromkeys(("out_of_range", "short_history"), "statistical_schema"),
    # anomalies of the new bars in the context of the stored ones (tradeops.data.quality.check_anomalies)
    **dict.fromkeys(
        (
            "unadjusted_split",
            "price_jump",
            "stale_series",
            "zero_volume_run",
            "zero_volume",
            "adjustment_unverified",
        ),
        "anomalies",
    ),
    "conflict": "conflicts",
    "drift": "drift",
}


def family_of(rule: str) -> str:
    """The Data-level test family of a finding rule (unknown rules: ``contract``)."""
    return RULE_FAMILY.get(rule, "contract")


def source_for(settings: Settings) -> Source:
    """The source ``raw_bars`` reads: ``pipelines.source`` (sample | csv with ``source_path`` | alphavantage)."""
    cfg = settings.pipelines
    if cfg.source == "csv":
        if cfg.source_path is None:
            raise UsageError("pipelines.source_path is required with pipelines.source=csv")
        return CsvSource(cfg.source_path)
    if cfg.source == "alphavantage":
        from tradeops.data.alphavantage import AlphaVantageSource

        return AlphaVantageSource(settings)
    return SampleSource()


class LandingFileSource:
    """One file that arrived in the landing directory for ``ticker`` (the landing sensor names it and its sha256).

    A file whose bytes no longer hash to ``sha256`` changed after the sensor saw it: refused, never ingested as the
    other content."""

    name = "landing"

    def __init__(self, path: Path | str, ticker: str, sha256: str | None = None):
        self.path, self.ticker, self.sha256 = Path(path), ticker.upper(), sha256

    def fetch(self, tickers: list[str] | None, stored_last: dict[str, date]) -> list[RawFile]:
        if tickers and [t.upper() for t in tickers] != [self.ticker]:
            raise UsageError(f"{self.path}: [landing_ticker] holds {self.ticker}, {','.join(tickers)} was asked for")
        try:
            content = self.path.read_bytes()
        except OSError as exc:
            raise TradeopsError(f"{self.ticker}: [landing_file] {self.path} cannot be read ({exc})") from exc
        raw = RawFile(self.ticker, content, "csv", str(self.path), declared_size=len(content))
        if self.sha256 is not None and raw.sha256 != self.sha256:
            raise TradeopsError(
                f"{self.ticker}: [landing_changed] {self.path} changed since the landing sensor saw it "
                f"(sha256 {raw.sha256[:12]}, expected {self.sha256[:12]}); it triggers a new run when it is complete"
            )
        return [raw]


def _date_column(header: str) -> int | None:
    names = [h.strip().lower() for h in header.split(",")]
    for i, name in enumerate(names):
        if name in ("date", "timestamp"):
            return i
    return None


def cut_through(raw: RawFile, through: date) -> tuple[RawFile, int]:
    """``raw`` with only the data lines dated <= ``through`` (header kept, line order kept); returns it and the
    number of data lines kept.

    Lines whose date cannot be read are kept, so the checks still see (and name) them. A payload that is not CSV
    text, has no date column, or whose declared size already disagrees with its bytes is returned unchanged (the
    ingestion checks reject it as it came). Pure.
    """
    if raw.declared_size is not None and raw.declared_size != len(raw.content):
        return raw, -1
    try:
        text = raw.content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw, -1
    lines = text.splitlines(keepends=True)
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None or text.lstrip()[:1] in ("{", "[", "<"):
        return raw, -1
    col = _date_column(lines[first])
    if col is None:
        return raw, -1
    kept = [lines[first]]
    n = 0
    for ln in lines[first + 1 :]:
        if not ln.strip():
            continue
        fields = ln.split(",")
        day = fields[col].strip() if col < len(fields) else ""
        try:
            known = date.fromisoformat(day) <= through
        except ValueError:
            known = True
        if known:
            kept.append(ln)
            n += 1
    content = "".join(kept).encode("utf-8")
    return (
        RawFile(
            ticker=raw.ticker,
            content=content,
            source=raw.source,
            location=raw.location,
            declared_size=len(content),
            fetched_at=raw.fetched_at,
            fmt_hint=raw.fmt_hint,
            expected_symbol=raw.expected_symbol,
        ),
        n,
    )


@dataclass(frozen=True)
class StagedFile:
    """One ticker's raw file as known after the close of ``day`` (ISO date), staged at ``path``.

    ``rows``: data lines kept (-1: the payload was staged unchanged because it could not be cut);
    ``later_rows``: data lines the source has after ``day`` (a ticker listed later has rows == 0, later_rows > 0).
    """

    ticker: str
    day: str
    path: str
    source: str
    location: str
    sha256: str
    rows: int
    later_rows: int

    @property
    def listed(self) -> bool:
        """Whether the ticker has any bar by ``day`` (a file with no rows at all is not "unlisted": it is bad)."""
        return self.rows != 0 or self.later_rows == 0

    def raw(self) -> RawFile:
        """The staged payload as a :class:`RawFile` (provenance: the original source and location)."""
        content = Path(self.path).read_bytes()
        return RawFile(
            ticker=self.ticker,
            content=content,
            source=self.source,
            location=f"{self.location} (staged {self.path})",
            declared_size=len(content),
        )

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def staging_dir(settings: Settings, day: str | date) -> Path:
    """``<home>/staging/<D>``: the files staged for trading date ``D``."""
    return settings.home / "staging" / parse_day(day).isoformat()


def stage_raw(settings: Settings, ticker: str, day: str | date, source: Source | None = None) -> StagedFile:
    """Fetch ``ticker`` from the configured source, keep the rows dated <= ``day`` and stage them (file + provenance
    JSON, written atomically). Raises :class:`~tradeops.errors.SourceError`/``UsageError`` when the source fails."""
    d = parse_day(day)
    src = source or source_for(settings)
    files = src.fetch([ticker], {})
    if len(files) != 1:
        raise TradeopsError(
            f"{ticker} {d}: [staging] the source {src.name} returned {len(files)} files for one ticker "
            f"({', '.join(f.location for f in files) or 'none'})"
        )
    raw = files[0]
    cut, kept = cut_through(raw, d)
    total = _data_lines(raw)
    later = max(total - kept, 0) if kept >= 0 else 0
    out = staging_dir(settings, d)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{ticker}.csv"
    _atomic_write(path, cut.content)
    staged = StagedFile(ticker, d.isoformat(), str(path.resolve()), raw.source, raw.location, cut.sha256, kept, later)
    provenance = {
        **staged.to_dict(),
        "original": raw.provenance(),
        "staged": {"bytes": len(cut.content), "sha256": cut.sha256},
    }
    _atomic_write(out / f"{ticker}.json", json.dumps(provenance, indent=2, default=str).encode())
    return staged


def _data_lines(raw: RawFile) -> int:
    try:
        text = raw.content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return 0
    return max(sum(1 for ln in text.splitlines() if ln.strip()) - 1, 0)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class StagedSource:
    """A :class:`~tradeops.data.sources.Source` over staged files (named after their original source)."""

    def __init__(self, staged: Sequence[StagedFile]):
        self.staged = list(staged)
        names = {s.source for s in self.staged}
        self.name = names.pop() if len(names) == 1 else "staged"

    def fetch(self, tickers: list[str] | None, stored_last: dict[str, date]) -> list[RawFile]:
        wanted = set(tickers) if tickers else None
        return [s.raw() for s in self.staged if wanted is None or s.ticker in wanted]


@dataclass
class StagedChecks:
    """Every finding of the Data level's tests on a staged file, against the stored bars and statistics."""

    ticker: str
    day: str
    findings: list[Finding] = field(default_factory=list)
    bars_version: int | None = None

    def family(self, name: str) -> list[Finding]:
        return [f for f in self.findings if family_of(f.rule) == name]

    def errors(self, name: str) -> list[Finding]:
        return [f for f in self.family(name) if f.severity == "error"]


def check_staged(settings: Settings, staged: StagedFile) -> StagedChecks:
    """Run the ingest validation of a staged file against the currently stored bars/stats; writes nothing."""
    lake = st.lake_for(settings)
    preview = preview_ticker(staged.raw(), settings, today=parse_day(staged.day), lake=lake)
    return StagedChecks(staged.ticker, staged.day, list(preview.result.findings), lake.version(st.BARS))


def ingest_staged(settings: Settings, staged: StagedFile, *, lock_wait_seconds: float = 0.0) -> IngestReport:
    """Write a staged file through the one ingest path (lock, repair, quarantine, report, crash safety), with
    ``today`` = the staged trading date. Waits up to ``lock_wait_seconds`` for another writer to finish.

    A quarantined ticker raises :class:`~tradeops.errors.DataRejected` with its findings (after the quarantine
    rows and the report are written, as `tradeops ingest` does)."""
    report = ingest(
        StagedSource([staged]),
        settings,
        [staged.ticker],
        today=parse_day(staged.day),
        lock_wait_seconds=lock_wait_seconds,
    )
    if not report.ok:
        raise DataRejected([f for r in report.results for f in r.errors])
    return report


def destination_findings(settings: Settings, staged: StagedFile, rtol: float | None = None) -> list[Finding]:
    """Source vs destination: every staged bar (dated <= the staged day) is stored with the same raw values.

    Findings use rule ``destination_mismatch`` naming ticker, date and the differing values; none when equal.
    """
    parsed = parse_raw(staged.raw())
    if parsed.frame is None:
        return [Finding(staged.ticker, "destination_mismatch", "the staged file cannot be parsed", date=staged.day)]
    src = parsed.frame.dropna(subset=["date"]).drop_duplicates("date", keep="last")
    lake = st.lake_for(settings)
    stored = lake.read_bars([staged.ticker])
    tol = settings.ingest.conflict_rtol if rtol is None else rtol
    m = src.merge(stored, on="date", how="left", suffixes=("", "_stored"), indicator=True)
    out: list[Finding] = []
    missing = m.loc[m["_merge"] == "left_only", "date"]
    if len(missing):
        shown = ", ".join(f"{d:%Y-%m-%d}" for d in missing[:5])
        out.append(
            Finding(
                staged.ticker,
                "destination_mismatch",
                f"{len(missing)} staged bar(s) not stored: {shown}",
                date=f"{missing.iloc[0]:%Y-%m-%d}",
            )
        )
    both = m.loc[m["_merge"] == "both"]
    bad = np.zeros(len(both), dtype=bool)
    for c in RAW_VALUE_COLUMNS:
        a = both[c].to_numpy(dtype="float64")
        b = both[f"{c}_stored"].to_numpy(dtype="float64")
        bad |= ~np.isclose(a, b, rtol=tol, atol=0.0, equal_nan=True)
    for i in np.flatnonzero(bad)[:5]:
        r = both.iloc[i]
        diffs = ", ".join(
            f"{c} staged {r[c]} vs stored {r[f'{c}_stored']}"
            for c in RAW_VALUE_COLUMNS
            if not np.isclose(r[c], r[f"{c}_stored"], rtol=tol, atol=0.0)
        )
        out.append(
            Finding(
                staged.ticker,
                "destination_mismatch",
                f"stored bar differs from the staged one: {diffs}",
                date=pd.Timestamp(r["date"]).strftime("%Y-%m-%d"),
            )
        )
    return out


def latest_source_date(settings: Settings, tickers: list[str], source: Source | None = None) -> date:
    """The last bar date the configured file source holds for any of ``tickers`` (the newest date the data
    supports); a UsageError when none of them has a readable dated bar."""
    src = source or source_for(settings)
    last: date | None = None
    for raw in src.fetch(tickers, {}):
        frame = parse_raw(raw).frame
        if frame is None or not len(frame) or frame["date"].isna().all():
            continue
        d = pd.Timestamp(frame["date"].max()).date()
        last = d if last is None or d > last else last
    if last is None:
        raise UsageError(f"no dated bar for {', '.join(tickers)} in the {src.name} source: pass --date")
    return last
