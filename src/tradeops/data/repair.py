"""Crash consistency of an ingestion: its pending report (journal), the repair at the start of the next run, and
the fault-injection hook the crash tests use.

One ingestion touches ``bars``, ``bar_stats``, ``quarantine``, ``validation_reports`` and its report JSON under
``<home>/reports/ingest/``. Before its first table write it saves its report as *pending*
(``reports/ingest/pending/<report_id>.json``) with every row still to be written after the bars commit; the bars
commit names the report id in its metadata. If the process dies anywhere, the next run (holding the home's writer
lock) calls :func:`repair` before reading anything:

* a pending report whose bars commit happened (or that had no bars to write) is finished: its quarantine and
  validation rows are written if missing and its JSON is finalised; one that died before its bars commit stored
  nothing and is finalised as ``aborted``;
* every ticker whose ``bar_stats.bars_version`` is older than the last bars version that touched it gets its
  statistics recomputed from the stored bars (:func:`~tradeops.data.quality.infer_stats`);
* a bars commit whose report is lost altogether (written before pending reports existed) gets placeholder
  validation rows and a stub JSON saying so, once.

:func:`pending_repairs` reports the same issues without writing (for the catalog). Versions are bars table versions.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pandas as pd

from tradeops.data import store as st
from tradeops.data.quality import infer_stats

FAULT_ENV = "TRADEOPS_FAULT_AT"
PENDING = "pending"
# Delta operations that rewrite files without changing any row.
_NO_DATA_CHANGE = {"OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES", "ADD CONSTRAINT"}


def fault_point(marker: str) -> None:
    """Test hook at a step boundary: ``TRADEOPS_FAULT_AT=<marker>`` kills this process with SIGKILL right here
    (nothing is cleaned up, as with ``kill -9``); ``<marker>:pause=S`` sleeps S seconds here; ``<marker>:raise``
    raises ``RuntimeError`` here (a failing write)."""
    spec = os.environ.get(FAULT_ENV, "")
    name, _, arg = spec.partition(":")
    if name != marker:
        return
    if arg.startswith("pause="):
        time.sleep(float(arg.removeprefix("pause=")))
    elif arg == "raise":
        raise RuntimeError(f"fault injected at {marker}")
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def report_path(reports_dir: Path, report_id: str) -> Path:
    """The final JSON report of one ingestion: ``<reports>/ingest/<report_id>.json``."""
    return Path(reports_dir) / "ingest" / f"{report_id}.json"


def pending_path(reports_dir: Path, report_id: str) -> Path:
    """The pending report (journal) of an ingestion that has not finished its writes yet."""
    return Path(reports_dir) / "ingest" / PENDING / f"{report_id}.json"


def write_json(path: Path, doc: dict) -> Path:
    """Write ``doc`` atomically (temp file, fsync, rename): a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(doc, indent=2, default=str))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return path


def finalise(reports_dir: Path, doc: dict) -> Path:
    """Write ``doc`` (without its ``plan``) as the final report, then drop the pending one."""
    rid = doc["report_id"]
    path = write_json(report_path(reports_dir, rid), {k: v for k, v in doc.items() if k != "plan"})
    pending_path(reports_dir, rid).unlink(missing_ok=True)
    return path


def records(df: pd.DataFrame | None) -> list[dict]:
    """Rows as JSON-safe records (ISO dates and UTC times, NaN as null) for a pending report."""
    if df is None or len(df) == 0:
        return []
    return json.loads(df.to_json(orient="records", date_format="iso", date_unit="us"))


def _tickers(value: Any) -> list[str] | None:
    """The ``tickers`` of a commit's metadata (stored as a JSON list), ``None`` when absent."""
    if value is None:
        return None
    out = json.loads(value) if isinstance(value, str) else value
    return [str(t) for t in out]


def _report_ids(lake: st.Lake, table: str) -> set[str]:
    if not lake.exists(table):
        return set()
    return set(lake.read(table, columns=["report_id"])["report_id"].dropna())


def _event(action: str, message: str, **details: Any) -> dict:
    return {"type": "repaired", "action": action, "message": message, **details}


