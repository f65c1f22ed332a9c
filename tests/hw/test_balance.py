"""Column-balanced pattern (drnn_hw.balance) and its record in the bundle (format version 4).

The pattern is checked against counts taken here independently, with explicit row lists
(rows p, p + P, p + 2P, ... < H), not with the module's reshapes.
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from drnn_hw.balance import (BalanceUnit, ShapeMismatch, balanced_mask, check_core_shape,
                             first_violation, kept_per_slice, matrix_sparsity, slice_nonzeros)
from drnn_hw.bundle import BundleError, Layer, ModelBundle, random_bundle, random_stacked_bundle
from drnn_hw.cycle_model import CoreShape


def slice_rows(H, P, p):
    return list(range(p, H, P))


def count_by_loops(w, P):
    H, C = w.shape
    return np.array([[sum(1 for r in slice_rows(H, P, p) if w[r, c] != 0) for p in range(P)]
                     for c in range(C)])


@pytest.mark.parametrize("gamma, H, P, kept", [
    (0.0, 64, 16, 4), (0.5, 64, 16, 2), (0.75, 64, 16, 1), (0.9, 64, 16, 1),
    (0.94, 64, 16, 1), (0.5, 70, 16, 3),   # NB = 5: keeps 3 (rounds the kept count up)
    (0.7, 160, 16, 3),                    # 0.7 * 10 = 7.000000000000001 in binary: still 3
    (0.29, 1600, 16, 71),                 # 0.29 * 100 = 28.999999999999996: still 71
    (0.94, 1024, 16, 4),                  # NB = 64: 64 - floor(60.16) = 4
    (0.5, 8, 16, 1),                      # H < P: one row per slice, nothing pruned
])
def test_kept_count_rounding_rule(gamma, H, P, kept):
    assert kept_per_slice(gamma, H, P) == kept


@pytest.mark.parametrize("gamma", [1.0, -0.1, float("nan"), 1.5])
def test_kept_count_refuses_gamma_outside_unit_interval(gamma):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        kept_per_slice(gamma, 64, 16)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(1, 12), st.integers(0, 2 ** 31),
       st.booleans())
def test_mask_keeps_the_largest_of_every_slice(H, C, P, seed, ties):
    rng = np.random.default_rng(seed)
    w = rng.integers(-3, 4, (H, C)) if ties else rng.normal(size=(H, C))
    nb = -(-H // P)
    for kept in range(0, nb + 1):
        m = balanced_mask(w, P, kept)
        assert m.shape == (H, C) and m.dtype == bool
        for c in range(C):
            for p in range(P):
                rows = slice_rows(H, P, p)
                got = [r for r in rows if m[r, c]]
                assert len(got) == min(kept, len(rows))
                dropped = [r for r in rows if not m[r, c]]
                if got and dropped:
                    assert min(abs(w[r, c]) for r in got) >= max(abs(w[r, c]) for r in dropped)
                    # ties go to the lower row
                    for r in got:
                        for q in dropped:
                            if abs(w[r, c]) == abs(w[q, c]):
                                assert r < q
        pruned = np.where(m, w, 0)
        assert (count_by_loops(pruned, P) <= kept).all()
        assert first_violation(pruned, P, kept) is None


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(1, 12), st.integers(0, 2 ** 31))
def test_slice_counts_and_first_violation_match_loops(H, C, P, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-1, 2, (H, C))
    want = count_by_loops(w, P)
    assert np.array_equal(slice_nonzeros(w, P), want)
    k = int(want.max()) - 1
    if k >= 0:
        c, p, nz = first_violation(w, P, k)
        assert nz == want[c, p] > k
        first = min((cc, pp) for cc in range(C) for pp in range(P) if want[cc, pp] > k)
        assert (c, p) == first


def balanced(I=5, H=20, P=4, gamma=0.5, seed=0, cell="gru"):
    b = random_bundle(I, H, seed=seed, cell=cell)
    ly = b.layers[0]
    unit = BalanceUnit.for_layer(gamma, H, P)
    wx = np.stack([np.where(balanced_mask(w, P, unit.kept), w, 0) for w in ly.w_x])
    wh = np.stack([np.where(balanced_mask(w, P, unit.kept), w, 0) for w in ly.w_h])
    return ModelBundle(formats=b.formats, cell=cell, name="bal", layers=[
        Layer(wx, wh, ly.bias, ly.theta_x, ly.theta_h, unit)])


def test_round_trip_of_a_balanced_bundle_is_version_4(tmp_path):
    b = balanced()
    b.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["format_version"] == 4 and meta["cell"] == "gru"
    assert meta["layers"][0]["balance"] == {"rows": 4, "kept": 3, "gamma": 0.5}
    c = ModelBundle.load(tmp_path / "m")
    assert c.layers[0].balance == BalanceUnit(4, 3, 0.5)
    assert np.array_equal(c.w_h, b.w_h) and np.array_equal(c.w_x, b.w_x)
    # every slice of the 5 rows p, p+4, ... of H = 20 holds at most 3 non-zeros
    for w in list(c.w_x) + list(c.w_h):
        assert count_by_loops(w, 4).max() <= 3
    # copies (thresholds changed) keep the record
    assert b.with_thresholds(3, 4).layers[0].balance == b.layers[0].balance


def test_dense_bundles_have_no_record_and_keep_their_versions(tmp_path):
    random_bundle(3, 5).save(tmp_path / "a")
    random_stacked_bundle(3, [5, 4]).save(tmp_path / "b")
    random_bundle(3, 5, cell="lstm").save(tmp_path / "c")
    for d, v in (("a", 1), ("b", 2), ("c", 3)):
        meta = json.loads((tmp_path / d / "model.json").read_text())
        assert meta["format_version"] == v
        assert "balance" not in json.dumps(meta)
        assert all(ly.balance is None for ly in ModelBundle.load(tmp_path / d).layers)


def test_lstm_and_stacked_balanced_bundles(tmp_path):
    b = balanced(cell="lstm", gamma=0.75, H=16, P=4)
    b.save(tmp_path / "l")
    assert ModelBundle.load(tmp_path / "l").layers[0].balance.kept == 1
    s = random_stacked_bundle(3, [8, 6], seed=2)
    ly = s.layers[1]
    unit = BalanceUnit.for_layer(0.5, 6, 2)          # layer 1 only: layer 0 stays dense
    wx = np.stack([np.where(balanced_mask(w, 2, unit.kept), w, 0) for w in ly.w_x])
    wh = np.stack([np.where(balanced_mask(w, 2, unit.kept), w, 0) for w in ly.w_h])
    s2 = ModelBundle(formats=s.formats, layers=[s.layers[0], Layer(wx, wh, ly.bias, 0, 0, unit)])
    s2.save(tmp_path / "s")
    meta = json.loads((tmp_path / "s" / "model.json").read_text())
    assert "balance" not in meta["layers"][0] and meta["layers"][1]["balance"]["kept"] == 2
    t = ModelBundle.load(tmp_path / "s")
    assert t.layers[0].balance is None and t.layers[1].balance == unit


def _tamper_tensor(d, key, fn):
    with np.load(d / "tensors.npz") as z:
        data = {k: z[k] for k in z.files}
    data[key] = fn(data[key].copy())
    np.savez(d / "tensors.npz", **data)


def test_weights_that_break_the_pattern_are_refused_naming_everything(tmp_path):
    b = balanced()
    d = b.save(tmp_path / "m")
    # column 2 of gate n's W_h, slice p = 1 (rows 1, 5, 9, 13, 17): make all 5 non-zero
    _tamper_tensor(d, "layer0.w_h", lambda a: (a.__setitem__((2, slice(1, 20, 4), 2), 7), a)[1])
    with pytest.raises(BundleError) as e:
        ModelBundle.load(d)
    msg = str(e.value)
    assert "tensors.npz: layer0.w_h: gate n column 2 slice p=1 (rows 1, 5, 9, 13, ...): " \
           "5 non-zero weights, layers[0].balance.kept allows at most 3" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("edit, match", [
    (lambda bal: bal.update(kept=2), r"layers\[0\]\.balance\.kept: expected 3 .* got 2"),
    (lambda bal: bal.update(gamma=1.0), r"layers\[0\]\.balance\.gamma: expected a number in "
                                        r"\[0, 1\), got 1.0"),
    (lambda bal: bal.update(rows=0), r"layers\[0\]\.balance\.rows: expected an integer ≥ 1"),
    (lambda bal: bal.update(rows="4"), r"layers\[0\]\.balance\.rows: expected an integer"),
    (lambda bal: bal.pop("kept"), r"layers\[0\]\.balance\.kept: missing"),
    (lambda bal: bal.update(extra=1), r"layers\[0\]\.balance\.extra: unknown field"),
])
def test_bad_records_are_refused_naming_model_json(tmp_path, edit, match):
    d = balanced().save(tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    edit(meta["layers"][0]["balance"])
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=match) as e:
        ModelBundle.load(d)
    assert "model.json" in str(e.value)


def test_a_version_3_reader_field_set_refuses_balance(tmp_path):
    d = balanced().save(tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    meta["format_version"] = 3
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"layers\[0\]\.balance: unknown field"):
        ModelBundle.load(d)


def test_construction_checks_the_pattern_too():
    b = balanced()
    ly = b.layers[0]
    wx = ly.w_x.copy()
    wx[0, :, 0] = 1                        # every row of column 0 of gate r
    with pytest.raises(BundleError, match=r"w_x: gate r column 0 slice p=0 .*: 5 non-zero"):
        ModelBundle(formats=b.formats, layers=[Layer(wx, ly.w_h, ly.bias, 0, 0, ly.balance)])
    with pytest.raises(BundleError, match="kept 1 per slice is not the count"):
        ModelBundle(formats=b.formats,
                    layers=[Layer(ly.w_x, ly.w_h, ly.bias, 0, 0, BalanceUnit(4, 1, 0.5))])


def test_core_shape_check_names_both_p():
    b = balanced(H=20, P=4)
    check_core_shape(b, CoreShape(rows=4))
    with pytest.raises(ShapeMismatch) as e:
        check_core_shape(b, CoreShape(rows=16), where="m/model.json")
    msg = str(e.value)
    assert msg.startswith("m/model.json: layers[0].balance.rows:")
    assert "P = 4 rows" in msg and "the core has P = 16" in msg
    for dense in (random_bundle(3, 20), random_stacked_bundle(3, [8, 6])):
        check_core_shape(dense, CoreShape(rows=7))      # a dense bundle fits every core
    # Every P ≥ H gives one row per slice: the pattern of P = 32 is the one of P = 8 on H = 8.
    small = balanced(H=8, P=32, gamma=0.5)
    check_core_shape(small, CoreShape(rows=8))
    check_core_shape(small, CoreShape(rows=16))
    with pytest.raises(ShapeMismatch):
        check_core_shape(small, CoreShape(rows=4))


def test_matrix_sparsity_counts_zeros():
    b = balanced(H=20, P=4, gamma=0.5)
    rows = matrix_sparsity(b.layers[0], "gru")
    assert [(r["gate"], r["part"]) for r in rows] == [
        ("r", "x"), ("z", "x"), ("n", "x"), ("r", "h"), ("z", "h"), ("n", "h")]
    for r, w in zip(rows, list(b.w_x) + list(b.w_h)):
        zeros = sum(1 for v in np.asarray(w).ravel() if v == 0)
        assert r["sparsity"] == pytest.approx(zeros / w.size)
        assert r["max_slice_nonzero"] <= 3
    assert "max_slice_nonzero" not in matrix_sparsity(random_bundle(3, 5).layers[0])[0]
