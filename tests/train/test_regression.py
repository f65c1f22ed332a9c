"""Regression models: target validation, per-step and last-step training, the exported head in
target units, exact mode against the golden model, the pendulum plant, and the bundle fields."""

import json

import numpy as np
import pytest
import torch

from drnn_hw.bundle import BundleError, ModelBundle, random_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.errors import UserError
from drnn_hw.golden import run
from drnn_hw.numerics import dequantize
from drnn_train import plants
from drnn_train.datasets import Dataset, load_dataset
from drnn_train.evaluate import evaluate_bundle, regression_errors
from drnn_train.export import bundle_from_checkpoint
from drnn_train.model import DeltaGRUClassifier
from drnn_train.train import TrainConfig, train
from synthetic import TINY, regression_npz, synthetic_npz


def _load(tmp_path, task="regression", **arrays):
    p = tmp_path / "d.npz"
    np.savez(p, **arrays)
    return load_dataset(str(p), task=task)


def _good(per_step=True, n=(6, 4), T=5, O=2):
    rng = np.random.default_rng(0)
    out = {}
    for split, k in zip(("train", "test"), n):
        out[f"x_{split}"] = rng.normal(size=(k, T, 3))
        out[f"y_{split}"] = rng.normal(size=(k, T, O) if per_step else (k, O))
        out[f"len_{split}"] = np.full(k, T)
    return out


# -- the data: shapes and values ------------------------------------------------------------------

BAD = [
    (dict(y_train=np.zeros(6)), "y_train: expected (6, 5, O) per-step or (6, O) last-step "
                                "targets, got shape (6,)"),
    (dict(y_train=np.zeros((6, 4, 2))), "y_train: expected (6, 5, O) per-step or (6, O) "
                                        "last-step targets, got shape (6, 4, 2)"),
    (dict(y_train=np.zeros((5, 5, 2))), "y_train: expected (6, 5, O) per-step"),
    (dict(y_test=np.zeros((4, 5, 3))), "y_test: expected per-step (N, T, O) targets with O = 2 "
                                       "(as y_train), got shape (4, 5, 3)"),
    (dict(y_test=np.zeros((4, 2))), "y_test: expected per-step (N, T, O) targets with O = 2"),
    (dict(y_train=np.zeros((6, 5))), "y_train: shape (6, 5) is ambiguous: per-step targets "
                                     "with one output are (6, 5, 1)"),
    (dict(y_train=np.zeros((6, 5, 0))), "y_train: expected (6, 5, O) per-step"),
    (dict(y_train=np.array([["a"] * 2] * 6)), "y_train: expected numeric regression targets"),
    (dict(output_names=np.array(["a", "b", "c"])), "output_names: expected (2,) strings"),
]


@pytest.mark.parametrize("over,msg", BAD, ids=[m.split(":")[0] + str(i)
                                               for i, (_, m) in enumerate(BAD)])
def test_malformed_targets_are_one_line_errors_naming_file_and_field(tmp_path, over, msg):
    with pytest.raises(UserError) as e:
        _load(tmp_path, **{**_good(), **over})
    text = str(e.value)
    assert str(tmp_path / "d.npz") in text and msg in text and "\n" not in text


def test_nan_target_inside_a_sequence_is_named_and_padding_may_be_nan(tmp_path):
    good = _good()
    y = good["y_train"].copy()
    y[2, 3, 1] = np.nan
    with pytest.raises(UserError, match=r"y_train: expected finite targets before each "
                                        r"sequence's length, got 1 NaN/Inf, the first at "
                                        r"sequence 2, step 3, output 1"):
        _load(tmp_path, **{**good, "y_train": y})
    # The same NaN past that sequence's length is padding: zeroed, never seen.
    lengths = np.full(6, 5)
    lengths[2] = 3
    ds = _load(tmp_path, **{**good, "y_train": y, "len_train": lengths})
    assert ds.y_train[2, 3, 1] == 0 and np.all(np.isfinite(ds.y_train))
    last = _good(per_step=False)
    last["y_test"][1, 0] = np.inf
    with pytest.raises(UserError, match=r"y_test: expected finite targets, got 1 NaN/Inf, the "
                                        r"first at sequence 1, output 0"):
        _load(tmp_path, **last)


