"""`tradeops reproduce`: a fresh 2-epoch IBM model rebuilds bit for bit; a changed data version, config, package
version or commit is named as data / code / environment.

The model is trained here (not the shared ``trained_ibm``) with a clean fake commit: a test run from a checkout with
uncommitted changes records ``+dirty``, which reproduce rightly reports as unidentifiable code.
"""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date

import pytest

from homes import copy_home
from tradeops.config import load_settings
from tradeops.data import store as st
from tradeops.errors import UsageError
from tradeops.model import cnn, training
from tradeops.model import registry as reg
from tradeops.model import reproduce as rp

NAME = "cnn-ta-IBM"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
LAX = {
    "blessing": {"min_recall_buy": 0.0, "min_recall_sell": 0.0, "min_macro_f1": 0.0, "min_net_sharpe": None},
    "baselines": False,
}


@pytest.fixture(scope="module", autouse=True)
def clean_commit():
    """Training and reproduce both see the same clean commit (the shared checkout may be dirty or move)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "git_commit", lambda: COMMIT)
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory, clean_commit):
    from tradeops.data.ingest import ingest
    from tradeops.data.sources import SampleSource

    settings = load_settings(home=tmp_path_factory.mktemp("reproduce") / "home", model=LAX)
    ingest(SampleSource(), settings, ["IBM"], today=date(2026, 11, 26))
    outcome = training.train_model(settings, preset="cnn-ta", tickers=["IBM"], epochs=2)
    return settings, outcome


@pytest.fixture(scope="module")
def baseline(trained):
    """One reproduce of the unchanged model, its lineage and rebuild (reused by the pure checks below)."""
    settings, _ = trained
    lineage = rp.recorded_lineage(settings, NAME, reg.CHAMPION)
    rebuilt = rp.rebuild(settings, lineage)
    report = rp.verify(settings, lineage, rebuilt, environment=rp.current_environment(), commit=rp.current_commit())
    return lineage, rebuilt, report


def _registry_state(settings) -> tuple[list[str], dict[str, str]]:
    c = reg.client(settings)
    versions = sorted(str(v.version) for v in c.search_model_versions(f"name='{NAME}'"))
    return versions, {k: str(v) for k, v in c.get_registered_model(NAME).aliases.items()}


def test_a_freshly_trained_model_reproduces_bit_for_bit(trained, baseline):
    settings, outcome = trained
    lineage, rebuilt, report = baseline
    assert report.ok, [str(d) for d in report.differences]
    assert report.differences == [] and report.kinds() == []
    assert rebuilt.weights_sha256 == lineage.meta["weights_sha256"]
    assert rebuilt.onnx_sha256 == lineage.meta["onnx_sha256"]
    assert rebuilt.summary == lineage.summary and len(rebuilt.summary) > 5
    assert rebuilt.inputs == lineage.inputs and set(rebuilt.inputs) == {"bars", "features", "labels"}
    d = report.to_dict()
    assert d["ok"] is True and d["version"] == outcome.version and d["rebuilt"] is True
    assert d["checked"]["epochs_override"] == 2 and d["checked"]["torch_num_threads"] == lineage.torch_num_threads


def test_the_rebuild_registers_nothing_and_is_tagged_as_a_reproduction(trained, baseline):
    settings, outcome = trained
    lineage, rebuilt, _ = baseline
    assert _registry_state(settings) == (["1"], {"champion": "1", "challenger": "1"})
    run = reg.client(settings).get_run(rebuilt.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[rp.REPRODUCE_TAG] == f"{NAME}@{outcome.version}"
    assert rebuilt.run_id != lineage.run_id


def test_a_changed_package_version_is_an_environment_difference(trained, baseline, monkeypatch):
    import importlib.metadata

    settings, _ = trained
    lineage, rebuilt, _ = baseline
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda pkg: "9.9.9" if pkg == "numpy" else real(pkg))
    report = rp.verify(settings, lineage, rebuilt, environment=rp.current_environment(), commit=rp.current_commit())
    assert not report.ok
    assert [(d.kind, d.field, d.now) for d in report.differences] == [("environment", "numpy", "9.9.9")]
    assert report.differences[0].recorded == real("numpy")
    assert report.kinds() == ["environment"]


def test_another_cpu_instruction_set_is_an_environment_difference_with_the_remedy(trained, baseline):
    """oneDNN picks convolution kernels by the CPU's SIMD features: a model trained on an AVX2 machine differs in
    the last bits on an AVX-512 one. The features are recorded, a change is named with how to match it, and a run
    recorded before they were (no key) is not failed for it."""
    settings, _ = trained
    lineage, rebuilt, _ = baseline
    env = rp.current_environment()
    assert "cpu_simd" in lineage.environment and lineage.environment["cpu_simd"] == env["cpu_simd"]
    older = {**lineage.environment, "cpu_simd": "avx avx2 fma", "onednn_max_cpu_isa": None}
    report = rp.verify(
        settings, dataclasses.replace(lineage, environment=older), rebuilt, environment=env, commit=COMMIT
    )
    if env["cpu_simd"] == "avx avx2 fma":  # pragma: no cover - an AVX2-only machine: nothing differs
        assert report.ok
    else:
        assert [(d.kind, d.field) for d in report.differences] == [("environment", "cpu_simd")]
        assert "ONEDNN_MAX_CPU_ISA=AVX2" in report.differences[0].note
    unrecorded = {k: v for k, v in lineage.environment.items() if k not in ("cpu_simd", "onednn_max_cpu_isa")}
    quiet = rp.verify(
        settings, dataclasses.replace(lineage, environment=unrecorded), rebuilt, environment=env, commit=COMMIT
    )
    assert quiet.ok, quiet.differences


def test_cpu_simd_names_the_kernel_selecting_flags_in_order():
    from tradeops.model.training import cpu_simd

    flags = "fpu vme sse4_2 avx2 avx avx512f fma avx512bw avx512vl avx512_bf16 sha_ni"
    assert cpu_simd(flags) == "avx avx2 fma avx512f avx512bw avx512vl avx512_bf16"
    assert cpu_simd("fpu sse2") == ""


def test_an_unrecorded_thread_count_is_an_environment_difference(trained, baseline):
    settings, _ = trained
    lineage, rebuilt, _ = baseline
    meta = {**lineage.meta, "torch_num_threads": None}
    report = rp.verify(
        settings, dataclasses.replace(lineage, meta=meta), rebuilt, environment=rp.current_environment(), commit=COMMIT
    )
    assert [(d.kind, d.field) for d in report.differences] == [("environment", "torch_num_threads")]


def test_another_or_uncommitted_commit_is_a_code_difference(trained, baseline):
    settings, _ = trained
    lineage, rebuilt, _ = baseline
    env = rp.current_environment()
    moved = rp.verify(settings, lineage, rebuilt, environment=env, commit="f" * 40)
    assert [(d.kind, d.field, d.recorded) for d in moved.differences] == [("code", "git_commit", COMMIT)]
    assert rp.compare_code(COMMIT + "+dirty", COMMIT + "+dirty")[0].kind == "code"  # same string, unknown code
    assert rp.compare_code(COMMIT, COMMIT) == []


def test_a_changed_config_is_named_and_today_s_config_is_only_a_note(trained, baseline, monkeypatch):
    """The rebuild uses the recorded config: editing tradeops.yaml (seed 1) changes nothing but a note; a recorded
    config that resolves to other training parameters (the default recipe's lr changed in code) is `config.cnn.lr`
    under code, and the weights no longer match (result)."""
    settings, _ = trained
    lineage, rebuilt, _ = baseline
    edited = settings.model_copy(update={"model": settings.model.model_copy(update={"seed": 1})})
    noted = rp.verify(edited, lineage, rebuilt, environment=rp.current_environment(), commit=COMMIT)
    assert noted.ok
    assert any("model.seed is 1, the model recorded 0" in n for n in noted.notes)

    monkeypatch.setitem(cnn._RECIPES["default"], "lr", 5e-4)
    report = rp.reproduce(settings, NAME, "1")
    fields = {(d.kind, d.field): d for d in report.differences}
    assert ("code", "config.cnn.lr") in fields, [str(d) for d in report.differences]
    assert (fields["code", "config.cnn.lr"].recorded, fields["code", "config.cnn.lr"].now) == ("0.001", "0.0005")
    assert ("result", "weights_sha256") in fields and ("result", "onnx_sha256") in fields
    assert {d.kind for d in report.differences} == {"code", "result"}
    assert report.to_dict()["kinds"] == ["code", "result"]


def test_registry_tags_that_disagree_with_the_bundle_are_a_data_difference(trained, baseline):
    settings, _ = trained
    lineage, rebuilt, _ = baseline
    tampered = dataclasses.replace(lineage, tags={**lineage.tags, "bars_version": "7"})
    report = rp.verify(settings, tampered, rebuilt, environment=rp.current_environment(), commit=COMMIT)
    assert [(d.kind, d.field, d.recorded, d.now) for d in report.differences] == [("data", "bars_version", "0", "7")]


def test_a_lake_whose_recorded_bars_version_holds_other_rows_is_a_data_difference(trained, tmp_path):
    """The lake was rebuilt from a re-download with other adjusted prices: bars version 0 exists but is not what
    the model read. Features and labels versions still hold what was read."""
    settings, _ = trained
    home = copy_home(settings.home, tmp_path / "home")
    changed = settings.model_copy(update={"home": home})
    lake = st.lake_for(changed)
    bars = lake.read_bars(["IBM"], version=0)
    late = bars["date"] >= "2012-06-01"
    bars.loc[late, "adj_close"] = bars.loc[late, "adj_close"] * 1.1
    shutil.rmtree(home / "lake" / st.BARS)
    assert lake.append(st.BARS, bars, {"operation": "ingest", "reason": "re-downloaded"}) == 0

    report = rp.reproduce(changed, NAME)
    data = [d for d in report.differences if d.kind == "data"]
    assert [d.field for d in data] == ["bars_version"], [str(d) for d in report.differences]
    assert data[0].recorded.startswith("v0 digest ") and data[0].recorded != data[0].now
    assert "code" not in report.kinds() and "environment" not in report.kinds()
    assert report.rebuilt and not report.ok


def test_a_vacuumed_table_version_is_a_data_difference_without_a_rebuild(trained, tmp_path):
    settings, _ = trained
    home = copy_home(settings.home, tmp_path / "home")
    vacuumed = settings.model_copy(update={"home": home})
    lake = st.lake_for(vacuumed)
    lake.delete_tickers(st.BARS, ["IBM"], {"operation": "delete"})
    lake.table(st.BARS).vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
    before = _registry_state(vacuumed)

    report = rp.reproduce(vacuumed, NAME)
    assert not report.ok and not report.rebuilt
    assert [(d.kind, d.field) for d in report.differences] == [("data", "bars_version")]
    assert report.differences[0].now.startswith("unreadable")
    assert _registry_state(vacuumed) == before


@pytest.mark.parametrize(
    ("ref", "expected"), [("cnn-ta-IBM", ("cnn-ta-IBM", None)), ("cnn-ta-IBM@3", ("cnn-ta-IBM", "3"))]
)
def test_model_refs(ref, expected):
    assert rp.parse_model_ref(ref) == expected


@pytest.mark.parametrize("ref", ["", "@3", "cnn-ta-IBM@"])
def test_bad_model_refs_are_usage_errors(ref):
    with pytest.raises(UsageError, match="NAME@VERSION"):
        rp.parse_model_ref(ref)


def test_a_different_lock_file_is_named_as_an_environment_difference():
    from tradeops.model.reproduce import compare_environment
    from tradeops.model.training import environment

    recorded = environment()
    assert recorded["requirements.lock"] is not None  # recorded from the checkout's lock
    now = {**recorded, "requirements.lock": "0" * 64}
    diffs = compare_environment(recorded, now, torch_num_threads=1)
    assert [(d.kind, d.field) for d in diffs] == [("environment", "requirements.lock")]
