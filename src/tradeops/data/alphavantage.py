"""Alpha Vantage daily bars over HTTP (``TIME_SERIES_DAILY_ADJUSTED`` / ``TIME_SERIES_DAILY``, CSV or JSON).

Every payload comes back as CSV bytes in Alpha Vantage's CSV layout (newest row first), whatever ``datatype`` was
requested: a JSON time series is converted, a CSV body is passed through. Dates are the exchange's trading dates
(US/Eastern), prices in the listing currency. Alpha Vantage reports errors and throttling as a JSON body with HTTP 200
even in CSV mode, so answers are classified by content, never by the requested datatype.

The API key is a secret: it is sent as the ``apikey`` query parameter and never appears in a message, a log line, a
``RawFile.location`` or a repr (it is shown as ``apikey=***``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import time
from collections.abc import Callable
from datetime import date, datetime

import httpx

from tradeops.config import ALPHAVANTAGE_KEY_ENV, Settings
from tradeops.data.raw import RawFile
from tradeops.errors import ConfigError, SourceError, UsageError

logger = logging.getLogger(__name__)

#: A stored last date at most this many calendar days old (about 100 trading days) is served by ``compact``.
AUTO_COMPACT_DAYS = 140
TIME_SERIES_KEY = "Time Series (Daily)"
REDACTED = "***"

ADJUSTED_HEADER = (
    "timestamp",
    "open",
    "high",
    "low",
    "close",
    "adjusted_close",
    "volume",
    "dividend_amount",
    "split_coefficient",
)
DAILY_HEADER = ("timestamp", "open", "high", "low", "close", "volume")
_ADJUSTED_KEYS = (
    "1. open",
    "2. high",
    "3. low",
    "4. close",
    "5. adjusted close",
    "6. volume",
    "7. dividend amount",
    "8. split coefficient",
)
_DAILY_KEYS = ("1. open", "2. high", "3. low", "4. close", "5. volume")
_THROTTLE_KEYS = ("Note", "Information")
_KEY_PARAM = re.compile(r"(apikey=)[^&\s'\"<>]*", re.IGNORECASE)
_TICKER = re.compile(r"^[A-Z0-9][A-Z0-9.\-_:^=]{0,31}$")


class _Secret:
    """A string that never shows itself in ``repr``/``str`` (so tracebacks with locals stay clean)."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__


class _RedactApiKey(logging.Filter):
    """Rewrites ``apikey=...`` to ``apikey=***`` in records of the logger it is attached to (httpx logs URLs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: let logging report it as usual
            return True
        if "apikey=" in message.lower():
            record.msg = _KEY_PARAM.sub(rf"\g<1>{REDACTED}", message)
            record.args = None
        return True


def _install_log_redaction() -> None:
    """Attach the redacting filter to the HTTP client's loggers once (httpx logs each request URL at INFO)."""
    for name in ("httpx", "httpcore"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, _RedactApiKey) for f in lg.filters):
            lg.addFilter(_RedactApiKey())


def redact(text: str, api_key: str | None = None) -> str:
    """``text`` with any ``apikey=`` value, and the literal key when given, replaced by ``***``."""
    out = _KEY_PARAM.sub(rf"\g<1>{REDACTED}", text)
    if api_key:
        out = out.replace(api_key, REDACTED)
    return out


def choose_outputsize(configured: str, last: date | None, today: date) -> str:
    """``configured`` unless it is ``auto``: then ``compact`` (latest ~100 bars) when ``last`` is at most
    :data:`AUTO_COMPACT_DAYS` calendar days before ``today``, else ``full``."""
    if configured != "auto":
        return configured
    if last is not None and (today - last).days <= AUTO_COMPACT_DAYS:
        return "compact"
    return "full"


