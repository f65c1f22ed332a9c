"""`verilator --lint-only -Wall` of the generated Verilog passes, with every waiver in one
config file (sim/drnn_sim/verilator_waivers.vlt), each justified, none stale, none hiding a
real truncation."""

import re
from dataclasses import replace

import pytest

from drnn_hw.bundle import random_bundle, random_stacked_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_sim.cores import (COMPRESSED_RUNTIME_SHAPE, CORES, RUNTIME_MAXIMA, RUNTIME_SHAPE,
                            compressed_core, compressed_runtime_models, core, runtime_models)
from drnn_sim.cosim import TOP, generate_cached, verilog_sources
from drnn_sim.runner import WAIVERS, lint

def _in_dram(bundle, shape):
    return bundle, replace(shape, weights="axi", bus_bits=32, burst=4)


LINT_CORES = {**{n: (lambda n=n: core(n)) for n in CORES},
              "default": lambda: (random_bundle(12, 64, seed=0), CoreShape()),
              # Three layers time-multiplexed, every layer's h on the output stream.
              "stacked": lambda: (random_stacked_bundle(5, [9, 3, 6], seed=1),
                                  CoreShape(rows=4, columns=2, scan=4, out_layers="all")),
              # The run-time cores (--weights runtime) of the load tests.
              "runtime-gru": lambda: (runtime_models("gru")["A"], RUNTIME_SHAPE, RUNTIME_MAXIMA),
              "runtime-lstm": lambda: (runtime_models("lstm")["A"], RUNTIME_SHAPE,
                                       RUNTIME_MAXIMA),
              # Weights in DRAM: the AXI read master and the column buffer.
              "axi": lambda: (random_stacked_bundle(5, [9, 6], seed=8, cell="lstm"),
                              CoreShape(rows=8, columns=1, scan=4, weights="axi")),
              # Compressed weights (--weight-format compressed): the lane-split MxV.
              "compressed-gru": lambda: compressed_core("gru"),
              "compressed-lstm-l2": lambda: compressed_core("lstm-l2"),
              # Compressed weights loaded at run time (the KEPT register, writable biases).
              "compressed-runtime-lstm": lambda: (compressed_runtime_models("lstm")["A"],
                                                  COMPRESSED_RUNTIME_SHAPE, RUNTIME_MAXIMA),
              # Compressed weights in DRAM: the fetch's pair words into the lane-split MxV.
              "compressed-axi": lambda: _in_dram(*compressed_core("gru-l2"))}


@pytest.fixture(scope="module")
def sources():
    out = {}
    for name, make in LINT_CORES.items():
        bundle, shape, *maxima = make()
        directory, _ = generate_cached(bundle, shape, maxima=maxima[0] if maxima else None)
        out[name] = verilog_sources(directory, TOP)
    return out


def _waived_rules():
    return re.findall(r"^lint_off -rule (\w+)", WAIVERS.read_text(), flags=re.M)


@pytest.mark.parametrize("name", sorted(LINT_CORES))
def test_lint_clean_with_waivers(sources, name):
    p = lint(sources[name], TOP)
    assert p.returncode == 0 and "%Warning" not in p.stderr, p.stderr[-3000:]


def test_every_waiver_is_justified():
    lines = WAIVERS.read_text().splitlines()
    assert lines[0] == "`verilator_config"
    for i, line in enumerate(lines):
        if line.startswith("lint_off"):
            assert lines[i - 1].startswith("//"), f"line {i + 1}: waiver without a comment: {line}"
            assert "-rule" in line, f"line {i + 1}: waiver of every rule: {line}"
    assert _waived_rules(), "no waivers found"


def test_no_stale_waiver(sources):
    """Without the config file every waived rule fires on some generated core."""
    fired = set()
    for srcs in sources.values():
        p = lint(srcs, TOP, waivers=None)
        fired |= set(re.findall(r"%Warning-(\w+)", p.stderr))
    stale = set(_waived_rules()) - fired
    assert not stale, f"waivers no generated core needs: {sorted(stale)}"


def test_waivers_keep_real_truncation(tmp_path):
    """The narrow WIDTHTRUNC waiver (Verilog `!` on a vector) does not hide a real truncation."""
    v = tmp_path / "trunc.v"
    v.write_text("module trunc(input [3:0] a, output [1:0] y, output z);\n"
                 "  assign y = a;\n  assign z = !a;\nendmodule\n")
    p = lint([v], "trunc")
    assert p.returncode != 0
    assert "%Warning-WIDTHTRUNC" in p.stderr and "'a' generates 4 bits" in p.stderr
    assert p.stderr.count("%Warning-WIDTHTRUNC") == 1, "the `!` form should stay waived"
