"""Answering signal requests: input -> feature row -> routed champion/challenger scores -> durable log row -> answer.

The domain half of the signal service (the HTTP wiring is :mod:`tradeops.deploy.service`). No web framework, no
torch, no onnx, and no pandas on the ``as_of`` path: a stored feature row is a numpy view
(:class:`~tradeops.deploy.features_cache.StoredFeatures`) scored by ``bundle.score``.

Time conventions: ``as_of`` is an exchange trading date; its signal uses bars dated ``<= as_of`` (the close of
``as_of``). "Today" is the exchange-local date of the service clock (tz-aware UTC). Latencies are milliseconds.

Every answer is logged BEFORE it is returned (:meth:`PredictionLog.awrite` waits for the commit). Bad client input
raises :class:`RequestError` (4xx naming the field and the rule), never anything that reads as a server fault.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, NoReturn

import numpy as np

from tradeops.config import Settings
from tradeops.data.calendar import EXCHANGE_TZ, trading_dates
from tradeops.data.store import BARS, Lake
from tradeops.deploy.explain import explain
from tradeops.deploy.features_cache import StoredFeatures
from tradeops.deploy.metrics import ServiceMetrics
from tradeops.deploy.models import CHALLENGER, CHAMPION, ModelManager, ServedModel
from tradeops.deploy.predlog import PredictionLog, PredictionRecord, read_state, write_state
from tradeops.deploy.routing import RoutingState, validate_routing
from tradeops.errors import TradeopsError, UsageError
from tradeops.features.labels import CLASSES

log = logging.getLogger("tradeops.deploy.signals")

INPUT_KINDS = ("as_of", "bars", "features")


class RequestError(UsageError):
    """A request the service cannot answer as asked: HTTP ``status`` (4xx), the ``field`` (``body.ticker``) and the
    ``rule`` it broke."""

    def __init__(self, status: int, field: str, rule: str, message: str) -> None:
        super().__init__(f"{field}: [{rule}] {message}")
        self.status, self.field, self.rule, self.message = status, field, rule, message

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field, "rule": self.rule, "status": self.status}


@dataclass(frozen=True)
class BarIn:
    """One caller-supplied daily bar (prices already split/dividend adjusted, like the stored ``adj_*``)."""

    date: date
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class SignalInput:
    """One request: a ticker and exactly one of ``as_of`` / ``bars`` / ``features``. ``field`` prefixes the field
    names of errors (``body`` for a single request, ``body.items.3`` in a batch)."""

    ticker: str
    as_of: date | None = None
    bars: Sequence[BarIn] | None = None
    features: Mapping[str, float] | None = None
    field: str = "body"

    @property
    def kind(self) -> str:
        return "as_of" if self.as_of is not None else "bars" if self.bars is not None else "features"


@dataclass
class Prepared:
    """A resolved, validated input: the served model, the feature row in the champion's order and its date."""

    item: SignalInput
    served: ServedModel
    row: np.ndarray
    as_of: date | None
    received_at: datetime
    t0: float


@dataclass
class HaltState:
    halted: bool = False
    reason: str | None = None
    since: datetime | None = None
    key_id: str | None = None


def row_bytes(row: np.ndarray) -> bytes:
    """The canonical feature vector: float64 little-endian bytes in the model's feature order (what the log
    stores and what :func:`input_hash` hashes)."""
    return np.ascontiguousarray(row, dtype="<f8").tobytes()


def input_hash(row: np.ndarray | bytes) -> str:
    """sha256 hex of the canonical feature vector (:func:`row_bytes`; bytes are taken as already canonical)."""
    return hashlib.sha256(row if isinstance(row, bytes) else row_bytes(row)).hexdigest()


@lru_cache(maxsize=64)
def _sessions(calendar: str, year: int) -> frozenset[date]:
    return frozenset(trading_dates(date(year, 1, 1), date(year, 12, 31), calendar))


def is_session(day: date, calendar: str) -> bool:
    """Whether ``day`` is a session of ``calendar`` (one calendar lookup per year, then a set membership)."""
    return day in _sessions(calendar, day.year)


