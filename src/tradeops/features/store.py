"""Feature store: offline features and labels per (ticker, date) in Delta tables, point-in-time reads, online read.

Tables (under the lake root, next to the Data level's):

* ``features_<feature_set_version>``: ``ticker, date`` + one ``float32`` column per feature (computed in float64
  by :func:`~tradeops.features.indicators.compute_features`, stored as float32 as the model consumes them).
  The name is keyed by the feature-set version, the hash of the definitions and parameters, so two feature sets
  never mix.
* ``labels_w<window>``: ``ticker, date, label, label_known_at``. Targets live apart from features (names and
  tables) so no label-derived column can reach model inputs by accident.

Every build is ONE Delta version per table, replacing the rebuilt tickers' rows, with the bars table version it read
in the commit metadata and in the lineage table. Time conventions: a feature at trading date t uses bars <= t; the
label of t is known at the close of ``label_known_at`` (t + h trading days).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from tradeops.data import store as st
from tradeops.errors import TradeopsError, UsageError
from tradeops.features.definitions import DEFAULT_WINDOWS, FeatureDef, definitions_for, feature_set_version
from tradeops.features.indicators import compute_features
from tradeops.features.labels import CLASSES, LABEL_COLUMN, LABEL_KNOWN_AT_COLUMN, label_known_at, label_sezer

KEY = ("ticker", "date")
_BAR_COLUMNS = {"adj_open": "open", "adj_high": "high", "adj_low": "low", "adj_close": "close", "adj_volume": "volume"}
LABELS_SCHEMA = pa.schema(
    [("ticker", pa.string()), ("date", pa.date32()), (LABEL_COLUMN, pa.string()), (LABEL_KNOWN_AT_COLUMN, pa.date32())]
)


@dataclass(frozen=True)
class FeatureSet:
    """A named, versioned feature set: preset + windows -> definitions -> version hash (+ the label window)."""

    preset: str
    windows: tuple[int, ...] = tuple(DEFAULT_WINDOWS)
    label_window: int = 11
    defs: tuple[FeatureDef, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def from_preset(cls, preset: str, windows: Sequence[int] = DEFAULT_WINDOWS, label_window: int = 11) -> FeatureSet:
        try:
            defs = tuple(definitions_for(preset, windows))
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        return cls(preset, tuple(windows), label_window, defs)

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.defs]

    @property
    def version(self) -> str:
        return feature_set_version(self.defs, preset=self.preset)

    @property
    def table(self) -> str:
        return f"features_{self.version}"

    @property
    def labels_table(self) -> str:
        return f"labels_w{self.label_window}"

    def schema(self) -> pa.Schema:
        return pa.schema([("ticker", pa.string()), ("date", pa.date32())] + [(n, pa.float32()) for n in self.names])


def bars_for_features(bars: pd.DataFrame) -> pd.DataFrame:
    """One ticker's stored bars -> the adjusted OHLCV frame indicators read (DatetimeIndex, open..volume)."""
    frame = bars.set_index(pd.DatetimeIndex(bars["date"], name="date"))[list(_BAR_COLUMNS)]
    return frame.rename(columns=_BAR_COLUMNS)


def ticker_features(bars: pd.DataFrame, fs: FeatureSet, ticker: str) -> pd.DataFrame:
    """Features of one ticker from its stored bars: the single code path shared by offline build and online read."""
    return compute_features(bars_for_features(bars), fs.defs, ticker=ticker)


def ticker_labels(bars: pd.DataFrame, window: int) -> pd.DataFrame:
    """Sezer labels on the adjusted close and the date each becomes known (rows without a label dropped)."""
    close = pd.Series(bars["adj_close"].to_numpy(), index=pd.DatetimeIndex(bars["date"], name="date"))
    out = pd.DataFrame(
        {LABEL_COLUMN: label_sezer(close, window), LABEL_KNOWN_AT_COLUMN: label_known_at(close.index, window)}
    )
    return out.loc[out[LABEL_COLUMN].notna()]


