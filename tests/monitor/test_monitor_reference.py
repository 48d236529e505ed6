"""The training reference: subsample, PSI bins, class mixes, deterministic files and loud loading errors."""

from __future__ import annotations

import re
import time
import zipfile

import numpy as np
import pandas as pd
import pytest

from tradeops.errors import TradeopsError
from tradeops.features.labels import CLASSES
from tradeops.model.package import PROBA_COLUMNS
from tradeops.monitor.reference import (
    JSON_NAME,
    NPZ_NAME,
    bin_counts,
    build_reference,
    load_reference,
    save_reference,
)

WINDOW = {"fit": "2010-01-04..2011-12-30", "test": "2012-01-03..2012-06-29"}


def inputs(n: int = 3000, f: int = 4, m: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    fit = pd.DataFrame(rng.normal(size=(n, f)), columns=[f"x{j}" for j in range(f)])
    labels = pd.Series(pd.array(rng.choice(CLASSES, size=n), dtype="string"))
    proba = rng.dirichlet([1.0, 1.0, 1.0], size=m)
    signals = pd.Series(np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)])
    return fit, labels, signals, proba


def make(n: int = 3000, f: int = 4, *, rows: int = 500, bins: int = 10, seed: int = 0):
    fit, labels, signals, proba = inputs(n, f)
    return build_reference(fit, labels, signals, proba, bins=bins, rows=rows, seed=seed, window=WINDOW), fit


def test_proba_columns_follow_classes_order():
    assert CLASSES == ("BUY", "SELL", "HOLD")
    assert PROBA_COLUMNS == ("p_BUY", "p_SELL", "p_HOLD")


def test_sample_is_a_seeded_uniform_subsample_of_the_fit_rows_in_order():
    ref, fit = make(rows=500)
    assert ref.sample.shape == (500, 4) and ref.sample.dtype == np.float32
    assert ref.feature_names == ("x0", "x1", "x2", "x3")
    full = fit.to_numpy().astype(np.float32)
    pos = [int(np.flatnonzero((full == row).all(axis=1))[0]) for row in ref.sample]
    assert pos == sorted(pos) and len(set(pos)) == 500  # distinct fit rows, kept in fit order
    again, _ = make(rows=500)
    other, _ = make(rows=500, seed=1)
    np.testing.assert_array_equal(again.sample, ref.sample)
    assert not np.array_equal(other.sample, ref.sample)
    small, _ = make(n=100, rows=500)
    np.testing.assert_array_equal(small.sample, inputs(100)[0].to_numpy().astype(np.float32))


def test_quantile_bins_hold_equal_shares_and_rows_sum_to_one():
    ref, fit = make(n=3000, bins=10)
    assert ref.bin_edges.shape == (4, 11) and ref.bin_share.shape == (4, 10)
    np.testing.assert_allclose(ref.bin_share.sum(axis=1), 1.0)
    np.testing.assert_allclose(ref.bin_share, 0.1, atol=1 / 3000)
    np.testing.assert_allclose(ref.bin_edges[:, 0], fit.min().to_numpy())
    np.testing.assert_allclose(ref.bin_edges[:, -1], fit.max().to_numpy())


def test_bin_counts_hand_worked_edges_and_outer_values():
    edges = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    values = np.array([[-50.0], [0.0], [0.99], [1.0], [2.5], [3.0], [4.0], [99.0], [np.nan], [np.inf], [-np.inf]])
    counts, finite = bin_counts(edges, values)
    # bin k holds [edge_k, edge_k+1) of the interior edges 1, 2, 3; below 1 -> bin 0, from 3 up -> bin 3
    assert counts.tolist() == [[3, 1, 1, 3]]
    assert finite.tolist() == [8]
    counts32, _ = bin_counts(edges, values.astype(np.float32))
    assert counts32.tolist() == [[3, 1, 1, 3]]


def test_float32_values_bin_exactly_like_float64_at_edges_between_float32_numbers():
    edge = 0.1  # not a float32 number: float32(0.1) > 0.1 and its predecessor < 0.1
    below = np.nextafter(np.float32(edge), np.float32(0))
    above = np.float32(edge)
    edges = np.array([[-1.0, edge, 1.0]])
    values = np.array([[below], [above]], dtype=np.float32)
    c32, _ = bin_counts(edges, values)
    c64, _ = bin_counts(edges, values.astype(np.float64))
    assert c32.tolist() == c64.tolist() == [[1, 1]]


def test_constant_feature_has_duplicate_edges_and_all_mass_in_one_bin():
    fit, labels, signals, proba = inputs(500, 2)
    fit["x1"] = 7.0
    ref = build_reference(fit, labels, signals, proba, bins=5, rows=100, seed=0, window=WINDOW)
    assert ref.bin_edges[1].tolist() == [7.0] * 6
    assert ref.bin_share[1].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]


