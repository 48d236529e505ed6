"""`tradeops reproduce MODEL[@VERSION]`: rebuild a registered model version from what it recorded and verify it.

What a version recorded (:func:`recorded_lineage`): its bundle's ``meta.json`` (preset, tickers, feature-set
version, Delta table versions, as-of date, model config, seed, torch thread count, git commit, weights and ONNX
sha256), its registry tags, and its training run (params, the digests of the rows it read, ``config/environment.json``,
``evaluation/evaluation.json``). :func:`rebuild` retrains from exactly that: the recorded table versions read by Delta
time travel, the recorded config (never today's ``tradeops.yaml``), seed, epochs and thread count. It registers
nothing, moves no alias and writes nothing to the lake; its MLflow run is tagged ``tradeops.reproduce_of=NAME@V``.

Every difference is classified (:class:`Difference`):

- ``data``: a recorded table version is no longer readable (vacuumed, table gone), holds other rows than it did
  (digest of the rows read differs), the registry tags disagree with the bundle about it, the feature-set version
  computed by today's code differs, or the holdout fold comes out different.
- ``code``: the git commit differs, or either side ran from uncommitted changes (``+dirty``: the code cannot be
  identified); or the recorded config resolves to other effective training parameters today (``config.cnn.lr``: a
  recipe default changed). A "changed config" is detected that way: the rebuild always uses the recorded config, so a
  config that no longer yields the same training parameters is a code change. Today's config file differing from the
  recorded one is only a note: it is not what is being reproduced.
- ``environment``: the interpreter, platform, CPU SIMD features (``cpu_simd``: oneDNN picks kernels by them), a cap
  on oneDNN's instruction set or a package version differs from the run's ``environment.json``, or the torch thread
  count was not recorded.
- ``result``: weights sha256, ONNX sha256, transform fingerprint or any test-window metric differs.

Data, code and environment differences are reported even when the result matches; any difference fails.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tradeops.config import ModelConfig, Settings
from tradeops.data import store as st
from tradeops.errors import TradeopsError, UsageError
from tradeops.features.store import FeatureSet
from tradeops.model import registry as reg
from tradeops.model import tracking, training
from tradeops.model.package import sha256_bytes

KINDS = ("data", "code", "environment", "result")
REPRODUCE_TAG = "tradeops.reproduce_of"
# MLflow dataset-input context of each table a training run reads -> the name used in differences
_INPUTS = {"bars": "bars", "training": "features", "labels": "labels"}
# Model config sections that shape neither the weights nor the metrics (only promotion and tuning)
_NOT_MODEL_SHAPING = ("blessing", "tune")


@dataclass(frozen=True)
class Difference:
    """One thing that differs between what a version recorded and what was found or rebuilt now."""

    kind: str  # data | code | environment | result
    field: str  # e.g. bars_version, git_commit, numpy, config.cnn.lr, weights_sha256, metrics.macro_f1
    recorded: Any
    now: Any
    note: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "field": self.field, "recorded": self.recorded, "now": self.now, "note": self.note}

    def __str__(self) -> str:
        return f"[{self.kind}] {self.field}: recorded {self.recorded!r}, now {self.now!r}" + (
            f" ({self.note})" if self.note else ""
        )


@dataclass(frozen=True)
class Lineage:
    """What a registered version recorded about how it was built."""

    name: str
    version: str
    run_id: str
    meta: dict  # the bundle's meta.json
    tags: dict[str, str]  # the registry version's tags
    params: dict[str, str]  # the training run's params
    inputs: dict[str, str]  # bars / features / labels -> digest of the rows the run read
    environment: dict | None  # config/environment.json; None when the run has none
    summary: dict | None  # evaluation/evaluation.json's summary; None when the run has none

    @property
    def versions(self) -> training.TableVersions:
        v = self.meta["table_versions"]
        return training.TableVersions(int(v["bars"]), int(v["features"]), int(v["labels"]))

    @property
    def feature_set(self) -> FeatureSet:
        """The feature set as today's code defines it from the recorded preset, windows and label window."""
        m = self.meta
        return FeatureSet.from_preset(m["preset"], tuple(m["windows"]), int(m["label_window"]))

    @property
    def epochs_override(self) -> int | None:
        value = self.params.get("epochs_override")
        return None if value in (None, "", "None") else int(value)

    @property
    def torch_num_threads(self) -> int | None:
        value = self.meta.get("torch_num_threads")
        return None if value is None else int(value)


