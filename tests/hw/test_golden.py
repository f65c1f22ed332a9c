"""The vectorised golden model against a scalar, pure-Python reading of the numerics spec."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from drnn_hw.bundle import ModelBundle, random_bundle
from drnn_hw.cycle_model import CoreShape, step_cycles
from drnn_hw.golden import float_delta_gru, kept_masks, run
from drnn_hw.numerics import Formats, dequantize


def _rhu(v, s):          # round half up, Python ints
    return (v + (1 << (s - 1))) >> s if s > 0 else v


def _sat(v, bits):
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, v))


def scalar_reference(b: ModelBundle, x):
    """One sequence, element by element, straight from the docstrings of numerics/golden."""
    f = b.formats
    I, H = b.input_size, b.hidden_size
    xr, hr, h = [0] * I, [0] * H, [0] * H
    M = [[int(v) for v in row] for row in b.bias]
    sig, tnh = [int(v) for v in b.sigmoid_lut], [int(v) for v in b.tanh_lut]
    half = 1 << (f.lut_bits - 1)

    def index(v, rng):
        return max(0, min(f.lut_entries - 1, (v >> (f.act_frac + rng + 1 - f.lut_bits)) + half))

    def narrow(m):
        return _sat(_rhu(m, f.w_frac), f.act_bits)

    hs, nx, nh, masks = [], [], [], []
    for xt in x:
        dx = [0] * I
        for i in range(I):
            d = int(xt[i]) - xr[i]
            if d != 0 and abs(d) >= b.theta_x:
                dx[i], xr[i] = d, int(xt[i])
        dh = [0] * H
        for j in range(H):
            d = h[j] - hr[j]
            if d != 0 and abs(d) >= b.theta_h:
                dh[j], hr[j] = d, h[j]
        for j in range(H):
            acc = [M[g][j] for g in range(4)]
            for i in range(I):
                acc[0] += int(b.w_x[0][j][i]) * dx[i]
                acc[1] += int(b.w_x[1][j][i]) * dx[i]
                acc[2] += int(b.w_x[2][j][i]) * dx[i]
            for k in range(H):
                acc[0] += int(b.w_h[0][j][k]) * dh[k]
                acc[1] += int(b.w_h[1][j][k]) * dh[k]
                acc[3] += int(b.w_h[2][j][k]) * dh[k]
            for g in range(4):
                M[g][j] = _sat(acc[g], f.acc_bits)
        new = []
        for j in range(H):
            r = sig[index(narrow(M[0][j]), f.sigmoid_range_log2)]
            z = sig[index(narrow(M[1][j]), f.sigmoid_range_log2)]
            rnh = _sat(_rhu(r * narrow(M[3][j]), f.act_frac), f.act_bits)
            pre = _sat(narrow(M[2][j]) + rnh, f.act_bits)
            n = tnh[index(pre, f.tanh_range_log2)]
            new.append(_sat(n + _rhu(z * (h[j] - n), f.act_frac), f.act_bits))
        h = new
        hs.append(list(h))
        nx.append(sum(d != 0 for d in dx))
        nh.append(sum(d != 0 for d in dh))
        masks.append(([d != 0 for d in dx], [d != 0 for d in dh]))
    scalar_reference.masks = masks
    return hs, nx, nh


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 9), st.integers(1, 6), st.integers(0, 2**32 - 1),
       st.sampled_from([0, 1, 13, 64, 300]), st.sampled_from([0.3, 1.0, 3.0]))
def test_golden_matches_scalar_spec(I, H, T, seed, theta, scale):
    b = random_bundle(I, H, seed=seed % 1000, weight_scale=scale).with_thresholds(theta, theta)
    rng = np.random.default_rng(seed)
    x = rng.integers(-3000, 3000, size=(2, T, I))
    res = run(b, x)
    for n in range(2):
        hs, nx, nh = scalar_reference(b, x[n])
        assert res.h[n].tolist() == hs
        assert res.nnz_dx[n].tolist() == nx
        assert res.nnz_dh[n].tolist() == nh


def test_saturation_at_the_extremes_matches_spec():
    f = Formats()
    H, I = 3, 2
    w = np.full((3, H, I), f.weight.max)
    w[:, 1] = f.weight.min
    wh = np.full((3, H, H), f.weight.max)
    bias = np.array([[f.acc.max] * H, [f.acc.min] * H, [f.acc.max] * H, [f.acc.min] * H])
    b = ModelBundle(formats=f, w_x=w, w_h=wh, bias=bias)
    x = np.array([[[f.act.max, f.act.min], [f.act.min, f.act.max], [f.act.max, f.act.max],
                   [0, 0], [f.act.min, f.act.min]]])
    res = run(b, x)
    hs, nx, nh = scalar_reference(b, x[0])
    assert res.h[0].tolist() == hs
    assert np.all(np.abs(res.h) <= f.one)          # h stays a convex mix of tanh values
    # a wrapping accumulator would have flipped the sign of the saturated memories here
    assert res.nnz_dx[0].tolist() == nx


def test_thresholds_suppress_small_changes_and_references_follow_kept_deltas():
    b = random_bundle(2, 4, seed=5).with_thresholds(100, 0)
    # element 0 creeps by 60 per step: kept only when the distance to the reference reaches 100
    x = np.array([[[0, 0], [60, 0], [120, 0], [180, 0], [240, 0]]])
    res = run(b, x)
    assert res.nnz_dx[0].tolist() == [0, 0, 1, 0, 1]


def test_ragged_sequences_do_not_change_past_their_length():
    b = random_bundle(3, 5, seed=2)
    x = np.random.default_rng(1).integers(-500, 500, size=(2, 6, 3))
    full = run(b, x[:1, :4])
    ragged = run(b, x, lengths=[4, 6])
    assert np.array_equal(ragged.h[0, :4], full.h[0])
    assert np.all(ragged.h[0, 4:] == 0) and np.all(ragged.cycles[0, 4:] == 0)
    assert ragged.flat("cycles").size == 10


def test_cycles_come_from_the_cycle_model_for_the_given_shape():
    b = random_bundle(5, 11, seed=4).with_thresholds(40, 10)
    x = np.random.default_rng(3).integers(-800, 800, size=(1, 4, 5))
    shape = CoreShape(rows=4, columns=1, scan=3, step_overlap=False)
    res = run(b, x, shape=shape)
    scalar_reference(b, x[0])
    expected = [step_cycles(mx, mh, shape) for mx, mh in scalar_reference.masks]
    assert res.cycles[0].tolist() == expected and res.prescan.tolist() == [[0] * 4]
    # With issue #10's step overlap, frames back to back (the default): each step after the
    # first was scanned while the AP finished the one before, NB + AP_LATENCY − 2 = 3 + 12 − 2
    # cycles ahead; one frame at a time (prescan 0), the core without it.
    ov = replace(shape, step_overlap=True)
    over = run(b, x, shape=ov)
    assert over.prescan[0].tolist() == [0, 13, 13, 13]
    assert over.cycles[0].tolist() == [step_cycles(mx, mh, ov, prescan=o) for (mx, mh), o
                                       in zip(scalar_reference.masks, [0, 13, 13, 13])]
    assert (over.cycles[0, 1:] < res.cycles[0, 1:]).all()
    assert run(b, x, shape=ov, prescan=0).cycles.tolist() == res.cycles.tolist()
    assert over.with_prescan(np.zeros((1, 4), int)).cycles.tolist() == res.cycles.tolist()


def test_kept_masks_are_the_runs_kept_deltas():
    b = random_bundle(5, 11, seed=4).with_thresholds(40, 10)
    x = np.random.default_rng(3).integers(-800, 800, size=(1, 4, 5))
    (dx, dh), = kept_masks(b, x)
    scalar_reference(b, x[0])
    assert [(list(mx), list(mh)) for mx, mh in zip(dx, dh)] == \
        [(list(mx), list(mh)) for mx, mh in scalar_reference.masks]
    # Stacked and ragged: per layer, the valid steps in the order of GoldenResult.flat.
    from drnn_hw.bundle import random_stacked_bundle
    s = random_stacked_bundle(3, [6, 4], seed=5, theta_x=0.05, theta_h=0.05)
    xs = np.random.default_rng(6).integers(-600, 600, size=(2, 5, 3))
    res = run(s, xs, lengths=[3, 5])
    masks = kept_masks(s, xs, lengths=[3, 5])
    for l, (mx, mh) in enumerate(masks):
        assert mx.shape == (8, (3, 6)[l]) and mh.shape == (8, (6, 4)[l])
        assert mx.sum(-1).tolist() == res.flat("layer_nnz_dx")[:, l].tolist()
        assert mh.sum(-1).tolist() == res.flat("layer_nnz_dh")[:, l].tolist()


def test_float_reference_matches_torch_gru_at_zero_threshold():
    import torch
    g = torch.nn.GRU(4, 6, batch_first=True).double()
    x = torch.randn(3, 7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, _ = g(x)
    h, _, _ = float_delta_gru(g.weight_ih_l0.detach(), g.weight_hh_l0.detach(),
                              g.bias_ih_l0.detach(), g.bias_hh_l0.detach(), x.numpy())
    assert np.abs(h - ref.numpy()).max() < 1e-12


def test_golden_rejects_out_of_range_codes():
    b = random_bundle(2, 3)
    with pytest.raises(ValueError, match="codes must lie"):
        run(b, np.full((1, 2, 2), 40000))
    with pytest.raises(ValueError, match=r"x must be \(N, T, 2\)"):
        run(b, np.zeros((1, 2, 3), np.int64))


def test_dequantized_output_range():
    b = random_bundle(4, 8, seed=9)
    x = np.random.default_rng(0).integers(-2000, 2000, size=(3, 5, 4))
    h = dequantize(run(b, x).h, b.formats.act)
    assert np.all(np.abs(h) <= 1.0)


# ---------------------------------------------------------------------------------------------
# LSTM bundles: the same checks against a scalar reading of the numerics docstring.

def scalar_lstm_reference(b: ModelBundle, x, h0=None, c0=None, masks=None):
    """One sequence of a one-layer LSTM bundle, element by element, from the docstrings
    (``masks``: a list that receives each step's kept (Δx, Δh) masks)."""
    f = b.formats
    I, H = b.input_size, b.hidden_size
    A, C, CB = f.act_frac, f.act_frac + 2, f.act_bits + 2       # Q8.10: stated in numerics
    xr, hr = [0] * I, [0] * H
    h = [0] * H if h0 is None else [int(v) for v in h0]
    c = [0] * H if c0 is None else [int(v) for v in c0]
    M = [[int(v) for v in row] for row in b.bias]
    sig, tnh = [int(v) for v in b.sigmoid_lut], [int(v) for v in b.tanh_lut]
    half = 1 << (f.lut_bits - 1)

    def index(v, rng, frac=A):
        return max(0, min(f.lut_entries - 1, (v >> (frac + rng + 1 - f.lut_bits)) + half))

    def narrow(m):
        return _sat(_rhu(m, f.w_frac), f.act_bits)

    hs, nx, nh = [], [], []
    for xt in x:
        dx = [0] * I
        for i in range(I):
            d = int(xt[i]) - xr[i]
            if d != 0 and abs(d) >= b.theta_x:
                dx[i], xr[i] = d, int(xt[i])
        dh = [0] * H
        for j in range(H):
            d = h[j] - hr[j]
            if d != 0 and abs(d) >= b.theta_h:
                dh[j], hr[j] = d, h[j]
        for g in range(4):
            for j in range(H):
                acc = M[g][j]
                acc += sum(int(b.w_x[g][j][i]) * dx[i] for i in range(I))
                acc += sum(int(b.w_h[g][j][k]) * dh[k] for k in range(H))
                M[g][j] = _sat(acc, f.acc_bits)
        new_h, new_c = [], []
        for j in range(H):
            ig_ = sig[index(narrow(M[0][j]), f.sigmoid_range_log2)]
            fg = sig[index(narrow(M[1][j]), f.sigmoid_range_log2)]
            gg = tnh[index(narrow(M[2][j]), f.tanh_range_log2)]
            og = sig[index(narrow(M[3][j]), f.sigmoid_range_log2)]
            cj = _sat(_sat(_rhu(fg * c[j], A), CB) + _sat(_rhu(ig_ * gg, 2 * A - C), CB), CB)
            new_c.append(cj)
            new_h.append(_sat(_rhu(og * tnh[index(cj, f.tanh_range_log2, C)], A), f.act_bits))
        h, c = new_h, new_c
        hs.append(list(h))
        if masks is not None:
            masks.append(([d != 0 for d in dx], [d != 0 for d in dh]))
        nx.append(sum(d != 0 for d in dx))
        nh.append(sum(d != 0 for d in dh))
    return hs, nx, nh, c


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 5), st.integers(1, 7), st.integers(1, 6), st.integers(0, 2**32 - 1),
       st.sampled_from([0, 1, 13, 64, 300]), st.sampled_from([0.3, 1.0, 3.0]))
