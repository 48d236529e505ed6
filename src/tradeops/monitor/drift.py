"""Data and prediction drift against the model's training reference, and data staleness (pure monitors).

Inputs are served feature rows (raw, unscaled, in the reference's feature order), served signals and class
probabilities (columns BUY, SELL, HOLD), and the :class:`~tradeops.monitor.reference.TrainingReference`. NaN/inf
values are excluded per feature (and counted in ``data.nonfinite_rate``). Every monitor returns
:class:`~tradeops.monitor.metrics.Metric`; a metric that cannot be computed has value ``None`` and a reason.

Cost at scale (``bench/monitor.py``, 1M rows x 225 features, 2 cores): PSI bins every current value (counts of
"value >= edge" per interior edge in row chunks, float32 kept: ~2.6 s); KS runs on a seeded uniform subsample of at
most :data:`KS_MAX_ROWS` current rows (the same rows for every feature: ~2.4 s), because the exact test costs ~0.1 s
a feature at 1M rows (~23 s) and p-values from 100k rows are already ~0 for any shift that matters; the domain
classifier sees ``monitor.domain_sample`` rows a side (~3 s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import numpy as np
from scipy import stats

from tradeops.config import MonitorConfig
from tradeops.data.calendar import parse_day, trading_dates
from tradeops.errors import TradeopsError
from tradeops.features.labels import CLASSES
from tradeops.monitor.metrics import Metric, missing
from tradeops.monitor.reference import TrainingReference, bin_counts, class_shares

MIN_ROWS = 30
"""Fewest current rows (and finite values of a feature) a drift metric is computed from."""
KS_MAX_ROWS = 100_000
"""Most current rows the per-feature KS test uses (a seeded uniform subsample beyond)."""
TOP_FEATURES = 10
PSI_EPS = 1e-4
_KS_BLOCK = 16

DATA_METRICS = (
    "data.nonfinite_rate",
    "data.psi_max",
    "data.psi_drifted_share",
    "data.ks_drifted_share",
    "data.domain_auc",
)


def _psi_terms(ref_share: np.ndarray, cur_share: np.ndarray, eps: float) -> np.ndarray:
    a = np.maximum(cur_share, eps)
    e = np.maximum(ref_share, eps)
    return np.sum((a - e) * np.log(a / e), axis=-1)


def _psi_and_finite(
    ref_edges: np.ndarray, ref_share: np.ndarray, current: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    counts, finite = bin_counts(ref_edges, current)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts / finite[:, None]
    out = _psi_terms(np.asarray(ref_share, dtype=np.float64), share, eps)
    out[finite == 0] = np.nan
    return out, finite


def psi(ref_edges: np.ndarray, ref_share: np.ndarray, current: np.ndarray, eps: float = PSI_EPS) -> np.ndarray:
    """Population stability index per feature: ``sum((a - e) * ln(a / e))`` over the reference's bins, ``a`` the
    current share and ``e`` the reference share, both floored at ``eps``.

    ``ref_edges`` (f, bins + 1), ``ref_share`` (f, bins) as in the training reference; ``current`` (n, f). NaN/inf
    values of a feature are excluded for that feature; values outside the reference range fall in the outer bins.
    Returns (f,) float64, NaN for a feature without a finite current value. Unitless; >= 0; 0.25 is a common
    "drifted" threshold.
    """
    edges = np.asarray(ref_edges, dtype=np.float64)
    share = np.asarray(ref_share, dtype=np.float64)
    if edges.ndim != 2 or share.shape != (edges.shape[0], edges.shape[1] - 1):
        raise TradeopsError(f"PSI: [shape] edges {edges.shape} and shares {share.shape} do not match")
    return _psi_and_finite(edges, share, np.asarray(current), eps)[0]


def _columns(x: np.ndarray) -> np.ndarray:
    """(n, f) -> (f, n) contiguous, so each feature is one contiguous row (dtype kept)."""
    return np.ascontiguousarray(np.asarray(x).T)


def ks(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample Kolmogorov-Smirnov test per feature (``scipy.stats.ks_2samp``, ``method="auto"``: exact up to
    10,000 rows a side, asymptotic beyond): ``(statistic (f,), pvalue (f,))``, NaN/inf excluded per feature; NaN
    for a feature without a finite value on either side. ``reference`` (m, f) and ``current`` (n, f)."""
    if reference.ndim != 2 or current.ndim != 2 or reference.shape[1] != current.shape[1]:
        raise TradeopsError(f"KS: [shape] reference {reference.shape} and current {current.shape} do not match")
    f = reference.shape[1]
    stat, pval = np.full(f, np.nan), np.full(f, np.nan)
    for j0 in range(0, f, _KS_BLOCK):  # a few features at a time: contiguous columns without copying all of them
        ref_cols, cur_cols = _columns(reference[:, j0 : j0 + _KS_BLOCK]), _columns(current[:, j0 : j0 + _KS_BLOCK])
        for i in range(ref_cols.shape[0]):
            a, b = ref_cols[i], cur_cols[i]
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            if a.size and b.size:
                r = stats.ks_2samp(a, b, method="auto")
                stat[j0 + i], pval[j0 + i] = float(r.statistic), float(r.pvalue)
    return stat, pval


