"""drnn train / export / evaluate through the real CLI entry point: success and every bad input.

Errors must be one line on stderr (``drnn: error: ...``) naming the problem, exit code != 0.
"""

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from drnn_hw.bundle import ModelBundle, random_bundle
from drnn.cli import main
from drnn_cli import drnn_in_process as drnn
from synthetic import synthetic_npz

FAST = ["--hidden", "6", "--epochs", "1", "--finetune-epochs", "1", "--min-steps", "0",
        "--finetune-min-steps", "0", "--quiet"]
# tests/synthetic.py's TINY recipe as flags: learns the synthetic task in about a second.
LEARNS = ["--hidden", "8", "--epochs", "12", "--finetune-epochs", "4", "--batch-size", "16",
          "--lr", "2e-2", "--finetune-lr", "5e-3", "--theta-x", "0.1", "--theta-h", "0.05",
          "--min-steps", "0", "--finetune-min-steps", "0", "--quiet"]


def assert_one_line_error(code, err, *needles):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("drnn: error: "), lines[0]
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    return synthetic_npz(tmp_path_factory.mktemp("cli") / "syn.npz")


@pytest.fixture(scope="module")
def flow(syn, tmp_path_factory):
    """train -> export via the CLI once; returns (checkpoint, bundle dir, train stdout)."""
    d = tmp_path_factory.mktemp("flow")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["train", "--dataset", str(syn), *FAST, "--seed", "3", "--out", str(d / "ck.pt")])
        main(["export", str(d / "ck.pt"), "--out", str(d / "bundle")])
    return d / "ck.pt", d / "bundle", out.getvalue()


def test_train_export_evaluate_flow(flow, syn, tmp_path, capsys):
    ckpt, bundle, text = flow
    assert "float GRU test accuracy" in text and "hardware-exact test accuracy" in text
    assert "sparsity Δx" in text and "Δh" in text
    metrics = json.loads(ckpt.with_name("ck.metrics.json").read_text())
    assert metrics["config"]["seed"] == 3
    assert ModelBundle.load(bundle).extra["dataset"] == str(syn.resolve())
    # Without --dataset, evaluate uses the data set the bundle was trained on.
    code, out, err = drnn(["evaluate", bundle, "--rows", "2", "--columns", "1",
                           "--scan", "4", "--json", tmp_path / "e.json"], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "e.json").read_text())
    assert m["accuracy"] == metrics["exact_accuracy"]
    assert m["core"] == {"rows": 2, "columns": 1, "scan": 4, "step_overlap": True}
    assert f"{100 * m['accuracy']:.2f} %" in out and "mean cycles/step" in out
    # The names before the rename still work, with a warning naming the new flag.
    code, out2, err = drnn(["evaluate", bundle, "--pe", "2", "--lanes", "1", "--scan", "4"],
                           capsys)
    assert code == 0 and out2 == out
    assert "--pe is deprecated, use --rows" in err and "--lanes is deprecated, use --columns" in err


def _npz(path, **over):
    rng = np.random.default_rng(0)
    d = dict(x_train=rng.normal(size=(6, 5, 3)), y_train=np.arange(6) % 2,
             x_test=rng.normal(size=(4, 5, 3)), y_test=np.arange(4) % 2)
    d.update(over)
    np.savez(path, **{k: v for k, v in d.items() if v is not None})
    return path