def test_classification_with_real_targets_points_at_the_task(tmp_path):
    with pytest.raises(UserError, match=r"y_train: expected shape \(6,\), got \(6, 5, 2\) "
                                        r"\(regression targets\? pass --task regression\)"):
        _load(tmp_path, task="classification", **_good())
    over = dict(_good(), y_train=np.linspace(0, 1, 6), y_test=np.zeros(4))
    with pytest.raises(UserError, match=r"expected integer class labels, got dtype float64 "
                                        r"\(regression targets\? pass --task regression\)"):
        _load(tmp_path, task="classification", **over)


def test_per_step_and_last_step_sets_and_output_names(tmp_path):
    ds = _load(tmp_path, **_good(), output_names=np.array(["speed", "force"]))
    assert ds.task == "regression" and ds.per_step and ds.num_outputs == 2
    assert ds.outputs == ["speed", "force"] and ds.classes is None
    ds = _load(tmp_path, **_good(per_step=False, O=3))
    assert not ds.per_step and ds.num_outputs == 3 and ds.outputs == ["y0", "y1", "y2"]
    assert ds.y_train.dtype == np.float64 and ds.y_train.shape == (6, 3)


def test_builtin_sets_keep_their_task():
    with pytest.raises(UserError, match="data set pendulum is a regression data set, not "
                                        "classification"):
        load_dataset("pendulum", task="classification")
    with pytest.raises(UserError, match="--task: expected one of classification, regression"):
        load_dataset("pendulum", task="forecast")


# -- the pendulum plant -----------------------------------------------------------------------

def test_pendulum_is_deterministic_and_shaped_as_documented():
    a, b = plants.pendulum(seed=0), plants.pendulum(seed=0)
    for k in ("x_train", "y_train", "len_train", "x_test", "y_test", "len_test"):
        assert np.array_equal(a[k], b[k]), k
    assert not np.array_equal(plants.pendulum(seed=1)["y_train"], a["y_train"])
    ds = load_dataset("pendulum")
    assert ds.task == "regression" and ds.per_step and ds.outputs == plants.PENDULUM_OUTPUTS
    assert ds.x_train.shape == (256, 48, 2) and ds.y_test.shape == (128, 48, 2)
    assert ds.len_train.min() >= 32 and ds.len_train.max() <= 48


def test_pendulum_targets_follow_the_documented_controller_and_physics():
    """Re-derive the targets from the inputs with the docstring's formulas (written out here,
    not taken from the module): the torque is the PID law on the measured angle, and the
    angular velocity is the derivative of the angle."""
    d = plants.pendulum(seed=3, n_train=16, n_test=1)
    x, y, L = d["x_train"], d["y_train"], d["len_train"]
    dt = 0.05
    for n in range(16):
        r, meas = x[n, :L[n], 0], x[n, :L[n], 1]
        # 12-bit encoder: every angle is a multiple of 2π/4096
        codes = meas / (2 * np.pi / 4096)
        assert np.allclose(codes, np.round(codes), atol=1e-6)
        integral, u = 0.0, []
        for k in range(L[n]):
            e = r[k] - meas[k]
            integral = min(max(integral + e * dt, -1.0), 1.0)
            deriv = 0.0 if k == 0 else -(meas[k] - meas[k - 1]) / dt
            u.append(min(max(20 * e + 10 * integral + 5 * deriv, -15.0), 15.0))
        assert np.allclose(y[n, :L[n], 0], u, atol=1e-9)
        # central difference of the angle ~ velocity (encoder quantisation and the curvature
        # over 0.1 s bound the difference)
        fd = (meas[2:] - meas[:-2]) / (2 * dt)
        assert np.median(np.abs(fd - y[n, 1:L[n] - 1, 1])) < 0.25
    # the torque saturates on some steps (reference jumps), not on most
    assert 0.02 < np.mean(np.abs(y[..., 0][np.arange(48) < L[:, None]]) == 15.0) < 0.5


# -- training --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("reg")
    out = {}
    for kind, per_step in (("step", True), ("last", False)):
        ds = load_dataset(str(regression_npz(d / f"{kind}.npz", per_step=per_step)),
                          task="regression")
        out[kind] = (ds, *train(TrainConfig(dataset=str(d / f"{kind}.npz"), **TINY), ds,
                                progress=False))
    return out


