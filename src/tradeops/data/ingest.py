"""Ingestion: source -> ingestion checks -> clean/adjust -> validate -> versioned store, one report per run.

Each ticker ends ``accepted``, ``accepted_with_warnings`` or ``quarantined``. Accepted tickers are upserted on
(ticker, date) into the ``bars`` table as ONE Delta version; quarantined tickers leave their stored bars untouched and
their rows go to the ``quarantine`` table with the reasons.

One writer at a time per home: a run holds ``<home>/locks/ingest.lock`` (:func:`~tradeops.data.store.writer_lock`)
from before it reads stored bars until its report is final; a second run fails at once naming the holder. Writes are
one logical commit: the report is saved as pending with every row still to write, then bars, bar_stats, quarantine
and validation_reports are written and the report is finalised. A run killed at any point is finished (or, before its
bars commit, marked aborted) by the next run's :func:`~tradeops.data.repair.repair`; a run failing with an exception
undoes its own bars commit only, and only while it is still the current version.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from tradeops.config import IngestConfig, Settings
from tradeops.data import store as st
from tradeops.data.clean import adjust, calendar_findings
from tradeops.data.contract import validate_contract
from tradeops.data.parse import parse_raw
from tradeops.data.quality import TickerStats, check_anomalies, drift, infer_stats, overlap_conflicts, stats_on_basis
from tradeops.data.raw import RawFile
from tradeops.data.repair import fault_point, finalise, pending_path, records, repair, write_json
from tradeops.data.sources import Source
from tradeops.errors import Finding, TradeopsError

ACCEPTED = "accepted"
WARNED = "accepted_with_warnings"
QUARANTINED = "quarantined"
EXCHANGE_TZ = ZoneInfo("America/New_York")
_ADJ = ("adj_open", "adj_high", "adj_low", "adj_close")


def exchange_today() -> date:
    """Today's date at the exchange (New York): the last date a bar may carry."""
    return datetime.now(EXCHANGE_TZ).date()


@dataclass
class TickerResult:
    """Outcome for one ticker in one ingestion run."""

    ticker: str
    status: str
    provenance: dict
    layout: str = "unknown"
    order: str = "empty"
    rows_in: int = 0
    rows_new: int = 0
    rows_updated: int = 0
    rows_written: int = 0
    rows_total: int = 0
    first_date: str | None = None
    last_date: str | None = None
    findings: list[Finding] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    drift: dict = field(default_factory=dict)
    calendar: dict = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def to_dict(self) -> dict:
        return {
            "ticker": self.ticker,
            "status": self.status,
            "provenance": self.provenance,
            "layout": self.layout,
            "order": self.order,
            "rows_in": self.rows_in,
            "rows_new": self.rows_new,
            "rows_updated": self.rows_updated,
            "rows_written": self.rows_written,
            "rows_total": self.rows_total,
            "first_date": self.first_date,
            "last_date": self.last_date,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "events": self.events,
            "drift": self.drift,
            "calendar": self.calendar,
        }


@dataclass
class IngestReport:
    """Machine-readable report of one ingestion run (also saved as JSON under ``<home>/reports/ingest``)."""

    report_id: str
    source: str
    started_at: str
    results: list[TickerResult]
    bars_version_before: int | None = None
    bars_version_after: int | None = None
    quarantine_version: int | None = None
    finished_at: str | None = None
    path: str | None = None
    state: str = "pending"  # pending -> complete | failed (see tradeops.data.repair)
    error: str | None = None
    repairs: list[dict] = field(default_factory=list)  # what this run repaired of an interrupted earlier one

    @property
    def ok(self) -> bool:
        return all(r.status != QUARANTINED for r in self.results)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return {
            "report_id": self.report_id,
            "source": self.source,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "ok": self.ok,
            "bars_version_before": self.bars_version_before,
            "bars_version_after": self.bars_version_after,
            "quarantine_version": self.quarantine_version,
            "state": self.state,
            "error": self.error,
            "repairs": self.repairs,
            "summary": {s: sum(r.status == s for r in self.results) for s in (ACCEPTED, WARNED, QUARANTINED)},
            "tickers": [r.to_dict() for r in self.results],
        }


@dataclass
class Validated:
    """Pure outcome of validating one raw file against the stored state of its ticker."""

    result: TickerResult
    upsert: pd.DataFrame | None  # rows to upsert (new batch + re-adjusted stored rows), when accepted
    combined: pd.DataFrame | None  # the ticker's full history after the upsert, when accepted
    quarantine: pd.DataFrame | None  # rows for the quarantine table, when quarantined


