"""Alerts: a JSON payload POSTed to a webhook (Slack-style incoming hooks, a pager bridge, a test receiver).

Payloads never carry secrets: text that goes out (an error message, a URL) is passed through :func:`redact` first.
Errors name the webhook's host and the HTTP status only, never the full URL (a hook's path is often its token).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tradeops.config import ALPHAVANTAGE_KEY_ENV
from tradeops.errors import TradeopsError

DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_TEXT = 2000  # characters of an error kept in a payload (a traceback can be megabytes)

_SECRET_QUERY = re.compile(r"(?i)\b(api[_-]?key|apikey|token|access[_-]?token|password|passwd|secret)=([^&\s'\"]+)")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@]+):([^/\s@]+)@")
_ENV_SECRETS = (ALPHAVANTAGE_KEY_ENV,)


def redact(text: str, *, limit: int | None = MAX_TEXT) -> str:
    """``text`` with secrets masked: ``key=value`` query secrets, ``user:password@`` in URLs and the values of
    secret environment variables; cut to ``limit`` characters (``None``: no cut)."""
    out = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", text)
    out = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}:***@", out)
    for name in _ENV_SECRETS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            out = out.replace(value, "***")
    if limit is not None and len(out) > limit:
        out = out[: limit - 3] + "..."
    return out


def webhook_host(url: str) -> str:
    """``host[:port]`` of a webhook URL: what messages name instead of the URL itself."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def run_failure_alert(
    *, job: str, run_id: str, partition: str | None, error: str, dagster_url: str | None
) -> dict[str, Any]:
    """The JSON body of a run-failure alert (``event = "run_failure"``); ``error`` is redacted and cut."""
    return {
        "event": "run_failure",
        "job": job,
        "run_id": run_id,
        "partition": partition,
        "error": redact(error),
        "dagster_url": dagster_url,
    }


def post_alert(url: str, payload: Mapping[str, Any], *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> int:
    """POST ``payload`` as JSON to ``url`` (``timeout`` seconds for connect and read); returns the HTTP status.

    A refused connection, a timeout or a non-2xx answer is a :class:`TradeopsError` naming the host and the status.
    """
    import httpx

    scheme = urlsplit(url).scheme
    host = webhook_host(url)
    if scheme not in ("http", "https"):
        raise TradeopsError(f"alert webhook {host}: [webhook_url] must be an http(s) URL, got scheme {scheme!r}")
    try:
        response = httpx.post(url, json=dict(payload), timeout=timeout)
    except httpx.TimeoutException as exc:
        raise TradeopsError(f"alert webhook {host}: [webhook_timeout] no answer within {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise TradeopsError(
            f"alert webhook {host}: [webhook_unreachable] {type(exc).__name__}: {redact(str(exc), limit=200)}"
        ) from exc
    if not 200 <= response.status_code < 300:
        raise TradeopsError(
            f"alert webhook {host}: [webhook_status] answered HTTP {response.status_code} "
            f"({redact(response.text, limit=200)!r})"
        )
    return response.status_code


@dataclass
class LocalReceiver:
    """A webhook receiver on 127.0.0.1 (the demo's alert target): ``url`` and every JSON body POSTed to it."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def local_receiver() -> Iterator[LocalReceiver]:
    """Run a :class:`LocalReceiver` in a thread for the duration of the block."""
    receiver = LocalReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", 0))
            receiver.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/tradeops-alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
