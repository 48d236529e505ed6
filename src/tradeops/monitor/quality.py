"""Live model quality: served signals scored against the labels that have matured by the monitoring date.

Time convention: ``as_of`` is a trading date; everything known at its close may be used, nothing later. The Sezer
label of date ``t`` (window ``w``, ``h = (w - 1)/2``) is known at the close of ``t + h``
(:func:`tradeops.features.labels.label_known_at`), so on ``as_of`` the newest matured label is ``h`` sessions old.
A served row is keyed by ``(ticker, as_of)``: its signal is for the close of ``as_of`` and is compared with the label
of that same date. :func:`matured_labels` stamps its result with the date it matured by, and :func:`live_quality`
refuses labels stamped later than its own ``as_of`` (they would hold labels not known yet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tradeops.errors import TradeopsError, UsageError
from tradeops.features.labels import CLASSES, LABEL_COLUMN, label_known_at, label_sezer
from tradeops.model.evaluate import classification_metrics
from tradeops.monitor.metrics import Metric

__all__ = [
    "MATURED_AS_OF_ATTR",
    "MIN_MATURED_ROWS",
    "ROLES",
    "SERVED_COLUMNS",
    "as_of_timestamp",
    "live_quality",
    "matured_labels",
    "validate_served",
    "window_text",
]

#: The two scored roles of a served model.
ROLES: tuple[str, ...] = ("champion", "challenger")
#: Columns :func:`validate_served` needs in the served frame (others, e.g. ``answered_by``, are carried along).
SERVED_COLUMNS: tuple[str, ...] = (
    "ticker",
    "as_of",
    "champion_signal",
    "challenger_signal",
    "champion_version",
    "challenger_version",
)
#: Fewer matured rows than this for a role and its quality metrics are ``None`` (too noisy to alert on).
MIN_MATURED_ROWS = 10
#: ``Series.attrs`` key where :func:`matured_labels` records the date its labels matured by.
MATURED_AS_OF_ATTR = "matured_as_of"


# --------------------------------------------------------------------------------------------------------------------
# shared input checks (also used by tradeops.monitor.trading)


def as_of_timestamp(as_of: Any, who: str) -> pd.Timestamp:
    """``as_of`` as a tz-naive Timestamp; :class:`UsageError` naming ``who`` when it is missing or not a date."""
    try:
        stamp = pd.Timestamp(as_of)
    except (TypeError, ValueError):
        raise UsageError(f"{who}: as_of {as_of!r} is not a date") from None
    if pd.isna(stamp):
        raise UsageError(f"{who}: as_of is missing (NaT)")
    if stamp.tzinfo is not None:
        raise UsageError(f"{who}: as_of {stamp} must be a tz-naive trading date")
    return stamp


def _check_window(window: Any, who: str) -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise UsageError(f"{who}: window must be an int >= 1 (sessions), got {window!r}")
    return int(window)


def _dates(values: Any, what: str) -> pd.Series:
    """Values as datetime64[ns] (NaT kept); :class:`TradeopsError` naming ``what`` when they are not dates."""
    try:
        out = pd.to_datetime(pd.Series(values))
    except (TypeError, ValueError) as exc:
        raise TradeopsError(f"{what} cannot be read as dates: {exc}") from None
    if getattr(out.dt, "tz", None) is not None:
        raise TradeopsError(f"{what} must be tz-naive trading dates, got tz {out.dt.tz}")
    return out.astype("datetime64[ns]")


def _signals(values: pd.Series, rows: pd.DataFrame, column: str) -> pd.Series:
    """Signal column as object values in CLASSES or None; :class:`TradeopsError` naming the row otherwise."""
    obj = values.astype(object)
    missing = obj.isna().to_numpy()
    bad = ~missing & ~obj.isin(CLASSES).to_numpy()
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise TradeopsError(
            f"served row {k} (ticker {rows['ticker'].iloc[k]}, as_of {rows['as_of'].iloc[k].date()}): "
            f"[{column}] {obj.iloc[k]!r} is not one of {', '.join(CLASSES)} or missing"
        )
    return obj.where(~missing, None)


def validate_served(served: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Served rows dated ``<= as_of``, sorted by (as_of, ticker), with ``as_of`` as datetime64[ns] and signals in
    :data:`CLASSES` or ``None`` (``None`` = that role did not score the row).

    Rows without an ``as_of`` (caller-supplied features, no trading date) are dropped: they belong to no session.
    Missing columns, non-string tickers, unknown signals or two rows for one (ticker, as_of) raise
    :class:`TradeopsError` naming the row.
    """
    if not isinstance(served, pd.DataFrame):
        raise TradeopsError(f"served must be a pandas DataFrame, got {type(served).__name__}")
    absent = [c for c in SERVED_COLUMNS if c not in served.columns]
    if absent:
        raise TradeopsError(f"served is missing columns {absent} (need {list(SERVED_COLUMNS)})")
    rows = served.reset_index(drop=True).copy()
    rows["as_of"] = _dates(rows["as_of"], "served column as_of").to_numpy()
    rows = rows[rows["as_of"].notna() & (rows["as_of"] <= as_of)]
    is_str = np.fromiter((isinstance(t, str) and t != "" for t in rows["ticker"]), dtype=bool, count=len(rows))
    if not is_str.all():
        k = int(np.flatnonzero(~is_str)[0])
        raise TradeopsError(f"served row {k}: [ticker] {rows['ticker'].iloc[k]!r} must be a non-empty string")
    rows = rows.sort_values(["as_of", "ticker"], kind="stable").reset_index(drop=True)
    dup = rows.duplicated(["ticker", "as_of"]).to_numpy()
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        raise TradeopsError(
            f"served has more than one row for (ticker {rows['ticker'].iloc[k]}, as_of {rows['as_of'].iloc[k].date()})"
            " (rule: one row per key; keep the last request per (ticker, as_of) first)"
        )
    for role in ROLES:
        col = f"{role}_signal"
        rows[col] = _signals(rows[col], rows, col)
    return rows


