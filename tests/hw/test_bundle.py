"""Model bundle: round trip and every malformed-bundle case names file and field."""

import json
import re

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
    (dict(tanh_lut=np.full(1024, 300)), "tanh_lut: differs from the table the formats"),
    (dict(sigmoid_lut=np.full(1024, 5)), "sigmoid_lut: differs from the table the formats "
                                         "specify at entry 0"),
    (dict(sigmoid_lut=np.zeros(512, np.int64)), "sigmoid_lut: differs"),
    (dict(extra_table=np.zeros(3)), "unknown array 'extra_table'"),
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
    with pytest.raises(BundleError, match="format_version: expected 1, 2, 3 or 4, got 99"):
        ModelBundle.load(d)
    (d / "tensors.npz").unlink()
    with pytest.raises(BundleError, match="tensors.npz: missing"):
        ModelBundle.load(d)


def test_threshold_code_out_of_range(tmp_path):
    d = random_bundle(2, 2).save(tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    meta["thresholds"]["theta_h_code"] = -1
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"model.json: thresholds.theta_h_code: expected a "
                                          r"code in \[0, 32767\], got -1"):
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


# -- model.json: the type of every field, the informational copies -----------------------------

def _edit_meta(tmp_path, edit):
    d = random_bundle(2, 3, theta_x=0.25).save(tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    edit(meta)
    (d / "model.json").write_text(json.dumps(meta))
    return d


def _set(path, value):
    def edit(meta):
        *parents, last = path.split(".")
        obj = meta
        for p in parents:
            obj = obj[p]
        obj[last] = value
    return edit


FORMAT_FIELDS = ["act_bits", "act_frac", "w_bits", "w_frac", "acc_bits", "lut_bits",
                 "sigmoid_range_log2", "tanh_range_log2"]

# Every field save() writes, with a value of the wrong JSON type and the type expected.
WRONG_TYPES = [
    ("format_version", "1", "an integer"),
    ("format_version", True, "an integer"),
    ("name", 5, "a string"),
    ("input_size", "2", "an integer"),
    ("hidden_size", 3.0, "an integer"),
    ("formats", [], "an object"),
    *[(f"formats.{k}", "8", "an integer") for k in FORMAT_FIELDS],
    ("formats.act_bits", 16.5, "an integer"),
    ("thresholds", 0.25, "an object"),
    ("thresholds.theta_x", "0.25", "a finite number"),
    ("thresholds.theta_h", None, "a finite number"),
    ("thresholds.theta_x_code", 64.0, "an integer"),
    ("thresholds.theta_h_code", "0", "an integer"),
    ("lut", "1024", "an object"),
    ("lut.entries", "1024", "an integer"),
    ("lut.sigmoid_range", 8, "a list of 2 numbers"),
    ("lut.tanh_range", [-4, 4, 0], "a list of 2 numbers"),
    ("lut.output_lsb", "0.0039", "a finite number"),
    ("classes", "ab", "a list of strings or null"),
    ("classes", [0, 1], "a list of strings or null"),
    ("source", ["x"], "a string"),
    ("extra", "none", "an object"),
]


@pytest.mark.parametrize("path, value, expected", WRONG_TYPES,
                         ids=[f"{p}={json.dumps(v)}" for p, v, _ in WRONG_TYPES])
def test_every_model_json_field_is_type_checked(tmp_path, path, value, expected):
    d = _edit_meta(tmp_path, _set(path, value))
    with pytest.raises(BundleError) as e:
        ModelBundle.load(d)
    msg = str(e.value)
    assert msg == f"{d / 'model.json'}: {path}: expected {expected}, got {json.dumps(value)}"


def test_wrong_types_cover_every_saved_field(tmp_path):
    """The list above names every field save() writes (a new field needs a new case)."""
    d = random_bundle(2, 3).save(tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    saved = set()
    for k, v in meta.items():
        saved.add(k)
        if isinstance(v, dict) and k != "extra":
            saved.update(f"{k}.{s}" for s in v)
    assert saved == {p for p, _, _ in WRONG_TYPES}


def test_nan_in_model_json_is_not_a_number(tmp_path):
    d = _edit_meta(tmp_path, _set("thresholds.theta_x", float("nan")))
    with pytest.raises(BundleError, match=r"model.json: thresholds.theta_x: expected a finite "
                                          r"number, got NaN"):
        ModelBundle.load(d)


@pytest.mark.parametrize("path", ["unknown", "formats.act_bitz", "thresholds.theta", "lut.size"])
def test_unknown_model_json_field_is_named(tmp_path, path):
    d = _edit_meta(tmp_path, _set(path, 1))
    with pytest.raises(BundleError, match=rf"model.json: {path}: unknown field"):
        ModelBundle.load(d)


@pytest.mark.parametrize("path", ["formats.w_bits", "thresholds.theta_x_code", "formats"])
def test_missing_required_model_json_field_is_named(tmp_path, path):
    def drop(meta):
        *parents, last = path.split(".")
        obj = meta
        for p in parents:
            obj = obj[p]
        del obj[last]
    d = _edit_meta(tmp_path, drop)
    with pytest.raises(BundleError, match=rf"model.json: {path}: missing$"):
        ModelBundle.load(d)


def test_float_threshold_disagreeing_with_its_code_is_an_error(tmp_path):
    # 0.25 is code 64 in Q8.8; a user who edits the float alone expects it to take effect.
    d = _edit_meta(tmp_path, _set("thresholds.theta_x", 0.5))
    with pytest.raises(BundleError) as e:
        ModelBundle.load(d)
    assert str(e.value) == (f"{d / 'model.json'}: thresholds.theta_x: 0.5 is code 128 in Q8.8, "
                            "but thresholds.theta_x_code is 64 (edit both, or drop "
                            "thresholds.theta_x)")


def test_float_threshold_within_half_an_lsb_of_its_code_agrees(tmp_path):
    # 0.2519 * 256 = 64.49 rounds to code 64: the float is a readable copy of the code.
    d = _edit_meta(tmp_path, _set("thresholds.theta_x", 0.2519))
    assert ModelBundle.load(d).theta_x == 64
    d = _edit_meta(tmp_path, lambda m: m["thresholds"].pop("theta_h"))
    assert ModelBundle.load(d).theta_h == 0


@pytest.mark.parametrize("path, value, says", [
    ("lut.entries", 512, "512"), ("lut.sigmoid_range", [-4, 4], "[-4, 4]"),
    ("lut.tanh_range", [-8, 8], "[-8, 8]"), ("lut.output_lsb", 0.5, "0.5"),
])
def test_lut_copy_disagreeing_with_formats_is_an_error(tmp_path, path, value, says):
    d = _edit_meta(tmp_path, _set(path, value))
    with pytest.raises(BundleError, match=rf"model.json: {path}: says {re.escape(says)}, the "
                                          r"formats give"):
        ModelBundle.load(d)


def test_bad_formats_value_names_formats(tmp_path):
    d = _edit_meta(tmp_path, _set("formats.act_bits", 40))
    with pytest.raises(BundleError, match=r"model.json: formats: activation format .* not "
                                          r"supported"):
        ModelBundle.load(d)


# -- input saturation ----------------------------------------------------------------------------

def test_quantize_input_counted_counts_what_saturates():
    b = random_bundle(2, 2)
    # Q8.8 holds codes -32768..32767, i.e. [-128, 127.99609375]; rounding is half up.
    x = np.array([[127.998, 127.999], [-128.0, -128.002], [-128.001, 300.0]])
    codes, sat = b.quantize_input_counted(x)
    assert codes.tolist() == [[32767, 32767], [-32768, -32768], [-32768, 32767]]
    # 127.998*256 = 32767.49 -> 32767 (fits); 127.999*256 = 32767.74 -> 32768 (saturates);
    # -128.002*256 = -32768.51 -> -32769 (saturates); -128.001*256 = -32768.26 -> -32768 (fits)
    assert (sat.count, sat.total, sat.largest, sat.limit) == (3, 6, 300.0, 128.0)


def test_quantize_input_counted_after_normalisation_and_only_where_valid():
    b = random_bundle(1, 2)
    b.input_mean, b.input_scale = np.array([10.0]), np.array([0.01])
    x = np.array([[[10.0], [12.0], [9.0]]])               # normalised: 0, 200, -100
    _, sat = b.quantize_input_counted(x)
    assert (sat.count, sat.total, sat.largest) == (1, 3, 200.0)
    _, sat = b.quantize_input_counted(x, valid=np.array([[True, False, True]]))
    assert (sat.count, sat.total, sat.largest) == (0, 2, 100.0)
    _, sat = b.quantize_input_counted(x, valid=np.zeros((1, 3), bool))
    assert (sat.count, sat.total, sat.largest) == (0, 0, 0.0)


def test_missing_lut_and_wrong_classes_are_named(tmp_path):
    d = random_bundle(3, 5).save(tmp_path / "m")
    with np.load(d / "tensors.npz") as z:
        data = {k: z[k] for k in z.files if k != "sigmoid_lut"}
    np.savez(d / "tensors.npz", **data)
    with pytest.raises(BundleError, match=r"tensors\.npz: missing array 'sigmoid_lut'"):
        ModelBundle.load(d)
    b = random_bundle(3, 5)
    b.head_w, b.head_b, b.classes = np.zeros((3, 5)), np.zeros(3), ["a", "b", "c"]
    d = b.save(tmp_path / "h")
    meta = json.loads((d / "model.json").read_text())
    meta["classes"] = ["a", "b"]
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"model\.json: classes"):
        ModelBundle.load(d)


# -- the cell type (format version 3) ---------------------------------------------------------

def test_lstm_bundle_round_trip_is_version_3_with_its_cell(tmp_path):
    from drnn_hw.bundle import random_stacked_bundle

    for b in (random_bundle(3, 5, seed=2, cell="lstm", theta_x=0.25),
              random_stacked_bundle(3, [5, 4], seed=2, cell="lstm")):
        d = b.save(tmp_path / f"b{b.num_layers}")
        meta = json.loads((d / "model.json").read_text())
        assert meta["format_version"] == 3 and meta["cell"] == "lstm"
        assert len(meta["layers"]) == b.num_layers and "thresholds" not in meta
        with np.load(d / "tensors.npz") as z:
            assert z["layer0.w_x"].shape == (4, 5, 3) and z["layer0.bias"].shape == (4, 5)
        got = ModelBundle.load(d)
        assert got.cell == "lstm" and got.num_layers == b.num_layers
        for a, c in zip(got.layers, b.layers):
            for k in ("w_x", "w_h", "bias", "theta_x", "theta_h"):
                assert np.array_equal(getattr(a, k), getattr(c, k)), k


def test_gru_bundles_are_still_written_as_versions_1_and_2_without_cell(tmp_path):
    from drnn_hw.bundle import random_stacked_bundle

    for b, version in ((random_bundle(3, 5), 1), (random_stacked_bundle(3, [5, 4]), 2)):
        d = b.save(tmp_path / f"v{version}")
        meta = json.loads((d / "model.json").read_text())
        assert meta["format_version"] == version and "cell" not in meta
        assert ModelBundle.load(d).cell == "gru"
    # A version-3 model.json may also say "gru".
    d = random_bundle(3, 5, cell="lstm").save(tmp_path / "g3")
    meta = json.loads((d / "model.json").read_text())
    g = random_bundle(3, 5)
    np.savez(d / "tensors.npz", **{"layer0.w_x": g.w_x, "layer0.w_h": g.w_h,
                                    "layer0.bias": g.bias, "sigmoid_lut": g.sigmoid_lut,
                                    "tanh_lut": g.tanh_lut, "input_mean": g.input_mean,
                                    "input_scale": g.input_scale})
    (d / "model.json").write_text(json.dumps({**meta, "cell": "gru"}))
    assert ModelBundle.load(d).cell == "gru"


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(cell="rnn"), "model.json: cell: expected one of 'gru', 'lstm', "
                                     "got \"rnn\""),
    (lambda m: m.pop("cell"), "model.json: cell: missing"),
    (lambda m: m.update(cell="gru"), "tensors.npz: layer0.w_x: expected shape (3, H, I): the "
                                     "3 gates (r, z, n) of a GRU, got (4, 5, 3)"),
    (lambda m: m.update(format_version=2), "model.json: cell: unknown field"),
])
def test_bad_cell_fields_are_named(tmp_path, edit, message):
    d = random_bundle(3, 5, cell="lstm").save(tmp_path / "b")
    meta = json.loads((d / "model.json").read_text())
    edit(meta)
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError) as e:
        ModelBundle.load(d)
    assert message in str(e.value) and str(d) in str(e.value)


