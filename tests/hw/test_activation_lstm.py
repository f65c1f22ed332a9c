"""LSTMActivationPipeline against golden.lstm_activation, pass after pass (the cell state c
lives in the AP): random and extreme delta memories (rows beyond acc_bits, as the MxV hands
them over), c carried from pass to pass and driven into both limits of the cell format,
``clear`` (RESET_STATE) setting c back to 0, block order and timing, the done pulse. The
testbench plays the delta memories; three banks of multipliers are lent as in the core.
Also the parameters the AP refuses."""

import math

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from drnn_hw import golden
from drnn_hw.activation_lstm import AP_ISSUE, LSTM_AP_STAGES, LSTMActivationPipeline
from drnn_hw.bundle import random_bundle
from drnn_hw.mxv import AP_READ_LATENCY, acc_width
from drnn_hw.numerics import Formats

from test_activation import Lender


class Harness(Elaboratable):
    def __init__(self, ap):
        self.ap = ap

    def elaborate(self, platform):
        m = Module()
        m.submodules.ap = ap = self.ap
        for g in ("i", "f", "o"):
            port = getattr(ap, f"mul_{g}")
            m.submodules[f"lend_{g}"] = lend = Lender(port.signature)
            wiring.connect(m, ap=port, lender=lend.port)
        return m


def passes(fmts, H, rng, width, n):
    """n passes of (M_i, M_f, M_g, M_o) rows: random, extreme, and runs that saturate c."""
    acc = fmts.acc
    wide_min, wide_max = -(1 << (width - 1)), (1 << (width - 1)) - 1
    big = 12 << acc.frac
    special = [acc.min, acc.max, acc.min - 1, acc.max + 1, wide_min, wide_max, 0, -1, 1, big,
               -big, (1 << (fmts.w_frac - 1)), -(1 << (fmts.w_frac - 1))]
    out = []
    for t in range(n):
        if t < n // 2:      # i = f = 1, g = +1 on even units, −1 on odd: c walks to its limits
            m = np.full((4, H), big, np.int64)
            m[2, 1::2] = -big
            m[3] = rng.integers(-(4 << acc.frac), 4 << acc.frac, H)
        else:
            m = rng.integers(-(6 << acc.frac), 6 << acc.frac, (4, H))
            mask = rng.random((4, H)) < 0.3
            m[mask] = rng.choice(special, mask.sum())
        out.append(m)
    return out


def run_ap(fmts, H, P, ms, clear_at=()):
    """Run the passes ``ms`` through a fresh AP (``clear`` before the passes in
    ``clear_at``); returns the h of every pass, checking the read/write schedule."""
    bundle = random_bundle(2, H, formats=fmts, cell="lstm")
    NB = math.ceil(H / P)
    width = acc_width(fmts, 2, H)
    ap = LSTMActivationPipeline(fmts, hidden=H, rows=P, acc_width=width,
                                sigmoid_lut=bundle.sigmoid_lut, tanh_lut=bundle.tanh_lut)
    reads = [ap.read_i, ap.read_f, ap.read_g, ap.read_o]
    results = []

    async def tb(ctx):
        for _ in range(NB + 1):             # the fill of c after the domain's reset
            await ctx.tick()
        for t, m_all in enumerate(ms):
            if t in clear_at:
                ctx.set(ap.clear, 1)
                await ctx.tick()
                ctx.set(ap.clear, 0)
                for _ in range(NB):
                    await ctx.tick()
            new_h = [None] * H
            ctx.set(ap.start, 1)
            issued, done_at, writes = [], None, []
            for cycle in range(NB + AP_ISSUE + LSTM_AP_STAGES + 2):
                answered = issued[cycle - AP_READ_LATENCY] if cycle >= AP_READ_LATENCY else None
                if answered is not None:
                    for port, vec in zip(reads, m_all):
                        for p in range(P):
                            j = answered * P + p
                            ctx.set(port.m[p], int(vec[j]) if j < H else 0)
                assert len({(ctx.get(r.en[p]), ctx.get(r.block[p]))
                            for r in reads for p in range(P)}) == 1
                issued.append(ctx.get(reads[0].block[0]) if ctx.get(reads[0].en[0]) else None)
                # Every row's copy of the write, decoded: bit b set only while block b is written.
                assert [int(ctx.get(ap.h_write[p])) for p in range(P)] == \
                    [ctx.get(ap.h_we) << ctx.get(ap.h_wblock)] * P
                if ctx.get(ap.h_we):
                    b = ctx.get(ap.h_wblock)
                    writes.append((cycle, b))
                    for p in range(P):
                        if b * P + p < H:
                            new_h[b * P + p] = ctx.get(ap.h_out[p])
                if ctx.get(ap.done):
                    done_at = cycle
                await ctx.tick()
                ctx.set(ap.start, 0)
            # Block b is read at AP_ISSUE + b and written LSTM_AP_STAGES later; done with the last.
            assert [c for c, _ in writes] == [AP_ISSUE + LSTM_AP_STAGES + b for b in range(NB)]
            assert [b for _, b in writes] == list(range(NB))
            assert done_at == AP_ISSUE + LSTM_AP_STAGES + NB - 1
            results.append(new_h)

    sim = Simulator(Harness(ap))
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return bundle, results


