"""Ingestion checks and parsing: raw bytes -> a canonical frame of bars, plus findings.

Recognised layouts (header names compared case-insensitively):

* Yahoo-style: ``Date,Open,High,Low,Close,Adj Close,Volume`` (any column order; the bundled sample uses it);
* plain OHLCV: ``Date,Open,High,Low,Close,Volume`` (not adjusted: any split in it is rejected later);
* Alpha Vantage daily adjusted: ``timestamp,open,high,low,close,adjusted_close,volume,dividend_amount,
  split_coefficient`` (newest row first);
* Alpha Vantage daily: ``timestamp,open,high,low,close,volume``.

An optional ``symbol``/``ticker`` column is checked against the file's ticker. The canonical frame has columns
``date`` (datetime64, midnight, the trading date), ``open, high, low, close, volume`` as traded, ``adj_close``
(NaN when the layout has none), ``dividend`` and ``split_coefficient`` (NaN when unknown) and ``row``, the 1-based
data row in the file (header excluded) so every finding can point at it. Rows come out sorted by date, ascending.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradeops.data.raw import RawFile
from tradeops.errors import Finding

PRICE_COLUMNS = ("open", "high", "low", "close")
NUMERIC_COLUMNS = (*PRICE_COLUMNS, "volume", "adj_close", "dividend", "split_coefficient")

_ALIASES: dict[str, str] = {
    "date": "date",
    "timestamp": "date",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "adj close": "adj_close",
    "adj_close": "adj_close",
    "adjusted_close": "adj_close",
    "adjusted close": "adj_close",
    "dividend_amount": "dividend",
    "split_coefficient": "split_coefficient",
    "symbol": "symbol",
    "ticker": "symbol",
}
_REQUIRED = ("date", "open", "high", "low", "close", "volume")
_MISSING_TOKENS = {"", "nan", "NaN", "NAN", "null", "NULL", "None", "NA", "N/A", "-"}


@dataclass(frozen=True)
class Parsed:
    """Outcome of parsing one raw file: the frame (``None`` when unreadable), findings, and layout facts."""

    ticker: str
    frame: pd.DataFrame | None
    findings: list[Finding]
    layout: str
    source_rows: int
    order: str  # "ascending", "descending", "unordered" or "empty"

    @property
    def ok(self) -> bool:
        return self.frame is not None and not any(f.severity == "error" for f in self.findings)


def _body_kind(content: bytes) -> str:
    head = content.lstrip()[:256].lower()
    if not head:
        return "empty"
    if head.startswith(b"<") or b"<html" in head or b"<!doctype" in head:
        return "html"
    if head[:1] in (b"{", b"["):
        return "json"
    return "csv"


def _json_reason(content: bytes) -> str:
    try:
        body = json.loads(content)
    except ValueError:
        return "the body is JSON-like but not valid JSON"
    if isinstance(body, dict):
        for key in ("Error Message", "Note", "Information"):
            if key in body:
                return f'the body is an API answer, not bars: "{key}": {str(body[key])[:160]!r}'
    return "the body is JSON, not CSV"


def _layout(columns: list[str]) -> str:
    cols = set(columns)
    if "timestamp" in cols:
        return "alphavantage_adjusted" if "adjusted_close" in cols else "alphavantage_daily"
    if "adj close" in cols or "adj_close" in cols or "adjusted close" in cols:
        return "yahoo"
    return "ohlcv"


def parse_raw(raw: RawFile) -> Parsed:
    """Run the ingestion checks on one raw file and parse it. Never raises for bad data: findings say what is wrong."""
    t = raw.ticker
    findings: list[Finding] = []

    def fail(rule: str, message: str, **kw) -> Parsed:
        findings.append(Finding(t, rule, message, **kw))
        return Parsed(t, None, findings, "unknown", 0, "empty")

    if raw.declared_size is not None and raw.declared_size != len(raw.content):
        findings.append(
            Finding(
                t,
                "size_mismatch",
                f"read {len(raw.content)} bytes but the source declared "
                f"{raw.declared_size} bytes ({raw.location}); the transfer is incomplete",
                details={"read": len(raw.content), "declared": raw.declared_size},
            )
        )
    kind = _body_kind(raw.content)
    if kind == "empty":
        return fail("empty_file", f"file is empty ({len(raw.content)} bytes) at {raw.location}")
    if kind == "html":
        return fail("html_body", f"body is HTML, not CSV bars (an error page saved as data?) at {raw.location}")
    if kind == "json":
        return fail("json_body", f"{_json_reason(raw.content)} at {raw.location}")

    try:
        text = raw.content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return fail("not_text", f"file is not UTF-8 text (byte {exc.start}) at {raw.location}")
    all_lines = text.splitlines()
    lines = [ln for ln in all_lines if ln.strip()]
    header = [h.strip().lower() for h in lines[0].split(",")]
    mapped = [_ALIASES.get(h) for h in header]
    missing = [c for c in _REQUIRED if c not in mapped]
    layout = _layout(header)
    if missing:
        return fail(
            "missing_columns",
            f"missing required column(s) {missing}; found {lines[0].strip()!r}; expected Yahoo-style "
            "Date,Open,High,Low,Close,Adj Close,Volume or Alpha Vantage timestamp,open,high,low,close,"
            "adjusted_close,volume,dividend_amount,split_coefficient",
        )
    if len(set(h for h in mapped if h)) != len([h for h in mapped if h]):
        return fail("duplicate_columns", f"a column appears twice in the header {lines[0].strip()!r}")
    source_rows = len(lines) - 1
    if source_rows == 0:
        return fail("no_rows", "file has a header but no data rows")

    n_fields = len(header)
    last_fields = len(lines[-1].split(","))
    if last_fields < n_fields or (not text.endswith(("\n", "\r")) and last_fields != n_fields):
        findings.append(
            Finding(
                t,
                "truncated_file",
                f"last line has {last_fields} of {n_fields} fields: the file is truncated ({len(raw.content)} bytes)",
                row=source_rows,
            )
        )
        return Parsed(t, None, findings, layout, source_rows, "empty")

    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=True)
    except (pd.errors.ParserError, ValueError) as exc:
        found = re.search(r"line (\d+)", str(exc))  # pandas names the physical line (header = line 1)
        return fail("malformed_csv", f"cannot parse CSV: {exc}", row=int(found.group(1)) - 1 if found else None)
    if len(df) != source_rows:
        return fail("row_count_mismatch", f"file has {source_rows} data lines but {len(df)} rows were parsed")

    df.columns = [_ALIASES.get(c.strip().lower(), c.strip().lower()) for c in df.columns]
    df = df[[c for c in df.columns if c in (*NUMERIC_COLUMNS, "date", "symbol")]]
    if len(lines) == len(all_lines):
        df.insert(0, "row", np.arange(1, len(df) + 1))
    else:  # blank lines are skipped; keep pointing at the physical line (1 = first line after the header)
        physical = [i for i, ln in enumerate(all_lines) if ln.strip()]
        df.insert(0, "row", np.asarray(physical[1:], dtype=np.int64) - physical[0])

    if "symbol" in df.columns:
        other = df.loc[df["symbol"].str.strip().str.upper() != t.upper()]
        if len(other):
            r = other.iloc[0]
            findings.append(
                Finding(
                    t,
                    "wrong_ticker",
                    f"file for {t} holds rows for {r['symbol']!r}",
                    row=int(r["row"]),
                    date=str(r["date"]),
                )
            )
        df = df.drop(columns="symbol")

    raw_dates = df["date"].str.strip()
    dates = pd.to_datetime(raw_dates, format="%Y-%m-%d", errors="coerce")
    for idx in np.flatnonzero(dates.isna().to_numpy())[:20]:
        findings.append(
            Finding(t, "bad_date", f"date {raw_dates.iloc[idx]!r} is not YYYY-MM-DD", row=int(df["row"].iloc[idx]))
        )
    df["date"] = dates
    for col in NUMERIC_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
            continue
        s = df[col].str.strip()
        values = pd.to_numeric(s, errors="coerce")
        blank = s.isin(_MISSING_TOKENS).to_numpy()
        text_bad = values.isna().to_numpy() & ~blank
        for idx in np.flatnonzero(blank)[:20]:
            findings.append(
                Finding(
                    t,
                    "missing_value",
                    f"{col} is empty/NaN ({s.iloc[idx]!r})",
                    row=int(df["row"].iloc[idx]),
                    date=_iso(dates.iloc[idx]),
                )
            )
        for idx in np.flatnonzero(text_bad)[:20]:
            findings.append(
                Finding(
                    t,
                    "non_numeric",
                    f"{col} holds text {s.iloc[idx]!r}, not a number",
                    row=int(df["row"].iloc[idx]),
                    date=_iso(dates.iloc[idx]),
                )
            )
        inf = np.isinf(values.to_numpy(dtype="float64", na_value=np.nan))
        for idx in np.flatnonzero(inf)[:20]:
            findings.append(
                Finding(t, "non_finite", f"{col} is infinite", row=int(df["row"].iloc[idx]), date=_iso(dates.iloc[idx]))
            )
        df[col] = values.astype("float64")

    order = _order(df["date"])
    if order == "unordered":
        findings.append(
            Finding(t, "unordered_rows", "dates are neither ascending nor descending; sorted", severity="warning")
        )
    df = df.sort_values(["date", "row"], kind="stable").reset_index(drop=True)
    findings.extend(_duplicates(t, df))
    return Parsed(t, df, findings, layout, source_rows, order)


def _iso(ts) -> str | None:
    return None if pd.isna(ts) else ts.strftime("%Y-%m-%d")


def _order(dates: pd.Series) -> str:
    d = dates.dropna()
    if len(d) < 2 or d.is_monotonic_increasing:
        return "ascending"
    if d.is_monotonic_decreasing:
        return "descending"
    return "unordered"


def _duplicates(ticker: str, df: pd.DataFrame) -> list[Finding]:
    out: list[Finding] = []
    dup = df["date"].duplicated(keep=False) & df["date"].notna()
    if not dup.any():
        return out
    value_cols = ["date", *NUMERIC_COLUMNS]
    for date, grp in df.loc[dup].groupby("date", sort=True):
        rows = grp["row"].tolist()
        same = len(grp[value_cols].drop_duplicates()) == 1
        rule, what = ("duplicate_row", "identical rows") if same else ("duplicate_date", "rows with different values")
        out.append(
            Finding(
                ticker,
                rule,
                f"date appears {len(rows)} times ({what}) at rows {rows}",
                date=date.strftime("%Y-%m-%d"),
                row=rows[1],
            )
        )
        if len(out) >= 20:
            break
    return out
