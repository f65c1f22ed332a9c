"""Verilator co-simulation of the compressed-weight core (issue #13, ``--weight-format
compressed``) against the golden model and the spatial cycle model: h, nnz and the measured
cycles of every step (and every layer's LAYER_CYCLES of a stacked core, read over the bus at
each step), bit- and cycle-exact. GRU and LSTM, one layer and two (drnn_sim.cores.COMPRESSED:
I = 1, H < P, sizes not multiples of P or E, K = 1 and 2, Θ > 0), random stalls, ragged
sequences, thresholds changed at run time, h0; the worst-case collision pattern of
docs/cbtd/core_design.md."""

import numpy as np
import pytest

from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run as golden_run
from drnn_hw.spatial import layer_kept, spatial_step_cycles
from drnn_sim.check import assert_matches_golden, sparse_walk
from drnn_sim.cores import COMPRESSED, compressed_core
from drnn_sim.cosim import simulate

MODELS = ["gru", "gru-l2", "lstm", "lstm-l2"]


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    return compressed_core(request.param)


def test_ragged_sequences_stalls_and_h0(model):
    bundle, shape = model
    rng = np.random.default_rng(30)
    x = sparse_walk(rng, 3, 12, bundle.input_size, bundle.formats.act)
    lengths = [12, 5, 9]
    a = bundle.formats.act
    h0 = [rng.integers(a.min // 2, a.max // 2, (3, ly.hidden_size)) for ly in bundle.layers]
    r = simulate(bundle, shape, x, lengths, h0=h0, layer_stats=bundle.num_layers > 1,
                 x_valid_prob=0.6, h_ready_prob=0.5, stall_seed=7)
    # (Stalls: the model's cycles for the core's prescans.)
    g = golden_run(bundle, x, lengths, shape, h0=h0, prescan=r.prescan)
    assert_matches_golden(r, g)
    if bundle.num_layers > 1:
        assert r.layer_cycles is not None
    # The run means something: the compressed schedule is not the dense one here.
    dense = golden_run(bundle, x, lengths, CoreShape(shape.rows, shape.columns, shape.scan),
                       h0=h0)
    assert not np.array_equal(dense.cycles, g.cycles)
    assert g.nnz_dx.sum() > 0 and g.nnz_dh.sum() > 0


def test_thresholds_at_run_time_and_full_scale_inputs(model):
    """Every layer's thresholds written over the bus per sequence (0 in one: every changed
    value kept), inputs at full scale (saturating memories in the 24-bit model)."""
    bundle, shape = model
    rng = np.random.default_rng(31)
    a = bundle.formats.act
    x = rng.choice([a.max, a.min, 0, a.max // 3], (2, 8, bundle.input_size))
    L = bundle.num_layers
    thetas = np.array([[[0, 0]] * L, [[300, 200]] * L])
    r = simulate(bundle, shape, x, layer_thetas=thetas, layer_stats=L > 1)
    for n in range(2):
        b = bundle.with_layer_thresholds([tuple(t) for t in thetas[n]])
        g = golden_run(b, x[n:n + 1], shape=shape,
                       prescan=r.prescan[n:n + 1] if L > 1 else None)   # (layer registers read)
        assert np.array_equal(r.h[n], g.h[0]) and np.array_equal(r.cycles[n], g.cycles[0])
        assert np.array_equal(r.nnz_dh[n], g.nnz_dh[0])
        if L > 1:
            assert np.array_equal(r.layer_cycles[n], g.layer_cycles[0])


def test_worst_case_collision():
    """All kept pairs of every slice name the same row, kept = 1, every Δx kept: the lanes
    of a multiplier collide on a row in the same cycle and consecutive groups in consecutive
    cycles. Cycles checked against spatial_step_cycles directly."""
    bundle, shape = compressed_core("collision")
    rng = np.random.default_rng(1)
    I = bundle.input_size
    x = np.clip(np.cumsum(rng.integers(50, 400, (2, 10, I)) * rng.choice([-1, 1], (2, 10, I)),
                          axis=1), -30000, 30000)
    assert (np.diff(x, axis=1) != 0).all() and (x[:, 0] != 0).all()
    r = simulate(bundle, shape, x, x_valid_prob=0.8, h_ready_prob=0.7, stall_seed=2)
    # (Stalls: the model's cycles for the core's prescans.)
    g = golden_run(bundle, x, shape=shape, prescan=r.prescan)
    assert_matches_golden(r, g)
    assert (g.nnz_dx == I).all()
    kept = layer_kept(bundle.layers[0], shape)
    assert kept == 1
    ly = bundle.layers[0]
    for n in range(2):
        xr, hr, h = np.zeros(I, np.int64), np.zeros(ly.hidden_size, np.int64), \
            np.zeros(ly.hidden_size, np.int64)
        for t in range(10):
            kx, kh = x[n, t] != xr, h != hr
            xr, hr = np.where(kx, x[n, t], xr), np.where(kh, h, hr)
            # (for the core's own prescan: the step overlap, with stalls)
            assert r.cycles[n, t] == spatial_step_cycles(kx, kh, shape, kept,
                                                         prescan=r.prescan[n, t])
            h = g.h[n, t]


def test_cores_are_compressed():
    for name in COMPRESSED:
        bundle, shape = compressed_core(name)
        assert shape.weight_format == "compressed"
        assert all(ly.balance is not None for ly in bundle.layers)


# --- run-time weights ---------------------------------------------------------------------------

def test_runtime_core_loaded_in_verilator():
    """A compressed run-time core (``--weights runtime --weight-format compressed``, maxima
    I ≤ 8, H ≤ 12, L ≤ 2, kept_max 2 from model A) Verilated once; models B (one layer, kept
    1), C (two layers, kept 1) and B again loaded into it one after the other over the
    register bus, as a host does: h, nnz, every step's measured cycles and every layer's
    counters equal the golden model's (the spatial model on the loaded sizes and kept), with
    stalls on both streams. Negative control: B's golden cycles with the capacity's kept
    (2) differ, so a core running at kept_max would fail."""
    from drnn_hw.balance import BalanceUnit
    from drnn_sim.cores import COMPRESSED_RUNTIME_SHAPE as SHAPE
    from drnn_sim.cores import RUNTIME_MAXIMA, compressed_runtime_models
    from drnn_sim.cosim import generate_cached

    models = compressed_runtime_models("gru")
    core_dir, manifest = generate_cached(models["A"], SHAPE, maxima=RUNTIME_MAXIMA)
    assert manifest["weights"] == "runtime" and manifest["weight_format"] == "compressed"
    assert manifest["maxima"]["kept"] == 2
    for k, name in enumerate(("B", "C", "B")):
        bundle = models[name]
        rng = np.random.default_rng(40 + k)
        x = sparse_walk(rng, 2, 8, bundle.input_size, bundle.formats.act)
        r = simulate(bundle, SHAPE, x, [8, 5], core_dir=core_dir, layer_stats=True,
                     x_valid_prob=0.7, h_ready_prob=0.6, stall_seed=k)
        # (Stalls: the model's cycles for the core's prescans.)
        g = golden_run(bundle, x, [8, 5], SHAPE, prescan=r.prescan)
        assert_matches_golden(r, g)
        assert r.perf["load_writes"] > 0
        if name == "B":
            from dataclasses import replace
            wide = replace(bundle, layers=[replace(ly, balance=BalanceUnit.for_layer(
                0.34, ly.hidden_size, 4)) for ly in bundle.layers])
            assert not np.array_equal(golden_run(wide, x, [8, 5], SHAPE).cycles, g.cycles)