def window_text(dates: Sequence[pd.Timestamp] | pd.Index | np.ndarray) -> str:
    """``"2012-05-03..2012-06-01 (20 sessions)"`` for the distinct sorted ``dates``; ``"no sessions"`` when empty."""
    d = pd.DatetimeIndex(dates)
    if len(d) == 0:
        return "no sessions"
    return f"{d[0].date()}..{d[-1].date()} ({len(d)} session{'s' if len(d) != 1 else ''})"


def _versions(values: pd.Series) -> list[str]:
    return sorted({str(v) for v in values if v is not None and not pd.isna(v)})


# --------------------------------------------------------------------------------------------------------------------
# labels


def matured_labels(close: pd.Series, as_of: pd.Timestamp, window: int = 11) -> pd.Series:
    """The Sezer labels of one ticker known at the close of ``as_of``: BUY/SELL/HOLD by label date.

    ``close`` is one ticker's adjusted close on its trading dates; only bars ``<= as_of`` are read (the series is
    sliced first), and a date ``t`` is kept only when ``label_known_at(t) <= as_of`` (``t + h`` sessions with
    ``h = (window - 1)/2``). Returns a ``string`` Series named ``label`` without missing values, stamped with
    ``attrs["matured_as_of"] = as_of`` (and ``attrs["label_window"]``) for :func:`live_quality`.
    """
    stamp = as_of_timestamp(as_of, "matured_labels")
    if not isinstance(close, pd.Series):
        raise TradeopsError(f"matured_labels: close must be a pandas Series, got {type(close).__name__}")
    if not isinstance(close.index, pd.DatetimeIndex):
        raise TradeopsError(
            f"matured_labels: close index must be a DatetimeIndex of trading dates, got {type(close.index).__name__}"
        )
    known_close = close[close.index <= stamp]  # no bar after as_of is ever read
    try:
        labels = label_sezer(known_close, window)
        known = label_known_at(known_close.index, window)
    except ValueError as exc:
        raise TradeopsError(f"matured_labels as of {stamp.date()}: {exc}") from None
    keep = (labels.notna() & known.notna() & (known <= stamp)).to_numpy(dtype=bool)
    out = labels[keep].rename(LABEL_COLUMN)
    out.attrs = {MATURED_AS_OF_ATTR: stamp, "label_window": int(window)}
    return out


def _label_frame(labels: Mapping[str, pd.Series], as_of: pd.Timestamp) -> pd.DataFrame:
    """Matured labels of every ticker as rows (ticker, as_of, label); refuses labels matured after ``as_of``."""
    if not isinstance(labels, Mapping):
        raise UsageError(f"live_quality: labels must be a mapping ticker -> Series, got {type(labels).__name__}")
    parts: list[pd.DataFrame] = []
    for ticker, series in labels.items():
        who = f"live_quality: labels[{ticker!r}]"
        if not isinstance(series, pd.Series):
            raise UsageError(f"{who} must be a pandas Series, got {type(series).__name__}")
        stamp = series.attrs.get(MATURED_AS_OF_ATTR)
        if stamp is None:
            raise UsageError(f"{who} carry no maturity stamp; build them with matured_labels(close, as_of)")
        if pd.Timestamp(stamp) > as_of:
            raise UsageError(
                f"{who} matured as of {pd.Timestamp(stamp).date()}, after the monitoring date {as_of.date()}: "
                "they hold labels not known at as_of (rule: labels known by as_of only)"
            )
        if not isinstance(series.index, pd.DatetimeIndex):
            raise UsageError(f"{who}: index must be a DatetimeIndex of label dates")
        s = series[series.notna() & (series.index <= as_of)].astype(object)
        unknown = ~s.isin(CLASSES).to_numpy()
        if unknown.any():
            k = int(np.flatnonzero(unknown)[0])
            raise TradeopsError(f"{who}: label {s.iloc[k]!r} on {s.index[k].date()} is not one of {', '.join(CLASSES)}")
        parts.append(
            pd.DataFrame(
                {"ticker": str(ticker), "as_of": _dates(s.index, f"{who} dates").to_numpy(), "label": s.to_numpy()}
            )
        )
    if not parts:
        return pd.DataFrame(
            {"ticker": pd.Series(dtype=object), "as_of": pd.Series(dtype="datetime64[ns]"), "label": []}
        )
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------------------------------
# live quality