@dataclass
class BuildResult:
    feature_set: FeatureSet
    bars_version: int
    features_version: int
    labels_version: int
    rows: int
    tickers: list[str]
    class_balance: pd.DataFrame

    def to_dict(self) -> dict:
        return {
            "preset": self.feature_set.preset,
            "feature_set_version": self.feature_set.version,
            "features_table": self.feature_set.table,
            "labels_table": self.feature_set.labels_table,
            "n_features": len(self.feature_set.defs),
            "bars_version": self.bars_version,
            "features_version": self.features_version,
            "labels_version": self.labels_version,
            "rows": self.rows,
            "tickers": self.tickers,
            "class_balance": self.class_balance.reset_index().to_dict("records"),
        }


def _WRITER(column_properties, writer_properties):
    """Parquet settings for wide float tables: dictionary encoding off except for the ticker (trying dictionaries
    on continuous floats made delta-rs writes ~4.5x slower: 87k vs 390k rows/s for 225 columns on one core)."""
    return writer_properties(
        compression="SNAPPY",
        default_column_properties=column_properties(dictionary_enabled=False),
        column_properties={"ticker": column_properties(dictionary_enabled=True)},
    )


def _write(
    lake: st.Lake, table: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch], tickers: list[str], metadata: dict
) -> int:
    """Replace ``tickers``' rows of ``table`` with ``batches`` in ONE Delta commit (streamed, bounded memory)."""
    from deltalake import ColumnProperties, CommitProperties, WriterProperties, write_deltalake

    reader = pa.RecordBatchReader.from_batches(schema, batches)
    kw: dict = {"mode": "append"}
    if lake.exists(table):
        quoted = ", ".join("'" + t.replace("'", "''") + "'" for t in tickers)
        kw = {"mode": "overwrite", "predicate": f"ticker IN ({quoted})"}
    write_deltalake(
        lake.uri(table),
        reader,
        commit_properties=CommitProperties(custom_metadata=st._meta(metadata)),
        writer_properties=_WRITER(ColumnProperties, WriterProperties),
        storage_options=lake.storage_options,
        **kw,
    )
    return lake.table(table).version()


