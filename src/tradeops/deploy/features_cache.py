"""Stored-feature cache: the offline feature table of one feature set held in memory for ``as_of`` requests.

Loaded once with pyarrow from the Delta table (``features_<feature_set_version>``) at its current version into a
float64 matrix ``(n_rows, n_features)`` and a ``(ticker, date) -> row index`` dict, so a lookup is one dict access and
a numpy row view (no pandas, no I/O). Time convention: the row of ``(ticker, d)`` holds the features of the close of
trading date ``d`` (bars dated ``<= d``), exactly what :func:`tradeops.features.store.online_features` computes for
``as_of=d``.

Only complete rows are indexed: a row with a non-finite value in any feature (warm-up) is a miss, so the caller
falls back to :func:`tradeops.deploy.scoring.score_online`, which raises the ``[warmup]`` error naming the feature.
A lookup is exact on the date: a date with no stored row (not yet built, holiday) is a miss, never the previous row.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa

from tradeops.data import store as st
from tradeops.errors import UsageError
from tradeops.features.store import FeatureSet

__all__ = ["StoredFeatures"]


@dataclass(frozen=True)
class _Snapshot:
    """One immutable load: swapped as a whole reference on refresh so readers never see a half-built index."""

    version: int | None
    matrix: np.ndarray  # float64 (n_rows, n_features), read-only
    index: dict[tuple[str, date], int]


class StoredFeatures:
    """The feature table of ``fs`` in memory; ``row(ticker, as_of)`` -> ``(vector, date)`` or ``None`` on a miss.

    ``columns``: the feature order of the returned vectors (default: the feature set's names; pass
    ``bundle.feature_names`` to get rows ready for ``bundle.score``). Every name must be a feature of ``fs``.
    ``tickers``: load only these tickers (default: all stored). A feature table that does not exist yet loads as
    empty (``version`` is ``None``; every lookup misses) so the service can start before the first build.
    Thread-safe: ``refresh`` builds a new snapshot and swaps one reference.
    """

    def __init__(
        self,
        lake: st.Lake,
        fs: FeatureSet,
        *,
        columns: Sequence[str] | None = None,
        tickers: Sequence[str] | None = None,
    ) -> None:
        self.lake = lake
        self.feature_set = fs
        names = list(fs.names if columns is None else columns)
        known = set(fs.names)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(
                f"columns: [feature_set] {len(unknown)} name(s) are not features of {fs.preset} "
                f"{fs.version} (e.g. {unknown[0]!r})"
            )
        if len(set(names)) != len(names):
            raise UsageError("columns: [unique] a feature name is repeated")
        self.columns: tuple[str, ...] = tuple(names)
        self.tickers: tuple[str, ...] | None = tuple(sorted(set(tickers))) if tickers else None
        self._lock = threading.Lock()
        self._snap = self._load(self.lake.version(fs.table))

    # -- reads ---------------------------------------------------------------------------------------------
    @property
    def version(self) -> int | None:
        """Delta version of the feature table this cache was loaded at (``None``: the table did not exist)."""
        return self._snap.version

    def __len__(self) -> int:
        return len(self._snap.index)

    @property
    def nbytes(self) -> int:
        """Bytes held by the feature matrix (the index adds ~200 bytes per row)."""
        return int(self._snap.matrix.nbytes)

    def row(self, ticker: str, as_of: date | str) -> tuple[np.ndarray, date] | None:
        """The stored feature vector of ``ticker`` at the close of ``as_of`` (ISO string or date), in
        :attr:`columns` order (float64, read-only view), and its date; ``None`` when there is no complete row."""
        snap = self._snap
        d = as_of if type(as_of) is date else _as_date(as_of)
        i = snap.index.get((ticker, d))
        if i is None:
            return None
        return snap.matrix[i], d

    # -- refresh -------------------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Reload when the feature table's current version differs from :attr:`version`; ``True`` if reloaded."""
        with self._lock:
            current = self.lake.version(self.feature_set.table)
            if current == self._snap.version:
                return False
            self._snap = self._load(current)
            return True

    def _load(self, version: int | None) -> _Snapshot:
        n_cols = len(self.columns)
        if version is None:
            return _Snapshot(None, _readonly(np.empty((0, n_cols))), {})
        tbl = st.read_delta(
            self.lake.table(self.feature_set.table, version),
            tickers=list(self.tickers) if self.tickers else None,
            columns=["ticker", "date", *self.columns],
        )
        matrix = _matrix(tbl, self.columns)
        complete = np.isfinite(matrix).all(axis=1)
        tickers = tbl.column("ticker").to_pylist()
        dates = tbl.column("date").cast(pa.date32()).to_pylist()
        keep = np.flatnonzero(complete)
        matrix = np.ascontiguousarray(matrix[keep])
        index = {(tickers[j], dates[j]): k for k, j in enumerate(keep.tolist())}
        return _Snapshot(version, _readonly(matrix), index)


def _matrix(tbl: pa.Table, columns: Sequence[str]) -> np.ndarray:
    out = np.empty((tbl.num_rows, len(columns)), dtype=np.float64)
    for j, name in enumerate(columns):
        out[:, j] = tbl.column(name).to_numpy(zero_copy_only=False)  # nulls -> NaN
    return out


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _as_date(value: object) -> date:
    if isinstance(value, date):  # datetime / pandas Timestamp
        return date(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise UsageError(f"as_of: [iso_date] must be a YYYY-MM-DD date, got {value!r}") from None
    raise UsageError(f"as_of: [iso_date] must be a YYYY-MM-DD date, got {value!r}")