TRAIN_BAD = [
    (["--dataset", "imagenet"], ["unknown data set 'imagenet'", "japanese-vowels"]),
    (["--dataset", "{tmp}/missing.npz"], ["missing.npz", "not found"]),
    (["--dataset", "{npz:y_test=None}"], ["missing key 'y_test'"]),
    (["--dataset", "{npz:x_train=np.zeros((6, 5))}"], ["x_train", "3 dimensions", "(6, 5)"]),
    (["--dataset", "{npz:x_test=np.zeros((4, 5, 2))}"], ["x_test", "I = 3", "got 2"]),
    (["--dataset", "{npz:x_train=np.full((6, 5, 3), np.nan)}"],
     ["x_train", "sequence 0 has no valid step", "NaN"]),
    (["--dataset", "{npz:x_test=np.where(np.arange(5)[:, None] == 2, np.nan, np.ones((4, 5, 3)))}"],
     ["x_test", "12 NaN/Inf", "sequence 0, step 2, feature 0"]),
    (["--dataset", "{npz:len_test=np.array([1, 2, 9, 3])}"], ["len_test", "[1, 5]", "9"]),
    (["--dataset", "{npz:y_train=np.linspace(0, 1, 6)}"], ["y_train", "integer class labels"]),
    (["--theta-x", "-0.1"], ["--theta-x", "-0.1"]),
    (["--theta-h", "nan"], ["--theta-h", "nan"]),
    (["--theta-h", "300"], ["--theta-h", "127.996", "300"]),
    (["--hidden", "0"], ["--hidden", "got 0"]),
    (["--min-steps", "-1"], ["--min-steps", "got -1"]),
    (["--finetune-min-steps", "-5"], ["--finetune-min-steps", "got -5"]),
    (["--weight-bits", "30"], ["--weight-bits", "30"]),
    (["--epochs", "x"], ["--epochs", "'x' is not a valid integer"]),
]


@pytest.mark.parametrize("args,needles", TRAIN_BAD, ids=[str(i) for i in range(len(TRAIN_BAD))])
def test_train_bad_input(tmp_path, capsys, args, needles, syn):
    resolved = []
    for a in args:
        if a.startswith("{npz:"):
            key, expr = a[5:-1].split("=", 1)
            a = str(_npz(tmp_path / "bad.npz", **{key: eval(expr, {"np": np})}))
        resolved.append(a.replace("{tmp}", str(tmp_path)))
    if "--dataset" not in resolved:
        resolved += ["--dataset", str(syn)]
    code, _, err = drnn(["train", *FAST, *resolved, "--out", tmp_path / "c.pt"], capsys)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "c.pt").exists()


def test_nan_padded_npz_trains_as_the_zero_padded_one(tmp_path, capsys):
    """UCR/aeon convention: NaN past len_*, or trailing all-NaN steps without len_*; the
    padding never reaches the result (same metrics as the zero-padded file with lengths)."""
    rng = np.random.default_rng(0)
    len_train = np.array([5, 1, 2, 3, 4, 5])
    pad_train = np.arange(5)[None, :] >= len_train[:, None]
    x_train, x_test = rng.normal(size=(6, 5, 3)), rng.normal(size=(4, 5, 3))
    x_test[:, 4] = 0
    zero = _npz(tmp_path / "zero.npz", x_train=np.where(pad_train[..., None], 0, x_train),
                len_train=len_train, x_test=x_test, len_test=np.full(4, 4))
    x_train[pad_train] = np.nan
    x_test[:, 4] = np.nan
    nan = _npz(tmp_path / "nan.npz", x_train=x_train, len_train=len_train, x_test=x_test)
    metrics = []
    for data in (zero, nan):
        code, out, err = drnn(["train", "--dataset", data, *FAST, "--out",
                               tmp_path / f"{data.stem}.pt"], capsys)
        assert code == 0, err
        metrics.append(json.loads((tmp_path / f"{data.stem}.metrics.json").read_text()))
    keys = ("float_accuracy", "exact_accuracy", "sparsity_dx", "sparsity_dh",
            "exact_train_accuracy")
    assert [metrics[0][k] for k in keys] == [metrics[1][k] for k in keys]
    assert all(np.isfinite(metrics[1][k]) for k in keys)


