"""MxVChannel: exact accumulation of K·P products per slot (back-to-back slots on the same
block included), the M_nx / M_nh split of channel n, padding rows, the end-of-step saturation
(stale blocks), the AP's reads right behind the last writes, bias reload (fresh blocks), and
the AP's use of the lane-0 multipliers."""

import math

import numpy as np
import pytest
from amaranth.sim import Simulator

from drnn_hw.mxv import AP_MUL_LATENCY, AP_READ_LATENCY, MXV_STAGES, MxVChannel
from drnn_hw.numerics import Formats

FMTS = Formats(acc_bits=24)   # narrow accumulator: sums leave its range, saturation shows


@pytest.mark.parametrize("H,P,K", [(6, 4, 2), (5, 5, 1), (3, 1, 2), (7, 3, 2), (4, 4, 2)])
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
    pad = np.zeros(NB * P - H, np.int64)
    # The spec's memories: exact within a step, saturated to acc_bits at its end.
    model = [np.concatenate([bias, pad]), np.concatenate([bias_h, pad])]
    wf = FMTS.weight
    outs = [dut.ap_m] + ([dut.ap_m_h] if split else [])
    saw_saturation = []

    async def end_of_step(ctx, order):
        """The AP's reads, one block per cycle in ``order``: the rows as the AP sees them
        narrow to the same activation value as the spec's saturated rows (checked through the
        saturation itself), and the memories are saturated for the next step."""
        for b in order:
            ctx.set(dut.ap_read, 1)
            ctx.set(dut.ap_block, b)
            await ctx.tick()            # AP_READ_LATENCY = 1: the rows are there now
            for mem, out in zip(model, outs):
                got = np.array([ctx.get(out[p]) for p in range(P)])
                want = mem[b * P:(b + 1) * P]
                # Exact (guard bits, no wrap) until the spec saturates at the end of the step.
                np.testing.assert_array_equal(np.clip(got, acc.min, acc.max),
                                              np.clip(want, acc.min, acc.max))
        ctx.set(dut.ap_read, 0)
        for mem in model:
            np.clip(mem, acc.min, acc.max, out=mem)

    async def tb(ctx):
        assert AP_READ_LATENCY == 1
        for round_ in range(3):
            slots = []
            for _ in range((I + H) // K):
                blk = int(rng.integers(0, NB)) if rng.random() < 0.6 else (slots[-1][0] if slots else 0)
                deltas = [int(v) for v in rng.choice([-65536, 65535, 0, 1, -1, 300], K)]
                is_x = [int(v) for v in rng.integers(0, 2, K)]
                # Padding rows (past H) hold weight 0 in the bank.
                weights = [[int(v) if blk * P + p < H else 0
                            for p, v in enumerate(rng.integers(wf.min, wf.max + 1, P))]
                           for _ in range(K)]
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
                        which = 0 if (not split or is_x[k]) else 1
                        model[which][blk * P + p] += deltas[k] * weights[k][p]
            ctx.set(dut.valid, 0)
            # The last slot's write lands MXV_STAGES cycles after it: the first AP read may
            # come in that very cycle (it sees the write).
            for _ in range(MXV_STAGES - 1):
                await ctx.tick()
            saw_saturation.append(any(np.abs(mm[:H]).max() > acc.max for mm in model))
            order = [int(b) for b in rng.permutation(NB)]
            if slots[-1][0] in order:    # the block written last is read first
                order.remove(slots[-1][0])
                order.insert(0, slots[-1][0])
            await end_of_step(ctx, order)
        # The AP's products on the lane-0 multipliers.
        a = rng.integers(-65536, 65536, P)
        bb = rng.integers(0, 257, P)
        ctx.set(dut.ap_mul, 1)
        for p in range(P):
            ctx.set(dut.ap_a[p], int(a[p]))
            ctx.set(dut.ap_b[p], int(bb[p]))
        await ctx.tick()
        ctx.set(dut.ap_mul, 0)
        for _ in range(AP_MUL_LATENCY - 1):
            await ctx.tick()
        assert [ctx.get(dut.ap_prod[p]) for p in range(P)] == [int(u * v) for u, v in zip(a, bb)]
        ctx.set(dut.load_bias, 1)
        await ctx.tick()
        ctx.set(dut.load_bias, 0)
        model[0][:H], model[1][:H] = bias, bias_h
        await end_of_step(ctx, list(range(NB)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert any(saw_saturation)   # the sums did leave the accumulator range