def keep_incremental(content: bytes, last: date) -> tuple[bytes, bool]:
    """Keep the header, rows dated after ``last`` and one overlap row (the latest dated on or before ``last``).

    Works on CSV bytes whose date column is ``timestamp`` or ``date``; row order and line endings are preserved.
    Rows whose date cannot be read are kept so the ingestion checks report them. Returns the bytes and whether an
    overlap row was found. A body without a recognisable date column is returned unchanged.
    """
    lines = content.splitlines(keepends=True)
    if not lines:
        return content, False
    header = [h.strip().lower() for h in lines[0].decode("utf-8-sig", errors="replace").split(",")]
    col = next((i for i, h in enumerate(header) if h in ("timestamp", "date")), None)
    if col is None:
        return content, False
    dated: list[tuple[int, date | None]] = []
    for i, line in enumerate(lines[1:], start=1):
        if not line.strip():
            continue
        fields = line.decode("utf-8", errors="replace").split(",")
        try:
            d: date | None = date.fromisoformat(fields[col].strip()) if col < len(fields) else None
        except ValueError:
            d = None
        dated.append((i, d))
    older = [(d, i) for i, d in dated if d is not None and d <= last]
    overlap = max(older)[1] if older else None
    keep = {i for i, d in dated if d is None or d > last or i == overlap}
    kept = b"".join([lines[0], *(lines[i] for i, _ in dated if i in keep)])
    return kept, overlap is not None


def series_to_csv(ticker: str, body: dict) -> bytes:
    """Alpha Vantage JSON ``Time Series (Daily)`` -> CSV bytes in its CSV layout, newest first.

    The layout (adjusted or plain daily) follows the fields present. Raises ``SourceError`` (rule
    ``unexpected_body``) naming ticker and date when an entry lacks a field.
    """
    series = body.get(TIME_SERIES_KEY)
    if not isinstance(series, dict):
        raise SourceError(f"{TIME_SERIES_KEY!r} is not an object", ticker=ticker, rule="unexpected_body")
    entries = list(series.items())
    adjusted = any(isinstance(v, dict) and "5. adjusted close" in v for _, v in entries[:1])
    keys, header = (_ADJUSTED_KEYS, ADJUSTED_HEADER) if adjusted else (_DAILY_KEYS, DAILY_HEADER)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for day, values in sorted(entries, key=lambda kv: kv[0], reverse=True):
        if not isinstance(values, dict):
            raise SourceError(
                f"entry {day} of {TIME_SERIES_KEY!r} is not an object", ticker=ticker, rule="unexpected_body"
            )
        missing = [k for k in keys if k not in values]
        if missing:
            raise SourceError(
                f"entry {day} of {TIME_SERIES_KEY!r} lacks {missing}", ticker=ticker, rule="unexpected_body"
            )
        writer.writerow([day, *(str(values[k]).strip() for k in keys)])
    return buf.getvalue().encode("utf-8")


def _json_body(ticker: str, content: bytes, location: str) -> dict | None:
    """The body as a JSON object when it looks like JSON (decided by content); ``None`` for anything else (CSV).

    JSON that does not decode to an object is a ``SourceError`` (rule ``unexpected_body``).
    """
    if content.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        body = json.loads(content)
    except ValueError as exc:
        raise SourceError(f"invalid JSON ({exc}) from {location}", ticker=ticker, rule="unexpected_body") from None
    if not isinstance(body, dict):
        raise SourceError(
            f"JSON {type(body).__name__}, not an object, from {location}", ticker=ticker, rule="unexpected_body"
        )
    return body


