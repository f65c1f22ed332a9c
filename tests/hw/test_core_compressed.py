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


def compressed(P, K, E, overlap=False):
    return CoreShape(P, K, E, weight_format="compressed", step_overlap=overlap)


def spatial_expected(bundle, x, lengths, shape, h0=None, prescan=None):
    """The golden run, and per layer the spatial model's cycles of every step computed here
    from its kept-delta masks (not from the golden run's own cycle field): (result, per-layer
    cycles (N, T, L), total (N, T)). ``prescan``: the steps' (the core's PRESCAN_LAST), by
    default frames back to back (the golden model's)."""
    g = golden.run(bundle, x, lengths, shape, h0=h0, prescan=prescan)
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
                                                       layer_kept(ly, shape), bundle.cell,
                                                       prescan=g.prescan[valid] * (l == 0))
        assert np.array_equal(masks[0].sum(-1), g.layer_nnz_dx[..., l])
        assert np.array_equal(masks[1].sum(-1), g.layer_nnz_dh[..., l])
        inp = h         # layer l+1's x: layer l's new h (at the steps that ran)
    total = per_layer.sum(-1) + np.where(valid, (bundle.num_layers - 1) * LAYER_GAP, 0)
    assert np.array_equal(total, g.cycles)      # the golden run's compressed cycles agree
    return g, per_layer, total


def check(bundle, x, shape, lengths=None, h0=None, **options):
    got = run(bundle, x, lengths=lengths, shape=shape, h0=h0, **options)
    # (Stalls make the core's own prescans; without, they are those of frames back to back.)
    stalls = any(k.endswith("_prob") or k == "layer_stats" for k in options)
    want, per_layer, total = spatial_expected(bundle, x, lengths, shape, h0=h0,
                                              prescan=got.prescan if stalls else None)
    np.testing.assert_array_equal(got.prescan, want.prescan, err_msg="prescan")
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
@pytest.mark.parametrize("overlap", [False, True], ids=["", "overlap"])
def test_one_layer_matches_golden_and_spatial_model(cell, I, H, P, K, E, gamma, overlap):
    bundle = prune_bundle(random_bundle(I, H, seed=I * 100 + H, theta_x=0.1, theta_h=0.05,
                                        weight_scale=1.5, cell=cell), P, gamma)
    shape = compressed(P, K, E, overlap)
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
@pytest.mark.parametrize("overlap", [False, True], ids=["", "overlap"])
def test_stalls_thresholds_and_reset(cell, overlap):
    """Random valid/ready stalls, thresholds written over the bus, RESET_STATE between
    sequences (which must restore lane 0's biases and clear the other lanes)."""
    from drnn.engines.amaranth import simulate

    I, H = 6, 7
    bundle = prune_bundle(random_bundle(I, H, seed=11, weight_scale=1.2, cell=cell), 2, 0.5)
    rng = np.random.default_rng(5)
    seqs = [np.clip(np.cumsum(rng.integers(-120, 121, (T, I)), axis=0), -32768, 32767)
            for T in (5, 3, 4)]
    thetas = [(0, 0), (40, 10), (150, 60)]
    shape = compressed(2, 2, 4, overlap)
    results = simulate(bundle, seqs, shape, stall_seed=1, x_valid_prob=0.6, h_ready_prob=0.5,
                       thetas=thetas)
    for seq, th, r in zip(seqs, thetas, results):
        b = bundle.with_thresholds(*th)
        want, _, total = spatial_expected(b, seq[None], None, shape, prescan=r["prescan"][None])
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
@pytest.mark.parametrize("overlap", [False, True], ids=["", "overlap"])
def test_two_layers_per_layer_cycles(cell, overlap):
    """L = 2 on one core: layer 0 pruned (kept 1 of 3), layer 1 narrower than P and dense
    (stored as pairs, kept = NB = 1); with h0 and stalls. Every layer's LAYER_CYCLES equals its
    spatial model at every step."""
    base = random_stacked_bundle(5, [9, 3], theta_x=[0.1, 0.05], theta_h=[0.05, 0.1], seed=3,
                                 weight_scale=1.5, cell=cell)
    bundle = prune_bundle(base, 4, 0.7, layers=[0])
    assert bundle.layers[0].balance.kept == 1 and bundle.layers[1].balance is None
    shape = compressed(4, 2, 4, overlap)
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
    with pytest.raises(ValueError, match="balanced for P = 4, the core has P = 2"):
        DeltaRNNCore(b, CoreShape(2, 2, 2, weight_format="compressed"))
    with pytest.raises(ValueError, match="balanced for P = 4, the core has P = 2"):
        DeltaRNNCore(b, CoreShape(2, 2, 2, weight_format="compressed"), maxima=Maxima(3, 8))
    # The capacity: at least the initial bundle's kept (1), at most NB = ceil(12 / 4) = 3.
    with pytest.raises(ValueError, match=r"--max-kept = 4: must lie in \[the initial bundle's "
                                         r"kept 1, NB = ceil\(--max-hidden / P\) = 3\]"):
        DeltaRNNCore(b, CoreShape(4, 2, 2, weight_format="compressed"),
                     maxima=Maxima(3, 12, kept=4))
    with pytest.raises(ValueError, match="--weight-format must be one of dense, compressed"):
        CoreShape(weight_format="sparse")


