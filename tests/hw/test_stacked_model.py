"""Stacked layers: bundle format version 2, and the golden model layer after layer with state."""

import json
from dataclasses import replace

import numpy as np
import pytest

from drnn_hw.bundle import (BundleError, Layer, ModelBundle, random_bundle,
                            random_stacked_bundle)
from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import initial_state, run


def _codes(rng, n, t, i, scale=300):
    return np.cumsum(rng.integers(-scale, scale + 1, (n, t, i)), axis=1).clip(-4000, 4000)


# -- bundle ------------------------------------------------------------------------------------

def test_stacked_round_trip_writes_version_2_with_per_layer_arrays(tmp_path):
    b = random_stacked_bundle(3, [6, 4], theta_x=[0.25, 0.5], theta_h=[0.125, 0.0], seed=2)
    b.head_w, b.head_b, b.classes = np.ones((2, 4)), np.zeros(2), ["a", "b"]
    d = b.save(tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    assert meta["format_version"] == 2 and "thresholds" not in meta
    assert (meta["input_size"], meta["hidden_size"]) == (3, 4)
    assert [(e["input_size"], e["hidden_size"]) for e in meta["layers"]] == [(3, 6), (6, 4)]
    assert meta["layers"][0]["thresholds"] == {"theta_x": 0.25, "theta_h": 0.125,
                                               "theta_x_code": 64, "theta_h_code": 32}
    assert meta["layers"][1]["thresholds"]["theta_x_code"] == 128
    with np.load(d / "tensors.npz") as z:
        assert {k for k in z.files if k.startswith("layer")} == {
            f"layer{l}.{k}" for l in (0, 1) for k in ("w_x", "w_h", "bias")}
        assert z["layer1.w_x"].shape == (3, 4, 6)
    c = ModelBundle.load(d)
    assert c.num_layers == 2 and (c.input_size, c.hidden_size) == (3, 4)
    for la, lb in zip(b.layers, c.layers):
        for k in ("w_x", "w_h", "bias"):
            assert np.array_equal(getattr(la, k), getattr(lb, k))
        assert (la.theta_x, la.theta_h) == (lb.theta_x, lb.theta_h)
    assert c.classes == ["a", "b"] and np.array_equal(c.head_w, b.head_w)


def test_single_layer_bundle_is_still_version_1_and_keeps_its_attributes(tmp_path):
    b = random_bundle(3, 5, theta_x=0.25)
    assert b.num_layers == 1 and b.layers[0].w_x is b.w_x and b.theta_x == 64
    meta = json.loads((b.save(tmp_path / "m") / "model.json").read_text())
    assert meta["format_version"] == 1 and "layers" not in meta


def test_one_layer_version_2_bundle_loads(tmp_path):
    b = random_bundle(3, 5, theta_h=0.5)
    d = b.save(tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    th = meta.pop("thresholds")
    meta.update(format_version=2, layers=[{"input_size": 3, "hidden_size": 5, "thresholds": th}])
    (d / "model.json").write_text(json.dumps(meta))
    with np.load(d / "tensors.npz") as z:
        data = {k: z[k] for k in z.files}
    for k in ("w_x", "w_h", "bias"):
        data["layer0." + k] = data.pop(k)
    np.savez(d / "tensors.npz", **data)
    c = ModelBundle.load(d)
    assert c.num_layers == 1 and np.array_equal(c.w_h, b.w_h) and c.theta_h == 128


def test_stacked_bundle_refuses_the_single_layer_attributes():
    b = random_stacked_bundle(2, [3, 3])
    for name in ("w_x", "w_h", "bias", "theta_x", "theta_h"):
        with pytest.raises(BundleError, match=rf"2 stacked layers have one {name} each"):
            getattr(b, name)
    with pytest.raises(BundleError, match="MODEL: 2 stacked layers: one layer only"):
        b.require_single_layer("MODEL", "one layer only")
    random_bundle(2, 3).require_single_layer("MODEL", "unused")


def test_with_thresholds_on_a_stacked_bundle_sets_every_layer():
    b = random_stacked_bundle(2, [3, 4]).with_thresholds(10, 20)
    assert [(ly.theta_x, ly.theta_h) for ly in b.layers] == [(10, 20), (10, 20)]
    c = b.with_layer_thresholds([(1, 2), (3, 4)])
    assert [(ly.theta_x, ly.theta_h) for ly in c.layers] == [(1, 2), (3, 4)]
    assert [(ly.theta_x, ly.theta_h) for ly in b.layers] == [(10, 20), (10, 20)]


def _stacked_dir(tmp_path):
    return random_stacked_bundle(3, [6, 4], theta_x=0.25).save(tmp_path / "m")


def _edit_npz(d, **arrays):
    with np.load(d / "tensors.npz") as z:
        data = {k: z[k] for k in z.files}
    for k, v in arrays.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    np.savez(d / "tensors.npz", **data)


@pytest.mark.parametrize("arrays, message", [
    ({"layer1.w_x": np.zeros((3, 4, 5), np.int64)},
     "layer1.w_x: expected shape (3, 4, 6) (its input is layer0's h), got (3, 4, 5)"),
    ({"layer1.w_h": np.zeros((3, 4, 3), np.int64)},
     "layer1.w_h: expected shape (3, 4, 4) (H = 4 from layer1.w_x's shape (3, 4, 6)), "
     "got (3, 4, 3)"),
    ({"layer0.bias": np.zeros((4, 6))}, "layer0.bias: expected integer codes, got dtype "
                                        "float64"),
    ({"layer1.w_h": np.full((3, 4, 4), 999)}, "layer1.w_h: values must lie in [-128, 127], "
                                              "got [999, 999]"),
    ({"layer1.bias": None}, "missing array 'layer1.bias'"),
    ({"layer2.w_x": np.zeros((3, 4, 4), np.int64)}, "layer2.w_x: model.json lists 2 layer(s)"),
    ({"w_x": np.zeros((3, 6, 3), np.int64)}, "w_x: a version-2 bundle holds per-layer arrays"),
    ({"head_w": np.zeros((2, 6)), "head_b": np.zeros(2)}, "head_w: expected shape (C, 4), "
                                                          "got (2, 6)"),
])
def test_malformed_stacked_tensors_are_named(tmp_path, arrays, message):
    d = _stacked_dir(tmp_path)
    _edit_npz(d, **arrays)
    with pytest.raises(BundleError) as e:
        ModelBundle.load(d)
    assert str(e.value).startswith(f"{d / 'tensors.npz'}: ")
    assert message in str(e.value) and "\n" not in str(e.value)


def _edit_json(d, edit):
    meta = json.loads((d / "model.json").read_text())
    edit(meta)
    (d / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(layers=[]), "layers: expected a non-empty list of objects, got []"),
    (lambda m: m.update(layers={"a": 1}), "layers: expected a non-empty list of objects"),
    (lambda m: m["layers"].__setitem__(1, 3), "layers[1]: expected an object, got 3"),
    (lambda m: m["layers"][1].update(hidden_size="4"),
     'layers[1].hidden_size: expected an integer, got "4"'),
    (lambda m: m["layers"][0]["thresholds"].update(theta_x_code=1.5),
     "layers[0].thresholds.theta_x_code: expected an integer, got 1.5"),
    (lambda m: m["layers"][1]["thresholds"].pop("theta_h_code"),
     "layers[1].thresholds.theta_h_code: missing"),
    (lambda m: m["layers"][1].update(depth=2), "layers[1].depth: unknown field"),
    (lambda m: m.update(thresholds={}), "thresholds: unknown field"),
    (lambda m: m.pop("layers"), "layers: missing"),
    (lambda m: m["layers"][1].update(hidden_size=5),
     "layers[1].hidden_size: says 5, tensors have 4"),
    (lambda m: m["layers"][0]["thresholds"].update(theta_x=0.5),
     "layers[0].thresholds.theta_x: 0.5 is code 128 in Q8.8, but "
     "layers[0].thresholds.theta_x_code is 64"),
    (lambda m: m["layers"][1]["thresholds"].update(theta_h_code=-1),
     "layers[1].thresholds.theta_h_code: expected a code in [0, 32767], got -1"),
    (lambda m: m.update(hidden_size=6), "hidden_size: says 6, tensors have 4"),
])
def test_malformed_stacked_model_json_is_named(tmp_path, edit, message):
    d = _stacked_dir(tmp_path)
    _edit_json(d, edit)
    with pytest.raises(BundleError) as e:
        ModelBundle.load(d)
    assert str(e.value).startswith(f"{d / 'model.json'}: ")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_layers_must_chain_when_built_in_memory():
    a, b = random_bundle(3, 6).layers[0], random_bundle(5, 4).layers[0]
    with pytest.raises(BundleError, match=r"bundle: layer1.w_x: expected shape \(3, 4, 6\)"):
        ModelBundle(formats=random_bundle(1, 1).formats, layers=[a, b])
    with pytest.raises(BundleError, match="expected at least 1 layer"):
        ModelBundle(formats=random_bundle(1, 1).formats, layers=[])
    with pytest.raises(TypeError, match="not both"):
        ModelBundle(formats=a and random_bundle(1, 1).formats, w_x=a.w_x, w_h=a.w_h,
                    bias=a.bias, layers=[a])
    assert isinstance(a, Layer) and (a.input_size, a.hidden_size) == (3, 6)


