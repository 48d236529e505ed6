"""Alert webhook: JSON POSTed to a local receiver; failures name the host and status, never the secret path."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeops.deploy.notify import post_alert, redact, run_failure_alert, webhook_host
from tradeops.errors import TradeopsError
from webhook import webhook_receiver


def test_post_alert_delivers_the_json_body():
    payload = run_failure_alert(job="train", run_id="r1", partition="2024-07-05", error="boom", dagster_url="u")
    with webhook_receiver() as hook:
        assert post_alert(hook.url, payload) == 200
    assert hook.bodies == [
        {
            "event": "run_failure",
            "job": "train",
            "run_id": "r1",
            "partition": "2024-07-05",
            "error": "boom",
            "dagster_url": "u",
        }
    ]


def test_non_2xx_names_host_and_status_not_the_token_path():
    with webhook_receiver("/hook/s3cr3t-token") as hook:
        hook.status = 500
        with pytest.raises(TradeopsError) as err:
            post_alert(hook.url, {"event": "x"})
    msg = str(err.value)
    assert "[webhook_status]" in msg and "500" in msg and webhook_host(hook.url) in msg
    assert "s3cr3t" not in msg


def test_refused_connection_is_a_tradeops_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(TradeopsError, match=r"127\.0\.0\.1:\d+: \[webhook_unreachable\]"):
        post_alert(f"http://127.0.0.1:{port}/x", {"event": "x"}, timeout=2)


def test_non_http_url_is_refused():
    with pytest.raises(TradeopsError, match=r"\[webhook_url\]"):
        post_alert("file:///etc/passwd", {})


def test_alert_error_hides_api_keys_and_url_passwords(monkeypatch):
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "KEY123456")
    text = (
        "GET https://www.alphavantage.co/query?function=X&apikey=ABCDEF failed; db postgresql://bob:hunter2@db/x; "
        "key KEY123456 rejected"
    )
    out = run_failure_alert(job="j", run_id="r", partition=None, error=text, dagster_url=None)["error"]
    assert "ABCDEF" not in out and "hunter2" not in out and "KEY123456" not in out
    assert "apikey=***" in out and "bob:***@" in out


def test_alert_error_is_cut_to_a_bounded_size():
    assert len(redact("x" * 10_000)) == 2000


@given(st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122).filter(str.isalnum), min_size=1))
def test_redact_never_leaks_a_query_secret(secret):
    assert f"token={secret}" not in redact(f"https://h/p?a=1&token={secret}&b=2")