def _subsample(x: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``rows`` rows of ``x``, a uniform subsample without replacement, in their original order."""
    if x.shape[0] <= rows:
        return x
    return x[np.sort(rng.choice(x.shape[0], size=rows, replace=False))]


def domain_auc(reference: np.ndarray, current: np.ndarray, *, sample: int, seed: int) -> float:
    """Out-of-fold ROC AUC of a classifier telling ``reference`` rows from ``current`` rows (same features).

    Each side is subsampled to at most ``sample`` rows (seeded); a histogram gradient-boosting classifier (50
    iterations, NaN-aware; inf treated as missing) is scored by 3-fold stratified ``cross_val_predict``, so the AUC
    is ~0.5 when both come from one distribution and near 1 when they are separable. Deterministic for a seed.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if reference.ndim != 2 or current.ndim != 2 or reference.shape[1] != current.shape[1]:
        raise TradeopsError(f"domain AUC: [shape] reference {reference.shape} and current {current.shape} differ")
    rng = np.random.default_rng(seed)
    a, b = _subsample(reference, sample, rng), _subsample(current, sample, rng)
    if min(a.shape[0], b.shape[0]) < 3:
        raise TradeopsError(
            f"domain AUC: [rows] needs >= 3 rows a side, got {a.shape[0]} reference and {b.shape[0]} current"
        )
    x = np.vstack([a, b]).astype(np.float32)
    x[~np.isfinite(x)] = np.nan
    y = np.r_[np.zeros(a.shape[0], dtype=np.int8), np.ones(b.shape[0], dtype=np.int8)]
    clf = HistGradientBoostingClassifier(max_iter=50, max_leaf_nodes=15, early_stopping=False, random_state=seed)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    p = cross_val_predict(clf, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def _json_float(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def data_drift(
    model: str, ref: TrainingReference, current: np.ndarray, *, cfg: MonitorConfig, window: str
) -> list[Metric]:
    """``data.nonfinite_rate``, ``data.psi_max``, ``data.psi_drifted_share``, ``data.ks_drifted_share`` and
    ``data.domain_auc`` of served feature rows ``current`` (n, f; columns in ``ref.feature_names`` order) against
    the training reference. Fewer than :data:`MIN_ROWS` rows: every metric ``None`` with the counts as reason.
    A feature with fewer than :data:`MIN_ROWS` finite current values is left out of the PSI/KS metrics (named in
    their evidence). Thresholds: ``cfg.psi_threshold`` (PSI above is drifted), ``cfg.ks_pvalue`` (p-value below is
    drifted); ``cfg.domain_sample`` rows a side and ``cfg.seed`` for the domain classifier and the KS subsample.
    """
    current = np.asarray(current)
    names = ref.feature_names
    if current.ndim != 2 or current.shape[1] != len(names):
        raise TradeopsError(
            f"data drift of {model}: [features] current rows have shape {current.shape}, the reference "
            f"{len(names)} features"
        )
    n, n_ref = int(current.shape[0]), int(ref.sample.shape[0])
    base: dict[str, Any] = {
        "n_current": n,
        "n_reference": n_ref,
        "thresholds": {"psi": cfg.psi_threshold, "ks_pvalue": cfg.ks_pvalue},
        "bins": ref.bins,
        "reference_window": dict(ref.window),
    }
    if n < MIN_ROWS:
        why = f"{n} current feature rows < {MIN_ROWS} needed (reference has {n_ref} rows)"
        return [missing(model, m, why, window=window) for m in DATA_METRICS]

    psi_v, finite = _psi_and_finite(ref.bin_edges, ref.bin_share, current, PSI_EPS)
    nonfinite = int(current.size - finite.sum())
    out = [
        Metric(
            model,
            "data.nonfinite_rate",
            nonfinite / current.size,
            window,
            {**base, "nonfinite_values": nonfinite, "values": int(current.size)},
        )
    ]
    rng = np.random.default_rng(cfg.seed)
    ks_rows = _subsample(current, KS_MAX_ROWS, rng)
    ks_stat, ks_p = ks(ref.sample, ks_rows)

    usable = (finite >= MIN_ROWS) & np.isfinite(psi_v)
    excluded = [names[j] for j in np.flatnonzero(~usable)]
    order = sorted(np.flatnonzero(usable), key=lambda j: (-psi_v[j], j))[:TOP_FEATURES]
    evidence = {
        **base,
        "ks_rows": int(ks_rows.shape[0]),
        "features": len(names),
        "features_used": int(usable.sum()),
        "excluded_features": excluded[:50],
        "excluded_count": len(excluded),
        "top_features": [
            {
                "feature": names[j],
                "psi": float(psi_v[j]),
                "ks_statistic": _json_float(ks_stat[j]),
                "ks_pvalue": _json_float(ks_p[j]),
            }
            for j in order
        ],
    }
    if not usable.any():
        why = f"no feature has >= {MIN_ROWS} finite values in the {n} current rows"
        out += [
            missing(model, m, why, window=window)
            for m in ("data.psi_max", "data.psi_drifted_share", "data.ks_drifted_share")
        ]
    else:
        used = psi_v[usable]
        out.append(Metric(model, "data.psi_max", float(used.max()), window, evidence))
        share = float(np.mean(used > cfg.psi_threshold))
        out.append(Metric(model, "data.psi_drifted_share", share, window, evidence))
        ks_ok = usable & np.isfinite(ks_p)
        if ks_ok.any():
            out.append(
                Metric(model, "data.ks_drifted_share", float(np.mean(ks_p[ks_ok] < cfg.ks_pvalue)), window, evidence)
            )
        else:
            why = "no feature has a finite KS p-value (no finite reference sample values)"
            out.append(missing(model, "data.ks_drifted_share", why, window=window))
    if n_ref < MIN_ROWS:
        why = f"reference sample has {n_ref} rows < {MIN_ROWS} needed"
        out.append(missing(model, "data.domain_auc", why, window=window))
    else:
        auc = domain_auc(ref.sample, current, sample=cfg.domain_sample, seed=cfg.seed)
        rows = {"rows_reference": min(n_ref, cfg.domain_sample), "rows_current": min(n, cfg.domain_sample)}
        out.append(Metric(model, "data.domain_auc", auc, window, {**base, **rows, "seed": cfg.seed}))
    return out


def prediction_drift(
    model: str, ref: TrainingReference, signals: Sequence[str], proba: np.ndarray, *, window: str
) -> list[Metric]:
    """``predictions.signal_mix_psi`` (PSI of the served BUY/SELL/HOLD mix against the test window's, shares floored
    at 1e-4) and ``predictions.proba_ks_max`` (largest KS statistic of the three class-probability columns, BUY,
    SELL, HOLD, against the test window's). Fewer than :data:`MIN_ROWS` signals or probability rows: ``None``."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.size == 0:
        proba = proba.reshape(0, len(CLASSES))
    if proba.ndim != 2 or proba.shape[1] != len(CLASSES):
        raise TradeopsError(f"prediction drift of {model}: [proba] shape {proba.shape}, expected (n, {len(CLASSES)})")
    n_sig, n_p, m = len(signals), int(proba.shape[0]), int(ref.test_proba.shape[0])
    out: list[Metric] = []
    if n_sig < MIN_ROWS:
        why = f"{n_sig} served signals < {MIN_ROWS} needed"
        out.append(missing(model, "predictions.signal_mix_psi", why, window=window))
    else:
        mix = class_shares(list(signals), f"prediction drift of {model}: served signals")
        e = np.array([ref.test_signal_mix[c] for c in CLASSES])
        a = np.array([mix[c] for c in CLASSES])
        value = float(_psi_terms(e, a, PSI_EPS))
        ev = {"served_mix": mix, "reference_mix": dict(ref.test_signal_mix), "n_current": n_sig}
        out.append(Metric(model, "predictions.signal_mix_psi", value, window, {**ev, "test_window": ref.window}))
    if n_p < MIN_ROWS or m < MIN_ROWS:
        why = f"{n_p} served probability rows and {m} test-window rows (need >= {MIN_ROWS} each)"
        out.append(missing(model, "predictions.proba_ks_max", why, window=window))
    else:
        cur = _subsample(proba, KS_MAX_ROWS, np.random.default_rng(0))
        stat, pval = ks(ref.test_proba.astype(np.float64), cur)
        if not np.isfinite(stat).any():
            why = "no class probability column has finite values on both sides"
            out.append(missing(model, "predictions.proba_ks_max", why, window=window))
        else:
            per = {
                c: {"ks_statistic": _json_float(stat[i]), "ks_pvalue": _json_float(pval[i])}
                for i, c in enumerate(CLASSES)
            }
            ev = {"per_class": per, "n_current": n_p, "n_reference": m, "ks_rows": int(cur.shape[0])}
            out.append(Metric(model, "predictions.proba_ks_max", float(np.nanmax(stat)), window, ev))
    return out


def staleness(model: str, last_bar: Mapping[str, date], as_of: date, calendar: str = "XNYS") -> Metric:
    """``data.staleness_days``: per ticker, the trading sessions of ``calendar`` strictly after its newest stored bar
    up to and including ``as_of`` (0 when the newest bar is ``as_of`` or later); the value is the worst ticker's.
    ``None`` when no ticker has a stored bar."""
    day = parse_day(as_of, "as_of")
    window = f"as of {day}"
    if not last_bar:
        return missing(model, "data.staleness_days", "no stored bars for the model's tickers", window=window)
    last = {t: parse_day(d, f"last bar of {t}") for t, d in last_bar.items()}
    oldest = min(last.values())
    sessions = np.array(
        [s.toordinal() for s in trading_dates(oldest + timedelta(days=1), day, calendar)] if oldest < day else [],
        dtype=np.int64,
    )
    per: dict[str, dict[str, Any]] = {}
    for t in sorted(last):
        d = last[t]
        k = int(sessions.size - np.searchsorted(sessions, d.toordinal(), side="right")) if d < day else 0
        per[t] = {"last_bar": d.isoformat(), "sessions": k}
    worst = max(per, key=lambda t: per[t]["sessions"])  # first (alphabetical) on ties
    ev = {"worst_ticker": worst, "tickers": per, "calendar": calendar}
    return Metric(model, "data.staleness_days", float(per[worst]["sessions"]), window, ev)
