"""The signal endpoints' own parameter parsing (one pydantic-core pass over the raw body instead of FastAPI's
dependency solving): the same answers as FastAPI's for every kind of body, content type and query, the same OpenAPI
document, and the one-pass feature-row check (unknown names first, then missing, then non-finite values)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
import pytest
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient
from starlette.exceptions import HTTPException as StarletteHTTPException
from tests.service.conftest import LAST_SAMPLE_DAY, make_key

from tradeops.deploy.service import (
    BatchRequest,
    SignalRequest,
    _parse_body,
    _parse_bool_query,
    _route_handled_by,
    _validation_body,
)
from tradeops.deploy.signals import RequestError, SignalInput

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

Explain = Annotated[bool, Query(description="add the top-k feature attributions")]


def _ours(model: type[Any], endpoint: Any) -> type[Any]:
    """A route class parsing ``endpoint``'s body (``model``) and ``explain`` as the signal endpoints do."""

    async def handle(request: Request) -> Response:
        body, errors = _parse_body(model, await request.body(), request.headers.get("content-type"))
        explain, query_errors = _parse_bool_query(request.query_params.get("explain"), "explain")
        if errors or query_errors or body is None:
            raise RequestValidationError(query_errors + errors)
        return await endpoint(body, explain)

    return _route_handled_by(handle)


async def signal(body: SignalRequest, explain: Explain = False) -> Response:
    return JSONResponse({"body": body.model_dump(mode="json"), "explain": explain})


async def batch(body: BatchRequest, explain: Explain = False) -> Response:
    return JSONResponse({"body": body.model_dump(mode="json"), "explain": explain})