def test_shape_errors_name_where_the_expected_shape_comes_from(tmp_path):
    b = random_bundle(3, 6)
    b.head_w, b.head_b, b.classes = np.ones((2, 6)), np.zeros(2), ["a", "b"]
    with pytest.raises(BundleError, match=r"bundle: w_h: expected shape \(3, 4, 4\) \(H = 4 from "
                                          r"w_x's shape \(3, 4, 3\)\), got \(3, 6, 6\)"):
        ModelBundle(formats=b.formats, w_x=b.w_x[:, :4], w_h=b.w_h, bias=b.bias)
    with pytest.raises(BundleError, match=r"head_b: expected shape \(1,\) to match head_w's 1 "
                                          r"rows \(one per output\), got \(2,\)"):
        ModelBundle(formats=b.formats, w_x=b.w_x, w_h=b.w_h, bias=b.bias, head_w=b.head_w[:1],
                    head_b=b.head_b)
    with pytest.raises(BundleError, match=r"head_b: missing: head_w \(2 × 6\) needs its 2"):
        ModelBundle(formats=b.formats, w_x=b.w_x, w_h=b.w_h, bias=b.bias, head_w=b.head_w)
    (tmp_path / "f").write_text("")
    with pytest.raises(BundleError, match=r"f: is a file, expected a model bundle directory"):
        ModelBundle.load(tmp_path / "f")


def test_lstm_weights_with_three_gates_are_refused_naming_the_array(tmp_path):
    g = random_bundle(3, 5)
    with pytest.raises(BundleError, match=r"bundle: w_x: expected shape \(4, H, I\): the 4 "
                                          r"gates \(i, f, g, o\) of an LSTM, got \(3, 5, 3\)"):
        ModelBundle(formats=g.formats, w_x=g.w_x, w_h=g.w_h, bias=g.bias, cell="lstm")
    lb = random_bundle(3, 5, cell="lstm")
    with pytest.raises(BundleError, match=r"w_h: expected shape \(4, 5, 5\) \(H = 5 from w_x's "
                                          r"shape \(4, 5, 3\)\), got \(3, 5, 5\)"):
        ModelBundle(formats=g.formats, w_x=lb.w_x, w_h=g.w_h, bias=g.bias, cell="lstm")
    with pytest.raises(BundleError, match="cell: expected one of gru, lstm, got 'rnn'"):
        ModelBundle(formats=g.formats, w_x=g.w_x, w_h=g.w_h, bias=g.bias, cell="rnn")
