"""Run a few long-lived child processes together (``tradeops ui dagster``: webserver + daemon).

Each child gets its own session (process group): Ctrl-C in the terminal reaches only us, and we stop the children
in order: SIGTERM, wait up to ``grace_seconds``, then SIGKILL to the group. If one child exits on its own, the
others are stopped too and the outcome names it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """How supervision ended: ``exit_code`` 0 after a stop signal, 1 when a child died (``message`` says which)."""

    exit_code: int
    message: str


def _stop(procs: Sequence[tuple[str, subprocess.Popen]], grace_seconds: float) -> None:
    for _, p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace_seconds
    for _, p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                p.kill()
            p.wait()
        else:
            try:  # the child's own children (a code server) go with it
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def supervise(
    children: Sequence[tuple[str, Sequence[str]]],
    *,
    env: Mapping[str, str],
    poll_seconds: float = 0.2,
    grace_seconds: float = 10.0,
    on_started=None,
) -> Outcome:
    """Start ``children`` (name, argv) with ``env``; block until SIGINT/SIGTERM (-> exit 0) or a child exits (-> 1).

    Must run in the main thread (it installs signal handlers, restored on return)."""
    stopping: list[int] = []

    def handler(signum, _frame) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    procs: list[tuple[str, subprocess.Popen]] = []
    try:
        for name, argv in children:
            procs.append((name, subprocess.Popen(list(argv), env=dict(env), start_new_session=True)))
        if on_started is not None:
            on_started()
        while not stopping:
            for name, p in procs:
                code = p.poll()
                if code is not None:
                    others = [n for n, q in procs if q is not p]
                    _stop(procs, grace_seconds)
                    return Outcome(1, f"{name} exited with code {code}; stopped {', '.join(others) or 'nothing'}")
            time.sleep(poll_seconds)
        _stop(procs, grace_seconds)
        return Outcome(0, f"stopped {', '.join(n for n, _ in procs)} ({signal.Signals(stopping[0]).name})")
    except BaseException:
        _stop(procs, grace_seconds)
        raise
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
