"""The compressed-weight core through the CLI: generate picks it for a pruned bundle (or on
--weight-format), builds it with --weights runtime (and --max-kept) and with --weights axi
(the pair-word DRAM image; drnn dram-image writes the same bytes), and simulate --engine
amaranth runs it with the spatial model's cycles, equal to golden's; the compressed AXI core
in Verilator through simulate and bench, equal to the golden model's h and cycles. The dense
core of a dense bundle is unchanged (its Verilog is compared byte for byte)."""

import json

import numpy as np
import pytest

from drnn_cli import drnn_in_process as drnn
from drnn_hw.balance import prune_bundle
from drnn_hw.bundle import random_bundle, random_stacked_bundle


def one_line_error(code, err, *needles):
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drnn: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("compressed")
    dense = random_stacked_bundle(5, [9, 6], seed=2, theta_x=[0.1, 0.1], theta_h=[0.05, 0.05])
    pruned = prune_bundle(dense, 4, 0.5)
    return dense.save(d / "dense"), pruned.save(d / "pruned")


CORE = ["--rows", "4", "--columns", "2", "--scan", "3"]


def test_generate_picks_the_compressed_core(models, tmp_path, capsys):
    dense, pruned = models
    code, out, err = drnn(["generate", pruned, "--out", tmp_path / "c", *CORE], capsys)
    assert code == 0, err
    assert "compressed weights, 2/1 (value, row) pair(s) per slice and column" in out
    assert "(yosys counts 24)" in out             # 3·P·K multipliers, as the dense core's
    m = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert m["weight_format"] == "compressed" and m["cycle_model"]["model"] == \
        "drnn_hw.spatial.spatial_step_cycles"
    assert [ly["kept"] for ly in m["parameters"]["layers"]] == [2, 1]
    # --weight-format dense: the dense core of the pruned bundle, as before this option
    code, out, err = drnn(["generate", pruned, "--out", tmp_path / "d", *CORE,
                           "--weight-format", "dense", "--no-mul-count"], capsys)
    assert code == 0 and "compressed" not in out
    assert "weight_format" not in json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert (tmp_path / "c" / "drnn_core.v").read_text() != \
        (tmp_path / "d" / "drnn_core.v").read_text()
    # A dense bundle: auto is the dense core.
    code, out, err = drnn(["generate", dense, "--out", tmp_path / "e", *CORE, "--no-mul-count"],
                          capsys)
    assert code == 0 and "compressed" not in out
    assert "weight_format" not in json.loads((tmp_path / "e" / "manifest.json").read_text())


@pytest.mark.parametrize("weights", ["runtime", "axi"])
def test_auto_is_dense_with_runtime_and_axi(models, tmp_path, capsys, weights):
    _, pruned = models
    # auto with runtime / axi: the dense core of the pruned bundle (which computes it right);
    # compressed is asked for with --weight-format compressed (tests below).
    code, out, err = drnn(["generate", pruned, "--out", tmp_path / "h", *CORE, "--weights",
                           weights, "--no-mul-count"], capsys)
    assert code == 0, err
    assert "weight_format" not in json.loads((tmp_path / "h" / "manifest.json").read_text())


