"""ActivationPipeline against golden.activation_pipeline: random and extreme delta memories
(including rows beyond acc_bits, as the MxV hands them over before the end-of-step saturation)
and hidden states (saturation on every narrowing), block order and timing, done pulse.

The AP borrows the MxV multipliers; here a test harness supplies two multiplier rows with the
MxV's pipeline (operand and product registers), and the testbench plays the memories' read
latency."""

import math

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator

from drnn_hw import golden
from drnn_hw.activation import AP_STAGES, ActivationPipeline
from drnn_hw.bundle import random_bundle
from drnn_hw.mxv import AP_MUL_LATENCY, AP_READ_LATENCY, acc_width
from drnn_hw.numerics import Formats, saturate


class Harness(Elaboratable):
    """The AP plus the two lane-0 multiplier rows it borrows (operand and product registers,
    like the MxV's)."""

    def __init__(self, ap):
        self.ap = ap

    def elaborate(self, platform):
        assert AP_MUL_LATENCY == 2
        m = Module()
        m.submodules.ap = ap = self.ap
        for p in range(ap.P):
            for a, b, prod in ((ap.mul_r_a[p], ap.mul_r_b[p], ap.mul_r_prod[p]),
                               (ap.mul_z_a[p], ap.mul_z_b[p], ap.mul_z_prod[p])):
                ra, rb = Signal(a.shape()), Signal(b.shape())
                m.d.sync += [ra.eq(a), rb.eq(b), prod.eq(ra * rb)]
        return m


def cases(fmts, H, rng, width):
    acc, act = fmts.acc, fmts.act
    wide_min, wide_max = -(1 << (width - 1)), (1 << (width - 1)) - 1
    special_m = [acc.min, acc.max, acc.min - 1, acc.max + 1, wide_min, wide_max, 0, -1, 1, act.max << fmts.w_frac, (act.min << fmts.w_frac) - 1,
                 (1 << (fmts.w_frac - 1)), -(1 << (fmts.w_frac - 1)), 5 << fmts.w_frac]
    special_h = [act.min, act.max, 0, fmts.one, -fmts.one]
    out = []
    for _ in range(3):
        m = rng.integers(wide_min, wide_max + 1, (4, H))
        m[:, ::2] = rng.integers(-(8 << (fmts.act_frac + fmts.w_frac)),
                                 8 << (fmts.act_frac + fmts.w_frac), (4, (H + 1) // 2))
        mask = rng.random((4, H)) < 0.3
        m[mask] = rng.choice(special_m, mask.sum())
        h = rng.integers(act.min, act.max + 1, H)
        h[::3] = rng.choice(special_h, len(h[::3]))
        out.append((m, h))
    return out


@pytest.mark.parametrize("H,P", [(7, 3), (4, 4), (5, 1)])
@pytest.mark.parametrize("fmts", [Formats(), Formats(act_bits=12, act_frac=6, w_bits=6, w_frac=4,
                                                     acc_bits=20, lut_bits=8)])
def test_matches_golden(H, P, fmts):
    bundle = random_bundle(2, H, formats=fmts)
    NB = math.ceil(H / P)
    width = acc_width(fmts, 2, H)
    ap = ActivationPipeline(fmts, hidden=H, pe=P, acc_width=width,
                            sigmoid_lut=bundle.sigmoid_lut, tanh_lut=bundle.tanh_lut)
    rng = np.random.default_rng(H + P + fmts.act_bits)
    todo = cases(fmts, H, rng, width)
    results = []
    assert AP_READ_LATENCY == 1

    async def tb(ctx):
        for m_all, h in todo:
            def pad(v, b):
                return [int(v[b * P + p]) if b * P + p < H else 0 for p in range(P)]
            new_h = [None] * H
            ctx.set(ap.start, 1)
            writes, reads, done_at, last_read = [], [], None, None
            for cycle in range(NB + AP_STAGES + 2):
                if last_read is not None:     # the memories answer the previous cycle's read
                    for sig, vec in zip((ap.m_r, ap.m_z, ap.m_nx, ap.m_nh), m_all):
                        for p, v in enumerate(pad(vec, last_read)):
                            ctx.set(sig[p], v)
                last_read = ctx.get(ap.block) if ctx.get(ap.read) else None
                if last_read is not None:
                    reads.append((cycle, last_read))
                for p, v in enumerate(pad(h, ctx.get(ap.h_block))):
                    ctx.set(ap.h_in[p], v)
                _, _, we, wb, out, done = await ctx.tick().sample(ap.h_we, ap.h_wblock, ap.h_out,
                                                                  ap.done)
                ctx.set(ap.start, 0)
                if we:
                    writes.append((cycle, wb))
                    for p in range(P):
                        if wb * P + p < H:
                            new_h[wb * P + p] = out[p]
                if done:
                    done_at = cycle
            results.append((new_h, writes, reads, done_at))

    sim = Simulator(Harness(ap))
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    for (m_all, h), (new_h, writes, reads, done_at) in zip(todo, results):
        # The spec: the memories are saturated to acc_bits at the end of the step.
        m_sat = saturate(m_all, fmts.acc_bits)
        want = golden.activation_pipeline(*m_sat, h, bundle.sigmoid_lut, bundle.tanh_lut, fmts)
        assert new_h == list(want)
        assert reads == [(b, b) for b in range(NB)]
        assert writes == [(b + AP_STAGES, b) for b in range(NB)]
        assert done_at == NB - 1 + AP_STAGES
