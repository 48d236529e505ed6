"""Signal post-processing rules: thresholds, their fitting, holding rules and the seed-ensemble mean.

Expected signal series are worked out by hand in each test; the hypothesis properties replay the backtest's long-only
state machine (flat + BUY opens, long + SELL closes, everything else is a no-op) on the rewritten signals.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeops.features.labels import BUY, CLASSES, HOLD, SELL
from tradeops.model.backtest import Costs, backtest
from tradeops.model.signal_rules import (
    DEFAULT_GRID,
    Thresholds,
    argmax_signals,
    fit_thresholds,
    holding_rules,
    mean_proba,
    threshold_signals,
)

B, S, H = BUY, SELL, HOLD
ZERO = Costs(commission_bps=0.0, slippage_bps=0.0, fixed_per_trade=0.0)


def series(values, name="AAA", start="2021-01-04") -> pd.Series:
    return pd.Series(list(values), index=pd.bdate_range(start, periods=len(values)), name=name, dtype=object)


def replay(signals) -> tuple[list[tuple[int, int]], list[int | None]]:
    """The backtest's state machine by position: closed round trips (entry, exit) and, per position, the entry
    position of the long held when that position's signal arrives (None while flat)."""
    trips: list[tuple[int, int]] = []
    held_from: list[int | None] = []
    entry: int | None = None
    for i, s in enumerate(signals):
        held_from.append(entry)
        if entry is None and s == BUY:
            entry = i
        elif entry is not None and s == SELL:
            trips.append((entry, i))
            entry = None
    return trips, held_from


# --- threshold_signals / argmax_signals --------------------------------------------------------------------------

# columns p_BUY, p_SELL, p_HOLD; the comment is the signal at buy=0.40, sell=0.50 and why
PROBA = np.array(
    [
        [0.50, 0.20, 0.30],  # BUY
        [0.39, 0.10, 0.51],  # HOLD: p_BUY under 0.40
        [0.20, 0.55, 0.25],  # SELL
        [0.20, 0.45, 0.35],  # HOLD: p_SELL under 0.50
        [0.45, 0.45, 0.10],  # BUY: p_BUY >= p_SELL (a tie goes to BUY)
        [0.40, 0.60, 0.00],  # SELL: p_BUY clears its threshold but p_SELL is larger
        [0.45, 0.48, 0.07],  # HOLD: p_BUY < p_SELL and p_SELL under 0.50
        [0.40, 0.10, 0.50],  # BUY: exactly at the threshold
        [0.00, 0.50, 0.50],  # SELL: exactly at the threshold
    ]
)


def test_threshold_signals_hand_computed_rows():
    got = threshold_signals(PROBA, buy=0.40, sell=0.50)
    assert got.dtype == object
    assert got.tolist() == [B, H, S, H, B, S, H, B, S]


def test_argmax_signals_differs_from_one_third_thresholds_and_ties_go_to_class_order():
    assert argmax_signals(PROBA).tolist() == [B, H, S, S, B, S, S, H, S]  # rows 4 and 8 are ties
    row = np.array([[0.35, 0.05, 0.60]])
    assert argmax_signals(row).tolist() == [H]
    assert threshold_signals(row, 1 / 3, 1 / 3).tolist() == [B]


def test_threshold_signals_extreme_thresholds():
    assert threshold_signals(PROBA, 0.0, 0.0).tolist() == [B, B, S, S, B, S, S, B, S]
    assert threshold_signals(PROBA, 1.0, 1.0).tolist() == [H] * len(PROBA)
    certain = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert threshold_signals(certain, 1.0, 1.0).tolist() == [B, S, H]


def test_threshold_signals_even_split_below_buy_threshold_is_hold_not_sell():
    # SELL needs p_SELL strictly above p_BUY, so an even split that fails the BUY threshold stays HOLD
    assert threshold_signals(np.array([[0.5, 0.5, 0.0]]), buy=0.6, sell=0.5).tolist() == [H]


def test_threshold_signals_empty_input_gives_empty_output():
    assert threshold_signals(np.zeros((0, 3)), 0.5, 0.5).shape == (0,)


