"""Arty Z7-20: the AXI wrapper in Verilator (AXI4-Lite registers, AXI4-Stream with
back-pressure, bit-exact against the golden model), the Vivado plan, the Yosys estimate."""

import numpy as np
import pytest

from drnn_boards.arty_z7 import (EstimateError, element_bits, stream_tdata_bits,
                                 write_vivado_plan, yosys_estimate)
from drnn_hw.bundle import random_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run as golden_run

SHAPE = CoreShape(rows=4, columns=2, scan=4)


@pytest.mark.slow
def test_axi_benches_match_golden():
    from drnn_boards.sim import run_axi_bench

    bundle = random_bundle(6, 10, seed=5, theta_x=0.125, theta_h=0.0625, weight_scale=1.5)
    rng = np.random.default_rng(2)
    x = np.cumsum(rng.integers(-150, 150, (12, 6)) * (rng.random((12, 6)) > 0.5), axis=0)
    res = run_axi_bench(bundle, SHAPE, x)
    gold = golden_run(bundle, x[None], shape=SHAPE)
    np.testing.assert_array_equal(res["h"], gold.h[0])
    sizes = 6 | (10 << 16)
    assert list(res["lite"]) == [0x44524E4E, sizes, bundle.theta_x, bundle.theta_h,
                                 100, 101, 102, 102, 0x55]
    assert list(res["bresp"]) == [0, 0, 0, 2, 0]


def _lstm():
    return random_bundle(6, 10, seed=5, theta_x=0.125, theta_h=0.0625, weight_scale=1.5,
                         cell="lstm"), SHAPE


def _compressed():
    from drnn_hw.balance import prune_bundle

    return (prune_bundle(random_bundle(6, 10, seed=5, theta_x=0.125, theta_h=0.0625,
                                       weight_scale=1.5), 4, 0.6),
            CoreShape(rows=4, columns=2, scan=4, weight_format="compressed"))


@pytest.mark.slow
@pytest.mark.parametrize("make,seed", [(_lstm, 3), (_compressed, 4)], ids=["lstm", "compressed"])
def test_axi_benches_run_other_cores(make, seed):
    """The AXI wrapper runs the LSTM core and the compressed-weight core (issue #13)
    unchanged: bit-exact h, the same register replies."""
    from drnn_boards.sim import run_axi_bench

    bundle, shape = make()
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.integers(-150, 150, (10, 6)) * (rng.random((10, 6)) > 0.5), axis=0)
    res = run_axi_bench(bundle, shape, x)
    gold = golden_run(bundle, x[None], shape=shape)
    np.testing.assert_array_equal(res["h"], gold.h[0])
    assert list(res["lite"])[:2] == [0x44524E4E, 6 | (10 << 16)]


def test_stream_widths():
    assert [element_bits(a) for a in (8, 9, 16, 18)] == [8, 16, 16, 24]
    assert stream_tdata_bits(16, 16) == 256      # default core: 16 elements of 16 bits
    assert stream_tdata_bits(16, 3) == 64        # 48 bits of elements, padded
    assert stream_tdata_bits(18, 2) == 64        # 18-bit codes travel in 24-bit elements
    assert stream_tdata_bits(8, 1) == 8


def test_estimate_errors_are_one_line(tmp_path):
    (tmp_path / "bad.v").write_text("module bad(input x, output y);\nassign y = ;\nendmodule\n")
    with pytest.raises(EstimateError, match="unknown target 'xc9'"):
        yosys_estimate(tmp_path / "bad.v", "bad", "xc9")
    with pytest.raises(EstimateError) as e:
        yosys_estimate(tmp_path / "bad.v", "bad", "xc7z020")
    msg = str(e.value)
    assert msg.startswith("yosys synth_xilinx failed: ") and "ERROR" in msg and "\n" not in msg
    log = tmp_path / "yosys-xc7z020.log"                 # kept next to the Verilog
    assert msg.endswith(f"(log: {log})") and log.is_file()


def test_vivado_plan(tmp_path):
    bundle = random_bundle(6, 10, seed=1)
    info = write_vivado_plan(bundle, SHAPE, tmp_path, freq_mhz=100)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(info["files"])
    core_v = (tmp_path / "drnn_axi.v").read_text()
    top_v = (tmp_path / "drnn_axi_top.v").read_text()
    tcl = (tmp_path / "build.tcl").read_text()
    xdc = (tmp_path / "drnn_axi.xdc").read_text()
    assert "module drnn_axi(" in core_v.replace(" (", "(")
    for port in ("s_axi_awaddr", "s_axis_tdata", "m_axis_tlast"):
        assert port in core_v and f".{port}({port})" in top_v
    assert "module drnn_axi_top" in top_v and "rst(~aresetn)" in top_v
    assert "-part xc7z020clg400-1" in tcl
    for ip in ("processing_system7", "axi_dma", "-reference drnn_axi_top"):
        assert ip in tcl
    assert "c_m_axis_mm2s_tdata_width {64}" in tcl      # 4 elements x 16 bits
    assert info["element_bits"] == 16 and info["tdata_bits"] == 64
    assert "input  wire [9:0]  s_axi_awaddr" in top_v         # 8-bit word address + 2
    assert "M_AXIS_MM2S] [get_bd_intf_pins drnn/s_axis]" in tcl
    assert "write_bitstream" in tcl
    assert "PACKAGE_PIN R14" in xdc                       # LD0 of the Arty Z7-20
    assert (tmp_path / "build.sh").stat().st_mode & 0o111