def build_features(
    lake: st.Lake,
    fs: FeatureSet,
    tickers: Sequence[str] | None = None,
    *,
    bars_version: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BuildResult:
    """Compute features and labels for ``tickers`` (default: all stored) from the bars table and store them.

    Reads bars at ``bars_version`` (default: current). A ticker with fewer bars than the longest warm-up still gets
    rows (NaN features during warm-up); nothing is forward-filled.
    """
    current = lake.version(st.BARS)
    if current is None:
        raise UsageError("no bars stored yet: run `tradeops ingest` first")
    version = current if bars_version is None else bars_version
    bars = lake.read_bars(list(tickers) if tickers else None, version=version)
    if tickers:
        missing = sorted(set(tickers) - set(bars["ticker"].unique()))
        if missing:
            raise UsageError(f"no stored bars for ticker(s) {', '.join(missing)} (bars version {version})")
    if len(bars) == 0:
        raise UsageError(f"bars table version {version} is empty")
    groups = [(t, g.reset_index(drop=True)) for t, g in bars.groupby("ticker", sort=True)]
    names = [t for t, _ in groups]
    label_parts: list[pd.DataFrame] = []
    schema = fs.schema()
    rows = 0

    def feature_batches() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for i, (t, g) in enumerate(groups):
            if progress:
                progress(t, i, len(groups))
            try:
                feats = ticker_features(g, fs, t)
            except ValueError as exc:
                raise TradeopsError(f"{t}: [features] {exc}") from exc
            lab = ticker_labels(g, fs.label_window)
            label_parts.append(lab.reset_index().assign(ticker=t))
            values = feats.to_numpy(dtype=np.float32)
            cols = [
                pa.array(np.full(len(feats), t, dtype=object), pa.string()),
                pa.array(feats.index.date, pa.date32()),
            ]
            cols += [pa.array(values[:, j]) for j in range(values.shape[1])]
            rows += len(feats)
            yield pa.RecordBatch.from_arrays(cols, schema=schema)

    meta = {
        "operation": "features_build",
        "preset": fs.preset,
        "feature_set_version": fs.version,
        "bars_version": version,
        "tickers": names,
    }
    fv = _write(lake, fs.table, schema, feature_batches(), names, {**meta, "n_features": len(fs.defs)})
    labels = pd.concat(label_parts, ignore_index=True) if label_parts else pd.DataFrame(columns=LABELS_SCHEMA.names)
    label_tbl = st._to_arrow(labels, LABELS_SCHEMA)
    lv = _write(
        lake,
        fs.labels_table,
        LABELS_SCHEMA,
        iter(label_tbl.to_batches()),
        names,
        {**meta, "operation": "labels_build", "label_window": fs.label_window},
    )
    lake.record_lineage(st.BARS, version, "feature_table", fs.table, str(fv))
    return BuildResult(fs, version, fv, lv, rows, names, class_balance(labels))


def class_balance(labels: pd.DataFrame) -> pd.DataFrame:
    """Counts and shares of BUY/SELL/HOLD per ticker and calendar year (rows with a label only)."""
    if len(labels) == 0:
        return pd.DataFrame(columns=["ticker", "year", *CLASSES, "n"]).set_index(["ticker", "year"])
    dates = labels["date"]
    # datetime64 already: take the year directly (pd.to_datetime would box every value to find repeats, ~30 ms
    # per 3,000 rows, on every daily feature build)
    year = (dates if pd.api.types.is_datetime64_any_dtype(dates) else pd.to_datetime(dates, cache=False)).dt.year
    year = year.rename("year")
    counts = pd.crosstab([labels["ticker"], year], labels[LABEL_COLUMN]).reindex(columns=list(CLASSES), fill_value=0)
    counts.columns.name = None
    counts["n"] = counts.sum(axis=1)
    return counts


def _require(lake: st.Lake, table: str, what: str) -> None:
    if not lake.exists(table):
        raise UsageError(f"no {what} stored ({table}); run `tradeops features build` for this preset first")


def read_features(
    lake: st.Lake,
    fs: FeatureSet,
    tickers: Sequence[str] | None = None,
    *,
    as_of: date | pd.Timestamp | None = None,
    version: int | None = None,
) -> pd.DataFrame:
    """Offline features (ticker, date, features...) sorted by (ticker, date).

    ``as_of``: only rows dated <= as_of (what was knowable at that close); ``version``: the table as it was then.
    """
    _require(lake, fs.table, f"features for preset {fs.preset!r}")
    tbl = st.read_delta(lake.table(fs.table, version), tickers=list(tickers) if tickers else None)
    df = tbl.to_pandas()
    df["date"] = pd.to_datetime(df["date"])
    if as_of is not None:
        df = df.loc[df["date"] <= pd.Timestamp(as_of)]
    return df.sort_values(list(KEY), kind="stable").reset_index(drop=True)


def read_labels(
    lake: st.Lake,
    fs: FeatureSet,
    tickers: Sequence[str] | None = None,
    *,
    as_of: date | pd.Timestamp | None = None,
    version: int | None = None,
) -> pd.DataFrame:
    """Labels (ticker, date, label, label_known_at); with ``as_of`` only those KNOWN by that close."""
    _require(lake, fs.labels_table, "labels")
    tbl = st.read_delta(lake.table(fs.labels_table, version), LABELS_SCHEMA, tickers=list(tickers) if tickers else None)
    df = tbl.to_pandas()
    df["date"] = pd.to_datetime(df["date"])
    df[LABEL_KNOWN_AT_COLUMN] = pd.to_datetime(df[LABEL_KNOWN_AT_COLUMN])
    if as_of is not None:
        df = df.loc[df[LABEL_KNOWN_AT_COLUMN] <= pd.Timestamp(as_of)]
    return df.sort_values(list(KEY), kind="stable").reset_index(drop=True)


def training_frame(
    lake: st.Lake, fs: FeatureSet, tickers: Sequence[str] | None = None, *, as_of: date | pd.Timestamp | None = None
) -> pd.DataFrame:
    """Features joined with labels known by ``as_of`` (inner join): the rows a model fitted at ``as_of`` may use."""
    feats = read_features(lake, fs, tickers, as_of=as_of)
    labels = read_labels(lake, fs, tickers, as_of=as_of)
    return feats.merge(labels, on=list(KEY), how="inner", validate="one_to_one")


@dataclass(frozen=True)
class OnlineVector:
    ticker: str
    date: pd.Timestamp
    values: pd.Series  # feature name -> float32 value, in the feature set's order


def online_features(
    lake: st.Lake, fs: FeatureSet, ticker: str, *, as_of: date | pd.Timestamp | None = None
) -> OnlineVector:
    """Latest feature vector of ``ticker`` computed now from the stored bars (dated <= ``as_of``), through the same
    :func:`ticker_features` path as the offline build. Raises when the warm-up is not complete at that date."""
    bars = lake.read_bars([ticker])
    if len(bars) == 0:
        raise UsageError(f"no stored bars for ticker {ticker}")
    if as_of is not None:
        bars = bars.loc[bars["date"] <= pd.Timestamp(as_of)].reset_index(drop=True)
        if len(bars) == 0:
            raise UsageError(f"{ticker}: no stored bars on or before {pd.Timestamp(as_of).date()}")
    return _latest_vector(ticker_features(bars, fs, ticker), ticker, f"{len(bars)} bars stored")


def _latest_vector(feats: pd.DataFrame, ticker: str, bars_note: str) -> OnlineVector:
    """The last row of ``feats`` as float32; ``[warmup]`` when a feature is still NaN there."""
    last = feats.iloc[-1].astype(np.float32)
    d = feats.index[-1]
    nan = last.index[last.isna()].tolist()
    if nan:
        raise TradeopsError(
            f"{ticker} {d.date()}: [warmup] {len(nan)} feature(s) still in warm-up (e.g. {nan[0]}); {bars_note}"
        )
    return OnlineVector(ticker, d, last)


def fit_image_transform(
    lake: st.Lake, fs: FeatureSet, tickers: Sequence[str] | None, *, as_of: date | pd.Timestamp, side: int = 15
):
    """Fit the image transform on the point-in-time training window ending at ``as_of`` (warm-up rows dropped).

    ``cnn-ta``: the fixed 225 features, MinMax on rows dated <= as_of. ``thesis``: feature selection on rows whose
    label is known by as_of, then MinMax on those rows.
    """
    from tradeops.features.labels import encode_labels
    from tradeops.features.transform import ImageTransform

    if fs.preset == "cnn-ta":
        rows = read_features(lake, fs, tickers, as_of=as_of).dropna(subset=fs.names)
        if len(rows) == 0:
            raise UsageError(f"no complete feature rows on or before {pd.Timestamp(as_of).date()} to fit on")
        return ImageTransform(side=side, feature_names=fs.names).fit(rows[fs.names])
    rows = training_frame(lake, fs, tickers, as_of=as_of).dropna(subset=fs.names)
    if len(rows) < 50:
        raise UsageError(
            f"only {len(rows)} labelled rows known by {pd.Timestamp(as_of).date()}: too few to select features on"
        )
    return ImageTransform(side=side, select=True).fit(rows[fs.names], encode_labels(rows[LABEL_COLUMN]).astype(int))


def export_frame(lake: st.Lake, fs: FeatureSet, ticker: str) -> pd.DataFrame:
    """``date``, every feature, ``label`` (BUY/SELL/HOLD or null) and ``label_known_at`` for one ticker."""
    feats = read_features(lake, fs, [ticker])
    if len(feats) == 0:
        raise UsageError(f"no features stored for ticker {ticker} in preset {fs.preset!r}")
    labels = read_labels(lake, fs, [ticker])
    out = feats.merge(labels, on=list(KEY), how="left", validate="one_to_one")
    return out.drop(columns="ticker")


def features_from_bars(bars: pd.DataFrame, fs: FeatureSet, ticker: str) -> OnlineVector:
    """Latest feature vector of caller-supplied bars (``date, open, high, low, close, volume``, prices already
    adjusted, one ticker, oldest first) through the same :func:`ticker_features` path as the offline build and
    :func:`online_features`. Raises ``[warmup]`` when the bars are too few for every feature at the last date."""
    if len(bars) == 0:
        raise UsageError(f"{ticker}: no bars given")
    stored = pd.DataFrame(
        {
            "date": pd.to_datetime(bars["date"]),
            **{adj: bars[col].to_numpy(dtype=np.float64) for adj, col in _BAR_COLUMNS.items()},
        }
    )
    return _latest_vector(ticker_features(stored, fs, ticker), ticker, f"{len(bars)} bars given")
