"""MLflow tracking setup and the model registry: aliases ``champion``/``challenger``, promotion and rollback.

Promotion is by alias and recorded run id, never "the newest file". Every champion move is appended to the registered
model's ``champion_history`` tag (JSON): a promotion pushes onto the recorded champion stack, a rollback pops the
entry it undoes, so successive rollbacks walk back one champion at a time.

A model version is registered with all its tags at once and ``tradeops.complete=false``; training flips the flag to
``true`` only after lineage is written. A version flagged incomplete, or lacking a required tag, is never promoted.

Training records its pid and host on its MLflow run; :func:`reap_orphaned_runs` ends the ``RUNNING`` runs whose
process is gone (``kill -9``, power loss) as ``KILLED``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from datetime import UTC, datetime
from pathlib import Path

from tradeops.config import Settings
from tradeops.errors import TradeopsError, UsageError

CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT = "tradeops"
HISTORY_TAG = "champion_history"
COMPLETE_TAG = "tradeops.complete"
# What a version must carry to be served, compared or reproduced (written by `train` at registration).
REQUIRED_TAGS = (
    "run_id",
    "feature_set_version",
    "git_commit",
    "bars_version",
    "features_version",
    "labels_version",
    "blessed",
)
PID_TAG = "tradeops.pid"
HOST_TAG = "tradeops.hostname"
PID_START_TAG = "tradeops.pid_start"
REAPED_TAG = "tradeops.reaped"


class RegistryError(TradeopsError):
    """The tracking store or model registry failed (outage, broken store); nothing was decided from it."""


def _error_code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


def store_errors() -> tuple[type[Exception], ...]:
    """What a failing tracking store raises: MLflow's errors, and SQLAlchemy's from a database backend (a broken
    or locked SQLite file, an unreachable PostgreSQL) which MLflow lets through."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    return MlflowException, SQLAlchemyError


def _describe_error(exc: BaseException) -> str:
    code = _error_code(exc) or type(exc).__name__
    text = str(getattr(exc, "message", None) or exc).strip()
    return f"MLflow failed ({code}): {text.splitlines()[0] if text else '(no message)'}"  # SQLAlchemy appends SQL


def _not_found(exc: BaseException) -> bool:
    """True for MLflow's RESOURCE_DOES_NOT_EXIST (and only that)."""
    return _error_code(exc) == "RESOURCE_DOES_NOT_EXIST"


@contextmanager
def registry_errors(what: str) -> Iterator[None]:
    """Re-raise an MLflow failure as :class:`RegistryError` naming what was being done."""
    try:
        yield
    except store_errors() as exc:
        raise RegistryError(f"{what}: {_describe_error(exc)}") from exc


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured tracking URI (default SQLite under the home) and return the experiment id."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    # MLflow narrates every registration, store migration and pyfunc log; our CLI reports instead. Set after the
    # import: importing mlflow configures its own logger.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)

    settings.home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    with registry_errors(f"tracking store {settings.tracking_uri}"):
        exp = mlflow.get_experiment_by_name(EXPERIMENT)
        if exp is not None:
            return exp.experiment_id
        return mlflow.create_experiment(EXPERIMENT, artifact_location=settings.artifact_root)


def client(settings: Settings):
    from mlflow.tracking import MlflowClient

    configure_mlflow(settings)
    with registry_errors(f"tracking store {settings.tracking_uri}"):
        return MlflowClient(tracking_uri=settings.tracking_uri)


def model_name(preset: str, tickers: list[str]) -> str:
    """Registered model name: one per preset and ticker set, e.g. ``cnn-ta-IBM``."""
    return f"{preset}-{'-'.join(sorted(tickers))}"


# --- runs: liveness tags and reaping -----------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (state first), or None where there is no procfs entry."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # the command name (field 2) may hold spaces and parentheses


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks after boot (Linux), to tell a reused pid from the original."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def run_owner_tags() -> dict[str, str]:
    """Tags that let a later process decide whether this run's process is still alive."""
    tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    started = process_start(os.getpid())
    if started is not None:
        tags[PID_START_TAG] = started
    return tags


def process_alive(pid: int, started: str | None) -> bool:
    """Whether ``pid`` on this host is still the process that recorded ``started``; unsure means alive."""
    if os.name == "nt":  # os.kill(pid, 0) is not a probe on Windows; never end a run we cannot check
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    fields = _proc_stat(pid)
    if fields is None:
        return True
    if fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return False
    return started is None or len(fields) <= 19 or fields[19] == started


def orphan_reason(tags: dict[str, str], host: str) -> str | None:
    """Why a RUNNING run with these tags is orphaned, or None when it may still be running (or cannot be told)."""
    pid, run_host = tags.get(PID_TAG), tags.get(HOST_TAG)
    if not pid or not pid.isdigit() or run_host != host:
        return None
    if process_alive(int(pid), tags.get(PID_START_TAG)):
        return None
    return f"process {pid} on {run_host} is gone"


