"""Blessing: absolute thresholds, missing/NaN metrics, champion comparison by margin, windows, serialisation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from tradeops.model.blessing import NO_CHAMPION, BlessingConfig, Candidate, Check, Decision, bless

WINDOWS = ("IBM:2011-01-03..2012-12-31", "MSFT:2011-01-03..2012-12-31")
GOOD = {"recall_BUY": 0.35, "recall_SELL": 0.30, "macro_f1": 0.45, "net_sharpe": 0.91}


def cand(windows: tuple[str, ...] = WINDOWS, **overrides: float) -> Candidate:
    return Candidate(metrics={**GOOD, **overrides}, windows=windows)


def check(decision: Decision, name: str) -> Check:
    (hit,) = [c for c in decision.checks if c.name == name]
    return hit


def test_good_candidate_without_champion_is_blessed_on_absolute_thresholds() -> None:
    d = bless(cand(), BlessingConfig())
    assert d.blessed
    names = [c.name for c in d.checks]
    assert names == ["min_recall_buy", "min_recall_sell", "min_macro_f1", "min_net_sharpe", "champion"]
    assert all(c.passed for c in d.checks)
    champ = check(d, "champion")
    assert champ.comparator == "skipped" and champ.message == NO_CHAMPION
    assert NO_CHAMPION in d.reasons
    assert "recall_BUY 0.35 >= 0.10 (min_recall_buy)" in d.reasons


@pytest.mark.parametrize(
    ("metric", "value", "rule", "reason"),
    [
        ("recall_BUY", 0.05, "min_recall_buy", "recall_BUY 0.05 < 0.10 (min_recall_buy)"),
        ("recall_SELL", 0.08, "min_recall_sell", "recall_SELL 0.08 < 0.10 (min_recall_sell)"),
        ("macro_f1", 0.25, "min_macro_f1", "macro_f1 0.25 < 0.30 (min_macro_f1)"),
        ("net_sharpe", -0.4, "min_net_sharpe", "net_sharpe -0.40 < 0.00 (min_net_sharpe)"),
    ],
)
def test_each_threshold_fails_on_its_own(metric: str, value: float, rule: str, reason: str) -> None:
    d = bless(cand(**{metric: value}), BlessingConfig())
    assert not d.blessed
    assert d.reasons == (reason,)  # a rejection lists exactly what failed
    failed = check(d, rule)
    assert not failed.passed and failed.value == value and failed.comparator == ">="
    assert [c.name for c in d.failed] == [rule]


def test_value_exactly_at_threshold_passes() -> None:
    d = bless(cand(recall_BUY=0.10, macro_f1=0.30, net_sharpe=0.0), BlessingConfig())
    assert d.blessed


def test_rounding_never_prints_an_equal_looking_failure() -> None:
    d = bless(cand(recall_SELL=0.0999), BlessingConfig())
    assert not d.blessed
    assert d.reasons == ("recall_SELL 0.0999 < 0.1000 (min_recall_sell)",)


def test_min_net_sharpe_none_drops_that_check() -> None:
    d = bless(cand(net_sharpe=-2.0), BlessingConfig(min_net_sharpe=None))
    assert d.blessed
    assert "min_net_sharpe" not in [c.name for c in d.checks]


@pytest.mark.parametrize("metric", ["recall_BUY", "recall_SELL", "macro_f1", "net_sharpe"])
def test_missing_required_metric_fails(metric: str) -> None:
    metrics = {k: v for k, v in GOOD.items() if k != metric}
    d = bless(Candidate(metrics=metrics, windows=WINDOWS), BlessingConfig())
    assert not d.blessed
    failed = check(d, {"recall_BUY": "min_recall_buy", "recall_SELL": "min_recall_sell"}.get(metric, f"min_{metric}"))
    assert not failed.passed and failed.value is None
    assert failed.message.startswith(f"{metric} is missing")
    assert d.reasons == (failed.message,)


@pytest.mark.parametrize("bad", [float("nan"), np.float64("nan"), None, "0.5", float("inf")])
def test_nan_or_unusable_metric_fails(bad) -> None:
    d = bless(cand(recall_SELL=bad), BlessingConfig())
    assert not d.blessed
    failed = check(d, "min_recall_sell")
    assert not failed.passed and failed.value is None
    if bad is None or (isinstance(bad, float) and math.isnan(bad)):
        assert "is missing" in failed.message
    assert "recall_SELL" in failed.message


def test_numpy_metric_values_are_read() -> None:
    d = bless(cand(recall_BUY=np.float32(0.5), macro_f1=np.float64(0.5)), BlessingConfig())
    assert d.blessed


# --------------------------------------------------------------------------------------------------------------------
# champion
# --------------------------------------------------------------------------------------------------------------------


def test_champion_beaten_by_margin() -> None:
    d = bless(cand(net_sharpe=0.91), BlessingConfig(), champion=cand(net_sharpe=0.70))
    assert d.blessed
    assert "net_sharpe 0.91 beats champion 0.70 by 0.21 >= margin 0.05" in d.reasons
    c = check(d, "champion")
    assert c.passed and c.value == 0.91 and c.threshold == pytest.approx(0.75) and c.comparator == ">="


def test_champion_not_beaten_by_margin() -> None:
    d = bless(cand(net_sharpe=0.72), BlessingConfig(), champion=cand(net_sharpe=0.70))
    assert not d.blessed
    assert d.reasons == ("net_sharpe 0.72 does not beat champion 0.70 by margin 0.05: improvement 0.02 < 0.05",)


def test_equal_to_champion_is_not_enough() -> None:
    d = bless(cand(net_sharpe=0.70), BlessingConfig(), champion=cand(net_sharpe=0.70))
    assert not d.blessed
    assert "improvement 0.00 < 0.05" in d.reasons[0]


def test_equal_to_champion_passes_with_zero_margin() -> None:
    assert bless(cand(net_sharpe=0.70), BlessingConfig(champion_margin=0.0), champion=cand(net_sharpe=0.70)).blessed


def test_margin_met_exactly_despite_float_rounding() -> None:
    # 0.75 - 0.70 == 0.04999999999999993 in floating point; the margin is met
    d = bless(cand(net_sharpe=0.75), BlessingConfig(), champion=cand(net_sharpe=0.70))
    assert d.blessed
    assert "net_sharpe 0.75 beats champion 0.70 by 0.05 >= margin 0.05" in d.reasons


def test_lower_is_better_primary_metric() -> None:
    config = BlessingConfig(primary_metric="max_drawdown_abs", higher_is_better=False)
    better = bless(cand(max_drawdown_abs=0.10), config, champion=cand(max_drawdown_abs=0.20))
    assert better.blessed
    assert "max_drawdown_abs 0.10 beats champion 0.20 by 0.10 >= margin 0.05 (lower is better)" in better.reasons
    c = check(better, "champion")
    assert c.comparator == "<=" and c.threshold == pytest.approx(0.15)

    slightly = bless(cand(max_drawdown_abs=0.17), config, champion=cand(max_drawdown_abs=0.20))
    assert not slightly.blessed
    worse = bless(cand(max_drawdown_abs=0.30), config, champion=cand(max_drawdown_abs=0.20))
    assert not worse.blessed
    assert "improvement -0.10 < 0.05" in worse.reasons[0]


def test_different_windows_are_rejected_with_the_difference_listed() -> None:
    champion = cand(windows=("IBM:2011-01-03..2012-12-31", "AAPL:2011-01-03..2012-12-31"), net_sharpe=0.1)
    d = bless(cand(net_sharpe=2.0), BlessingConfig(), champion=champion)
    assert not d.blessed
    (reason,) = d.reasons
    assert "only candidate: MSFT:2011-01-03..2012-12-31" in reason
    assert "only champion: AAPL:2011-01-03..2012-12-31" in reason
    assert "not fair" in reason


def test_same_windows_in_another_order_are_the_same() -> None:
    d = bless(cand(net_sharpe=2.0), BlessingConfig(), champion=cand(windows=WINDOWS[::-1], net_sharpe=0.1))
    assert d.blessed


def test_different_windows_allowed_when_not_required_but_noted() -> None:
    champion = cand(windows=("IBM:2011-01-03..2012-12-31",), net_sharpe=0.1)
    d = bless(cand(net_sharpe=2.0), BlessingConfig(require_same_windows=False), champion=champion)
    assert d.blessed
    assert "require_same_windows is off" in check(d, "champion").message


def test_champion_comparison_with_missing_primary_metric_fails() -> None:
    champion = Candidate(metrics={k: v for k, v in GOOD.items() if k != "net_sharpe"}, windows=WINDOWS)
    d = bless(cand(), BlessingConfig(), champion=champion)
    assert not d.blessed
    assert d.reasons == ("champion's net_sharpe is missing; cannot compare the candidate with it",)

    config = BlessingConfig(primary_metric="max_drawdown_abs", higher_is_better=False)
    d = bless(cand(), config, champion=cand(max_drawdown_abs=0.2))
    assert not d.blessed
    assert d.reasons == ("candidate's max_drawdown_abs is missing; cannot compare it with the champion",)

    d = bless(cand(net_sharpe=1.0), BlessingConfig(), champion=cand(net_sharpe=float("nan")))
    assert not d.blessed and "missing (NaN)" in d.reasons[0]


def test_thresholds_still_apply_when_the_champion_is_beaten() -> None:
    d = bless(cand(recall_SELL=0.01, net_sharpe=3.0), BlessingConfig(), champion=cand(net_sharpe=0.1))
    assert not d.blessed
    assert d.reasons == ("recall_SELL 0.01 < 0.10 (min_recall_sell)",)
    assert check(d, "champion").passed


# --------------------------------------------------------------------------------------------------------------------
# serialisation and validation
# --------------------------------------------------------------------------------------------------------------------


def test_to_dict_is_json_serialisable_even_with_nan() -> None:
    candidate = cand(recall_SELL=float("nan"), net_sharpe=np.float64(0.9))
    d = bless(candidate, BlessingConfig(), champion=cand(net_sharpe=0.5))
    payload = d.to_dict()
    text = json.dumps(payload, allow_nan=False)
    back = json.loads(text)
    assert back["blessed"] is False
    assert back["reasons"] == list(d.reasons)
    assert len(back["checks"]) == len(d.checks)
    sell = next(c for c in back["checks"] if c["name"] == "min_recall_sell")
    assert sell == {
        "name": "min_recall_sell",
        "passed": False,
        "value": None,
        "threshold": 0.1,
        "comparator": ">=",
        "message": "recall_SELL is missing (NaN); required >= 0.10 (min_recall_sell)",
    }
    skipped = bless(cand(), BlessingConfig()).to_dict()
    json.dumps(skipped, allow_nan=False)
    assert skipped["checks"][-1]["comparator"] == "skipped"


def test_config_is_frozen_and_validated() -> None:
    config = BlessingConfig()
    with pytest.raises(ValidationError):
        config.min_macro_f1 = 0.9  # type: ignore[misc]
    for bad in (
        {"min_recall_buy": 1.5},
        {"champion_margin": -0.1},
        {"min_net_sharpe": float("nan")},
        {"primary_metric": ""},
        {"min_recal_buy": 0.2},  # a typo is an error, not a silently ignored key
    ):
        with pytest.raises(ValueError):
            BlessingConfig(**bad)


def test_candidate_is_validated_and_copied() -> None:
    metrics = dict(GOOD)
    c = Candidate(metrics=metrics, windows=list(WINDOWS))  # type: ignore[arg-type]
    metrics["recall_BUY"] = 0.0
    assert c.metrics["recall_BUY"] == 0.35 and c.windows == WINDOWS
    for kwargs, match in [
        ({"metrics": GOOD, "windows": ()}, "windows is empty"),
        ({"metrics": GOOD, "windows": "IBM:2011"}, "tuple of window names"),
        ({"metrics": GOOD, "windows": ("IBM", "")}, "non-empty string"),
        ({"metrics": [("recall_BUY", 0.3)], "windows": WINDOWS}, "mapping"),
        ({"metrics": {1: 0.3}, "windows": WINDOWS}, "strings"),
    ]:
        with pytest.raises(ValueError, match=match):
            Candidate(**kwargs)


def test_bless_rejects_wrong_argument_types() -> None:
    with pytest.raises(ValueError, match="Candidate"):
        bless(GOOD, BlessingConfig())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="BlessingConfig"):
        bless(cand(), {"min_macro_f1": 0.3})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="champion"):
        bless(cand(), BlessingConfig(), champion=GOOD)  # type: ignore[arg-type]
