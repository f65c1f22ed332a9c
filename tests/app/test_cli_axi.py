"""Weights in DRAM through the real CLI: generate --weights axi (Verilog with the read master,
the DRAM image, the manifest), drnn dram-image, the on-chip refusal of a model too large for
the target's block RAM, the golden engine's cycles with the memory terms, the one-line errors
of options that do not fit together."""

import json

import numpy as np

from drnn_cli import drnn_in_process as drnn
from drnn_hw.bundle import random_bundle, random_stacked_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.dram import dram_image
from drnn_hw.golden import run


def one_line_error(code, err, *needles):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drnn: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_generate_axi_writes_the_image(tmp_path, capsys):
    b = random_stacked_bundle(5, [9, 6], seed=3, cell="lstm")
    b.save(tmp_path / "m")
    code, out, err = drnn(["generate", tmp_path / "m", "--out", tmp_path / "g", "--rows", 4,
                           "--scan", 4, "--weights", "axi", "--bus-bits", 32, "--burst", 8,
                           "--no-mul-count"], capsys)
    assert code == 0, err
    shape = CoreShape(rows=4, columns=2, scan=4, weights="axi", bus_bits=32, burst=8)
    image = (tmp_path / "g" / "drnn_core_weights.bin").read_bytes()
    assert image == dram_image(b, shape)
    man = json.loads((tmp_path / "g" / "manifest.json").read_text())
    w = man["weights"]
    assert w["source"] == "axi" and w["image_bytes"] == len(image) and w["bus_bits"] == 32
    # A block word: 4 gates x 4 rows x 8 bits = 128 bits = 4 beats of 32; NB = 3 and 2.
    assert w["beats_per_block"] == 4 and w["column_bytes"] == [3 * 16, 2 * 16]
    assert man["registers"]["WEIGHT_BASE"] == {"address": 18, "access": "RW"}
    v = (tmp_path / "g" / "drnn_core.v").read_text()
    assert "m_axi__araddr" in v and "m_axi__rdata" in v
    assert "drnn_core_weights.bin" in out
    # drnn dram-image writes the same bytes for the same core options.
    code, out, err = drnn(["dram-image", tmp_path / "m", "--out", tmp_path / "w.bin", "--rows", 4,
                           "--scan", 4, "--bus-bits", 32, "--burst", 8], capsys)
    assert code == 0, err
    assert (tmp_path / "w.bin").read_bytes() == image


def test_onchip_refuses_a_model_larger_than_the_block_ram(tmp_path, capsys):
    """Two layers of 512 GRU units with 8-bit weights: 3·8·(528·512 + 1024·512) bits ≈ 18.2
    Mibit, beyond both targets; --weights axi generates it."""
    b = random_stacked_bundle(16, [512, 512], seed=1, weight_scale=0.3)
    b.save(tmp_path / "big")
    need = 3 * 8 * (528 * 512 + 1024 * 512) / 2 ** 20
    code, _, err = drnn(["generate", tmp_path / "big", "--out", tmp_path / "g",
                         "--no-mul-count"], capsys)
    one_line_error(code, err, f"need {need:.2f} Mbit", "ULX3S-85F", "has 3.66 Mbit",
                   "--weights axi")
    code, _, err = drnn(["generate", tmp_path / "big", "--out", tmp_path / "g", "--target",
                         "arty-z7-20", "--no-mul-count"], capsys)
    one_line_error(code, err, "xc7z020", "has 4.92 Mbit", "--weights axi")
    code, _, err = drnn(["build", "--board", "arty-z7-20", tmp_path / "big", "--out",
                         tmp_path / "b", "--no-estimate"], capsys)
    one_line_error(code, err, "has 4.92 Mbit")
    assert not (tmp_path / "g").exists() and not (tmp_path / "b").exists()
    # The default model fits the ULX3S: 3 x 80 columns x 64 rows x 8 bits.
    random_bundle(16, 64).save(tmp_path / "small")
    code, _, err = drnn(["generate", tmp_path / "small", "--out", tmp_path / "s",
                         "--no-mul-count"], capsys)
    assert code == 0, err


