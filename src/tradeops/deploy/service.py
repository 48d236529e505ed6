"""The signal service's HTTP layer: ``create_app(settings) -> FastAPI`` (a factory; importing this module builds
nothing). Endpoints are thin: they authenticate, parse and call :class:`tradeops.deploy.signals.SignalService` or the
registry, and turn its errors into 4xx answers that name the field and the rule. Bad client input never gets a 5xx.

Run it with ``tradeops serve`` (uvicorn, ``app_from_env`` as the factory so several workers each build their own
app). Routing and the kill switch are per process (each worker holds its own; ``--workers 1`` is the default).
"""

import asyncio
import email.message
import hashlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from tradeops.config import Settings
from tradeops.deploy.models import ModelManager, ModelSet
from tradeops.deploy.signals import BarIn, RequestError, SignalInput, SignalService
from tradeops.errors import TradeopsError, UsageError

log = logging.getLogger("tradeops.deploy.service")

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Ticker = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Bar(_Strict):
    """One daily bar, prices split/dividend adjusted."""

    date: date
    open: FiniteFloat
    high: FiniteFloat
    low: FiniteFloat
    close: FiniteFloat
    volume: FiniteFloat


class SignalRequest(_Strict):
    """A ticker and exactly one of: ``as_of`` (stored data), ``bars`` (recent bars, oldest first) or ``features``
    (a feature row computed elsewhere, names = the model's feature set)."""

    ticker: Ticker
    as_of: date | None = None
    bars: list[Bar] | None = Field(None, max_length=20_000)
    features: dict[str, FiniteFloat] | None = Field(None, max_length=10_000)

    @model_validator(mode="after")
    def _exactly_one(self) -> "SignalRequest":
        given = [k for k in ("as_of", "bars", "features") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"[one_input] give exactly one of as_of, bars, features (got {', '.join(given) or 'none'})"
            )
        return self

    def to_input(self, field: str = "body") -> SignalInput:
        bars = None
        if self.bars is not None:
            bars = [BarIn(b.date, b.open, b.high, b.low, b.close, b.volume) for b in self.bars]
        return SignalInput(self.ticker.upper(), self.as_of, bars, self.features, field)


class BatchRequest(_Strict):
    items: list[SignalRequest] = Field(min_length=1, max_length=100_000)


class Explained(BaseModel):
    feature: str
    cell: list[int]
    attribution: float


class SignalResponse(BaseModel):
    request_id: str
    ticker: str
    signal: str = Field(description="BUY, SELL or HOLD")
    probabilities: dict[str, float]
    model: str
    version: str | None
    feature_set: str
    as_of: str | None
    input: str
    answered_by: str = Field(description="champion, challenger (canary) or halt")
    routing_mode: str
    halted: bool
    reason: str | None = None
    explanation: list[Explained] | None = None


class ErrorResponse(BaseModel):
    error: str
    field: str | None = None
    rule: str


class BatchResponse(BaseModel):
    results: list[dict[str, Any]]


class PromoteRequest(_Strict):
    model: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=20, pattern=r"^[0-9]+$")
    reason: str | None = Field(None, max_length=500)
    force: bool = False


class RollbackRequest(_Strict):
    model: str = Field(min_length=1, max_length=200)


class RoutingRequest(_Strict):
    mode: str = Field(pattern="^(off|shadow|canary)$")
    share: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)


class HaltRequest(_Strict):
    reason: str = Field(min_length=1, max_length=500)


class EmptyRequest(_Strict):
    pass


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "missing or invalid API key"},
    403: {"model": ErrorResponse, "description": "the key's role may not do this"},
    404: {"model": ErrorResponse, "description": "unknown ticker or model"},
    422: {"model": ErrorResponse, "description": "invalid input (field and rule named)"},
}

_RULES = {
    "json_invalid": "malformed_json",
    "extra_forbidden": "unknown_field",
    "missing": "required",
    "finite_number": "finite",
    "too_long": "max_length",
    "too_short": "min_length",
}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(status: int, message: str, rule: str, field: str | None = None, **extra: Any) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return _json({"error": message, "field": field, "rule": rule, **extra}, status, headers)


def _validation_body(exc: RequestValidationError) -> dict[str, Any]:
    errors = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()))
        msg = str(e.get("msg", "invalid"))
        rule = _RULES.get(str(e.get("type")), str(e.get("type", "invalid")))
        if "[" in msg and "]" in msg:  # our own validators name their rule in brackets
            rule = msg.split("[", 1)[1].split("]", 1)[0]
        if loc.startswith("body.items.") and rule == "max_length" and loc.count(".") == 1:
            rule = "max_batch"
        errors.append({"field": loc, "rule": rule, "error": msg})
    first = errors[0] if errors else {"field": "body", "rule": "invalid", "error": "invalid request"}
    return {"error": first["error"], "field": first["field"], "rule": first["rule"], "errors": errors[:20]}


