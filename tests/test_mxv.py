"""MxVChannel: exact accumulation of K·P products per slot (back-to-back slots on the same
block included), the M_nx / M_nh split of channel n, padding rows, saturated read-back and
write-back, bias reload, and the AP's use of the lane-0 multipliers."""

import math

import numpy as np
import pytest
from amaranth.sim import Simulator

from drnn_hw.mxv import MxVChannel
from drnn_hw.numerics import Formats

FMTS = Formats(acc_bits=24)   # narrow accumulator: sums leave its range, saturation shows


@pytest.mark.parametrize("H,P,K", [(6, 4, 2), (5, 5, 1), (3, 1, 2), (7, 3, 2)])
@pytest.mark.parametrize("split", [False, True])
def test_accumulate_split_saturate(H, P, K, split):
    I = 20
    NB = math.ceil(H / P)
    rng = np.random.default_rng(H * 10 + P + K + split)
    acc = FMTS.acc
    bias = rng.integers(acc.min // 2, acc.max // 2, H)
    bias_h = rng.integers(acc.min // 2, acc.max // 2, H)
    dut = MxVChannel(FMTS, inputs=I, hidden=H, pe=P, lanes=K, bias=bias,
                     bias_h=bias_h if split else None)
    model = [np.concatenate([bias, np.zeros(NB * P - H, np.int64)]),
             np.concatenate([bias_h, np.zeros(NB * P - H, np.int64)])]
    wf = FMTS.weight

    def read_block(ctx, b):
        ctx.set(dut.rd_block, b)
        outs = [dut.rd_m] + ([dut.rd_m_h] if split else [])
        return [[ctx.get(o[p]) for p in range(P)] for o in outs]

    def check_all(ctx):
        for b in range(NB):
            got = read_block(ctx, b)
            for mem, g in zip(model, got):
                want = np.clip(mem[b * P:(b + 1) * P], acc.min, acc.max)
                assert g == list(want), b

    saw_saturation = []

    async def tb(ctx):
        check_all(ctx)
        for round_ in range(2):
            slots = []
            for _ in range((I + H) // K):
                blk = int(rng.integers(0, NB)) if rng.random() < 0.6 else (slots[-1][0] if slots else 0)
                deltas = [int(v) for v in rng.choice([-65536, 65535, 0, 1, -1, 300], K)]
                is_x = [int(v) for v in rng.integers(0, 2, K)]
                weights = [[int(v) for v in rng.integers(wf.min, wf.max + 1, P)] for _ in range(K)]
                slots.append((blk, deltas, is_x, weights))
            for blk, deltas, is_x, weights in slots:
                ctx.set(dut.valid, 1)
                ctx.set(dut.block, blk)
                for k in range(K):
                    ctx.set(dut.delta[k], deltas[k])
                    ctx.set(dut.is_x[k], is_x[k])
                    for p in range(P):
                        ctx.set(dut.weight[k][p], weights[k][p])
                await ctx.tick()
                for k in range(K):
                    for p in range(P):
                        if blk * P + p >= H:
                            continue   # padding rows: weights there are 0 in the bank
                        which = 0 if (not split or is_x[k]) else 1
                        model[which][blk * P + p] += deltas[k] * weights[k][p]
            ctx.set(dut.valid, 0)
            await ctx.tick()
            await ctx.tick()
            saw_saturation.append(any(np.abs(mm[:H]).max() > acc.max for mm in model))
            check_all(ctx)
            # End-of-step saturation, one block per cycle, written back.
            for b in range(NB):
                ctx.set(dut.rd_block, b)
                ctx.set(dut.rd_saturate, 1)
                await ctx.tick()
                for mm in model:
                    mm[b * P:(b + 1) * P] = np.clip(mm[b * P:(b + 1) * P], acc.min, acc.max)
            ctx.set(dut.rd_saturate, 0)
            check_all(ctx)
        # The AP's products on the lane-0 multipliers.
        a = rng.integers(-65536, 65536, P)
        bb = rng.integers(0, 257, P)
        ctx.set(dut.ap_mul, 1)
        for p in range(P):
            ctx.set(dut.ap_a[p], int(a[p]))
            ctx.set(dut.ap_b[p], int(bb[p]))
        await ctx.tick()
        ctx.set(dut.ap_mul, 0)
        assert [ctx.get(dut.ap_prod[p]) for p in range(P)] == [int(u * v) for u, v in zip(a, bb)]
        ctx.set(dut.load_bias, 1)
        await ctx.tick()
        ctx.set(dut.load_bias, 0)
        model[0][:H], model[1][:H] = bias, bias_h
        check_all(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert any(saw_saturation)   # the sums did leave the accumulator range
