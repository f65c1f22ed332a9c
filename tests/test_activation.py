"""ActivationPipeline against golden.activation_pipeline: random and extreme delta memories and
hidden states (saturation on every narrowing), block order and timing, done pulse.

The AP borrows the MxV multipliers; here a test harness supplies two registered multipliers."""

import math

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator

from drnn_hw import golden
from drnn_hw.activation import AP_STAGES, ActivationPipeline
from drnn_hw.bundle import random_bundle
from drnn_hw.numerics import Formats


class Harness(Elaboratable):
    """The AP plus the two lane-0 multiplier rows it borrows (registered, like the MxV's)."""

    def __init__(self, ap):
        self.ap = ap

    def elaborate(self, platform):
        m = Module()
        m.submodules.ap = ap = self.ap
        for p in range(ap.P):
            m.d.sync += [ap.mul_r_prod[p].eq(ap.mul_r_a[p] * ap.mul_r_b[p]),
                         ap.mul_z_prod[p].eq(ap.mul_z_a[p] * ap.mul_z_b[p])]
        return m


def cases(fmts, H, rng):
    acc, act = fmts.acc, fmts.act
    special_m = [acc.min, acc.max, 0, -1, 1, act.max << fmts.w_frac, (act.min << fmts.w_frac) - 1,
                 (1 << (fmts.w_frac - 1)), -(1 << (fmts.w_frac - 1)), 5 << fmts.w_frac]
    special_h = [act.min, act.max, 0, fmts.one, -fmts.one]
    out = []
    for _ in range(3):
        m = rng.integers(acc.min, acc.max + 1, (4, H))
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
    ap = ActivationPipeline(fmts, hidden=H, pe=P, sigmoid_lut=bundle.sigmoid_lut,
                            tanh_lut=bundle.tanh_lut)
    rng = np.random.default_rng(H + P + fmts.act_bits)
    todo = cases(fmts, H, rng)
    results = []

    async def tb(ctx):
        for m_all, h in todo:
            def pad(v, b):
                return [int(v[b * P + p]) if b * P + p < H else 0 for p in range(P)]
            new_h = [None] * H
            ctx.set(ap.start, 1)
            writes, sats, done_at = [], [], None
            for cycle in range(NB + AP_STAGES + 2):
                blk = ctx.get(ap.block)
                if ctx.get(ap.saturate):
                    sats.append((cycle, blk))
                for sig, vec in zip((ap.m_r, ap.m_z, ap.m_nx, ap.m_nh), m_all):
                    for p, v in enumerate(pad(vec, blk)):
                        ctx.set(sig[p], v)
                for p, v in enumerate(pad(h, blk)):
                    ctx.set(ap.h_in[p], v)
                _, _, we, wb, out, done = await ctx.tick().sample(ap.h_we, ap.h_block, ap.h_out,
                                                                  ap.done)
                ctx.set(ap.start, 0)
                if we:
                    writes.append((cycle, wb))
                    for p in range(P):
                        if wb * P + p < H:
                            new_h[wb * P + p] = out[p]
                if done:
                    done_at = cycle
            results.append((new_h, writes, sats, done_at))

    sim = Simulator(Harness(ap))
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    for (m_all, h), (new_h, writes, sats, done_at) in zip(todo, results):
        want = golden.activation_pipeline(*m_all, h, bundle.sigmoid_lut, bundle.tanh_lut, fmts)
        assert new_h == list(want)
        assert sats == [(b, b) for b in range(NB)]
        assert writes == [(b + AP_STAGES, b) for b in range(NB)]
        assert done_at == NB - 1 + AP_STAGES
