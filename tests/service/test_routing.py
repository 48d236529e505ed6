"""Champion/challenger routing: stable keys, canary share, off/shadow/canary semantics, validation."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeops.deploy.routing import ROUTING_MODES, Decision, RoutingState, decide, route_key, validate_routing
from tradeops.errors import UsageError

tickers = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ.", min_size=1, max_size=6)
dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 12, 31)).map(date.isoformat)
shares = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def _keys(n: int) -> list[tuple[str, str]]:
    names = [f"T{i:03d}" for i in range(200)]
    start = date(2010, 1, 1)
    return [(names[i % 200], (start + timedelta(days=i // 200)).isoformat()) for i in range(n)]


@given(tickers, dates)
def test_route_key_is_in_unit_interval_and_stable(ticker, as_of):
    k = route_key(ticker, as_of)
    assert 0.0 <= k < 1.0
    assert route_key(ticker, as_of) == k
    assert route_key(ticker.lower(), as_of) == k  # tickers are case-insensitive keys


def test_route_key_is_sha256_of_ticker_pipe_date_not_python_hash():
    digest = hashlib.sha256(b"IBM|2012-06-01").digest()
    assert route_key("IBM", "2012-06-01") == (int.from_bytes(digest[:8], "big") >> 11) / 2.0**53


def test_route_key_is_the_same_in_another_process_with_another_hash_seed():
    code = "from tradeops.deploy.routing import route_key; print(repr(route_key('IBM', '2012-06-01')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "12345"}
    )
    assert float(out.stdout) == route_key("IBM", "2012-06-01")


@given(tickers, dates, shares, st.sampled_from(ROUTING_MODES), st.booleans())
def test_the_same_key_always_routes_the_same_way(ticker, as_of, share, mode, has_challenger):
    first = decide(mode, share, ticker, as_of, has_challenger=has_challenger)
    assert all(decide(mode, share, ticker, as_of, has_challenger=has_challenger) == first for _ in range(3))


@given(tickers, dates, st.floats(min_value=0.0, max_value=0.99), st.floats(min_value=0.0, max_value=0.99))
@settings(max_examples=200)
def test_canary_is_monotone_in_share(ticker, as_of, a, b):
    """A key in the canary at a small share stays in it at a larger share (raising the share only adds keys)."""
    lo, hi = sorted((a, b))
    if decide("canary", lo, ticker, as_of, has_challenger=True).answered_by == "challenger":
        assert decide("canary", hi, ticker, as_of, has_challenger=True).answered_by == "challenger"


@pytest.mark.parametrize("share", [0.01, 0.05, 0.1, 0.25, 0.5, 0.9])
def test_canary_share_within_tolerance_over_20k_keys(share):
    keys = _keys(20_000)
    n = sum(decide("canary", share, t, d, has_challenger=True).answered_by == "challenger" for t, d in keys)
    # 4.5 binomial standard deviations: a correct hash fails this about once in 150k runs
    tolerance = 4.5 * math.sqrt(share * (1 - share) / len(keys))
    assert abs(n / len(keys) - share) < tolerance, (n, share)


def test_canary_share_zero_and_one_are_exact():
    keys = _keys(2_000)
    assert all(decide("canary", 0.0, t, d, has_challenger=True).answered_by == "champion" for t, d in keys)
    assert all(decide("canary", 1.0, t, d, has_challenger=True).answered_by == "challenger" for t, d in keys)


def test_mode_off_answers_with_the_champion_and_scores_nothing_else():
    for t, d in _keys(500):
        assert decide("off", 1.0, t, d, has_challenger=True) == Decision("champion", shadow=False)


def test_mode_shadow_answers_with_the_champion_and_scores_the_challenger():
    for t, d in _keys(500):
        got = decide("shadow", 1.0, t, d, has_challenger=True)
        assert got == Decision("champion", shadow=True)
        assert got.scored_by == ("champion", "challenger")


def test_canary_scores_the_other_model_in_shadow_both_ways():
    seen = {decide("canary", 0.5, t, d, has_challenger=True) for t, d in _keys(500)}
    assert seen == {Decision("champion", shadow=True), Decision("challenger", shadow=True)}
    assert Decision("challenger", shadow=True).scored_by == ("challenger", "champion")


@pytest.mark.parametrize("mode", ROUTING_MODES)
def test_without_a_challenger_every_mode_is_champion_only(mode):
    for t, d in _keys(500):
        assert decide(mode, 1.0, t, d, has_challenger=False) == Decision("champion", shadow=False)


@pytest.mark.parametrize("mode", ["", "Shadow", "canary ", "on", None, 1])
def test_invalid_mode_is_a_usage_error_naming_the_field(mode):
    with pytest.raises(UsageError, match=r"^mode: \[routing_mode\]"):
        validate_routing(mode, 0.1)
    with pytest.raises(UsageError, match=r"^mode: "):
        decide(mode, 0.1, "IBM", "2012-06-01", has_challenger=True)
    with pytest.raises(UsageError, match=r"^mode: "):
        RoutingState(mode, 0.1)


@pytest.mark.parametrize("share", [-0.01, 1.01, math.nan, math.inf, -math.inf, "0.5", None, True])
def test_invalid_share_is_a_usage_error_naming_the_field(share):
    with pytest.raises(UsageError, match=r"^share: \[routing_share\]"):
        validate_routing("canary", share)
    with pytest.raises(UsageError, match=r"^share: "):
        RoutingState("shadow", share)


def test_routing_state_decides_like_decide():
    state = RoutingState("canary", 0.3)
    for t, d in _keys(300):
        assert state.decide(t, d, has_challenger=True) == decide("canary", 0.3, t, d, has_challenger=True)


@given(tickers, st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 12, 31)))
def test_a_date_and_its_iso_string_are_the_same_key(ticker, d):
    import pandas as pd

    k = route_key(ticker, d.isoformat())
    assert route_key(ticker, d) == k
    assert route_key(ticker, pd.Timestamp(d)) == k
