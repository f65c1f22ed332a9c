"""Fake quantisation against the numerics specification."""

import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from drnn_hw.numerics import Fixed, Formats, lut_index, make_sigmoid_lut, make_tanh_lut, quantize
from drnn_train.quant import fake_quant, lut_activation


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-300, 300, allow_nan=False), min_size=1, max_size=20),
       st.sampled_from([Fixed(16, 8), Fixed(8, 6), Fixed(16, 12), Fixed(32, 14)]))
def test_fake_quant_forward_is_numerics_quantize(values, fmt):
    got = fake_quant(torch.tensor(values, dtype=torch.float64), fmt).numpy()
    np.testing.assert_array_equal(got * (1 << fmt.frac), quantize(values, fmt))


def test_round_half_up_and_saturation_by_hand():
    fmt = Fixed(8, 6)                        # LSB 1/64, range [-2, 2 - 1/64]
    lsb = 1 / 64
    v = torch.tensor([0.5 * lsb, -0.5 * lsb, 1.5 * lsb, -1.5 * lsb, 2.5, -2.5, 1.99],
                     dtype=torch.float64)
    want = [lsb, 0.0, 2 * lsb, -lsb, 2 - lsb, -2.0, 2 - lsb]
    assert fake_quant(v, fmt).tolist() == want


def test_gradients_straight_through_inside_zero_when_saturated():
    fmt = Fixed(8, 6)
    v = torch.tensor([0.013, -1.2, 1.999, 3.0, -2.5], dtype=torch.float64, requires_grad=True)
    fake_quant(v, fmt).sum().backward()
    assert v.grad.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]   # 1.999 rounds above the max too


def test_lut_activation_forward_is_the_hardware_table_and_gradient_the_function():
    f = Formats()
    codes = np.arange(f.act.min, f.act.max + 1, 37)
    v = torch.tensor(codes / f.one, dtype=torch.float64, requires_grad=True)
    for table, rng, fn in ((make_sigmoid_lut(f), f.sigmoid_range_log2, torch.sigmoid),
                           (make_tanh_lut(f), f.tanh_range_log2, torch.tanh)):
        out = lut_activation(v, torch.tensor(table, dtype=torch.float64), f, rng, fn)
        np.testing.assert_array_equal(out.detach().numpy() * f.one,
                                      table[lut_index(codes, f, rng)])
        g, = torch.autograd.grad(out.sum(), v)
        vv = v.detach().clone().requires_grad_(True)
        g_ref, = torch.autograd.grad(fn(vv).sum(), vv)
        torch.testing.assert_close(g, g_ref, rtol=0, atol=0)
