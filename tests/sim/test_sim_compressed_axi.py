"""Verilator co-simulation of the compressed-weight core with its weights in DRAM
(``--weight-format compressed --weights axi``): the pair-word image of :mod:`drnn_hw.dram`
read over the AXI4 master, one kept column = ``kept_l`` pair words. Against a fixed-latency
memory (fast and slow), with and without stalls on both streams, the RTL is bit-exact with the
golden model and cycle-exact with its model (the spatial schedule with the memory terms on
kept-word columns, :func:`drnn_hw.spatial.spatial_step_cycles` with ``fetch``) on every step
and, for two layers, in every layer's LAYER_CYCLES; against cocotbext-axi's RAM with random AR
and R pauses it stays bit-exact and never beats the model at latency 1.

Four small cores, four Verilator builds (drnn_sim.cores.COMPRESSED's sizes): GRU and LSTM,
one layer and two, K = 1 and 2, sizes not multiples of P or E, H < P in a layer; the two-layer
GRU on a 32-bit bus with 4-beat bursts, 2 bursts in flight and a 4-column buffer.
"""

from dataclasses import replace

import numpy as np
import pytest

from drnn_hw.golden import run as golden_run
from drnn_sim.check import assert_matches_golden, sparse_walk
from drnn_sim.cores import compressed_core
from drnn_sim.cosim import simulate

#: (compressed core of drnn_sim.cores.COMPRESSED, its AXI parameters)
CORES = {
    "gru": ("gru", {}),
    "gru-l2": ("gru-l2", {"bus_bits": 32, "burst": 4, "outstanding": 2, "buffer": 4,
                          "step_overlap": False}),
    "lstm": ("lstm", {"burst": 2}),
    "lstm-l2": ("lstm-l2", {"outstanding": 2}),
    # With issue #10's step overlap (the default, which the others have too; "gru-l2" is
    # without it).
    "gru-l2-ov": ("gru-l2", {"bus_bits": 32, "burst": 4, "outstanding": 2, "buffer": 4,
                             "step_overlap": True}),
}


@pytest.fixture(scope="module", params=sorted(CORES))
def core(request):
    name, axi = CORES[request.param]
    bundle, shape = compressed_core(name)
    return bundle, replace(shape, weights="axi", **axi)


def _inputs(bundle, seed, n=2, t=10):
    return sparse_walk(np.random.default_rng(seed), n, t, bundle.input_size,
                       bundle.formats.act)


def test_fast_memory_is_cycle_exact(core):
    bundle, shape = core
    x = _inputs(bundle, 3)
    lengths = [10, 7]
    r = simulate(bundle, shape, x, lengths, dram_latency=3, layer_stats=bundle.num_layers > 1)
    g = golden_run(bundle, x, lengths, shape, dram_latency=3,
                   prescan=r.prescan if bundle.num_layers > 1 else None)   # (layer registers)
    assert_matches_golden(r, g)
    if bundle.num_layers > 1:
        assert r.layer_cycles is not None
    assert g.nnz_dx.sum() > 0 and g.nnz_dh.sum() > 0
    # The run tells the schedules apart: the memory shows against the on-chip compressed
    # core, and the kept-word columns against the dense AXI core's NB-word ones.
    kept = g.nnz_dx + g.nnz_dh > 0
    onchip = golden_run(bundle, x, lengths, replace(shape, weights="baked"))
    assert (g.cycles[kept] > onchip.cycles[kept]).all()
    dense = golden_run(bundle, x, lengths, replace(shape, weight_format="dense"),
                       dram_latency=3)
    assert not np.array_equal(g.cycles, dense.cycles)


def test_slow_memory_and_back_pressure_are_cycle_exact(core):
    """Latency 41 (more than the bursts in flight cover), x and h streams stalled at random
    (the output waits are not counted), ragged sequences and an initial state h0."""
    bundle, shape = core
    rng = np.random.default_rng(41)
    x = _inputs(bundle, 41, n=3, t=8)
    lengths = [8, 3, 6]
    a = bundle.formats.act
    h0 = [rng.integers(a.min // 2, a.max // 2, (3, ly.hidden_size)) for ly in bundle.layers]
    r = simulate(bundle, shape, x, lengths, dram_latency=41, h0=h0,
                 layer_stats=bundle.num_layers > 1, x_valid_prob=0.6, h_ready_prob=0.4,
                 stall_seed=5)
    # (Stalls: the model's cycles for the core's prescans.)
    g = golden_run(bundle, x, lengths, shape, dram_latency=41, h0=h0, prescan=r.prescan)
    assert_matches_golden(r, g)
    fast = golden_run(bundle, x, lengths, shape, dram_latency=3, h0=h0)
    valid = np.arange(8)[None, :] < np.asarray(lengths)[:, None]
    assert (g.cycles[valid] >= fast.cycles[valid]).all() and g.cycles.sum() > fast.cycles.sum()


def test_random_memory_is_bit_exact(core):
    """cocotbext-axi's AxiRamRead, AR and R paused at random, both streams stalled: the same h
    and kept deltas, every frame once and in order, never faster than the model at latency 1."""
    bundle, shape = core
    x = _inputs(bundle, 7, n=2, t=7)
    lengths = [7, 4]
    r = simulate(bundle, shape, x, lengths, ar_pause=0.4, r_pause=0.5, x_valid_prob=0.7,
                 h_ready_prob=0.5, stall_seed=3)
    # (Stalls: the model's cycles for the core's prescans.)
    g = golden_run(bundle, x, lengths, shape, dram_latency=1, prescan=r.prescan)
    valid = np.arange(7)[None, :] < np.asarray(lengths)[:, None]
    assert np.array_equal(r.h, g.h)
    assert np.array_equal(r.nnz_dx[valid], g.nnz_dx[valid])
    assert np.array_equal(r.nnz_dh[valid], g.nnz_dh[valid])
    assert np.array_equal(r.steps_reg, np.cumsum(lengths))
    assert (r.cycles[valid] >= g.cycles[valid]).all()
    assert (r.cycles[valid] > g.cycles[valid]).any()
