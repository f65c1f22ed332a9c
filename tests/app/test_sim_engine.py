"""The verilator engine and `drnn simulate --engine verilator [--waves]`, on the tiny
verification core: equal to the golden engine, a VCD when asked, one-line errors."""

import subprocess
import sys

import numpy as np

from drnn.engines import get_engine
from drnn.engines import verilator as verilator_engine
from drnn_hw.golden import run as golden_run
from drnn_hw.numerics import dequantize
from drnn_sim.check import assert_matches_golden, sparse_walk
from drnn_sim.cores import core
from drnn_cli import drnn


def test_engine_matches_golden():
    bundle, shape = core("tiny")
    x = sparse_walk(np.random.default_rng(1), 3, 10, bundle.input_size, bundle.formats.act)
    r = get_engine("verilator")(bundle, x, lengths=[10, 3, 7], shape=shape)
    assert_matches_golden(r, golden_run(bundle, x, [10, 3, 7], shape))
    perf = verilator_engine.last_perf
    assert perf["sim_cycles"] >= r.cycles.sum() and perf["cycles_per_second"] > 0


def test_cli_simulate_verilator_with_waves(tmp_path):
    bundle, shape = core("tiny")
    bundle.save(tmp_path / "model")
    x = np.random.default_rng(2).normal(size=(2, 8, bundle.input_size))
    np.save(tmp_path / "x.npy", x)
    shape_args = ["--rows", shape.rows, "--columns", shape.columns, "--scan", shape.scan]
    p = drnn("simulate", tmp_path / "model", "--input", tmp_path / "x.npy", "--output",
             tmp_path / "h.npy", "--engine", "verilator", "--waves", tmp_path / "w.vcd",
             *shape_args)
    assert p.returncode == 0, p.stderr
    ref = golden_run(bundle, bundle.quantize_input(x), shape=shape)
    assert np.array_equal(np.load(tmp_path / "h.npy"), dequantize(ref.h, bundle.formats.act))
    vcd = (tmp_path / "w.vcd").read_text(errors="replace")
    assert "$enddefinitions" in vcd and "x__valid" in vcd and "h__payload" in vcd


def test_cli_engine_error_is_one_line(tmp_path):
    """A build failure reaches the user as one line naming the engine, no traceback."""
    bundle, shape = core("tiny")
    bundle.save(tmp_path / "model")
    np.save(tmp_path / "x.npy", np.zeros((4, bundle.input_size)))
    bad = tmp_path / "bad.vlt"
    bad.write_text("`verilator_config\nthis is not a config file\n")
    p = subprocess.run(
        [sys.executable, "-c",
         "import sys; from drnn_sim import runner; from pathlib import Path; "
         f"runner.WAIVERS = Path({str(bad)!r}); from drnn.cli import main; "
         "sys.argv = ['drnn'] + sys.argv[1:]; main()",
         *map(str, ["simulate", tmp_path / "model", "--input", tmp_path / "x.npy", "--output",
                    tmp_path / "h.npy", "--engine", "verilator",
                    "--rows", min(shape.rows, bundle.hidden_size), "--columns",
                    shape.columns, "--scan", shape.scan])],
        capture_output=True, text=True)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "verilator engine" in lines[0], p.stderr
