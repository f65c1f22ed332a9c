"""`drnn report`: Yosys resource estimates without a bitstream, and its input errors."""

import json

import pytest

from drnn_hw.bundle import random_bundle
from drnn_cli import drnn, one_line_error


def test_needs_exactly_one_model(tmp_path):
    assert "MODEL_DIR" in one_line_error(drnn("report", "--target", "xc7z020"))
    random_bundle(3, 4).save(tmp_path / "m")
    assert "not both" in one_line_error(drnn("report", tmp_path / "m", "--target", "xc7z020",
                                             "--random", 3, 4))
    assert "not found" in one_line_error(drnn("report", tmp_path / "nope", "--target",
                                              "ecp5-85k"))
    assert "--weight-bits" in one_line_error(drnn("report", "--target", "xc7z020", "--random",
                                                  3, 4, "--weight-bits", 40))


@pytest.mark.slow
def test_small_core_estimate_xilinx(tmp_path):
    """A small core: 3·P·K = 24 multipliers must all be DSP48E1; BRAM/LUT/FF counted."""
    random_bundle(6, 10, seed=1).save(tmp_path / "m")
    proc = drnn("report", tmp_path / "m", "--target", "xc7z020", "--rows", 4, "--columns", 2,
                "--scan", 4, "--json", tmp_path / "est.json")
    assert proc.returncode == 0, proc.stderr
    est = json.loads((tmp_path / "est.json").read_text())
    r = est["resources"]
    assert r["DSP48E1"] == 24
    assert r["LUT"] > 0 and r["FF"] > 0
    assert "DSP48E1 24/220" in proc.stdout


@pytest.mark.bitstream
def test_deltarnn_preset_on_xc7z100(tmp_path):
    """DeltaRNN scale (P=128, K=2: 768 multipliers; I=39, H=256, 16-bit weights)."""
    proc = drnn("report", "--target", "xc7z100", "--preset", "deltarnn", "--random", 39, 256,
                "--weight-bits", 16, "--json", tmp_path / "est.json")
    assert proc.returncode == 0, proc.stderr
    est = json.loads((tmp_path / "est.json").read_text())
    assert est["resources"]["DSP48E1"] == 768


@pytest.mark.bitstream
def test_small_core_estimate_ecp5(tmp_path):
    random_bundle(6, 10, seed=1).save(tmp_path / "m")
    proc = drnn("report", tmp_path / "m", "--target", "ecp5-85k", "--rows", 4, "--scan", 4,
                "--json", tmp_path / "est.json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "est.json").read_text())["resources"]
    assert r["MULT18X18D"] == 24 and r["LUT4"] > 0 and r["FF"] > 0