class AlphaVantageSource:
    """Daily bars from the Alpha Vantage REST API, one request at a time, with retries on throttling.

    ``fetch`` returns one :class:`RawFile` per ticker with CSV bytes (Alpha Vantage CSV layout, newest first). When a
    last stored date is known only the newer rows plus one overlap row (the latest on or before it) are kept, so the
    ingestion can compare raw values with the store and notice a changed adjustment.
    """

    name = "alphavantage"

    def __init__(
        self,
        settings: Settings,
        api_key: str | None = None,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        today: Callable[[], date] = date.today,
    ):
        key = (api_key if api_key is not None else os.environ.get(ALPHAVANTAGE_KEY_ENV, "")).strip()
        if not key:
            raise UsageError(
                f"no Alpha Vantage API key: set {ALPHAVANTAGE_KEY_ENV} in the environment "
                "(free key at https://www.alphavantage.co/support/#api-key)"
            )
        self.base_url = settings.alphavantage_base_url
        try:
            scheme = httpx.URL(self.base_url).scheme
        except httpx.InvalidURL as exc:
            raise ConfigError(f"alphavantage_base_url {self.base_url!r} is not a URL: {exc}") from None
        if scheme not in ("http", "https"):
            raise ConfigError(f"alphavantage_base_url {self.base_url!r} must be an http(s) URL")
        self.config = settings.alphavantage
        self._key = _Secret(key)
        self._client = client
        self._sleep = sleep
        self._today = today
        _install_log_redaction()

    def __repr__(self) -> str:
        return (
            f"AlphaVantageSource(base_url={self.base_url!r}, function={self.config.function!r}, "
            f"datatype={self.config.datatype!r}, apikey={REDACTED})"
        )

    def location(self, ticker: str, outputsize: str) -> str:
        """The request URL with the key shown as ``***``."""
        url = httpx.URL(self.base_url).copy_merge_params(self._params(ticker, outputsize, with_key=False))
        return f"{url}{'&' if url.query else '?'}apikey={REDACTED}"

    def fetch(self, tickers: list[str] | None, stored_last: dict[str, date]) -> list[RawFile]:
        """Raw CSV payloads for ``tickers`` (required); ``stored_last`` maps ticker -> last stored trading date."""
        wanted = self._tickers(tickers)
        last_by = {
            str(k).strip().upper(): (v.date() if isinstance(v, datetime) else v) for k, v in (stored_last or {}).items()
        }
        client = self._client if self._client is not None else httpx.Client(timeout=self.config.timeout_seconds)
        try:
            return [self._fetch_one(client, t, last_by.get(t)) for t in wanted]
        finally:
            if self._client is None:
                client.close()

    def _tickers(self, tickers: list[str] | None) -> list[str]:
        if not tickers:
            raise UsageError("--tickers is required for alphavantage")
        out = []
        for raw in tickers:
            t = str(raw).strip().upper()
            if not _TICKER.match(t):
                raise UsageError(f"invalid ticker {raw!r} for alphavantage: use symbols like IBM, BRK.B, TSCO.LON")
            out.append(t)
        return list(dict.fromkeys(out))

    def _params(self, ticker: str, outputsize: str, *, with_key: bool = True) -> dict[str, str]:
        params = {
            "function": self.config.function,
            "symbol": ticker,
            "outputsize": outputsize,
            "datatype": self.config.datatype,
        }
        if with_key:
            params["apikey"] = self._key.reveal()
        return params

    def _fetch_one(self, client: httpx.Client, ticker: str, last: date | None) -> RawFile:
        size = choose_outputsize(self.config.outputsize, last, self._today())
        raw = self._download(client, ticker, size)
        if last is None:
            return raw
        content, overlapped = keep_incremental(raw.content, last)
        if not overlapped and size == "compact" and self.config.outputsize == "auto":
            # compact holds ~100 bars: without an overlap row there may be a gap, so ask for the whole history.
            logger.info("%s: compact answer does not reach back to %s; requesting outputsize=full", ticker, last)
            raw = self._download(client, ticker, "full")
            content, overlapped = keep_incremental(raw.content, last)
        if content == raw.content:
            return raw
        return RawFile(
            ticker=raw.ticker,
            content=content,
            source=raw.source,
            location=raw.location,
            declared_size=None,
            fetched_at=raw.fetched_at,
            fmt_hint=raw.fmt_hint,
        )

    def _download(self, client: httpx.Client, ticker: str, outputsize: str) -> RawFile:
        """One ticker's payload, retrying throttling, 429/5xx and transport errors with exponential backoff."""
        location = self.location(ticker, outputsize)
        cfg = self.config
        attempts = cfg.max_retries + 1
        problem, rule = "", "http_error"
        for attempt in range(attempts):
            if attempt:
                delay = cfg.backoff_seconds * 2 ** (attempt - 1)
                logger.warning("%s: %s; retry %d/%d in %.1f s", ticker, problem, attempt, cfg.max_retries, delay)
                self._sleep(delay)
            logger.info("GET %s", location)
            try:
                response = client.get(
                    self.base_url, params=self._params(ticker, outputsize), timeout=cfg.timeout_seconds
                )
            except httpx.UnsupportedProtocol as exc:
                raise SourceError(
                    f"cannot request {location}: {self._clean(exc)}", ticker=ticker, rule="http_error"
                ) from None
            except httpx.RequestError as exc:  # transport errors, timeouts, undecodable bodies
                problem, rule = f"{type(exc).__name__}: {self._clean(exc)}", "http_error"
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                problem, rule = f"HTTP {status}", "http_error"
                continue
            if not 200 <= status < 300:
                raise SourceError(
                    f"HTTP {status} from {location}: {self._snippet(response.content)}",
                    ticker=ticker,
                    rule="http_error",
                )
            body = _json_body(ticker, response.content, location)
            if body is None:
                return self._raw(ticker, response.content, location, self._declared(response))
            if "Error Message" in body:
                raise SourceError(
                    f"Alpha Vantage refused {location}: {self._clean(body['Error Message'])!r} "
                    "(unknown symbol or invalid API key?)",
                    ticker=ticker,
                    rule="api_error",
                )
            throttle = next((k for k in _THROTTLE_KEYS if k in body), None)
            if throttle is not None:
                problem, rule = f"throttled ({throttle}: {self._clean(body[throttle])!r})", "throttled"
                continue
            if TIME_SERIES_KEY in body:
                self._check_symbol(ticker, body)
                return self._raw(ticker, series_to_csv(ticker, body), location, None)
            raise SourceError(
                f"JSON answer without {TIME_SERIES_KEY!r} from {location}; keys: {sorted(body)[:8]}",
                ticker=ticker,
                rule="unexpected_body",
            )
        raise SourceError(
            f"{problem} from {location}; gave up after {attempts} attempt(s) "
            f"(alphavantage.max_retries={cfg.max_retries})",
            ticker=ticker,
            rule=rule,
        )

    def _check_symbol(self, ticker: str, body: dict) -> None:
        meta = body.get("Meta Data")
        symbol = meta.get("2. Symbol") if isinstance(meta, dict) else None
        if not isinstance(symbol, str):
            raise SourceError("JSON answer has no 'Meta Data' '2. Symbol'", ticker=ticker, rule="unexpected_body")
        if symbol.strip().upper() != ticker.upper():
            raise SourceError(
                f"asked for {ticker} but the answer is for {symbol.strip()!r}", ticker=ticker, rule="wrong_ticker"
            )

    def _raw(self, ticker: str, content: bytes, location: str, declared: int | None) -> RawFile:
        return RawFile(
            ticker=ticker, content=content, source=self.name, location=location, declared_size=declared, fmt_hint="csv"
        )

    @staticmethod
    def _declared(response: httpx.Response) -> int | None:
        """Content-Length, only when it describes the bytes we hold (not a compressed transfer size)."""
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        value = response.headers.get("content-length")
        if value is None or encoding not in ("", "identity"):
            return None
        try:
            return int(value)
        except ValueError:
            return None

    def _clean(self, value: object) -> str:
        return redact(str(value), self._key.reveal())

    def _snippet(self, content: bytes) -> str:
        text = content[:200].decode("utf-8", errors="replace").strip()
        return repr(self._clean(text)) if text else "(empty body)"