def test_warns_when_no_better_than_the_majority_class(tmp_path, capsys):
    """Constant inputs: every sequence gets the same answer, so accuracy <= the majority's."""
    y_test = np.array([7] * 7 + [3] * 3)
    data = _npz(tmp_path / "const.npz", x_train=np.ones((6, 5, 3)), x_test=np.ones((10, 5, 3)),
                y_train=np.array([3, 7, 3, 7, 3, 7]), y_test=y_test)
    code, out, err = drnn(["train", "--dataset", data, *FAST, "--out", tmp_path / "c.pt"], capsys)
    assert code == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("drnn: warning: hardware-exact test accuracy ")
    assert "no better than always answering the majority class '7' (70.00 % of the test split)" \
        in lines[0]
    metrics = json.loads((tmp_path / "c.metrics.json").read_text())
    assert metrics["no_better_than_majority"] is True
    assert metrics["majority_accuracy"] == 0.7 and metrics["majority_class"] == "7"
    assert metrics["exact_accuracy"] in (0.3, 0.7)


def test_no_warning_when_the_model_learned(tmp_path, capsys, syn):
    code, out, err = drnn(["train", "--dataset", syn, *LEARNS, "--out", tmp_path / "c.pt"],
                          capsys)
    assert code == 0, err
    assert "warning" not in err and "raised" not in err
    metrics = json.loads((tmp_path / "c.metrics.json").read_text())
    assert metrics["exact_accuracy"] >= 0.8 and metrics["no_better_than_majority"] is False
    assert (metrics["steps"], metrics["finetune_steps"]) == (12 * 4, 4 * 4)   # 64 seqs / 16


def test_train_says_when_the_step_floor_raised_the_epochs(tmp_path, capsys, syn):
    """64 sequences in batches of 16 are 4 steps per epoch: a floor of 8 steps makes 2 epochs
    of the 1 asked for, and the user is told how to get exactly 1."""
    args = ["--hidden", "6", "--epochs", "1", "--finetune-epochs", "1", "--batch-size", "16",
            "--min-steps", "8", "--finetune-min-steps", "0", "--quiet"]
    code, out, err = drnn(["train", "--dataset", syn, *args, "--out", tmp_path / "c.pt"], capsys)
    assert code == 0, err
    assert "note: --epochs 1 raised to 2 by the step floor (--min-steps 0 trains exactly 1)" \
        in err
    assert "--finetune-epochs" not in err


def test_train_missing_out(capsys):
    code, _, err = drnn(["train"], capsys)
    assert_one_line_error(code, err, "--out")


def _gru_state(path, **kw):
    torch.save(torch.nn.GRU(3, 4, **kw).state_dict(), path)
    return path