@pytest.mark.parametrize("kind", ["step", "last"])
def test_a_small_model_learns_per_step_and_last_step_targets(runs, kind):
    ds, ckpt, m = runs[kind]
    assert m["task"] == "regression" and m["per_step"] == (kind == "step")
    # RMSE well below the targets' spread; predicting the training mean scores about 1.
    assert m["float_nrmse"] < 0.3 and m["exact_nrmse"] < 0.3
    assert 0.95 < m["mean_baseline_nrmse"] < 1.1 and not m["no_better_than_mean"]
    per = np.array(m["exact_rmse_per_output"])
    assert np.all(per < 0.4 * np.array(m["target_std"]))
    assert ckpt["task"] == "regression" and ckpt["per_step"] == (kind == "step")
    assert ckpt["classes"] is None and ckpt["num_classes"] == 2


@pytest.mark.parametrize("kind", ["step", "last"])
def test_reported_exact_rmse_is_the_golden_models(runs, kind):
    ds, ckpt, m = runs[kind]
    bundle, _ = bundle_from_checkpoint(ckpt)
    g = evaluate_bundle(bundle, ds, CoreShape(rows=4, columns=2, scan=4))
    assert g["rmse"] == m["exact_rmse"] and g["rmse_per_output"] == m["exact_rmse_per_output"]
    assert g["nrmse"] == m["exact_nrmse"] and g["sparsity_dh"] == m["sparsity_dh"]
    assert g["task"] == "regression" and g["per_step"] == (kind == "step")
    # the QAT forward pass computes the hardware's numbers
    assert m["qat_rmse"] == pytest.approx(m["exact_rmse"], rel=1e-9)


def test_exported_head_predicts_in_target_units(runs):
    """The bundle's head on the golden model's h equals the trained model's normalised output
    mapped back by hand with the training targets' mean and std."""
    ds, ckpt, m = runs["step"]
    bundle, _ = bundle_from_checkpoint(ckpt)
    L = ds.len_test
    codes = bundle.quantize_input(ds.x_test)
    h = dequantize(run(bundle, codes, L, CoreShape(rows=4, columns=2, scan=4)).h,
                   bundle.formats.act)
    pred = h @ bundle.head_w.T + bundle.head_b
    y = ds.y_train[np.arange(ds.y_train.shape[1])[None, :] < ds.len_train[:, None]]
    w = ckpt["state"]["head.weight"].numpy()
    b = ckpt["state"]["head.bias"].numpy()
    by_hand = (h @ w.T + b) * y.std(axis=0) + y.mean(axis=0)
    assert np.allclose(pred, by_hand, rtol=1e-12, atol=1e-12)
    valid = np.arange(h.shape[1])[None, :] < L[:, None]
    rmse = np.sqrt(np.mean((pred[valid] - ds.y_test[valid]) ** 2))
    assert rmse == pytest.approx(m["exact_rmse"], rel=1e-9)


def test_targets_past_each_length_do_not_change_training(runs):
    ds, ckpt, _ = runs["step"]
    junk = ds.y_train.copy()
    junk[np.arange(junk.shape[1])[None, :] >= ds.len_train[:, None]] = 1e3
    other = Dataset(ds.name, ds.x_train, ds.len_train, junk, ds.x_test, ds.len_test,
                    ds.y_test, None, "regression", ds.outputs)
    ckpt2, _ = train(TrainConfig(dataset="x", **TINY), other, progress=False)
    for k in ckpt["state"]:
        assert torch.equal(ckpt["state"][k], ckpt2["state"][k]), k


def test_per_step_model_output_is_zero_past_each_length():
    m = DeltaGRUClassifier(3, 6, 2, per_step=True)
    out, _ = m(torch.randn(2, 5, 3, dtype=torch.float64), torch.tensor([5, 2]))
    assert out.shape == (2, 5, 2) and torch.all(out[1, 2:] == 0) and torch.all(out[0] != 0)


def test_two_layer_regression_trains_and_evaluates_per_layer(tmp_path):
    ds = load_dataset(str(regression_npz(tmp_path / "r.npz")), task="regression")
    cfg = TrainConfig(**{**TINY, "hidden": [8, 6]}, layers=2, dataset="r")
    ckpt, m = train(cfg, ds, progress=False)
    bundle, _ = bundle_from_checkpoint(ckpt)
    g = evaluate_bundle(bundle, ds)
    assert bundle.num_layers == 2 and g["rmse"] == m["exact_rmse"]
    assert [ly["sparsity_dh"] for ly in g["layers"]] == pytest.approx(m["layer_sparsity_dh"])
    assert m["exact_nrmse"] < 0.5


