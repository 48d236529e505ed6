"""Alpha Vantage source against a local replay server: payloads, retries, errors, incremental fetch, key secrecy.

``avserver`` is ``tests/avserver.py``: importable because ``tests/conftest.py`` puts ``tests/`` on ``sys.path``
(pytest's default import mode).
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import date

import httpx
import numpy as np
import pandas as pd
import pytest

import avserver
from avserver import FIXTURES, Reply, av_server  # noqa: F401 (av_server is a pytest fixture)
from tradeops.config import ALPHAVANTAGE_KEY_ENV, Settings
from tradeops.data.alphavantage import (
    ADJUSTED_HEADER,
    DAILY_HEADER,
    AlphaVantageSource,
    choose_outputsize,
    keep_incremental,
    redact,
)
from tradeops.data.clean import adjust
from tradeops.data.parse import parse_raw
from tradeops.errors import ConfigError, SourceError, UsageError

KEY = "SECRETKEY123XYZ"
TODAY = date(2024, 3, 9)  # the fixtures end on Friday 2024-03-08
IBM_CSV = FIXTURES / "ibm_daily_adjusted.csv"
MSFT_CSV = FIXTURES / "msft_daily_adjusted.csv"
FIXTURE_ROWS = 47


def make_source(url: str, sleeps: list[float] | None = None, api_key: str | None = KEY, **av) -> AlphaVantageSource:
    settings = Settings(alphavantage_base_url=url, alphavantage={"backoff_seconds": 0.5, **av})
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return AlphaVantageSource(settings, api_key, sleep=record, today=lambda: TODAY)


def csv_dates(content: bytes) -> list[str]:
    return [ln.split(",")[0] for ln in content.decode().splitlines()[1:] if ln.strip()]


def assert_no_errors(parsed) -> None:
    assert parsed.ok, [str(f) for f in parsed.findings]


# --- success -------------------------------------------------------------------------------------------------------


def test_csv_answer_is_passed_through_and_parses(av_server):
    av_server.script({"IBM": ["ibm_daily_adjusted.csv"]})
    [raw] = make_source(av_server.url).fetch(["IBM"], {})

    assert raw.content == IBM_CSV.read_bytes()
    assert (raw.ticker, raw.source, raw.fmt_hint) == ("IBM", "alphavantage", "csv")
    assert raw.declared_size == len(raw.content)
    assert raw.location.endswith("apikey=***") and "symbol=IBM" in raw.location
    [req] = av_server.requests
    assert req == {
        "function": "TIME_SERIES_DAILY_ADJUSTED",
        "symbol": "IBM",
        "outputsize": "full",
        "datatype": "csv",
        "apikey": KEY,
    }

    parsed = parse_raw(raw)
    assert_no_errors(parsed)
    assert parsed.layout == "alphavantage_adjusted"
    assert parsed.order == "descending"
    assert len(parsed.frame) == parsed.source_rows == FIXTURE_ROWS


def test_msft_fixture_split_and_dividend_are_consistent(av_server):
    av_server.script({"MSFT": ["msft_daily_adjusted.csv"]})
    [raw] = make_source(av_server.url).fetch(["msft"], {})
    parsed = parse_raw(raw)
    assert_no_errors(parsed)
    df = parsed.frame.set_index("date")

    assert df.loc["2024-02-21", "split_coefficient"] == 2.0
    assert df.loc["2024-02-14", "dividend"] == 1.5
    assert (df["split_coefficient"] != 1.0).sum() == 1 and (df["dividend"] > 0).sum() == 1
    factor = df["adj_close"] / df["close"]
    div_factor = 1 - 1.5 / df.loc["2024-02-13", "close"]
    assert np.allclose(factor[:"2024-02-13"], 0.5 * div_factor, rtol=2e-5)
    assert np.allclose(factor["2024-02-14":"2024-02-20"], 0.5, rtol=2e-5)
    assert np.allclose(factor["2024-02-21":], 1.0)
    # the raw close halves across the split; the adjusted close does not jump
    adj = adjust(parsed.frame)
    assert abs(adj["adj_close"].pct_change().abs().max()) < 0.1
    assert adj.set_index("date").loc["2024-02-21", "split_ratio"] == 2.0


def test_json_answer_is_converted_to_the_csv_layout(av_server):
    av_server.script({"IBM": ["ibm_daily_adjusted.json"]})
    [raw] = make_source(av_server.url, datatype="json").fetch(["IBM"], {})

    assert av_server.requests[0]["datatype"] == "json"
    lines = raw.content.decode().splitlines()
    assert lines[0] == ",".join(ADJUSTED_HEADER)
    dates = csv_dates(raw.content)
    assert dates == sorted(dates, reverse=True) and len(dates) == 12
    assert raw.declared_size is None and raw.fmt_hint == "csv"

    parsed = parse_raw(raw)
    assert_no_errors(parsed)
    assert parsed.layout == "alphavantage_adjusted" and len(parsed.frame) == 12
    # same values as the recorded CSV answer for those dates
    reference = parse_raw(raw.__class__(ticker="IBM", content=IBM_CSV.read_bytes(), source="t", location="t"))
    ref = reference.frame.tail(12).drop(columns="row").reset_index(drop=True)
    got = parsed.frame.drop(columns="row").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, ref)


def test_daily_json_answer_uses_the_daily_layout(av_server):
    body = {
        "Meta Data": {"2. Symbol": "ibm"},
        "Time Series (Daily)": {
            "2024-03-07": {
                "1. open": "140.2",
                "2. high": "141.04",
                "3. low": "137.55",
                "4. close": "138.29",
                "5. volume": "4763800",
            },
            "2024-03-08": {
                "1. open": "137.86",
                "2. high": "140.01",
                "3. low": "137.58",
                "4. close": "139.71",
                "5. volume": "7233967",
            },
        },
    }
    av_server.script({"IBM": [Reply(body=json.dumps(body).encode())]})
    [raw] = make_source(av_server.url, function="TIME_SERIES_DAILY", datatype="json").fetch(["IBM"], {})

    assert av_server.requests[0]["function"] == "TIME_SERIES_DAILY"
    assert raw.content.decode().splitlines() == [
        ",".join(DAILY_HEADER),
        "2024-03-08,137.86,140.01,137.58,139.71,7233967",
        "2024-03-07,140.2,141.04,137.55,138.29,4763800",
    ]
    parsed = parse_raw(raw)
    assert_no_errors(parsed)
    assert parsed.layout == "alphavantage_daily" and len(parsed.frame) == 2


def test_daily_csv_answer_parses_as_the_daily_layout(av_server):
    av_server.script({"IBM": ["ibm_daily.csv"]})
    [raw] = make_source(av_server.url, function="TIME_SERIES_DAILY").fetch(["IBM"], {})
    assert raw.content == (FIXTURES / "ibm_daily.csv").read_bytes()
    parsed = parse_raw(raw)
    assert_no_errors(parsed)
    assert parsed.layout == "alphavantage_daily" and len(parsed.frame) == 10


def test_several_tickers_are_fetched_one_after_the_other(av_server):
    av_server.script({"IBM": ["ibm_daily_adjusted.csv"], "MSFT": ["msft_daily_adjusted.csv"]})
    raws = make_source(av_server.url).fetch(["IBM", "MSFT", "ibm"], {})
    assert [r.ticker for r in raws] == ["IBM", "MSFT"]
    assert [r["symbol"] for r in av_server.requests] == ["IBM", "MSFT"]
    assert raws[1].content == MSFT_CSV.read_bytes()


def test_injected_client_is_used_and_left_open(av_server):
    av_server.script({"IBM": ["ibm_daily_adjusted.csv"]})
    settings = Settings(alphavantage_base_url=av_server.url)
    with httpx.Client() as client:
        src = AlphaVantageSource(settings, KEY, client=client, sleep=lambda s: None)
        src.fetch(["IBM"], {})
        assert not client.is_closed


# --- retries and errors --------------------------------------------------------------------------------------------


def test_throttled_then_success_retries_with_backoff(av_server):
    av_server.script({"IBM": ["throttle.json", "ibm_daily_adjusted.csv"]})
    sleeps: list[float] = []
    [raw] = make_source(av_server.url, sleeps).fetch(["IBM"], {})
    assert raw.content == IBM_CSV.read_bytes()
    assert sleeps == [0.5]
    assert len(av_server.requests) == 2


def test_information_answer_is_throttling_and_backoff_doubles(av_server):
    av_server.script({"IBM": ["information.json", "throttle.json", "ibm_daily_adjusted.csv"]})
    sleeps: list[float] = []
    make_source(av_server.url, sleeps).fetch(["IBM"], {})
    assert sleeps == [0.5, 1.0]


def test_throttled_beyond_max_retries_raises_throttled(av_server):
    av_server.script({"IBM": ["throttle.json"] * 3})
    sleeps: list[float] = []
    with pytest.raises(SourceError) as exc:
        make_source(av_server.url, sleeps, max_retries=2).fetch(["IBM"], {})
    assert exc.value.rule == "throttled" and exc.value.ticker == "IBM"
    assert "5 calls per minute" in str(exc.value) and "3 attempt" in str(exc.value)
    assert sleeps == [0.5, 1.0]
    assert len(av_server.requests) == 3 and not av_server.pending()


def test_no_retries_when_max_retries_is_zero(av_server):
    av_server.script({"IBM": ["throttle.json"]})
    sleeps: list[float] = []
    with pytest.raises(SourceError, match=r"\[throttled\]"):
        make_source(av_server.url, sleeps, max_retries=0).fetch(["IBM"], {})
    assert sleeps == [] and len(av_server.requests) == 1


def test_error_message_is_api_error_without_retry(av_server):
    av_server.script({"BADSYM": ["error.json"]})
    sleeps: list[float] = []
    with pytest.raises(SourceError) as exc:
        make_source(av_server.url, sleeps).fetch(["BADSYM"], {})
    assert exc.value.rule == "api_error" and exc.value.ticker == "BADSYM"
    assert "Invalid API call. Please retry or visit the documentation" in str(exc.value)
    assert sleeps == [] and len(av_server.requests) == 1


@pytest.mark.parametrize("failure", [503, 429, 500, Reply(drop=True)], ids=["503", "429", "500", "dropped"])
def test_server_error_or_transport_error_then_success(av_server, failure):
    av_server.script({"IBM": [failure, "ibm_daily_adjusted.csv"]})
    sleeps: list[float] = []
    [raw] = make_source(av_server.url, sleeps).fetch(["IBM"], {})
    assert raw.content == IBM_CSV.read_bytes() and raw.declared_size == len(raw.content)
    assert sleeps == [0.5] and len(av_server.requests) == 2


def test_persistent_503_raises_http_error(av_server):
    av_server.script({"IBM": [503, 503]})
    with pytest.raises(SourceError) as exc:
        make_source(av_server.url, max_retries=1).fetch(["IBM"], {})
    assert exc.value.rule == "http_error" and "HTTP 503" in str(exc.value)


def test_unreachable_server_raises_http_error_after_retries():
    with avserver.serve() as srv:
        url = srv.url  # a port that was just free and is closed again below
    sleeps: list[float] = []
    with pytest.raises(SourceError) as exc:
        make_source(url, sleeps, max_retries=1, timeout_seconds=2).fetch(["IBM"], {})
    assert exc.value.rule == "http_error" and "ConnectError" in str(exc.value)
    assert sleeps == [0.5]


def test_other_4xx_fails_immediately(av_server):
    av_server.script({"IBM": [Reply(body=b"forbidden", status=403, content_type="text/plain")]})
    sleeps: list[float] = []
    with pytest.raises(SourceError) as exc:
        make_source(av_server.url, sleeps).fetch(["IBM"], {})
    assert exc.value.rule == "http_error" and "HTTP 403" in str(exc.value) and "forbidden" in str(exc.value)
    assert sleeps == [] and len(av_server.requests) == 1


def test_json_for_another_symbol_is_wrong_ticker(av_server):
    av_server.script({"MSFT": ["ibm_daily_adjusted.json"]})
    with pytest.raises(SourceError) as exc:
        make_source(av_server.url, datatype="json").fetch(["MSFT"], {})
    assert exc.value.rule == "wrong_ticker" and exc.value.ticker == "MSFT" and "'IBM'" in str(exc.value)


@pytest.mark.parametrize(
    "body",
    [
        b'{"Meta Data": {"2. Symbol": "IBM"}}',
        b'{"Something": "else"}',
        b'{"Time Series (Daily)": {"2024-03-08"',
        b'["IBM"]',
    ],
    ids=["no-series", "other-keys", "truncated", "list"],
)
def test_json_without_time_series_is_unexpected_body(av_server, body):
    av_server.script({"IBM": [Reply(body=body)]})
    with pytest.raises(SourceError) as exc:
        make_source(av_server.url).fetch(["IBM"], {})
    assert exc.value.rule == "unexpected_body"


def test_json_entry_missing_a_field_is_unexpected_body_naming_the_date(av_server):
    body = {
        "Meta Data": {"2. Symbol": "IBM"},
        "Time Series (Daily)": {
            "2024-03-08": {"1. open": "1", "2. high": "1", "3. low": "1", "5. adjusted close": "1"}
        },
    }
    av_server.script({"IBM": [Reply(body=json.dumps(body).encode())]})
    with pytest.raises(SourceError, match=r"IBM: \[unexpected_body\] entry 2024-03-08 .*4\. close"):
        make_source(av_server.url, datatype="json").fetch(["IBM"], {})


# --- the API key stays secret ------------------------------------------------------------------------------------


def test_api_key_never_appears_in_errors_locations_repr_or_logs(av_server, caplog):
    caplog.set_level(logging.DEBUG)
    av_server.script(
        {
            "IBM": ["throttle.json", "ibm_daily_adjusted.csv"],
            "BADSYM": ["error.json"],
            "SLOW": ["information.json", "information.json"],
            "GONE": [Reply(body=f"no such key {KEY}".encode(), status=401, content_type="text/plain")],
            "DOWN": [Reply(drop=True), Reply(drop=True)],
            "JSON": [Reply(body=b'{"Meta Data": {"2. Symbol": "XYZ"}, "Time Series (Daily)": {}}')],
        }
    )
    src = make_source(av_server.url, max_retries=1)
    [raw] = src.fetch(["IBM"], {})
    messages = [raw.location, repr(src), str(vars(src))]
    for symbol in ("BADSYM", "SLOW", "GONE", "DOWN", "JSON"):
        with pytest.raises(SourceError) as exc:
            src.fetch([symbol], {})
        messages.append("".join(traceback.format_exception(exc.value)))  # with any chained exception
    messages += [r.getMessage() for r in caplog.records]

    assert all(r["apikey"] == KEY for r in av_server.requests)  # the key was sent ...
    assert any("apikey=***" in m for m in messages)
    assert any(r.name == "httpx" for r in caplog.records)  # ... httpx logged the URLs, redacted
    leaks = [m for m in messages if KEY in m]
    assert leaks == []


def test_redact_masks_key_parameter_and_literal():
    assert redact("GET http://x/q?symbol=IBM&apikey=abc&x=1") == "GET http://x/q?symbol=IBM&apikey=***&x=1"
    assert redact("echo abc", "abc") == "echo ***"


# --- incremental fetch -------------------------------------------------------------------------------------------


def test_incremental_requests_compact_and_keeps_newer_rows_plus_one_overlap(av_server):
    av_server.script({"IBM": ["ibm_daily_adjusted.csv"]})
    [raw] = make_source(av_server.url).fetch(["IBM"], {"IBM": date(2024, 2, 29)})

    assert av_server.requests[0]["outputsize"] == "compact"
    assert csv_dates(raw.content) == [
        "2024-03-08",
        "2024-03-07",
        "2024-03-06",
        "2024-03-05",
        "2024-03-04",
        "2024-03-01",
        "2024-02-29",
    ]
    assert raw.declared_size is None  # the body was cut, Content-Length no longer describes it
    assert raw.content.startswith(IBM_CSV.read_bytes().splitlines(keepends=True)[0])
    parsed = parse_raw(raw)
    assert_no_errors(parsed)
    assert len(parsed.frame) == 7


def test_incremental_overlap_row_is_the_latest_on_or_before_a_non_session_date(av_server):
    av_server.script({"IBM": ["ibm_daily_adjusted.csv"]})
    [raw] = make_source(av_server.url).fetch(["IBM"], {"IBM": date(2024, 3, 3)})  # a Sunday
    assert csv_dates(raw.content)[-2:] == ["2024-03-04", "2024-03-01"]


def test_incremental_up_to_date_returns_only_the_overlap_row(av_server):
    av_server.script({"IBM": ["ibm_daily_adjusted.csv"]})
    [raw] = make_source(av_server.url).fetch(["IBM"], {"IBM": date(2024, 3, 8)})
    assert csv_dates(raw.content) == ["2024-03-08"]
    assert_no_errors(parse_raw(raw))


def test_incremental_json_answer_is_cut_the_same_way(av_server):
    av_server.script({"IBM": ["ibm_daily_adjusted.json"]})
    [raw] = make_source(av_server.url, datatype="json").fetch(["IBM"], {"IBM": date(2024, 3, 6)})
    assert csv_dates(raw.content) == ["2024-03-08", "2024-03-07", "2024-03-06"]


def test_old_stored_date_requests_full(av_server):
    av_server.script({"IBM": ["ibm_daily_adjusted.csv"]})
    make_source(av_server.url).fetch(["IBM"], {"IBM": date(2023, 9, 1)})
    assert av_server.requests[0]["outputsize"] == "full"


def test_configured_outputsize_is_used_as_is(av_server):
    av_server.script({"IBM": ["ibm_daily_adjusted.csv"], "MSFT": ["msft_daily_adjusted.csv"]})
    make_source(av_server.url, outputsize="full").fetch(["IBM"], {"IBM": date(2024, 3, 1)})
    make_source(av_server.url, outputsize="compact").fetch(["MSFT"], {})
    assert [r["outputsize"] for r in av_server.requests] == ["full", "compact"]


def test_compact_answer_without_overlap_is_refetched_in_full(av_server):
    recent = b"".join(IBM_CSV.read_bytes().splitlines(keepends=True)[:6])  # header + 5 newest rows
    av_server.script({"IBM": [Reply(body=recent), "ibm_daily_adjusted.csv"]})
    [raw] = make_source(av_server.url).fetch(["IBM"], {"IBM": date(2024, 2, 1)})
    assert [r["outputsize"] for r in av_server.requests] == ["compact", "full"]
    assert csv_dates(raw.content)[-1] == "2024-02-01"


def test_stored_last_keys_are_matched_case_insensitively(av_server):
    av_server.script({"IBM": ["ibm_daily_adjusted.csv"]})
    [raw] = make_source(av_server.url).fetch(["ibm"], {"ibm": pd.Timestamp("2024-03-07")})
    assert csv_dates(raw.content) == ["2024-03-08", "2024-03-07"]


def test_choose_outputsize():
    assert choose_outputsize("auto", None, TODAY) == "full"
    assert choose_outputsize("auto", date(2023, 10, 21), TODAY) == "compact"  # 140 days
    assert choose_outputsize("auto", date(2023, 10, 20), TODAY) == "full"
    assert choose_outputsize("full", date(2024, 3, 8), TODAY) == "full"
    assert choose_outputsize("compact", None, TODAY) == "compact"


def test_keep_incremental_keeps_unreadable_dates_and_line_endings():
    content = b"timestamp,close\r\n2024-03-08,2\r\nnot-a-date,9\r\n2024-03-06,1\r\n2024-03-05,0\r\n"
    kept, overlapped = keep_incremental(content, date(2024, 3, 7))
    assert kept == b"timestamp,close\r\n2024-03-08,2\r\nnot-a-date,9\r\n2024-03-06,1\r\n" and overlapped
    assert keep_incremental(b"a,b\r\n1,2\r\n", date(2024, 1, 1)) == (b"a,b\r\n1,2\r\n", False)


# --- usage errors --------------------------------------------------------------------------------------------------


def test_missing_api_key_is_a_usage_error(monkeypatch):
    monkeypatch.delenv(ALPHAVANTAGE_KEY_ENV, raising=False)
    with pytest.raises(UsageError, match=ALPHAVANTAGE_KEY_ENV):
        AlphaVantageSource(Settings())
    monkeypatch.setenv(ALPHAVANTAGE_KEY_ENV, "  ")
    with pytest.raises(UsageError, match=ALPHAVANTAGE_KEY_ENV):
        AlphaVantageSource(Settings())


def test_api_key_from_environment(av_server, monkeypatch):
    monkeypatch.setenv(ALPHAVANTAGE_KEY_ENV, "ENVKEY42")
    av_server.script({"IBM": ["ibm_daily_adjusted.csv"]})
    src = make_source(av_server.url, api_key=None)
    src.fetch(["IBM"], {})
    assert av_server.requests[0]["apikey"] == "ENVKEY42"
    assert "ENVKEY42" not in repr(src)


@pytest.mark.parametrize("tickers", [None, []])
def test_tickers_are_required(tickers):
    src = make_source("http://127.0.0.1:9/query")
    with pytest.raises(UsageError, match="--tickers is required for alphavantage"):
        src.fetch(tickers, {})


def test_invalid_ticker_is_a_usage_error():
    with pytest.raises(UsageError, match="invalid ticker 'IB M'"):
        make_source("http://127.0.0.1:9/query").fetch(["IB M"], {})


def test_non_http_base_url_is_a_config_error():
    with pytest.raises(ConfigError, match="alphavantage_base_url"):
        make_source("ftp://example.invalid/query")
