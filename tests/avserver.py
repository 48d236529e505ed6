"""A local Alpha Vantage replay server for tests: scripted answers per symbol, no network.

Usage: ``from avserver import Reply, av_server`` in a test module (``tests/`` is on ``sys.path`` because
``tests/conftest.py`` exists; importing the fixture makes it available in that module), or ``with serve() as srv:``::

    av_server.script({"IBM": ["throttle.json", "ibm_daily_adjusted.csv"], "BADSYM": ["error.json"]})
    settings = Settings(alphavantage_base_url=av_server.url)
    ...
    assert av_server.requests[0]["outputsize"] == "full"

Each request pops the next answer of its ``symbol``'s queue. An answer is a fixture file name (looked up in
``tests/fixtures/alphavantage``, served with HTTP 200 and a Content-Length), an ``int`` HTTP status (e.g. ``503``,
served once with a small body), or a :class:`Reply` for anything else (inline body, headers, a dropped connection).
A request without ``apikey`` gets Alpha Vantage's own error answer; a symbol whose queue is empty gets HTTP 404 with a
body that says so, which the client turns into an immediate error. The server never logs request lines (they carry
the key).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "alphavantage"
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
MISSING_KEY_BODY = (
    b'{\n    "Error Message": "the parameter apikey is invalid or missing. Please claim your free API key '
    b'on (https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."\n}\n'
)


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``file`` (a fixture name or path) or ``body``; ``drop`` closes the connection unanswered."""

    file: str | Path | None = None
    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    drop: bool = False

    def payload(self, fixtures: Path) -> tuple[bytes, str]:
        if self.file is None:
            ctype = self.content_type or ("application/json" if self.body.lstrip()[:1] == b"{" else "text/csv")
            return self.body, ctype
        path = Path(self.file)
        path = path if path.is_absolute() else fixtures / path
        ctype = self.content_type or ("application/json" if path.suffix == ".json" else "application/x-download")
        return path.read_bytes(), ctype


Answer = str | Path | int | Reply


def as_reply(answer: Answer) -> Reply:
    """Normalise a script entry (file name, status code or :class:`Reply`)."""
    if isinstance(answer, Reply):
        return answer
    if isinstance(answer, int):
        return Reply(body=f"HTTP {answer} (scripted)\n".encode(), status=answer, content_type="text/plain")
    return Reply(file=answer)


class AVServer:
    """The running server: ``url`` to point the client at, ``script()`` to queue answers, ``requests`` seen."""

    def __init__(self, fixtures: Path = FIXTURES):
        self.fixtures = fixtures
        self.requests: list[dict[str, str]] = []
        self.unscripted: list[str] = []
        self._queues: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}/query"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="avserver", daemon=True
        )

    def script(self, mapping: Mapping[str, Sequence[Answer]]) -> None:
        """Queue answers per symbol (appended to what is already queued for that symbol)."""
        with self._lock:
            for symbol, answers in mapping.items():
                self._queues.setdefault(symbol.upper(), deque()).extend(as_reply(a) for a in answers)

    def pending(self) -> dict[str, int]:
        """Answers not yet served, per symbol."""
        with self._lock:
            return {s: len(q) for s, q in self._queues.items() if q}

    def _next(self, params: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append(params)
            if not params.get("apikey"):
                return Reply(body=MISSING_KEY_BODY)
            symbol = params.get("symbol", "").upper()
            queue = self._queues.get(symbol)
            if queue:
                return queue.popleft()
            self.unscripted.append(symbol)
            return Reply(
                body=f"avserver: no scripted answer left for symbol {symbol!r}\n".encode(),
                status=404,
                content_type="text/plain",
            )

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
                reply = server._next(params)
                if reply.drop:
                    self.close_connection = True
                    return
                body, ctype = reply.payload(server.fixtures)
                self.send_response(reply.status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return  # request lines carry the API key: never log them

        return Handler

    def start(self) -> AVServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@contextmanager
def serve(fixtures: Path = FIXTURES) -> Iterator[AVServer]:
    """Run an :class:`AVServer` on 127.0.0.1 (ephemeral port) for the duration of the block."""
    srv = AVServer(fixtures).start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def av_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[AVServer]:
    """A running replay server; proxy variables are cleared so requests to 127.0.0.1 stay local."""
    for var in PROXY_ENV:
        monkeypatch.delenv(var, raising=False)
    with serve() as srv:
        yield srv