@pytest.mark.parametrize(
    ("proba", "match"),
    [
        (np.array([0.2, 0.3, 0.5]), r"shape \(3,\)"),
        (np.zeros((2, 4)), r"shape \(2, 4\)"),
        (np.array([[0.2, 0.3, 0.5], [np.nan, 0.5, 0.5]]), r"row 1 is not finite"),
        (np.array([[0.2, np.inf, 0.5]]), r"row 0 is not finite"),
        (np.array([["a", "b", "c"]]), r"numeric"),
    ],
)
def test_threshold_signals_refuses_bad_probabilities(proba, match):
    with pytest.raises(ValueError, match=match):
        threshold_signals(proba, 0.5, 0.5)
    with pytest.raises(ValueError, match=match):
        argmax_signals(proba)


@pytest.mark.parametrize(
    ("buy", "sell", "match"),
    [
        (1.5, 0.5, r"buy = 1.5 \(rule: a probability, 0 <= buy <= 1\)"),
        (0.5, -0.1, r"sell = -0.1 \(rule: a probability, 0 <= sell <= 1\)"),
        (math.nan, 0.5, r"buy = nan"),
        (True, 0.5, r"buy must be a number"),
        (0.5, "0.5", r"sell must be a number"),
    ],
)
def test_threshold_signals_refuses_bad_thresholds(buy, sell, match):
    with pytest.raises(ValueError, match=match):
        threshold_signals(PROBA, buy, sell)


# --- fit_thresholds --------------------------------------------------------------------------------------------

# BUY count by the buy threshold: 4 at 0.3, 3 at 0.5, 2 at 0.7, 1 at 0.9; SELL count by the sell threshold likewise
LADDER = np.array(
    [
        [0.95, 0.01, 0.04],
        [0.75, 0.05, 0.20],
        [0.55, 0.05, 0.40],
        [0.35, 0.05, 0.60],
        [0.01, 0.95, 0.04],
        [0.05, 0.75, 0.20],
        [0.05, 0.55, 0.40],
        [0.05, 0.35, 0.60],
    ]
)


def counts(signals: np.ndarray) -> tuple[int, int]:
    return int((signals == BUY).sum()), int((signals == SELL).sum())


def test_fit_thresholds_finds_the_true_maximiser_by_exhaustive_search():
    calls: list[tuple[int, int]] = []

    def score(signals: np.ndarray) -> float:
        n_buy, n_sell = counts(signals)
        calls.append((n_buy, n_sell))
        return -float((n_buy - 2) ** 2 + (n_sell - 3) ** 2)  # unique best: 2 BUYs (0.7) and 3 SELLs (0.5)

    got = fit_thresholds(LADDER, score, grid=(0.3, 0.5, 0.7, 0.9))
    assert got == Thresholds(buy=0.7, sell=0.5)
    assert len(calls) == 16 and len(set(calls)) == 16  # every pair of the grid, each giving other signals


# BUY count: 3 at buy <= 0.40, 2 at 0.45..0.55, 1 at >= 0.60; SELL count: 3 at 0.34, 2 at 0.40..0.50, 1 at
# 0.55..0.70, 0 at 0.80 (DEFAULT_GRID)
BANDS = np.array(
    [
        [0.85, 0.05, 0.10],
        [0.58, 0.02, 0.40],
        [0.42, 0.08, 0.50],
        [0.05, 0.75, 0.20],
        [0.10, 0.52, 0.38],
        [0.20, 0.36, 0.44],
    ]
)


def test_fit_thresholds_tie_goes_to_the_smallest_sum_then_the_smallest_buy():
    # maximisers: buy 0.45..0.55 x sell 0.55..0.70 (best sum 0.45 + 0.55) and buy 0.60..0.80 x sell 0.40..0.50
    # (best sum 0.60 + 0.40): both sums are 1.0, so the smaller buy wins
    def score(signals: np.ndarray) -> float:
        return 1.0 if counts(signals) in {(2, 1), (1, 2)} else 0.0

    assert fit_thresholds(BANDS, score) == Thresholds(buy=0.45, sell=0.55)
    assert fit_thresholds(BANDS, score, grid=tuple(reversed(DEFAULT_GRID))) == Thresholds(buy=0.45, sell=0.55)

    def only_second(signals: np.ndarray) -> float:
        return 1.0 if counts(signals) == (1, 2) else 0.0

    assert fit_thresholds(BANDS, only_second) == Thresholds(buy=0.60, sell=0.40)