def _scores(model: str, role: str, rows: pd.DataFrame, base: dict[str, Any], newest: str) -> list[Metric]:
    """macro-F1 and accuracy of one role on its matured rows (``None`` with a reason under MIN_MATURED_ROWS)."""
    dates = pd.DatetimeIndex(np.unique(rows["as_of"].to_numpy()))
    window = window_text(dates)
    evidence: dict[str, Any] = {
        **base,
        "role": role,
        "n_rows": int(len(rows)),
        "n_sessions": int(len(dates)),
        "n_tickers": int(rows["ticker"].nunique()),
        "window_start": dates[0].date().isoformat() if len(dates) else None,
        "window_end": dates[-1].date().isoformat() if len(dates) else None,
        "versions": _versions(rows[f"{role}_version"]),
    }
    names = (f"quality.{role}.macro_f1", f"quality.{role}.accuracy")
    if len(rows) < MIN_MATURED_ROWS:
        why = (
            f"{len(rows)} matured row(s) scored by the {role}, need {MIN_MATURED_ROWS} (newest matured label: {newest})"
        )
        return [Metric(model, n, None, window, evidence, why) for n in names]
    m = classification_metrics(rows["label"].to_numpy(dtype=object), rows[f"{role}_signal"].to_numpy(dtype=object))
    evidence |= {"per_class": m["per_class"], "confusion_matrix": m["confusion_matrix"], "classes": m["classes"]}
    return [
        Metric(model, names[0], m["macro_f1"], window, evidence),
        Metric(model, names[1], m["accuracy"], window, evidence),
    ]


def live_quality(
    model: str,
    served: pd.DataFrame,
    labels: Mapping[str, pd.Series],
    *,
    as_of: pd.Timestamp,
    window: int,
) -> list[Metric]:
    """Champion and challenger quality on the labels matured by ``as_of``, over the last ``window`` sessions.

    ``served``: one row per (ticker, as_of) (:data:`SERVED_COLUMNS`); rows dated after ``as_of`` are ignored.
    ``labels``: ticker -> :func:`matured_labels` output as of ``as_of`` (or earlier). Rows join on ticker and
    ``as_of == label date``; the window is the most recent ``window`` distinct dates with a matured label across
    tickers. Per role (rows where it scored): ``quality.<role>.macro_f1`` and ``.accuracy`` over BUY/SELL/HOLD
    (evidence: per-class precision/recall/F1/support, confusion matrix, window, row counts, versions);
    ``quality.macro_f1_gap`` = challenger minus champion macro-F1 on the rows both scored. Fewer than
    :data:`MIN_MATURED_ROWS` rows: value ``None`` with a reason naming the count and the newest matured label.
    """
    who = f"live_quality {model}"
    stamp = as_of_timestamp(as_of, who)
    n_sessions = _check_window(window, who)
    rows = validate_served(served, stamp)
    lab = _label_frame(labels, stamp)
    newest = lab["as_of"].max().date().isoformat() if len(lab) else "none yet"

    joined = rows.merge(lab, on=["ticker", "as_of"], how="inner", validate="one_to_one")
    dates = np.unique(joined["as_of"].to_numpy())[-n_sessions:]
    if len(dates):
        joined = joined[joined["as_of"] >= dates[0]]
    base: dict[str, Any] = {
        "as_of": stamp.date().isoformat(),
        "window_sessions": n_sessions,
        "matured_window": window_text(dates),
        "newest_matured_label": newest,
        "n_served_rows": int(len(rows)),
        "n_matured_rows": int(len(joined)),
    }

    out: list[Metric] = []
    for role in ROLES:
        out += _scores(model, role, joined[joined[f"{role}_signal"].notna()], base, newest)

    both = joined[joined["champion_signal"].notna() & joined["challenger_signal"].notna()]
    both_dates = pd.DatetimeIndex(np.unique(both["as_of"].to_numpy()))
    gap_window = window_text(both_dates)
    gap_evidence: dict[str, Any] = {
        **base,
        "n_rows": int(len(both)),
        "n_sessions": int(len(both_dates)),
        "champion_versions": _versions(both["champion_version"]),
        "challenger_versions": _versions(both["challenger_version"]),
    }
    if len(both) < MIN_MATURED_ROWS:
        why = (
            f"{len(both)} matured row(s) scored by both champion and challenger, need {MIN_MATURED_ROWS} "
            f"(newest matured label: {newest})"
        )
        out.append(Metric(model, "quality.macro_f1_gap", None, gap_window, gap_evidence, why))
        return out
    y = both["label"].to_numpy(dtype=object)
    f1 = {r: classification_metrics(y, both[f"{r}_signal"].to_numpy(dtype=object))["macro_f1"] for r in ROLES}
    gap_evidence |= {"champion_macro_f1": f1["champion"], "challenger_macro_f1": f1["challenger"]}
    out.append(Metric(model, "quality.macro_f1_gap", f1["challenger"] - f1["champion"], gap_window, gap_evidence))
    return out
