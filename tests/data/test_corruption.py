"""Corrupted input never reaches the bars table.

Every case first has a good ingestion of IBM (its first 250 sample sessions, one accepted bars version), then
ingests a corrupted IBM file with ``tradeops ingest --source csv`` and checks: exit code 1; the output names the
ticker, the date or row and the rule; the bars table keeps its version and content; the quarantine table holds the
batch with the rule and a reason; the validation report says ``quarantined``.

Corruptions sit in the part of the file that is new to the lake (rows 251..300, from 2001-02-27) unless the case
is about the whole file, so the expected rule is not drowned by conflicts with stored bars.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tradeops.data import store as st

TICKER = "IBM"
GOOD_ROWS = 250
HEADER = "Date,Open,High,Low,Close,Volume,Adj Close"

# Index 269 is data row 270 (2001-03-26, a Monday); index 268 is 2001-03-23 (a Friday).
I = 269
ROW = I + 1


def _f(x: str) -> float:
    return float(x)


def _s(x: float) -> str:
    return repr(round(x, 6))


def _csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode()


def _insert_after(df: pd.DataFrame, i: int, row: pd.Series) -> pd.DataFrame:
    return pd.concat([df.iloc[: i + 1], row.to_frame().T, df.iloc[i + 1 :]], ignore_index=True)


def duplicated_date(d, _):
    dup = d.iloc[I].copy()
    dup["Volume"] = str(int(dup["Volume"]) + 1000)
    return _csv(_insert_after(d, I, dup))


def duplicated_row(d, _):
    return _csv(_insert_after(d, I, d.iloc[I].copy()))


def nan_field(d, _):
    d.loc[I, "Close"] = "NaN"
    return _csv(d)


def empty_field(d, _):
    d.loc[I, "Open"] = ""
    return _csv(d)


def zero_price(d, _):
    d.loc[I, "Low"] = "0"
    return _csv(d)


def negative_price(d, _):
    d.loc[I, "Low"] = "-" + d.loc[I, "Low"]
    return _csv(d)


def high_below_low(d, _):
    d.loc[I, "High"] = _s(_f(d.loc[I, "Low"]) - 1.0)
    return _csv(d)


def high_below_close(d, _):
    # 2001-03-26: open 95.25, high 95.66, low 93.75, close 95.4 -> high 95.3 < close (still > low, >= open)
    d.loc[I, "High"] = "95.3"
    return _csv(d)


def low_above_open(d, _):
    # low 95.3 > open 95.25 (still <= close 95.4 and <= high)
    d.loc[I, "Low"] = "95.3"
    return _csv(d)


SPLIT_I = 272  # 2001-03-29, row 273: a quiet day (+0.7 %), so the jump is a clean 1/2


def unadjusted_split(d, _):
    # A 2:1 split that nobody adjusted for: prices and Adj Close halve from row 273 on, volume doubles.
    for c in ("Open", "High", "Low", "Close", "Adj Close"):
        d.loc[SPLIT_I:, c] = [_s(_f(x) / 2) for x in d.loc[SPLIT_I:, c]]
    d.loc[SPLIT_I:, "Volume"] = [str(int(x) * 2) for x in d.loc[SPLIT_I:, "Volume"]]
    return _csv(d)


def stale_series(d, _):
    # Row 270's bar repeated on the next 5 sessions (6 identical bars; limit 5).
    for j in range(I + 1, I + 6):
        d.loc[j, d.columns[1:]] = d.loc[I, d.columns[1:]].to_numpy()
    return _csv(d)


def zero_volume_run(d, _):
    d.loc[I : I + 4, "Volume"] = "0"
    return _csv(d)


def negative_volume(d, _):
    d.loc[I, "Volume"] = "-" + d.loc[I, "Volume"]
    return _csv(d)


def future_date(d, _):
    extra = d.iloc[-1].copy()
    extra["Date"] = "2099-01-02"
    return _csv(pd.concat([d, extra.to_frame().T], ignore_index=True))


def renamed_column(d, _):
    return _csv(d.rename(columns={"Close": "Closing"}))


def missing_column(d, _):
    return _csv(d.drop(columns="Volume"))


def duplicate_column(d, _):
    # "Adj Close" and "adjusted_close" both mean the adjusted close.
    return _csv(d.assign(adjusted_close=d["Adj Close"]))


def text_in_numeric(d, _):
    d.loc[I, "Close"] = "ninety-five"
    return _csv(d)


def infinite_value(d, _):
    d.loc[I, "High"] = "inf"
    return _csv(d)


def empty_file(d, _):
    return b""


def header_only(d, _):
    return (HEADER + "\n").encode()


def truncated_file(d, _):
    content = _csv(d)
    # Cut in the middle of data row 281's line: its date and part of its open survive.
    start = content.index(("\n" + d.loc[280, "Date"]).encode()) + 1
    return content[: start + 13]


def html_page(d, _):
    return (
        b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
        b"<body><h1>502 Bad Gateway</h1></body></html>\n"
    )


def json_error_body(d, _):
    return json.dumps(
        {
            "Error Message": "Invalid API call. Please retry or visit the documentation "
            "(https://www.alphavantage.co/documentation/) for TIME_SERIES_DAILY."
        }
    ).encode()


def utf16_file(d, _):
    return _csv(d).decode().encode("utf-16")


def extra_field(d, _):
    lines = _csv(d).decode().split("\n")
    lines[ROW] += ",999"  # lines[0] is the header
    return "\n".join(lines).encode()


def wrong_ticker_rows(d, msft):
    # MSFT's bars saved as IBM.csv: same dates as the stored IBM bars, other values.
    return _csv(msft.copy())


def wrong_ticker_symbol(d, _):
    return _csv(d.assign(Symbol="MSFT"))


def saturday_bar(d, _):
    sat = d.iloc[I - 1].copy()  # Friday 2001-03-23's bar, dated the next day
    sat["Date"] = "2001-03-24"
    return _csv(_insert_after(d, I - 1, sat))


def bad_date_format(d, _):
    d.loc[I, "Date"] = "03/26/2001"
    return _csv(d)


def price_x100(d, _):
    for c in ("Open", "High", "Low", "Close", "Adj Close"):
        d.loc[I:, c] = [_s(_f(x) * 100) for x in d.loc[I:, c]]
    return _csv(d)


def long_gap(d, _):
    # 20 consecutive sessions missing (limit ingest.max_gap_sessions = 10).
    return _csv(d.drop(index=range(I - 10, I + 10)))


@dataclass(frozen=True)
class Case:
    kind: str
    rule: str
    build: Callable[[pd.DataFrame, pd.DataFrame], bytes]
    date: str | None = None  # the date the finding must name
    row: int | None = None  # the source row the finding must name
    extra_files: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.kind


D = "2001-03-26"

CASES = [
    Case("duplicated-date-different-values", "duplicate_date", duplicated_date, date=D, row=ROW + 1),
    Case("identical-duplicate-rows", "duplicate_row", duplicated_row, date=D, row=ROW + 1),
    Case("nan-field", "missing_value", nan_field, date=D, row=ROW),
    Case("empty-field", "missing_value", empty_field, date=D, row=ROW),
    Case("zero-price", "price_positive", zero_price, date=D, row=ROW),
    Case("negative-price", "price_positive", negative_price, date=D, row=ROW),
    Case("high-below-low", "high_ge_open_close", high_below_low, date=D, row=ROW),
    Case("high-below-close", "high_ge_open_close", high_below_close, date=D, row=ROW),
    Case("low-above-open", "low_le_open_close", low_above_open, date=D, row=ROW),
    Case("unadjusted-split", "unadjusted_split", unadjusted_split, date="2001-03-29", row=SPLIT_I + 1),
    Case("stale-series", "stale_series", stale_series, date=D, row=ROW),
    Case("zero-volume-run", "zero_volume_run", zero_volume_run, date=D, row=ROW),
    Case("negative-volume", "volume_non_negative", negative_volume, date=D, row=ROW),
    Case("date-in-future", "date_not_in_future", future_date, date="2099-01-02", row=301),
    Case("renamed-column", "missing_columns", renamed_column),
    Case("missing-column", "missing_columns", missing_column),
    Case("duplicate-column", "duplicate_columns", duplicate_column),
    Case("text-in-numeric-column", "non_numeric", text_in_numeric, date=D, row=ROW),
    Case("infinite-value", "non_finite", infinite_value, date=D, row=ROW),
    Case("empty-file", "empty_file", empty_file),
    Case("header-only", "no_rows", header_only),
    Case("truncated-mid-line", "truncated_file", truncated_file, row=281),
    Case("html-error-page", "html_body", html_page),
    Case("json-error-body", "json_body", json_error_body),
    Case("not-utf8-text", "not_text", utf16_file),
    Case("row-with-extra-field", "malformed_csv", extra_field),
    Case("wrong-ticker-rows", "conflict", wrong_ticker_rows, date="2000-03-01", row=1),
    Case("wrong-ticker-symbol-column", "wrong_ticker", wrong_ticker_symbol, row=1),
    Case("saturday-bar", "not_a_session", saturday_bar, date="2001-03-24"),
    Case("bad-date-format", "bad_date", bad_date_format, row=ROW),
    Case("price-x100", "out_of_range", price_x100, date=D, row=ROW),
    Case("gap-of-20-sessions", "gap", long_gap, date="2001-03-12"),
    Case("two-files-for-one-ticker", "duplicate_ticker", lambda d, _: _csv(d), extra_files=("ibm.csv",)),
]


@pytest.fixture(scope="module")
def prepared_home(tmp_path_factory, tradeops, write_bars, ibm_300) -> Path:
    """A home after one good ingestion of IBM's first 250 sessions (bars version 0)."""
    base = tmp_path_factory.mktemp("corruption")
    good = write_bars(ibm_300.iloc[:GOOD_ROWS], base / "good", TICKER).parent
    result = tradeops(base / "home", "ingest", "--source", "csv", "--path", good)
    assert result.exit_code == 0, result.output
    return base / "home"