@dataclass(frozen=True)
class Rebuilt:
    """What the rebuild produced (its MLflow run is ``run_id``)."""

    run_id: str
    weights_sha256: str
    onnx_sha256: str
    transform_fingerprint: str
    params: dict[str, str]
    inputs: dict[str, str]
    summary: dict


@dataclass
class ReproduceReport:
    """The outcome: ``ok`` when nothing differs. JSON-ready through :meth:`to_dict`."""

    name: str
    version: str
    run_id: str
    rebuild_run_id: str | None
    differences: list[Difference]
    checked: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def rebuilt(self) -> bool:
        return self.rebuild_run_id is not None

    def kinds(self) -> list[str]:
        return [k for k in KINDS if any(d.kind == k for d in self.differences)]

    def to_dict(self) -> dict:
        return {
            "model": self.name,
            "version": self.version,
            "ok": self.ok,
            "kinds": self.kinds(),
            "differences": [d.to_dict() for d in self.differences],
            "recorded_run_id": self.run_id,
            "rebuilt": self.rebuilt,
            "rebuild_run_id": self.rebuild_run_id,
            "checked": self.checked,
            "notes": self.notes,
        }


# --- what was recorded -------------------------------------------------------------------------------------------


def _run_json(c, run_id: str, path: str) -> dict | None:
    """A JSON artifact of a run, ``None`` when the run has no such artifact."""
    folder = path.rsplit("/", 1)[0] if "/" in path else None
    with reg.registry_errors(f"reading {path} of run {run_id}"):
        if path not in {f.path for f in c.list_artifacts(run_id, folder)}:
            return None
        with tempfile.TemporaryDirectory(prefix="tradeops-reproduce-") as tmp:
            local = c.download_artifacts(run_id, path, tmp)
            try:
                return json.loads(Path(local).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise TradeopsError(f"run {run_id}: {path} is not readable JSON ({exc})") from exc


def _inputs(run) -> dict[str, str]:
    """bars / features / labels -> digest of the rows a run logged as read."""
    out: dict[str, str] = {}
    for di in run.inputs.dataset_inputs if run.inputs else []:
        contexts = [t.value for t in di.tags if t.key == "mlflow.data.context"]
        for context in contexts:
            if context in _INPUTS:
                out[_INPUTS[context]] = str(di.dataset.digest)
    return out


def recorded_lineage(settings: Settings, name: str, version: str) -> Lineage:
    """Read what ``name`` at ``version`` (a number or an alias) recorded; refuses an incomplete version."""
    from tradeops.model.serving import load_registered_reference, resolve_version

    c = reg.client(settings)
    version = resolve_version(c, name, version)
    with reg.registry_errors(f"reading {name} v{version}"):
        mv = c.get_model_version(name, version)
    tags = dict(mv.tags)
    missing = reg.missing_tags(tags)
    if missing:
        raise TradeopsError(
            f"{name} v{version} is incomplete (missing or unfinished tags: {', '.join(missing)}): "
            "it recorded too little to be reproduced"
        )
    meta, _reference, _problem = load_registered_reference(settings, name, version)
    for key in ("preset", "tickers", "table_versions", "windows", "label_window", "config", "seed", "run_id"):
        if key not in meta:
            raise TradeopsError(f"{name} v{version}: its bundle's meta.json records no {key!r}; cannot rebuild it")
    run_id = str(meta["run_id"])
    with reg.registry_errors(f"reading training run {run_id} of {name} v{version}"):
        run = c.get_run(run_id)
    evaluation = _run_json(c, run_id, "evaluation/evaluation.json")
    return Lineage(
        name=name,
        version=version,
        run_id=run_id,
        meta=meta,
        tags=tags,
        params=dict(run.data.params),
        inputs=_inputs(run),
        environment=_run_json(c, run_id, "config/environment.json"),
        summary=None if evaluation is None else evaluation.get("summary"),
    )


# --- what is there now ---------------------------------------------------------------------------------------------


def current_environment() -> dict:
    """Interpreter, platform and package versions of this process (what training records)."""
    return training.environment()


def current_commit() -> str:
    """The git commit of the running tradeops source (``+dirty`` with uncommitted changes)."""
    return training.git_commit()


#: environment.json keys recorded since 2026-12-04: a run recorded before them is not failed for lacking them.
LATER_ENVIRONMENT_KEYS = frozenset({"cpu_simd", "onednn_max_cpu_isa"})
_ENVIRONMENT_NOTES = {
    "cpu_simd": "oneDNN picks its convolution kernels by these CPU features, so weights differ in the last bits; "
    "to rebuild a model trained on an AVX2-only machine here, run with ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN's AVX2 "
    "kernels)",
    "onednn_max_cpu_isa": "the cap on oneDNN's instruction set differs: run with the recorded ONEDNN_MAX_CPU_ISA",
}


def compare_environment(recorded: dict | None, now: dict, torch_num_threads: int | None) -> list[Difference]:
    """Environment differences: every key of ``environment.json`` (python, platform, packages) and the thread count."""
    if recorded is None:
        return [Difference("environment", "environment.json", None, "-", "the training run recorded no environment")]
    out = [
        Difference("environment", key, recorded.get(key), now.get(key), _ENVIRONMENT_NOTES.get(key, ""))
        for key in sorted(set(recorded) | set(now))
        if recorded.get(key) != now.get(key) and not (key in LATER_ENVIRONMENT_KEYS and key not in recorded)
    ]
    if torch_num_threads is None:
        out.append(
            Difference(
                "environment",
                "torch_num_threads",
                None,
                "-",
                "the thread count was not recorded: CPU results are bit-identical only at the same count",
            )
        )
    return out


def compare_code(recorded: str, now: str) -> list[Difference]:
    """The git commit: differing, unknown, or either side with uncommitted changes (``+dirty``) is a difference."""
    if recorded != now:
        return [Difference("code", "git_commit", recorded, now)]
    if recorded.endswith("+dirty") or recorded == "unknown":
        return [
            Difference(
                "code",
                "git_commit",
                recorded,
                now,
                "trained from uncommitted changes: the code it ran cannot be identified"
                if recorded != "unknown"
                else "no commit was recorded",
            )
        ]
    return []


def compare_tags(lineage: Lineage) -> list[Difference]:
    """The registry tags against the bundle (the rebuild reads what the bundle says)."""
    m, t = lineage.meta, lineage.tags
    pairs: list[tuple[str, object, str | None]] = [
        (f"{k}_version", str(m["table_versions"][k]), t.get(f"{k}_version")) for k in ("bars", "features", "labels")
    ]
    pairs += [
        ("feature_set_version", m.get("feature_set_version"), t.get("feature_set_version")),
        ("run_id", m.get("run_id"), t.get("run_id")),
    ]
    return [
        Difference(
            "data", key, bundle, tag, f"the registry tag says {tag}, the bundle {bundle}; the rebuild read the bundle's"
        )
        for key, bundle, tag in pairs
        if tag is not None and str(bundle) != str(tag)
    ]


def check_data(settings: Settings, lineage: Lineage) -> list[Difference]:
    """Before a rebuild: the feature-set version today's code computes, and whether each recorded table version can
    still be read (a vacuum or a removed table makes it unreadable). Any difference here means no rebuild."""
    fs = lineage.feature_set
    recorded_fsv = lineage.meta.get("feature_set_version")
    if fs.version != recorded_fsv:
        return [
            Difference(
                "data",
                "feature_set_version",
                recorded_fsv,
                fs.version,
                "today's feature definitions hash differently: the recorded feature table cannot be matched",
            )
        ]
    lake = st.lake_for(settings)
    out = []
    v = lineage.versions
    for key, table, version in (
        ("bars_version", st.BARS, v.bars),
        ("features_version", fs.table, v.features),
        ("labels_version", fs.labels_table, v.labels),
    ):
        try:
            st.read_delta(lake.table(table, version), tickers=list(lineage.meta["tickers"]), columns=["ticker"])
        except Exception as exc:  # noqa: BLE001 - delta-rs/pyarrow raise many types; each means "not readable"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            out.append(
                Difference(
                    "data", key, f"{table} v{version}", f"unreadable: {first}", "time travel to it fails in this lake"
                )
            )
    return out


