"""ActivationPipeline against golden.activation_pipeline: random and extreme delta memories
(including rows beyond acc_bits, as the MxV hands them over before the end-of-step saturation)
and hidden states (saturation on every narrowing), block order and timing, done pulse.

The AP borrows the MxV multipliers; here a test harness lends it two banks of P
PipelinedMultipliers through the same MultiplierBankSignature connection as the core, and the
testbench plays the delta memories (their rows AP_READ_LATENCY cycles after each read). Also the
parameters the AP refuses."""

import math

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from drnn_hw import golden
from drnn_hw.activation import AP_ISSUE, AP_STAGES, ActivationPipeline
from drnn_hw.bundle import random_bundle
from drnn_hw.multiplier import PipelinedMultiplier
from drnn_hw.mxv import AP_READ_LATENCY, acc_width
from drnn_hw.numerics import Formats, round_shift, saturate


class Lender(wiring.Component):
    """A bank of P PipelinedMultipliers lent on a flipped MultiplierBankSignature port (the MxV
    channel without its own operands)."""

    def __init__(self, signature):
        self.sig = signature
        super().__init__({"port": In(signature)})

    def elaborate(self, platform):
        m = Module()
        for p in range(self.sig.rows):
            m.submodules[f"mul{p}"] = mul = PipelinedMultiplier(self.sig.a_bits, self.sig.b_bits)
            m.d.comb += [mul.a.eq(self.port.a[p]), mul.b.eq(self.port.b[p]),
                         self.port.product[p].eq(mul.p)]
        return m


class Harness(Elaboratable):
    """The AP plus the two multiplier banks it borrows, connected as in the core."""

    def __init__(self, ap):
        self.ap = ap

    def elaborate(self, platform):
        m = Module()
        m.submodules.ap = ap = self.ap
        m.submodules.lend_r = lend_r = Lender(ap.mul_r.signature)
        m.submodules.lend_z = lend_z = Lender(ap.mul_z.signature)
        wiring.connect(m, ap=ap.mul_r, lender=lend_r.port)
        wiring.connect(m, ap=ap.mul_z, lender=lend_z.port)
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


@pytest.mark.parametrize("fmts", [Formats(act_bits=8, act_frac=4, w_bits=6, w_frac=4,
                                          acc_bits=16, lut_bits=6), Formats()])
def test_h_next_never_saturates(fmts):
    # What the AP's h′ adder rests on (drnn_hw.activation): for every σ output z in
    # [0, 2^A] and act codes h, n, the spec's sat(n + round(z·(h − n))) is the unclamped sum,
    # which the AP takes modulo 2^act_bits. Every (h, n) of an 8-bit format; the default's
    # extremes and random codes.
    act, A = fmts.act, fmts.act_frac
    if fmts.act_bits <= 8:
        codes = np.arange(act.min, act.max + 1)
    else:
        rng = np.random.default_rng(7)
        codes = np.concatenate([[act.min, act.min + 1, -1, 0, 1, act.max - 1, act.max],
                                rng.integers(act.min, act.max + 1, 400)])
    h, n = np.meshgrid(codes, codes)
    for z in range((1 << A) + 1):
        exact = n + round_shift(z * (h - n), A)
        assert np.array_equal(saturate(exact, fmts.act_bits), exact), z
        assert exact.min() >= act.min and exact.max() <= act.max


@pytest.mark.parametrize("H,P", [(7, 3), (4, 4), (5, 1)])
@pytest.mark.parametrize("fmts", [Formats(), Formats(act_bits=12, act_frac=6, w_bits=6, w_frac=4,
                                                     acc_bits=20, lut_bits=8)])