def _finish_pending(lake: st.Lake, reports_dir: Path, path: Path, history: list[dict], by: str, write: bool) -> dict:
    """Finish (or mark aborted) one pending report, from what the bars history says happened."""
    doc = json.loads(path.read_text())
    rid, plan = doc["report_id"], doc.get("plan", {})
    commit = next((h for h in history if h.get("report_id") == rid and h.get("operation") == "ingest"), None)
    undone = any(h.get("undoes") == rid for h in history)
    where = {"report_id": rid, "report": str(report_path(reports_dir, rid))}
    if plan.get("bars_tickers") and (commit is None or undone):
        state = "aborted" if commit is None else "failed"
        msg = (
            f"ingest {rid} stopped before its bars commit; nothing of it was stored"
            if commit is None
            else f"ingest {rid} undid its bars commit v{commit['version']} before it stopped"
        )
        if write:
            finalise(
                reports_dir,
                {**doc, "state": state, "bars_version_after": doc.get("bars_version_before"), "repaired_by": by},
            )
        return _event(f"report_{state}", msg, **where)
    version = commit["version"] if commit else doc.get("bars_version_before")
    meta = {"operation": "ingest_repair", "report_id": rid, "repaired_by": by}
    done = []
    if plan.get("quarantine_rows") and rid not in _report_ids(lake, st.QUARANTINE):
        done.append(f"{len(plan['quarantine_rows'])} quarantine rows")
        if write:
            q = pd.DataFrame(plan["quarantine_rows"])
            doc["quarantine_version"] = lake.append(st.QUARANTINE, q, {**meta, "rows": len(q)})
    if plan.get("validation_rows") and rid not in _report_ids(lake, st.REPORTS):
        done.append(f"{len(plan['validation_rows'])} validation_reports rows")
        if write:
            lake.append(st.REPORTS, pd.DataFrame(plan["validation_rows"]).assign(bars_version=version), meta)
    if write:
        finalise(reports_dir, {**doc, "state": "complete", "bars_version_after": version, "repaired_by": by})
    verb = "wrote" if write else "to write:"
    wrote = f"{verb} {' and '.join(done)} from its pending report" if done else "its tables were complete"
    step = f"its bars commit v{version}" if commit else "validation"
    return _event(
        "report_completed",
        f"ingest {rid} was interrupted after {step}; {wrote}; report {'finalised' if write else 'pending'}",
        bars_version=version,
        **where,
    )


def _lost_reports(lake: st.Lake, reports_dir: Path, history: list[dict], by: str, write: bool) -> list[dict]:
    """Bars commits whose report is gone (no JSON, no validation rows): placeholder rows and a stub JSON, once."""
    have = _report_ids(lake, st.REPORTS)
    out = []
    for h in history:
        rid = h.get("report_id")
        if h.get("operation") != "ingest" or not rid or rid in have:
            continue
        if report_path(reports_dir, rid).exists() or pending_path(reports_dir, rid).exists():
            continue  # finalised without rows on purpose (failed, undone) or finished by _finish_pending
        tickers = _tickers(h.get("tickers")) or []
        msg = (
            f"bars v{h['version']} was written by ingest {rid}, whose report was lost (no JSON, no "
            f"validation rows); placeholder rows with status 'unknown' {'were' if write else 'to be'} recorded"
        )
        out.append(_event("report_lost", msg, report_id=rid, bars_version=h["version"], tickers=tickers))
        if not write:
            continue
        finding = {"rule": "report_lost", "severity": "warning", "message": msg}
        created = pd.Timestamp(h["timestamp"]) if h.get("timestamp") else st.utcnow()
        rows = pd.DataFrame(
            [
                {
                    "report_id": rid,
                    "ticker": t,
                    "status": "unknown",
                    "source": h.get("source"),
                    "errors": 0,
                    "warnings": 1,
                    "findings_json": json.dumps([{**finding, "ticker": t}]),
                    "bars_version": h["version"],
                    "created_at": created,
                }
                for t in tickers
            ]
        )
        if len(rows):
            lake.append(st.REPORTS, rows, {"operation": "ingest_repair", "report_id": rid, "repaired_by": by})
        write_json(
            report_path(reports_dir, rid),
            {
                "report_id": rid,
                "state": "lost",
                "source": h.get("source"),
                "bars_version_after": h["version"],
                "repaired_by": by,
                "tickers": [{"ticker": t, "status": "unknown"} for t in tickers],
                "findings": [finding],
            },
        )
    return out


