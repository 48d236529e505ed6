"""Registered model -> verified bundle: the one way every caller (training's champion comparison, the service, the
simulator, tests) loads a model from the registry. No caller searches artifact folders itself.

Imports MLflow and the bundle loader only (no torch, no onnx, no scikit-learn).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tradeops.config import Settings
from tradeops.errors import TradeopsError, UsageError
from tradeops.model.package import SignalBundle, load_bundle


class ModelNotFound(UsageError):
    """The registered model, version or alias does not exist (a usage error, exit code 2)."""


def _is_not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def resolve_version(client, name: str, alias_or_version: str) -> str:
    """``"3"`` or ``"champion"`` -> the version number as a string. Only a missing name/alias/version is
    :class:`ModelNotFound`; any other registry failure (an outage) is a :class:`TradeopsError`."""
    from mlflow.exceptions import MlflowException

    ref = str(alias_or_version).strip()
    try:
        if ref.isdigit():
            return str(client.get_model_version(name, ref).version)
        # Read the alias off the model: MLflow reports a missing alias as INVALID_PARAMETER_VALUE, which must not
        # be confused with a real failure.
        aliases = client.get_registered_model(name).aliases or {}
    except MlflowException as exc:
        if _is_not_found(exc):
            what = f"version {ref}" if ref.isdigit() else "versions"
            raise ModelNotFound(f"registered model {name!r} has no {what}") from None
        raise TradeopsError(f"registry lookup of {name}@{ref} failed: {exc.message}") from exc
    if ref not in aliases:
        raise ModelNotFound(
            f"registered model {name!r} has no alias {ref!r} (aliases: "
            f"{', '.join(f'{k}=v{v}' for k, v in sorted(aliases.items())) or 'none'})"
        )
    return str(aliases[ref])


def bundle_path(local_model_dir: Path) -> Path:
    """The bundle directory inside a downloaded pyfunc model, read from its MLmodel file (not searched for)."""
    from mlflow.models import Model

    flavor = Model.load(str(local_model_dir)).flavors.get("python_function", {})
    try:
        rel = flavor["artifacts"]["bundle"]["path"]
    except (KeyError, TypeError):
        raise TradeopsError(f"{local_model_dir}: the MLmodel file declares no 'bundle' artifact") from None
    return Path(local_model_dir) / rel


def load_registered(
    settings: Settings,
    name: str,
    alias_or_version: str = "champion",
    *,
    expected_feature_set_version: str | None = None,
) -> SignalBundle:
    """Load ``name`` at an alias (``champion``, ``challenger``) or a version number as a verified bundle.

    alias -> version -> artifacts -> bundle with its golden set re-scored. Raises :class:`ModelNotFound` when the
    model/alias/version does not exist, :class:`~tradeops.model.package.FeatureSetMismatch` when the expected
    feature set differs, and :class:`TradeopsError` for any other failure (registry outage, missing or altered
    artifacts, golden set mismatch): never a silent "no model".
    """
    import mlflow

    from tradeops.model import registry as reg

    client = reg.client(settings)
    version = resolve_version(client, name, alias_or_version)
    with tempfile.TemporaryDirectory(prefix="tradeops-model-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        except Exception as exc:  # noqa: BLE001 - MLflow raises store-specific types; report, never default
            raise TradeopsError(
                f"{name} v{version}: its artifacts cannot be read ({type(exc).__name__}: {exc})"
            ) from exc
        bundle = load_bundle(bundle_path(Path(local)), expected_feature_set_version=expected_feature_set_version)
    bundle.model_name, bundle.model_version = name, version
    return bundle


def load_registered_reference(settings: Settings, name: str, alias_or_version: str = "champion"):
    """``(meta, reference, problem)`` of a registered model version: its bundle's ``meta.json`` (tickers, fold,
    versions) and the training reference (``tradeops.monitor.reference.TrainingReference``) stored at training time.
    ``reference`` is ``None`` and ``problem`` says why when the version stores none (trained before references were
    kept: retrain it) or it cannot be read. :class:`TradeopsError` when the artifacts themselves cannot be read."""
    import json

    import mlflow

    from tradeops.model import registry as reg
    from tradeops.monitor.reference import load_reference

    client = reg.client(settings)
    version = resolve_version(client, name, alias_or_version)
    with tempfile.TemporaryDirectory(prefix="tradeops-reference-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
            directory = bundle_path(Path(local))
            meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        except Exception as exc:  # noqa: BLE001 - MLflow raises store-specific types; report, never default
            raise TradeopsError(
                f"{name} v{version}: its artifacts cannot be read ({type(exc).__name__}: {exc})"
            ) from exc
        try:
            return meta, load_reference(directory), None
        except TradeopsError as exc:
            return meta, None, f"{name} v{version}: {exc}"