def _iso(ts) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d")


def _rebase_stored(
    ticker: str, new: pd.DataFrame, stored: pd.DataFrame
) -> tuple[pd.DataFrame, list[dict], list[Finding]]:
    """Stored rows before the new batch, re-based when the batch's adjustment changed (a later split/dividend).

    The ratio of new to stored adjustment on the latest overlapping date (price factor and split factor separately)
    is applied to all stored rows dated before the batch; without an overlap the batch's first factor is used and a
    warning says the continuity could not be verified.
    """
    older = stored.loc[stored["date"] < new["date"].iloc[0]]
    if len(older) == 0:
        return older, [], []
    overlap = new.merge(stored, on="date", suffixes=("", "_s"))
    findings: list[Finding] = []
    if len(overlap):
        last = overlap.iloc[-1]
        price_ratio = (last["adj_close"] / last["close"]) / (last["adj_close_s"] / last["close_s"])
        vol_ratio = (
            (last["adj_volume"] / last["volume"]) / (last["adj_volume_s"] / last["volume_s"])
            if last["volume"] > 0 and last["volume_s"] > 0 and last["adj_volume_s"] > 0
            else 1.0
        )
        anchor = _iso(last["date"])
    else:
        # Contiguous batch: the factor of its first bar vs the factor of the last stored bar. Equal factors mean no
        # corporate action was newly applied; a difference is re-based onto the stored history.
        first, last = new.iloc[0], older.iloc[-1]
        price_ratio = (first["adj_close"] / first["close"]) / (last["adj_close"] / last["close"])
        vol_ratio = (
            (first["adj_volume"] / first["volume"]) / (last["adj_volume"] / last["volume"])
            if first["volume"] > 0 and last["volume"] > 0 and last["adj_volume"] > 0
            else 1.0
        )
        anchor = _iso(first["date"])
        if not (np.isclose(price_ratio, 1.0, rtol=1e-9) and np.isclose(vol_ratio, 1.0, rtol=1e-9)):
            findings.append(
                Finding(
                    ticker,
                    "adjustment_unverified",
                    f"batch starts after the stored history without overlapping it; stored adjusted "
                    f"prices re-based by x{price_ratio:.6g} assuming no corporate action in between",
                    severity="warning",
                    date=anchor,
                )
            )
    if np.isclose(price_ratio, 1.0, rtol=1e-9, atol=0) and np.isclose(vol_ratio, 1.0, rtol=1e-9, atol=0):
        return older.iloc[0:0], [], findings
    rebased = older.copy()
    for c in _ADJ:
        rebased[c] = rebased[c] * price_ratio
    rebased["adj_volume"] = rebased["adj_volume"] * vol_ratio
    event = {
        "type": "readjusted",
        "rows": int(len(rebased)),
        "price_ratio": float(price_ratio),
        "volume_ratio": float(vol_ratio),
        "anchor_date": anchor,
    }
    return rebased, [event], findings