def config_notes(settings: Settings, lineage: Lineage) -> list[str]:
    """Where today's config differs from the recorded one (informational: the rebuild uses the recorded values)."""
    recorded = {k: v for k, v in lineage.meta["config"].items() if k not in _NOT_MODEL_SHAPING}
    now = settings.model.model_dump(mode="json")
    notes = [
        f"today's config model.{k} is {now.get(k)!r}, the model recorded {recorded[k]!r} (the rebuild used the "
        "recorded value)"
        for k in sorted(recorded)
        if now.get(k) != recorded[k]
    ]
    for key, recorded_value, now_value in (
        ("windows", list(lineage.meta["windows"]), list(settings.features.windows)),
        ("label_window", lineage.meta["label_window"], settings.features.label_window),
    ):
        if recorded_value != now_value:
            notes.append(
                f"today's config features.{key} is {now_value!r}, the model recorded {recorded_value!r} "
                "(the rebuild used the recorded value)"
            )
    return notes


# --- the rebuild -----------------------------------------------------------------------------------------------------


def rebuild_settings(settings: Settings, lineage: Lineage) -> Settings:
    """``settings`` with the recorded model config (seed, thread count) and feature windows in place of today's."""
    config = dict(lineage.meta["config"])
    config["seed"] = int(lineage.meta["seed"])
    if lineage.torch_num_threads is not None:
        config["torch_threads"] = lineage.torch_num_threads
    try:
        model = ModelConfig.model_validate(config)
    except ValueError as exc:
        raise TradeopsError(
            f"{lineage.name} v{lineage.version}: its recorded model config does not validate under this code "
            f"({exc}); it cannot be rebuilt here"
        ) from exc
    features = settings.features.model_copy(
        update={"windows": tuple(lineage.meta["windows"]), "label_window": int(lineage.meta["label_window"])}
    )
    return settings.model_copy(update={"model": model, "features": features})