# -- golden model ------------------------------------------------------------------------------

def _layer_bundle(b, l):
    ly = b.layers[l]
    return ModelBundle(formats=b.formats, w_x=ly.w_x, w_h=ly.w_h, bias=ly.bias,
                       theta_x=ly.theta_x, theta_h=ly.theta_h)


def test_stacked_golden_chains_single_layer_runs():
    """Layer l+1 on layer l's h, each as a single-layer bundle: the same h, nnz and cycles."""
    rng = np.random.default_rng(0)
    b = random_stacked_bundle(5, [9, 17, 4], theta_x=[0.1, 0.05, 0.2], theta_h=[0.05, 0.1, 0.0],
                              seed=3)
    x = _codes(rng, 4, 12, 5)
    lengths = np.array([12, 7, 1, 0])
    shape = CoreShape(rows=4, columns=2, scan=4, step_overlap=False)
    # (Every step started idle, prescan 0: a layer's cycles as a one-layer bundle's.)
    r = run(b, x, lengths, shape, prescan=0)
    inp, cycles = x, 0
    for l in range(3):
        one = run(_layer_bundle(b, l), inp, lengths, shape, prescan=0)
        assert np.array_equal(r.layer_h[l], one.h), l
        assert np.array_equal(r.layer_nnz_dx[..., l], one.nnz_dx), l
        assert np.array_equal(r.layer_nnz_dh[..., l], one.nnz_dh), l
        assert one.nnz_dx.sum() > 0 and one.nnz_dh.sum() > 0
        cycles = cycles + one.cycles
        inp = one.h
    assert np.array_equal(r.h, inp) and r.h.shape == (4, 12, 4)
    assert np.array_equal(r.nnz_dx, r.layer_nnz_dx.sum(-1))
    assert np.array_equal(r.nnz_dh, r.layer_nnz_dh.sum(-1))
    # Layers in sequence, no overlap, one idle cycle between two passes (LAYER_GAP).
    valid = np.arange(12)[None, :] < lengths[:, None]
    assert np.array_equal(r.cycles, cycles + 2 * valid)
    assert np.array_equal(r.layer_cycles.sum(-1), cycles)
    assert np.all(r.cycles[3] == 0) and np.all(r.h[1, 7:] == 0)
    # With issue #10's step overlap, frames back to back (the default): only layer 0's pass is
    # scanned during the AP of the step before, the last layer's NB (4 rows of 4: 1) +
    # AP_LATENCY − 2 cycles ahead.
    assert np.array_equal(run(b, x, lengths, shape).cycles, r.cycles)
    s = run(b, x, lengths, replace(shape, step_overlap=True))
    assert np.array_equal(s.prescan, np.where(valid & (np.arange(12) > 0), 11, 0))
    assert np.array_equal(s.layer_cycles[..., 1:], r.layer_cycles[..., 1:])
    assert (s.layer_cycles[..., 0] <= r.layer_cycles[..., 0]).all()
    assert (s.layer_cycles[..., 0] < r.layer_cycles[..., 0]).any()


