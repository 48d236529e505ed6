"""`tradeops serve` (thin wrapper over ``tradeops.deploy.service``) and the service part of `tradeops demo`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from tradeops.cli.common import console, settings_of
from tradeops.config import Settings
from tradeops.errors import TradeopsError

FACTORY = "tradeops.deploy.service:app_from_env"


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the root app."""

    @app.command("serve")
    def serve_cmd(
        ctx: typer.Context,
        host: Annotated[Optional[str], typer.Option("--host", help="Interface to bind (default service.host).")] = None,
        port: Annotated[Optional[int], typer.Option("--port", help="Port (default service.port, 8000).")] = None,
        workers: Annotated[
            Optional[int], typer.Option("--workers", min=1, help="Worker processes (default service.workers).")
        ] = None,
    ) -> None:
        """Serve signals over HTTP: POST /v1/signals, /v1/signals:batch; GET /v1/models, /healthz, /readyz,
        /metrics; POST /v1/admin/{promote,rollback,routing,halt,resume,reload}. Authorization: Bearer <key>."""
        import uvicorn

        settings = settings_of(ctx)
        cfg = settings.service
        host = host or cfg.host
        port = port or cfg.port
        workers = workers or cfg.workers
        # Workers build their own app from the environment: hand them this invocation's home.
        os.environ["TRADEOPS_HOME"] = str(settings.home.resolve())
        console.print(f"tradeops serve: listening on http://{host}:{port} ({workers} worker(s))", highlight=False)
        if cfg.auth:
            console.print("auth: on (API keys: `tradeops keys create --role reader|operator`)", highlight=False)
        else:
            console.print(
                "[bold red]auth: OFF[/bold red] (service.auth = false): anyone who can reach the port may read "
                "signals and run admin calls",
                highlight=False,
            )
        console.print(
            f"routing: {cfg.routing_mode} (canary share {cfg.canary_share}); prediction log: "
            f"{_redact(settings.service_database_url)}",
            highlight=False,
        )
        uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers, log_level="warning", access_log=False)


