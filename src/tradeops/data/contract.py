"""The bars data contract (pandera): types, positive prices, OHLC consistency, unique increasing dates, no future.

It runs on the canonical, adjusted frame (see :mod:`tradeops.data.clean`); each failed check becomes a
:class:`~tradeops.errors.Finding` naming ticker, date, source row and rule.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pandera.pandas as pa

from tradeops.errors import Finding

RULES = {
    "date_not_in_future": "a bar may not be dated after today",
    "volume_non_negative": "volume must be >= 0",
    "price_positive": "prices must be > 0",
    "high_ge_open_close": "high must be >= max(open, close)",
    "low_le_open_close": "low must be <= min(open, close)",
    "dates_increasing": "dates must be strictly increasing",
    "field_uniqueness": "dates must be unique",
    "not_nullable": "no missing values",
    "column_in_dataframe": "required column",
    "dtype": "numeric column type",
}
_FRAME_RULES = {"high_ge_open_close", "low_le_open_close", "dates_increasing"}

_POSITIVE = ("open", "high", "low", "close", "adj_close")


def bars_schema(today: date) -> pa.DataFrameSchema:
    """Contract for one ticker's bars; ``today`` is the last date a bar may carry (exchange-local date)."""
    limit = pd.Timestamp(today)
    columns = {
        "date": pa.Column(
            "datetime64[ns]",
            nullable=False,
            unique=True,
            checks=[pa.Check(lambda s: s <= limit, name="date_not_in_future")],
        ),
        "volume": pa.Column(float, nullable=False, checks=pa.Check(lambda s: s >= 0, name="volume_non_negative")),
        "row": pa.Column(int),
    }
    for col in _POSITIVE:
        columns[col] = pa.Column(float, nullable=False, checks=pa.Check(lambda s: s > 0, name="price_positive"))
    return pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(lambda df: df["high"] >= df[["open", "close"]].max(axis=1), name="high_ge_open_close"),
            pa.Check(lambda df: df["low"] <= df[["open", "close"]].min(axis=1), name="low_le_open_close"),
            pa.Check(
                lambda df: df["date"].diff().iloc[1:].gt(pd.Timedelta(0)).reindex(df.index, fill_value=True),
                name="dates_increasing",
            ),
        ],
        strict=False,
        coerce=False,
    )


def validate_contract(ticker: str, df: pd.DataFrame, today: date, max_findings: int = 50) -> list[Finding]:
    """Validate one ticker's adjusted bars against the contract; return findings (empty when it holds)."""
    try:
        bars_schema(today).validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return _to_findings(ticker, df, exc.failure_cases, max_findings)
    return []


def _to_findings(ticker: str, df: pd.DataFrame, cases: pd.DataFrame, limit: int) -> list[Finding]:
    out: list[Finding] = []
    seen: set[tuple] = set()
    for case in cases.itertuples(index=False):
        idx = case.index
        rule = str(case.check).split("(")[0]
        column = case.column if isinstance(case.column, str) and rule not in _FRAME_RULES else None
        row = date_s = None
        if idx is not None and not pd.isna(idx) and idx in df.index:
            row = int(df.at[idx, "row"])
            d = df.at[idx, "date"]
            date_s = None if pd.isna(d) else pd.Timestamp(d).strftime("%Y-%m-%d")
        key = (rule, row, column)
        if key in seen:
            continue
        seen.add(key)
        value = case.failure_case
        if isinstance(value, pd.Timestamp):
            value = value.strftime("%Y-%m-%d")
        what = f"{column} = {value}" if column else ""
        if rule == "column_in_dataframe":
            what = f"column {value!r} is missing"
        if rule in {"high_ge_open_close", "low_le_open_close"} and row is not None:
            r = df.loc[idx]
            what = f"open={r['open']}, high={r['high']}, low={r['low']}, close={r['close']}"
        message = RULES.get(rule, f"contract rule {rule} failed") + (f" ({what})" if what else "")
        out.append(Finding(ticker, rule, message, date=date_s, row=row))
        if len(out) >= limit:
            break
    return out
