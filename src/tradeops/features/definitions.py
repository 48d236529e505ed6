"""Feature definitions: the one place each indicator formula, unit and window rule is documented.

Conventions for every definition (``n`` is the window in trading days, ``t`` the trading date):

* A feature at ``t`` uses bars ``<= t`` only (bar ``t`` is known after the close of ``t``).
* Every feature is scale-free: multiplying all prices by a constant leaves it unchanged, so pooled
  multi-ticker models and split-adjusted histories behave. Moving averages enter as ``(close - MA)/close``,
  oscillators are rescaled to ``[-1, 1]`` or ``[0, 1]``.
* ``WMA``, ``EMA``, ``SMA``, ``RSI``, ... name TA-Lib's functions with their default conventions
  (TA-Lib's EMA is seeded with the SMA of its first ``n`` values; TA-Lib's RSI/CMO/DX/ADX use Wilder smoothing).
  Where TA-Lib meets a degenerate window (no price movement at all) it returns 0 for the raw indicator;
  we keep that reference behaviour and note it per indicator.
* Warm-up rows are NaN, never filled; :func:`warmup_rows` says how many leading rows each feature lacks.

Identity: :func:`feature_set_version` hashes what determines the numbers (name, indicator, window, the
indicator's implementation version, order, parameters), not the documentation text, so rewording a formula or
description keeps the version (and the ``features_<version>`` table) while a changed computation changes it.

Feature names are ``<indicator>_<n>`` in lower case (e.g. ``rsi_6``); none starts with ``label``,
which is reserved for targets (see :mod:`tradeops.features.labels`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "CNN_TA_INDICATORS",
    "EQUIVALENT_INDICATORS",
    "FEATURE_SET_SCHEMA",
    "PRESETS",
    "THESIS_EXTRA_INDICATORS",
    "THESIS_INDICATORS",
    "FeatureDef",
    "cnn_ta_definitions",
    "definitions_for",
    "equivalent_feature",
    "feature_set_version",
    "impl_version",
    "indicator_definitions",
    "min_window",
    "thesis_definitions",
    "warmup_rows",
]

#: Bumped when the meaning of the hashed payload changes (not when definitions change: those are hashed).
#: /2: only the computation-determining fields are hashed (name, indicator, window, impl_version), no text.
FEATURE_SET_SCHEMA = "tradeops.features.registry/2"  # a tag, not a module path: renaming it changes every version

DEFAULT_WINDOWS: range = range(6, 21)


@dataclass(frozen=True, slots=True)
class FeatureDef:
    """One feature column: ``indicator`` computed over ``window`` trading days.

    ``formula``, ``unit`` and ``description`` are the documentation of record (not part of the feature-set
    version); ``name`` is the output column name; ``impl_version`` is the indicator's implementation version
    (see ``_SPECS``), hashed with name, indicator and window.
    """

    name: str
    indicator: str
    window: int
    formula: str
    unit: str
    description: str
    impl_version: int = 1

    def __post_init__(self) -> None:
        for field in ("name", "indicator", "formula", "unit", "description"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise ValueError(f"FeatureDef.{field} must be a non-empty string, got {value!r}")
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"FeatureDef {self.name!r}: window must be a positive int, got {self.window!r}")
        impl = self.impl_version
        if isinstance(impl, bool) or not isinstance(impl, int) or impl < 1:
            raise ValueError(f"FeatureDef {self.name!r}: impl_version must be a positive int, got {impl!r}")
        if self.name.lower().startswith("label"):
            raise ValueError(f"FeatureDef {self.name!r}: names starting with 'label' are reserved for targets")


@dataclass(frozen=True, slots=True)
class _Spec:
    """One indicator: documentation template (``{n}`` / ``{n2}`` / ``{n4}`` substituted per window), window rules
    and ``impl``, the version of its computation in :mod:`tradeops.features.indicators`."""

    formula: str
    unit: str
    description: str
    min_window: int
    warmup: Callable[[int], int]
    impl: int


# Warm-up counts are the leading NaN rows on a gap-free series (TA-Lib lookbacks, composed where we compose).
# ``impl``: bump it when the indicator's computation in indicators.py changes (different numbers for the same bars),
# so every feature-set version and ``features_<version>`` table holding it changes too. Editing formula, unit or
# description text does not need a bump: the text is documentation, not hashed.
_SPECS: dict[str, _Spec] = {
    "RSI": _Spec(
        "RSI(close, {n})/50 - 1",
        "dimensionless, [-1, 1]",
        "Relative Strength Index (Wilder smoothing) rescaled to [-1, 1]; TA-Lib gives RSI=0 (-> -1) "
        "when close did not move at all in the window.",
        2,
        lambda n: n,
        impl=1,
    ),
    "WILLR": _Spec(
        "WILLR(high, low, close, {n})/100 = -(max(high,{n}) - close)/(max(high,{n}) - min(low,{n}))",
        "dimensionless, [-1, 0]",
        "Williams %R: where close sits in the n-day high-low range (0 at the high, -1 at the low); "
        "0 when high == low over the whole window (TA-Lib).",
        2,
        lambda n: n - 1,
        impl=1,
    ),
    "WMA": _Spec(
        "(close - WMA(close, {n}))/close",
        "fraction of close",
        "Distance of close from its linearly weighted moving average.",
        2,
        lambda n: n - 1,
        impl=1,
    ),
    "EMA": _Spec(
        "(close - EMA(close, {n}))/close, EMA alpha = 2/({n}+1), seeded with SMA of the first {n} closes",
        "fraction of close",
        "Distance of close from its exponential moving average (path dependent from the series start).",
        2,
        lambda n: n - 1,
        impl=1,
    ),
    "SMA": _Spec(
        "(close - SMA(close, {n}))/close",
        "fraction of close",
        "Distance of close from its simple moving average.",
        2,
        lambda n: n - 1,
        impl=1,
    ),
    "HMA": _Spec(
        "(close - HMA_{n})/close, HMA_{n} = WMA(2*WMA(close, {n}//2) - WMA(close, {n}), isqrt({n}))",
        "fraction of close",
        "Distance of close from the Hull moving average; both inner periods are rounded down "
        "(n//2 and floor(sqrt(n))), as in TA4J and pandas-ta.",
        4,
        lambda n: n + math.isqrt(n) - 2,
        impl=1,
    ),
    "TEMA": _Spec(
        "(close - TEMA(close, {n}))/close, TEMA = 3*EMA1 - 3*EMA2 + EMA3 (EMA_k = EMA of EMA_(k-1), period {n})",
        "fraction of close",
        "Distance of close from the triple exponential moving average.",
        2,
        lambda n: 3 * (n - 1),
        impl=1,
    ),
    "CCI": _Spec(
        "CCI(high, low, close, {n})/100, CCI = (TP - SMA(TP,{n}))/(0.015*meandev(TP,{n})), TP=(high+low+close)/3",
        "dimensionless, unbounded (mostly [-3, 3])",
        "Commodity Channel Index divided by 100; 0 when TP did not move in the window (TA-Lib).",
        2,
        lambda n: n - 1,
        impl=1,
    ),
    "CMO": _Spec(
        "CMO(close, {n})/100",
        "dimensionless, [-1, 1]",
        "Chande Momentum Oscillator (TA-Lib, Wilder-smoothed gains/losses) rescaled to [-1, 1]. Same values as "
        "RSI of the same window: CMO/100 = RSI/50 - 1 under Wilder smoothing (kept in cnn-ta, the paper's image; "
        "dropped from the thesis pool).",
        2,
        lambda n: n,
        impl=1,
    ),
    "MACD": _Spec(
        "(EMA(close, {n}) - EMA(close, {n2}))/close",
        "fraction of close",
        "MACD line with fast period n and slow period 2n (12/26 ~ n=12), normalised by close; both EMAs are "
        "the standalone TA-Lib EMAs above (talib.MACD seeds its fast EMA later; values converge after warm-up). "
        "No signal line.",
        2,
        lambda n: 2 * n - 1,
        impl=1,
    ),
    "PPO": _Spec(
        "EMA(close, {n})/EMA(close, {n2}) - 1",
        "fraction (PPO/100)",
        "Percentage Price Oscillator with EMAs, fast n and slow 2n, as a fraction of the slow EMA "
        "(TA-Lib PPO with matype=EMA, up to the fast EMA's seed).",
        2,
        lambda n: 2 * n - 1,
        impl=1,
    ),
    "ROC": _Spec(
        "close_t/close_(t-{n}) - 1",
        "fraction",
        "Rate of change over n days (TA-Lib ROCP).",
        1,
        lambda n: n,
        impl=1,
    ),
    "CMF": _Spec(
        "sum(MFV, {n})/sum(volume, {n}), MFV = ((close-low) - (high-close))/(high-low)*volume "
        "(MFV = 0 where high == low; CMF = 0 where the window traded no volume)",
        "dimensionless, [-1, 1]",
        "Chaikin Money Flow.",
        2,
        lambda n: n - 1,
        impl=1,
    ),
    "DX": _Spec(
        "DX(high, low, close, {n})/100 = |+DI - -DI|/(+DI + -DI)",
        "dimensionless, [0, 1]",
        "Directional Movement Index (DMI's DX, Wilder smoothing); 0 when there is no directional movement.",
        2,
        lambda n: n,
        impl=1,
    ),
    "SAR": _Spec(
        "(SAR(high, low, acceleration=0.2/{n}, maximum=2/{n}) - close)/close",
        "fraction of close",
        "Distance of the Parabolic SAR from close. SAR has no window; the acceleration step scales as 0.2/n "
        "(n=10 is Wilder's 0.02/0.20), so short windows follow price faster. Path dependent from the series start.",
        1,
        lambda n: 1,
        impl=1,
    ),
    # --- thesis pool extras -------------------------------------------------------------------------------
    "MFI": _Spec(
        "MFI(high, low, close, volume, {n})/50 - 1",
        "dimensionless, [-1, 1]",
        "Money Flow Index (volume-weighted RSI of the typical price) rescaled to [-1, 1]; TA-Lib returns "
        "MFI=0 (-> -1) when the window's total money flow is below 1 (e.g. no volume traded).",
        2,
        lambda n: n,
        impl=1,
    ),
    "BBP": _Spec(
        "(close - lower)/(upper - lower), upper/lower = SMA(close, {n}) +/- 2*STDDEV(close, {n}) "
        "(population std); 0.5 where STDDEV == 0",
        "dimensionless, mostly [0, 1]",
        "Bollinger %B: position of close within its 2-sigma Bollinger bands.",
        2,
        lambda n: n - 1,
        impl=1,
    ),
    "BBW": _Spec(
        "(upper - lower)/SMA(close, {n}) = 4*STDDEV(close, {n})/SMA(close, {n}) (population std)",
        "fraction of the middle band",
        "Bollinger bandwidth (2-sigma bands).",
        2,
        lambda n: n - 1,
        impl=1,
    ),
    "ADX": _Spec(
        "ADX(high, low, close, {n})/100",
        "dimensionless, [0, 1]",
        "Average Directional Index: Wilder-smoothed DX, trend strength regardless of direction.",
        2,
        lambda n: 2 * n - 1,
        impl=1,
    ),
    "NATR": _Spec(
        "ATR(high, low, close, {n})/close",
        "fraction of close",
        "Average True Range (Wilder smoothing) relative to close (TA-Lib NATR/100).",
        1,
        lambda n: n,
        impl=1,
    ),
    "AROONOSC": _Spec(
        "AROONOSC(high, low, {n})/100 = (days since n-day low - days since n-day high)/{n}",
        "dimensionless, [-1, 1]",
        "Aroon oscillator over n+1 bars (TA-Lib convention).",
        2,
        lambda n: n,
        impl=1,
    ),
    "TRIX": _Spec(
        "TRIX(close, {n})/100 = E3_t/E3_(t-1) - 1, E3 = EMA(EMA(EMA(close, {n}), {n}), {n})",
        "fraction per day",
        "One-day rate of change of the triple-smoothed EMA.",
        1,
        lambda n: 3 * (n - 1) + 1,
        impl=1,
    ),
    "ULTOSC": _Spec(
        "ULTOSC(high, low, close, {n}, {n2}, {n4})/50 - 1",
        "dimensionless, [-1, 1]",
        "Ultimate Oscillator with periods n, 2n, 4n (n=7 is Williams' 7/14/28) rescaled to [-1, 1].",
        1,
        lambda n: 4 * n,
        impl=1,
    ),
    "VOLZ": _Spec(
        "(volume - SMA(volume, {n}))/STDDEV(volume, {n}) (population std); 0 where STDDEV == 0",
        "standard deviations",
        "Volume z-score over the window (scale-free in both price and volume).",
        2,
        lambda n: n - 1,
        impl=1,
    ),
}

#: The CNN-TA paper's 15 indicators, in the paper's order (Sezer & Ozbayoglu 2018).
CNN_TA_INDICATORS: tuple[str, ...] = (
    "RSI", "WILLR", "WMA", "EMA", "SMA", "HMA", "TEMA", "CCI", "CMO", "MACD", "PPO", "ROC", "CMF", "DX", "SAR",
)  # fmt: skip

#: Indicators whose features equal another indicator's at the same window (up to float rounding, ~1e-15 on
#: float64): duplicate -> (the indicator it equals, the relation). TA-Lib's RSI and CMO both use Wilder-smoothed
#: gains U and losses D: RSI = 100*U/(U+D), CMO = 100*(U-D)/(U+D). cnn-ta keeps both (the paper's image); the
#: thesis pool drops the duplicate before selection.
EQUIVALENT_INDICATORS: dict[str, tuple[str, str]] = {
    "CMO": ("RSI", "CMO/100 = RSI/50 - 1 under Wilder smoothing"),
}

#: Added by the thesis pool after the CNN-TA 15. Fast Stochastic %K is left out: it equals 1 + WILLR/100
#: exactly; momentum/close is left out: it is ROC up to the denominator.
THESIS_EXTRA_INDICATORS: tuple[str, ...] = (
    "MFI", "BBP", "BBW", "ADX", "NATR", "AROONOSC", "TRIX", "ULTOSC", "VOLZ",
)  # fmt: skip

#: The thesis pool's indicators: the CNN-TA 15 without exact duplicates (CMO), then the extras (23).
THESIS_INDICATORS: tuple[str, ...] = (
    tuple(i for i in CNN_TA_INDICATORS if i not in EQUIVALENT_INDICATORS) + THESIS_EXTRA_INDICATORS
)

PRESETS: tuple[str, ...] = ("cnn-ta", "thesis")


def _spec(indicator: str) -> _Spec:
    try:
        return _SPECS[indicator]
    except KeyError:
        raise ValueError(f"unknown indicator {indicator!r}; known: {', '.join(_SPECS)}") from None


def min_window(indicator: str) -> int:
    """Smallest window (trading days) the indicator accepts."""
    return _spec(indicator).min_window


def impl_version(indicator: str) -> int:
    """Current implementation version of the indicator's computation (bumped when its numbers change)."""
    return _spec(indicator).impl