@pytest.mark.parametrize("layers", [[6], [7, 5]])
def test_chunked_sequences_give_the_same_h_as_one_piece(layers):
    rng = np.random.default_rng(1)
    b = random_stacked_bundle(3, layers, theta_x=0.1, theta_h=0.05, seed=5)
    x = _codes(rng, 3, 20, 3)
    lengths = np.array([20, 13, 4])
    # (Steps started idle: a chunk's first step would otherwise count as a sequence's first.)
    whole = run(b, x, lengths, prescan=0)
    state, hs, nnz, cyc = None, [], [], []
    for lo, hi in ((0, 5), (5, 6), (6, 20)):
        part = run(b, x[:, lo:hi], np.clip(lengths - lo, 0, hi - lo), state=state, prescan=0)
        state = part.state
        hs.append(part.h)
        nnz.append(part.layer_nnz_dh)
        cyc.append(part.cycles)
    assert np.array_equal(np.concatenate(hs, 1), whole.h)
    assert np.array_equal(np.concatenate(nnz, 1), whole.layer_nnz_dh)
    assert np.array_equal(np.concatenate(cyc, 1), whole.cycles)
    for a, c in zip(state, whole.state):
        for k in ("x_ref", "h_ref", "h", "m"):
            assert np.array_equal(getattr(a, k), getattr(c, k)), k


def test_run_does_not_modify_the_state_it_is_given():
    b = random_stacked_bundle(2, [3, 3], seed=1)
    s0 = initial_state(b, 1)
    run(b, np.full((1, 4, 2), 256), state=s0)
    assert not s0[1].h.any() and not s0[0].x_ref.any()


def test_h0_is_the_state_before_the_first_step():
    b = random_stacked_bundle(2, [3, 4], seed=4)
    h0 = [np.array([100, -200, 300]), None]
    s = initial_state(b, 2, h0)
    assert s[0].h.tolist() == [[100, -200, 300]] * 2 and not s[1].h.any()
    assert not s[0].h_ref.any() and np.array_equal(s[0].m[1], b.layers[0].bias)
    x = np.zeros((2, 1, 2), np.int64)
    with_h0 = run(b, x, h0=h0)
    # With x = 0 the first step's only kept deltas are h0's non-zero elements.
    assert with_h0.layer_nnz_dh[:, 0, 0].tolist() == [3, 3]
    assert with_h0.layer_nnz_dx[:, 0, 0].tolist() == [0, 0]
    assert not np.array_equal(with_h0.h, run(b, x).h)
    for bad, match in (([h0[0]], "expected 2 arrays"), ([np.zeros(4, np.int64), None],
                                                       r"h0\[0\]: expected integer codes"),
                       ([np.full(3, 1 << 20), None], r"h0\[0\]: codes must lie")):
        with pytest.raises(ValueError, match=match):
            run(b, x, h0=bad)
    with pytest.raises(ValueError, match="state or h0"):
        run(b, x, h0=h0, state=s)