def test_export_bad_input(tmp_path, capsys, flow):
    ckpt = flow[0]
    out = tmp_path / "b"
    lstm = tmp_path / "lstm.pt"
    torch.save(torch.nn.LSTM(3, 4).state_dict(), lstm)
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    nobias_ih = tmp_path / "half.pt"
    sd = torch.nn.GRU(3, 4).state_dict()
    del sd["bias_hh_l0"]
    torch.save(sd, nobias_ih)
    badshape = tmp_path / "shape.pt"
    sd = torch.nn.GRU(3, 4).state_dict()
    sd["weight_ih_l0"] = torch.zeros(12, 3, 1)
    torch.save(sd, badshape)
    # Stacked: layer 1's input must be layer 0's h; biases in every layer or none.
    unchained = tmp_path / "unchained.pt"
    sd = torch.nn.GRU(3, 4, num_layers=2).state_dict()
    sd["weight_ih_l1"] = torch.zeros(12, 5)
    torch.save(sd, unchained)
    half_bias = tmp_path / "half_bias.pt"
    sd = torch.nn.GRU(3, 4, num_layers=2).state_dict()
    del sd["bias_ih_l1"], sd["bias_hh_l1"]
    torch.save(sd, half_bias)
    gap = tmp_path / "gap.pt"
    sd = torch.nn.GRU(3, 4, num_layers=3).state_dict()
    del sd["weight_ih_l1"]
    torch.save(sd, gap)
    cases = [
        ([], ["exactly one"]),
        ([ckpt, "--torch-gru", _gru_state(tmp_path / "g.pt")], ["exactly one"]),
        ([tmp_path / "nope.pt"], ["nope.pt", "file not found (expected a checkpoint)"]),
        ([junk], ["junk.pt", "not a torch file"]),
        ([other], ["other.pt", "not a drnn train checkpoint", "--torch-gru"]),
        ([ckpt, "--theta-x", "-1"], ["--theta-x", "-1"]),
        ([ckpt, "--theta-h", "inf"], ["--theta-h", "inf"]),
        (["--torch-gru", unchained], ["unchained.pt", "weight_ih_l1", "(12, 4)", "(12, 5)",
                                      "previous layer's h"]),
        (["--torch-gru", half_bias], ["bias_ih_l1: missing", "other layers have biases"]),
        (["--torch-gru", gap], ["gap.pt", "weight_ih_l1: missing"]),
        (["--torch-gru", _gru_state(tmp_path / "bi.pt", bidirectional=True)],
         ["bidirectional", "_reverse"]),
        (["--torch-gru", lstm], ["weight_hh_l0", "(3H, H)", "(16, 4)"]),
        (["--torch-gru", other], ["expected nn.GRU keys", "weights"]),
        (["--torch-gru", nobias_ih], ["both bias_ih_l0 and bias_hh_l0"]),
        (["--torch-gru", badshape], ["weight_ih_l0", "(12, I)", "(12, 3, 1)"]),
        (["--torch-gru", junk], ["junk.pt", "not a torch file"]),
        (["--torch-gru", tmp_path / "none.pt"], ["none.pt", "not found"]),
        (["--torch-gru", _gru_state(tmp_path / "g2.pt"), "--theta-x", "nan"], ["--theta-x"]),
        (["--torch-gru", _gru_state(tmp_path / "g3.pt"), "--theta-h", "-0.5"], ["--theta-h"]),
        (["--torch-gru", _gru_state(tmp_path / "g4.pt"), "--theta-h", "128"],
         ["--theta-h", "127.996", "128"]),
    ]
    for args, needles in cases:
        code, _, err = drnn(["export", *args, "--out", out], capsys)
        assert_one_line_error(code, err, *needles)
        assert not out.exists(), args


def test_evaluate_bad_input(tmp_path, capsys, flow, syn):
    headless = tmp_path / "headless"
    random_bundle(3, 4).save(headless)
    unnamed = tmp_path / "unnamed"
    b = ModelBundle.load(flow[1])
    b.extra = {}
    b.save(unnamed)
    cases = [
        ([headless, "--dataset", syn], ["headless", "no classification head", "nn.Linear"]),
        ([unnamed], ["unnamed", "does not name its data set", "--dataset"]),
        ([flow[1], "--dataset", "basic-motions"], ["basic-motions", "6 input features",
                                                     "expects 3"]),
        ([tmp_path / "nothing", "--dataset", syn], ["nothing", "not found"]),
        ([flow[1], "--dataset", "nope"], ["unknown data set"]),
        ([flow[1], "--dataset", syn, "--columns", "3"], ["--columns", "3"]),
    ]
    for args, needles in cases:
        code, _, err = drnn(["evaluate", *args], capsys)
        assert_one_line_error(code, err, *needles)


def test_accuracy_warnings():
    from drnn.commands.train import accuracy_warnings

    base = dict(no_better_than_majority=False, float_accuracy=0.9867, exact_accuracy=0.56,
                sparsity_dx=0.999, sparsity_dh=0.998, majority_class="1",
                majority_accuracy=0.5067)
    (w,) = accuracy_warnings(base)       # GunPoint at Θ = 0.5: 43 points lost
    assert w.startswith("drnn: warning: hardware-exact test accuracy 56.00 % is 42.7 points")
    assert "--theta-x" in w
    assert accuracy_warnings(dict(base, exact_accuracy=0.9757, float_accuracy=0.9757)) == []
    assert accuracy_warnings(dict(base, exact_accuracy=0.95, float_accuracy=0.99)) == []
    (w,) = accuracy_warnings(dict(base, no_better_than_majority=True, exact_accuracy=0.48))
    assert "majority class '1'" in w