def test_at_least_fifteen_kinds_of_corruption():
    assert len({c.kind for c in CASES}) == len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=str)
def test_corrupted_file_is_quarantined_and_stored_bars_are_untouched(
    case, prepared_home, tmp_path, tradeops, copy_home, lake_of, ibm_300, msft_300
):
    home = copy_home(prepared_home, tmp_path / "home")
    lake = lake_of(home)
    version_before = lake.version(st.BARS)
    bars_before = lake.read_bars([TICKER])
    assert version_before == 0 and len(bars_before) == GOOD_ROWS

    src = tmp_path / "in"
    src.mkdir()
    content = case.build(ibm_300.copy(), msft_300)
    (src / f"{TICKER}.csv").write_bytes(content)
    for name in case.extra_files:
        (src / name).write_bytes(content + b"\n")
    old_reports = set((home / "reports" / "ingest").glob("*.json"))

    result = tradeops(home, "ingest", "--source", "csv", "--path", src)

    assert result.exit_code == 1, result.output
    # The human output names ticker, place and rule on one line.
    lines = [ln for ln in result.output.splitlines() if f"[{case.rule}]" in ln]
    assert lines, f"rule {case.rule} not in output:\n{result.output}"
    assert any(TICKER in ln for ln in lines), lines
    if case.date:
        assert any(case.date in ln for ln in lines), lines
    if case.row is not None:
        assert any(f"row {case.row}" in ln for ln in lines), lines

    # The machine-readable report holds the same finding with its fields.
    (report_path,) = set((home / "reports" / "ingest").glob("*.json")) - old_reports
    report = json.loads(report_path.read_text())
    assert report["ok"] is False and report["summary"]["quarantined"] >= 1
    (res,) = [t for t in report["tickers"] if t["ticker"] == TICKER][:1]
    assert res["status"] == "quarantined"
    hits = [f for f in res["errors"] if f["rule"] == case.rule]
    assert hits, res["errors"]
    assert all(f["ticker"] == TICKER and f["severity"] == "error" for f in hits)
    if case.date:
        assert case.date in {f["date"] for f in hits}
    if case.row is not None:
        assert case.row in {f["row"] for f in hits}
    assert report["bars_version_after"] == report["bars_version_before"] == version_before

    # Stored bars: same version, same content.
    assert lake.version(st.BARS) == version_before
    pd.testing.assert_frame_equal(lake.read_bars([TICKER]), bars_before)

    # Quarantine: the batch's rows with the rule and the reason.
    q = lake.read(st.QUARANTINE)
    q = q.loc[(q["report_id"] == report["report_id"]) & (q["ticker"] == TICKER)]
    assert len(q) >= 1
    rules = q["rules"].str.split(",")
    assert rules.map(lambda r: case.rule in r).any(), q["rules"].unique()
    assert q["reason"].str.contains(TICKER).all() and q["reason"].str.len().gt(0).all()
    assert (q["source"] == "csv").all() and q["location"].str.endswith(".csv").all()
    q_file = q.loc[q["location"] == res["provenance"]["location"]]
    if q_file["row"].notna().any():  # parsed: every row of the batch, numbered as in the file
        assert sorted(q_file["row"].astype(int)) == list(range(1, res["rows_in"] + 1))
    else:  # unreadable: one row with an excerpt of the payload
        assert len(q_file) == 1 and q_file["payload_excerpt"].iloc[0] == content[:200].decode("utf-8", "replace")
    if case.row is not None and q["row"].notna().any():
        at_row = q.loc[q["row"] == case.row, "rules"]
        assert len(at_row) and case.rule in at_row.iloc[0].split(","), at_row

    # Validation reports: this run says quarantined, with the finding.
    reps = lake.read(st.REPORTS)
    mine = reps.loc[(reps["report_id"] == report["report_id"]) & (reps["ticker"] == TICKER)]
    assert len(mine) >= 1 and set(mine["status"]) == {"quarantined"}
    assert any(case.rule in {f["rule"] for f in json.loads(fj)} for fj in mine["findings_json"])
    assert (mine["errors"] >= 1).all()