def test_matches_golden(H, P, fmts):
    bundle = random_bundle(2, H, formats=fmts)
    NB = math.ceil(H / P)
    width = acc_width(fmts, 2, H)
    ap = ActivationPipeline(fmts, hidden=H, rows=P, acc_width=width,
                            sigmoid_lut=bundle.sigmoid_lut, tanh_lut=bundle.tanh_lut)
    rng = np.random.default_rng(H + P + fmts.act_bits)
    todo = cases(fmts, H, rng, width)
    results = []
    reads_by_port = (ap.read_r, ap.read_z, ap.read_n)

    async def tb(ctx):
        for m_all, h in todo:
            def pad(v, b):
                return [int(v[b * P + p]) if b * P + p < H else 0 for p in range(P)]
            new_h = [None] * H
            ctx.set(ap.start, 1)
            writes, reads, done_at, issued = [], [], None, []
            for cycle in range(NB + AP_ISSUE + AP_STAGES + 2):
                # The memories answer the read of AP_READ_LATENCY cycles ago.
                answered = issued[cycle - AP_READ_LATENCY] if cycle >= AP_READ_LATENCY else None
                if answered is not None:
                    rows = (ap.read_r.m, ap.read_z.m, ap.read_n.m, ap.read_n.m_h)
                    for sig, vec in zip(rows, m_all):
                        for p, v in enumerate(pad(vec, answered)):
                            ctx.set(sig[p], v)
                # All three ports read the same block in the same cycle.
                # (and every row of a port: each has its own copy of the address)
                port_reads = {(ctx.get(r.en[p]), ctx.get(r.block[p]))
                              for r in reads_by_port for p in range(P)}
                assert len(port_reads) == 1
                (en, block), = port_reads
                issued.append(block if en else None)
                if en:
                    reads.append((cycle, block))
                h_blocks = {ctx.get(ap.h_block[p]) for p in range(P)}
                assert len(h_blocks) == 1          # every row reads the same block
                for p, v in enumerate(pad(h, h_blocks.pop())):
                    ctx.set(ap.h_in[p], v)
                _, _, we, wb, out, done, hw = await ctx.tick().sample(
                    ap.h_we, ap.h_wblock, ap.h_out, ap.done, ap.h_write)
                ctx.set(ap.start, 0)
                # Every row's copy of the write, decoded: bit b set only while block b is written.
                assert [int(hw[p]) for p in range(P)] == [we << wb] * P
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
        # The first read one cycle after start (AP_ISSUE = 1: a registered read address).
        assert AP_ISSUE == 1
        assert reads == [(b + 1, b) for b in range(NB)]
        assert writes == [(b + 1 + AP_STAGES, b) for b in range(NB)]
        assert done_at == NB + AP_STAGES


def _ap(fmts=Formats(), **overrides):
    bundle = random_bundle(2, 4, formats=fmts)
    kwargs = dict(hidden=4, rows=2, acc_width=acc_width(fmts, 2, 4),
                  sigmoid_lut=bundle.sigmoid_lut, tanh_lut=bundle.tanh_lut)
    return ActivationPipeline(fmts, **{**kwargs, **overrides})


@pytest.mark.parametrize("overrides,name", [
    (dict(rows=0), "rows"),
    (dict(hidden=0), "hidden"),
    (dict(acc_width=Formats().acc_bits - 1), "acc_width"),
    (dict(sigmoid_lut=[0] * 7), "sigmoid_lut"),
    (dict(tanh_lut=[0] * (Formats().lut_entries + 1)), "tanh_lut"),
    (dict(tanh_lut=[Formats().act.max + 1] * Formats().lut_entries), "tanh_lut"),
    (dict(sigmoid_lut=[-1] * Formats().lut_entries), "sigmoid_lut"),
    (dict(sigmoid_lut=[(1 << Formats().act_frac) + 1] * Formats().lut_entries), "sigmoid_lut"),
])
def test_refuses_what_it_cannot_build(overrides, name):
    with pytest.raises(ValueError, match=name):
        _ap(**overrides)
    # The limits of the σ table are accepted (and elaborate).
    n = Formats().lut_entries
    Fragment.get(_ap(sigmoid_lut=[0] * (n // 2) + [1 << Formats().act_frac] * (n - n // 2)),
                 None)
