"""Verilator co-simulation of cores with their weights in DRAM (``--weights axi``): the AXI4
read master against a fixed-latency memory (the RTL's cycles equal the cycle model's memory
terms exactly) and against cocotbext-axi's RAM model with random AR back-pressure and random
R gaps (random latency), with random x/h stream stalls too: h and the kept-delta counts
bit-exact with the golden model on every step, one output frame per input frame in order,
cycles never below the model's.

Three small cores, three Verilator builds: a one-layer GRU (K = 2, a 64-bit bus), a
two-layer LSTM (K = 1) and a two-layer GRU on a 32-bit bus with 4-beat bursts, a 4-column
buffer and 2 outstanding bursts (the layers' second narrower than P).
"""

from dataclasses import replace

import numpy as np
import pytest

from drnn_hw.bundle import random_stacked_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run as golden_run
from drnn_hw.numerics import Formats
from drnn_sim.check import assert_matches_golden, sparse_walk
from drnn_sim.cores import core as make_core
from drnn_sim.cosim import simulate

CORES = {
    "gru": lambda: (make_core("odd")[0], replace(make_core("odd")[1], weights="axi")),
    "lstm2": lambda: (random_stacked_bundle(5, [9, 6], seed=8, theta_x=[0.05, 0.0],
                                            theta_h=[0.05, 0.1], weight_scale=2.0,
                                            cell="lstm"),
                      CoreShape(rows=8, columns=1, scan=4, weights="axi")),
    "gru2": lambda: (random_stacked_bundle(7, [13, 3], formats=Formats(acc_bits=24), seed=5,
                                           theta_x=[0.05, 0.1], theta_h=[0.02, 0.05],
                                           weight_scale=2.0),
                     CoreShape(rows=4, columns=2, scan=3, weights="axi", bus_bits=32, burst=4,
                               buffer=4, outstanding=2, step_overlap=False)),
    # With issue #10's step overlap (the default; "gru" and "gru2" are without it): the next
    # step's columns fetched during the AP.
    "gru2-ov": lambda: (CORES["gru2"]()[0], replace(CORES["gru2"]()[1], step_overlap=True)),
}


@pytest.fixture(scope="module", params=sorted(CORES))
def axi_core(request):
    return CORES[request.param]()


def _inputs(bundle, seed, n=2, t=10):
    return sparse_walk(np.random.default_rng(seed), n, t, bundle.input_size,
                       bundle.formats.act)


@pytest.mark.parametrize("latency", [3, 41])
def test_fixed_latency_is_cycle_exact(axi_core, latency):
    bundle, shape = axi_core
    x = _inputs(bundle, latency)
    r = simulate(bundle, shape, x, [10, 7], dram_latency=latency,
                 layer_stats=bundle.num_layers > 1)
    # (A stack's layer registers are read while each output frame waits: the core's prescans.)
    g = golden_run(bundle, x, [10, 7], shape, dram_latency=latency,
                   prescan=r.prescan if bundle.num_layers > 1 else None)
    assert_matches_golden(r, g)
    # The memory shows in the cycles: the same steps on the on-chip core are faster.
    onchip = golden_run(bundle, x, [10, 7], replace(shape, weights="baked"))
    assert (g.cycles[g.nnz_dx + g.nnz_dh > 0] >
            onchip.cycles[g.nnz_dx + g.nnz_dh > 0]).all()
    assert np.array_equal(r.steps[0, :10], np.arange(1, 11))


def test_random_latency_and_back_pressure_are_bit_exact(axi_core):
    """cocotbext-axi's AxiRamRead, AR and R paused at random, x and h streams stalled at
    random: the same h and kept deltas as the golden model, every frame once and in order."""
    bundle, shape = axi_core
    x = _inputs(bundle, 7, n=3, t=9)
    lengths = [9, 4, 9]
    r = simulate(bundle, shape, x, lengths, ar_pause=0.4, r_pause=0.5, x_valid_prob=0.6,
                 h_ready_prob=0.5, stall_seed=3)
    # (Stalls: the model's cycles for the core's prescans.)
    g = golden_run(bundle, x, lengths, shape, dram_latency=1, prescan=r.prescan)
    valid = np.arange(9)[None, :] < np.asarray(lengths)[:, None]
    assert np.array_equal(r.h, g.h)
    assert np.array_equal(r.nnz_dx[valid], g.nnz_dx[valid])
    assert np.array_equal(r.nnz_dh[valid], g.nnz_dh[valid])
    # Steps counted once each, in order; the STEPS register after each sequence.
    assert np.array_equal(r.steps_reg, np.cumsum(lengths))
    for n, length in enumerate(lengths):
        start = sum(lengths[:n])
        assert np.array_equal(r.steps[n, :length], start + np.arange(1, length + 1))
    # A slower memory never makes a step faster than the model's fastest one (latency 1).
    assert (r.cycles[valid] >= g.cycles[valid]).all()
    assert (r.cycles[valid] > g.cycles[valid]).any()


@pytest.mark.large
def test_a_model_too_large_for_on_chip_weights_runs_from_dram():
    """Two layers of 512 GRU units (issue #14's example), I = 12: 3 gates · 8 bits · 16 rows ·
    32 blocks · (524 + 1024) columns = 18.14 Mibit of 8-bit weights, more than three times
    either target's block RAM (ULX3S-85F 3.66, xc7z020 4.92 Mibit: the quantity drnn
    generate's on-chip refusal compares); from DRAM it runs in Verilator, bit- and cycle-exact,
    on the default core (P = 16, K = 2, E = 16). (Its Verilog grew as ΣH² until the core's h
    writes were rewritten; Verilator was then killed at 22 GB building it.)"""
    from drnn_hw.dram import BLOCK_RAM_BITS, weight_bits

    bundle = random_stacked_bundle(12, [512, 512], seed=1, theta_x=0.25, theta_h=0.25)
    shape = CoreShape(weights="axi")
    assert weight_bits(bundle, replace(shape, weights="baked")) > 3 * max(BLOCK_RAM_BITS.values())
    x = _inputs(bundle, 11, n=1, t=3)
    r = simulate(bundle, shape, x, layer_stats=True)
    # (Stalls: the model's cycles for the core's prescans.)
    g = golden_run(bundle, x, shape=shape, prescan=r.prescan)
    assert_matches_golden(r, g)
    assert g.nnz_dx.min() > 0 and g.nnz_dh[0, 1:].min() > 0
