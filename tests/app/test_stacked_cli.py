"""Stacked bundles in the CLI: info, simulate, evaluate and bench on the golden engine, and
the generated (time-multiplexed) core through generate and the RTL engines."""

import json

import numpy as np
import pytest
from drnn_cli import drnn_in_process as drnn
from synthetic import synthetic_npz

from drnn_hw.bundle import ModelBundle, random_stacked_bundle
from drnn_hw.golden import run
from drnn_hw.numerics import dequantize


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    d = tmp_path_factory.mktemp("stacked")
    syn = synthetic_npz(d / "syn.npz")
    b = random_stacked_bundle(3, [6, 4], theta_x=[0.05, 0.1], theta_h=[0.05, 0.2], seed=1)
    rng = np.random.default_rng(0)
    b.head_w, b.head_b, b.classes = rng.normal(size=(2, 4)), np.zeros(2), ["2", "7"]
    b.extra = {"dataset": str(syn)}
    b.save(d / "m")
    x = rng.normal(size=(2, 7, 3))
    np.save(d / "x.npy", x)
    return d / "m", d / "x.npy", syn


def test_info_shows_each_layer(stacked, capsys):
    model, _, _ = stacked
    code, out, err = drnn(["info", model], capsys)
    assert code == 0, err
    assert "2 layers, I=3 H=4" in out
    assert "layer 0     I=3 H=6  theta_x=0.0507812 (code 13), theta_h=0.0507812 (code 13)" in out
    assert "layer 1     I=6 H=4  theta_x=0.101562 (code 26), theta_h=0.199219 (code 51)" in out


def test_simulate_golden_writes_the_last_layer_and_per_layer_stats(stacked, tmp_path, capsys):
    model, x_path, _ = stacked
    code, _, err = drnn(["simulate", model, "--input", x_path, "--output", tmp_path / "h.npy",
                         "--stats", tmp_path / "s.json"], capsys)
    assert code == 0, err
    b = ModelBundle.load(model)
    ref = run(b, b.quantize_input(np.load(x_path)))
    assert np.array_equal(np.load(tmp_path / "h.npy"), dequantize(ref.h, b.formats.act))
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["layer_nnz_dh"] == ref.flat("layer_nnz_dh").tolist()
    assert s["nnz_dh"] == [sum(v) for v in s["layer_nnz_dh"]]
    assert s["cycles"] == ref.flat("cycles").tolist()


def test_evaluate_and_bench_golden_report_per_layer_sparsity(stacked, tmp_path, capsys):
    model, _, syn = stacked
    code, out, err = drnn(["evaluate", model, "--json", tmp_path / "e.json"], capsys)
    assert code == 0, err
    e = json.loads((tmp_path / "e.json").read_text())
    assert "layer 1 (I=6 H=4)" in out and "layers in sequence" in out
    assert "the generated core runs one layer" not in out
    code, out, err = drnn(["bench", model, "--engine", "golden", "--thetas", "0,0.1,0.05078125",
                           "--torch-repeats", "1", "--quiet", "--out", tmp_path / "bench"],
                          capsys)
    assert code == 0, err
    bench = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert [ly["hidden_size"] for ly in bench["model"]["layers"]] == [6, 4]
    assert bench["model"]["weights"] == 3 * 6 * 9 + 3 * 4 * 10
    rows = {(r["theta_x_code"], r["theta_h_code"]): r for r in bench["rows"]}
    trained = rows[(13, 13)]                       # the bundle as trained: per-layer Θ
    assert trained["trained"] and [ly["theta_h"] for ly in trained["layers"]] == \
        pytest.approx([13 / 256, 51 / 256])
    assert trained["accuracy"] == e["accuracy"]
    assert [ly["sparsity_dh"] for ly in trained["layers"]] == \
        pytest.approx([ly["sparsity_dh"] for ly in e["layers"]])
    assert trained["cycles"]["mean"] == pytest.approx(e["mean_cycles"])
    assert rows[(0, 0)]["sparsity_dh"] <= rows[(26, 26)]["sparsity_dh"]
    # The EdgeDRNN model for L layers: each layer's schedule, in sequence.
    assert trained["peer"]["cycles_mean"] > 0


def test_generate_writes_a_stacked_core_with_its_layer_map(stacked, tmp_path, capsys):
    model, _, _ = stacked
    code, out, err = drnn(["generate", model, "--out", tmp_path / "g", "--rows", "4",
                           "--no-mul-count"], capsys)
    assert code == 0, err
    man = json.loads((tmp_path / "g" / "manifest.json").read_text())
    layers = man["parameters"]["layers"]
    # P = 4: layer 0 (H=6) two blocks, layer 1 (H=4) one, after it; its weight region after
    # layer 0's (3 + 6) columns x 2 blocks.
    assert [(ly["I"], ly["H"], ly["NB"], ly["block_base"], ly["weight_base"])
            for ly in layers] == [(3, 6, 2, 0, 0), (6, 4, 1, 2, 18)]
    assert man["multipliers"] == 3 * 4 * 2        # shared: not 2x
    assert man["layer_registers"]["base"] == 32 and man["layer_registers"]["stride"] == 8


@pytest.mark.parametrize("engine", ["verilator", "amaranth"])
def test_rtl_engines_run_a_stacked_bundle_bit_and_cycle_exact(stacked, tmp_path, capsys,
                                                             engine):
    model, x_path, _ = stacked
    code, out, err = drnn(["simulate", model, "--input", x_path, "--output", tmp_path / "h.npy",
                           "--stats", tmp_path / "s.json", "--engine", engine, "--rows", "4"],
                          capsys)
    assert code == 0, err
    b = ModelBundle.load(model)
    from drnn_hw.cycle_model import CoreShape
    ref = run(b, b.quantize_input(np.load(x_path)), shape=CoreShape(rows=4))
    assert np.array_equal(np.load(tmp_path / "h.npy"), dequantize(ref.h, b.formats.act))
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["cycles"] == ref.flat("cycles").tolist()
    assert s["nnz_dx"] == ref.flat("nnz_dx").tolist()
    if engine == "verilator":     # read over the bus from the per-layer registers
        assert s["layer_nnz_dh"] == ref.flat("layer_nnz_dh").tolist()
        assert s["layer_cycles"] == ref.flat("layer_cycles").tolist()


def test_the_core_refuses_more_layers_than_its_register_map_holds():
    from drnn_hw.core import DeltaGRUCore

    b = random_stacked_bundle(2, [2] * 29)
    with pytest.raises(ValueError, match="29 stacked layers: a core holds at most 28"):
        DeltaGRUCore(b)


def test_simulate_out_layers_all_writes_every_layers_h(stacked, tmp_path, capsys):
    model, x_path, _ = stacked
    b = ModelBundle.load(model)
    ref = run(b, b.quantize_input(np.load(x_path)))
    want = dequantize(np.concatenate(ref.layer_h, axis=-1), b.formats.act)
    for engine in ("golden", "amaranth"):
        out = tmp_path / f"{engine}.npy"
        code, _, err = drnn(["simulate", model, "--input", x_path, "--output", out,
                             "--engine", engine, "--out-layers", "all"], capsys)
        assert code == 0, err
        assert np.load(out).shape == (2, 7, 6 + 4)
        assert np.array_equal(np.load(out), want), engine