def stale_stats(lake: st.Lake, history: list[dict]) -> dict[str, tuple[int, int]]:
    """Tickers whose ``bar_stats`` row is older than the last bars version that touched them:
    ticker -> (stats bars_version or -1 when missing, last touching version)."""
    last: dict[str, int] = {}
    any_ticker = -1  # the newest commit that may have changed any ticker (no tickers in its metadata)
    for h in history:
        tickers = _tickers(h.get("tickers"))
        if tickers is None and h.get("delta_operation") in _NO_DATA_CHANGE:
            continue
        if tickers is None:
            any_ticker = max(any_ticker, h["version"])
        for t in tickers or []:
            last[t] = max(last.get(t, -1), h["version"])
    stats = lake.read(st.STATS, columns=["ticker", "bars_version"]) if lake.exists(st.STATS) else None
    have = {} if stats is None else {str(r["ticker"]): int(r["bars_version"]) for r in stats.to_dict("records")}
    names = set(last) | set(have)
    if any_ticker >= 0:
        names |= set(lake.read(st.BARS, columns=["ticker"])["ticker"].unique())
    out = {}
    for t in sorted(names):
        touched = max(last.get(t, -1), any_ticker)
        if have.get(t, -1) < touched:
            out[t] = (have.get(t, -1), touched)
    return out


def _repair_stats(lake: st.Lake, history: list[dict], by: str, write: bool) -> list[dict]:
    """Recompute the statistics of every stale ticker from the current bars (drop those with no bars left)."""
    stale = stale_stats(lake, history)
    if not stale:
        return []
    current = history[0]["version"]
    bars = lake.read_bars(sorted(stale))
    groups = {t: g.reset_index(drop=True) for t, g in bars.groupby("ticker", sort=True)}
    gone = sorted(t for t, (have, _) in stale.items() if t not in groups and have >= 0)
    out = []
    if groups:
        names = ", ".join(
            f"{t} (v{stale[t][0]} < v{stale[t][1]})" if stale[t][0] >= 0 else f"{t} (missing)" for t in groups
        )
        verb = "recomputed from" if write else "older than the last commits touching them, to recompute from"
        out.append(
            _event(
                "stats_recomputed",
                f"bar_stats of {names} {verb} bars v{current}",
                table=st.STATS,
                tickers=list(groups),
                bars_version=current,
            )
        )
        if write:
            rows = pd.DataFrame(
                [
                    {
                        **infer_stats(t, g).to_dict(),
                        "bars_version": current,
                        "report_id": by,
                        "computed_at": st.utcnow(),
                    }
                    for t, g in groups.items()
                ]
            )
            lake.upsert(st.STATS, rows, {"operation": "ingest_repair", "report_id": by, "bars_version": current})
    if gone:
        verb = "dropped" if write else "to drop"
        out.append(
            _event(
                "stats_dropped",
                f"bar_stats of {', '.join(gone)} {verb}: no bars stored any more (bars v{current})",
                table=st.STATS,
                tickers=gone,
                bars_version=current,
            )
        )
        if write:
            lake.delete_tickers(st.STATS, gone, {"operation": "ingest_repair", "report_id": by})
    return out


def _missing_rows(lake: st.Lake, history: list[dict]) -> list[dict]:
    """Bars commits (not undone) whose report has no validation_reports rows (a table-only check)."""
    have = _report_ids(lake, st.REPORTS)
    undone = {h.get("undoes") for h in history}
    return [
        _event(
            "report_rows_missing",
            f"bars v{h['version']} was written by ingest {h['report_id']}, which has no validation_reports rows",
            report_id=h["report_id"],
            bars_version=h["version"],
        )
        for h in history
        if h.get("operation") == "ingest"
        and h.get("report_id")
        and h["report_id"] not in have
        and h["report_id"] not in undone
    ]


def _scan(lake: st.Lake, reports_dir: Path | None, by: str, write: bool) -> list[dict]:
    history = lake.history(st.BARS)
    events = []
    if reports_dir is not None:
        pending = Path(reports_dir) / "ingest" / PENDING
        for path in sorted(pending.glob("*.json")) if pending.is_dir() else []:
            events.append(_finish_pending(lake, reports_dir, path, history, by, write))
        events += _lost_reports(lake, reports_dir, history, by, write)
    else:
        events += _missing_rows(lake, history)
    if history:
        events += _repair_stats(lake, history, by, write)
    return events


def repair(lake: st.Lake, reports_dir: Path, *, by: str) -> list[dict]:
    """Make every table of an interrupted ingestion consistent again; returns one event per repair.

    Call with the home's writer lock held (:func:`~tradeops.data.store.writer_lock`), before reading stored bars or
    statistics. ``by`` is the report id of the run that repairs (recorded in what it writes). Idempotent.
    """
    return _scan(lake, reports_dir, by, write=True)


def pending_repairs(lake: st.Lake, reports_dir: Path | None = None) -> list[dict]:
    """What :func:`repair` would do now, without writing (``reports_dir=None``: table checks only)."""
    return [{**e, "type": "needs_repair"} for e in _scan(lake, reports_dir, "", write=False)]