def equivalent_feature(defn: FeatureDef) -> tuple[str, str] | None:
    """``(name of the feature with the same values, relation)`` for a duplicated indicator, else ``None``.

    The equivalent feature has the same window; e.g. ``cmo_6`` -> ``("rsi_6", "CMO/100 = RSI/50 - 1 ...")``.
    """
    got = EQUIVALENT_INDICATORS.get(defn.indicator)
    if got is None:
        return None
    other, relation = got
    return f"{other.lower()}_{defn.window}", relation


def warmup_rows(defn: FeatureDef) -> int:
    """Leading rows that are NaN for ``defn`` on a series with enough rows (``>= warmup + 1``)."""
    return _spec(defn.indicator).warmup(defn.window)


def _check_windows(windows: Iterable[int]) -> list[int]:
    ws = list(windows)
    if not ws:
        raise ValueError("windows must not be empty")
    for w in ws:
        if isinstance(w, bool) or not isinstance(w, int):
            raise ValueError(f"windows must be ints (trading days), got {w!r}")
    if len(set(ws)) != len(ws):
        raise ValueError(f"windows contain duplicates: {ws}")
    return sorted(ws)


def indicator_definitions(indicators: Sequence[str], windows: Iterable[int] = DEFAULT_WINDOWS) -> list[FeatureDef]:
    """Definitions indicator-major: every window (ascending) of the first indicator, then the next, ..."""
    ws = _check_windows(windows)
    defs: list[FeatureDef] = []
    for ind in indicators:
        spec = _spec(ind)
        for n in ws:
            if n < spec.min_window:
                raise ValueError(f"indicator {ind}: window {n} is below its minimum {spec.min_window}")
            defs.append(
                FeatureDef(
                    name=f"{ind.lower()}_{n}",
                    indicator=ind,
                    window=n,
                    formula=spec.formula.format(n=n, n2=2 * n, n4=4 * n),
                    unit=spec.unit,
                    description=spec.description,
                    impl_version=spec.impl,
                )
            )
    return defs


