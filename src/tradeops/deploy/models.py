"""The served-model set: champion (+ challenger) bundles per registered model, ticker -> model, and hot swap.

A :class:`ModelSet` is immutable. :class:`ModelManager` holds the one current set; a reload (the background poller
of registry aliases, every ``settings.service.poll_seconds``, or an operator call) builds a complete new set OFF the
request path and then replaces that one reference, so a request sees either the old set or the new one, never a
half-loaded model. A version that fails to load or fails its golden set is refused with a logged reason and the
version it was to replace keeps serving. Times are tz-aware UTC.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from tradeops.config import Settings
from tradeops.errors import TradeopsError, UsageError
from tradeops.features.store import FeatureSet
from tradeops.model.package import SignalBundle

log = logging.getLogger("tradeops.deploy.models")

CHAMPION = "champion"
CHALLENGER = "challenger"

Loader = Callable[[Settings, str, str], SignalBundle]
"""``(settings, name, version) -> verified bundle`` (golden set re-scored); raises on any failure."""
AliasReader = Callable[[Settings], Mapping[str, Mapping[str, str]]]
"""``settings -> {model name: {alias: version}}`` of the models to serve."""
SwapHook = Callable[[str, str], None]
"""``(model name, result)`` with result ``swapped`` | ``refused`` | ``loaded``: feeds the swap metric."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ServedModel:
    """One served registered model: its champion, its challenger (or none), feature set and ticker universe."""

    name: str
    champion: SignalBundle
    champion_version: str
    challenger: SignalBundle | None
    challenger_version: str | None
    feature_set: FeatureSet
    universe: tuple[str, ...]
    loaded_at: datetime

    def bundle(self, role: str) -> SignalBundle:
        """``champion`` or ``challenger`` (a missing challenger is a :class:`TradeopsError`, never the champion)."""
        if role == CHAMPION:
            return self.champion
        if self.challenger is None:
            raise TradeopsError(f"{self.name}: no challenger is loaded")
        return self.challenger

    def version(self, role: str) -> str | None:
        return self.champion_version if role == CHAMPION else self.challenger_version

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "champion": self.champion_version,
            "challenger": self.challenger_version,
            "feature_set": self.feature_set.version,
            "preset": self.feature_set.preset,
            "universe": list(self.universe),
            "loaded_at": self.loaded_at.isoformat(),
        }


@dataclass(frozen=True)
class ModelSet:
    """Served models by name and the ticker -> model name index. A ticker held by several models goes to the one
    with the smallest universe (a per-ticker model before a pooled one), ties by name."""

    models: Mapping[str, ServedModel]
    by_ticker: Mapping[str, str]
    loaded_at: datetime
    problems: Mapping[str, str] = field(default_factory=dict)  # model name -> why it is not (fully) served

    @classmethod
    def build(
        cls, models: Mapping[str, ServedModel], *, loaded_at: datetime, problems: Mapping[str, str] | None = None
    ):
        by_ticker: dict[str, str] = {}
        for m in sorted(models.values(), key=lambda m: (len(m.universe), m.name), reverse=True):
            for t in m.universe:
                by_ticker[t] = m.name  # smaller universes are written last and win
        return cls(
            MappingProxyType(dict(models)),
            MappingProxyType(by_ticker),
            loaded_at,
            MappingProxyType(dict(problems or {})),
        )

    @classmethod
    def empty(cls, *, loaded_at: datetime | None = None, problems: Mapping[str, str] | None = None) -> ModelSet:
        return cls.build({}, loaded_at=loaded_at or utcnow(), problems=problems)

    def resolve(self, ticker: str) -> ServedModel | None:
        """The served model whose universe holds ``ticker`` (upper-cased), or None."""
        name = self.by_ticker.get(ticker.upper())
        return None if name is None else self.models[name]

    @property
    def ready(self) -> bool:
        return bool(self.models)

    def versions(self) -> dict[str, tuple[str, str | None]]:
        return {n: (m.champion_version, m.challenger_version) for n, m in self.models.items()}


def feature_set_of(bundle: SignalBundle) -> FeatureSet:
    """The feature set a bundle was trained on, rebuilt from its meta and checked against the recorded version."""
    meta = bundle.meta
    fs = FeatureSet.from_preset(
        str(meta["preset"]), tuple(int(w) for w in meta["windows"]), int(meta.get("label_window", 11))
    )
    if fs.version != bundle.feature_set_version:
        raise TradeopsError(
            f"{bundle.model_name} v{bundle.model_version}: [feature_set] its meta rebuilds feature set "
            f"{fs.version}, not the recorded {bundle.feature_set_version}"
        )
    return fs


def universe_of(bundle: SignalBundle) -> tuple[str, ...]:
    """The tickers a bundle was trained on (its meta), upper-cased and sorted."""
    tickers = bundle.meta.get("tickers") or []
    if isinstance(tickers, str):
        tickers = [t for t in tickers.split(",") if t]
    return tuple(sorted({str(t).upper() for t in tickers}))