def bar_ranges(lake: Lake) -> dict[str, tuple[date, date]]:
    """First and last stored bar date per ticker (empty when no bars are stored)."""
    if not lake.exists(BARS):
        return {}
    tbl = lake.arrow(BARS, columns=["ticker", "date"])
    out: dict[str, tuple[date, date]] = {}
    for t, d in zip(tbl.column("ticker").to_pylist(), tbl.column("date").to_pylist(), strict=True):
        d = d.date() if isinstance(d, datetime) else d
        lo, hi = out.get(t, (d, d))
        out[t] = (min(lo, d), max(hi, d))
    return out


def proba_dict(p: np.ndarray) -> dict[str, float]:
    return {c: float(v) for c, v in zip(CLASSES, p.tolist(), strict=True)}


class SignalService:
    """The state of one service process: models (via :class:`ModelManager`), stored feature caches, routing, the
    kill switch, the prediction log and the metrics. ``answer``/``answer_batch`` are what the endpoints call."""

    def __init__(
        self,
        settings: Settings,
        manager: ModelManager,
        *,
        lake: Lake,
        predlog: PredictionLog,
        metrics: ServiceMetrics,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = settings.service
        self.manager = manager
        self.lake = lake
        self.predlog = predlog
        self.metrics = metrics
        self.clock = clock or (lambda: datetime.now(UTC))
        self.routing = RoutingState(self.cfg.routing_mode, self.cfg.canary_share)
        self.halt = HaltState()
        self._state_read_at = -math.inf
        self.sync_state()  # a restarted worker comes back halted if the service was halted
        self._caches: dict[tuple[str, str], StoredFeatures] = {}
        self._ranges: dict[str, tuple[date, date]] = {}
        self._bars_version: int | None = None
        self.refresh_data()

    # --- data ------------------------------------------------------------------------------------------------

    def refresh_data(self) -> None:
        """Load feature caches for every served feature set (new ones) and refresh changed tables and bar ranges."""
        for served in self.manager.current.models.values():
            self._cache_for(served)
        for cache in list(self._caches.values()):
            try:
                cache.refresh()
            except Exception:  # noqa: BLE001 - a failed refresh keeps the loaded rows; misses fall back to bars
                log.exception("refreshing the stored features of %s failed", cache.feature_set.table)
        version = self.lake.version(BARS) if self.lake.exists(BARS) else None
        if version != self._bars_version:
            self._ranges = bar_ranges(self.lake)
            self._bars_version = version

    def _cache_for(self, served: ServedModel) -> StoredFeatures:
        # The bundle's recorded feature-set version and layout fingerprint are plain attributes; FeatureSet.version
        # re-hashes every definition (~0.25 ms) and must stay off the request path.
        key = (served.champion.feature_set_version, served.champion.layout.fingerprint)
        cache = self._caches.get(key)
        if cache is None:
            cache = StoredFeatures(self.lake, served.feature_set, columns=served.champion.feature_names)
            self._caches[key] = cache
        return cache

    def today(self) -> date:
        """The exchange-local date of the service clock."""
        return self.clock().astimezone(EXCHANGE_TZ).date()

    # --- admin state ------------------------------------------------------------------------------------------

    # Halt and routing live in the service database (``service_state``), so every worker process and every machine
    # sharing it agrees: an admin call writes there first, then the local copy; each worker re-reads it at most every
    # ``service.state_seconds`` (a halt reaches every worker within that time, a restart keeps it).

    def sync_state(self, *, force: bool = False) -> None:
        """Adopt the shared halt/routing state when the local copy is older than ``service.state_seconds``."""
        now = time.monotonic()
        if not force and now - self._state_read_at < self.cfg.state_seconds:
            return
        shared = read_state(self.predlog.engine)
        self._state_read_at = now
        halt = shared.get("halt", {}).get("value")
        if halt is not None:
            since = datetime.fromisoformat(halt["since"]) if halt.get("since") else None
            new = HaltState(bool(halt["halted"]), halt.get("reason"), since, halt.get("key_id"))
            if new != self.halt:
                self.halt = new
                self.metrics.set_halted(new.halted)
                log.warning("shared state: %s", f"HALTED ({new.reason})" if new.halted else "resumed")
        routing = shared.get("routing", {}).get("value")
        if routing is not None and (routing["mode"], routing["share"]) != (self.routing.mode, self.routing.share):
            self.routing = RoutingState(routing["mode"], float(routing["share"]))

    def set_routing(self, mode: str, share: float | None, key_id: str | None = None) -> dict[str, Any]:
        share = self.routing.share if share is None else share
        validate_routing(mode, share)
        write_state(self.predlog.engine, "routing", {"mode": mode, "share": float(share)}, key_id=key_id)
        self.routing = RoutingState(mode, float(share))
        return {"mode": self.routing.mode, "share": self.routing.share}

    def _write_halt(self, halt: HaltState) -> None:
        value = {
            "halted": halt.halted,
            "reason": halt.reason,
            "since": halt.since.isoformat() if halt.since else None,
            "key_id": halt.key_id,
        }
        write_state(self.predlog.engine, "halt", value, key_id=halt.key_id)
        self.halt = halt
        self.metrics.set_halted(halt.halted)

    def set_halt(self, reason: str, key_id: str | None) -> dict[str, Any]:
        self._write_halt(HaltState(True, reason, self.clock(), key_id))
        log.warning("HALTED by key %s: %s (every signal is HOLD until resume)", key_id, reason)
        return self.halt_dict()

    def resume(self, key_id: str | None = None) -> dict[str, Any]:
        self.sync_state(force=True)  # resume what the service is, not what this worker last saw
        was = self.halt
        self._write_halt(HaltState(False, None, None, key_id))
        log.warning("resumed (was halted: %s)", was.reason)
        return {**self.halt_dict(), "was_halted": was.halted, "previous_reason": was.reason}

    def halt_dict(self) -> dict[str, Any]:
        h = self.halt
        return {"halted": h.halted, "reason": h.reason, "since": h.since.isoformat() if h.since else None}

    def describe(self) -> dict[str, Any]:
        self.sync_state()
        ms = self.manager.current
        return {
            "models": [
                {**m.describe(), "routing_mode": self.routing.mode, "canary_share": self.routing.share}
                for m in ms.models.values()
            ],
            "routing": {"mode": self.routing.mode, "share": self.routing.share},
            **self.halt_dict(),
            "problems": dict(ms.problems),
        }

    # --- inputs -> feature rows ---------------------------------------------------------------------------

    def _resolve(self, item: SignalInput) -> ServedModel:
        served = self.manager.current.resolve(item.ticker)
        if served is None:
            raise RequestError(
                404, f"{item.field}.ticker", "unknown_ticker", f"no served model covers ticker {item.ticker!r}"
            )
        return served

    def check_as_of(self, item: SignalInput, day: date) -> None:
        """Refuse future, non-trading and not-stored dates (the field and the rule named)."""
        f = f"{item.field}.as_of"
        today = self.today()
        if day > today:
            raise RequestError(422, f, "future_date", f"{item.ticker} {day}: is after today ({today})")
        rng = self._ranges.get(item.ticker)
        if rng is None:
            raise RequestError(422, f, "no_stored_bars", f"{item.ticker}: no bars are stored for this ticker")
        if day < rng[0]:
            raise RequestError(
                422, f, "before_stored_data", f"{item.ticker} {day}: is before the first stored bar ({rng[0]})"
            )
        if day > rng[1]:
            raise RequestError(
                422, f, "after_stored_data", f"{item.ticker} {day}: is after the last stored bar ({rng[1]})"
            )
        if not is_session(day, self.settings.ingest.calendar):
            raise RequestError(
                422, f, "non_trading_date", f"{item.ticker} {day}: is not a {self.settings.ingest.calendar} session"
            )

    def stored_row(self, item: SignalInput, served: ServedModel) -> tuple[np.ndarray, date] | None:
        """The stored feature row for an ``as_of`` request (validated), or None on a cache miss."""
        if item.as_of is None:
            raise TradeopsError("stored_row needs an as_of request")
        self.check_as_of(item, item.as_of)
        return self._cache_for(served).row(item.ticker, item.as_of)

    def online_row(self, item: SignalInput, served: ServedModel) -> tuple[np.ndarray, date]:
        """Features computed from the stored bars (a cache miss: slow, run it off the event loop)."""
        from tradeops.features.store import online_features

        if item.as_of is None:
            raise TradeopsError("online_row needs an as_of request")
        try:
            vec = online_features(self.lake, served.feature_set, item.ticker, as_of=item.as_of)
        except TradeopsError as exc:
            raise RequestError(422, f"{item.field}.as_of", _rule_of(exc, "features"), str(exc)) from exc
        row = vec.values.reindex(served.champion.feature_names).to_numpy(dtype=np.float64)
        return row, vec.date.date()

    def features_row(self, item: SignalInput, served: ServedModel) -> np.ndarray:
        """A caller-computed feature row in the champion's feature order, names checked against its feature set
        (one pass on the hot path: each feature looked up once; the names are compared only on a failure)."""
        if item.features is None:
            raise TradeopsError("features_row needs a features request")
        layout = served.champion.layout
        names = layout.feature_names
        given = item.features
        try:
            row = np.array([given[n] for n in names], dtype=np.float64)
        except KeyError:
            self._raise_feature_names(item, served)
        if len(given) != len(layout.name_set):  # every feature given, so more names means an unknown one
            self._raise_feature_names(item, served)
        bad = np.flatnonzero(~np.isfinite(row))
        if bad.size:
            raise RequestError(422, f"{item.field}.features.{names[int(bad[0])]}", "finite", "must be a finite number")
        return row

    def _raise_feature_names(self, item: SignalInput, served: ServedModel) -> NoReturn:
        """The 422 of a feature row whose names are not the champion's feature set: unknown names first, then
        missing ones."""
        given = item.features or {}
        f = f"{item.field}.features"
        known = served.champion.layout.name_set
        unknown = [n for n in given if n not in known]
        if unknown:
            raise RequestError(
                422,
                f,
                "unknown_feature",
                f"{len(unknown)} name(s) are not features of {served.name}'s feature set "
                f"{served.champion.feature_set_version}: {', '.join(unknown[:5])}{'...' if len(unknown) > 5 else ''}",
            )
        missing = [n for n in served.champion.feature_names if n not in given]
        raise RequestError(
            422,
            f,
            "missing_feature",
            f"{len(missing)} feature(s) of {served.name}'s feature set are missing: "
            f"{', '.join(missing[:5])}{'...' if len(missing) > 5 else ''}",
        )

    def bars_row(self, item: SignalInput, served: ServedModel) -> tuple[np.ndarray, date]:
        """Features of caller-supplied bars: the ingestion contract, then the training feature code."""
        import pandas as pd

        from tradeops.data.contract import validate_contract
        from tradeops.features.store import features_from_bars

        if item.bars is None:
            raise TradeopsError("bars_row needs a bars request")
        f = f"{item.field}.bars"
        bars = list(item.bars)
        if len(bars) < self.cfg.min_bars:
            raise RequestError(422, f, "min_bars", f"{len(bars)} bars given, at least {self.cfg.min_bars} are needed")
        for i, b in enumerate(bars):
            for name in ("open", "high", "low", "close", "volume"):
                v = getattr(b, name)
                if not math.isfinite(v):
                    raise RequestError(422, f"{f}.{i}.{name}", "finite", f"{item.ticker} {b.date}: {name} = {v!r}")
        frame = pd.DataFrame(
            {
                "date": pd.to_datetime([b.date for b in bars]),
                "open": [float(b.open) for b in bars],
                "high": [float(b.high) for b in bars],
                "low": [float(b.low) for b in bars],
                "close": [float(b.close) for b in bars],
                "volume": [float(b.volume) for b in bars],
            }
        )
        frame["adj_close"] = frame["close"]
        frame["row"] = np.arange(1, len(frame) + 1)
        findings = validate_contract(item.ticker, frame, self.today())
        if findings:
            first = findings[0]
            where = f"{f}.{first.row - 1}" if first.row is not None else f
            raise RequestError(422, where, first.rule, str(first))
        days = [b.date for b in bars]
        try:
            sessions = set(trading_dates(min(days), max(days), self.settings.ingest.calendar))
        except Exception as exc:  # noqa: BLE001 - exchange_calendars refuses dates outside its range
            raise RequestError(
                422, f, "outside_calendar", f"{item.ticker}: bar dates {min(days)}..{max(days)}: {exc}"
            ) from exc
        for i, d in enumerate(days):
            if d not in sessions:
                raise RequestError(
                    422,
                    f"{f}.{i}.date",
                    "non_trading_date",
                    f"{item.ticker} {d}: is not a {self.settings.ingest.calendar} session",
                )
        try:
            vec = features_from_bars(frame, served.feature_set, item.ticker)
        except (TradeopsError, ValueError) as exc:
            raise RequestError(422, f, _rule_of(exc, "features"), str(exc)) from exc
        row = vec.values.reindex(served.champion.feature_names).to_numpy(dtype=np.float64)
        return row, vec.date.date()

    async def prepare(self, item: SignalInput) -> Prepared:
        """Resolve the model and build the feature row (slow paths run in a worker thread)."""
        received, t0 = self.clock(), time.perf_counter()
        served = self._resolve(item)
        if item.as_of is not None:
            hit = self.stored_row(item, served)
            if hit is None:
                hit = await asyncio.to_thread(self.online_row, item, served)
            row, day = hit
            return Prepared(item, served, row, day, received, t0)
        if item.bars is not None:
            row, day = await asyncio.to_thread(self.bars_row, item, served)
            return Prepared(item, served, row, day, received, t0)
        return Prepared(item, served, self.features_row(item, served), None, received, t0)

    # --- scoring, logging, answering ----------------------------------------------------------------------

    def _route_key_date(self, p: Prepared, digest: str) -> str:
        # A feature row has no date: its key is its content, so the same row always routes the same way.
        return p.as_of.isoformat() if p.as_of is not None else f"features:{digest[:16]}"

    def score_group(self, group: Sequence[Prepared]) -> list[dict[str, Any]]:
        """Score prepared inputs of ONE served model (one onnxruntime call per model role) and build each answer's
        log record and response body (without writing them)."""
        served = group[0].served
        routing, halt = self.routing, self.halt
        encoded = [row_bytes(p.row) for p in group]  # encoded once: hashed here, stored as is by the log
        digests = [input_hash(b) for b in encoded]
        decisions = [
            routing.decide(p.item.ticker, self._route_key_date(p, d), has_challenger=served.challenger is not None)
            for p, d in zip(group, digests, strict=True)
        ]
        probas: dict[str, np.ndarray | None] = {CHAMPION: None, CHALLENGER: None}
        if not halt.halted:
            matrix = np.vstack([p.row for p in group]) if len(group) > 1 else group[0].row.reshape(1, -1)
            try:
                probas[CHAMPION] = served.champion.score(matrix).proba
                if served.challenger is not None and any(d.shadow or d.answered_by == CHALLENGER for d in decisions):
                    probas[CHALLENGER] = served.challenger.score(matrix).proba
            except TradeopsError as exc:
                raise RequestError(422, f"{group[0].item.field}", "not_scorable", str(exc)) from exc
        out = []
        for i, (p, features, digest, decision) in enumerate(zip(group, encoded, digests, decisions, strict=True)):
            champ = probas[CHAMPION]
            chall = probas[CHALLENGER]
            c_p = proba_dict(champ[i]) if champ is not None else None
            x_p = proba_dict(chall[i]) if chall is not None else None
            c_sig = CLASSES[int(champ[i].argmax())] if champ is not None else None
            x_sig = CLASSES[int(chall[i].argmax())] if chall is not None else None
            signal: str | None
            proba: dict[str, float] | None
            version: str | None
            if halt.halted:
                answered_by, signal, proba, version = "halt", "HOLD", {}, served.champion_version
            elif decision.answered_by == CHALLENGER and x_p is not None:
                answered_by, signal, proba, version = CHALLENGER, x_sig, x_p, served.challenger_version
            else:
                answered_by, signal, proba, version = CHAMPION, c_sig, c_p, served.champion_version
            if c_sig is not None and x_sig is not None:
                self.metrics.count_shadow(model=served.name, disagreed=c_sig != x_sig)
            rid = uuid.uuid4().hex
            body: dict[str, Any] = {
                "request_id": rid,
                "ticker": p.item.ticker,
                "signal": signal,
                "probabilities": proba,
                "model": served.name,
                "version": version,
                "feature_set": served.champion.feature_set_version,
                "as_of": p.as_of.isoformat() if p.as_of is not None else None,
                "input": p.item.kind,
                "answered_by": answered_by,
                "routing_mode": routing.mode,
                "halted": halt.halted,
            }
            if halt.halted:
                body["reason"] = halt.reason
            out.append(
                {
                    "prepared": p,
                    "body": body,
                    "record": dict(
                        request_id=rid,
                        received_at=p.received_at,
                        ticker=p.item.ticker,
                        as_of=p.as_of,
                        input_kind=p.item.kind,
                        input_hash=digest,
                        features=features,
                        model=served.name,
                        champion_version=served.champion_version,
                        champion_signal=c_sig,
                        champion_proba=c_p,
                        challenger_version=served.challenger_version if x_p is not None else None,
                        challenger_signal=x_sig,
                        challenger_proba=x_p,
                        answered_by=answered_by,
                        routing_mode=routing.mode,
                        halted=halt.halted,
                    ),
                    "answerer": served.challenger if answered_by == CHALLENGER else served.champion,
                }
            )
        return out

    def add_explanation(self, entry: dict[str, Any]) -> None:
        """``?explain=true``: the top-k occlusion attributions of the answering model (none while halted)."""
        if entry["body"]["halted"]:
            entry["body"]["explanation"] = []
            return
        attributions = explain(entry["answerer"], entry["prepared"].row, top_k=self.cfg.explain_top_k)
        entry["body"]["explanation"] = [a.to_dict() for a in attributions]

    async def commit(self, entries: Sequence[dict[str, Any]], key_id: str | None) -> None:
        """Write every entry's log row (durable on return), then count them; raises if a row was not committed."""
        records = []
        for e in entries:
            latency = (time.perf_counter() - e["prepared"].t0) * 1e3
            records.append(PredictionRecord(**e["record"], latency_ms=latency, key_id=key_id, status=200))
        await self.predlog.awrite_many(records)
        for e in entries:
            b = e["body"]
            self.metrics.count_request(model=b["model"], version=b["version"], signal=b["signal"], status=200)

    async def answer(self, item: SignalInput, *, key_id: str | None, explain: bool = False) -> dict[str, Any]:
        """One request -> its response body (logged before it returns)."""
        self.sync_state()
        p = await self.prepare(item)
        (entry,) = self.score_group([p])
        if explain:
            self.add_explanation(entry)
        await self.commit([entry], key_id)
        return entry["body"]

    async def answer_batch(
        self, items: Sequence[SignalInput], *, key_id: str | None, explain: bool = False
    ) -> list[dict[str, Any]]:
        """Many requests -> one result or one error per item, in order. Items of one model are scored together."""
        self.sync_state()
        if len(items) > self.cfg.max_batch:
            raise RequestError(
                422, "body.items", "max_batch", f"{len(items)} items given, at most {self.cfg.max_batch} per batch"
            )
        results: list[dict[str, Any] | None] = [None] * len(items)
        prepared: list[tuple[int, Prepared]] = []
        for i, item in enumerate(items):
            try:
                prepared.append((i, await self.prepare(item)))
            except RequestError as exc:
                results[i] = {"error": exc.message, "field": exc.field, "rule": exc.rule, "status": exc.status}
        groups: dict[str, list[tuple[int, Prepared]]] = {}
        for i, p in prepared:
            groups.setdefault(p.served.name, []).append((i, p))
        entries: list[tuple[int, dict[str, Any]]] = []
        for members in groups.values():
            try:
                scored = self.score_group([p for _, p in members])
            except RequestError:
                scored = []
                for i, p in members:  # find the row that cannot be scored; score the others
                    try:
                        scored.append(self.score_group([p])[0])
                    except RequestError as exc:
                        results[i] = {**exc.to_dict(), "field": p.item.field}
                        scored.append({})
            for (i, _), e in zip(members, scored, strict=True):
                if e:
                    if explain:
                        self.add_explanation(e)
                    entries.append((i, e))
        if entries:
            await self.commit([e for _, e in entries], key_id)
        for i, e in entries:
            results[i] = {**e["body"], "status": 200}
        return [r if r is not None else {"error": "not answered", "status": 500} for r in results]


def _rule_of(exc: Exception, default: str) -> str:
    """The ``[rule]`` named in an error message, else ``default``."""
    text = str(exc)
    if "[" in text and "]" in text.split("[", 1)[1]:
        return text.split("[", 1)[1].split("]", 1)[0]
    return default