def test_fit_thresholds_constant_score_picks_the_lowest_pair():
    assert fit_thresholds(BANDS, lambda s: 0.0) == Thresholds(buy=0.34, sell=0.34)
    assert fit_thresholds(BANDS, lambda s: 0.0, grid=[0.9, 0.5, 0.5, 0.7]) == Thresholds(buy=0.5, sell=0.5)


def test_fit_thresholds_default_grid():
    assert DEFAULT_GRID == (0.34, 0.40, 0.45, 0.50, 0.55, 0.60, 0.70, 0.80)


def test_fit_thresholds_refuses_a_non_finite_score_naming_the_pair():
    with pytest.raises(ValueError, match=r"\(buy=0.34, sell=0.34\) is nan"):
        fit_thresholds(BANDS, lambda s: math.nan)

    # the first pair (in tie order) with a single BUY is buy 0.60 with sell 0.34
    def inf_on_one_buy(signals: np.ndarray) -> float:
        return math.inf if counts(signals)[0] == 1 else 0.0

    with pytest.raises(ValueError, match=r"\(buy=0.6, sell=0.34\) is inf"):
        fit_thresholds(BANDS, inf_on_one_buy)
    with pytest.raises(ValueError, match=r"is None \(rule: a finite number\)"):
        fit_thresholds(BANDS, lambda s: None)


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        ((), r"grid is empty"),
        ((0.5, 1.2), r"grid\[1\] = 1.2"),
        ((0.5, math.nan), r"grid\[1\] = nan"),
        ("0.5", r"grid must be a sequence"),
    ],
)
def test_fit_thresholds_refuses_a_bad_grid(grid, match):
    with pytest.raises(ValueError, match=match):
        fit_thresholds(BANDS, lambda s: 0.0, grid=grid)


def test_fit_thresholds_refuses_bad_probabilities_and_score():
    with pytest.raises(ValueError, match=r"shape \(6, 2\)"):
        fit_thresholds(BANDS[:, :2], lambda s: 0.0)
    with pytest.raises(ValueError, match=r"score must be callable"):
        fit_thresholds(BANDS, 1.0)


def test_thresholds_validates_its_fields():
    with pytest.raises(ValueError, match=r"Thresholds: sell = 2"):
        Thresholds(buy=0.5, sell=2)


probas = st.integers(min_value=1, max_value=12).flatmap(
    lambda n: st.lists(
        st.lists(st.integers(min_value=0, max_value=20), min_size=3, max_size=3).filter(lambda r: sum(r) > 0),
        min_size=n,
        max_size=n,
    )
)


@settings(max_examples=60, deadline=None)
@given(rows=probas, weights=st.lists(st.integers(-3, 3), min_size=3, max_size=3))
def test_fit_thresholds_is_the_first_maximiser_in_tie_order(rows, weights):
    raw = np.array(rows, dtype=np.float64)
    proba = raw / raw.sum(axis=1, keepdims=True)
    w = dict(zip(CLASSES, weights))

    def score(signals: np.ndarray) -> float:
        return float(sum(w[s] * (k + 1) for k, s in enumerate(signals)))

    grid = (0.2, 0.4, 0.6)
    got = fit_thresholds(proba, score, grid=grid)
    table = {(b, s): score(threshold_signals(proba, b, s)) for b in grid for s in grid}
    best = max(table.values())
    assert table[(got.buy, got.sell)] == best
    first = min((k for k, v in table.items() if v == best), key=lambda k: (round(k[0] + k[1], 9), k[0]))
    assert (got.buy, got.sell) == first


# --- holding_rules ---------------------------------------------------------------------------------------------

#          0  1  2  3  4  5  6  7  8  9  10 11
EXAMPLE = [H, B, H, S, H, B, B, H, H, S, S, H]