# --- run-time weights: a compressed core loaded over the register bus ---------------------------

#: The run-time core's maxima (I ≤ 8, H ≤ 12, L ≤ 2; P = 4: NB_max = 3), and its kept_max from
#: the initial bundle (γ = 0.34: 2 of 3 rows per slice).
RT_MAXIMA = dict(inputs=8, hidden=12, layers=2)
RT_SHAPE = compressed(4, 2, 4)


def runtime_core_bundle(cell):
    return prune_bundle(random_stacked_bundle(8, [12, 12], seed=1, theta_x=0.05, theta_h=0.05,
                                              cell=cell, weight_scale=1.5), 4, 0.34)


def runtime_models(cell):
    """Models loaded into the run-time core: other weights, sizes below the maxima, kept 1
    (the core holds 2): one layer (I = 5, H = 11: not multiples of P or E) and two (I = 6,
    H = 3 < P, then 10)."""
    return {
        "L1": prune_bundle(random_bundle(5, 11, seed=2, theta_x=0.05, theta_h=0.1, cell=cell,
                                         weight_scale=1.5), 4, 0.67),
        "L2": prune_bundle(random_stacked_bundle(6, [3, 10], seed=4, theta_x=[0.1, 0.05],
                                                 theta_h=[0.05, 0.1], cell=cell,
                                                 weight_scale=1.5), 4, 0.67),
    }


def run_loaded(bundle, core_bundle, x, **options):
    from drnn.engines.amaranth import simulate
    from drnn_hw.layer_map import Maxima

    return simulate(bundle, list(x), RT_SHAPE, maxima=Maxima(**RT_MAXIMA),
                    core_bundle=core_bundle, **options)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("model", ["L1", "L2"])
def test_runtime_core_loaded_with_another_pruned_model(cell, model):
    """A compressed run-time core generated from one pruned bundle (kept_max = 2), loaded
    over the bus with another (kept 1, smaller sizes): h bit-exact with the golden model,
    every step's cycles (and every layer's) the spatial model's on the loaded sizes and
    kept, with stalls on the output stream."""
    core_bundle = runtime_core_bundle(cell)
    assert [ly.balance.kept for ly in core_bundle.layers] == [2, 2]
    bundle = runtime_models(cell)[model]
    assert all(ly.balance.kept == 1 for ly in bundle.layers)
    x = drifting(np.random.default_rng(7), 2, 5, bundle.input_size, 150)
    L = bundle.num_layers
    res = run_loaded(bundle, core_bundle, x, stall_seed=4, h_ready_prob=0.5,
                     layer_stats=L > 1)
    want, per_layer, total = spatial_expected(bundle, x, None, RT_SHAPE,
                                              prescan=np.stack([r["prescan"] for r in res]))
    for n in range(2):
        np.testing.assert_array_equal(res[n]["h"], want.h[n], err_msg="h")
        np.testing.assert_array_equal(res[n]["cycles"], total[n], err_msg="cycles")
        np.testing.assert_array_equal(res[n]["nnz_dx"], want.nnz_dx[n])
        np.testing.assert_array_equal(res[n]["nnz_dh"], want.nnz_dh[n])
        if L > 1:
            np.testing.assert_array_equal(res[n]["layer_cycles"], per_layer[n])
        assert res[n]["frames_ok"]
    # The check can tell the loaded kept from the capacity: the spatial model with kept = 2
    # (what a core stuck at kept_max would take) gives other cycles on these inputs.
    assert not np.array_equal(spatial_expected(with_kept_max(bundle), x, None, RT_SHAPE)[2],
                              total)


def with_kept_max(bundle):
    """``bundle`` recorded as keeping 2 of 3 per slice (the core's capacity; layers of one
    block keep 1 either way): the spatial model of a core that ignored the loaded kept."""
    from dataclasses import replace

    from drnn_hw.balance import BalanceUnit

    return replace(bundle, layers=[replace(ly, balance=BalanceUnit.for_layer(0.34,
                                                                            ly.hidden_size, 4))
                                   for ly in bundle.layers])