def _redact(url: str) -> str:
    """A database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, where = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{where}" if ":" in creds else url
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 30) -> tuple[int, Any]:
    """One JSON request with the standard library: ``(status, parsed body)``."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - localhost only
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def start_service(settings: Settings, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``tradeops serve`` in a subprocess on 127.0.0.1:``port`` for this home (returns at once)."""
    full = {**os.environ, "TRADEOPS_HOME": str(settings.home.resolve()), **(env or {})}
    full.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if settings.database_url:
        full["TRADEOPS_DATABASE_URL"] = settings.database_url
    cmd = [
        sys.executable,
        "-m",
        "tradeops.cli.main",
        "--home",
        str(settings.home.resolve()),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return subprocess.Popen(cmd, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 120) -> dict:
    """Poll ``/readyz`` until 200; the server's stderr in the error if it exits or stays unready."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise TradeopsError(f"the service exited with {proc.returncode} before it was ready:\n{err[-2000:]}")
        try:
            status, last = http("GET", f"{base}/readyz", timeout=2)
            if status == 200:
                return last
        except OSError:
            pass
        time.sleep(0.2)
    raise TradeopsError(f"the service was not ready after {timeout:.0f} s (last /readyz: {last})")


def stop_service(proc: subprocess.Popen) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run_service_demo(settings: Settings, console: Console) -> dict:
    """The service step of `tradeops demo`: reader and operator keys, the service in a subprocess, one signal per
    sample ticker that has a served model (as of its last stored bar), a canary decision, then stop."""
    from tradeops.data.store import lake_for
    from tradeops.deploy.auth import create_key
    from tradeops.deploy.predlog import open_database
    from tradeops.deploy.signals import bar_ranges

    engine = open_database(settings.service_database_url)
    reader_id, reader = create_key(engine, role="reader", name="demo-reader")
    operator_id, operator = create_key(engine, role="operator", name="demo-operator")
    engine.dispose()
    ranges = bar_ranges(lake_for(settings))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_service(settings, port)
    out: dict[str, Any] = {"url": base, "keys": {"reader": reader_id, "operator": operator_id}, "signals": []}
    try:
        wait_ready(base, proc)
        _, models = http("GET", f"{base}/v1/models", token=reader)
        served = {t: m for m in models["models"] for t in m["universe"]}
        console.print(f"service on {base}; served models: {', '.join(m['name'] for m in models['models'])}")
        for ticker in sorted(t for t in ranges if t in served):
            as_of = ranges[ticker][1].isoformat()
            status, body = http("POST", f"{base}/v1/signals", {"ticker": ticker, "as_of": as_of}, token=reader)
            out["signals"].append({"ticker": ticker, "as_of": as_of, "status": status, **(body or {})})
            if status == 200:
                p = body["probabilities"]
                console.print(
                    f"  {ticker} {as_of}: {body['signal']:4s} (BUY {p['BUY']:.2f} SELL {p['SELL']:.2f} HOLD "
                    f"{p['HOLD']:.2f}) {body['model']} v{body['version']}, answered by {body['answered_by']} "
                    f"({body['routing_mode']} mode), request {body['request_id']}",
                    highlight=False,
                )
                _print_shadow(settings, body["request_id"], console)
            else:
                console.print(f"  {ticker} {as_of}: HTTP {status}: {body.get('error')}", highlight=False)
        skipped = sorted(t for t in ranges if t not in served)
        if skipped:
            console.print(f"  no served model for {', '.join(skipped)} (not trained)", highlight=False)
        out["routing"] = _canary_demo(base, operator, reader, models["models"], ranges, console)
        out["history"] = _history_traffic(base, reader, models["models"], ranges, console)
    finally:
        out["exit_code"] = stop_service(proc)
    console.print("service stopped")
    return out


def _print_shadow(settings: Settings, request_id: str, console: Console) -> None:
    """What the prediction log holds for ``request_id`` beside the answer: the shadow challenger's output."""
    from tradeops.deploy.predlog import logged_prediction, make_engine

    engine = make_engine(settings.service_database_url)
    try:
        row = logged_prediction(engine, request_id)
    finally:
        engine.dispose()
    if row is None:
        console.print(f"    prediction log: request {request_id} NOT FOUND", highlight=False)
    elif row["challenger_signal"] is None:
        console.print("    prediction log: no challenger scored beside the champion", highlight=False)
    else:
        console.print(
            f"    prediction log: shadow challenger v{row['challenger_version']} said {row['challenger_signal']} "
            f"(logged, not returned); champion v{row['champion_version']} said {row['champion_signal']}",
            highlight=False,
        )


def _history_traffic(base: str, reader: str, models: list[dict], ranges: dict, console: Console) -> dict:
    """Signals for each served ticker's last 120 sessions in one batch per ticker (what monitoring reads: served
    feature rows for drift, signals for live quality once labels mature and for paper trading)."""
    from tradeops.data.calendar import trading_dates

    answered = 0
    tickers = sorted({t for m in models for t in m["universe"] if t in ranges})
    for ticker in tickers:
        days = [d.isoformat() for d in trading_dates(ranges[ticker][0], ranges[ticker][1])][-120:]
        status, res = http(
            "POST", f"{base}/v1/signals:batch", {"items": [{"ticker": ticker, "as_of": d} for d in days]}, token=reader
        )
        if status != 200:
            raise TradeopsError(f"history traffic: [batch] {ticker} answered HTTP {status}: {res}")
        answered += sum(1 for r in res["results"] if "signal" in r)
    console.print(f"served {answered} signals for the last 120 sessions of {', '.join(tickers)} (logged)")
    return {"tickers": tickers, "answered": answered}


def _canary_demo(base: str, operator: str, reader: str, models: list[dict], ranges: dict, console: Console) -> dict:
    with_challenger = [m for m in models if m["challenger"]]
    if not with_challenger:
        console.print(
            "routing: no model has a challenger, so shadow mode scores nothing beside the champion and a canary "
            "would send every key to the champion; train a second version to see shadow/canary at work",
            highlight=False,
        )
        return {"mode": models[0]["routing_mode"] if models else None, "challenger": None}
    m = with_challenger[0]
    ticker = m["universe"][0]
    status, set_body = http("POST", f"{base}/v1/admin/routing", {"mode": "canary", "share": 0.3}, token=operator)
    from tradeops.data.calendar import trading_dates

    days = [d.isoformat() for d in trading_dates(ranges[ticker][0], ranges[ticker][1])][-20:]
    _, res = http(
        "POST", f"{base}/v1/signals:batch", {"items": [{"ticker": ticker, "as_of": d} for d in days]}, token=reader
    )
    by = [r.get("answered_by") for r in res["results"]]
    console.print(
        f"canary 30% for {m['name']} (champion v{m['champion']}, challenger v{m['challenger']}): the challenger "
        f"answered {by.count('challenger')} of {len(by)} {ticker} dates "
        f"({', '.join(d for d, b in zip(days, by, strict=True) if b == 'challenger') or 'none'})",
        highlight=False,
    )
    # Routing is shared service state (it outlives this process): put back what the service had.
    before = {"mode": m["routing_mode"], "share": m["canary_share"]}
    restored, _ = http("POST", f"{base}/v1/admin/routing", before, token=operator)
    if restored != 200:
        raise TradeopsError(f"routing: [restore] setting it back to {before} answered HTTP {restored}")
    console.print(f"routing set back to {before['mode']} (share {before['share']})", highlight=False)
    return {
        "mode": "canary",
        "share": 0.3,
        "model": m["name"],
        "challenger_answered": by.count("challenger"),
        "keys": len(by),
        "routing_status": status,
        "routing": set_body,
    }