def test_compressed_runtime_core(models, tmp_path, capsys):
    """--weights runtime --weight-format compressed: a run-time core with compressed banks,
    kept_max the bundle's largest kept (2) or --max-kept; the manifest says so. auto with
    --weights runtime stays the dense run-time core (it loads dense models too)."""
    dense, pruned = models
    rt = ["--weights", "runtime", "--max-inputs", "6", "--max-hidden", "10", "--max-layers",
          "2", "--no-mul-count"]
    code, out, err = drnn(["generate", pruned, "--out", tmp_path / "g", *CORE, *rt,
                           "--weight-format", "compressed"], capsys)
    assert code == 0, err
    assert "compressed weights, 2/1 (value, row) pair(s) per slice and column" in out
    assert "run-time weights for I ≤ 6, H ≤ 10, L ≤ 2" in out
    m = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert m["weights"] == "runtime" and m["weight_format"] == "compressed"
    assert m["maxima"]["kept"] == 2 and m["registers"]["KEPT"] == {"address": 19,
                                                                    "access": "RW"}
    # The banks' layout: every slot of I_max + H_max = 16 columns holds 2 pairs per column.
    assert [s["pair_weight_base"] for s in m["maxima"]["layout"]] == [0, 32]
    code, out, err = drnn(["generate", pruned, "--out", tmp_path / "k", *CORE, *rt,
                           "--weight-format", "compressed", "--max-kept", "3"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "k" / "manifest.json").read_text())["maxima"]["kept"] == 3
    code, out, err = drnn(["generate", pruned, "--out", tmp_path / "x", *CORE, *rt,
                           "--weight-format", "compressed", "--max-kept", "4"], capsys)
    one_line_error(code, err, "--max-kept 4: must lie in [2 (the bundle's largest kept), 3")
    code, out, err = drnn(["generate", pruned, "--out", tmp_path / "y", *CORE, *rt,
                           "--max-kept", "2"], capsys)
    one_line_error(code, err, "--max-kept 2: only for a compressed-weight core")
    code, out, err = drnn(["generate", pruned, "--out", tmp_path / "z", *CORE,
                           "--max-kept", "2"], capsys)
    one_line_error(code, err, "--max-kept: only with --weights runtime")
    code, out, err = drnn(["generate", pruned, "--out", tmp_path / "h", *CORE, *rt], capsys)
    assert code == 0, err
    assert "weight_format" not in json.loads((tmp_path / "h" / "manifest.json").read_text())
    # The board tops take it: the Arty plan of a compressed run-time core.
    code, out, err = drnn(["build", pruned, "--board", "arty-z7-20", "--out", tmp_path / "a",
                           *CORE, *rt[:-1], "--weight-format", "compressed", "--no-estimate"],
                          capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["core"]["weights"] == "runtime"
    assert report["core"]["weight_format"] == "compressed"
    # A dense model is refused by simulate --core before anything runs.
    np.save(tmp_path / "x.npy", np.zeros((3, 5)))
    code, out, err = drnn(["simulate", dense, "--core", tmp_path / "g", "--engine",
                           "verilator", "--input", tmp_path / "x.npy", "--output",
                           tmp_path / "o.npy"], capsys)
    one_line_error(code, err, "layers[0].balance: none (dense weights)")


def test_simulate_amaranth_equals_golden(models, tmp_path, capsys):
    _, pruned = models
    x = np.random.default_rng(0).normal(size=(2, 4, 5))
    np.save(tmp_path / "x.npy", x)
    stats = {}
    for engine in ("golden", "amaranth"):
        code, out, err = drnn(["simulate", pruned, "--input", tmp_path / "x.npy", "--output",
                               tmp_path / f"{engine}.npy", "--engine", engine, *CORE,
                               "--stats", tmp_path / f"{engine}.json"], capsys)
        assert code == 0, err
        stats[engine] = json.loads((tmp_path / f"{engine}.json").read_text())
    assert np.array_equal(np.load(tmp_path / "golden.npy"), np.load(tmp_path / "amaranth.npy"),
                          equal_nan=True)
    assert stats["amaranth"]["cycles"] == stats["golden"]["cycles"]
    assert stats["golden"]["core"]["weight_format"] == "compressed"
    # the dense core's cycles differ (the test would notice the wrong schedule)
    code, out, err = drnn(["simulate", pruned, "--input", tmp_path / "x.npy", "--output",
                           tmp_path / "d.npy", "--engine", "golden", *CORE, "--weight-format",
                           "dense", "--stats", tmp_path / "d.json"], capsys)
    assert json.loads((tmp_path / "d.json").read_text())["cycles"] != stats["golden"]["cycles"]


def test_simulate_refuses_another_p(models, tmp_path, capsys):
    _, pruned = models
    np.save(tmp_path / "x.npy", np.zeros((3, 5)))
    code, out, err = drnn(["simulate", pruned, "--input", tmp_path / "x.npy", "--output",
                           tmp_path / "h.npy", "--rows", "2"], capsys)
    one_line_error(code, err, "layers[0].balance.rows", "the core has P = 2")


@pytest.mark.slow
def test_simulate_a_model_on_a_compressed_runtime_core(tmp_path, capsys):
    """`drnn simulate --core` on a compressed run-time core generated by the CLI (the Verilog
    of tests/sim/test_sim_compressed.py's run-time core, so its Verilator build is shared):
    another pruned model (two layers, kept 1 of the core's 2) loaded and run in Verilator,
    bit- and cycle-exact with the golden model on the spatial model."""
    from drnn_hw.cycle_model import CoreShape
    from drnn_hw.golden import run as golden_run
    from drnn_hw.numerics import dequantize
    from drnn_sim.cores import compressed_runtime_models

    models = compressed_runtime_models("gru")
    a, c = models["A"].save(tmp_path / "A"), models["C"].save(tmp_path / "C")
    code, out, err = drnn(["generate", a, "--out", tmp_path / "core", "--weights", "runtime",
                           "--weight-format", "compressed", "--max-inputs", "8",
                           "--max-hidden", "12", "--max-layers", "2", "--rows", "4",
                           "--columns", "2", "--scan", "4", "--no-mul-count"], capsys)
    assert code == 0, err
    b = models["C"]
    x = np.random.default_rng(5).normal(0, 0.5, (2, 6, b.input_size))
    np.save(tmp_path / "x.npy", x)
    code, out, err = drnn(["simulate", c, "--input", tmp_path / "x.npy", "--output",
                           tmp_path / "h.npy", "--stats", tmp_path / "s.json", "--engine",
                           "verilator", "--core", tmp_path / "core"], capsys)
    assert code == 0, err
    g = golden_run(b, b.quantize_input(x), shape=CoreShape(4, 2, 4,
                                                           weight_format="compressed"))
    assert np.array_equal(np.load(tmp_path / "h.npy"), dequantize(g.h, b.formats.act))
    assert json.loads((tmp_path / "s.json").read_text())["cycles"] == \
        g.cycles.reshape(-1).tolist()


def test_generate_compressed_axi_writes_the_pair_image(models, tmp_path, capsys):
    """--weights axi --weight-format compressed: the Verilog with the read master, the
    pair-word image (the bytes dram_image gives, and drnn dram-image for the same options),
    and a manifest stating the pair words: ΣNB = 3 + 2 blocks, so 3 index bits; 3 gates · 4
    pairs · (8 + 3) bits = 132 bits, three 64-bit beats per pair word; kept 2 and 1 of NB 3
    and 2: 48 and 24 bytes a column."""
    from drnn_hw.bundle import ModelBundle
    from drnn_hw.cycle_model import CoreShape
    from drnn_hw.dram import dram_image

    _, pruned = models
    code, out, err = drnn(["generate", pruned, "--out", tmp_path / "g", *CORE, "--weights",
                           "axi", "--weight-format", "compressed", "--no-mul-count"], capsys)
    assert code == 0, err
    assert "compressed weights, 2/1 (value, row) pair(s)" in out and "weights in DRAM" in out
    shape = CoreShape(rows=4, columns=2, scan=3, weights="axi", weight_format="compressed")
    image = (tmp_path / "g" / "drnn_core_weights.bin").read_bytes()
    b = ModelBundle.load(pruned)
    assert image == dram_image(b, shape)
    assert len(image) == ((5 + 9) * 2 + (9 + 6) * 1) * 24
    m = json.loads((tmp_path / "g" / "manifest.json").read_text())
    w = m["weights"]
    assert m["weight_format"] == "compressed" and w["source"] == "axi"
    assert w["beats_per_block"] == 3 and w["index_bits"] == 3
    assert w["column_bytes"] == [48, 24] and "pair word" in w["layout"]
    assert "m_axi__araddr" in (tmp_path / "g" / "drnn_core.v").read_text()
    code, out, err = drnn(["dram-image", pruned, "--out", tmp_path / "w.bin", *CORE,
                           "--weight-format", "compressed"], capsys)
    assert code == 0, err
    assert (tmp_path / "w.bin").read_bytes() == image
    # The dense image of the same bundle is another one (NB block words a column).
    code, out, err = drnn(["dram-image", pruned, "--out", tmp_path / "d.bin", *CORE], capsys)
    assert code == 0 and (tmp_path / "d.bin").read_bytes() != image


def test_compressed_axi_refuses_another_p(models, tmp_path, capsys):
    _, pruned = models
    code, out, err = drnn(["dram-image", pruned, "--out", tmp_path / "w.bin", "--rows", "2",
                           "--weight-format", "compressed"], capsys)
    one_line_error(code, err, "layers[0].balance.rows", "the core has P = 2")
    assert not (tmp_path / "w.bin").exists()


def test_bench_golden_of_a_compressed_axi_core(tmp_path):
    """The bench's spatial split on a compressed core in DRAM: the dense core it compares with
    is the dense AXI core on the same memory (latency 9), each factor from golden runs made
    here; the DRAM bytes are kept columns · kept pair words."""
    from dataclasses import replace

    from drnn.bench import run as R
    from drnn_hw.cycle_model import CoreShape
    from drnn_hw.golden import run as golden_run

    P = 4
    b = prune_bundle(random_bundle(5, 12, seed=7, weight_scale=1.5), P, 0.75)   # kept 1 of 3
    b.head_w, b.head_b, b.classes = np.eye(12)[:3], np.zeros(3), ["0", "1", "2"]
    comp = CoreShape(rows=P, columns=2, scan=4, weights="axi", weight_format="compressed")
    dense = replace(comp, weight_format="dense")
    rng = np.random.default_rng(2)

    class Data:
        name = "synthetic"
        x_test, len_test = rng.normal(size=(3, 6, 5)), np.array([6, 3, 5])
        y_test = rng.integers(0, 3, 3)

    def engine(*a, **k):
        return golden_run(*a, **k, dram_latency=9)

    out = R.run_bench(b, Data, comp, engine, engine_name="golden", thetas=[(0, 0), (40, 40)],
                      torch_repeats=1, progress=False, log=lambda s: None, dram_latency=9)
    codes = b.quantize_input(Data.x_test)
    d0 = golden_run(b, codes, Data.len_test, dense, dram_latency=9).cycles.sum()
    for (tx, th), row in zip([(0, 0), (40, 40)], out["rows"]):
        bt = b.with_thresholds(tx, th)
        c = golden_run(bt, codes, Data.len_test, comp, dram_latency=9)
        d = golden_run(bt, codes, Data.len_test, dense, dram_latency=9).cycles.sum()
        sp = row["spatial"]
        assert sp["temporal_speedup"] == pytest.approx(d0 / d)
        assert sp["spatial_speedup"] == pytest.approx(d / c.cycles.sum())
        # A pair word: 3 · 4 · (8 + 2) = 120 bits, 2 beats of 64: 16 bytes a kept column.
        valid = np.arange(6)[None, :] < Data.len_test[:, None]
        nnz = (c.nnz_dx + c.nnz_dh)[valid]
        assert row["dram"]["bytes_per_step_mean"] == pytest.approx(16 * nnz.mean())
        assert row["dram"]["dense_bytes_per_step"] == 17 * 16
    assert out["rows"][0]["spatial"]["spatial_speedup"] > 1     # 1 pair word against 3 blocks


@pytest.mark.slow
def test_simulate_and_bench_verilator_on_compressed_axi(tmp_path, capsys):
    """`drnn simulate` and `drnn bench --engine verilator` on the compressed AXI core (the
    bundle and shape of tests/sim/test_sim_compressed_axi.py's "gru" core: one Verilator
    build for both files): h and cycles equal to the golden model's at the same latency."""
    from drnn_sim.cores import compressed_core

    b, shape = compressed_core("gru")
    core = ["--rows", "4", "--columns", "2", "--scan", "3", "--weights", "axi",
            "--weight-format", "compressed"]
    rng = np.random.default_rng(4)
    np.savez(tmp_path / "data.npz", x_train=rng.normal(size=(2, 5, 7)),
             y_train=np.array([0, 1]), x_test=rng.normal(size=(3, 5, 7)),
             y_test=np.array([0, 1, 2]), len_test=np.array([5, 3, 4]))
    b.head_w, b.head_b, b.classes = rng.normal(size=(3, 13)), np.zeros(3), ["0", "1", "2"]
    b.extra = {"dataset": str(tmp_path / "data.npz")}
    b.save(tmp_path / "m")
    np.save(tmp_path / "x.npy", rng.normal(size=(2, 4, 7)))
    stats = {}
    for engine in ("golden", "verilator"):
        code, out, err = drnn(["simulate", tmp_path / "m", "--input", tmp_path / "x.npy",
                               "--output", tmp_path / f"{engine}.npy", "--engine", engine,
                               *core, "--stats", tmp_path / f"{engine}.json"], capsys)
        assert code == 0, err
        stats[engine] = json.loads((tmp_path / f"{engine}.json").read_text())
    assert np.array_equal(np.load(tmp_path / "golden.npy"), np.load(tmp_path / "verilator.npy"),
                          equal_nan=True)
    assert stats["verilator"]["cycles"] == stats["golden"]["cycles"]
    code, out, err = drnn(["bench", tmp_path / "m", "--engine", "verilator", "--thetas", "0,0.25",
                           "--out", tmp_path / "b", *core, "--dram-latency", "20",
                           "--torch-repeats", "1", "--quiet"], capsys)
    assert code == 0, err
    bench = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert bench["cycles_source"].startswith("measured") and bench["core"]["kept"] == [2]
    for c in bench["cross_check"]:
        assert c["steps"] == 12
        assert c["h_mismatch_steps"] == c["nnz_mismatch_steps"] == 0
        assert c["cycles_vs_model_mismatch_steps"] == 0
