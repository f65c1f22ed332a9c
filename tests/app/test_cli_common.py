"""Bad values of the options several commands share (src/drnn/commands/common.py and the
commands' own checks): each is refused on one ``drnn: error:`` line before any work, naming
the option and what was expected."""

import numpy as np
import pytest
from drnn_cli import drnn_in_process

from drnn_hw.bundle import random_bundle


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("common")
    rng = np.random.default_rng(0)
    np.savez(d / "tiny.npz", x_train=rng.normal(size=(4, 6, 3)), y_train=np.array([0, 1, 2, 0]),
             x_test=rng.normal(size=(5, 6, 3)), y_test=np.array([0, 1, 2, 1, 0]),
             len_test=np.array([6, 3, 5, 6, 2]))
    b = random_bundle(3, 4, seed=1)
    b.head_w, b.head_b, b.classes = np.eye(4)[:3], np.zeros(3), ["0", "1", "2"]
    b.extra = {"dataset": str(d / "tiny.npz")}
    b.save(d / "model")
    np.save(d / "x.npy", np.zeros((2, 3)))
    (d / "afile").write_text("")
    return d


CASES = [
    # Output paths: a file where a directory goes, a directory where a file goes, a file on
    # the way to either; checked before the command works (a bench or a training is long).
    (["bench", "{d}/model", "--engine", "golden", "--out", "{d}/afile"],
     ["--out", "afile is a file, expected a directory"]),
    (["export", "{d}/model.pt", "--out", "{d}/afile"], ["--out", "afile is a file"]),
    (["train", "--dataset", "japanese-vowels", "--out", "{d}"],
     ["--out", "is a directory, expected a file name"]),
    (["train", "--dataset", "japanese-vowels", "--out", "{d}/afile/c.pt"],
     ["--out", "afile is a file, expected a directory"]),
    (["simulate", "{d}/model", "--input", "{d}/x.npy", "--output", "{d}/afile/h.npy"],
     ["--output", "afile is a file, expected a directory"]),
    # Numbers outside what the hardware or the tools take.
    (["bench", "{d}/model", "--engine", "golden", "--clock-mhz", "inf", "--out", "{d}/b"],
     ["--clock-mhz must be a finite number > 0, got inf"]),
    (["generate", "{d}/model", "--out", "{d}/g", "--scan", "256"],
     ["--scan (E) must be from 1 to 255", "got 256"]),
    (["evaluate", "{d}/model", "--rows", "65536"], ["--rows (P) must be from 1 to 65535"]),
    (["build", "--board", "ulx3s-85f", "{d}/model", "--out", "{d}/u", "--baud", "0"],
     ["--baud", "0 is not in the range"]),
    (["run", "--board", "ulx3s-85f", "--port", "/dev/null", "{d}/model", "--input",
      "{d}/x.npy", "--output", "{d}/h.npy", "--timeout", "-1"],
     ["--timeout", "-1.0 is not in the range"]),
    (["load", "--board", "ulx3s-85f", "--port", "/dev/null", "{d}/model", "--baud", "-5"],
     ["--baud", "-5 is not in the range"]),
    # A file given as the bundle directory.
    (["evaluate", "{d}/x.npy"], ["x.npy: is a file, expected a model bundle directory"]),
]


@pytest.mark.parametrize("args, needles", CASES, ids=[" ".join(a[:1] + n[:1]) for a, n in CASES])
def test_bad_value_one_line(model, capsys, args, needles):
    code, _, err = drnn_in_process([a.format(d=model) for a in args], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("drnn: error:"), err
    for n in needles:
        assert n in lines[0], err
    for out in ("b", "g", "u", "h.npy"):
        assert not (model / out).exists()


def test_plain_drnn_prints_the_help(capsys):
    code, out, err = drnn_in_process([], capsys)
    assert code == 2 and err == "" and out.startswith("Usage: drnn") and "Commands:" in out


def test_evaluate_takes_a_core_with_weights_in_dram(model, capsys):
    # The dense reference of an AXI core waits for its columns too (the golden model's
    # default DRAM latency), so it is far above the on-chip core's.
    code, out, err = drnn_in_process(["evaluate", model / "model"], capsys)
    assert code == 0, err
    on_chip = float(out.split("(dense ")[1].split(")")[0])
    code, out, err = drnn_in_process(["evaluate", model / "model", "--weights", "axi"], capsys)
    assert code == 0, err
    assert float(out.split("(dense ")[1].split(")")[0]) > on_chip
