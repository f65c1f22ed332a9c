"""The HDL fixed-point helpers against the written specification (:mod:`drnn_hw.numerics`)."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from drnn_hw.hdl_arith import saturated_lut_index
from drnn_hw.numerics import Formats, lut_index, round_shift, saturate


def _spec_index(v, fmts, range_log2, pre_shift):
    """The spec's composition: round half up to the activation format, saturate, index."""
    act = saturate(round_shift(np.int64(v), pre_shift), fmts.act_bits)
    return int(lut_index(act, fmts, range_log2))


def _values(width, pre_shift, shift, rng):
    """Random values plus every boundary where the rounding carries or the index clamps."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    edges = [lo, lo + 1, hi, hi - 1, 0, -1, 1]
    for q in range(-(1 << 9), 1 << 9):               # around every index step and clamp
        base = q << shift
        for r in (0, (1 << shift) - (1 << (pre_shift - 1)) - 1,
                  (1 << shift) - (1 << (pre_shift - 1)), (1 << shift) - 1):
            edges.append(base + r)
    vals = np.array([e for e in edges if lo <= e <= hi], dtype=np.int64)
    rand = rng.integers(lo, hi, size=2000, dtype=np.int64)
    return np.concatenate([vals, rand, rand >> rng.integers(0, width - 1, size=2000)])


@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
@pytest.mark.parametrize("width", [20, 39])
def test_saturated_lut_index_matches_the_spec(kind, width):
    # The AP's σ/tanh addresses straight from a delta memory row (acc format, w_frac
    # fractional bits, wider than acc_bits): equal to narrowing first, then indexing.
    fmts = Formats()
    range_log2 = fmts.sigmoid_range_log2 if kind == "sigmoid" else fmts.tanh_range_log2
    pre = fmts.w_frac
    shift = pre + fmts.act_frac + range_log2 + 1 - fmts.lut_bits
    values = _values(width, pre, shift, np.random.default_rng(width))
    v = Signal(signed(width))
    out = Signal(fmts.lut_bits)
    m = Module()
    m.d.comb += out.eq(saturated_lut_index(v, fmts, range_log2, pre))
    got = []

    async def bench(ctx):
        for x in values:
            ctx.set(v, int(x))
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    want = [_spec_index(x, fmts, range_log2, pre) for x in values]
    bad = [(int(x), g, w) for x, g, w in zip(values, got, want) if g != w]
    assert not bad, f"{len(bad)} mismatches, first (value, got, want): {bad[:3]}"
    # The boundaries were exercised: both clamps and the carry of the rounding.
    assert min(want) == 0 and max(want) == fmts.lut_entries - 1


@pytest.mark.parametrize("width", [20, 24, 39])
def test_narrow_acc_matches_the_spec(width):
    # The AP's narrowing of M_nx, M_nh (round half up to the activation format, saturate).
    from drnn_hw.hdl_arith import narrow_acc as hdl_narrow
    from drnn_hw.numerics import narrow_acc

    fmts = Formats()
    values = _values(width, fmts.w_frac, fmts.w_frac, np.random.default_rng(width + 1))
    v = Signal(signed(width))
    out = Signal(signed(fmts.act_bits))
    m = Module()
    m.d.comb += out.eq(hdl_narrow(v, fmts))
    got = []

    async def bench(ctx):
        for x in values:
            ctx.set(v, int(x))
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    want = narrow_acc(values, fmts).tolist()
    bad = [(int(x), g, w) for x, g, w in zip(values, got, want) if g != w]
    assert not bad, f"{len(bad)} mismatches, first (value, got, want): {bad[:3]}"
    if width > fmts.act_bits + fmts.w_frac:     # wide enough to saturate: both limits hit
        assert min(want) == fmts.act.min and max(want) == fmts.act.max


def test_add_rounded_matches_round_shift_plus_a():
    # The AP's c4 and c7 sums: round_shift(product, A) + a, the rounding as a carry-in.
    from drnn_hw.hdl_arith import add_rounded

    rng = np.random.default_rng(7)
    prods = rng.integers(-(1 << 25), 1 << 25, size=3000)
    prods[:64] = np.arange(-32, 32) * 128 + rng.integers(0, 256, size=64)   # around 0
    acts = rng.integers(-(1 << 15), 1 << 15, size=3000)
    v, a = Signal(signed(26)), Signal(signed(16))
    out = Signal(signed(20))
    m = Module()
    m.d.comb += out.eq(add_rounded(v, 8, a))
    got = []

    async def bench(ctx):
        for x, y in zip(prods, acts):
            ctx.set(v, int(x))
            ctx.set(a, int(y))
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    want = (round_shift(prods, 8) + acts).tolist()
    assert got == want


def test_add_two_rounded_matches_the_two_roundings_summed():
    # The LSTM AP's c' = round_shift(f·c, A) + round_shift(i·g, 2A − C): each product as its
    # floor and rounding bit, summed in one adder (a carry-save layer for one bit).
    from drnn_hw.hdl_arith import add_two_rounded

    rng = np.random.default_rng(11)
    n = 4000
    a = rng.integers(-(1 << 18), 1 << 18, size=n)
    b = rng.integers(-(1 << 18), 1 << 18, size=n)
    a[:8] = [-(1 << 18)] * 4 + [(1 << 18) - 1] * 4        # the extremes, with every carry
    b[:8] = [-(1 << 18), (1 << 18) - 1] * 4
    ra, rb = rng.integers(0, 2, size=n), rng.integers(0, 2, size=n)
    ra[:8], rb[:8] = [0, 1, 0, 1, 1, 1, 0, 1], [0, 1, 1, 1, 1, 0, 0, 1]
    sa, sb = Signal(signed(19)), Signal(signed(19))
    ba, bb = Signal(), Signal()
    out = Signal(signed(21))
    m = Module()
    m.d.comb += out.eq(add_two_rounded(sa, ba, sb, bb, 21))
    got = []

    async def bench(ctx):
        for x, y, p, q in zip(a, b, ra, rb):
            ctx.set(sa, int(x))
            ctx.set(sb, int(y))
            ctx.set(ba, int(p))
            ctx.set(bb, int(q))
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got == (a + b + ra + rb).tolist()