def _twin_app() -> FastAPI:
    """Two routes per endpoint: ``/fastapi/...`` parsed by FastAPI, ``/ours/...`` by our parsing."""
    app = FastAPI()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse(_validation_body(exc), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return JSONResponse({"error": exc.detail, "rule": "http"}, exc.status_code)

    for endpoint, model in ((signal, SignalRequest), (batch, BatchRequest)):
        name = endpoint.__name__
        app.router.add_api_route(f"/fastapi/{name}", endpoint, methods=["POST"])
        app.router.add_api_route(
            f"/ours/{name}", endpoint, methods=["POST"], route_class_override=_ours(model, endpoint)
        )
    return app


JSON = "application/json"
ROW = {"rsi_6": 51.5, "sma_20": 101.25}
CASES = [
    ("signal", b'{"ticker": "IBM", "as_of": "2012-06-01"}', JSON, ""),
    ("signal", json.dumps({"ticker": "IBM", "features": ROW}).encode(), JSON, "?explain=true"),
    ("signal", json.dumps({"ticker": "IBM", "features": ROW}).encode(), "application/json; charset=utf-8", ""),
    ("signal", b'{"ticker": "IBM", "as_of": "2012-06-01"}', "application/vnd.x+json", "?explain=YES"),
    ("signal", b'{"ticker": "IBM", "as_of": "2012-06-01"}', None, ""),  # no content type: not JSON
    ("signal", b'{"ticker": "IBM", "as_of": "2012-06-01"}', "text/plain", ""),
    ("signal", b"", JSON, ""),
    ("signal", b'{"ticker": "IBM", "as_of": ', JSON, ""),
    ("signal", b'{"ticker": "\xff\xfe"}', JSON, ""),  # not UTF-8: FastAPI answers 400
    ("signal", '{"ticker": "IBM", "as_of": "2012-06-01"}'.encode("utf-16"), JSON, ""),  # json.loads reads UTF-16
    ("signal", b"[1]", JSON, ""),
    ("signal", b"null", JSON, ""),
    ("signal", b'{"ticker": "IBM", "features": {"rsi_6": NaN}}', JSON, ""),
    ("signal", b'{"ticker": "IBM", "features": {"rsi_6": 1e400}}', JSON, ""),
    ("signal", b'{"ticker": "IBM", "features": {"rsi_6": "1.5", "x": true}}', JSON, ""),
    ("signal", b'{"ticker": "XX", "ticker": "IBM", "as_of": "2012-06-01"}', JSON, ""),
    ("signal", b'{"ticker": "IBM", "as_of": "2012-06-01", "colour": "red"}', JSON, ""),
    ("signal", b'{"ticker": 7, "as_of": "2012-13-01"}', JSON, ""),
    ("signal", b'{"ticker": "IBM"}', JSON, ""),
    ("signal", b'{"ticker": "IBM", "as_of": 1338508800}', JSON, ""),
    ("signal", b'{"ticker": "IBM", "as_of": "2012-06-01"}', JSON, "?explain=maybe"),
    ("signal", b'{"ticker": "IBM", "as_of": "2012-06-01"}', JSON, "?explain="),
    ("signal", b'{"ticker": "IBM", "as_of": "2012-06-01"}', JSON, "?explain=maybe&explain=0"),
    ("signal", b'{"ticker": 7}', JSON, "?explain=maybe"),  # query and body errors together, query first
    ("batch", b'{"items": [{"ticker": "IBM", "as_of": "2012-06-01"}, {"ticker": "IBM", "features": {}}]}', JSON, ""),
    ("batch", b'{"items": []}', JSON, ""),
    ("batch", b'{"items": [{"ticker": 1}, {"ticker": "IBM", "bars": [{"date": "x"}]}]}', JSON, ""),
    ("batch", b'{"items": [', JSON, ""),
]


@pytest.fixture(scope="module")
def twin() -> TestClient:
    with TestClient(_twin_app()) as client:
        yield client


@pytest.mark.parametrize(("route", "body", "content_type", "query"), CASES)
def test_our_parsing_answers_as_fastapi_does(twin, route, body, content_type, query):
    headers = {"content-type": content_type} if content_type else {}
    theirs = twin.post(f"/fastapi/{route}{query}", content=body, headers=headers)
    ours = twin.post(f"/ours/{route}{query}", content=body, headers=headers)
    assert (ours.status_code, ours.json()) == (theirs.status_code, theirs.json())


def test_parse_body_names_field_and_rule():
    body, errors = _parse_body(SignalRequest, b'{"ticker": "IBM", "features": {"rsi_6": 2.5}}', JSON)
    assert errors == [] and body is not None and body.features == {"rsi_6": 2.5} and body.ticker == "IBM"
    body, errors = _parse_body(SignalRequest, b'{"ticker": "IBM", "features": {"rsi_6": NaN}}', JSON)
    assert body is None and [(e["loc"], e["type"]) for e in errors] == [
        (("body", "features", "rsi_6"), "finite_number")
    ]
    body, errors = _parse_body(SignalRequest, b"", JSON)
    assert body is None and [(e["loc"], e["type"]) for e in errors] == [(("body",), "missing")]
    with pytest.raises(RequestValidationError) as info:
        _parse_body(SignalRequest, b'{"ticker": "IBM", "as_of": ', JSON)
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(("body", 27), "json_invalid")]
    with pytest.raises(StarletteHTTPException) as http:
        _parse_body(SignalRequest, b'{"ticker": "\xff"}', JSON)
    assert http.value.status_code == 400
    assert _parse_bool_query(None, "explain") == (False, [])
    assert _parse_bool_query("on", "explain") == (True, [])
    value, errors = _parse_bool_query("maybe", "explain")
    assert value is False and [(e["loc"], e["type"]) for e in errors] == [(("query", "explain"), "bool_parsing")]


def test_openapi_of_our_parsing_is_fastapis():
    spec = _twin_app().openapi()["paths"]
    for name in ("signal", "batch"):
        theirs, ours = spec[f"/fastapi/{name}"]["post"], spec[f"/ours/{name}"]["post"]
        theirs.pop("operationId"), ours.pop("operationId")
        assert ours == theirs