def test_class_mixes_count_present_labels_only():
    fit = pd.DataFrame({"a": np.arange(5.0)})
    labels = pd.Series(pd.array(["BUY", "SELL", "HOLD", "HOLD", pd.NA], dtype="string"))
    signals = pd.Series(["HOLD", "HOLD", "HOLD", "BUY"])
    proba = np.tile([0.2, 0.3, 0.5], (4, 1))
    ref = build_reference(fit, labels, signals, proba, bins=2, rows=10, seed=0, window=WINDOW)
    assert ref.class_mix == {"BUY": 0.25, "SELL": 0.25, "HOLD": 0.5}
    assert ref.test_signal_mix == {"BUY": 0.25, "SELL": 0.0, "HOLD": 0.75}
    assert ref.test_proba.dtype == np.float32 and ref.test_proba.shape == (4, 3)
    assert ref.window == WINDOW


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(labels=pd.Series(["BUY", "UP", "HOLD", "SELL", "BUY"])), "unknown class 'UP'"),
        (lambda d: d.update(labels=pd.Series(["BUY"] * 4)), "4 fit labels for 5 fit rows"),
        (lambda d: d.update(proba=np.ones((4, 2))), "test_proba"),
        (lambda d: d.update(signals=pd.Series(["BUY"] * 3)), "3 signals but 4 proba rows"),
        (lambda d: d.update(fit=pd.DataFrame({"a": [np.nan] * 5})), "feature 'a' has no finite value"),
        (lambda d: d.update(labels=pd.Series([None] * 5)), "fit labels: [classes] no class present"),
    ],
)
def test_build_refuses_bad_inputs_with_a_message(change, message):
    d = {
        "fit": pd.DataFrame({"a": np.arange(5.0)}),
        "labels": pd.Series(["BUY", "SELL", "HOLD", "HOLD", "BUY"]),
        "signals": pd.Series(["HOLD"] * 4),
        "proba": np.tile([0.2, 0.3, 0.5], (4, 1)),
    }
    change(d)
    with pytest.raises(TradeopsError, match=re.escape(message)):
        build_reference(d["fit"], d["labels"], d["signals"], d["proba"], bins=2, rows=10, seed=0, window=WINDOW)


def test_save_load_round_trip(tmp_path):
    ref, _ = make()
    save_reference(ref, tmp_path / "bundle")
    back = load_reference(tmp_path / "bundle")
    assert back.feature_names == ref.feature_names
    for name in ("sample", "bin_edges", "bin_share", "test_proba"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ref, name))
        assert getattr(back, name).dtype == getattr(ref, name).dtype
    assert back.class_mix == ref.class_mix and list(back.class_mix) == list(CLASSES)
    assert back.test_signal_mix == ref.test_signal_mix
    assert back.window == ref.window
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == [JSON_NAME, NPZ_NAME]


def test_same_inputs_give_byte_identical_files_at_another_time(tmp_path, monkeypatch):
    save_reference(make()[0], tmp_path / "a")
    later = time.time() + 86_400 * 3
    monkeypatch.setattr(time, "time", lambda: later)  # np.savez would stamp this into the zip entries
    save_reference(make()[0], tmp_path / "b")
    for name in (NPZ_NAME, JSON_NAME):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_files_stay_small_for_a_full_size_reference(tmp_path):
    ref, _ = make(n=2500, f=225, rows=2000)
    save_reference(ref, tmp_path)
    assert (tmp_path / NPZ_NAME).stat().st_size < 2.5 * 2**20


def test_load_names_a_missing_file(tmp_path):
    save_reference(make()[0], tmp_path)
    (tmp_path / NPZ_NAME).unlink()
    with pytest.raises(TradeopsError, match=r"reference\.npz: training reference file is missing"):
        load_reference(tmp_path)
    with pytest.raises(TradeopsError, match=r"reference\.json: training reference file is missing"):
        load_reference(tmp_path / "nowhere")


def test_load_names_a_corrupt_npz(tmp_path):
    save_reference(make()[0], tmp_path)
    (tmp_path / NPZ_NAME).write_bytes(b"not a zip")
    with pytest.raises(TradeopsError, match=r"reference\.npz: corrupt training reference"):
        load_reference(tmp_path)


def test_load_names_a_corrupt_json(tmp_path):
    save_reference(make()[0], tmp_path)
    (tmp_path / JSON_NAME).write_text("{", encoding="utf-8")
    with pytest.raises(TradeopsError, match=r"reference\.json: corrupt training reference"):
        load_reference(tmp_path)


def test_load_refuses_arrays_that_do_not_fit_the_feature_names(tmp_path):
    save_reference(make(f=4)[0], tmp_path)
    other = tmp_path / "other"
    save_reference(make(f=3)[0], other)
    (tmp_path / NPZ_NAME).write_bytes((other / NPZ_NAME).read_bytes())
    with pytest.raises(TradeopsError, match=r"reference\.npz: corrupt training reference \(\[sample\] shape"):
        load_reference(tmp_path)


def test_npz_is_a_plain_numpy_archive(tmp_path):
    save_reference(make()[0], tmp_path)
    with zipfile.ZipFile(tmp_path / NPZ_NAME) as zf:
        assert zf.namelist() == ["sample.npy", "bin_edges.npy", "bin_share.npy", "test_proba.npy"]
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    with np.load(tmp_path / NPZ_NAME) as z:
        assert z["sample"].shape == (500, 4)
