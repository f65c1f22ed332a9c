"""The Verilator build cache (``drnn_sim.runner``): what a cached build is keyed on."""

from pathlib import Path

import cocotb

from drnn_sim import runner

ARGS = list(runner.BUILD_ARGS)


def _source(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "top.v"
    p.write_text(text)
    return p


def test_key_is_stable_for_identical_inputs(tmp_path):
    src = _source(tmp_path, "module top(input a); endmodule\n")
    assert runner.build_key([src], "top", False, ARGS) == runner.build_key([src], "top", False,
                                                                           ARGS)


def test_key_follows_sources_top_waves_and_arguments(tmp_path):
    src = _source(tmp_path, "module top(input a); endmodule\n")
    key = runner.build_key([src], "top", False, ARGS)
    assert runner.build_key([src], "top", True, ARGS) != key
    assert runner.build_key([src], "other", False, ARGS) != key
    assert runner.build_key([src], "top", False, ARGS + ["-DX"]) != key
    src.write_text("module top(input b); endmodule\n")
    assert runner.build_key([src], "top", False, ARGS) != key


def test_key_follows_where_cocotb_lives(tmp_path, monkeypatch):
    """A simulator links cocotb's libraries by path: a build made from another environment
    (a venv since removed) failed to start with return code 127 when it was reused."""
    src = _source(tmp_path, "module top(input a); endmodule\n")
    key = runner.build_key([src], "top", False, ARGS)
    elsewhere = tmp_path / "other-venv" / "site-packages" / "cocotb" / "__init__.py"
    monkeypatch.setattr(cocotb, "__file__", str(elsewhere))
    assert runner.build_key([src], "top", False, ARGS) != key