def test_build_command_writes_plan(tmp_path):
    import json

    from drnn_cli import drnn

    random_bundle(6, 10, seed=1).save(tmp_path / "m")
    proc = drnn("build", "--board", "arty-z7-20", tmp_path / "m", "--out", tmp_path / "out",
                "--rows", 4, "--scan", 4, "--no-estimate")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["estimate"] is None and "Vivado synthesis" in rep["not_ran"]
    assert (tmp_path / "out" / "build.tcl").is_file()
    assert "Vivado not run" in proc.stdout


@pytest.mark.parametrize("option, says", [
    (["--seed", 2], "--seed applies to the ULX3S only"),
    (["--baud", 115200], "--baud applies to the ULX3S only"),
])
def test_build_command_refuses_ulx3s_options(tmp_path, option, says):
    """nextpnr's seed and the UART's baud rate mean nothing for the Arty's Vivado plan: a
    one-line error, no plan written."""
    from drnn_cli import drnn, one_line_error

    random_bundle(6, 10, seed=1).save(tmp_path / "m")
    msg = one_line_error(drnn("build", "--board", "arty-z7-20", tmp_path / "m", "--out",
                              tmp_path / "out", "--rows", 4, "--scan", 4, "--no-estimate",
                              *option))
    assert says in msg
    assert not (tmp_path / "out" / "build.tcl").exists()


def test_build_command_takes_a_compressed_core(tmp_path):
    """A column-balanced bundle builds its compressed-weight core for a board (auto); its
    on-chip weight check counts the (value, row) pairs, not the dense banks."""
    import json

    from drnn_cli import drnn
    from drnn_hw.balance import prune_bundle
    from drnn_hw.dram import weight_bits

    pruned = prune_bundle(random_bundle(6, 10, seed=1), 4, 0.6)
    pruned.save(tmp_path / "m")
    proc = drnn("build", "--board", "arty-z7-20", tmp_path / "m", "--out", tmp_path / "out",
                "--rows", 4, "--scan", 4, "--no-estimate")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["core"]["weight_format"] == "compressed", rep["core"]
    # H = 10, P = 4: NB = 3 blocks, kept 2 pairs of (8-bit value, 2-bit block) per slice
    comp = CoreShape(rows=4, columns=2, scan=4, weight_format="compressed")
    assert weight_bits(pruned, comp) == 3 * 16 * 4 * 2 * (8 + 2)
    assert weight_bits(pruned, SHAPE) == 3 * 16 * 3 * 4 * 8


def test_vivado_plan_with_weights_in_dram(tmp_path):
    """--weights axi: the wrapper carries the core's AXI4 read master as m_axi_*, the block
    design connects it to the PS7's S_AXI_HP0 at the master's width, the plan holds the DDR
    image, and the Yosys synth_xilinx estimate still runs on it."""
    from drnn_hw.dram import dram_image

    bundle = random_bundle(6, 10, seed=1)
    shape = CoreShape(rows=4, columns=2, scan=4, weights="axi", bus_bits=64)
    info = write_vivado_plan(bundle, shape, tmp_path, freq_mhz=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(info["files"])
    top_v = (tmp_path / "drnn_axi_top.v").read_text()
    core_v = (tmp_path / "drnn_axi.v").read_text()
    tcl = (tmp_path / "build.tcl").read_text()
    for port, decl in (("m_axi_araddr", "output wire [31:0] m_axi_araddr"),
                       ("m_axi_arlen", "output wire [7:0] m_axi_arlen"),
                       ("m_axi_rdata", "input  wire [63:0] m_axi_rdata"),
                       ("m_axi_rready", "output wire [0:0] m_axi_rready")):
        assert decl in top_v and f".{port}({port})" in top_v and port in core_v
    assert "ASSOCIATED_BUSIF s_axi:s_axis:m_axis:m_axi" in top_v
    assert 'Slave "/ps7/S_AXI_HP0" Clk "Auto"}} [get_bd_intf_pins drnn/m_axi]' \
        .replace("}}", "}") in tcl
    assert "CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {64}" in tcl
    assert (tmp_path / "weights.bin").read_bytes() == dram_image(bundle, shape)
    est = yosys_estimate(tmp_path / "drnn_axi.v", "drnn_axi", "xc7z020", log_dir=tmp_path)
    assert est["target"] == "xc7z020" and est["resources"]["LUT"] > 0
    assert est["resources"]["DSP48E1"] > 0


def test_vivado_plan_with_compressed_weights_in_dram(tmp_path):
    """--weights axi --weight-format compressed: the wrapper carries the compressed core's
    read master as the dense one's, and the plan's DDR image is the pair-word image (kept =
    2 pair words a column at γ = 0.6, NB = 3, against the dense image's 3 block words).
    (The wrapper's Verilator benches have no DRAM model: the compressed AXI core itself runs
    in tests/sim/test_sim_compressed_axi.py.)"""
    from dataclasses import replace

    from drnn_hw.dram import dram_image

    bundle, shape = _compressed()
    shape = replace(shape, weights="axi", bus_bits=64)
    info = write_vivado_plan(bundle, shape, tmp_path, freq_mhz=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(info["files"])
    top_v = (tmp_path / "drnn_axi_top.v").read_text()
    assert "input  wire [63:0] m_axi_rdata" in top_v and ".m_axi_araddr(m_axi_araddr)" in top_v
    image = (tmp_path / "weights.bin").read_bytes()
    assert image == dram_image(bundle, shape)
    assert image != dram_image(bundle, replace(shape, weight_format="dense"))
