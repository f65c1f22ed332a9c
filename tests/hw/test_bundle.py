"""Model bundle: round trip and every malformed-bundle case names file and field."""

import json

import numpy as np
import pytest

from drnn_hw.bundle import BundleError, ModelBundle, random_bundle
from drnn_hw.numerics import Formats


def test_round_trip_preserves_everything(tmp_path):
    b = random_bundle(3, 5, seed=1, theta_x=0.25, theta_h=0.125)
    b.head_w, b.head_b, b.classes = np.ones((2, 5)), np.zeros(2), ["a", "b"]
    b.save(tmp_path / "m")
    c = ModelBundle.load(tmp_path / "m")
    for k in ("w_x", "w_h", "bias", "sigmoid_lut", "tanh_lut", "input_mean", "input_scale",
              "head_w", "head_b"):
        assert np.array_equal(getattr(b, k), getattr(c, k)), k
    assert (c.theta_x, c.theta_h) == (64, 32)
    assert c.classes == ["a", "b"] and c.formats == b.formats
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["thresholds"] == {"theta_x": 0.25, "theta_h": 0.125,
                                  "theta_x_code": 64, "theta_h_code": 32}


def _corrupt(tmp_path, **arrays):
    b = random_bundle(3, 5)
    d = b.save(tmp_path / "m")
    with np.load(d / "tensors.npz") as z:
        data = {k: z[k] for k in z.files}
    data.update(arrays)
    np.savez(d / "tensors.npz", **data)
    return d


@pytest.mark.parametrize("arrays, match", [
    (dict(w_x=np.zeros((3, 5, 3))), "w_x: expected integer codes"),
    (dict(w_h=np.zeros((3, 5, 4), np.int64)), r"w_h: expected shape \(3, 5, 5\)"),
    (dict(w_x=np.full((3, 5, 3), 1000)), r"w_x: values must lie in \[-128, 127\]"),
    (dict(bias=np.zeros((3, 5), np.int64)), r"bias: expected shape \(4, 5\)"),
    (dict(tanh_lut=np.full(1024, 300)), "tanh_lut: values must lie"),
    (dict(input_scale=np.zeros(3)), "input_scale: must be non-zero"),
    (dict(input_mean=np.array([0.0, np.nan, 0.0])), "input_mean: contains NaN"),
])
def test_malformed_tensors_are_named(tmp_path, arrays, match):
    d = _corrupt(tmp_path, **arrays)
    with pytest.raises(BundleError, match=match) as e:
        ModelBundle.load(d)
    assert "tensors.npz" in str(e.value) and "\n" not in str(e.value)


def test_malformed_json_and_missing_files(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        ModelBundle.load(tmp_path / "nope")
    d = random_bundle(2, 2).save(tmp_path / "m")
    (d / "model.json").write_text("{not json")
    with pytest.raises(BundleError, match="model.json: not valid JSON"):
        ModelBundle.load(d)
    meta = {"format_version": 99}
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="format_version: expected 1, got 99"):
        ModelBundle.load(d)
    (d / "tensors.npz").unlink()
    with pytest.raises(BundleError, match="tensors.npz: missing"):
        ModelBundle.load(d)


def test_threshold_code_out_of_range(tmp_path):
    d = random_bundle(2, 2).save(tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    meta["thresholds"]["theta_h_code"] = -1
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"theta_h: threshold code must lie in \[0, 32767\]"):
        ModelBundle.load(d)


def test_quantize_input_applies_normalisation_and_checks_shape():
    b = random_bundle(2, 2)
    b.input_mean, b.input_scale = np.array([1.0, -1.0]), np.array([2.0, 0.5])
    assert b.quantize_input(np.array([[3.0, -0.5]])).tolist() == [[256, 256]]
    with pytest.raises(BundleError, match="expected 2 features"):
        b.quantize_input(np.zeros((4, 3)))


def test_formats_survive_round_trip(tmp_path):
    f = Formats(w_bits=16, w_frac=14, acc_bits=40, lut_bits=9)
    d = random_bundle(2, 3, formats=f).save(tmp_path / "m")
    assert ModelBundle.load(d).formats == f