def rebuild(settings: Settings, lineage: Lineage, *, status: Callable[[str], None] | None = None) -> Rebuilt:
    """Retrain from the recorded lineage: same table versions, as-of date, config, seed, epochs and threads.

    Registers nothing and moves no alias; the MLflow run is tagged ``tradeops.reproduce_of`` and ended FINISHED
    (FAILED when the rebuild fails)."""
    say = status or (lambda _msg: None)
    rs = rebuild_settings(settings, lineage)
    as_of = lineage.meta.get("as_of")
    say("reading the recorded table versions")
    prepared = training.prepare_window(
        rs,
        preset=str(lineage.meta["preset"]),
        tickers=list(lineage.meta["tickers"]),
        as_of=None if not as_of else pd.Timestamp(as_of),
        versions=lineage.versions,
        extra_tags={REPRODUCE_TAG: f"{lineage.name}@{lineage.version}"},
    )
    with training.failing_run(rs, prepared.run_id):
        say(f"retraining on {len(prepared.data.fit)} rows")
        fitted = training.fit_candidate(rs, prepared, epochs=lineage.epochs_override)
        say("evaluating on the test window")
        evaluation = training.evaluate_candidate(rs, prepared, fitted)
        tracking.end_run(rs, prepared.run_id, "FINISHED")
    c = reg.client(settings)
    with reg.registry_errors(f"reading rebuild run {prepared.run_id}"):
        run = c.get_run(prepared.run_id)
    return Rebuilt(
        run_id=prepared.run_id,
        weights_sha256=fitted.window.classifier.weights_sha256(),
        onnx_sha256=sha256_bytes(fitted.onnx_bytes),
        transform_fingerprint=str(fitted.window.transform.fingerprint()),
        params=dict(run.data.params),
        inputs=_inputs(run),
        # as the recorded summary was stored: through JSON
        summary=json.loads(json.dumps(evaluation.evaluation.to_dict()["summary"], default=str)),
    )


def _param_kind(key: str) -> str | None:
    """Which kind a differing run param is (``None``: not compared: covered elsewhere or expected to differ)."""
    if key in ("python", "torch_threads", "as_of"):
        return None  # environment.json covers python; torch_threads is the config value, the count is cnn.*
    if key.startswith("fold.") or key in ("feature_set_version", "n_features", "preset", "tickers"):
        return "data"
    if key == "cnn.torch_num_threads":
        return "environment"
    return "code"


