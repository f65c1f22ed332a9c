"""`drnn build/flash` for the ULX3S-85F: the real bitstream build (marker `bitstream`, run by
`make bitstream`) and the error paths of `flash` (always run)."""

import json

import pytest

from drnn_hw.bundle import random_bundle
from drnn_cli import drnn, one_line_error


def test_flash_without_bitstream(tmp_path):
    msg = one_line_error(drnn("flash", "--board", "ulx3s-85f", tmp_path))
    assert "drnn_ulx3s.bit" in msg


def test_flash_without_board(tmp_path):
    (tmp_path / "drnn_ulx3s.bit").write_bytes(b"\xff" * 64)
    msg = one_line_error(drnn("flash", "--board", "ulx3s-85f", tmp_path))
    assert "openFPGALoader" in msg


def test_run_without_port(tmp_path):
    import numpy as np

    random_bundle(3, 4).save(tmp_path / "model")
    np.save(tmp_path / "x.npy", np.zeros((2, 3)))
    msg = one_line_error(drnn("run", tmp_path / "model", "--board", "ulx3s-85f", "--port",
                              tmp_path / "no-such-tty", "--input", tmp_path / "x.npy",
                              "--output", tmp_path / "h.npy"))
    assert "no-such-tty" in msg


@pytest.mark.bitstream
def test_ulx3s_bitstream_default_core(tmp_path):
    """The default core (P=16 K=2 E=16, 96 multipliers) on a 12-input, 64-unit model."""
    random_bundle(12, 64, seed=0).save(tmp_path / "model")
    proc = drnn("build", "--board", "ulx3s-85f", tmp_path / "model", "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    bit = out / "drnn_ulx3s.bit"
    assert bit.is_file() and bit.stat().st_size > 100_000
    rep = json.loads((out / "report.json").read_text())
    assert rep["synth_cells"]["MULT18X18D"] == 96          # one DSP per core multiplier
    assert rep["synth_cells"]["EHXPLLL"] == 1
    assert rep["utilization"]["MULT18X18D"]["used"] == 96
    # The default clock (drnn_boards.ulx3s.DEFAULT_FREQ_MHZ) is one the default core meets:
    # at the first attempt, not after `drnn build`'s second placement or its rebuild below
    # a missed default (either records ``first_attempt``).
    from drnn_boards.ulx3s import DEFAULT_FREQ_MHZ
    assert rep["clock"]["timing_met"], rep["clock"]
    assert "first_attempt" not in rep["clock"] and rep["clock"]["target_mhz"] == \
        DEFAULT_FREQ_MHZ, rep["clock"]
    assert rep["critical_path"]["delay_ns"] > 0
    text = (out / "report.txt").read_text()
    assert "Fmax" in text and "critical path" in text
