"""`tradeops ingest --source alphavantage` against the local replay server (no network)."""

from __future__ import annotations

from avserver import av_server  # noqa: F401  (the fixture)

KEY = "SECRETKEY123"


def _env(server) -> dict[str, str]:
    return {
        "TRADEOPS_ALPHAVANTAGE_BASE_URL": server.url,
        "ALPHAVANTAGE_API_KEY": KEY,
        "TRADEOPS_ALPHAVANTAGE__BACKOFF_SECONDS": "0",
    }


def test_ingest_ibm_msft_with_a_throttled_answer_that_succeeds_on_retry(av_server, tradeops, tmp_path):  # noqa: F811
    av_server.script({"IBM": ["throttle.json", "ibm_daily_adjusted.csv"], "MSFT": ["msft_daily_adjusted.csv"]})
    r = tradeops(
        tmp_path / "h", "ingest", "--source", "alphavantage", "--tickers", "IBM,MSFT", "--json", env=_env(av_server)
    )
    assert r.exit_code == 0, r.output
    report = r.json()
    assert {t["ticker"]: t["status"] for t in report["tickers"]} == {
        "IBM": "accepted_with_warnings",
        "MSFT": "accepted_with_warnings",
    }  # short history (47 rows) warns
    msft = next(t for t in report["tickers"] if t["ticker"] == "MSFT")
    assert any(e["type"] == "split" and e["date"] == "2024-02-21" for e in msft["events"])
    assert len([q for q in av_server.requests if q["symbol"] == "IBM"]) == 2
    assert KEY not in r.output and "apikey=***" in msft["provenance"]["location"]


def test_error_message_answer_fails_clearly_and_stores_nothing(av_server, tradeops, tmp_path):  # noqa: F811
    av_server.script({"BADSYM": ["error.json"]})
    r = tradeops(tmp_path / "h", "ingest", "--source", "alphavantage", "--tickers", "BADSYM", env=_env(av_server))
    assert r.exit_code == 1
    assert "BADSYM" in r.output and "api_error" in r.output and "Invalid API call" in r.output
    assert KEY not in r.output
    assert not (tmp_path / "h" / "lake" / "bars").exists()


def test_missing_key_and_missing_tickers_are_usage_errors(av_server, tradeops, tmp_path):  # noqa: F811
    env = _env(av_server) | {"ALPHAVANTAGE_API_KEY": None}
    assert tradeops(tmp_path / "h", "ingest", "--source", "alphavantage", "--tickers", "IBM", env=env).exit_code == 2
    r = tradeops(tmp_path / "h", "ingest", "--source", "alphavantage", env=_env(av_server))
    assert r.exit_code == 2 and "--tickers" in r.output