def test_lstm_golden_matches_scalar_spec(I, H, T, seed, theta, scale):
    b = random_bundle(I, H, seed=seed % 1000, weight_scale=scale, cell="lstm") \
        .with_thresholds(theta, theta)
    rng = np.random.default_rng(seed)
    x = rng.integers(-3000, 3000, size=(2, T, I))
    res = run(b, x)
    for n in range(2):
        hs, nx, nh, c = scalar_lstm_reference(b, x[n])
        assert res.h[n].tolist() == hs
        assert res.nnz_dx[n].tolist() == nx and res.nnz_dh[n].tolist() == nh
        assert res.state[0].c[n].tolist() == c


def test_lstm_saturation_at_the_extremes_matches_spec():
    f = Formats()
    H, I = 3, 2
    w = np.full((4, H, I), f.weight.max)
    w[:, 1] = f.weight.min
    wh = np.full((4, H, H), f.weight.max)
    bias = np.array([[f.acc.max] * H, [f.acc.max] * H, [f.acc.max] * H, [f.acc.min] * H])
    b = ModelBundle(formats=f, w_x=w, w_h=wh, bias=bias, cell="lstm")
    x = np.array([[[f.act.max, f.act.min], [f.act.min, f.act.max], [f.act.max, f.act.max],
                   [0, 0], [f.act.min, f.act.min]] * 40])     # 200 steps: c saturates
    res = run(b, x)
    hs, nx, nh, c = scalar_lstm_reference(b, x[0])
    assert res.h[0].tolist() == hs and res.state[0].c[0].tolist() == c
    assert np.all(np.abs(res.h) <= f.one)           # h = o·tanh(c): within ±1
    assert res.state[0].c.max() == f.cell.max       # the cell really saturated, not wrapped