def validate_ticker(
    raw: RawFile,
    stored: pd.DataFrame,
    stats: TickerStats | None,
    cfg: IngestConfig,
    today: date,
    extra: list[Finding] | None = None,
) -> Validated:
    """Run every check for one ticker's raw file against its stored bars and statistical schema (pure, no I/O)."""
    t = raw.ticker
    parsed = parse_raw(raw)
    res = TickerResult(
        t, QUARANTINED, raw.provenance(), layout=parsed.layout, order=parsed.order, rows_in=parsed.source_rows
    )
    res.findings = list(extra or []) + list(parsed.findings)
    frame = parsed.frame
    upsert = combined = None
    if frame is not None and not any(f.severity == "error" for f in res.findings):
        bars = adjust(frame, cfg.split_tolerance)
        res.first_date, res.last_date = _iso(bars["date"].iloc[0]), _iso(bars["date"].iloc[-1])
        res.findings += validate_contract(t, bars, today)
        known = pd.DatetimeIndex(stored["date"]) if len(stored) else None
        cal, res.calendar = calendar_findings(t, bars["date"], cfg.calendar, cfg.max_gap_sessions, known)
        res.findings += cal
        # Re-base the stored history first, so the bar before the batch is compared on the batch's adjustment basis
        # (a split newly applied by the source must not look like a jump against the old basis).
        rebased, rebase_events, rebase_findings = _rebase_stored(t, bars, stored)
        previous = rebased if len(rebased) else stored.loc[stored["date"] < bars["date"].iloc[0]]
        anomalies, res.events = check_anomalies(
            t, bars, cfg, previous if len(previous) else None, stats_on_basis(stats, bars, stored)
        )
        res.findings += anomalies
        res.findings += overlap_conflicts(t, bars, stored, cfg.conflict_rtol)
        fresh = bars.loc[~bars["date"].isin(stored["date"])] if len(stored) else bars
        drift_findings, res.drift = drift(t, fresh, stored if len(stored) else None, cfg)
        res.findings += drift_findings
        if not any(f.severity == "error" for f in res.findings):
            res.events += rebase_events
            res.findings += rebase_findings
            batch = _changed_rows(bars.assign(ticker=t), stored)
            upsert = pd.concat([batch, rebased], ignore_index=True) if len(rebased) else batch
            keep = stored.loc[~stored["date"].isin(upsert["date"])]
            combined = pd.concat([keep, upsert], ignore_index=True).sort_values("date", kind="stable")
            combined = combined.reset_index(drop=True)
            res.rows_new = int(len(fresh))
            res.rows_updated = int(len(upsert) - res.rows_new)
            res.rows_written = int(len(upsert))
            res.rows_total = int(len(combined))
            if res.rows_total < cfg.min_history_rows:
                res.findings.append(
                    Finding(
                        t,
                        "short_history",
                        f"only {res.rows_total} bars stored (fewer than "
                        f"ingest.min_history_rows={cfg.min_history_rows}): too little history "
                        "for long indicator windows and walk-forward training",
                        severity="warning",
                    )
                )
    if any(f.severity == "error" for f in res.findings):
        res.status = QUARANTINED
        res.rows_new = res.rows_updated = res.rows_written = 0
        res.rows_total = int(len(stored))
        return Validated(res, None, None, _quarantine_rows(raw, frame, res))
    res.status = WARNED if res.warnings else ACCEPTED
    return Validated(res, upsert, combined, None)


_VALUE_COLUMNS = ("open", "high", "low", "close", "volume", *_ADJ, "adj_volume", "dividend", "split_ratio")


