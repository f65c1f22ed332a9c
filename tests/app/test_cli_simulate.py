"""`drnn simulate` (golden engine) and `drnn info`, through the real console entry point."""

import json

import numpy as np
import pytest

from drnn_hw.bundle import random_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run
from drnn_hw.numerics import dequantize
from drnn_cli import drnn


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    b = random_bundle(4, 10, seed=7, theta_x=0.1, theta_h=0.05)
    b.save(d)
    return d, b


def test_simulate_batch_writes_h_and_stats(model, tmp_path):
    d, b = model
    x = np.random.default_rng(0).normal(size=(3, 6, 4))
    np.save(tmp_path / "x.npy", x)
    p = drnn("simulate", d, "--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy",
             "--stats", tmp_path / "s.json", "--rows", 4, "--columns", 1, "--scan", 3)
    assert p.returncode == 0, p.stderr
    h = np.load(tmp_path / "h.npy")
    ref = run(b, b.quantize_input(x), shape=CoreShape(rows=4, columns=1, scan=3))
    assert np.array_equal(h, dequantize(ref.h, b.formats.act))
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["steps"] == 18 and len(s["cycles"]) == 18
    assert s["cycles"] == ref.cycles.reshape(-1).tolist()
    assert s["nnz_dx_total"] == int(ref.nnz_dx.sum()) and s["cycles_total"] == sum(s["cycles"])


def test_simulate_single_sequence_keeps_2d(model, tmp_path):
    d, _ = model
    np.save(tmp_path / "x.npy", np.zeros((5, 4)))
    p = drnn("simulate", d, "--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy")
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "h.npy").shape == (5, 10)


@pytest.mark.parametrize("payload, match", [
    (np.zeros((5, 3)), "expected 4 input features"),
    (np.zeros((2, 2, 5, 4)), "expected shape (T, 4) or (N, T, 4)"),
    (np.array([[0.0, np.nan, 0.0, 0.0]]), "NaN or infinite"),
    (np.array([["a", "b", "c", "d"]]), "expected a numeric array"),
])
def test_simulate_bad_inputs_one_line(model, tmp_path, payload, match):
    d, _ = model
    np.save(tmp_path / "x.npy", payload)
    p = drnn("simulate", d, "--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy")
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], p.stderr
    assert "x.npy" in lines[0]


def test_simulate_missing_model_and_bad_core(model, tmp_path):
    d, _ = model
    np.save(tmp_path / "x.npy", np.zeros((2, 4)))
    p = drnn("simulate", tmp_path / "none", "--input", tmp_path / "x.npy", "--output", tmp_path / "h")
    assert p.returncode != 0 and "model bundle directory not found" in p.stderr
    p = drnn("simulate", d, "--input", tmp_path / "x.npy", "--output", tmp_path / "h", "--columns", 4)
    assert p.returncode != 0 and "--columns (K) must be 1 or 2 (the weight banks' read ports), got 4" in p.stderr
    p = drnn("simulate", d, "--input", tmp_path / "missing.npy", "--output", tmp_path / "h")
    assert p.returncode != 0 and "missing.npy: input file not found" in p.stderr
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    p = drnn("simulate", d, "--input", tmp_path / "junk.npy", "--output", tmp_path / "h")
    assert p.returncode != 0 and "junk.npy: not a readable .npy array" in p.stderr


def test_info_summarises(model):
    d, _ = model
    p = drnn("info", d)
    assert p.returncode == 0, p.stderr
    assert "I=4 H=10" in p.stdout and "Q8.8" in p.stdout and "head        none" in p.stdout
