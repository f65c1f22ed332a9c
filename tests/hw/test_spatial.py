"""The spatial cycle model (the compressed-weight core's) against a cycle-by-cycle
simulation of the schedule its docstring describes, and its relation to the dense model."""

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from drnn_hw.balance import BalanceUnit, balanced_mask
from drnn_hw.bundle import Layer, ModelBundle, random_bundle, random_stacked_bundle
from drnn_hw.cycle_model import AP_LATENCY, MXV_WRITE, SCAN_LATENCY, CoreShape, step_cycles
from drnn_hw.golden import run
from drnn_hw.spatial import (bundle_spatial_cycles, delta_masks, layer_kept,
                             spatial_cycles_for_masks, spatial_step_cycles, weight_memory_bits)


def simulate(dx, dh, shape, kept):
    """Cycle by cycle: ≤ K deltas per cycle leave each window, groups of K go to an in-order
    MxV that each hold it ``kept`` cycles; the AP starts once the scan is done, one cycle
    before its first read, which may come in the cycle of the last slot's write (MXV_WRITE
    cycles after it; the read port is transparent to the write)."""
    E, K = shape.scan, shape.columns
    nb = math.ceil(len(dh) / shape.rows)
    windows = [list(dx[i:i + E]) for i in range(0, len(dx), E)] + \
              [list(dh[i:i + E]) for i in range(0, len(dh), E)]
    pending = [sum(w) for w in windows]
    w, visible, emitted, scan_done_at = 0, 0, 0, None
    busy_until, last_slot = 0, None
    cycle = 0
    while True:
        visible += emitted
        emitted = 0
        scan_done = scan_done_at is not None and cycle >= scan_done_at
        if cycle >= busy_until and (visible >= K or (scan_done and visible > 0)):
            visible -= min(K, visible)
            busy_until = cycle + kept
            last_slot = cycle + kept - 1
        if w < len(windows):
            n = min(K, pending[w])
            pending[w] -= n
            emitted = n
            if pending[w] == 0:
                w += 1
                if w == len(windows):
                    scan_done_at = cycle + 1
        cycle += 1
        if scan_done_at is not None and cycle >= scan_done_at and visible == 0 \
                and emitted == 0 and cycle >= busy_until:
            break
    S = scan_done_at
    if last_slot is None:
        start = S
    else:
        # first AP read at start + 1 no earlier than the write at last_slot + MXV_WRITE
        start = max(S, last_slot + MXV_WRITE - 1)
    return SCAN_LATENCY + start + nb + AP_LATENCY


masks = st.integers(1, 20).flatmap(
    lambda i: st.integers(1, 40).flatmap(
        lambda h: st.tuples(st.lists(st.booleans(), min_size=i, max_size=i),
                            st.lists(st.booleans(), min_size=h, max_size=h))))
shapes = st.builds(CoreShape, rows=st.integers(1, 20), columns=st.sampled_from([1, 2]),
                   scan=st.integers(1, 17))


@settings(max_examples=300, deadline=None)
@given(masks, shapes, st.data())
def test_closed_form_matches_cycle_by_cycle_schedule(m, shape, data):
    dx, dh = m
    nb = math.ceil(len(dh) / shape.rows)
    kept = data.draw(st.integers(1, nb))
    assert spatial_step_cycles(dx, dh, shape, kept) == simulate(dx, dh, shape, kept)


@settings(max_examples=200, deadline=None)
@given(masks, shapes)
def test_one_block_is_the_dense_model(m, shape):
    dx, dh = m
    shape = CoreShape(rows=max(shape.rows, len(dh)), columns=shape.columns, scan=shape.scan)
    assert spatial_step_cycles(dx, dh, shape, 1) == step_cycles(dx, dh, shape)


@settings(max_examples=200, deadline=None)
@given(masks, shapes, st.data())
def test_fewer_pairs_never_cost_more(m, shape, data):
    dx, dh = m
    nb = math.ceil(len(dh) / shape.rows)
    kept = data.draw(st.integers(1, nb))
    c = [spatial_step_cycles(dx, dh, shape, k) for k in range(1, nb + 1)]
    assert c == sorted(c)
    # keeping every row costs the dense model plus at most the longer drain
    drain = (MXV_WRITE - 2) - max(MXV_WRITE - 1 - nb, 0)
    dense = step_cycles(dx, dh, shape)
    assert dense <= c[-1] <= dense + drain
    assert spatial_step_cycles(dx, dh, shape, kept) <= c[-1]