def compare_rebuild(lineage: Lineage, rebuilt: Rebuilt) -> list[Difference]:
    """Data (rows read), code (effective training parameters) and result (weights, ONNX, metrics) differences."""
    out: list[Difference] = []
    versions = lineage.versions.to_dict()
    for table in ("bars", "features", "labels"):
        recorded, now = lineage.inputs.get(table), rebuilt.inputs.get(table)
        if recorded != now:
            out.append(
                Difference(
                    "data",
                    f"{table}_version",
                    f"v{versions[table]} digest {recorded}",
                    f"v{versions[table]} digest {now}",
                    f"version {versions[table]} now holds other rows than the training run read",
                )
            )
    for key in sorted(set(lineage.params) | set(rebuilt.params)):
        kind = _param_kind(key)
        recorded, now = lineage.params.get(key), rebuilt.params.get(key)
        if kind is None or recorded == now:
            continue
        name = key if kind != "code" else f"config.{key}"
        note = "the recorded config resolves to other training parameters with this code" if kind == "code" else ""
        out.append(Difference(kind, name, recorded, now, note))
    meta = lineage.meta
    for key, recorded, now in (
        ("weights_sha256", meta.get("weights_sha256"), rebuilt.weights_sha256),
        ("onnx_sha256", meta.get("onnx_sha256"), rebuilt.onnx_sha256),
        ("transform_fingerprint", meta.get("transform_fingerprint"), rebuilt.transform_fingerprint),
    ):
        if recorded != now:
            out.append(Difference("result", key, recorded, now))
    if lineage.summary is None:
        out.append(Difference("result", "metrics", None, "-", "the training run recorded no evaluation summary"))
    else:
        for key in sorted(set(lineage.summary) | set(rebuilt.summary)):
            recorded, now = lineage.summary.get(key), rebuilt.summary.get(key)
            if recorded != now:
                out.append(Difference("result", f"metrics.{key}", recorded, now))
    return out


# --- the whole check -------------------------------------------------------------------------------------------------


def verify(
    settings: Settings,
    lineage: Lineage,
    rebuilt: Rebuilt | None,
    *,
    environment: dict,
    commit: str,
    pre_checks: list[Difference] | None = None,
) -> ReproduceReport:
    """Every difference between ``lineage`` and what is here now (``environment``, ``commit``, the ``rebuilt``
    model, or none when ``pre_checks`` stopped the rebuild)."""
    diffs = list(pre_checks or [])
    diffs += compare_tags(lineage)
    diffs += compare_code(str(lineage.meta.get("git_commit", "unknown")), commit)
    diffs += compare_environment(lineage.environment, environment, lineage.torch_num_threads)
    if rebuilt is not None:
        diffs += compare_rebuild(lineage, rebuilt)
    order = {k: i for i, k in enumerate(KINDS)}
    diffs.sort(key=lambda d: order[d.kind])
    checked: dict[str, Any] = {
        "table_versions": lineage.versions.to_dict(),
        "feature_set_version": lineage.meta.get("feature_set_version"),
        "git_commit": lineage.meta.get("git_commit"),
        "seed": lineage.meta.get("seed"),
        "torch_num_threads": lineage.torch_num_threads,
        "epochs_override": lineage.epochs_override,
        "weights_sha256": lineage.meta.get("weights_sha256"),
        "onnx_sha256": lineage.meta.get("onnx_sha256"),
        "metrics": 0 if rebuilt is None else len(rebuilt.summary),
    }
    notes = config_notes(settings, lineage)
    if rebuilt is None:
        notes.append("not rebuilt: the recorded data cannot be read as it was")
    return ReproduceReport(
        lineage.name,
        lineage.version,
        lineage.run_id,
        None if rebuilt is None else rebuilt.run_id,
        diffs,
        checked,
        notes,
    )


def reproduce(
    settings: Settings, name: str, version: str = reg.CHAMPION, *, status: Callable[[str], None] | None = None
) -> ReproduceReport:
    """Rebuild ``name`` at ``version`` (a number or an alias; default the champion) and report every difference."""
    say = status or (lambda _msg: None)
    say("reading the recorded lineage")
    lineage = recorded_lineage(settings, name, version)
    pre = check_data(settings, lineage)
    rebuilt = None if pre else rebuild(settings, lineage, status=say)
    report = verify(
        settings, lineage, rebuilt, environment=current_environment(), commit=current_commit(), pre_checks=pre
    )
    if rebuilt is not None:
        tracking.RunLog(settings, rebuilt.run_id).tags({"tradeops.reproduced": str(report.ok).lower()})
    return report


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME@VERSION`` (a number or an alias) -> ``(name, version or None)``."""
    name, sep, version = ref.strip().partition("@")
    if not name or (sep and not version.strip()):
        raise UsageError(f"MODEL must be NAME or NAME@VERSION (e.g. cnn-ta-IBM@3), got {ref!r}")
    return name, version.strip() or None