def test_runtime_core_with_a_wrong_kept_computes_wrong(monkeypatch):
    """Negative control: the same load with every layer's KEPT written as the capacity (2)
    instead of the model's 1 makes the core read its pair words at the wrong stride: h (and
    the cycles) no longer match, so the test above depends on the KEPT register."""
    import drnn_hw.load as load
    from drnn_hw.contract import KeptLayout, Register, decode_word, encode_word

    real = load.load_writes

    def wrong_kept(bundle, info, where="model.json"):
        out = []
        for addr, value in real(bundle, info, where):
            if addr == Register.KEPT:
                f = decode_word(KeptLayout, value)
                value = encode_word(KeptLayout, kept=2, layer=f["layer"])
            out.append((addr, value))
        return out

    monkeypatch.setattr(load, "load_writes", wrong_kept)
    bundle = runtime_models("gru")["L1"]
    x = drifting(np.random.default_rng(7), 1, 5, bundle.input_size, 150)
    res = run_loaded(bundle, runtime_core_bundle("gru"), x)
    want, _, total = spatial_expected(bundle, x, None, RT_SHAPE)
    assert not np.array_equal(res[0]["h"], want.h[0])
    assert not np.array_equal(res[0]["cycles"], total[0])


def test_a_pruned_model_still_loads_into_a_dense_runtime_core():
    from drnn.engines.amaranth import simulate
    from drnn_hw.layer_map import Maxima

    dense = CoreShape(4, 2, 4)
    bundle = runtime_models("gru")["L1"]
    x = drifting(np.random.default_rng(8), 1, 4, bundle.input_size, 150)
    res = simulate(bundle, list(x), dense, maxima=Maxima(**RT_MAXIMA),
                   core_bundle=runtime_core_bundle("gru"))
    g = golden.run(bundle, x, shape=dense, prescan=res[0]["prescan"][None])
    np.testing.assert_array_equal(res[0]["h"], g.h[0])
    np.testing.assert_array_equal(res[0]["cycles"], g.cycles[0])


def _compressed_info(kept_max=2, rows=4, cell="gru"):
    from drnn_hw.layer_map import Maxima
    from drnn_hw.load import CoreInfo
    from drnn_hw.numerics import Formats

    return CoreInfo(cell=cell, rows=rows, columns=2, scan=4, formats=Formats(),
                    maxima=Maxima(**RT_MAXIMA), runtime=True, kept_max=kept_max)


@pytest.mark.parametrize("bundle, message", [
    (random_bundle(5, 11, seed=2),
     "m/model.json: layers[0].balance: none (dense weights), but the core stores "
     "column-balanced weights pruned for P = 4 with at most 2 kept per slice"),
    (prune_bundle(random_bundle(5, 11, seed=2), 4, 0.0),
     "m/model.json: layers[0].balance.kept = 3 exceeds the core's capacity of 2 kept per "
     "slice"),
    (prune_bundle(random_stacked_bundle(5, [3, 10], seed=2), 4, 0.67, layers=[0]),
     "m/model.json: layers[1].balance: none (dense weights)"),
    (prune_bundle(random_bundle(5, 11, seed=2), 2, 0.67),
     "m/model.json: layers[0].balance.rows = 2, but the core's compressed weights are "
     "balanced for P = 4"),
])
def test_runtime_loader_refusals(bundle, message):
    """What a compressed run-time core cannot hold is refused by the host's loader before a
    write, on one line naming the field, the expected and the got."""
    from drnn_hw.errors import UserError
    from drnn_hw.load import LoadRefused, load_writes

    with pytest.raises(LoadRefused) as e:
        load_writes(bundle, _compressed_info(), where="m/model.json")
    assert message in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, UserError)
    # The same bundle goes into a dense run-time core (when its sizes fit).
    load_writes(bundle, _compressed_info(kept_max=0))


def test_runtime_load_writes_kept_and_pair_words():
    """The load of a compressed core: LAYERS, then every layer's KEPT (kept_l, layer), its
    LAYER_H_COLUMN in the issue-slot layout (slot l of kept_max = 2 words per column of
    I_max + H_max = 20 columns: column base 40·l − 2·l), and one LOAD_DATA per pair word
    (P = 4 pairs of 8 + 3 bits, ΣNB = 6 blocks: 44 bits, two parts) per gate, column and kept pair."""
    from drnn_hw.load import load_writes

    bundle = runtime_models("gru")["L2"]
    writes = load_writes(bundle, _compressed_info())
    assert writes[:3] == [(11, 2), (19, 1 | 0 << 24), (19, 1 | 1 << 24)]
    assert (39, 6 * 1) in writes                                  # layer 0: 0 + I_0·kept_0
    assert (47, 40 - 2 + 3 * 1) in writes                         # layer 1
    assert (38, 1 | 2 << 12 | 1 << 22) in writes                  # COUNTS: NB_0 = 1
    weight_words = 3 * ((6 + 3) + (3 + 10))                       # kept 1: a word per column
    bias_words = 4 * (1 + 3)
    n_data = sum(1 for a, _ in writes if a == 17)
    assert n_data == 2 * weight_words + 4 * bias_words            # biases: 4 × 32 bits