def reap_orphaned_runs(settings: Settings) -> list[str]:
    """Mark our experiment's RUNNING runs whose training process is gone (same host, pid not alive) as KILLED, with
    a ``tradeops.reaped`` tag saying why; return their run ids. Runs of live processes, of other hosts and runs
    without our pid tags are left alone."""
    if not tracking_store_exists(settings):
        return []  # nothing was ever tracked here; do not create the store just to find that out
    c = client(settings)
    host = socket.gethostname()
    reaped = []
    with registry_errors(f"looking for orphaned runs in {settings.tracking_uri}"):
        exp = c.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            return []
        runs, token = [], None
        while True:
            page = c.search_runs(
                [exp.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                break
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for run in runs:
            why = orphan_reason(run.data.tags, host)
            if why is None:
                continue
            c.set_tag(run.info.run_id, REAPED_TAG, f"{why}; marked KILLED at {now} by pid {os.getpid()}")
            c.set_terminated(run.info.run_id, status="KILLED")
            reaped.append(run.info.run_id)
    return reaped


# --- versions: completeness ------------------------------------------------------------------------------------


def missing_tags(tags: dict[str, str]) -> list[str]:
    """What makes a version incomplete: required tags it lacks, and ``tradeops.complete`` when flagged false.

    Versions registered before the flag existed count as complete when they carry every required tag."""
    missing = [k for k in REQUIRED_TAGS if not tags.get(k)]
    if tags.get(COMPLETE_TAG, "true") != "true":
        missing.append(COMPLETE_TAG)
    return missing


def register_version(name: str, model_uri: str, tags: dict[str, str]) -> str:
    """Register ``model_uri`` under ``name`` with all ``tags`` in one call, flagged incomplete; return the version."""
    import mlflow

    # MLflow prints "Successfully registered ..." itself; our CLI reports instead
    with registry_errors(f"registering {model_uri} as {name}"), redirect_stderr(io.StringIO()):
        mv = mlflow.register_model(model_uri, name, tags={**tags, COMPLETE_TAG: "false"})
    return str(mv.version)


def mark_complete(c, name: str, version: str) -> None:
    """Flip a version's ``tradeops.complete`` flag once everything about it is written."""
    with registry_errors(f"marking {name} v{version} complete"):
        c.set_model_version_tag(name, version, COMPLETE_TAG, "true")


def _get_version(c, name: str, version: str):
    try:
        return c.get_model_version(name, str(version))
    except store_errors() as exc:
        if _not_found(exc):
            raise UsageError(f"no version {version} of registered model {name!r}") from exc
        raise RegistryError(f"reading {name} v{version}: {_describe_error(exc)}") from exc


def _check_complete(name: str, mv) -> None:
    missing = missing_tags(dict(mv.tags))
    if missing:
        raise TradeopsError(
            f"{name} v{mv.version} is incomplete (its registration did not finish; missing or "
            f"unfinished tags: {', '.join(missing)}): refusing to make it champion"
        )


# --- aliases and the champion history --------------------------------------------------------------------------


def alias_version(c, name: str, alias: str) -> str | None:
    """The version an alias points at; None only when the registered model or the alias does not exist.

    Any other failure (tracking outage, broken store) raises :class:`RegistryError`: it must never read as "no
    champion"."""
    try:
        rm = c.get_registered_model(name)
    except store_errors() as exc:
        if _not_found(exc):
            return None
        raise RegistryError(f"looking up the {alias} of {name}: {_describe_error(exc)}") from exc
    # The alias itself is read from the model, not by lookup: a missing alias is INVALID_PARAMETER_VALUE in MLflow,
    # an error code other failures share.
    version = (rm.aliases or {}).get(alias)
    return None if version is None else str(version)


def _history(c, name: str) -> list[dict]:
    with registry_errors(f"reading the champion history of {name}"):
        rm = c.get_registered_model(name)
    try:
        history = json.loads(rm.tags.get(HISTORY_TAG, "[]"))
    except json.JSONDecodeError as exc:
        raise TradeopsError(f"{name}: the {HISTORY_TAG} tag is not JSON ({exc})") from exc
    if not isinstance(history, list):
        raise TradeopsError(f"{name}: the {HISTORY_TAG} tag is not a list")
    return history


def is_rollback(entry: dict) -> bool:
    """Whether a history entry records a rollback (entries written before ``action`` existed say so in ``reason``)."""
    return (
        entry.get("action", "rollback" if str(entry.get("reason", "")).startswith("rollback") else "promote")
        == "rollback"
    )


def champion_stack(history: list[dict]) -> list[int]:
    """Indices of the promotions still in force, oldest first: each promotion pushes, each rollback pops one."""
    stack: list[int] = []
    for i, entry in enumerate(history):
        if not is_rollback(entry):
            stack.append(i)
        elif stack:
            stack.pop()
    return stack


def _record(c, name: str, history: list[dict], entry: dict, to_version: str) -> dict:
    with registry_errors(f"moving the champion of {name} to v{to_version}"):
        c.set_registered_model_alias(name, CHAMPION, to_version)
        c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history + [entry]))
    return entry


