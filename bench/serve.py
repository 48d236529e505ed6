"""Benchmark: the signal service over HTTP on localhost vs `mlflow models serve` of the same model version.

Trains a small CNN-TA model on the sample's IBM (1 epoch: weights do not change the cost of serving), starts
`tradeops serve` (auth on, a reader key, SQLite prediction log durable before each answer) and
`mlflow models serve --env-manager local -m models:/NAME/VERSION`, then times with ONE client (one keep-alive
connection, sequential requests; the same client for both servers: by default a minimal HTTP/1.1 client, each request
written in one send and the answer read to its end, ``--client http.client`` for the standard library's):
  - single `as_of` requests answered from stored features,
  - single feature-row requests (the same rows for both servers),
  - batches of 100 items (IBM at 100 different as_of dates; the sample's other tickers have no model here),
and checks that the prediction log holds exactly one row per answered request.
Prints one line per measurement: serve target=... kind=... n=... p50_ms=... p99_ms=... rps=...

    python bench/serve.py [--n 2000] [--mlflow-n 200] [--client raw|http.client]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RawConnection:
    """One keep-alive HTTP/1.1 connection with as little client work as a request allows: the request line, headers
    and body written in ONE ``sendall`` (``TCP_NODELAY``), the answer read by its ``Content-Length`` (or chunked
    framing) to the last byte. ``http.client`` writes headers and body in two sends and parses headers with the
    ``email`` package: ~0.2 ms of client CPU per request here, which a sequential client adds to every latency."""

    def __init__(self, host: str, port: int, timeout: float = 60) -> None:
        self.address, self.timeout = (host, port), timeout
        self.host = f"{host}:{port}".encode()
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buffer = sock, b""
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None

    def _recv(self) -> bytes:
        assert self.sock is not None
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionResetError("the server closed the connection")
        return data

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POST ``body``; returns (status, response body). A keep-alive connection the server closed while idle
        is reopened once (as ``http.client`` does)."""
        lines = [f"POST {path} HTTP/1.1".encode(), b"Host: " + self.host, f"Content-Length: {len(body)}".encode()]
        lines += [f"{k}: {v}".encode() for k, v in headers.items()]
        message = b"\r\n".join(lines) + b"\r\n\r\n" + body
        for attempt in (0, 1):
            fresh = self.sock is None
            sock = self._connect() if fresh else self.sock
            assert sock is not None
            try:
                sock.sendall(message)
                return self._response()
            except (ConnectionResetError, BrokenPipeError):
                self.close()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    def _response(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        fields = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        if b"content-length" in fields:
            n = int(fields[b"content-length"])
            while len(rest) < n:
                rest += self._recv()
            data, self.buffer = rest[:n], rest[n:]
        elif fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            chunks = []
            while True:
                while b"\r\n" not in rest:
                    rest += self._recv()
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:  # the last chunk, then (no trailers) an empty line
                    while b"\r\n" not in rest:
                        rest += self._recv()
                    self.buffer = rest.partition(b"\r\n")[2]
                    break
                while len(rest) < size + 2:
                    rest += self._recv()
                chunks.append(rest[:size])
                rest = rest[size + 2 :]
            data = b"".join(chunks)
        else:
            raise SystemExit(f"response without Content-Length or chunked framing: {head[:300]!r}")
        if fields.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, data


class StdlibConnection:
    """The same interface over ``http.client.HTTPConnection`` (``--client http.client``)."""

    def __init__(self, host: str, port: int) -> None:
        self.conn = http.client.HTTPConnection(host, port)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        self.conn.request("POST", path, body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.read()

    def close(self) -> None:
        self.conn.close()


def connect(kind: str, port: int) -> RawConnection | StdlibConnection:
    return RawConnection("127.0.0.1", port) if kind == "raw" else StdlibConnection("127.0.0.1", port)


def timed(
    conn: RawConnection | StdlibConnection, path: str, bodies: list[bytes], headers: dict
) -> tuple[np.ndarray, int]:
    """Latencies (ms) of POSTing each body in turn; returns (latencies, number of 200 answers)."""
    out = np.empty(len(bodies))
    ok = 0
    for i, body in enumerate(bodies):
        t0 = time.perf_counter()
        status, data = conn.post(path, body, headers)
        out[i] = (time.perf_counter() - t0) * 1e3
        if status == 200:
            ok += 1
        elif i == 0:
            raise SystemExit(f"{path}: HTTP {status}: {data[:300]!r}")
    return out, ok


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) CPU ticks of the machine so far (``/proc/stat``; None where there is none)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> str:
    """The share of CPU time the hypervisor took from this VM between two ``cpu_ticks`` (``n/a`` without them):
    latencies on a VM are only comparable between runs with similar steal."""
    if before is None or after is None or after[1] == before[1]:
        return "n/a"
    return f"{100 * (after[0] - before[0]) / (after[1] - before[1]):.1f}"


def report(target: str, kind: str, lat: np.ndarray, items: int = 1) -> float:
    p50, p99 = np.percentile(lat, 50), np.percentile(lat, 99)
    rps = len(lat) / (lat.sum() / 1e3)
    print(
        f"serve target={target} kind={kind} n={len(lat)} items_per_request={items} p50_ms={p50:.2f} "
        f"p99_ms={p99:.2f} rps={rps:.0f}",
        flush=True,
    )
    return rps


def wait_http(port: int, path: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server on {port} not ready after {timeout} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="single requests per kind against tradeops")
    ap.add_argument("--batches", type=int, default=200, help="batches of 100 against tradeops")
    ap.add_argument("--mlflow-n", type=int, default=200, help="single requests against mlflow models serve")
    ap.add_argument("--home", type=Path, default=None, help="reuse a prepared home (skips ingest + train)")
    ap.add_argument(
        "--client", choices=["raw", "http.client"], default="raw", help="the HTTP client (the same for both servers)"
    )
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from tradeops.config import load_settings
    from tradeops.data.calendar import trading_dates
    from tradeops.data.ingest import ingest
    from tradeops.data.sources import SampleSource
    from tradeops.data.store import lake_for
    from tradeops.deploy.auth import create_key
    from tradeops.deploy.features_cache import StoredFeatures
    from tradeops.deploy.models import feature_set_of
    from tradeops.deploy.predlog import open_database
    from tradeops.model.serving import load_registered
    from tradeops.model.training import train_model

    tmp = Path(tempfile.mkdtemp(prefix="tradeops-bench-serve-"))
    procs: list[subprocess.Popen] = []
    try:
        lax = {
            "blessing": {"min_recall_buy": 0.0, "min_recall_sell": 0.0, "min_macro_f1": 0.0, "min_net_sharpe": None},
            "baselines": False,
        }
        home = args.home or tmp / "home"
        settings = load_settings(home=home, model=lax, database_url=f"sqlite:///{tmp / 'service.db'}")
        if args.home is None:
            ingest(SampleSource(), settings, ["IBM"], today=date(2026, 11, 26))
            train_model(settings, preset="cnn-ta", tickers=["IBM"], epochs=1)
        name = "cnn-ta-IBM"
        bundle = load_registered(settings, name, "champion")
        version = bundle.model_version
        cache = StoredFeatures(lake_for(settings), feature_set_of(bundle), columns=bundle.feature_names)
        days = [d for d in trading_dates("2009-01-02", "2013-02-28") if cache.row("IBM", d) is not None]
        rows = [cache.row("IBM", d)[0].tolist() for d in days]  # type: ignore[index]
        engine = open_database(settings.service_database_url)
        _, token = create_key(engine, role="reader", name="bench")
        env = {
            **os.environ,
            "TRADEOPS_HOME": str(Path(home).resolve()),
            "TRADEOPS_DATABASE_URL": settings.service_database_url,
        }
        port = free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tradeops.cli.main", "--home", str(home), "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
            )
        )
        wait_http(port, "/readyz", procs[-1])
        conn = connect(args.client, port)
        h = {"content-type": "application/json", "authorization": f"Bearer {token}"}
        rng = np.random.default_rng(0)
        pick = rng.integers(0, len(days), size=args.n)
        as_of = [json.dumps({"ticker": "IBM", "as_of": days[i].isoformat()}).encode() for i in pick]
        timed(conn, "/v1/signals", as_of[:100], h)  # warm-up (not counted; logged)
        warm = 100
        lat, ok1 = timed(conn, "/v1/signals", as_of, h)
        report("tradeops", "single_as_of", lat)
        feats = [
            json.dumps({"ticker": "IBM", "features": dict(zip(bundle.feature_names, rows[i], strict=True))}).encode()
            for i in pick
        ]
        ticks = cpu_ticks()
        lat, ok2 = timed(conn, "/v1/signals", feats, h)
        t_steal = steal_pct(ticks, cpu_ticks())
        t_rps = report("tradeops", "single_features", lat)
        batches = []
        for _ in range(args.batches):
            sel = rng.choice(len(days), size=100, replace=False)
            items = [{"ticker": "IBM", "as_of": days[i].isoformat()} for i in sel]
            batches.append(json.dumps({"items": items}).encode())
        lat, ok3 = timed(conn, "/v1/signals:batch", batches, h)
        report("tradeops", "batch_as_of", lat, items=100)
        answered = warm + ok1 + ok2 + ok3 * 100
        with engine.connect() as c:
            from sqlalchemy import text

            logged = c.execute(text("SELECT count(*) FROM predictions")).scalar_one()
        print(f"serve check=log_rows answered={answered} logged={logged} equal={answered == logged}", flush=True)

        mport = free_port()
        menv = {
            **os.environ,
            "MLFLOW_TRACKING_URI": settings.tracking_uri,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        procs.append(
            subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "mlflow"),
                    "models",
                    "serve",
                    "--env-manager",
                    "local",
                    "-m",
                    f"models:/{name}/{version}",
                    "--port",
                    str(mport),
                    "--host",
                    "127.0.0.1",
                ],
                env=menv,
                stdout=subprocess.DEVNULL,
                stderr=open(tmp / "mlflow.log", "w"),
            )
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                ping = http.client.HTTPConnection("127.0.0.1", mport, timeout=2)
                ping.request("GET", "/ping")
                if ping.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or procs[-1].poll() is not None:
                raise SystemExit("mlflow models serve did not start: " + (tmp / "mlflow.log").read_text()[-1500:])
            time.sleep(0.5)
        mconn = connect(args.client, mport)
        mh = {"content-type": "application/json"}
        cols = bundle.feature_names
        msingle = [
            json.dumps({"dataframe_split": {"columns": cols, "data": [rows[i]]}}).encode()
            for i in pick[: args.mlflow_n]
        ]
        timed(mconn, "/invocations", msingle[:10], mh)
        ticks = cpu_ticks()
        lat, _ = timed(mconn, "/invocations", msingle, mh)
        m_steal = steal_pct(ticks, cpu_ticks())
        m_rps = report("mlflow", "single_features", lat)
        mbatch = []
        for _ in range(max(10, args.mlflow_n // 10)):
            sel = rng.choice(len(days), size=100, replace=False)
            mbatch.append(json.dumps({"dataframe_split": {"columns": cols, "data": [rows[i] for i in sel]}}).encode())
        lat, _ = timed(mconn, "/invocations", mbatch, mh)
        report("mlflow", "batch_features", lat, items=100)
        print(f"serve ratio=single_features_rps tradeops_over_mlflow={t_rps / m_rps:.1f}", flush=True)
        print(
            f"serve check=cpu_steal_pct tradeops_single_features={t_steal} mlflow_single_features={m_steal}", flush=True
        )
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