def registry_loader(settings: Settings, name: str, version: str) -> SignalBundle:
    """The production loader: :func:`tradeops.model.serving.load_registered` (golden set verified)."""
    from tradeops.model.serving import load_registered

    return load_registered(settings, name, version)


def registry_aliases(settings: Settings) -> dict[str, dict[str, str]]:
    """``{name: {alias: version}}`` of the models to serve: ``settings.service.models``, or every registered model
    that has a champion. A registry failure raises (never reads as "no models")."""
    from tradeops.model import registry as reg

    if not settings.service.models and not reg.tracking_store_exists(settings):
        return {}
    c = reg.client(settings)
    out: dict[str, dict[str, str]] = {}
    with reg.registry_errors("listing the served models' aliases"):
        if settings.service.models:
            found = []
            for name in settings.service.models:
                try:
                    found.append(c.get_registered_model(name))
                except reg.store_errors() as exc:
                    if reg._not_found(exc):
                        raise UsageError(f"service.models: [unknown_model] no registered model {name!r}") from None
                    raise
        else:
            found = list(c.search_registered_models())
    for rm in found:
        aliases = {k: str(v) for k, v in (rm.aliases or {}).items()}
        if CHAMPION in aliases or settings.service.models:
            out[rm.name] = aliases
    return out


@dataclass(frozen=True)
class SwapEvent:
    """One outcome of a reload for one model and role."""

    model: str
    role: str
    old: str | None
    new: str | None
    result: str  # swapped | refused | unchanged | loaded | removed
    reason: str | None = None
    at: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "role": self.role,
            "from": self.old,
            "to": self.new,
            "result": self.result,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }


class ModelManager:
    """Holds the current :class:`ModelSet` and replaces it on reload (see the module docstring).

    ``loader`` and ``alias_reader`` default to the MLflow registry; tests inject failing ones. Reloads are
    serialised by a lock; readers never take it (they read :attr:`current`, one reference).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        loader: Loader | None = None,
        alias_reader: AliasReader | None = None,
        clock: Callable[[], datetime] | None = None,
        on_swap: SwapHook | None = None,
        initial: ModelSet | None = None,
    ) -> None:
        self.settings = settings
        self.loader: Loader = loader or registry_loader
        self.alias_reader: AliasReader = alias_reader or registry_aliases
        self.clock = clock or utcnow
        self.on_swap = on_swap
        self._current = initial if initial is not None else ModelSet.empty(loaded_at=self.clock())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refused: dict[tuple[str, str, str], str] = {}  # (model, role, version) -> reason
        self.events: list[SwapEvent] = []

    @property
    def current(self) -> ModelSet:
        return self._current

    def _load(self, name: str, role: str, version: str, retry_refused: bool) -> SignalBundle:
        key = (name, role, version)
        if key in self.refused and not retry_refused:
            raise TradeopsError(self.refused[key])
        try:
            bundle = self.loader(self.settings, name, version)
            feature_set_of(bundle)
        except Exception as exc:  # noqa: BLE001 - any failure refuses the version; the old one keeps serving
            reason = f"{name} v{version} ({role}): refused: {type(exc).__name__}: {exc}"
            self.refused[key] = reason
            raise TradeopsError(reason) from exc
        self.refused.pop(key, None)
        return bundle

    def reload(self, *, retry_refused: bool = True) -> list[SwapEvent]:
        """Read the registry aliases; load every changed champion/challenger version; swap the set atomically.

        Unchanged versions keep their loaded bundles. A refused version is logged (and reported) and the version it
        was to replace keeps serving; with ``retry_refused`` false (the poller) a version refused before is not
        loaded again until an explicit reload."""
        with self._lock:
            old = self._current
            events: list[SwapEvent] = []
            problems: dict[str, str] = {}
            try:
                wanted = self.alias_reader(self.settings)
            except Exception as exc:  # noqa: BLE001 - a registry outage keeps the whole old set serving
                reason = f"registry: {type(exc).__name__}: {exc}"
                log.error("model reload skipped, the current models keep serving: %s", reason)
                return [SwapEvent("*", "*", None, None, "refused", reason, self.clock())]
            models: dict[str, ServedModel] = {}
            for name, aliases in sorted(wanted.items()):
                prev = old.models.get(name)
                served, evs, problem = self._build_one(name, aliases, prev, retry_refused)
                events += evs
                if served is not None:
                    models[name] = served
                if problem:
                    problems[name] = problem
            for name in old.models:
                if name not in wanted:
                    events.append(SwapEvent(name, CHAMPION, old.models[name].champion_version, None, "removed"))
            changed = any(e.result in ("swapped", "loaded", "removed") for e in events)
            if changed or dict(problems) != dict(old.problems):
                self._current = ModelSet.build(models, loaded_at=self.clock(), problems=problems)
            for e in events:
                if e.result == "refused":
                    log.error("model swap refused, %s keeps serving: %s", e.old or "nothing", e.reason)
                elif e.result in ("swapped", "loaded", "removed"):
                    log.info("model %s %s: %s -> %s (%s)", e.model, e.role, e.old, e.new, e.result)
                if self.on_swap is not None and e.result in ("swapped", "loaded", "refused"):
                    self.on_swap(e.model, e.result)
            self.events = (self.events + events)[-200:]
            return events

    def _build_one(
        self, name: str, aliases: Mapping[str, str], prev: ServedModel | None, retry: bool
    ) -> tuple[ServedModel | None, list[SwapEvent], str | None]:
        events: list[SwapEvent] = []
        problem: str | None = None
        now = self.clock()
        # Bundles already loaded (and verified) are reused: promoting the challenger loads nothing.
        pool: dict[str, SignalBundle] = {}
        if prev is not None:
            pool[prev.champion_version] = prev.champion
            if prev.challenger is not None and prev.challenger_version is not None:
                pool[prev.challenger_version] = prev.challenger

        def get(role: str, version: str) -> SignalBundle:
            return pool[version] if version in pool else self._load(name, role, version, retry)

        want_champ = aliases.get(CHAMPION)
        want_chall = aliases.get(CHALLENGER)
        if want_chall == want_champ:
            want_chall = None  # a challenger that is the champion is no challenger
        kind = "swapped" if prev is not None else "loaded"
        champ: SignalBundle | None = prev.champion if prev else None
        champ_v: str | None = prev.champion_version if prev else None
        if want_champ is None:
            problem = f"{name}: [no_champion] the registered model has no champion alias"
            if prev is not None:
                events.append(SwapEvent(name, CHAMPION, champ_v, None, "refused", problem, now))
        elif want_champ != champ_v:
            try:
                champ = get(CHAMPION, want_champ)
                events.append(SwapEvent(name, CHAMPION, champ_v, want_champ, kind, None, now))
                champ_v = want_champ
            except TradeopsError as exc:
                problem = str(exc)
                events.append(SwapEvent(name, CHAMPION, champ_v, want_champ, "refused", str(exc), now))
        if champ is None or champ_v is None:
            return None, events, problem
        chall: SignalBundle | None = prev.challenger if prev else None
        chall_v: str | None = prev.challenger_version if prev else None
        if chall_v == champ_v:
            chall, chall_v = None, None  # the challenger was promoted
        if want_chall != chall_v:
            if want_chall is None:
                if chall_v is not None:
                    events.append(SwapEvent(name, CHALLENGER, chall_v, None, "swapped", None, now))
                chall, chall_v = None, None
            else:
                try:
                    chall = get(CHALLENGER, want_chall)
                    events.append(SwapEvent(name, CHALLENGER, chall_v, want_chall, kind, None, now))
                    chall_v = want_chall
                except TradeopsError as exc:
                    problem = problem or str(exc)
                    events.append(SwapEvent(name, CHALLENGER, chall_v, want_chall, "refused", str(exc), now))
        if chall is not None and chall.feature_set_version != champ.feature_set_version:
            reason = (
                f"{name} v{chall_v} (challenger): refused: [feature_set] trained on feature set "
                f"{chall.feature_set_version}, the champion on {champ.feature_set_version}"
            )
            events.append(SwapEvent(name, CHALLENGER, chall_v, chall_v, "refused", reason, now))
            chall, chall_v = None, None
        if prev is not None and champ is prev.champion and chall is prev.challenger:
            return prev, events, problem
        universe = universe_of(champ)
        if not universe:
            return None, events, f"{name} v{champ_v}: [universe] the bundle records no tickers"
        served = ServedModel(
            name=name,
            champion=champ,
            champion_version=champ_v,
            challenger=chall,
            challenger_version=chall_v,
            feature_set=feature_set_of(champ),
            universe=universe,
            loaded_at=now,
        )
        return served, events, problem

    def swap(self, new: ModelSet) -> None:
        """Install a prepared set (tests, fixtures): one reference assignment."""
        with self._lock:
            self._current = new

    def replace_model(self, served: ServedModel) -> None:
        """Install one prepared :class:`ServedModel` in a copy of the current set (tests)."""
        with self._lock:
            models = dict(self._current.models)
            models[served.name] = served
            self._current = ModelSet.build(models, loaded_at=self.clock(), problems=self._current.problems)

    # --- background poller -------------------------------------------------------------------------------------

    def start_polling(self, interval: float | None = None, *, also: Callable[[], None] | None = None) -> None:
        """Poll the registry aliases every ``interval`` seconds (default ``settings.service.poll_seconds``), then
        call ``also`` (the service refreshes its stored features there)."""
        if self._thread is not None:
            return
        period = float(interval if interval is not None else self.settings.service.poll_seconds)
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(period):
                try:
                    self.reload(retry_refused=False)
                    if also is not None:
                        also()
                except Exception:  # noqa: BLE001 - the poller must survive anything; the old set keeps serving
                    log.exception("model poll failed; the current models keep serving")

        self._thread = threading.Thread(target=run, name="tradeops-model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def with_versions(served: ServedModel, **changes: Any) -> ServedModel:
    """A copy of ``served`` with fields replaced (tests build sets by hand)."""
    return replace(served, **changes)