@pytest.mark.parametrize(
    ("min_hold", "exit_on_hold", "expected"),
    [
        # defaults and min_hold=1 (a SELL cannot share its BUY's position): unchanged
        (0, False, EXAMPLE),
        (1, False, EXAMPLE),
        # long from 1: the SELL at 3 is 2 positions in (< 3) -> HOLD; the SELL at 9 is 8 in -> kept; 10 is flat
        (3, False, [H, B, H, H, H, B, B, H, H, S, S, H]),
        # long from 1: HOLD at 2 -> SELL (flat); long from 5 (BUY at 6 is a no-op): HOLD at 7 -> SELL (flat)
        (0, True, [H, B, S, S, H, B, B, S, H, S, S, H]),
        # long from 1: 2 keeps HOLD (1 in), SELL at 3 -> HOLD (2 in), HOLD at 4 -> SELL (3 in);
        # long from 5: 7 keeps HOLD (2 in), HOLD at 8 -> SELL (3 in); the SELLs at 9 and 10 are while flat
        (3, True, [H, B, H, H, S, B, B, H, S, S, S, H]),
        # never held long enough to sell: every SELL after the opening BUY becomes HOLD
        (100, False, [H, B, H, H, H, B, B, H, H, H, H, H]),
    ],
)
def test_holding_rules_hand_computed(min_hold, exit_on_hold, expected):
    sig = series(EXAMPLE)
    got = holding_rules(sig, min_hold=min_hold, exit_on_hold=exit_on_hold)
    pd.testing.assert_series_equal(got, series(expected))


def test_holding_rules_keeps_index_name_and_string_dtype():
    sig = series(EXAMPLE, name="IBM").astype("string")
    got = holding_rules(sig, min_hold=3)
    assert got.dtype == "string" and got.name == "IBM"
    assert got.index.equals(sig.index)
    assert got.tolist() == [H, B, H, H, H, B, B, H, H, S, S, H]
    pd.testing.assert_series_equal(holding_rules(sig), sig)


def test_holding_rules_counts_positions_not_calendar_days():
    # a 30-day gap between the BUY and the SELL is still one position
    sig = pd.Series([B, S], index=pd.DatetimeIndex(["2021-01-04", "2021-02-03"]), dtype=object)
    assert holding_rules(sig, min_hold=2).tolist() == [B, H]


def test_holding_rules_min_hold_shows_in_the_backtest_round_trip():
    bars = pd.DataFrame(
        {"open": 10.0, "close": [10.0, 11, 12, 13, 14, 15]}, index=pd.bdate_range("2021-01-04", periods=6)
    )
    sig = pd.Series([B, S, H, S, H, S], index=bars.index, dtype=object)
    plain = backtest(bars, sig, mode="paper", costs=ZERO)
    held = backtest(bars, holding_rules(sig, min_hold=3), mode="paper", costs=ZERO)
    # plain: in at 10 (day 0), out at 11 (day 1); min_hold=3: the SELL on day 1 (1 in) is skipped, the one on
    # day 3 (3 in) is not, out at 13; the SELL on day 5 is while flat
    assert plain.trades["exit_date"].tolist() == [bars.index[1]]
    assert held.trades["exit_date"].tolist() == [bars.index[3]]
    assert held.trades["exit_price"].tolist() == [13.0]
    assert holding_rules(sig, min_hold=4).tolist() == [B, H, H, H, H, S]


def test_holding_rules_empty_series():
    got = holding_rules(pd.Series([], index=pd.DatetimeIndex([]), dtype=object), min_hold=2, exit_on_hold=True)
    assert got.empty


@pytest.mark.parametrize(
    ("index", "values", "match"),
    [
        (["2021-01-05", "2021-01-04"], [B, S], r"2021-01-04 follows 2021-01-05"),
        (["2021-01-04", "2021-01-05", "2021-01-05"], [B, H, S], r"2021-01-05 follows 2021-01-05"),
        (["2021-01-04", "2021-01-05"], [B, "buy"], r"unknown signal 'buy' on 2021-01-05"),
        (["2021-01-04", "2021-01-05"], [None, B], r"unknown signal None on 2021-01-04"),
    ],
)
def test_holding_rules_refuses_bad_signals_naming_the_date(index, values, match):
    sig = pd.Series(values, index=pd.DatetimeIndex(index), name="AAA", dtype=object)
    with pytest.raises(ValueError, match=r"signals 'AAA': .*" + match):
        holding_rules(sig, min_hold=2)


def test_holding_rules_refuses_bad_containers_and_arguments():
    with pytest.raises(ValueError, match=r"must be a pandas Series"):
        holding_rules([B, S])
    with pytest.raises(ValueError, match=r"DatetimeIndex"):
        holding_rules(pd.Series([B, S]))
    sig = series(EXAMPLE)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"min_hold = .* \(rule: an int >= 0"):
            holding_rules(sig, min_hold=bad)
    with pytest.raises(ValueError, match=r"exit_on_hold must be a bool"):
        holding_rules(sig, exit_on_hold="yes")