_M = TypeVar("_M", bound=BaseModel)
_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI decodes a body of this ``content-type`` as JSON: ``application/json`` or ``application/*+json``
    (parameters such as ``charset`` allowed). No content type is not JSON (FastAPI's strict content type)."""
    if content_type == "application/json":
        return True
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _located(exc: ValidationError, *where: str | int) -> list[dict[str, Any]]:
    """``exc``'s errors with ``where`` in front of each ``loc``, as FastAPI reports a parameter's errors."""
    return [{**e, "loc": (*where, *e["loc"])} for e in exc.errors(include_url=False)]


def _parse_body(model: type[_M], raw: bytes, content_type: str | None) -> tuple[_M | None, list[dict[str, Any]]]:
    """A request body as ``model``, or the validation errors FastAPI reports for it (``loc`` starting ``body``).

    A valid JSON body is parsed and validated in one pydantic-core pass over the raw bytes (a 225-feature row:
    ~0.06 ms, against ~0.27 ms for ``json.loads`` + validation of the dict). Anything else is decoded and validated
    again exactly as FastAPI does (``json.loads``, then the model with ``from_attributes``), so every error is
    FastAPI's: malformed JSON raises its ``json_invalid`` 422 and undecodable bytes its 400, before authentication,
    as FastAPI's own handler does."""
    if not raw:
        return None, [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
    data: Any = raw  # not JSON by its content type: FastAPI validates the bytes themselves (a type error)
    if _is_json(content_type):
        try:
            return model.model_validate_json(raw), []
        except ValidationError:
            pass  # the error path: FastAPI's decoding and validation below name the error as FastAPI does
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
            raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}], body=exc.doc) from exc
        except Exception as exc:  # noqa: BLE001 - undecodable bytes: FastAPI answers 400
            raise StarletteHTTPException(400, "There was an error parsing the body") from exc
    try:
        return model.model_validate(data, from_attributes=True), []
    except ValidationError as exc:
        return None, _located(exc, "body")


def _parse_bool_query(value: str | None, name: str) -> tuple[bool, list[dict[str, Any]]]:
    """An optional boolean query parameter (default False) as FastAPI parses it (``true``/``1``/``yes``/``on``...),
    or its validation errors (``loc`` ``("query", name)``)."""
    if value is None:
        return False, []
    try:
        return _BOOL.validate_python(value), []
    except ValidationError as exc:
        return False, _located(exc, "query", name)


def _route_handled_by(handler: Callable[[Request], Coroutine[Any, Any, Response]]) -> type[APIRoute]:
    """An ``APIRoute`` class whose requests go to ``handler`` instead of FastAPI's parameter solving. The route's
    OpenAPI still comes from its endpoint's signature (exactly as for any route); ``handler`` parses the same
    parameters faster and calls the endpoint."""

    class HandledRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            return handler

    return HandledRoute


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


async def _handled(handler: Any, request: Request, exc: Exception) -> Response:
    """The response of an exception handler (async or not)."""
    response = handler(request, exc)
    return await response if inspect.isawaitable(response) else response


class _ServiceApp(FastAPI):
    """FastAPI with a direct path to the signal endpoints: a ``POST`` to a path in ``direct`` is answered by that
    route's own handler without the router and the middleware stack (~0.2 ms of a ~1.2 ms feature-row answer on
    the 2-core VM), and its errors by the app's exception handlers, as the stack would: registered ones answer
    (the 500 handler answers, then the error is raised on, as ``ServerErrorMiddleware`` does). The route stays
    registered (OpenAPI, and every request the direct path does not take): with app middleware, a body limit, a
    root path or FastAPI's OpenTelemetry instrumentation active, every request goes through the stack."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direct: dict[str, Handler] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        handler = self.direct.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None or not self._direct_allowed(scope):
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:
            answer = self._exception_handler(exc)
            if answer is not None:
                response = await _handled(answer, request, exc)
            else:
                error_handler = self.exception_handlers.get(500) or self.exception_handlers.get(Exception)
                if error_handler is None:
                    raise
                await (await _handled(error_handler, request, exc))(scope, receive, send)
                raise
        await response(scope, receive, send)

    def _direct_allowed(self, scope: Any) -> bool:
        telemetry = getattr(self, "_native_telemetry", None)
        return not (
            self.user_middleware
            or getattr(self, "max_body_size", None) is not None
            or self.root_path
            or scope.get("root_path")
            or (telemetry is not None and telemetry.enabled())
        )

    def _exception_handler(self, exc: Exception) -> Any:
        """The handler Starlette's ``ExceptionMiddleware`` would call for ``exc`` (None: the 500 path)."""
        handlers = self.exception_handlers
        if isinstance(exc, StarletteHTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in handlers and cls is not Exception:
                return handlers[cls]
        return None


class _AuthError(Exception):
    def __init__(self, status: int, message: str, rule: str) -> None:
        super().__init__(message)
        self.status, self.message, self.rule = status, message, rule


def create_app(
    settings: Settings,
    *,
    model_set: ModelSet | ModelManager | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """Build the service: load the served models (unless given), open the prediction log (Alembic upgrade first),
    the key verifier and the metrics. ``model_set``: a prepared set (served as is; reload reads the registry) or a
    :class:`ModelManager` (tests inject loaders). ``clock``: tz-aware UTC now (tests freeze "today")."""
    from tradeops.data.store import lake_for
    from tradeops.deploy.auth import KeyInfo, KeyVerifier, allows
    from tradeops.deploy.metrics import ServiceMetrics
    from tradeops.deploy.predlog import PredictionLog, audit, open_database

    cfg = settings.service
    metrics = ServiceMetrics()

    def on_swap(model: str, result: str) -> None:
        metrics.count_swap(model=model, result=result)

    if isinstance(model_set, ModelManager):
        manager = model_set
        manager.on_swap = manager.on_swap or on_swap
    else:
        manager = ModelManager(settings, clock=clock, on_swap=on_swap, initial=model_set)
        if model_set is None:
            manager.reload()
    engine = open_database(settings.service_database_url)
    predlog = PredictionLog(engine, batch_max=cfg.log_batch_max, batch_wait_ms=cfg.log_batch_wait_ms)
    service = SignalService(settings, manager, lake=lake_for(settings), predlog=predlog, metrics=metrics, clock=clock)
    verifier = KeyVerifier(engine)
    verified: set[bytes] = set()  # fingerprints of tokens verified once: later checks are cache hits (no KDF)
    if not cfg.auth:
        log.warning(
            "AUTHENTICATION IS OFF (service.auth = false): anyone who can reach %s:%s may read signals and "
            "run admin calls. Use this for local work only.",
            cfg.host,
            cfg.port,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        manager.start_polling(also=service.refresh_data)
        try:
            yield
        finally:
            manager.stop()
            predlog.close()
            engine.dispose()

    app = _ServiceApp(
        title="tradeops signal service",
        version="1",
        lifespan=lifespan,
        description="Trading signals (BUY/SELL/HOLD) from registered models, champion/challenger routing, a durable "
        "prediction log. `Authorization: Bearer <key>`: reader (signals, models), operator (also admin).",
    )
    app.state.service = service
    app.state.manager = manager
    app.state.predlog = predlog
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.verifier = verifier
    bearer = HTTPBearer(auto_error=False)

    async def authorize(creds: HTTPAuthorizationCredentials | None, role: str) -> KeyInfo | None:
        if not cfg.auth:
            return None
        if creds is None or not creds.credentials:
            raise _AuthError(401, "an API key is required (Authorization: Bearer <key>)", "missing_key")
        token = creds.credentials
        # A token seen valid before is a cache hit in the verifier; an unknown one pays the KDF off the loop.
        # Remembered by fingerprint only: the process never keeps a raw token beyond the request.
        fingerprint = hashlib.sha256(token.encode("utf-8")).digest()
        seen = fingerprint in verified
        info = verifier.verify(token) if seen else await asyncio.to_thread(verifier.verify, token)
        if info is None:
            verified.discard(fingerprint)
            raise _AuthError(401, "the API key is invalid or revoked", "invalid_key")
        verified.add(fingerprint)
        if not allows(info, role):
            raise _AuthError(403, f"the key's role {info.role!r} may not do this ({role} needed)", "forbidden_role")
        return info

    async def reader(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> KeyInfo | None:
        return await authorize(creds, "reader")

    async def operator(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> KeyInfo | None:
        return await authorize(creds, "operator")

    Reader = Annotated[Any, Depends(reader)]
    Operator = Annotated[Any, Depends(operator)]

    @app.exception_handler(_AuthError)
    async def _auth_error(request: Request, exc: _AuthError) -> Response:
        metrics.count_error(endpoint=request.url.path, kind="auth")
        return _error(exc.status, exc.message, exc.rule)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        metrics.count_error(endpoint=request.url.path, kind="validation")
        return _json(_validation_body(exc), 422)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> Response:
        metrics.count_error(endpoint=request.url.path, kind="not_found" if exc.status == 404 else "validation")
        return _error(exc.status, exc.message, exc.rule, exc.field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), "http", None)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s", request.url.path)
        metrics.count_error(endpoint=request.url.path, kind="internal")
        return _error(500, f"internal error ({type(exc).__name__})", "internal")

    def key_id(info: Any) -> str | None:
        return None if info is None else info.key_id

    async def signal_parameters(request: Request, model: type[_M]) -> tuple[_M, Any, bool]:
        """What FastAPI's parameter solving gives the signal endpoints (the body, the reader's key, ``explain``),
        with the same answers in the same order: a body that is not JSON (422/400) before authentication, then
        401/403, then the query's and the body's validation errors together (422)."""
        body, errors = _parse_body(model, await request.body(), request.headers.get("content-type"))
        key = await authorize(await bearer(request), "reader")
        explain, query_errors = _parse_bool_query(request.query_params.get("explain"), "explain")
        if errors or query_errors or body is None:
            raise RequestValidationError(query_errors + errors)
        return body, key, explain

    def add_signal_route(
        path: str, endpoint: Callable[[_M, Any, bool], Awaitable[Response]], model: type[_M], answer: type[BaseModel]
    ) -> None:
        async def handle(request: Request) -> Response:
            body, key, explain = await signal_parameters(request, model)
            return await endpoint(body, key, explain)

        route = _route_handled_by(handle)
        app.router.add_api_route(
            path, endpoint, methods=["POST"], response_model=answer, responses=_ERRORS, route_class_override=route
        )
        app.direct[path] = handle

    ExplainQuery = Annotated[bool, Query(description="add the top-k feature attributions")]

    # The two signal endpoints are the hot path: their parameters (declared below for the OpenAPI document, which
    # is what FastAPI generates from these signatures) are parsed by ``signal_parameters`` (one pydantic-core pass
    # over the raw body) instead of FastAPI's dependency solving; errors and their order are FastAPI's. Requests
    # reach the same handler directly (``_ServiceApp``), without the router and middleware layers.

    async def signal(body: SignalRequest, key: Reader, explain: ExplainQuery = False) -> Response:
        """One signal for a ticker: from stored data (``as_of``), caller bars or a feature row."""
        t0 = time.perf_counter()
        answer = await service.answer(body.to_input(), key_id=key_id(key), explain=explain)
        metrics.observe_latency("/v1/signals", time.perf_counter() - t0)
        return _json(answer)

    add_signal_route("/v1/signals", signal, SignalRequest, SignalResponse)

    async def signal_batch(body: BatchRequest, key: Reader, explain: ExplainQuery = False) -> Response:
        """Up to ``service.max_batch`` items; one result or one error (with its status) per item, in order."""
        t0 = time.perf_counter()
        items = [r.to_input(f"body.items.{i}") for i, r in enumerate(body.items)]
        results = await service.answer_batch(items, key_id=key_id(key), explain=explain)
        metrics.observe_latency("/v1/signals:batch", time.perf_counter() - t0)
        return _json({"results": results})

    add_signal_route("/v1/signals:batch", signal_batch, BatchRequest, BatchResponse)

    @app.get("/v1/models", responses=_ERRORS)
    async def models(key: Reader) -> Response:
        """Served models: champion and challenger versions, routing, loaded-at, feature set."""
        return _json(service.describe())

    @app.get("/healthz")
    async def healthz() -> Response:
        """The process is alive."""
        return _json({"status": "ok"})

    @app.get("/readyz", responses={503: {"model": ErrorResponse}})
    async def readyz() -> Response:
        """Models loaded and their golden sets verified (503 with the reasons otherwise)."""
        ms = manager.current
        body = {
            "ready": ms.ready,
            "models": {
                n: {"champion": m.champion_version, "challenger": m.challenger_version} for n, m in ms.models.items()
            },
            "problems": dict(ms.problems),
            "halted": service.halt.halted,
        }
        return _json(body, 200 if ms.ready else 503)

    @app.get("/dashboard", responses={**_ERRORS, 404: {"model": ErrorResponse}}, response_class=Response)
    async def dashboard(key: Reader) -> Response:
        """The monitoring report (HTML) the last `tradeops monitor --report` / monitor job wrote."""
        from tradeops.monitor.run import report_path

        path = report_path(settings)
        try:
            html = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return _json(
                {
                    "error": f"[dashboard] no monitoring report at {path} yet: run `tradeops monitor --report {path}`",
                    "field": "dashboard",
                    "rule": "not_found",
                },
                404,
            )
        return Response(content=html, media_type="text/html; charset=utf-8")

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text exposition."""
        return Response(content=metrics.render(), media_type=metrics.content_type)

    # --- admin --------------------------------------------------------------------------------------------

    async def admin(action: str, info: Any, arguments: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> Response:
        """Run an admin action in a worker thread and write its audit row (also when it fails)."""
        try:
            result = await asyncio.to_thread(fn)
        except TradeopsError as exc:
            status = (
                404
                if "not found" in str(exc).lower() or "no registered model" in str(exc)
                else (422 if isinstance(exc, UsageError) else 409)
            )
            rule = exc.rule if isinstance(exc, RequestError) else _bracket(str(exc), action)
            await asyncio.to_thread(
                audit,
                engine,
                key_id=key_id(info),
                action=action,
                arguments=arguments,
                result={"error": str(exc), "status": status},
                ok=False,
            )
            metrics.count_error(endpoint=f"/v1/admin/{action}", kind="admin")
            return _error(status, str(exc), rule)
        audit_id = await asyncio.to_thread(
            audit, engine, key_id=key_id(info), action=action, arguments=arguments, result=result, ok=True
        )
        return _json({"action": action, "ok": True, "audit_id": audit_id, **result})

    def reload_now() -> dict[str, Any]:
        events = manager.reload(retry_refused=True)
        service.refresh_data()
        return {"events": [e.to_dict() for e in events], "models": service.describe()["models"]}

    @app.post("/v1/admin/promote", responses=_ERRORS)
    async def promote(body: PromoteRequest, key: Operator) -> Response:
        """Move the champion alias to ``version`` (registry), then reload."""
        from tradeops.model import registry as reg

        def run() -> dict[str, Any]:
            reason = body.reason or f"promoted through the service by key {key_id(key)}"
            entry = reg.promote(settings, body.model, body.version, reason, force=body.force)
            return {"registry": entry, **reload_now()}

        return await admin("promote", key, body.model_dump(), run)

    @app.post("/v1/admin/rollback", responses=_ERRORS)
    async def rollback(body: RollbackRequest, key: Operator) -> Response:
        """Restore the previous champion (registry), then reload."""
        from tradeops.model import registry as reg

        def run() -> dict[str, Any]:
            return {"registry": reg.rollback(settings, body.model), **reload_now()}

        return await admin("rollback", key, body.model_dump(), run)

    @app.post("/v1/admin/routing", responses=_ERRORS)
    async def routing(body: RoutingRequest, key: Operator) -> Response:
        """Set the routing mode (off | shadow | canary) and the canary share."""
        return await admin(
            "routing", key, body.model_dump(), lambda: service.set_routing(body.mode, body.share, key_id(key))
        )

    @app.post("/v1/admin/halt", responses=_ERRORS)
    async def halt(body: HaltRequest, key: Operator) -> Response:
        """Kill switch: every signal is HOLD with ``halted: true`` and the reason until resume."""
        return await admin("halt", key, body.model_dump(), lambda: service.set_halt(body.reason, key_id(key)))

    @app.post("/v1/admin/resume", responses=_ERRORS)
    async def resume(key: Operator, body: EmptyRequest | None = None) -> Response:
        """Lift the kill switch."""
        return await admin("resume", key, {}, lambda: service.resume(key_id(key)))

    @app.post("/v1/admin/reload", responses=_ERRORS)
    async def reload(key: Operator, body: EmptyRequest | None = None) -> Response:
        """Re-read the registry aliases now (load, verify, swap) and refresh stored features."""
        return await admin("reload", key, {}, reload_now)

    return app


def _bracket(text: str, default: str) -> str:
    if "[" in text and "]" in text.split("[", 1)[1]:
        return text.split("[", 1)[1].split("]", 1)[0]
    return default


def app_from_env() -> FastAPI:
    """Factory for uvicorn (``tradeops.deploy.service:app_from_env``, ``factory=True``): settings from the
    environment (``TRADEOPS_HOME``, ``TRADEOPS_SERVICE__*``, ``tradeops.yaml``)."""
    from tradeops.config import load_settings

    return create_app(load_settings())