def test_lstm_h0_c0_state_chunks_and_ragged_lengths():
    b = random_bundle(3, 4, seed=11, cell="lstm").with_thresholds(20, 10)
    rng = np.random.default_rng(2)
    x = rng.integers(-900, 900, size=(2, 7, 3))
    h0 = rng.integers(-200, 200, size=(2, 4))
    c0 = rng.integers(-3000, 3000, size=(2, 4))
    res = run(b, x, h0=[h0], c0=[c0])
    for n in range(2):
        hs, *_ = scalar_lstm_reference(b, x[n], h0[n], c0[n])
        assert res.h[n].tolist() == hs
    part = run(b, x[:, :3], h0=[h0], c0=[c0])
    rest = run(b, x[:, 3:], state=part.state)
    assert np.array_equal(np.concatenate([part.h, rest.h], 1), res.h)
    assert np.array_equal(rest.state[0].c, res.state[0].c)
    ragged = run(b, x, lengths=[3, 7], h0=[h0], c0=[c0])
    assert np.array_equal(ragged.h[0, :3], res.h[0, :3]) and np.all(ragged.h[0, 3:] == 0)
    assert np.array_equal(ragged.state[0].c[0], part.state[0].c[0])
    with pytest.raises(ValueError, match="c0: a GRU has no cell state"):
        run(random_bundle(3, 4), x, c0=[c0])
    with pytest.raises(ValueError, match=r"state\[0\].c: expected shape \(2, 4\)"):
        bad = [s.copy() for s in part.state]
        bad[0].c = None
        run(b, x, state=bad)


