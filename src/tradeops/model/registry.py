"""MLflow tracking setup and the model registry: aliases ``champion``/``challenger``, promotion and rollback.

Promotion is by alias and recorded run id, never "the newest file". Every alias move is appended to the registered
model's ``champion_history`` tag (JSON), which is what ``rollback`` reads.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

from tradeops.config import Settings
from tradeops.errors import TradeopsError, UsageError

CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT = "tradeops"
HISTORY_TAG = "champion_history"


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured tracking URI (default SQLite under the home) and return the experiment id."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow narrates every registration and warns about cloudpickle on each pyfunc log; our CLI reports instead.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import mlflow

    settings.home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    return mlflow.create_experiment(EXPERIMENT, artifact_location=settings.artifact_root)


def client(settings: Settings):
    from mlflow.tracking import MlflowClient

    configure_mlflow(settings)
    return MlflowClient(tracking_uri=settings.tracking_uri)


def model_name(preset: str, tickers: list[str]) -> str:
    """Registered model name: one per preset and ticker set, e.g. ``cnn-ta-IBM``."""
    return f"{preset}-{'-'.join(sorted(tickers))}"


def _history(c, name: str) -> list[dict]:
    rm = c.get_registered_model(name)
    return json.loads(rm.tags.get(HISTORY_TAG, "[]"))


def alias_version(c, name: str, alias: str) -> str | None:
    """The version an alias points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(c.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def promote(settings: Settings, name: str, version: str, reason: str) -> dict:
    """Make ``version`` the champion of ``name`` and record the move; returns the history entry."""
    from mlflow.exceptions import MlflowException

    c = client(settings)
    try:
        mv = c.get_model_version(name, str(version))
    except MlflowException as exc:
        raise UsageError(f"no version {version} of registered model {name!r}") from exc
    previous = alias_version(c, name, CHAMPION)
    c.set_registered_model_alias(name, CHAMPION, str(mv.version))
    entry = {"at": datetime.now(timezone.utc).isoformat(), "champion": str(mv.version), "previous": previous,
             "run_id": mv.run_id, "reason": reason}
    history = _history(c, name) + [entry]
    c.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    return entry


def rollback(settings: Settings, name: str) -> dict:
    """Restore the champion before the current one (from the recorded history)."""
    c = client(settings)
    current = alias_version(c, name, CHAMPION)
    if current is None:
        raise UsageError(f"{name!r} has no champion to roll back")
    previous = None
    for entry in reversed(_history(c, name)):
        if entry["champion"] == current and entry.get("previous"):
            previous = entry["previous"]
            break
    if previous is None:
        raise UsageError(f"{name!r}: champion v{current} has no previous champion recorded")
    return promote(settings, name, previous, reason=f"rollback from v{current}")


def resolve_name(settings: Settings, name: str | None) -> str:
    """The registered model to act on: ``name``, or the only one there is."""
    c = client(settings)
    names = [m.name for m in c.search_registered_models()]
    if name:
        if name not in names:
            raise UsageError(f"no registered model {name!r}; registered: {', '.join(names) or 'none'}")
        return name
    if len(names) != 1:
        raise UsageError(f"say which model with --model (registered: {', '.join(names) or 'none'})")
    return names[0]


def describe(settings: Settings, name: str) -> dict:
    """Versions, aliases and history of a registered model."""
    c = client(settings)
    rm = c.get_registered_model(name)
    versions = sorted(c.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    if not versions:
        raise TradeopsError(f"{name!r} has no versions")
    return {"name": name, "aliases": {k: str(v) for k, v in (rm.aliases or {}).items()},
            "versions": [{"version": str(v.version), "run_id": v.run_id, "tags": dict(v.tags)} for v in versions],
            "history": json.loads(rm.tags.get(HISTORY_TAG, "[]"))}
