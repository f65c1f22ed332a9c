"""The vectorised golden model against a scalar, pure-Python reading of the numerics spec."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from drnn_hw.bundle import ModelBundle, random_bundle
from drnn_hw.cycle_model import CoreShape, step_cycles
from drnn_hw.golden import float_delta_gru, run
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
    shape = CoreShape(rows=4, columns=1, scan=3)
    res = run(b, x, shape=shape)
    scalar_reference(b, x[0])
    expected = [step_cycles(mx, mh, shape) for mx, mh in scalar_reference.masks]
    assert res.cycles[0].tolist() == expected


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