def test_regression_errors_by_hand():
    pred = np.array([[[1.0], [2.0], [9.0]], [[0.0], [0.0], [0.0]]])
    y = np.array([[[0.0], [2.0], [0.0]], [[2.0], [0.0], [0.0]]])
    e = regression_errors(pred, y, np.array([2, 1]))  # counted: (1,0), (2,2), (0,2)
    assert e["rmse"] == pytest.approx(np.sqrt(5 / 3))
    std = np.std([0.0, 2.0, 2.0])
    assert e["target_std"] == pytest.approx([std]) and e["nrmse"] == pytest.approx(
        np.sqrt(5 / 3) / std)
    with pytest.raises(ValueError, match="differ in shape"):
        regression_errors(pred, y[:, :2], np.array([2, 1]))


# -- the bundle --------------------------------------------------------------------------------

def _regression_bundle():
    b = random_bundle(3, 5, seed=2)
    b.head_w, b.head_b = np.arange(10.0).reshape(2, 5) / 7, np.array([0.5, -2.0])
    b.task, b.outputs = "regression", ["speed", "force"]
    b.validate("bundle")
    return b


def test_regression_bundle_round_trip(tmp_path):
    b = _regression_bundle()
    d = b.save(tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    assert meta["task"] == "regression" and meta["outputs"] == ["speed", "force"]
    assert meta["classes"] is None
    c = ModelBundle.load(d)
    assert c.task == "regression" and c.is_regression and c.outputs == ["speed", "force"]
    assert c.num_outputs == 2 and np.array_equal(c.head_w, b.head_w)
    assert np.array_equal(c.head_b, b.head_b) and c.classes is None


def test_classification_bundle_has_no_task_fields(tmp_path):
    b = random_bundle(3, 5, seed=2)
    b.head_w, b.head_b, b.classes = np.ones((2, 5)), np.zeros(2), ["a", "b"]
    meta = json.loads((b.save(tmp_path / "m") / "model.json").read_text())
    assert "task" not in meta and "outputs" not in meta
    c = ModelBundle.load(tmp_path / "m")
    assert c.task == "classification" and not c.is_regression and c.outputs is None


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(task="forecast"), r"model.json: task: expected 'classification' or "
                                          r"'regression', got \"forecast\""),
    (lambda m: m.update(outputs=["a"]), r"model.json: outputs: expected 2 names \(one per row "
                                        r"of head_w\), got 1"),
    (lambda m: m.update(outputs=[]), r"model.json: outputs: expected a non-empty list"),
    (lambda m: m.update(classes=["a", "b"]), r"model.json: classes: expected null for a "
                                             r"regression model"),
    (lambda m: m.pop("outputs"), r"model.json: outputs: expected 2 names"),
    (lambda m: m.update(task="classification"), r"model.json: outputs: only a regression "
                                                r"model"),
])
def test_bad_task_fields_are_named(tmp_path, edit, match):
    d = _regression_bundle().save(tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    edit(meta)
    (d / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=match):
        ModelBundle.load(d)


def test_regression_bundle_without_head_is_refused(tmp_path):
    d = _regression_bundle().save(tmp_path / "m")
    with np.load(d / "tensors.npz") as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("head")}
    np.savez(d / "tensors.npz", **arrays)
    with pytest.raises(BundleError, match=r"tensors.npz: head_w: missing: a regression model"):
        ModelBundle.load(d)


def test_evaluate_refuses_a_data_set_of_the_other_task(tmp_path):
    b = _regression_bundle()
    cls = load_dataset(str(synthetic_npz(tmp_path / "c.npz")))
    with pytest.raises(UserError, match="a classification data set, the model .* is a "
                                        "regression model"):
        evaluate_bundle(b, cls)
    ds = load_dataset(str(regression_npz(tmp_path / "r.npz")), task="regression")
    ds3 = Dataset(ds.name, ds.x_train[..., [0, 1, 0]], ds.len_train, ds.y_train[..., :1],
                  ds.x_test[..., [0, 1, 0]], ds.len_test, ds.y_test[..., :1], None,
                  "regression", ["y0"])
    with pytest.raises(UserError, match="1 target outputs, the model's head has 2"):
        evaluate_bundle(b, ds3)
