"""The compressed-weight core (issue #13, ``CoreShape(weight_format="compressed")``) in
Amaranth's simulator against the golden model and the spatial cycle model.

Every step is checked: h (every element, to the last bit), nnz_dx, nnz_dh, and the core's cycle
counter against :func:`drnn_hw.spatial.spatial_step_cycles` with each layer's ``kept`` (the
expected cycles are computed from the golden run's kept-delta masks, independently of the RTL;
for stacked cores also every layer's LAYER_CYCLES). GRU and LSTM, one layer and two; I = 1,
H < P, H not a multiple of P or E, K = 1 and 2, Θ > 0, random stalls. Then the worst-case
collision pattern of docs/cbtd/core_design.md, with negative controls: the same test run on a
core without the t4 → t3 bypass, or with the K lanes sharing one memory, fails.
"""

import math

import numpy as np
import pytest

from drnn_hw import golden
from drnn_hw.balance import prune_bundle
from drnn_hw.bundle import random_bundle, random_stacked_bundle
from drnn_hw.cycle_model import LAYER_GAP, CoreShape
from drnn_hw.spatial import layer_kept, spatial_cycles_for_masks
from drnn.engines.amaranth import run
from drnn_sim.cores import collision_bundle


def compressed(P, K, E):
    return CoreShape(P, K, E, weight_format="compressed")


def spatial_expected(bundle, x, lengths, shape, h0=None):
    """The golden run, and per layer the spatial model's cycles of every step computed here
    from its kept-delta masks (not from the golden run's own cycle field): (result, per-layer
    cycles (N, T, L), total (N, T))."""
    g = golden.run(bundle, x, lengths, shape, h0=h0)
    N, T = g.cycles.shape
    valid = np.arange(T)[None, :] < np.asarray(g.lengths)[:, None]
    per_layer = np.zeros((N, T, bundle.num_layers), np.int64)
    inp = np.asarray(x)
    for l, ly in enumerate(bundle.layers):
        # Replay the encoder's rule on the golden h (references updated where kept).
        h = g.layer_h[l]
        prev = np.concatenate([np.zeros_like(h[:, :1]), h[:, :-1]], axis=1)
        if h0 is not None:
            prev[:, 0] = np.broadcast_to(h0[l], (N, ly.hidden_size))
        masks = []
        for seq, theta in ((inp, ly.theta_x), (prev, ly.theta_h)):
            ref = np.zeros((N, seq.shape[2]), np.int64)
            mk = np.zeros(seq.shape, bool)
            for t in range(T):
                d = seq[:, t] - ref
                keep = (d != 0) & (np.abs(d) >= theta) & valid[:, t:t + 1]
                ref = np.where(keep, seq[:, t], ref)
                mk[:, t] = keep
            masks.append(mk)
        per_layer[valid, l] = spatial_cycles_for_masks(masks[0][valid], masks[1][valid], shape,
                                                       layer_kept(ly, shape), bundle.cell)
        assert np.array_equal(masks[0].sum(-1), g.layer_nnz_dx[..., l])
        assert np.array_equal(masks[1].sum(-1), g.layer_nnz_dh[..., l])
        inp = h         # layer l+1's x: layer l's new h (at the steps that ran)
    total = per_layer.sum(-1) + np.where(valid, (bundle.num_layers - 1) * LAYER_GAP, 0)
    assert np.array_equal(total, g.cycles)      # the golden run's compressed cycles agree
    return g, per_layer, total


def check(bundle, x, shape, lengths=None, h0=None, **options):
    got = run(bundle, x, lengths=lengths, shape=shape, h0=h0, **options)
    want, per_layer, total = spatial_expected(bundle, x, lengths, shape, h0=h0)
    np.testing.assert_array_equal(got.nnz_dx, want.nnz_dx, err_msg="nnz_dx")
    np.testing.assert_array_equal(got.nnz_dh, want.nnz_dh, err_msg="nnz_dh")
    np.testing.assert_array_equal(got.cycles, total, err_msg="cycles")
    np.testing.assert_array_equal(got.h, want.h, err_msg="h")
    if got.layer_cycles is not None:
        np.testing.assert_array_equal(got.layer_cycles, per_layer, err_msg="layer cycles")
    return got, want


def drifting(rng, n, t, i, step=90):
    return np.clip(np.cumsum(rng.integers(-step, step + 1, (n, t, i)), axis=1), -32768, 32767)


