"""Regression models through the CLI: train --task regression, export, info, evaluate and bench
report RMSE; bad targets are one-line errors; a classifier's outputs are what they were."""

import json

import numpy as np
import pytest

from drnn.commands.train import rmse_warnings
from drnn_cli import drnn_in_process as drnn
from drnn_hw.bundle import ModelBundle
from synthetic import regression_npz, synthetic_npz

# tests/synthetic.py's TINY recipe as flags (learns the synthetic targets in seconds)
LEARNS = ["--hidden", "8", "--epochs", "12", "--finetune-epochs", "4", "--batch-size", "16",
          "--lr", "2e-2", "--finetune-lr", "5e-3", "--theta-x", "0.1", "--theta-h", "0.05",
          "--min-steps", "0", "--finetune-min-steps", "0", "--quiet"]


def assert_one_line_error(code, err, *needles):
    assert code != 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drnn: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """train --task regression (per-step targets, NaN padded) -> export, through the CLI."""
    import contextlib
    import io

    from drnn.cli import main

    d = tmp_path_factory.mktemp("regcli")
    npz = regression_npz(d / "reg.npz", nan_pad=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["train", "--dataset", str(npz), "--task", "regression", *LEARNS,
              "--out", str(d / "ck.pt")])
        main(["export", str(d / "ck.pt"), "--out", str(d / "bundle")])
    return npz, d / "ck.pt", d / "bundle", out.getvalue()


def test_train_reports_float_and_exact_rmse(flow):
    npz, ckpt, bundle, text = flow
    m = json.loads(ckpt.with_name("ck.metrics.json").read_text())
    assert f"float GRU test RMSE          {m['float_rmse']:.4g} (nRMSE " in text
    assert f"hardware-exact test RMSE     {m['exact_rmse']:.4g} (nRMSE " in text
    assert "y0 " in text and "y1 " in text and "accuracy" not in text
    assert m["exact_nrmse"] < 0.3       # it learned: the targets' mean scores about 1
    b = ModelBundle.load(bundle)
    assert b.task == "regression" and b.outputs == ["y0", "y1"]
    assert b.extra["dataset"] == str(npz.resolve())


def test_info_shows_task_and_outputs(flow, capsys):
    code, out, err = drnn(["info", flow[2]], capsys)
    assert code == 0, err
    assert "task        regression, O=2 outputs: y0, y1" in out
    assert "head        linear on the last layer's h, in the targets' units (2x8)" in out


def test_evaluate_reports_rmse_in_target_units(flow, tmp_path, capsys):
    npz, ckpt, bundle, _ = flow
    m = json.loads(ckpt.with_name("ck.metrics.json").read_text())
    code, out, err = drnn(["evaluate", bundle, "--json", tmp_path / "e.json"], capsys)
    assert code == 0, err
    j = json.loads((tmp_path / "e.json").read_text())
    assert j["task"] == "regression" and "accuracy" not in j
    assert j["rmse"] == m["exact_rmse"] and j["rmse_per_output"] == m["exact_rmse_per_output"]
    assert j["outputs"] == ["y0", "y1"] and j["per_step"] is True
    assert f"hardware-exact RMSE {m['exact_rmse']:.4g}" in out and "every valid step" in out
    assert f"  y1: RMSE {m['exact_rmse_per_output'][1]:.4g} (target std " in out


def test_bench_golden_writes_rmse_rows_and_plots(flow, tmp_path, capsys):
    npz, ckpt, bundle, _ = flow
    m = json.loads(ckpt.with_name("ck.metrics.json").read_text())
    code, out, err = drnn(["bench", bundle, "--engine", "golden", "--out", tmp_path / "b",
                           "--thetas", "0,0.1/0.05", "--torch-repeats", "1", "--quiet"], capsys)
    assert code == 0, err       # 0.1/0.05: the trained thresholds
    j = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert j["task"] == "regression" and j["outputs"] == ["y0", "y1"]
    assert j["per_step_targets"] is True and len(j["target_std"]) == 2
    for r in j["rows"]:
        assert r["accuracy"] is None and r["rmse"] > 0 and len(r["rmse_per_output"]) == 2
        assert r["nrmse"] == pytest.approx(np.sqrt(np.mean(
            (np.array(r["rmse_per_output"]) / np.array(j["target_std"])) ** 2)))
    trained = [r for r in j["rows"] if r["trained"]]
    assert len(trained) == 1 and trained[0]["rmse"] == pytest.approx(m["exact_rmse"], rel=1e-12)
    assert j["torch"]["dense_float_accuracy"] is None
    assert j["torch"]["dense_float_rmse"]["rmse"] > 0
    assert (tmp_path / "b" / "rmse_sparsity.png").is_file()
    assert not (tmp_path / "b" / "accuracy_sparsity.png").exists()
    assert "nRMSE" in out.splitlines()[0] and "acc%" not in out
    assert "RMSE per output (target units), hardware-exact: Θ=0: y0 " in out


def test_last_step_targets_through_the_cli(tmp_path, capsys):
    npz = regression_npz(tmp_path / "last.npz", per_step=False)
    code, out, err = drnn(["train", "--dataset", npz, "--task", "regression", *LEARNS,
                           "--out", tmp_path / "c.pt"], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "c.metrics.json").read_text())
    assert m["per_step"] is False and m["exact_nrmse"] < 0.3
    assert drnn(["export", tmp_path / "c.pt", "--out", tmp_path / "b"], capsys)[0] == 0
    code, out, err = drnn(["evaluate", tmp_path / "b"], capsys)
    assert code == 0, err
    assert "head at the last valid step" in out


