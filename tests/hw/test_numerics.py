"""The arithmetic primitives against their definitions, and the LUTs against their error bounds."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

from drnn_hw.numerics import (
    Fixed, Formats, accumulator_guard_bits, dequantize, lut_error_bound, lut_index,
    make_sigmoid_lut, make_tanh_lut, narrow_acc, quantize, quantize_count, round_shift, saturate,
)

F = Formats()


@given(st.integers(-2**40, 2**40), st.integers(0, 20))
def test_round_shift_is_round_half_up(v, s):
    expected = math.floor(Fraction(v, 2**s) + Fraction(1, 2))
    assert int(round_shift(np.int64(v), s)) == expected


@given(st.integers(-2**40, 2**40), st.integers(2, 40))
def test_saturate_clamps_never_wraps(v, bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    assert int(saturate(np.int64(v), bits)) == min(max(v, lo), hi)


def test_quantize_rounds_half_up_and_saturates():
    q = quantize([0.5 / 256, -0.5 / 256, 1.5 / 256, 200.0, -200.0, -128.0], F.act)
    assert q.tolist() == [1, 0, 2, 32767, -32768, -32768]
    assert quantize_count([200.0, -200.0, 0.0, 127.99], F.act) == 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_rejects_non_finite(bad):
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize([0.0, bad], F.act)


def test_narrow_acc_rounds_and_saturates():
    # acc has w_frac more fractional bits than act
    one_acc = 1 << F.acc.frac
    assert int(narrow_acc(np.int64(one_acc), F)) == F.one
    assert int(narrow_acc(np.int64(F.acc.max), F)) == F.act.max
    assert int(narrow_acc(np.int64(F.acc.min), F)) == F.act.min
    half = 1 << (F.w_frac - 1)
    assert int(narrow_acc(np.int64(half), F)) == 1       # half an act LSB rounds up
    assert int(narrow_acc(np.int64(-half), F)) == 0      # ... also for negatives (half up)


@pytest.mark.parametrize("fmts", [Formats(), Formats(lut_bits=8), Formats(lut_bits=11),
                                  Formats(act_bits=12, act_frac=6, lut_bits=8,
                                          sigmoid_range_log2=2, tanh_range_log2=1)])
@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
def test_lut_error_within_bound_for_every_input(fmts, kind):
    codes = np.arange(fmts.act.min, fmts.act.max + 1)
    real = dequantize(codes, fmts.act)
    if kind == "sigmoid":
        lut, rng, exact = make_sigmoid_lut(fmts), fmts.sigmoid_range_log2, 1 / (1 + np.exp(-real))
    else:
        lut, rng, exact = make_tanh_lut(fmts), fmts.tanh_range_log2, np.tanh(real)
    approx = dequantize(lut[lut_index(codes, fmts, rng)], fmts.act)
    err = np.abs(approx - exact).max()
    assert err <= lut_error_bound(fmts, kind) + 1e-12
    # the bound is not vacuous: it is within a factor 2 of the real worst case
    assert err >= lut_error_bound(fmts, kind) / 2


def test_default_luts_resolve_one_activation_lsb():
    # The peer's tables only step in 1/16; ours step in single LSBs where the function is flat
    # enough, and are monotonic.
    for lut in (make_sigmoid_lut(F), make_tanh_lut(F)):
        steps = np.diff(lut)
        assert np.all(steps >= 0)
        assert np.any(steps == 1)
    assert make_sigmoid_lut(F).min() >= 0 and make_sigmoid_lut(F).max() <= F.one
    assert make_tanh_lut(F).min() >= -F.one and make_tanh_lut(F).max() <= F.one
    # default bounds: about one LSB for sigmoid, under two for tanh
    assert lut_error_bound(F, "sigmoid") <= 1.0 / 256
    assert lut_error_bound(F, "tanh") <= 2.0 / 256


def test_lut_index_clamps_at_both_ends():
    n = F.lut_entries
    assert int(lut_index(np.int64(F.act.min), F, F.sigmoid_range_log2)) == 0
    assert int(lut_index(np.int64(F.act.max), F, F.sigmoid_range_log2)) == n - 1
    assert int(lut_index(np.int64(0), F, F.tanh_range_log2)) == n // 2


@given(st.integers(1, 600), st.sampled_from([Formats(), Formats(w_bits=16, w_frac=14, acc_bits=40)]))
def test_guard_bits_hold_the_worst_step(columns, fmts):
    width = fmts.acc_bits + accumulator_guard_bits(fmts, columns)
    worst = fmts.acc.max + columns * (2 ** fmts.act_bits) * (2 ** (fmts.w_bits - 1))
    assert worst <= 2 ** (width - 1) - 1
    worst_neg = fmts.acc.min - columns * (2 ** fmts.act_bits) * (2 ** (fmts.w_bits - 1))
    assert worst_neg >= -(2 ** (width - 1))


@pytest.mark.parametrize("kwargs, match", [
    (dict(lut_bits=14), "finer than the activation LSB"),
    (dict(acc_bits=20), "accumulator width"),
    (dict(act_bits=30), "activation format"),
    (dict(w_bits=1), "weight format"),
    (dict(w_frac=17), r"need 0\.\.16 fractional bits with a 32-bit accumulator"),
    (dict(w_frac=-1), "weight format"),
])
def test_formats_reject_inconsistent_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Formats(**kwargs)


def test_small_weights_take_negative_integer_bits():
    """Q-3.11 at 8 bits: codes of ±0.044 weights use the full width; the accumulator
    (Q13.19) still covers the activation range, so narrowing saturates at ±128."""
    f = Formats(w_bits=8, w_frac=11)
    assert str(f.weight) == "Q-3.11" and str(f.acc) == "Q13.19"
    assert quantize(np.array([0.044, -0.0625, 0.1]), f.weight).tolist() == [90, -128, 127]
    big = np.array([200 << 19, -(200 << 19)])
    assert narrow_acc(big, f).tolist() == [32767, -32768]


def test_fixed_describes_itself():
    assert str(Fixed(16, 8)) == "Q8.8"
    assert (Fixed(16, 8).min, Fixed(16, 8).max) == (-32768, 32767)
    assert str(F.delta) == "Q9.8" and str(F.acc) == "Q18.14"


# -- LSTM: the cell format and tanh(c)'s index ------------------------------------------------

def test_cell_format_is_act_range_with_two_more_fractional_bits():
    assert str(F.cell) == "Q8.10" and F.cell.bits == 18
    f = Formats(act_bits=12, act_frac=6, lut_bits=8, sigmoid_range_log2=2, tanh_range_log2=1)
    assert str(f.cell) == "Q6.8"


@pytest.mark.parametrize("fmts", [Formats(), Formats(lut_bits=8),
                                  Formats(act_bits=12, act_frac=6, lut_bits=8,
                                          sigmoid_range_log2=2, tanh_range_log2=1)])
def test_cell_index_is_the_index_of_c_floored_to_the_activation_grid(fmts):
    """Every cell code: one shift equals flooring to act (no saturation) then lut_index, and
    tanh through it stays within the LUT's bound of tanh(c) at c's own (finer) value."""
    from drnn_hw.numerics import lut_index_cell

    c = np.arange(fmts.cell.min, fmts.cell.max + 1)
    extra = fmts.cell.frac - fmts.act_frac
    floored = np.floor(c / 2 ** extra).astype(np.int64)          # may exceed act: no narrowing
    want = np.clip(np.floor(floored / 2 ** (fmts.act_frac + fmts.tanh_range_log2 + 1
                                            - fmts.lut_bits)) + fmts.lut_entries // 2,
                   0, fmts.lut_entries - 1)
    idx = lut_index_cell(c, fmts, fmts.tanh_range_log2)
    assert np.array_equal(idx, want)
    approx = dequantize(make_tanh_lut(fmts)[idx], fmts.act)
    err = np.abs(approx - np.tanh(dequantize(c, fmts.cell))).max()
    assert err <= lut_error_bound(fmts, "tanh") + 1e-12


def test_lstm_step_by_hand():
    """One unit, default formats, worked out from the spec with fractions (independent of
    golden.lstm_activation's vectorised code)."""
    from drnn_hw.golden import lstm_activation

    sig, tnh = make_sigmoid_lut(F), make_tanh_lut(F)

    def lut(table, v, rng, frac=F.act_frac):
        k = math.floor(Fraction(v, 2 ** (frac + rng + 1 - F.lut_bits))) + F.lut_entries // 2
        return int(table[min(max(k, 0), F.lut_entries - 1)])

    def rhu(v, s):
        return math.floor(Fraction(v, 2 ** s) + Fraction(1, 2))

    m = [int(0.7 * 2 ** 14), int(2.0 * 2 ** 14), int(-0.4 * 2 ** 14), int(0.1 * 2 ** 14)]
    c = int(1.37 * 2 ** 10)
    a = [rhu(v, F.w_frac) for v in m]                  # narrow (no saturation here)
    i, f = lut(sig, a[0], 3), lut(sig, a[1], 3)
    g, o = lut(tnh, a[2], 2), lut(sig, a[3], 3)
    c_new = rhu(f * c, 8) + rhu(i * g, 6)
    h_new = rhu(o * lut(tnh, c_new, 2, frac=10), 8)
    h, cc = lstm_activation(*[np.int64(v) for v in m], np.int64(c), sig, tnh, F)
    assert (int(h), int(cc)) == (h_new, c_new)
    # and the numbers are what the float LSTM gives, to the LUT's and rounding's accuracy
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    cf = s(2.0) * 1.37 + s(0.7) * math.tanh(-0.4)
    assert abs(cc / 2 ** 10 - cf) < 0.01 and abs(h / 256 - s(0.1) * math.tanh(cf)) < 0.01


def test_lstm_cell_saturates_never_wraps():
    from drnn_hw.golden import lstm_activation

    sig, tnh = make_sigmoid_lut(F), make_tanh_lut(F)
    top = np.int64(F.acc.max)
    # f = 1, i = 1, g = 1: c + 1 would pass the cell maximum; it saturates, h = tanh(127.99)
    h, c = lstm_activation(top, top, top, top, np.int64(F.cell.max), sig, tnh, F)
    assert int(c) == F.cell.max and int(h) == int(tnh[-1])
    bot = np.int64(F.acc.min)
    h, c = lstm_activation(top, top, bot, top, np.int64(F.cell.min), sig, tnh, F)
    assert int(c) == F.cell.min and int(h) == int(tnh[0])
