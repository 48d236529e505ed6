"""Walk-forward splits: time order, embargo gaps, purge by label_known_at."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tradeops.features.splits import Fold, FoldSkippedWarning, describe_folds, walk_forward

DATES = pd.bdate_range("2000-01-01", "2013-12-31")


def pos(idx: pd.DatetimeIndex, ts: pd.Timestamp) -> int:
    return int(idx.get_loc(ts))


def known_at(idx: pd.DatetimeIndex, h: int) -> pd.Series:
    """label_known_at of each date: the close h trading days later (NaT near the end)."""
    out = pd.Series(pd.NaT, index=range(len(idx)), dtype="datetime64[ns]")
    out.iloc[: max(len(idx) - h, 0)] = idx[h:]
    return out


def pooled_rows(idx: pd.DatetimeIndex, h: int, drop: np.ndarray) -> pd.DataFrame:
    """Two tickers: A trades every date, B misses the dates where `drop`; labels on each ticker's own calendar."""
    frames = []
    for ticker, dates in (("A", idx), ("B", idx[~drop])):
        frames.append(pd.DataFrame({"ticker": ticker, "date": dates, "label_known_at": known_at(dates, h).to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def check_fold_gaps(idx: pd.DatetimeIndex, f: Fold, embargo: int) -> None:
    if f.val_start is not None:
        assert pos(idx, f.train_end) + embargo < pos(idx, f.val_start)
        assert pos(idx, f.val_end) + embargo < pos(idx, f.test_start)
    assert pos(idx, f.train_end) + embargo < pos(idx, f.test_start)


def test_year_folds_sliding_cover_each_test_year() -> None:
    folds = walk_forward(DATES, test_years=range(2006, 2014), train_years=5)
    assert [f.test_start.year for f in folds] == list(range(2006, 2014))
    for f in folds:
        year = DATES[DATES.year == f.test_start.year]
        assert (f.test_start, f.test_end) == (year[0], year[-1])
        # sliding: the training region starts about 5 years before the test year
        assert f.train_start == DATES[DATES >= f.test_start - pd.DateOffset(years=5)][0]
        check_fold_gaps(DATES, f, 5)
    assert [f.index for f in folds] == list(range(len(folds)))


def test_expanding_starts_at_first_date_and_grows() -> None:
    folds = walk_forward(DATES, test_years=range(2003, 2014), expanding=True)
    assert all(f.train_start == DATES[0] for f in folds)
    sizes = [pos(DATES, f.train_end) for f in folds]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    sliding = walk_forward(DATES, test_years=range(2003, 2014), train_years=2)
    assert all(f.train_start > DATES[0] for f in sliding[1:])


def test_embargo_gap_is_exactly_embargo_trading_days() -> None:
    for embargo in (5, 7, 10):
        for f in walk_forward(DATES, test_years=[2010, 2011], embargo=embargo, horizon=5):
            assert pos(DATES, f.val_start) - pos(DATES, f.train_end) - 1 == embargo
            assert pos(DATES, f.test_start) - pos(DATES, f.val_end) - 1 == embargo


def test_n_day_blocks_tile_without_overlap() -> None:
    folds = walk_forward(DATES, test_days=250, train_years=3)
    starts = [pos(DATES, f.test_start) for f in folds]
    ends = [pos(DATES, f.test_end) for f in folds]
    assert all(e - s + 1 == 250 for s, e in zip(starts[:-1], ends[:-1]))
    assert 1 <= ends[-1] - starts[-1] + 1 <= 250 and ends[-1] == len(DATES) - 1
    assert all(s == e + 1 for s, e in zip(starts[1:], ends[:-1]))  # contiguous, no overlap
    # the first block starts as soon as the fit part reaches min_train_days
    first = folds[0]
    n_fit = pos(DATES, first.train_end) - pos(DATES, first.train_start) + 1
    assert n_fit == 250
    for f in folds:
        check_fold_gaps(DATES, f, 5)
        assert f.train_start < f.train_end < f.val_start <= f.val_end < f.test_start <= f.test_end


def test_time_order_across_folds() -> None:
    for folds in (walk_forward(DATES, test_years=range(2005, 2014)), walk_forward(DATES, test_days=100)):
        for a, b in zip(folds, folds[1:]):
            assert a.test_end < b.test_start and a.train_start <= b.train_start


def test_embargo_shorter_than_horizon_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"embargo \(4 trading days\) must be >= the label horizon \(5\)"):
        walk_forward(DATES, test_years=[2010], embargo=4, horizon=5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of test_years"),
        ({"test_years": [2010], "test_days": 20}, "exactly one of test_years"),
        ({"test_days": 0}, "test_days must be >= 1"),
        ({"test_years": [2010], "val_fraction": 1.0}, "val_fraction"),
        ({"test_years": [2010], "train_years": None}, "sliding windows need train_years"),
        ({"test_years": [2010], "train_years": -1}, "train_years must be a positive"),
    ],
)
def test_bad_arguments_fail_loudly(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        walk_forward(DATES, **kwargs)


def test_infeasible_years_are_skipped_with_a_reason_or_raise_when_strict() -> None:
    with pytest.warns(FoldSkippedWarning) as record:
        folds = walk_forward(DATES, test_years=[1999, 2000, 2001, 2010])
    reasons = " | ".join(str(w.message) for w in record)
    assert "test year 1999: no trading dates" in reasons
    assert "test year 2001: fit part has" in reasons and "min_train_days=250" in reasons
    assert [f.test_start.year for f in folds] == [2010]
    with pytest.raises(ValueError, match="test year 1999"):
        walk_forward(DATES, test_years=[1999, 2010], strict=True)
    with pytest.raises(ValueError, match="no fold"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FoldSkippedWarning)
        walk_forward(DATES, test_years=[1999])
    with pytest.raises(ValueError, match="no fold fits"):
        walk_forward(DATES[:200], test_days=20)


def test_pooled_unsorted_dates_are_deduplicated() -> None:
    pooled = DATES[::-1].append(DATES[:500])
    assert walk_forward(pooled, test_days=300) == walk_forward(DATES, test_days=300)
    with pytest.raises(ValueError, match="missing value"):
        walk_forward(DATES.append(pd.DatetimeIndex([pd.NaT])), test_days=300)


def test_without_validation_train_runs_up_to_the_test_embargo() -> None:
    (f,) = walk_forward(DATES, test_years=[2010], val_fraction=0)
    assert f.val_start is None and f.val_end is None
    assert pos(DATES, f.test_start) - pos(DATES, f.train_end) - 1 == 5
    masks = f.masks(DATES, known_at(DATES, 5))
    assert not masks.val.any() and masks.train.any()


def test_masks_purge_rows_whose_label_is_known_too_late() -> None:
    (f,) = walk_forward(DATES, test_years=[2010])
    lka = known_at(DATES, 5)
    last_train = pos(DATES, f.train_end)
    late = lka.copy()
    late.iloc[last_train] = f.val_start  # e.g. a ticker that missed days: label known only at val_start
    late.iloc[last_train - 1] = pd.NaT  # label never known
    m = f.masks(pd.Series(DATES), late)
    assert not m.train[last_train] and not m.train[last_train - 1] and m.train[last_train - 2]
    late.iloc[pos(DATES, f.val_end)] = f.test_start
    m = f.masks(DATES, late)
    assert not m.val[pos(DATES, f.val_end)] and m.val[pos(DATES, f.val_end) - 1]
    assert m.test.sum() == (DATES.year == 2010).sum()
    assert not (m.train & m.val).any() and not (m.val & m.test).any() and not (m.train & m.test).any()


def test_masks_validate_inputs() -> None:
    (f,) = walk_forward(DATES, test_years=[2010])
    with pytest.raises(ValueError, match="rows"):
        f.masks(DATES, known_at(DATES, 5)[:-1])
    bad = known_at(DATES, 5)
    bad.iloc[10] = DATES[5]
    with pytest.raises(ValueError, match="row position 10: label_known_at .* is before its date"):
        f.masks(DATES, bad)
    # python dates (as stored in a parquet "date" column) are accepted
    m = f.masks([d.date() for d in DATES], [None if pd.isna(k) else k.date() for k in known_at(DATES, 5)])
    assert m.train.sum() == f.masks(DATES, known_at(DATES, 5)).train.sum()


def test_fold_rejects_unordered_bounds() -> None:
    t = pd.Timestamp
    with pytest.raises(ValueError, match="train_end .* < val_start"):
        Fold(0, t("2001-01-01"), t("2001-06-01"), t("2001-06-01"), t("2001-07-01"), t("2001-08-01"), t("2001-09-01"))
    with pytest.raises(ValueError, match="both be set"):
        Fold(0, t("2001-01-01"), t("2001-06-01"), None, t("2001-07-01"), t("2001-08-01"), t("2001-09-01"))


def test_describe_folds() -> None:
    folds = walk_forward(DATES, test_years=[2011, 2012, 2013])
    table = describe_folds(folds, DATES)
    assert list(table.index) == [0, 1, 2]
    assert list(table.columns[-3:]) == ["n_train", "n_val", "n_test"]
    assert (table["n_test"] == [DATES[DATES.year == y].size for y in (2011, 2012, 2013)]).all()
    assert list(describe_folds(folds).columns) == list(table.columns[:-3])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(120, 1500),
    horizon=st.integers(1, 8),
    extra=st.integers(0, 4),
    by_years=st.booleans(),
    test_days=st.integers(5, 200),
    train_years=st.floats(0.5, 3.0),
    expanding=st.booleans(),
    val_fraction=st.sampled_from([0.0, 0.05, 0.1, 0.3]),
    min_train_days=st.integers(20, 250),
    seed=st.integers(0, 2**16),
)
def test_property_no_label_crosses_into_a_later_segment(
    n, horizon, extra, by_years, test_days, train_years, expanding, val_fraction, min_train_days, seed
) -> None:
    idx = pd.bdate_range("2003-03-03", periods=n)
    embargo = horizon + extra
    kwargs = dict(
        train_years=train_years,
        expanding=expanding,
        embargo=embargo,
        horizon=horizon,
        val_fraction=val_fraction,
        min_train_days=min_train_days,
    )
    if by_years:
        kwargs["test_years"] = sorted(set(idx.year))
    else:
        kwargs["test_days"] = test_days
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FoldSkippedWarning)
            folds = walk_forward(idx, **kwargs)
    except ValueError as exc:
        assume("no fold" not in str(exc))
        raise
    rng = np.random.default_rng(seed)
    rows = pooled_rows(idx, horizon, rng.random(n) < 0.2)
    prev_test_end = None
    for f in folds:
        m = f.masks(rows["date"], rows["label_known_at"])
        fit_time = f.val_start if f.val_start is not None else f.test_start
        assert (rows.loc[m.train, "label_known_at"] < fit_time).all()
        assert (rows.loc[m.val, "label_known_at"] < f.test_start).all()
        assert not (m.train & m.val).any() and not (m.train & m.test).any() and not (m.val & m.test).any()
        train_dates = rows.loc[m.train, "date"]
        test_dates = rows.loc[m.test, "date"]
        assert len(test_dates) and len(train_dates)
        assert pos(idx, train_dates.max()) + embargo < pos(idx, test_dates.min())
        if m.val.any():
            val_dates = rows.loc[m.val, "date"]
            assert pos(idx, train_dates.max()) + embargo < pos(idx, val_dates.min())
            assert pos(idx, val_dates.max()) + embargo < pos(idx, test_dates.min())
        n_fit = pos(idx, f.train_end) - pos(idx, f.train_start) + 1
        assert n_fit >= min_train_days
        check_fold_gaps(idx, f, embargo)
        if prev_test_end is not None:
            assert prev_test_end < f.test_start
        prev_test_end = f.test_end