def cnn_ta_definitions(windows: Iterable[int] = DEFAULT_WINDOWS) -> list[FeatureDef]:
    """The CNN-TA pool: 15 indicators x windows (default 6..20 -> 225), in the paper's indicator-major order."""
    return indicator_definitions(CNN_TA_INDICATORS, windows)


def thesis_definitions(windows: Iterable[int] = DEFAULT_WINDOWS) -> list[FeatureDef]:
    """The selection pool: the CNN-TA 15 without exact duplicates (CMO, see :data:`EQUIVALENT_INDICATORS`), then
    the extras (23 indicators x windows; default 345 features)."""
    return indicator_definitions(THESIS_INDICATORS, windows)


def definitions_for(preset: str, windows: Iterable[int] = DEFAULT_WINDOWS) -> list[FeatureDef]:
    """Definitions of a named preset (``"cnn-ta"`` or ``"thesis"``)."""
    if preset == "cnn-ta":
        return cnn_ta_definitions(windows)
    if preset == "thesis":
        return thesis_definitions(windows)
    raise ValueError(f"unknown feature preset {preset!r}; valid presets: {', '.join(PRESETS)}")


def _canonical(value: object, where: str) -> object:
    """JSON-ready value whose serialisation does not depend on the process (no ``hash()``, no reprs)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"feature_set_version: parameter {where} must be finite, got {value!r}")
        return value
    if isinstance(value, (list, tuple, range)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"feature_set_version: parameter {where} has a non-string key {k!r}")
            out[k] = _canonical(v, f"{where}.{k}")
        return out
    raise ValueError(
        f"feature_set_version: parameter {where} has unsupported type {type(value).__name__}; "
        "use str, int, float, bool, None, lists or dicts of those"
    )


def feature_set_version(defs: Sequence[FeatureDef], **params: object) -> str:
    """Stable 16-hex-char id (sha256 prefix) of the ordered definitions and extra parameters.

    Hashes what determines the numbers: each definition's name, indicator, window and impl_version, their order,
    the parameters and :data:`FEATURE_SET_SCHEMA`. Formula, unit and description text are documentation and do not
    enter. Identical across processes and machines.
    """
    if not defs:
        raise ValueError("feature_set_version: defs must not be empty")
    for d in defs:
        if not isinstance(d, FeatureDef):
            raise ValueError(f"feature_set_version: expected FeatureDef, got {type(d).__name__}")
    payload = {
        "schema": FEATURE_SET_SCHEMA,
        "defs": [
            {"name": d.name, "indicator": d.indicator, "window": d.window, "impl_version": d.impl_version} for d in defs
        ],
        "params": {k: _canonical(v, k) for k, v in sorted(params.items())},
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()[:16]