def test_golden_engine_cycles_have_the_memory_terms(tmp_path, capsys):
    b = random_bundle(6, 10, seed=4, theta_x=0.1, theta_h=0.1)
    b.save(tmp_path / "m")
    x = np.cumsum(np.random.default_rng(0).normal(0, 0.4, (2, 5, 6)), axis=1)
    np.save(tmp_path / "x.npy", x)
    stats = {}
    for weights in ("baked", "axi"):
        code, _, err = drnn(["simulate", tmp_path / "m", "--input", tmp_path / "x.npy",
                             "--output", tmp_path / f"h_{weights}.npy", "--stats",
                             tmp_path / f"s_{weights}.json", "--rows", 4, "--scan", 4,
                             "--weights", weights], capsys)
        assert code == 0, err
        stats[weights] = json.loads((tmp_path / f"s_{weights}.json").read_text())
    # Same h; the AXI core's cycles are the model's at the default latency, and larger.
    assert np.array_equal(np.load(tmp_path / "h_baked.npy"), np.load(tmp_path / "h_axi.npy"))
    shape = CoreShape(rows=4, columns=2, scan=4, weights="axi")
    from drnn.commands.common import read_codes
    _, codes = read_codes(b, tmp_path / "x.npy", "ntc")
    g = run(b, codes, shape=shape, dram_latency=32)
    on, ax = (np.asarray(stats[w]["cycles"]) for w in ("baked", "axi"))
    assert ax.tolist() == g.cycles.reshape(-1).tolist()
    assert (ax > on).all()


def test_options_that_do_not_fit(tmp_path, capsys):
    random_bundle(6, 10, seed=1).save(tmp_path / "m")
    code, _, err = drnn(["generate", tmp_path / "m", "--out", tmp_path / "g", "--bus-bits",
                         32], capsys)
    one_line_error(code, err, "--bus-bits", "--weights axi")
    code, _, err = drnn(["generate", tmp_path / "m", "--out", tmp_path / "g", "--weights",
                         "axi", "--buffer", 3], capsys)
    one_line_error(code, err, "--buffer", "power of two")
    code, _, err = drnn(["build", "--board", "ulx3s-85f", tmp_path / "m", "--out",
                         tmp_path / "b", "--weights", "axi"], capsys)
    one_line_error(code, err, "ulx3s-85f", "no AXI memory port")
    code, _, err = drnn(["simulate", tmp_path / "m", "--input", tmp_path / "none.npy",
                         "--output", tmp_path / "h.npy", "--engine", "amaranth", "--weights",
                         "axi"], capsys)
    assert code != 0 and "Traceback" not in err


def test_export_writes_the_dram_image(tmp_path, capsys):
    """`drnn export --dram-image FILE` (issue #14's wording): the image of the exported bundle
    for the default core with weights in DRAM, the bytes `drnn dram-image` writes."""
    import torch

    from drnn_hw.bundle import ModelBundle

    torch.manual_seed(0)
    torch.save(torch.nn.GRU(5, 20, num_layers=2).state_dict(), tmp_path / "gru.pt")
    code, out, err = drnn(["export", "--torch-gru", tmp_path / "gru.pt", "--out", tmp_path / "m",
                           "--dram-image", tmp_path / "img" / "w.bin"], capsys)
    assert code == 0, err
    image = (tmp_path / "img" / "w.bin").read_bytes()
    b = ModelBundle.load(tmp_path / "m")
    assert image == dram_image(b, CoreShape(rows=16, columns=2, scan=16, weights="axi"))
    assert f"{len(image)} bytes" in out
    code, out, err = drnn(["dram-image", tmp_path / "m", "--out", tmp_path / "w2.bin"], capsys)
    assert code == 0, err
    assert (tmp_path / "w2.bin").read_bytes() == image
    code, out, err = drnn(["export", "--torch-gru", tmp_path / "gru.pt", "--out", tmp_path / "m2",
                           "--dram-image", tmp_path / "img"], capsys)
    one_line_error(code, err, "img: --dram-image is a directory")
    assert not (tmp_path / "m2").exists()
