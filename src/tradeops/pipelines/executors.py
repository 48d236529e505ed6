"""The executor of every job, chosen by configuration (``pipelines.executor``), never by code changes.

- ``in_process``: every step in the launching process (tests, debugging);
- ``multiprocess``: one process per step on this machine (the default);
- ``celery``: steps are Celery tasks on ``pipelines.celery_queue`` of ``pipelines.celery_broker``, run by any number
  of ``celery -A dagster_celery.app worker -Q <queue>`` processes on any machines that share the home (or the lake and
  the Dagster/MLflow databases by URL); the workers' broker comes from :func:`celery_worker_config`;
- ``k8s``: each step is a Kubernetes Job (``dagster_k8s.k8s_job_executor``), configured per run by the ``execution``
  section of ``deploy/k8s/run_config.yaml`` (image, namespace, per-step pod resources).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from tradeops.config import Settings
from tradeops.errors import TradeopsError

CELERY_CONFIG_MODULE = "dagster_celery_config"  # the module name `dagster_celery.app` imports when it is on the path


def celery_executor_config(settings: Settings) -> dict[str, Any]:
    """The ``celery_executor`` config of these settings: broker, result backend and the queue steps are sent to."""
    p = settings.pipelines
    return {
        "broker": p.celery_broker,
        "backend": p.celery_backend,
        # the executor submits each step to the default queue; workers listen on it with -Q
        "config_source": {"task_default_queue": p.celery_queue},
    }


def celery_worker_config(settings: Settings) -> str:
    """Source of the ``dagster_celery_config`` module a worker of ``dagster_celery.app`` reads: the same broker and
    backend as :func:`celery_executor_config` (a worker on another broker never sees the steps). One task at a time
    per worker process: steps are long and uneven, so prefetching would starve the other workers."""
    p = settings.pipelines
    return (
        f"broker_url = {p.celery_broker!r}\n"
        f"result_backend = {p.celery_backend!r}\n"
        f"task_default_queue = {p.celery_queue!r}\n"
        "worker_prefetch_multiplier = 1\n"
    )


def write_celery_worker_config(settings: Settings, directory: Path) -> Path:
    """Write :func:`celery_worker_config` as ``<directory>/dagster_celery_config.py``; put ``directory`` on the
    worker's ``PYTHONPATH``. Returns the file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{CELERY_CONFIG_MODULE}.py"
    path.write_text(celery_worker_config(settings))
    return path


WORKER_PRELOAD = ("tradeops.pipelines.definitions",)


def celery_worker_argv(
    settings: Settings, *, name: str, pool: str = "solo", preload: tuple[str, ...] = WORKER_PRELOAD
) -> list[str]:
    """``celery worker`` command line of one worker process named ``name`` on this settings' queue.

    ``pool="solo"`` runs each task in the worker process itself (one step at a time); start one worker per core.
    Mingle, gossip and heartbeats are off: workers never talk to each other, and they start in about a second.
    ``preload`` modules are imported at start, so the first step does not pay for importing the code location.
    """
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "dagster_celery.app",
        "worker",
        "-Q",
        settings.pipelines.celery_queue,
        "-n",
        f"{name}@%h",
        "-P",
        pool,
        "-c",
        "1",
        "--prefetch-multiplier=1",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=WARNING",
        *(["--include", ",".join(preload)] if preload else []),
    ]


def celery_app(settings: Settings):
    """A Celery app on this settings' broker, backend and queue (the executor's own; for pings and queue purges)."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    cfg = celery_executor_config(settings)
    return make_app(CeleryExecutor.for_cli(**cfg).app_args())


def check_broker(settings: Settings, timeout_s: float = 5.0) -> None:
    """Raise :class:`TradeopsError` naming the broker (password masked) when it cannot be reached."""
    from kombu import Connection

    conn = Connection(settings.pipelines.celery_broker, connect_timeout=timeout_s)
    try:
        conn.ensure_connection(max_retries=1, timeout=timeout_s)
    except Exception as exc:  # kombu raises the transport's own errors (socket, amqp, redis)
        raise TradeopsError(
            f"pipelines.celery_broker {conn.as_uri()}: [broker_unreachable] {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        conn.release()


class CeleryWorkers:
    """``count`` local worker processes of :func:`celery_worker_argv` (one step at a time each), for tests, benches
    and single-machine scale-out. ``env`` must describe the same home and settings as the launching process
    (``TRADEOPS_HOME``, ``TRADEOPS_*``, ``DAGSTER_HOME``): workers rebuild the code location from it.

    Use as a context manager: leaving it stops every worker (SIGTERM, then SIGKILL of its process group).
    """

    def __init__(self, settings: Settings, count: int, directory: Path, env: dict[str, str], log: IO | None = None):
        if count < 1:
            raise TradeopsError(f"celery workers: [worker_count] need at least 1, got {count}")
        self.settings = settings
        config = write_celery_worker_config(settings, directory)
        pythonpath = os.pathsep.join(p for p in (str(config.parent), env.get("PYTHONPATH", "")) if p)
        self._env = {**env, "PYTHONPATH": pythonpath}
        self.names = [f"tradeops-w{i}-{os.getpid()}" for i in range(count)]
        self._log = log
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> CeleryWorkers:
        check_broker(self.settings)
        out = self._log if self._log is not None else subprocess.DEVNULL
        try:
            for name in self.names:
                self.procs.append(
                    subprocess.Popen(
                        celery_worker_argv(self.settings, name=name),
                        env=self._env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group: stopped as a whole, never orphaned
                    )
                )
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until every worker answers a ping on the broker; raise naming the silent ones."""
        app = celery_app(self.settings)
        deadline = time.monotonic() + timeout_s
        wanted = {n.lower() for n in self.names}
        seen: set[str] = set()
        while time.monotonic() < deadline:
            dead = [p.pid for p in self.procs if p.poll() is not None]
            if dead:
                raise TradeopsError(f"celery workers: [worker_exit] worker processes {dead} exited at start")
            replies = app.control.ping(timeout=1.0) or []
            seen |= {name.split("@", 1)[0].lower() for reply in replies for name in reply}
            if wanted <= seen:
                return
        raise TradeopsError(
            f"celery workers: [worker_timeout] {sorted(wanted - seen)} did not answer within {timeout_s:.0f} s"
        )

    def stop(self, timeout_s: float = 3.0) -> None:
        """SIGTERM (warm shutdown: a running step finishes), then SIGKILL of the process group after ``timeout_s``.

        An idle solo worker still takes ~10 s to leave its blocking broker read after SIGTERM; callers stop
        workers once their runs are over, so the short grace loses nothing."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()  # warm shutdown: the running step finishes
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)


def purge_queue(settings: Settings) -> None:
    """Delete this settings' Celery queue from the broker (a per-run test queue must not pile up there)."""
    from kombu import Connection

    with Connection(settings.pipelines.celery_broker, connect_timeout=5) as conn:
        channel = conn.default_channel
        try:
            channel.queue_delete(settings.pipelines.celery_queue)
        except conn.channel_errors:  # never declared (no step was sent): nothing to delete
            pass


def executor_for(settings: Settings):
    """The Dagster executor definition for ``settings.pipelines.executor``."""
    import dagster as dg

    kind = settings.pipelines.executor
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        return dg.multi_or_in_process_executor
    if kind == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_executor_config(settings), name="celery")
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor

        # left unconfigured: the run config's `execution: config:` (deploy/k8s/run_config.yaml) sets image,
        # namespace and per-step pod resources for each launch
        return k8s_job_executor
    raise NotImplementedError(f"pipelines.executor={kind!r} is not wired yet")