def golden_passes(bundle, fmts, ms, clear_at=()):
    c = np.zeros(ms[0].shape[1], np.int64)
    hs, cs = [], []
    for t, m in enumerate(ms):
        if t in clear_at:
            c = np.zeros_like(c)
        h, c = golden.lstm_activation(*m, c, bundle.sigmoid_lut, bundle.tanh_lut, fmts)
        hs.append(h.tolist())
        cs.append(c.copy())
    return hs, cs


@pytest.mark.parametrize("H,P", [(7, 3), (4, 4), (5, 1)])
@pytest.mark.parametrize("fmts", [Formats(), Formats(act_bits=12, act_frac=6, w_bits=6, w_frac=4,
                                                     acc_bits=20, lut_bits=8)])
def test_matches_golden_and_saturates_c(H, P, fmts):
    rng = np.random.default_rng(H + P + fmts.act_bits)
    cell = fmts.cell
    n = 2 * ((cell.max >> cell.frac) + 8)         # half of them past the cell format's limit
    ms = passes(fmts, H, rng, acc_width(fmts, 2, H), n)
    bundle, got = run_ap(fmts, H, P, ms)
    want, cs = golden_passes(bundle, fmts, ms)
    assert got == want
    # The run saturated c both ways (after the +1/−1 walk), and came back from it.
    mid = cs[n // 2 - 1]
    assert (mid[0::2] == cell.max).all() and (mid[1::2] == cell.min).all()


def test_clear_sets_c_to_zero():
    """``clear`` between passes: the h after it equals a pass from c = 0, and differs from one
    that kept c (so the test can fail)."""
    fmts, H, P = Formats(), 5, 2
    rng = np.random.default_rng(3)
    ms = passes(fmts, H, rng, acc_width(fmts, 2, H), 8)[2:6]
    bundle, got = run_ap(fmts, H, P, ms, clear_at=(2,))
    want, _ = golden_passes(bundle, fmts, ms, clear_at=(2,))
    kept, _ = golden_passes(bundle, fmts, ms)
    assert got == want and want[2] != kept[2]


def test_refuses():
    fmts = Formats()
    b = random_bundle(2, 3, cell="lstm")
    with pytest.raises(ValueError, match="rows must be ≥ 1"):
        LSTMActivationPipeline(fmts, hidden=3, rows=0, acc_width=40, sigmoid_lut=b.sigmoid_lut,
                               tanh_lut=b.tanh_lut)
    with pytest.raises(ValueError, match="acc_width must be ≥ acc_bits"):
        LSTMActivationPipeline(fmts, hidden=3, rows=2, acc_width=8, sigmoid_lut=b.sigmoid_lut,
                               tanh_lut=b.tanh_lut)
    bad = np.array(b.sigmoid_lut)
    bad[0] = -1
    with pytest.raises(ValueError, match="sigmoid_lut entries must lie in"):
        LSTMActivationPipeline(fmts, hidden=3, rows=2, acc_width=40, sigmoid_lut=bad,
                               tanh_lut=b.tanh_lut)
    bad = np.array(b.tanh_lut)
    bad[-1] = fmts.one + 1
    with pytest.raises(ValueError, match="tanh_lut entries must lie in"):
        LSTMActivationPipeline(fmts, hidden=3, rows=2, acc_width=40, sigmoid_lut=b.sigmoid_lut,
                               tanh_lut=bad)