def test_service_openapi_documents_the_signal_parameters(app_client):
    app, _ = app_client
    spec = app.openapi()
    op = spec["paths"]["/v1/signals"]["post"]
    assert op["operationId"] == "signal_v1_signals_post"
    assert op["requestBody"] == {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SignalRequest"}}},
        "required": True,
    }
    assert [(p["name"], p["in"], p["schema"]["type"]) for p in op["parameters"]] == [("explain", "query", "boolean")]
    assert op["security"] == [{"HTTPBearer": []}]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SignalResponse"
    }
    assert op["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    batch = spec["paths"]["/v1/signals:batch"]["post"]
    assert batch["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchRequest"
    }


@pytest.fixture()
def app_client(make_app):
    return make_app()


def _stored(app) -> tuple[Any, dict[str, float], np.ndarray]:
    service = app.state.service
    served = next(iter(app.state.manager.current.models.values()))
    row, _ = service._cache_for(served).row("IBM", LAST_SAMPLE_DAY)
    return served, dict(zip(served.champion.feature_names, row.tolist(), strict=True)), row


def test_feature_row_in_model_order_and_name_rules(app_client):
    app, client = app_client
    service = app.state.service
    served, features, row = _stored(app)
    shuffled = dict(reversed(list(features.items())))  # the caller's order does not matter
    got = service.features_row(SignalInput("IBM", features=shuffled), served)
    assert got.dtype == np.float64 and np.array_equal(got, row)
    names = list(features)

    def rule_of(given: dict[str, float], field: str = "body") -> tuple[str, str, str]:
        with pytest.raises(RequestError) as info:
            service.features_row(SignalInput("IBM", features=given, field=field), served)
        return info.value.field, info.value.rule, info.value.message

    field, rule, message = rule_of({**features, "zz_extra": 1.0})  # every feature given, plus one
    assert (field, rule) == ("body.features", "unknown_feature") and "zz_extra" in message
    without = {n: v for n, v in features.items() if n != names[3]}
    field, rule, message = rule_of({**without, "zz_extra": 1.0}, "body.items.2")  # unknown is named first
    assert (field, rule) == ("body.items.2.features", "unknown_feature") and "zz_extra" in message
    field, rule, message = rule_of(without)
    assert (field, rule) == ("body.features", "missing_feature") and message.startswith("1 feature(s)")
    assert names[3] in message
    field, rule, _ = rule_of({**features, names[7]: float("inf")})
    assert (field, rule) == (f"body.features.{names[7]}", "finite")

    h = {**make_key(app, "reader"), "content-type": JSON}
    r = client.post("/v1/signals", content=json.dumps({"ticker": "IBM", "features": features}), headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["input"] == "features" and r.json()["as_of"] is None
    logged = app.state.predlog.get(r.json()["request_id"])
    assert logged is not None and np.array_equal(np.asarray(logged["features"]), row)
    extra = json.dumps({"ticker": "IBM", "features": {**features, "zz_extra": 1.0}})
    r = client.post("/v1/signals", content=extra, headers=h)
    assert r.status_code == 422 and r.json()["rule"] == "unknown_feature" and r.json()["field"] == "body.features"


def _norm(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: ("<id>" if k == "request_id" else _norm(v)) for k, v in x.items()}
    if isinstance(x, list):
        return [_norm(v) for v in x]
    return x


def test_direct_path_answers_as_the_middleware_stack(app_client):
    """The same requests through the direct path and (``app.direct`` emptied) through the router and middleware
    stack: the same statuses, bodies, headers and error metrics."""
    app, client = app_client
    _, features, _ = _stored(app)
    reader = make_key(app, "reader")["Authorization"]
    operator = make_key(app, "operator")["Authorization"]
    as_of = json.dumps({"ticker": "IBM", "as_of": LAST_SAMPLE_DAY.isoformat()})
    cases = [
        ("/v1/signals", json.dumps({"ticker": "IBM", "features": features}), reader, JSON),
        ("/v1/signals?explain=true", as_of, reader, JSON),
        ("/v1/signals", as_of, operator, JSON),
        ("/v1/signals", as_of, None, JSON),
        ("/v1/signals", as_of, "Bearer nope", JSON),
        ("/v1/signals", as_of, reader, None),
        ("/v1/signals", '{"ticker": "IBM", "as_of": ', None, JSON),
        ("/v1/signals", '{"ticker": "IBM", "as_of": "2012-06-01", "colour": "red"}', reader, JSON),
        ("/v1/signals?explain=maybe", '{"ticker": 7}', reader, JSON),
        ("/v1/signals", '{"ticker": "ZZZZ", "as_of": "2012-06-01"}', reader, JSON),
        (
            "/v1/signals:batch",
            json.dumps({"items": [json.loads(as_of), {"ticker": "ZZZ", "as_of": "2012-06-01"}]}),
            reader,
            JSON,
        ),
        ("/v1/signals:batch", '{"items": []}', reader, JSON),
    ]

    def answers() -> list[tuple[int, Any, str | None]]:
        out = []
        for path, body, auth, content_type in cases:
            headers = {k: v for k, v in (("authorization", auth), ("content-type", content_type)) if v}
            r = client.post(path, content=body.encode(), headers=headers)
            out.append((r.status_code, _norm(r.json()), r.headers.get("www-authenticate")))
        return out

    def errors() -> list[str]:
        text = client.get("/metrics").text
        return sorted(line for line in text.splitlines() if line.startswith("tradeops_errors_total"))

    through_stack: list[str] = []
    stack_app = app.middleware_stack or app.build_middleware_stack()

    async def counting(scope, receive, send):
        through_stack.append(scope.get("path", ""))
        await stack_app(scope, receive, send)

    app.middleware_stack = counting
    assert set(app.direct) == {"/v1/signals", "/v1/signals:batch"}
    direct, direct_errors = answers(), errors()
    assert not [p for p in through_stack if p.startswith("/v1/signals")]  # none of them went through the stack
    saved, app.direct = app.direct, {}
    try:
        stack = answers()
    finally:
        app.direct = saved
    assert len([p for p in through_stack if p.startswith("/v1/signals")]) == len(cases)
    assert [s for s, _, _ in direct] == [200, 200, 200, 401, 401, 422, 422, 422, 422, 404, 200, 422]
    assert direct == stack
    # every error was counted once per pass: the stack's pass doubled the direct pass's counts
    doubled = [line.rsplit(" ", 1) for line in errors()]
    assert [(k, float(v)) for k, v in doubled] == [
        (k, 2 * float(v)) for k, v in (x.rsplit(" ", 1) for x in direct_errors)
    ]


def test_direct_path_internal_error_is_a_logged_500(make_app, monkeypatch):
    app, _ = make_app()
    client = TestClient(app, raise_server_exceptions=False)
    h = {**make_key(app, "reader"), "content-type": JSON}

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.state.service, "answer", broken)
    body = json.dumps({"ticker": "IBM", "as_of": LAST_SAMPLE_DAY.isoformat()})
    r = client.post("/v1/signals", content=body, headers=h)
    assert r.status_code == 500 and r.json()["rule"] == "internal" and "RuntimeError" in r.json()["error"]
    with pytest.raises(RuntimeError, match="boom"):  # raised on after the answer, as ServerErrorMiddleware does
        TestClient(app).post("/v1/signals", content=body, headers=h)
    assert 'tradeops_errors_total{endpoint="/v1/signals",kind="internal"} 2.0' in client.get("/metrics").text


def test_direct_path_only_without_middleware_or_root_path():
    from starlette.middleware.gzip import GZipMiddleware

    from tradeops.deploy.service import _ServiceApp

    app = _ServiceApp()
    assert app._direct_allowed({"root_path": ""})
    assert not app._direct_allowed({"root_path": "/api"})
    app.add_middleware(GZipMiddleware)
    assert not app._direct_allowed({"root_path": ""})
