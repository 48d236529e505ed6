"""Live quality on matured labels: hand-worked macro-F1, maturity (no label known after as_of), the challenger gap."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeops.errors import TradeopsError, UsageError
from tradeops.features.labels import BUY, CLASSES, HOLD, SELL, label_sezer
from tradeops.model.evaluate import classification_metrics
from tradeops.monitor.quality import MIN_MATURED_ROWS, live_quality, matured_labels

# Window 3 (h = 1): the label of t is known at the close of t + 1. Positions 1..12 have these labels (worked by hand:
# SELL where close[t] is the max of t-1..t+1, BUY where it is the min, HOLD otherwise): 8 HOLD, 2 SELL, 2 BUY.
HAND_CLOSE = [10, 11, 12, 13, 12, 11, 10, 11, 12, 13, 12, 11, 10, 11]
HAND_LABELS = [HOLD, HOLD, SELL, HOLD, HOLD, BUY, HOLD, HOLD, SELL, HOLD, HOLD, BUY]
# Continuation after as_of (position 13): 14 -> 10 makes position 13 a SELL once it is known.
LATER_CLOSE = [10, 12, 13]
DATES = pd.bdate_range("2024-01-01", periods=len(HAND_CLOSE) + len(LATER_CLOSE))
AS_OF = DATES[len(HAND_CLOSE) - 1]


def full_close() -> pd.Series:
    return pd.Series(np.array(HAND_CLOSE + LATER_CLOSE, dtype=float), index=DATES, name="close")


def served_frame(ticker: str, dates: pd.DatetimeIndex, champion: list, challenger: list | None = None) -> pd.DataFrame:
    n = len(dates)
    challenger = [None] * n if challenger is None else challenger
    return pd.DataFrame(
        {
            "ticker": ticker,
            "as_of": dates,
            "champion_signal": champion,
            "challenger_signal": challenger,
            "champion_version": "3",
            "challenger_version": [None if c is None else "4" for c in challenger],
            "answered_by": "champion",
        }
    )


def by_name(metrics) -> dict:
    return {m.name: m for m in metrics}


def test_matured_labels_hand_worked_and_stamped():
    got = matured_labels(full_close(), AS_OF, window=3)
    assert list(got.index) == list(DATES[1:13])  # position 13 is not known until the close of position 14
    assert list(got) == HAND_LABELS
    assert got.attrs["matured_as_of"] == AS_OF
    # the full-history labeller does know position 13 (SELL): that label must not be there yet
    assert label_sezer(full_close(), 3).loc[DATES[13]] == SELL


def test_matured_labels_reads_no_bar_after_as_of():
    close = full_close()
    close.iloc[len(HAND_CLOSE) :] = np.nan  # a broken future bar would raise if it were read
    assert list(matured_labels(close, AS_OF, window=3)) == HAND_LABELS


def test_matured_labels_before_any_full_window_is_empty():
    got = matured_labels(full_close(), DATES[1], window=3)
    assert len(got) == 0


def test_perfect_champion_has_macro_f1_one():
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2023-01-02", periods=120)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates)))), index=dates)
    as_of = dates[-1]
    labels = matured_labels(close, as_of)  # window 11, h = 5
    truth = labels.reindex(dates).astype(object).where(lambda s: s.notna(), HOLD)
    served = served_frame("AAA", dates, list(truth))
    m = by_name(live_quality("m", served, {"AAA": labels}, as_of=as_of, window=60))
    assert m["quality.champion.macro_f1"].value == pytest.approx(1.0)
    assert m["quality.champion.accuracy"].value == pytest.approx(1.0)
    ev = m["quality.champion.macro_f1"].evidence
    assert ev["n_rows"] == 60 and ev["n_sessions"] == 60 and ev["versions"] == ["3"]
    assert ev["window_end"] == labels.index[-1].date().isoformat() == dates[-6].date().isoformat()
    assert set(ev["per_class"]) == set(CLASSES) and all(ev["per_class"][c]["support"] > 0 for c in CLASSES)
    json.dumps(m["quality.champion.macro_f1"].to_dict())


def test_constant_hold_macro_f1_by_hand():
    served = served_frame("AAA", DATES[: len(HAND_CLOSE)], [HOLD] * len(HAND_CLOSE))
    labels = {"AAA": matured_labels(full_close(), AS_OF, window=3)}
    m = by_name(live_quality("m", served, labels, as_of=AS_OF, window=60))
    # HOLD: precision 8/12, recall 1, F1 = 2 * (2/3) / (5/3) = 0.8; BUY and SELL F1 0 -> macro 0.8 / 3
    assert m["quality.champion.macro_f1"].value == pytest.approx(0.8 / 3)
    assert m["quality.champion.accuracy"].value == pytest.approx(8 / 12)
    assert m["quality.champion.macro_f1"].evidence["per_class"][HOLD]["support"] == 8
    assert m["quality.champion.macro_f1"].window == f"{DATES[1].date()}..{DATES[12].date()} (12 sessions)"


def test_labels_not_matured_at_as_of_are_not_used():
    served = served_frame("AAA", DATES[: len(HAND_CLOSE)], [HOLD] * len(HAND_CLOSE))
    known_later = label_sezer(full_close(), 3).dropna()
    naive = known_later[known_later.index <= AS_OF]  # 13 labels: position 13's SELL is not known at AS_OF
    naive_f1 = classification_metrics(list(naive), [HOLD] * len(naive))["macro_f1"]
    assert naive_f1 == pytest.approx((2 * (8 / 13) / (1 + 8 / 13)) / 3)  # what using it would give
    m = by_name(live_quality("m", served, {"AAA": matured_labels(full_close(), AS_OF, 3)}, as_of=AS_OF, window=60))
    assert m["quality.champion.macro_f1"].value == pytest.approx(0.8 / 3) != pytest.approx(naive_f1)
    assert m["quality.champion.macro_f1"].evidence["newest_matured_label"] == DATES[12].date().isoformat()


def test_labels_matured_after_as_of_are_refused():
    served = served_frame("AAA", DATES[: len(HAND_CLOSE)], [HOLD] * len(HAND_CLOSE))
    later = {"AAA": matured_labels(full_close(), DATES[-1], 3)}
    with pytest.raises(UsageError, match="after the monitoring date"):
        live_quality("m", served, later, as_of=AS_OF, window=60)
    with pytest.raises(UsageError, match="no maturity stamp"):
        live_quality("m", served, {"AAA": label_sezer(full_close(), 3).dropna()}, as_of=AS_OF, window=60)


def test_challenger_gap_on_rows_both_scored():
    n = len(HAND_CLOSE)
    truth = [HOLD] + HAND_LABELS + [HOLD]  # positions 0..13
    challenger = [None, None, None] + truth[3:]  # the challenger arrived at position 3: rows 3..12 are matured
    served = served_frame("AAA", DATES[:n], [HOLD] * n, challenger)
    labels = {"AAA": matured_labels(full_close(), AS_OF, 3)}
    m = by_name(live_quality("m", served, labels, as_of=AS_OF, window=60))
    assert m["quality.challenger.macro_f1"].value == pytest.approx(1.0)
    assert m["quality.challenger.macro_f1"].evidence["n_rows"] == 10
    assert m["quality.champion.macro_f1"].value == pytest.approx(0.8 / 3)  # all 12 rows
    # rows 3..12: 6 HOLD of 10 -> champion HOLD F1 = 2 * 0.6 / 1.6 = 0.75, macro 0.25; gap = 1 - 0.25
    gap = m["quality.macro_f1_gap"]
    assert gap.value == pytest.approx(0.75)
    assert gap.evidence["n_rows"] == 10 and gap.evidence["challenger_versions"] == ["4"]


def test_too_few_matured_rows_is_none_with_reason():
    served = served_frame("AAA", DATES[: len(HAND_CLOSE)], [HOLD] * len(HAND_CLOSE))
    labels = {"AAA": matured_labels(full_close(), AS_OF, 3)}
    m = by_name(live_quality("m", served, labels, as_of=AS_OF, window=MIN_MATURED_ROWS - 1))
    f1 = m["quality.champion.macro_f1"]
    assert f1.value is None
    assert "9 matured row(s)" in f1.reason and DATES[12].date().isoformat() in f1.reason
    assert f1.evidence["n_rows"] == 9
    ch = m["quality.challenger.accuracy"]
    assert ch.value is None and "0 matured row(s) scored by the challenger" in ch.reason
    assert m["quality.macro_f1_gap"].value is None


def test_no_label_matured_yet():
    served = served_frame("AAA", DATES[:1], [HOLD])
    m = by_name(live_quality("m", served, {"AAA": matured_labels(full_close(), DATES[0], 3)}, as_of=DATES[0], window=5))
    assert m["quality.champion.macro_f1"].value is None
    assert "newest matured label: none yet" in m["quality.champion.macro_f1"].reason


def test_window_counts_sessions_across_tickers():
    served = pd.concat(
        [served_frame(t, DATES[: len(HAND_CLOSE)], [HOLD] * len(HAND_CLOSE)) for t in ("AAA", "BBB")],
        ignore_index=True,
    )
    labels = {t: matured_labels(full_close(), AS_OF, 3) for t in ("AAA", "BBB")}
    m = by_name(live_quality("m", served, labels, as_of=AS_OF, window=6))
    ev = m["quality.champion.macro_f1"].evidence
    assert ev["n_sessions"] == 6 and ev["n_rows"] == 12 and ev["n_tickers"] == 2
    assert ev["window_start"] == DATES[7].date().isoformat()
    # positions 7..12: H, H, S, H, H, B -> HOLD 4 of 6: F1 = 2 * (2/3) / (5/3) = 0.8 -> macro 0.8 / 3
    assert m["quality.champion.macro_f1"].value == pytest.approx(0.8 / 3)


def test_served_rows_after_as_of_are_ignored():
    dates = DATES[: len(HAND_CLOSE) + 2]
    served = served_frame("AAA", dates, [HOLD] * len(HAND_CLOSE) + [BUY, BUY])
    labels = {"AAA": matured_labels(full_close(), AS_OF, 3)}
    m = by_name(live_quality("m", served, labels, as_of=AS_OF, window=60))
    assert m["quality.champion.macro_f1"].evidence["n_served_rows"] == len(HAND_CLOSE)


def test_bad_served_rows_name_the_row():
    served = served_frame("AAA", DATES[:3], [HOLD, "BUYY", HOLD])
    with pytest.raises(TradeopsError, match=r"served row 1 \(ticker AAA, as_of 2024-01-02\).*champion_signal"):
        live_quality("m", served, {}, as_of=AS_OF, window=5)
    dup = pd.concat([served_frame("AAA", DATES[:2], [HOLD, HOLD])] * 2, ignore_index=True)
    with pytest.raises(TradeopsError, match="more than one row"):
        live_quality("m", dup, {}, as_of=AS_OF, window=5)
    with pytest.raises(TradeopsError, match="missing columns"):
        live_quality("m", served.drop(columns=["challenger_signal"]), {}, as_of=AS_OF, window=5)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(15, 60), cut=st.floats(0.0, 1.0))
def test_closes_after_as_of_never_change_the_result(seed, n, cut):
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2022-01-03", periods=n)
    close = pd.Series(50 * np.exp(np.cumsum(rng.normal(0, 0.02, n))), index=dates)
    k = int(cut * (n - 1))
    as_of = dates[k]
    changed = close.copy()
    changed.iloc[k + 1 :] = changed.iloc[k + 1 :] * rng.uniform(0.5, 1.5, n - k - 1)
    a, b = matured_labels(close, as_of, 3), matured_labels(changed, as_of, 3)
    pd.testing.assert_series_equal(a, b)
    served = served_frame("AAA", dates, list(rng.choice(CLASSES, n)), list(rng.choice(CLASSES, n)))
    ra = live_quality("m", served, {"AAA": a}, as_of=as_of, window=20)
    rb = live_quality("m", served, {"AAA": b}, as_of=as_of, window=20)
    assert [m.to_dict() for m in ra] == [m.to_dict() for m in rb]
