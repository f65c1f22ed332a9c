"""CompressedMxVChannel on its own: the AP's read of a word in the cycle of its write, when the
word's lanes stand for a saturated row (the flags the AP's previous read set), takes the write
(the core-level tests in test_core_compressed.py cover the rest of the channel)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from drnn_hw.mxv import MXV_STAGES
from drnn_hw.mxv_compressed import CompressedMxVChannel
from drnn_hw.numerics import Formats

FMTS = Formats(acc_bits=24)   # narrow accumulator: one step's sums leave its range


@pytest.mark.parametrize("K", [1, 2])
@pytest.mark.parametrize("sign", [1, -1])
def test_ap_read_in_the_write_cycle_of_a_saturated_word(K, sign):
    H, P, I = 4, 2, 8
    NB = H // P
    acc = FMTS.acc
    bias = [acc.max // 2 * sign] * H
    dut = CompressedMxVChannel(FMTS, inputs=I, hidden=H, rows=P, columns=K, bias=bias)
    big, w = 65535 * sign, FMTS.weight.max   # one product ≈ 2^23, the format's edge

    async def slot(ctx, deltas, block=0):
        ctx.set(dut.slot.valid, 1)
        for k in range(K):
            ctx.set(dut.slot.is_x[k], 1)
            for p in range(P):
                ctx.set(dut.slot.delta[k][p], deltas[k])
                ctx.set(dut.slot.weight[k][p], w)
                ctx.set(dut.slot.index[k][p], block)
        await ctx.tick()
        ctx.set(dut.slot.valid, 0)

    async def read(ctx, block):
        """The AP's read of ``block``: the rows one cycle later."""
        ctx.set(dut.ap_read.en, (1 << P) - 1)
        ctx.set(dut.ap_read.block, [block] * P)
        await ctx.tick()
        ctx.set(dut.ap_read.en, 0)
        return [ctx.get(dut.ap_read.m[p]) for p in range(P)]

    async def tb(ctx):
        await ctx.tick().repeat(dut.bias_load_cycles)
        # Step 1: block 0's rows leave the format; the AP's read saturates them (every
        # lane's flag: lane 0 to the format's edge, the others to 0).
        want = bias[0]
        for _ in range(2):
            await slot(ctx, [big] * K)
            want += K * big * w
        await ctx.tick().repeat(MXV_STAGES + 2)
        assert await read(ctx, 0) == [want] * P
        edge = acc.max if sign > 0 else acc.min
        assert abs(want) > acc.max      # the sums did leave the accumulator range
        await ctx.tick().repeat(3)
        # Step 2: one slot on block 0 (every lane), read in the cycle of its write
        # (MXV_STAGES - 1 ticks after the slot's cycle, as the dense channel's): the write
        # started from the flags' values and the read must show it, not the flags'.
        small = -3 * sign
        await slot(ctx, [small] * K)
        await ctx.tick().repeat(MXV_STAGES - 1)
        assert await read(ctx, 0) == [edge + K * small * w] * P
        # Block 1 was never written: its biases.
        assert await read(ctx, 1) == [bias[0]] * P

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
