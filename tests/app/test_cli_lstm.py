"""An LSTM bundle through the real CLI: train --cell lstm, export, info, evaluate and simulate
with the golden engine (state files and chunks included), and the commands that build or run
the LSTM core (generate with its Yosys multiplier count, simulate on the RTL engines)."""

import contextlib
import io
import json

import numpy as np
import pytest

from drnn.cli import main
from drnn_cli import drnn_in_process as drnn
from drnn_hw.bundle import ModelBundle, random_bundle, random_stacked_bundle
from drnn_hw.golden import run
from synthetic import synthetic_npz

LEARNS = ["--hidden", "8", "--epochs", "12", "--finetune-epochs", "4", "--batch-size", "16",
          "--lr", "2e-2", "--finetune-lr", "5e-3", "--theta-x", "0.1", "--theta-h", "0.05",
          "--min-steps", "0", "--finetune-min-steps", "0", "--quiet"]


def one_line_error(code, err, *needles):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drnn: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    d = tmp_path_factory.mktemp("lstmcli")
    syn = synthetic_npz(d / "syn.npz")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["train", "--cell", "lstm", "--dataset", str(syn), *LEARNS, "--seed", "1",
              "--out", str(d / "ck.pt")])
        main(["export", str(d / "ck.pt"), "--out", str(d / "bundle")])
    return d, syn, out.getvalue()


def test_train_lstm_export_info_evaluate(flow, capsys):
    d, syn, text = flow
    assert "float LSTM test accuracy" in text and "hardware-exact test accuracy" in text
    assert "LSTM H=8" in text and "LSTM I=3 H=8" in text
    m = json.loads((d / "ck.metrics.json").read_text())
    assert m["cell"] == "lstm" and m["config"]["cell"] == "lstm"
    b = ModelBundle.load(d / "bundle")
    assert b.cell == "lstm" and b.layers[0].w_x.shape == (4, 8, 3)
    code, out, err = drnn(["info", d / "bundle"], capsys)
    assert code == 0, err
    assert "cell        LSTM (gates i, f, g, o; cell state c in Q8.10)" in out
    assert "weights=352" in out                       # 4·8·(3 + 8)
    code, out, err = drnn(["evaluate", d / "bundle", "--json", d / "ev.json"], capsys)
    assert code == 0, err
    ev = json.loads((d / "ev.json").read_text())
    assert f"hardware-exact accuracy {100 * m['exact_accuracy']:.2f} %" in out
    assert ev["accuracy"] == m["exact_accuracy"] and ev["mean_cycles"] > 0
    assert ev["mean_cycles"] < ev["mean_cycles_dense"] and ev["core"]["rows"] == 8   # = H
    assert "LSTM core P=8 K=2 E=16" in out and "mean cycles/step" in out


def test_info_of_a_gru_says_gru(tmp_path, capsys):
    random_bundle(3, 4).save(tmp_path / "g")
    code, out, _ = drnn(["info", tmp_path / "g"], capsys)
    assert code == 0 and "cell        GRU (gates r, z, n)" in out and "multipliers" in out


