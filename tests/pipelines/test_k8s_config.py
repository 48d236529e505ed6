"""The Kubernetes deployment files in ``deploy/k8s/`` load and are valid for the pinned Dagster (no cluster here).

- ``dagster.yaml`` against Dagster's instance schema, its run launcher against ``K8sRunLauncher``'s config schema;
- ``run_config.yaml`` against the code location's jobs built with ``pipelines.executor=k8s`` (so its executor
  section is checked against ``k8s_job_executor``'s schema) and its per-step keys against the jobs' step names;
- ``values.yaml`` (the Helm chart's) for what our files rely on, its run launcher section as the chart renders it;
- every ``TRADEOPS_*`` variable the files set is one our configuration reads, with the value landing in the field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from tradeops.config import load_settings
from tradeops.pipelines.instance import POSTGRES_URL_ENV

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
FILES = ("dagster.yaml", "run_config.yaml", "values.yaml")
IMAGE = "ghcr.io/tradeops/tradeops"


def _load(name: str) -> dict:
    data = yaml.safe_load((K8S / name).read_text())
    assert isinstance(data, dict), name
    return data


def _validate(config_type, value) -> None:
    from dagster._config import validate_config

    result = validate_config(config_type, value)
    assert result.success, [e.message for e in result.errors]


def test_every_file_under_deploy_k8s_is_known_and_loads():
    present = sorted(p.name for p in K8S.iterdir() if p.is_file())
    assert present == sorted((*FILES, "README.md")), present
    for name in FILES:
        _load(name)


def test_cluster_instance_validates_against_dagster_and_the_k8s_run_launcher():
    from dagster._core.instance.config import dagster_instance_config
    from dagster._serdes.config_class import class_from_code_pointer
    from dagster_k8s import K8sRunLauncher

    config, custom_class = dagster_instance_config(str(K8S), "dagster.yaml")  # raises on any schema error
    assert custom_class is None
    assert config["storage"]["postgres"]["postgres_url"] == {"env": POSTGRES_URL_ENV}
    launcher = config["run_launcher"]
    assert class_from_code_pointer(launcher["module"], launcher["class"]) is K8sRunLauncher
    _validate(K8sRunLauncher.config_type(), launcher["config"])
    artifacts = config["local_artifact_storage"]
    from dagster._core.storage.root import LocalArtifactStorage

    assert class_from_code_pointer(artifacts["module"], artifacts["class"]) is LocalArtifactStorage
    _validate(LocalArtifactStorage.config_type(), artifacts["config"])


def test_a_broken_run_launcher_config_is_caught():
    # the validation above must be able to fail: a misspelt field is an error, not ignored
    from dagster._config import validate_config
    from dagster_k8s import K8sRunLauncher

    launcher = dict(_load("dagster.yaml")["run_launcher"]["config"], job_namespce="typo")
    assert not validate_config(K8sRunLauncher.config_type(), launcher).success


def _k8s_defs():
    from tradeops.pipelines.definitions import build_defs

    return build_defs(load_settings(home="unused-home", pipelines={"executor": "k8s"}))


def test_run_config_validates_against_k8s_job_executor_for_every_job():
    import dagster as dg
    from dagster_k8s import k8s_job_executor

    run_config = _load("run_config.yaml")
    assert set(run_config) == {"execution"}
    _validate(k8s_job_executor.config_schema.config_type, run_config["execution"]["config"])
    defs = _k8s_defs()
    for name in ("ingest_daily", "train"):
        job = defs.resolve_job_def(name)
        assert job.executor_def is k8s_job_executor
        dg.validate_run_config(job, run_config)  # raises DagsterInvalidConfigError on a bad file


def test_per_step_pod_resources_name_real_steps():
    per_step = _load("run_config.yaml")["execution"]["config"]["per_step_k8s_config"]
    defs = _k8s_defs()
    steps = {
        node.name
        for name in ("ingest_daily", "train")
        for node in defs.resolve_job_def(name).nodes_in_topological_order
    }
    assert set(per_step) <= steps, sorted(set(per_step) - steps)
    assert "candidate_model" in per_step  # training is the step that needs the big pod


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _chart_launcher_config(chart: dict) -> dict:
    """The chart's ``runLauncher.config.k8sRunLauncher`` as its template renders it into the instance (camelCase
    keys to snake_case, ``envSecrets``/``envConfigMaps`` entries to their names)."""
    out: dict = {}
    for key, value in chart.items():
        if key in ("envSecrets", "envConfigMaps"):
            value = [v["name"] for v in value]
        elif key == "runK8sConfig":
            value = {_snake(k): v for k, v in value.items()}
        out[_snake(key)] = value
    out.setdefault("instance_config_map", "tradeops-instance")  # set by the chart itself
    return out


def test_helm_values_use_our_image_the_k8s_run_launcher_and_psycopg2_postgres():
    from dagster_k8s import K8sRunLauncher

    values = _load("values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["image"]["repository"] == IMAGE and deployment["image"]["tag"] not in ("", "latest")
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "tradeops.pipelines", "--attribute", "defs"]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    _validate(K8sRunLauncher.config_type(), _chart_launcher_config(values["runLauncher"]["config"]["k8sRunLauncher"]))
    pg = values["postgresql"]
    # run pods load the instance with our SQLAlchemy 2.1: a bare postgresql:// would mean psycopg 3 (broken)
    assert pg["postgresqlScheme"] == "postgresql+psycopg2" and pg["enabled"] is False
    assert values["telemetry"] == {"enabled": False}
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env["TRADEOPS_LAKE_URI"].startswith("s3://") and env["TRADEOPS_PIPELINES__EXECUTOR"] == "k8s"


def test_the_code_location_module_the_chart_serves_loads_its_jobs(monkeypatch, tmp_path):
    # `dagster api grpc --module-name tradeops.pipelines --attribute defs` loads `defs`, as the pods will
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from tradeops.pipelines import definitions

    for key in [k for k in os.environ if k.startswith("TRADEOPS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("TRADEOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRADEOPS_CONFIG", str(tmp_path / "no-config.yaml"))
    monkeypatch.setenv("TRADEOPS_PIPELINES__EXECUTOR", "k8s")
    monkeypatch.delitem(definitions.__dict__, "defs", raising=False)
    try:
        repo = ReconstructableRepository.for_module("tradeops.pipelines", "defs").get_definition()
        assert {"ingest_daily", "train"} <= set(repo.job_names)
        assert repo.get_job("ingest_daily").executor_def.name == "k8s"
    finally:
        definitions.__dict__.pop("defs", None)  # the next user builds it from its own env
    assert not (tmp_path / "home").exists()  # loading the code location creates no state


def _tradeops_env(text: str) -> dict[str, str]:
    """``TRADEOPS_*`` names the files set, with their example values (``NAME=value`` or ``name: NAME``)."""
    found: dict[str, str] = {}
    for name, value in re.findall(r"\b(TRADEOPS_[A-Z0-9_]+)=(\S+)", text):
        found[name] = value
    for name in re.findall(r"\b(TRADEOPS_[A-Z0-9_]+)\b", text):
        found.setdefault(name, "")
    return found


ENV_FIELDS = {
    "TRADEOPS_HOME": lambda s: str(s.home),
    "TRADEOPS_LAKE_URI": lambda s: s.lake,
    "TRADEOPS_MLFLOW_TRACKING_URI": lambda s: s.tracking_uri,
    "TRADEOPS_DATABASE_URL": lambda s: s.service_database_url,
    "TRADEOPS_PIPELINES__EXECUTOR": lambda s: s.pipelines.executor,
    "TRADEOPS_MODEL__TORCH_THREADS": lambda s: str(s.model.torch_threads),
}


def test_every_tradeops_variable_the_files_use_is_read_by_our_config(monkeypatch, tmp_path):
    text = "\n".join((K8S / name).read_text() for name in (*FILES, "README.md"))
    used = _tradeops_env(text)
    assert {"TRADEOPS_LAKE_URI", "TRADEOPS_MLFLOW_TRACKING_URI", "TRADEOPS_DATABASE_URL", POSTGRES_URL_ENV} <= set(used)
    unknown = sorted(set(used) - set(ENV_FIELDS) - {POSTGRES_URL_ENV})
    assert not unknown, f"deploy/k8s uses variables no config field reads: {unknown}"
    samples = {
        "TRADEOPS_HOME": str(tmp_path / "home"),
        "TRADEOPS_LAKE_URI": "s3://tradeops-lake/lake",
        "TRADEOPS_MLFLOW_TRACKING_URI": "postgresql+psycopg://mlflow@db:5432/mlflow",
        "TRADEOPS_DATABASE_URL": "postgresql+psycopg://tradeops@db:5432/tradeops",
        "TRADEOPS_PIPELINES__EXECUTOR": "k8s",
        "TRADEOPS_MODEL__TORCH_THREADS": "4",
    }
    monkeypatch.setenv("TRADEOPS_CONFIG", str(tmp_path / "no-config.yaml"))
    for name, value in samples.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    for name, read in ENV_FIELDS.items():
        assert read(settings) == samples[name], name


@pytest.mark.parametrize("name", FILES)
def test_no_secret_is_written_into_the_deploy_files(name):
    text = (K8S / name).read_text()
    # a URL with a password (scheme://user:pw@host) may appear only as a placeholder
    for match in re.findall(r"://[^/\s:@]+:([^@\s]+)@", text):
        assert match.startswith("<"), f"{name}: a password in a URL ({match[:2]}...)"