def _changed_rows(batch: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``batch`` that are new or differ from the stored bar in any value (so re-ingesting is a no-op)."""
    if len(stored) == 0:
        return batch
    m = batch[["date"]].merge(stored[["date", *_VALUE_COLUMNS]], on="date", how="left")
    changed = m["open"].isna().to_numpy()
    for c in _VALUE_COLUMNS:
        a, b = batch[c].to_numpy(dtype="float64"), m[c].to_numpy(dtype="float64")
        changed |= ~np.isclose(a, b, rtol=1e-12, atol=0.0, equal_nan=True)
    return batch.loc[changed]


def _quarantine_rows(raw: RawFile, frame: pd.DataFrame | None, res: TickerResult) -> pd.DataFrame:
    """The batch's rows with the rules they broke (row-specific rules, else every error of the ticker)."""
    errors = res.errors
    all_rules = sorted({f.rule for f in errors})
    reason = "; ".join(str(f) for f in errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else "")
    by_row: dict[int, list[str]] = {}
    for f in errors:
        if f.row is not None:
            by_row.setdefault(f.row, []).append(f.rule)
    common = dict(
        ticker=raw.ticker, source=raw.source, location=raw.location, reason=reason, quarantined_at=st.utcnow()
    )
    if frame is None or len(frame) == 0:
        excerpt = raw.content[:200].decode("utf-8", errors="replace")
        return pd.DataFrame([{**common, "rules": ",".join(all_rules), "payload_excerpt": excerpt}])
    q = frame[["date", "row", "open", "high", "low", "close", "volume", "adj_close"]].copy()
    q["rules"] = [",".join(sorted(set(by_row.get(int(r), all_rules)))) for r in q["row"]]
    for k, v in common.items():
        q[k] = v
    return q


def _batch_findings(files: list[RawFile]) -> dict[int, list[Finding]]:
    """Duplicate files (same bytes) and several files for one ticker within one run."""
    out: dict[int, list[Finding]] = {}
    seen_sha: dict[str, RawFile] = {}
    per_ticker: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        per_ticker.setdefault(f.ticker, []).append(i)
        if f.content and f.sha256 in seen_sha:
            first = seen_sha[f.sha256]
            out.setdefault(i, []).append(
                Finding(
                    f.ticker,
                    "duplicate_file",
                    f"{f.location} has the same bytes (sha256 {f.sha256[:12]}) as {first.location} ({first.ticker})",
                )
            )
        seen_sha.setdefault(f.sha256, f)
    for t, idx in per_ticker.items():
        if len(idx) > 1:
            names = ", ".join(files[i].location for i in idx)
            for i in idx:
                out.setdefault(i, []).append(
                    Finding(t, "duplicate_ticker", f"{len(idx)} files for one ticker in one run: {names}")
                )
    return out


def _accepted_sha256(reports: pd.DataFrame) -> dict[str, str]:
    """sha256 -> ticker of every file stored as accepted (with or without warnings), first ticker per content."""
    ok = reports.loc[reports["status"] != QUARANTINED].sort_values("created_at", kind="stable")
    return dict(reversed(list(zip(ok["sha256"], ok["ticker"]))))


def _stored_duplicate_findings(files: list[RawFile], stored: dict[str, str]) -> dict[int, list[Finding]]:
    """Files byte-identical to the stored, accepted file of ANOTHER ticker (``stored``: sha256 -> ticker): the
    same data under a second name is quarantined. The same ticker's own file again is not a duplicate (re-ingest)."""
    out: dict[int, list[Finding]] = {}
    for i, f in enumerate(files):
        other = stored.get(f.sha256) if f.content else None
        if other is not None and other != f.ticker:
            out[i] = [
                Finding(
                    f.ticker,
                    "duplicate_content",
                    f"{f.location} for {f.ticker} has the same bytes "
                    f"(sha256 {f.sha256[:12]}) as the file stored for {other}: {f.ticker} would be a copy "
                    f"of {other}'s bars",
                    details={"ticker": f.ticker, "same_as": other, "sha256": f.sha256},
                )
            ]
    return out


def ingest(
    source: Source,
    settings: Settings,
    tickers: list[str] | None = None,
    *,
    today: date | None = None,
    lake: st.Lake | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    lock_wait_seconds: float = 0.0,
) -> IngestReport:
    """Ingest ``tickers`` (all the source has when ``None``) from ``source`` into the lake and return the report.

    Raises :class:`~tradeops.errors.SourceError` / ``UsageError`` before anything is written when the source fails,
    and ``TradeopsError("another ingestion is running (pid N, since T)")`` while another run holds the home's lock
    (after waiting up to ``lock_wait_seconds`` for it). ``progress(ticker, i, n)`` is called before each ticker is
    validated.
    """
    with st.writer_lock(settings.home, wait_seconds=lock_wait_seconds):
        return _ingest_locked(source, settings, tickers, today=today, lake=lake, progress=progress)


def _ingest_locked(
    source: Source,
    settings: Settings,
    tickers: list[str] | None,
    *,
    today: date | None,
    lake: st.Lake | None,
    progress: Callable[[str, int, int], None] | None,
) -> IngestReport:
    """:func:`ingest` with the home's writer lock held: repair, read stored state, validate, write, report."""
    cfg = settings.ingest
    today = today or exchange_today()
    lake = lake or st.lake_for(settings)
    report = IngestReport(
        report_id=f"ing-{datetime.now(EXCHANGE_TZ):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        source=source.name,
        started_at=st.utcnow().isoformat(),
        results=[],
    )
    # Before reading anything: an interrupted earlier run must not leave stale statistics as the reference.
    report.repairs = repair(lake, settings.reports_dir, by=report.report_id)
    bars_before = lake.version(st.BARS)
    report.bars_version_before = report.bars_version_after = bars_before

    wanted = [t.strip().upper() for t in tickers] if tickers else None
    stored_all = lake.read_bars(wanted) if bars_before is not None else st.BARS_SCHEMA.empty_table().to_pandas()
    stored_all["date"] = pd.to_datetime(stored_all["date"])
    stored_by = {t: g.reset_index(drop=True) for t, g in stored_all.groupby("ticker", sort=False)}
    stored_last = {t: g["date"].iloc[-1].date() for t, g in stored_by.items()}
    files = source.fetch(wanted, stored_last)
    stats_df = lake.read(st.STATS)
    stats = {
        r["ticker"]: TickerStats(**{k: r[k] for k in TickerStats.__dataclass_fields__})
        for r in stats_df.to_dict("records")
    }

    extra = _batch_findings(files)
    stored_sha = _accepted_sha256(lake.read(st.REPORTS, columns=["ticker", "status", "sha256", "created_at"]))
    for i, dup in _stored_duplicate_findings(files, stored_sha).items():
        extra.setdefault(i, []).extend(dup)
    validated: list[Validated] = []
    empty = stored_all.iloc[0:0]
    for i, raw in enumerate(files):
        if progress:
            progress(raw.ticker, i, len(files))
        v = validate_ticker(raw, stored_by.get(raw.ticker, empty), stats.get(raw.ticker), cfg, today, extra.get(i))
        validated.append(v)
        report.results.append(v.result)

    _write(lake, report, validated, settings)
    # Every commit of this run is verified and final: compact tables that daily writes have fragmented.
    for table in (st.BARS, st.STATS, st.REPORTS, st.QUARANTINE, st.LINEAGE):
        lake.compact(table)
    report.state = "complete"
    report.finished_at = st.utcnow().isoformat()
    report.path = str(save_report(report, settings.reports_dir))
    return report


def preview_ticker(raw: RawFile, settings: Settings, *, today: date, lake: st.Lake | None = None) -> Validated:
    """Validate one raw file exactly as :func:`ingest` would against the currently stored bars, statistics and
    accepted files of the home, without taking the lock, repairing or writing anything (a dry run of one ticker)."""
    lake = lake or st.lake_for(settings)
    t = raw.ticker
    if lake.version(st.BARS) is not None:
        stored = lake.read_bars([t])
        stored["date"] = pd.to_datetime(stored["date"])
    else:
        stored = st.BARS_SCHEMA.empty_table().to_pandas()
        stored["date"] = pd.to_datetime(stored["date"])
    stats_df = lake.read(st.STATS, tickers=[t])
    stats = None
    for r in stats_df.to_dict("records"):
        if r["ticker"] == t:
            stats = TickerStats(**{k: r[k] for k in TickerStats.__dataclass_fields__})
    extra = _batch_findings([raw]).get(0, [])
    stored_sha = _accepted_sha256(lake.read(st.REPORTS, columns=["ticker", "status", "sha256", "created_at"]))
    extra += _stored_duplicate_findings([raw], stored_sha).get(0, [])
    return validate_ticker(raw, stored.reset_index(drop=True), stats, settings.ingest, today, extra)


def _validation_rows(report: IngestReport) -> pd.DataFrame:
    """One ``validation_reports`` row per ticker of the run (``bars_version`` is set once the bars commit is known)."""
    return pd.DataFrame(
        [
            {
                "report_id": report.report_id,
                "ticker": r.ticker,
                "status": r.status,
                "source": report.source,
                "location": r.provenance["location"],
                "sha256": r.provenance["sha256"],
                "bytes": r.provenance["bytes"],
                "rows_in": r.rows_in,
                "rows_written": r.rows_written,
                "errors": len(r.errors),
                "warnings": len(r.warnings),
                "findings_json": json.dumps([f.to_dict() for f in r.findings]),
                "created_at": st.utcnow(),
            }
            for r in report.results
        ]
    )


def _own_commit(lake: st.Lake, report_id: str, before: int | None) -> int | None:
    """The bars version this run committed (found by its report id in the commit metadata), if any."""
    current = lake.version(st.BARS)
    limit = None if before is None or current is None else max(current - before, 1)
    for h in lake.history(st.BARS, limit=limit):
        if before is not None and h["version"] <= before:
            break
        if h.get("report_id") == report_id and h.get("operation") == "ingest":
            return int(h["version"])
    return None


def _write(lake: st.Lake, report: IngestReport, validated: list[Validated], settings: Settings) -> None:
    """Write the run as one logical commit: pending report -> bars -> bar_stats -> quarantine -> validation_reports.

    The pending report holds every row written after the bars commit, so a run killed between any two steps is
    finished by the next run's repair. On an exception the run undoes its own bars commit (only while it is still
    the current version; never a version someone else wrote), is reported ``failed`` and re-raises.
    """
    from deltalake.exceptions import CommitFailedError

    accepted = [v for v in validated if v.upsert is not None]
    quarantined = [v for v in validated if v.quarantine is not None]
    meta = {"operation": "ingest", "source": report.source, "report_id": report.report_id}
    before = report.bars_version_before
    rows = q = None
    if any(v.upsert is not None and len(v.upsert) for v in accepted):
        rows = pd.concat([v.upsert for v in accepted], ignore_index=True)
        rows["source"] = report.source
        rows["ingested_at"] = st.utcnow()
        rows["report_id"] = report.report_id
    if quarantined:
        q = pd.concat([v.quarantine for v in quarantined], ignore_index=True)
        q["report_id"] = report.report_id
    rep = _validation_rows(report)
    bars_tickers = [v.result.ticker for v in accepted] if rows is not None else []
    save_report(
        report,
        settings.reports_dir,
        plan={"bars_tickers": bars_tickers, "quarantine_rows": records(q), "validation_rows": records(rep)},
    )
    fault_point("before_bars_commit")
    try:
        if rows is not None:
            meta_bars = {
                **meta,
                "tickers": bars_tickers,
                "rows_written": len(rows),
                "rows_new": int(sum(v.result.rows_new for v in accepted)),
            }
            report.bars_version_after = lake.upsert(st.BARS, rows, meta_bars)
            fault_point("after_bars_commit")
            _verify_destination(lake, accepted)
            stats_rows = pd.DataFrame(
                [
                    {
                        **infer_stats(v.result.ticker, v.combined).to_dict(),
                        "bars_version": report.bars_version_after,
                        "report_id": report.report_id,
                        "computed_at": st.utcnow(),
                    }
                    for v in accepted
                ]
            )
            lake.upsert(st.STATS, stats_rows, {**meta, "bars_version": report.bars_version_after})
            fault_point("after_stats")
        if q is not None:
            report.quarantine_version = lake.append(st.QUARANTINE, q, {**meta, "rows": len(q)})
            fault_point("after_quarantine")
        if len(rep):
            lake.append(st.REPORTS, rep.assign(bars_version=report.bars_version_after), meta)
            fault_point("after_reports")
    except BaseException as exc:
        try:
            written = _own_commit(lake, report.report_id, before) if rows is not None else None
            undone = written is None or lake.undo(
                st.BARS,
                written,
                before,
                f"ingest {report.report_id} failed after writing",
                undoes=report.report_id,
                tickers=bars_tickers,
            )
        except Exception:  # the lake fails for the undo too: the pending report lets the next run finish instead
            undone = False
        if undone:  # else the commit stays and the pending report lets the next run finish it
            report.state, report.error = "failed", f"{type(exc).__name__}: {exc}"
            report.bars_version_after, report.finished_at = before, st.utcnow().isoformat()
            save_report(report, settings.reports_dir)
        if isinstance(exc, CommitFailedError):
            raise TradeopsError(
                f"bars: [commit_conflict] another writer committed to the lake during ingest "
                f"{report.report_id}; nothing of this run was stored ({exc})"
            ) from exc
        raise


def _verify_destination(lake: st.Lake, accepted: list[Validated]) -> None:
    """Row counts and dates per ticker in the table must equal what validation expected (source vs destination)."""
    tickers = [v.result.ticker for v in accepted]
    tbl = lake.arrow(st.BARS, columns=["ticker", "date"], tickers=tickers)
    counts = tbl.group_by("ticker").aggregate([("date", "count"), ("date", "count_distinct")]).to_pandas()
    got = {r["ticker"]: (int(r["date_count"]), int(r["date_count_distinct"])) for r in counts.to_dict("records")}
    for v in accepted:
        expected = v.result.rows_total
        n, distinct = got.get(v.result.ticker, (0, 0))
        if n != expected or distinct != expected:
            raise TradeopsError(
                f"{v.result.ticker}: [destination_count] table holds {n} rows ({distinct} distinct "
                f"dates) after the write, expected {expected}; the write was rolled back"
            )


def save_report(report: IngestReport, reports_dir: Path, *, plan: dict | None = None) -> Path:
    """Write the JSON report; returns its path.

    With ``plan`` (the rows still to write: ``bars_tickers``, ``quarantine_rows``, ``validation_rows``) it is the
    pending report ``<reports>/ingest/pending/<id>.json`` saved before the first table write; without, the final
    report ``<reports>/ingest/<id>.json`` (the pending one is removed). Both are written atomically.
    """
    doc = report.to_dict()
    if plan is not None:
        return write_json(pending_path(reports_dir, report.report_id), {**doc, "state": "pending", "plan": plan})
    return finalise(reports_dir, doc)