@pytest.mark.parametrize("make, task, needles", [
    (lambda p: synthetic_npz(p), "regression",
     ["y_train: expected (64, 8, O) per-step or (64, O) last-step targets, got shape (64,)"]),
    (lambda p: regression_npz(p), "classification",
     ["y_train: expected shape (64,), got (64, 10, 2) (regression targets? pass --task "
      "regression)"]),
    (None, "classification", ["data set pendulum is a regression data set, not classification"]),
])
def test_train_bad_targets_are_one_line_errors(tmp_path, capsys, make, task, needles):
    data = "pendulum" if make is None else str(make(tmp_path / "d.npz"))
    code, out, err = drnn(["train", "--dataset", data, "--task", task, *LEARNS,
                           "--out", tmp_path / "c.pt"], capsys)
    assert_one_line_error(code, err, *needles)
    if make is not None:
        assert str(tmp_path / "d.npz") in err
    assert not (tmp_path / "c.pt").exists()


def test_train_nan_target_names_sequence_step_and_output(tmp_path, capsys):
    npz = regression_npz(tmp_path / "d.npz")
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["y_test"][3, 1, 0] = np.nan
    np.savez(npz, **arrays)
    code, _, err = drnn(["train", "--dataset", npz, "--task", "regression", *LEARNS,
                         "--out", tmp_path / "c.pt"], capsys)
    assert_one_line_error(code, err, str(npz), "y_test: expected finite targets",
                          "sequence 3, step 1, output 0")


def test_evaluate_refuses_a_classification_data_set_for_a_regression_bundle(flow, tmp_path,
                                                                              capsys):
    cls = synthetic_npz(tmp_path / "c.npz")
    code, _, err = drnn(["evaluate", flow[2], "--dataset", cls], capsys)
    # read as the bundle's task: the file's labels are not (N, T, O) targets
    assert_one_line_error(code, err, str(cls), "y_train: expected (64, 8, O) per-step")


def test_a_classifier_is_reported_as_before(tmp_path, capsys):
    syn = synthetic_npz(tmp_path / "s.npz")
    code, out, err = drnn(["train", "--dataset", syn, *LEARNS, "--out", tmp_path / "c.pt"],
                          capsys)
    assert code == 0, err
    assert "float GRU test accuracy" in out and "RMSE" not in out
    ck = __import__("torch").load(tmp_path / "c.pt", weights_only=True)
    assert "task" not in ck and "target_mean" not in ck
    m = json.loads((tmp_path / "c.metrics.json").read_text())
    assert "task" not in m and "exact_accuracy" in m and "exact_rmse" not in m
    assert drnn(["export", tmp_path / "c.pt", "--out", tmp_path / "b"], capsys)[0] == 0
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    assert "task" not in meta and "outputs" not in meta and meta["classes"] == ["2", "7"]
    code, out, err = drnn(["info", tmp_path / "b"], capsys)
    assert "task        classification, 2 classes" in out
    code, out, err = drnn(["bench", tmp_path / "b", "--engine", "golden", "--out",
                           tmp_path / "bench", "--thetas", "0", "--torch-repeats", "1",
                           "--quiet"], capsys)
    assert code == 0, err
    j = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert "task" not in j and "rmse" not in j["rows"][0]
    assert (tmp_path / "bench" / "accuracy_sparsity.png").is_file()


def test_rmse_warnings():
    base = {"no_better_than_mean": False, "mean_baseline_nrmse": 1.0, "float_nrmse": 0.1,
            "exact_nrmse": 0.14, "sparsity_dx": 0.5, "sparsity_dh": 0.6}
    assert rmse_warnings(base) == []                       # 1.4x: within the tolerance
    worse = rmse_warnings({**base, "exact_nrmse": 0.25})  # 2.5x and 0.15 above
    assert len(worse) == 1 and "2.5x the float GRU's 0.100" in worse[0]
    assert "try smaller --theta-x --theta-h" in worse[0]
    # a tiny absolute gap is not worth a warning even at 1.5x
    assert rmse_warnings({**base, "float_nrmse": 0.02, "exact_nrmse": 0.04}) == []
    none = rmse_warnings({**base, "no_better_than_mean": True, "exact_nrmse": 1.02})
    assert len(none) == 1 and "no better than always predicting the training targets' mean" \
        in none[0]


def test_an_imported_torch_gru_with_a_regression_head(tmp_path, capsys):
    """export --torch-gru with a regression data set: the Linear head's rows are its outputs
    (task regression, RMSE from evaluate); a head of another size is named in one line."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    gru, fc = torch.nn.GRU(2, 8, num_layers=2, batch_first=True), torch.nn.Linear(8, 2)
    state = {**{f"gru.{k}": v for k, v in gru.state_dict().items()},
             **{f"fc.{k}": v for k, v in fc.state_dict().items()}}
    torch.save(state, tmp_path / "m.pt")
    code, out, err = drnn(["export", "--torch-gru", tmp_path / "m.pt", "--dataset", "pendulum",
                           "--out", tmp_path / "b"], capsys)
    assert code == 0, err
    b = ModelBundle.load(tmp_path / "b")
    assert b.is_regression and b.outputs == ["torque_Nm", "omega_rad_s"] and b.classes is None
    code, out, err = drnn(["evaluate", tmp_path / "b"], capsys)
    assert code == 0 and "RMSE" in out and "torque_Nm" in out, err
    torch.save({**state, "fc.weight": torch.zeros(3, 8), "fc.bias": torch.zeros(3)},
               tmp_path / "m3.pt")
    code, _, err = drnn(["export", "--torch-gru", tmp_path / "m3.pt", "--dataset", "pendulum",
                         "--out", tmp_path / "b3"], capsys)
    assert code != 0 and "2 regression outputs, the head fc.weight has 3 rows" in err