def _now() -> str:
    return datetime.now(UTC).isoformat()


def promote(settings: Settings, name: str, version: str, reason: str, *, force: bool = False) -> dict:
    """Make ``version`` the champion of ``name`` and record the move; returns the history entry.

    Refuses an incomplete version (:class:`TradeopsError`) and, unless ``force``, an unblessed one
    (:class:`UsageError`). Promoting the current champion changes and records nothing (``changed`` false)."""
    c = client(settings)
    mv = _get_version(c, name, version)
    version = str(mv.version)
    _check_complete(name, mv)
    blessed = mv.tags.get("blessed") == "true"
    if not blessed and not force:
        raise UsageError(
            f"{name} v{version} is not blessed (it failed its blessing checks); use --force to make it champion anyway"
        )
    previous = alias_version(c, name, CHAMPION)
    entry = {
        "at": _now(),
        "action": "promote",
        "champion": version,
        "previous": previous,
        "run_id": mv.run_id,
        "reason": reason,
        "blessed": blessed,
        "forced": not blessed,
    }
    if previous == version:
        return {**entry, "changed": False}
    return {**_record(c, name, _history(c, name), entry, version), "changed": True}


def rollback(settings: Settings, name: str) -> dict:
    """Undo the last promotion still in force: restore the champion before it; returns the history entry."""
    c = client(settings)
    current = alias_version(c, name, CHAMPION)
    if current is None:
        raise UsageError(f"{name!r} has no champion to roll back")
    history = _history(c, name)
    stack = champion_stack(history)
    if not stack:
        raise UsageError(f"{name!r}: no earlier champion recorded before v{current}")
    undone = history[stack[-1]]
    if str(undone["champion"]) != current:
        raise TradeopsError(
            f"{name!r}: the champion alias points at v{current} but the last recorded champion is "
            f"v{undone['champion']} (the alias was moved outside tradeops); promote the version you "
            "want explicitly"
        )
    target = undone.get("previous")
    if target is None:
        raise UsageError(f"{name!r}: no earlier champion recorded before v{current}")
    mv = _get_version(c, name, str(target))
    _check_complete(name, mv)
    entry = {
        "at": _now(),
        "action": "rollback",
        "champion": str(mv.version),
        "previous": current,
        "run_id": mv.run_id,
        "reason": f"rollback from v{current}",
        "undoes": stack[-1],
    }
    return _record(c, name, history, entry, str(mv.version))


def resolve_name(settings: Settings, name: str | None) -> str:
    """The registered model to act on: ``name``, or the only one there is."""
    c = client(settings)
    with registry_errors("listing registered models"):
        names = [m.name for m in c.search_registered_models()]
    if name:
        if name not in names:
            raise UsageError(f"no registered model {name!r}; registered: {', '.join(names) or 'none'}")
        return name
    if len(names) != 1:
        raise UsageError(f"say which model with --model (registered: {', '.join(names) or 'none'})")
    return names[0]


def describe(settings: Settings, name: str) -> dict:
    """Versions (with completeness), aliases and history of a registered model."""
    c = client(settings)
    with registry_errors(f"describing {name}"):
        rm = c.get_registered_model(name)
        versions = sorted(c.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    return {
        "name": name,
        "aliases": {k: str(v) for k, v in (rm.aliases or {}).items()},
        "versions": [
            {
                "version": str(v.version),
                "run_id": v.run_id,
                "tags": dict(v.tags),
                "complete": not missing_tags(dict(v.tags)),
                "missing_tags": missing_tags(dict(v.tags)),
            }
            for v in versions
        ],
        "history": _history(c, name),
    }


def tracking_store_exists(settings: Settings) -> bool:
    """False only for the default SQLite store when its file was never created (nothing tracked in this home):
    read-only commands then answer without importing MLflow or creating the store."""
    return settings.mlflow_tracking_uri is not None or (settings.home / "mlflow.db").exists()


def describe_all(settings: Settings) -> list[dict]:
    """:func:`describe` for every registered model (none, without touching MLflow, in a home that tracked nothing)."""
    if not tracking_store_exists(settings):
        return []
    c = client(settings)
    with registry_errors("listing registered models"):
        names = [m.name for m in c.search_registered_models()]
    return [describe(settings, n) for n in names]