def test_hand_worked_example():
    # default core, H = 64 (NB = 4), I = 12; all 12 Δx and no Δh kept, kept = 1 per slice.
    shape = CoreShape()
    dx, dh = np.ones(12, bool), np.zeros(64, bool)
    # scan: window 0 (12 Δx) 6 cycles, 4 h windows 1 cycle each: S = 10. Groups of 2 leave at
    # cycles 1..6, each MxV group 1 cycle: D = 7; A0 = max(10, 7 + 3) = 10.
    assert spatial_step_cycles(dx, dh, shape, 1) == SCAN_LATENCY + 10 + 4 + AP_LATENCY
    # the dense core: D = 1 + 6·4 = 25, A0 = 25 (drain 0)
    assert step_cycles(dx, dh, shape) == SCAN_LATENCY + 25 + 4 + AP_LATENCY
    nothing = np.zeros(12, bool)
    assert spatial_step_cycles(nothing, dh, shape, 1) == step_cycles(nothing, dh, shape)


def test_kept_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"kept must lie in \[1, NB = 4\], got 5"):
        spatial_step_cycles(np.ones(3, bool), np.ones(64, bool), CoreShape(), 5)
    with pytest.raises(ValueError, match="got 0"):
        spatial_step_cycles(np.ones(3, bool), np.ones(64, bool), CoreShape(), 0)


def test_delta_masks_replay_the_golden_run():
    b = random_stacked_bundle(5, [12, 7], seed=3, theta_x=0.1, theta_h=0.05)
    rng = np.random.default_rng(0)
    x = rng.integers(-300, 300, (4, 9, 5))
    lengths = np.array([9, 4, 1, 7])
    shape = CoreShape(rows=4, columns=2, scan=3, step_overlap=False)
    res = run(b, x, lengths, shape)
    m = delta_masks(x, res.layer_h, lengths, [(ly.theta_x, ly.theta_h) for ly in b.layers])
    for l, (mx, mh) in enumerate(m):
        assert np.array_equal(mx.sum(-1), res.layer_nnz_dx[..., l])
        assert np.array_equal(mh.sum(-1), res.layer_nnz_dh[..., l])
    valid = np.arange(9)[None, :] < lengths[:, None]
    dense = bundle_spatial_cycles(b, m, shape, dense=True)
    assert np.array_equal(dense[valid], res.cycles[valid])
    # dense weights on a compressed core: NB pairs per slice, never fewer cycles than dense
    comp = bundle_spatial_cycles(b, m, shape)
    assert (comp[valid] >= dense[valid]).all()
    want = sum(spatial_cycles_for_masks(mx[valid], mh[valid], shape,
                                        math.ceil(ly.hidden_size / 4))
               for ly, (mx, mh) in zip(b.layers, m)) + 1
    assert np.array_equal(comp[valid], want)
    # With issue #10's step overlap, frames back to back: layer 0's steps after the first
    # scanned NB_L + 12 − 2 = 12 cycles ahead.
    ov = replace(shape, step_overlap=True)
    pre = np.where(np.arange(9) > 0, 12, 0)[None, :].repeat(4, 0)
    want = sum(spatial_cycles_for_masks(mx[valid], mh[valid], ov,
                                        math.ceil(ly.hidden_size / 4),
                                        prescan=pre[valid] * (l == 0))
               for l, (ly, (mx, mh)) in enumerate(zip(b.layers, m))) + 1
    assert np.array_equal(bundle_spatial_cycles(b, m, ov)[valid], want)
    assert (want < comp[valid]).any()


def test_layer_kept_and_memory():
    b = random_bundle(12, 64)
    ly = b.layers[0]
    unit = BalanceUnit.for_layer(0.75, 64, 16)
    wx = np.stack([np.where(balanced_mask(w, 16, 1), w, 0) for w in ly.w_x])
    wh = np.stack([np.where(balanced_mask(w, 16, 1), w, 0) for w in ly.w_h])
    pruned = ModelBundle(formats=b.formats, layers=[Layer(wx, wh, ly.bias, 0, 0, unit)])
    shape = CoreShape()
    assert layer_kept(ly, shape) == 4 and layer_kept(pruned.layers[0], shape) == 1
    with pytest.raises(ValueError, match="balanced for P = 16, the core has P = 8"):
        layer_kept(pruned.layers[0], CoreShape(rows=8))
    # README's figure: 3 banks × 76 columns × 64 rows × 8 bits
    assert weight_memory_bits(ly, shape, 8) == 3 * 76 * 64 * 8
    # compressed: 3 × 76 columns × 16 slices × 1 pair × (8 + 2 index bits)
    assert weight_memory_bits(ly, shape, 8, kept=1) == 3 * 76 * 16 * 10
    assert weight_memory_bits(random_bundle(3, 8).layers[0], CoreShape(rows=8), 8, kept=1) \
        == 3 * 11 * 8 * 8