# (I, H, P, K, E, γ): H < P (NB = 1, kept = 1), I = 1, sizes not multiples of P or E,
# K = 1 and 2, kept from 1 to NB - 1.
SHAPES = [
    (1, 3, 4, 2, 2, 0.5),
    (5, 9, 4, 2, 3, 0.5),
    (1, 13, 4, 2, 3, 0.75),
    (6, 11, 4, 1, 4, 0.7),
]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("I,H,P,K,E,gamma", SHAPES)
def test_one_layer_matches_golden_and_spatial_model(cell, I, H, P, K, E, gamma):
    bundle = prune_bundle(random_bundle(I, H, seed=I * 100 + H, theta_x=0.1, theta_h=0.05,
                                        weight_scale=1.5, cell=cell), P, gamma)
    shape = compressed(P, K, E)
    rng = np.random.default_rng(H)
    x = drifting(rng, 2, 6, I)
    _, want = check(bundle, x, shape, lengths=[6, 4])
    # The run means something: deltas were kept, Θ dropped some, and (NB > kept) the
    # compressed schedule differs from the dense one.
    assert want.nnz_dx.sum() > 0 and want.nnz_dh.sum() > 0
    assert want.nnz_dx[0, 1:].min() < I or want.nnz_dh[0, 2:].min() < H
    nb = math.ceil(H / P)
    if layer_kept(bundle.layers[0], shape) < nb:
        dense = golden.run(bundle, x, [6, 4], CoreShape(P, K, E)).cycles
        assert not np.array_equal(dense, want.cycles)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_stalls_thresholds_and_reset(cell):
    """Random valid/ready stalls, thresholds written over the bus, RESET_STATE between
    sequences (which must restore lane 0's biases and clear the other lanes)."""
    from drnn.engines.amaranth import simulate

    I, H = 6, 7
    bundle = prune_bundle(random_bundle(I, H, seed=11, weight_scale=1.2, cell=cell), 2, 0.5)
    rng = np.random.default_rng(5)
    seqs = [np.clip(np.cumsum(rng.integers(-120, 121, (T, I)), axis=0), -32768, 32767)
            for T in (5, 3, 4)]
    thetas = [(0, 0), (40, 10), (150, 60)]
    shape = compressed(2, 2, 4)
    results = simulate(bundle, seqs, shape, stall_seed=1, x_valid_prob=0.6, h_ready_prob=0.5,
                       thetas=thetas)
    for seq, th, r in zip(seqs, thetas, results):
        b = bundle.with_thresholds(*th)
        want, _, total = spatial_expected(b, seq[None], None, shape)
        np.testing.assert_array_equal(r["h"], want.h[0])
        np.testing.assert_array_equal(r["nnz_dx"], want.nnz_dx[0])
        np.testing.assert_array_equal(r["nnz_dh"], want.nnz_dh[0])
        np.testing.assert_array_equal(r["cycles"], total[0])
        assert r["frames_ok"]


def test_saturation_with_lanes():
    """Full-scale inputs, large weights, a narrow accumulator: the lane sums leave the
    accumulator format, so the end-of-step saturation overrides lanes (lane 0 to max/min,
    lane 1 to 0), over several steps, also on rows a lane does not touch again."""
    from drnn_hw.numerics import Formats

    fmts = Formats(acc_bits=24)
    bundle = prune_bundle(random_bundle(4, 6, formats=fmts, seed=3, weight_scale=40.0), 2, 0.5)
    a = fmts.act
    x = np.array([[[a.max, a.min, a.max, a.min], [a.min, a.max, a.min, a.max],
                   [a.max, a.max, a.min, a.min], [0, a.min, a.max, 0],
                   [a.min, a.min, a.min, a.min], [a.max, a.max, a.max, a.max]]])
    check(bundle, x, compressed(2, 2, 3))
    w = golden._stacked_weights(bundle)
    m0 = bundle.bias.reshape(-1) + x[0, 0] @ w[:4]
    assert np.abs(m0).max() > fmts.acc.max      # the test does saturate


