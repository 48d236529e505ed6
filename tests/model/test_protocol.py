"""The research protocol's rules: choices are fitted on validation rows only, selection reads validation scores only,
the paper table's layout and counts, the seed ensemble; and walk-forward on worker processes = sequential."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradeops.errors import UsageError
from tradeops.model import protocol as pr
from tradeops.model.backtest import Costs
from tradeops.model.walkforward import WalkForwardResult
from tradeops.model.windows import PROBA_COLUMNS

COSTS = Costs(5.0, 5.0, 0.0)


def _bars(dates: pd.DatetimeIndex, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0005, 0.01, len(dates))))
    return pd.DataFrame({"open": close * (1 + rng.normal(0, 0.001, len(dates))), "close": close}, index=dates)


def _frame(dates: pd.DatetimeIndex, ticker: str, year: int, seeds: list[int], rng: np.random.Generator):
    parts = []
    for seed in seeds:
        p = rng.dirichlet([1.0, 1.0, 2.0], size=len(dates))
        f = pd.DataFrame({"ticker": ticker, "date": dates})
        for j, col in enumerate(PROBA_COLUMNS):
            f[col] = p[:, j]
        f["signal"] = np.asarray(["BUY", "SELL", "HOLD"], dtype=object)[p.argmax(axis=1)]
        f["y_true"] = rng.choice(["BUY", "SELL", "HOLD"], size=len(dates))
        parts.append(f.assign(who=ticker, test_year=year, seed=seed))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture()
def world():
    """Two tickers, two folds (test years 2011, 2012), validation windows in the preceding autumn, two seeds."""
    days = pd.bdate_range("2010-01-04", "2012-12-31")
    bars = {t: _bars(days, i) for i, t in enumerate(("AAA", "BBB"))}
    rng = np.random.default_rng(7)
    test, val = [], []
    for t in ("AAA", "BBB"):
        for year in (2011, 2012):
            test.append(_frame(days[days.year == year], t, year, [0, 1], rng))
            v = days[(days.year == year - 1) & (days.month >= 9)]
            val.append(_frame(v, t, year, [0, 1], rng))
    preds = pd.concat(test, ignore_index=True)
    result = WalkForwardResult(
        "cnn-ta",
        ["AAA", "BBB"],
        "realistic",
        [2011, 2012],
        False,
        [],
        pd.DataFrame(),
        {},
        [],
        predictions=preds,
        val_predictions=pd.concat(val, ignore_index=True),
        seeds=[0, 1],
    )
    return result, bars


def test_ensemble_probabilities_are_the_seed_mean(world):
    result, _ = world
    ens = pr.probabilities(result.predictions, ensemble=True, seed=0)
    first = pr.probabilities(result.predictions, ensemble=False, seed=0)
    p = result.predictions
    a = p.loc[p["seed"] == 0, list(PROBA_COLUMNS)].to_numpy()
    b = p.loc[p["seed"] == 1, list(PROBA_COLUMNS)].to_numpy()
    assert len(ens) == len(first) == len(a)
    np.testing.assert_allclose(ens[list(PROBA_COLUMNS)].to_numpy(), (a + b) / 2)
    np.testing.assert_array_equal(first[list(PROBA_COLUMNS)].to_numpy(), a)


def test_thresholds_are_fitted_on_validation_only(world):
    """Scrambling the test probabilities changes no fitted threshold; scrambling validation ones does."""
    result, bars = world
    v = pr.VARIANTS["thresholds"]
    _, _, fitted = pr.variant_signals(result, v, bars, COSTS)
    assert set(fitted) == {"AAA 2011", "AAA 2012", "BBB 2011", "BBB 2012"}
    scrambled = result.predictions.copy()
    scrambled[list(PROBA_COLUMNS)] = scrambled[list(PROBA_COLUMNS)].to_numpy()[::-1]
    other = WalkForwardResult(**{**result.__dict__, "predictions": scrambled})
    _, _, fitted_again = pr.variant_signals(other, v, bars, COSTS)
    assert fitted_again == fitted


def test_argmax_variant_reproduces_the_model_signals(world):
    result, bars = world
    test_s, val_s, fitted = pr.variant_signals(result, pr.VARIANTS["argmax"], bars, COSTS)
    first = result.predictions.loc[result.predictions["seed"] == 0].sort_values(["ticker", "date"], kind="stable")
    assert fitted == {}
    assert test_s["signal"].tolist() == first["signal"].tolist()
    assert len(val_s) == int((result.val_predictions["seed"] == 0).sum())


def test_holding_rule_never_sells_within_min_hold_of_the_entry(world):
    result, bars = world
    test_s, _, _ = pr.variant_signals(result, pr.VARIANTS["min_hold_10"], bars, COSTS)
    for _, g in test_s.groupby("ticker"):
        long, held = False, 0
        for s in g["signal"]:
            if long:
                held += 1
                if s == "SELL":
                    assert held >= 10
                    long = False
            elif s == "BUY":
                long, held = True, 0


def test_selection_reads_validation_scores_only(world):
    result, bars = world
    cands = [
        pr.score_candidate("per-instrument", result, pr.VARIANTS[n], bars, COSTS) for n in ("argmax", "thresholds")
    ]
    best = pr.select(cands)
    assert best.val_score == max(c.val_score for c in cands)
    # Swapping the test evaluations changes nothing about the choice.
    cands[0].evaluation, cands[1].evaluation = cands[1].evaluation, cands[0].evaluation
    assert pr.select(cands) is best
    with pytest.raises(UsageError, match="no candidate"):
        pr.select([])


def test_paper_table_layout_average_and_beat_count(world):
    result, bars = world
    c = pr.score_candidate("per-instrument", result, pr.VARIANTS["argmax"], bars, COSTS)
    table = pr.paper_table(c.evaluation, "realistic")
    assert list(table.index) == ["AAA", "BBB", "average", "beats B&H"]
    for col in ("CNN-TA", "Buy&Hold", "RSI", "SMA", "trades/yr", "win rate", "idle ratio"):
        assert col in table.columns
    bt = c.evaluation["backtests"]
    expected = sum(
        bt[t]["model"]["realistic"]["annualized_return"] > bt[t]["buy_and_hold"]["realistic"]["annualized_return"]
        for t in ("AAA", "BBB")
    )
    assert table.loc["beats B&H", "CNN-TA"] == expected
    assert table.loc["average", "CNN-TA"] == pytest.approx(table.loc[["AAA", "BBB"], "CNN-TA"].mean())
    assert table.loc["AAA", "idle ratio"] == pytest.approx(1 - bt["AAA"]["model"]["realistic"]["exposure"])


def test_unknown_or_impossible_variants_are_usage_errors():
    with pytest.raises(UsageError, match="unknown fancy"):
        pr.variants_of(["argmax", "fancy"], 1)
    with pytest.raises(UsageError, match="at least two seeds"):
        pr.variants_of(["ensemble"], 1)
    assert [v.name for v in pr.variants_of(["ensemble", "argmax"], 3)] == ["ensemble", "argmax"]


@pytest.mark.slow
def test_walkforward_on_two_processes_equals_sequential(tmp_path, tradeops):
    """Same folds, same threads: predictions, validation predictions and tables are bit-identical."""
    from tradeops.config import load_settings
    from tradeops.model.walkforward import run_walkforward

    assert tradeops(tmp_path, "ingest", "--tickers", "IBM,MSFT").exit_code == 0
    settings = load_settings(home=tmp_path)
    kw = dict(preset="cnn-ta", tickers=["IBM", "MSFT"], test_years=[2012], train_years=3, epochs=1, threads=1)
    seq = run_walkforward(settings, workers=1, seeds=[0, 1], **kw)
    par = run_walkforward(settings, workers=2, seeds=[0, 1], **kw)
    pd.testing.assert_frame_equal(seq.predictions, par.predictions)
    pd.testing.assert_frame_equal(seq.val_predictions, par.val_predictions)
    pd.testing.assert_frame_equal(seq.table, par.table)
    assert sorted(seq.predictions["seed"].unique()) == [0, 1]
    assert seq.timing["folds"] == 2 and par.timing["workers"] == 2
    assert 0 < seq.timing["cnn_fit_seconds"] < seq.timing["wall_seconds"]
    assert seq.timing["train_gflops"] > 0
    with pytest.raises(UsageError, match="--workers"):
        run_walkforward(settings, workers=0, **kw)


def test_candidate_metrics_and_records_carry_every_figure(world):
    result, bars = world
    c = pr.score_candidate("pooled", result, pr.VARIANTS["exit_on_hold"], bars, COSTS)
    m = pr.candidate_metrics([c])
    assert m["candidate.exit_on_hold.val_excess"] == c.val_score
    assert m["candidate.exit_on_hold.test_excess"] == pytest.approx(c.test_excess())
    assert m["candidate.exit_on_hold.test_macro_f1"] == c.evaluation["summary"]["macro_f1"]
    rec = pr.candidate_record(c)
    assert rec["name"] == "pooled/exit_on_hold" and rec["variant"]["exit_on_hold"] is True
    assert [r["instrument"] for r in rec["realistic"]] == ["AAA", "BBB", "average", "beats B&H"]