signal_lists = st.lists(st.sampled_from(CLASSES), max_size=40)
rules = st.tuples(st.integers(min_value=0, max_value=6), st.booleans())


@settings(max_examples=100, deadline=None)
@given(values=signal_lists)
def test_holding_rules_defaults_are_the_identity(values):
    sig = series(values)
    pd.testing.assert_series_equal(holding_rules(sig), sig)
    pd.testing.assert_series_equal(holding_rules(sig, min_hold=1), sig)


@settings(max_examples=100, deadline=None)
@given(values=signal_lists, rule=rules)
def test_holding_rules_invariants(values, rule):
    k, exit_on_hold = rule
    sig = series(values)
    out = holding_rules(sig, min_hold=k, exit_on_hold=exit_on_hold)
    assert out.index.equals(sig.index) and out.name == sig.name
    got = out.tolist()

    trips, held_from = replay(got)
    # no SELL the backtest acts on comes within k positions of the opening BUY
    assert all(exit - entry >= k for entry, exit in trips)
    # with exit_on_hold, no HOLD survives while long once min_hold has elapsed
    if exit_on_hold:
        assert not any(s == HOLD and e is not None and i - e >= k for i, (s, e) in enumerate(zip(got, held_from)))
    # the only rewrites: SELL -> HOLD (min_hold) and HOLD -> SELL (exit_on_hold)
    for before, after in zip(values, got):
        if before != after:
            assert (before, after) == (S, H) and k > 1 or (before, after) == (H, S) and exit_on_hold
    # idempotent
    pd.testing.assert_series_equal(holding_rules(out, min_hold=k, exit_on_hold=exit_on_hold), out)


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.sampled_from(CLASSES), min_size=2, max_size=30), k=st.integers(0, 5))
def test_holding_rules_min_hold_against_the_real_backtest(values, k):
    # cross-check the test's replay with backtest's own state machine: paper fills, flat prices, no costs
    bars = pd.DataFrame({"open": 10.0, "close": 10.0}, index=pd.bdate_range("2021-01-04", periods=len(values)))
    out = holding_rules(pd.Series(values, index=bars.index, dtype=object), min_hold=k)
    trades = backtest(bars, out, mode="paper", costs=ZERO).trades
    pos = {d: i for i, d in enumerate(bars.index)}
    closed = trades[~trades["closed_at_end"]]
    spans = [(pos[a], pos[b]) for a, b in zip(closed["entry_date"], closed["exit_date"])]
    assert spans == replay(out.tolist())[0]
    assert all(b - a >= k for a, b in spans)


# --- mean_proba ------------------------------------------------------------------------------------------------


def test_mean_proba_hand_computed():
    a = np.array([[0.6, 0.2, 0.2], [0.1, 0.1, 0.8]], dtype=np.float32)
    b = np.array([[0.2, 0.4, 0.4], [0.3, 0.5, 0.2]])
    got = mean_proba([a, b])
    assert got.dtype == np.float64 and got.shape == (2, 3)
    np.testing.assert_allclose(got, [[0.4, 0.3, 0.3], [0.2, 0.3, 0.5]], atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)


def test_mean_proba_single_member_is_a_float64_copy():
    a = np.array([[0.25, 0.25, 0.5]])
    got = mean_proba((a,))
    np.testing.assert_array_equal(got, a)
    got[0, 0] = 1.0
    assert a[0, 0] == 0.25


def test_mean_proba_refuses_bad_input():
    a = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"at least one ensemble member"):
        mean_proba([])
    with pytest.raises(ValueError, match=r"probas\[1\] has shape \(3, 3\), probas\[0\] has \(2, 3\)"):
        mean_proba([a, np.full((3, 3), 1 / 3)])
    with pytest.raises(ValueError, match=r"probas\[1\] has shape \(2, 2\)"):
        mean_proba([a, np.full((2, 2), 0.5)])
    with pytest.raises(ValueError, match=r"probas\[0\] row 1 is not finite"):
        mean_proba([np.array([[0.2, 0.3, 0.5], [np.nan, 0.5, 0.5]]), a])
    with pytest.raises(ValueError, match=r"sequence of \(n, 3\) arrays"):
        mean_proba(np.stack([a, a]))