def test_simulate_golden_runs_an_lstm_with_state_chunks(tmp_path, capsys):
    b = random_stacked_bundle(3, [6, 5], seed=2, cell="lstm", theta_x=0.05, theta_h=0.02)
    b.save(tmp_path / "m")
    x = np.random.default_rng(0).normal(0, 1, (2, 8, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "a.npy", x[:, :5])
    np.save(tmp_path / "b.npy", x[:, 5:])
    code, out, err = drnn(["simulate", tmp_path / "m", "--input", tmp_path / "x.npy",
                           "--output", tmp_path / "h.npy", "--stats", tmp_path / "s.json"],
                          capsys)
    assert code == 0, err
    assert "mean cycles/step" in out
    h = np.load(tmp_path / "h.npy")
    g = run(b, b.quantize_input(x))
    np.testing.assert_array_equal(h, g.h * b.formats.act.lsb)
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["cycles"] == g.flat("cycles").tolist() and stats["steps"] == 16
    # In two chunks through a state file (which carries c): the same h.
    code, _, err = drnn(["simulate", tmp_path / "m", "--input", tmp_path / "a.npy", "--output",
                         tmp_path / "ha.npy", "--state-out", tmp_path / "st.npz"], capsys)
    assert code == 0, err
    with np.load(tmp_path / "st.npz") as z:
        assert z["layer1_c"].shape == (2, 5)
    code, _, err = drnn(["simulate", tmp_path / "m", "--input", tmp_path / "b.npy", "--output",
                         tmp_path / "hb.npy", "--state-in", tmp_path / "st.npz"], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(
        np.concatenate([np.load(tmp_path / "ha.npy"), np.load(tmp_path / "hb.npy")], 1), h)


def test_state_file_without_c_is_refused_for_an_lstm(tmp_path, capsys):
    b = random_bundle(3, 4, seed=1, cell="lstm")
    b.save(tmp_path / "m")
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    code, _, err = drnn(["simulate", tmp_path / "m", "--input", tmp_path / "x.npy", "--output",
                         tmp_path / "h.npy", "--state-out", tmp_path / "st.npz"], capsys)
    assert code == 0, err
    with np.load(tmp_path / "st.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "layer0_c"}
    np.savez(tmp_path / "bad.npz", **arrays)
    code, _, err = drnn(["simulate", tmp_path / "m", "--input", tmp_path / "x.npy", "--output",
                         tmp_path / "h.npy", "--state-in", tmp_path / "bad.npz"], capsys)
    one_line_error(code, err, "bad.npz", "missing array layer0_c")


def test_generate_an_lstm_core_counts_four_channels_of_multipliers(tmp_path, capsys):
    """drnn generate builds the LSTM core: Yosys counts 4·P·K $mul cells (the AP has none of
    its own), the manifest names the cell and the LSTM's AP latency."""
    random_bundle(5, 6, seed=1, cell="lstm").save(tmp_path / "m")
    code, out, err = drnn(["generate", tmp_path / "m", "--out", tmp_path / "g", "--rows", "4",
                           "--columns", "2", "--scan", "4"], capsys)
    assert code == 0, err
    man = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert man["parameters"]["cell"] == "lstm" and man["parameters"]["step_overlap"] is True
    assert man["multipliers"] == 4 * 4 * 2 == man["multipliers_yosys"]
    assert man["cycle_model"]["AP_LATENCY"] == 12
    assert "LSTM I=5 H=6" in out and "32 multipliers (yosys counts 32)" in out


@pytest.mark.parametrize("engine", ["amaranth", "verilator"])
def test_simulate_an_lstm_on_the_rtl_engines(tmp_path, capsys, engine):
    """simulate --engine amaranth|verilator runs the LSTM core with h0: h equal to the golden
    model's, cycles measured equal to its cycle model's."""
    from drnn_sim.cores import core

    b, shape = core("lstm-odd")     # (its Verilator build is shared with tests/sim; a core
    #                                  without the step overlap, as --no-step-overlap builds)
    b.save(tmp_path / "m")
    x = np.random.default_rng(1).normal(0, 1, (2, 6, 7))
    h0 = np.random.default_rng(2).uniform(-0.5, 0.5, (1, 13))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "h0.npy", h0)
    code, out, err = drnn(["simulate", tmp_path / "m", "--input", tmp_path / "x.npy",
                           "--output", tmp_path / "h.npy", "--stats", tmp_path / "s.json",
                           "--engine", engine, "--h0", tmp_path / "h0.npy", "--rows", "4",
                           "--columns", "2", "--scan", "3", "--no-step-overlap"], capsys)
    assert code == 0, err
    from drnn_hw.numerics import quantize
    g = run(b, b.quantize_input(x), shape=shape, h0=[quantize(h0[0], b.formats.act)])
    np.testing.assert_array_equal(np.load(tmp_path / "h.npy"), g.h * b.formats.act.lsb)
    assert json.loads((tmp_path / "s.json").read_text())["cycles"] == g.flat("cycles").tolist()


def test_sweep_of_an_lstm_checks_exact_mode_against_golden_with_cycles(tmp_path):
    from drnn.sweep import sweep
    from synthetic import TINY

    data = synthetic_npz(tmp_path / "syn.npz", seed=2)
    opts = {k: v for k, v in TINY.items() if k not in ("theta_x", "theta_h")}
    res = sweep(tmp_path / "out", str(data), runs=[(8, 6, 0.0, 0.0), (8, 6, 0.2, 0.1)],
                progress=False, cell="lstm", **opts)
    assert res["config"]["cell"] == "lstm"
    rows = res["rows"]
    assert [r["exact_accuracy"] for r in rows] == [r["golden_accuracy"] for r in rows]
    assert all(r["mean_cycles"] < r["mean_cycles_dense"] for r in rows[1:])
    assert rows[1]["sparsity_dh"] > rows[0]["sparsity_dh"]
    assert rows[1]["mean_cycles"] < rows[0]["mean_cycles"]
    table = (tmp_path / "out" / "results.md").read_text()
    assert table.count("| – |") == 0