@pytest.mark.parametrize("K", [1, 2])
def test_saturated_rows_come_back(K):
    """A row saturated at one step's end and brought back into the format by later deltas:
    the next accumulation must start from max/min (lane 0) and 0 (lane 1), not from what the
    memories hold. The inputs are chosen so that it matters: the same model with a wide
    accumulator (no saturation ever) gives another h. (K = 1 puts every column in lane 0, so
    lane 0's start from max/min is exercised; with K = 2 lane 1's start from 0. Each was
    checked to fail when its override is removed from the accumulation.)"""
    from drnn_hw.numerics import Formats

    def model(acc_bits):
        return prune_bundle(random_bundle(4, 6, formats=Formats(acc_bits=acc_bits), seed=3,
                                          weight_scale=10.0), 2, 0.5)

    a = Formats().act
    x = np.random.default_rng(0).choice([a.max, a.min, 0, a.max // 2, a.min // 2], (1, 6, 4))
    check(model(24), x, compressed(2, K, 3))
    assert not np.array_equal(golden.run(model(24), x).h, golden.run(model(40), x).h)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_two_layers_per_layer_cycles(cell):
    """L = 2 on one core: layer 0 pruned (kept 1 of 3), layer 1 narrower than P and dense
    (stored as pairs, kept = NB = 1); with h0 and stalls. Every layer's LAYER_CYCLES equals its
    spatial model at every step."""
    base = random_stacked_bundle(5, [9, 3], theta_x=[0.1, 0.05], theta_h=[0.05, 0.1], seed=3,
                                 weight_scale=1.5, cell=cell)
    bundle = prune_bundle(base, 4, 0.7, layers=[0])
    assert bundle.layers[0].balance.kept == 1 and bundle.layers[1].balance is None
    shape = compressed(4, 2, 4)
    rng = np.random.default_rng(2)
    x = drifting(rng, 2, 5, 5, 150)
    a = bundle.formats.act
    h0 = [rng.integers(a.min // 4, a.max // 4, (2, ly.hidden_size)) for ly in bundle.layers]
    got, _ = check(bundle, x, shape, lengths=[5, 3], h0=h0, stall_seed=3, x_valid_prob=0.7,
                   h_ready_prob=0.6, layer_stats=True)
    assert got.layer_cycles is not None


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_two_pruned_layers(cell):
    """L = 2, both layers pruned, different kept (2 of 3, then 1 of 2), I = 1."""
    base = random_stacked_bundle(1, [11, 6], theta_x=[0.05, 0.05], theta_h=[0.05, 0.0],
                                 seed=8, weight_scale=1.5, cell=cell)
    bundle = prune_bundle(base, 4, 0.5)
    assert [ly.balance.kept for ly in bundle.layers] == [2, 1]
    rng = np.random.default_rng(9)
    got, _ = check(bundle, drifting(rng, 1, 6, 1, 200), compressed(4, 2, 3), layer_stats=True)
    assert got.layer_cycles is not None


# --- the worst case of the design note ---------------------------------------------------------

def collision_inputs(I, T, seed=1):
    """Every x element changes at every step (every Δx kept at Θ = 0)."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.integers(50, 400, (1, T, I)) * rng.choice([-1, 1], (1, T, I)), axis=1)
    x = np.clip(x, -30000, 30000)
    assert (np.diff(x, axis=1) != 0).all() and (x[:, 0] != 0).all()
    return x


COLLISION = dict(I=6, H=8, P=4, K=2, E=3)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_worst_case_collision(cell):
    """All kept pairs of every slice name row p of block 0, kept = 1, every Δx kept: the two
    lanes of multiplier p accumulate into row p in the same cycle (the lane split), and every
    group into the same row as the group before it in the next cycle (the bypass)."""
    c = COLLISION
    bundle = collision_bundle(c["I"], c["H"], c["P"], cell)
    x = collision_inputs(c["I"], 6)
    _, want = check(bundle, x, compressed(c["P"], c["K"], c["E"]))
    assert (want.nnz_dx == c["I"]).all()        # every Δx kept: groups back to back


@pytest.mark.parametrize("fault", ["no_bypass", "shared"])
def test_worst_case_collision_negative_control(fault):
    """The same test on a core with the fault the design rules out fails: without the t4 → t3
    bypass a group reads row p before the previous group's write lands; with one memory for
    both lanes one of the two same-cycle updates of row p is lost."""
    c = COLLISION
    bundle = collision_bundle(c["I"], c["H"], c["P"])
    x = collision_inputs(c["I"], 6)
    shape = compressed(c["P"], c["K"], c["E"])
    got = run(bundle, x, shape=shape, core_options={"_fault": fault})
    want, _, total = spatial_expected(bundle, x, None, shape)
    # The fault leaves the schedule alone (same cycles, as the model's), the numbers not.
    np.testing.assert_array_equal(got.cycles[0, 0], total[0, 0])
    assert not np.array_equal(got.h[0, 0], want.h[0, 0])


def test_refusals():
    from drnn_hw.core import DeltaRNNCore
    from drnn_hw.layer_map import Maxima

    b = prune_bundle(random_bundle(3, 8, seed=1), 4, 0.5)
    # Compressed weights in DRAM are built (tests/sim/test_sim_compressed_axi.py runs them):
    # the fetch takes the compressed channels' slots.
    axi = DeltaRNNCore(b, CoreShape(4, 2, 2, weights="axi", weight_format="compressed"))
    axi._MustUse__silence = True        # built to check the constructor only
    assert axi.kept == [1] and "m_axi" in axi.signature.members
    with pytest.raises(ValueError, match="--weight-format compressed with --weights runtime"):
        DeltaRNNCore(b, CoreShape(4, 2, 2, weight_format="compressed"), maxima=Maxima(3, 8))
    with pytest.raises(ValueError, match="--weight-format compressed with --weights runtime"):
        DeltaRNNCore(b, CoreShape(4, 2, 2, weights="runtime", weight_format="compressed"))
    with pytest.raises(ValueError, match="balanced for P = 4, the core has P = 2"):
        DeltaRNNCore(b, CoreShape(2, 2, 2, weight_format="compressed"))
    with pytest.raises(ValueError, match="--weight-format must be one of dense, compressed"):
        CoreShape(weight_format="sparse")