def test_stacked_lstm_feeds_each_layers_h_to_the_next():
    from drnn_hw.bundle import random_stacked_bundle

    s = random_stacked_bundle(3, [5, 4], seed=4, cell="lstm", theta_x=0.05, theta_h=0.02)
    x = np.random.default_rng(5).integers(-700, 700, size=(2, 6, 3))
    res = run(s, x)
    first = ModelBundle(formats=s.formats, layers=[s.layers[0]], cell="lstm")
    second = ModelBundle(formats=s.formats, layers=[s.layers[1]], cell="lstm")
    h0 = run(first, x)
    h1 = run(second, h0.h)
    assert np.array_equal(res.layer_h[0], h0.h) and np.array_equal(res.h, h1.h)
    assert np.array_equal(res.nnz_dh, h0.nnz_dh + h1.nnz_dh)


def test_lstm_cycles_are_the_lstm_cores_schedule():
    """An LSTM bundle's cycles are the cycle model's on the deltas it kept (from the scalar
    reference), with the LSTM core's AP depth: as many cycles per step as the same deltas
    take on a GRU core (both APs are 12 cycles deep)."""
    b = random_bundle(3, 7, seed=1, cell="lstm").with_thresholds(30, 12)
    x = np.random.default_rng(3).integers(-300, 300, (1, 6, 3))
    shape = CoreShape(rows=4, columns=1, scan=3)
    shape = replace(shape, step_overlap=True)      # (issue #10's step overlap)
    res = run(b, x, shape=shape)
    masks = []
    scalar_lstm_reference(b, x[0], masks=masks)
    pre = [0] + [2 + 12 - 2] * 5       # frames back to back: NB + AP_LATENCY_LSTM − 2
    assert res.prescan[0].tolist() == pre
    want = [step_cycles(mx, mh, shape, "lstm", prescan=o) for (mx, mh), o in zip(masks, pre)]
    assert res.cycles[0].tolist() == want
    assert res.cycles[0].tolist() == [step_cycles(mx, mh, shape, prescan=o)
                                      for (mx, mh), o in zip(masks, pre)]
    assert len(set(res.nnz_dh[0].tolist())) > 1          # the schedule varies over the steps


def test_float_delta_lstm_matches_torch_lstm_at_zero_threshold():
    import torch

    from drnn_hw.golden import float_delta_lstm

    m = torch.nn.LSTM(4, 6, batch_first=True).double()
    x = torch.randn(3, 7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    h0 = torch.randn(1, 3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    c0 = torch.randn(1, 3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref, _ = m(x, (h0, c0))
    h, nx, nh = float_delta_lstm(m.weight_ih_l0.detach(), m.weight_hh_l0.detach(),
                                 m.bias_ih_l0.detach(), m.bias_hh_l0.detach(), x.numpy(),
                                 h0=h0[0].numpy(), c0=c0[0].numpy())
    assert np.abs(h - ref.numpy()).max() < 1e-12
    # with thresholds, fewer deltas are kept and the output drifts from the dense LSTM
    params = (m.weight_ih_l0.detach(), m.weight_hh_l0.detach(), m.bias_ih_l0.detach(),
              m.bias_hh_l0.detach(), x.numpy())
    hd, nxd, _ = float_delta_lstm(*params)
    ht, nxt, _ = float_delta_lstm(*params, theta_x=0.5, theta_h=0.1)
    assert nxt.sum() < nxd.sum() and np.abs(ht - hd).max() > 1e-3
