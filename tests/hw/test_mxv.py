"""MxVChannel: exact accumulation of K·P products per slot (back-to-back slots on the same
block included), the M_nx / M_nh split of channel n, padding rows, the end-of-step saturation
(stale blocks), the AP's reads right behind the last writes, bias reload, the
AP's use of the column-0 multipliers, the latencies the AP is scheduled with (measured), and the
parameters the channel refuses."""

import math

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from drnn_hw.mxv import (AP_MUL_LATENCY, AP_READ_LATENCY, MXV_STAGES, DeltaReadSignature,
                         MxVChannel, SlotSignature)
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
    dut = MxVChannel(FMTS, inputs=I, hidden=H, rows=P, columns=K, bias=bias,
                     bias_h=bias_h if split else None)
    pad = np.zeros(NB * P - H, np.int64)
    # The spec's memories: exact within a step, saturated to acc_bits at its end.
    model = [np.concatenate([bias, pad]), np.concatenate([bias_h, pad])]
    wf = FMTS.weight
    outs = [dut.ap_read.m] + ([dut.ap_read.m_h] if split else [])
    saw_saturation = []

    async def end_of_step(ctx, order):
        """The AP's reads, one block per cycle in ``order``: the rows as the AP sees them
        narrow to the same activation value as the spec's saturated rows (checked through the
        saturation itself), and the memories are saturated for the next step."""
        for b in order:
            ctx.set(dut.ap_read.en, (1 << P) - 1)   # every row's copy
            ctx.set(dut.ap_read.block, [b] * P)
            await ctx.tick()            # one cycle (test_ap_latencies): the rows are there now
            for mem, out in zip(model, outs):
                got = np.array([ctx.get(out[p]) for p in range(P)])
                want = mem[b * P:(b + 1) * P]
                # Exact (guard bits, no wrap) until the spec saturates at the end of the step.
                np.testing.assert_array_equal(np.clip(got, acc.min, acc.max),
                                              np.clip(want, acc.min, acc.max))
        ctx.set(dut.ap_read.en, 0)
        for mem in model:
            np.clip(mem, acc.min, acc.max, out=mem)

    async def tb(ctx):
        await ctx.tick().repeat(dut.bias_load_cycles)    # the fill after the domain's reset
        for round_ in range(3):
            slots = []
            for _ in range((I + H) // K):
                # A block again in the next cycle only with one block (the issue schedule's
                # rule, see MxVChannel.slot); two cycles apart, which the RAM alone carries,
                # often.
                if NB == 1:
                    blk = 0
                elif len(slots) >= 2 and rng.random() < 0.4:
                    blk = slots[-2][0] if slots[-2][0] != slots[-1][0] else \
                        int((slots[-1][0] + 1) % NB)
                else:
                    blk = int(rng.choice([b for b in range(NB) if not slots or b != slots[-1][0]]))
                deltas = [int(v) for v in rng.choice([-65536, 65535, 0, 1, -1, 300], K)]
                is_x = [int(v) for v in rng.integers(0, 2, K)]
                # Padding rows (past H) hold weight 0 in the bank.
                weights = [[int(v) if blk * P + p < H else 0
                            for p, v in enumerate(rng.integers(wf.min, wf.max + 1, P))]
                           for _ in range(K)]
                slots.append((blk, deltas, is_x, weights))
            for blk, deltas, is_x, weights in slots:
                ctx.set(dut.slot.valid, 1)
                ctx.set(dut.slot.block, blk)
                for k in range(K):
                    for p in range(P):
                        ctx.set(dut.slot.delta[k][p], deltas[k])
                    ctx.set(dut.slot.is_x[k], is_x[k])
                    for p in range(P):
                        ctx.set(dut.slot.weight[k][p], weights[k][p])
                await ctx.tick()
                for k in range(K):
                    for p in range(P):
                        which = 0 if (not split or is_x[k]) else 1
                        model[which][blk * P + p] += deltas[k] * weights[k][p]
            ctx.set(dut.slot.valid, 0)
            # A cycle without a slot carries any delta and weight (drive_slot_deltas leaves
            # them as they are): the channel must not add them.
            for k in range(K):
                for p in range(P):
                    ctx.set(dut.slot.delta[k][p], 12345)
                    ctx.set(dut.slot.weight[k][p], wf.max)
            # The last slot's write comes MXV_STAGES cycles after it: the first AP read may
            # come in the same cycle (the read port is transparent to the write).
            for _ in range(MXV_STAGES - 1):
                await ctx.tick()
            saw_saturation.append(any(np.abs(mm[:H]).max() > acc.max for mm in model))
            order = [int(b) for b in rng.permutation(NB)]
            if slots[-1][0] in order:    # the block written last is read first
                order.remove(slots[-1][0])
                order.insert(0, slots[-1][0])
            await end_of_step(ctx, order)
        # The AP's products on the column-0 multipliers.
        a = rng.integers(-65536, 65536, P)
        bb = rng.integers(0, 257, P)
        ctx.set(dut.ap_mul.en, (1 << P) - 1)
        for p in range(P):
            ctx.set(dut.ap_mul.a[p], int(a[p]))
            ctx.set(dut.ap_mul.b[p], int(bb[p]))
        await ctx.tick()
        ctx.set(dut.ap_mul.en, 0)
        for _ in range(AP_MUL_LATENCY - 1):
            await ctx.tick()
        assert [ctx.get(dut.ap_mul.product[p]) for p in range(P)] == \
            [int(u * v) for u, v in zip(a, bb)]
        ctx.set(dut.load_bias, 1)
        await ctx.tick()
        ctx.set(dut.load_bias, 0)
        await ctx.tick().repeat(dut.bias_load_cycles - 1)
        model[0][:H], model[1][:H] = bias, bias_h
        await end_of_step(ctx, list(range(NB)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert any(saw_saturation)   # the sums did leave the accumulator range


@pytest.mark.parametrize("K", [1, 2])
def test_ap_latencies(K):
    """The cycles from a read to its rows and from borrowed operands to their products, measured
    (the AP times its stages with AP_READ_LATENCY and AP_MUL_LATENCY), with a slot offered one
    cycle earlier (its t0 meets the borrow): the AP's operands win and the slot's products are
    not accumulated."""
    H, P = 5, 2
    bias = np.arange(1, H + 1) * 1000
    dut = MxVChannel(FMTS, inputs=3, hidden=H, rows=P, columns=K, bias=bias)
    seen = {"rows": [], "product": []}

    async def tb(ctx):
        await ctx.tick().repeat(dut.bias_load_cycles)    # the fill after the domain's reset
        ctx.set(dut.slot.valid, 1)
        for p in range(P):
            for k in range(K):
                ctx.set(dut.slot.delta[k][p], 11)
                ctx.set(dut.slot.weight[k][p], 13)
        ctx.set(dut.slot.block, 1)
        await ctx.tick()
        ctx.set(dut.slot.valid, 0)
        ctx.set(dut.ap_read.en, (1 << P) - 1)   # every row's copy
        ctx.set(dut.ap_read.block, [1] * P)    # rows 2, 3: biases 3000, 4000 (power-up)
        ctx.set(dut.ap_mul.en, (1 << P) - 1)
        for p in range(P):
            ctx.set(dut.ap_mul.a[p], -3 - p)
            ctx.set(dut.ap_mul.b[p], 7)
        for cycle in range(1, 6):
            await ctx.tick()
            ctx.set(dut.ap_read.en, 0)
            ctx.set(dut.ap_mul.en, 0)
            ctx.set(dut.slot.valid, 0)
            seen["rows"].append([ctx.get(dut.ap_read.m[p]) for p in range(P)])
            seen["product"].append([ctx.get(dut.ap_mul.product[p]) for p in range(P)])
        # Block 1 again, well after the slot would have landed: still the biases.
        ctx.set(dut.ap_read.en, (1 << P) - 1)   # every row's copy
        await ctx.tick()
        seen["after"] = [ctx.get(dut.ap_read.m[p]) for p in range(P)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert [c for c, rows in enumerate(seen["rows"], 1) if rows == [3000, 4000]][0] == \
        AP_READ_LATENCY
    products = [c for c, prod in enumerate(seen["product"], 1) if prod == [-21, -28]]
    assert products and products[0] == AP_MUL_LATENCY
    assert seen["after"] == [3000, 4000]


def _channel(**overrides):
    kwargs = dict(inputs=3, hidden=4, rows=2, columns=2, bias=np.zeros(4, np.int64))
    return MxVChannel(FMTS, **{**kwargs, **overrides})


@pytest.mark.parametrize("overrides,name", [
    (dict(rows=0), "rows"),
    (dict(columns=0), "columns"),
    (dict(hidden=0, bias=[]), "hidden"),
    (dict(inputs=-1), "inputs"),
    (dict(bias=np.zeros(3, np.int64)), "bias"),
    (dict(bias=np.zeros((1, 4), np.int64)), "bias"),
    (dict(bias_h=np.zeros(5, np.int64)), "bias_h"),
    (dict(bias=np.array([0, 0, FMTS.acc.max + 1, 0])), "bias"),
    (dict(bias_h=np.array([FMTS.acc.min - 1, 0, 0, 0])), "bias_h"),
])
def test_refuses_what_it_cannot_build(overrides, name):
    with pytest.raises(ValueError, match=name):
        _channel(**overrides)
    # The format's limits are accepted (and elaborate).
    Fragment.get(_channel(bias=np.full(4, FMTS.acc.min), bias_h=np.full(4, FMTS.acc.max)), None)


def test_signatures_refuse_empty_shapes():
    good = dict(rows=2, columns=2, delta_bits=17, w_bits=16, blocks=3)
    for name in good:
        with pytest.raises(ValueError, match=name):
            SlotSignature(**{**good, name: 0})
    good = dict(rows=2, acc_width=40, blocks=3)
    for name in good:
        with pytest.raises(ValueError, match=name):
            DeltaReadSignature(**{**good, name: 0})
    assert "m_h" in DeltaReadSignature(**good, split=True).members
    assert "m_h" not in DeltaReadSignature(**good).members


def test_saturation_at_the_format_edges():
    """Rows that end a step just inside, on and just beyond the accumulator format's limits:
    the AP reads M exactly, and the next step starts from sat(M) (the spec's end-of-step
    rule), on both sides, also when no product is added to it."""
    P, K = 8, 1
    acc = FMTS.acc
    # Block 0 ends above acc.max by these amounts, block 1 below acc.min by them.
    over = [-1, 0, 1, 2, 31, 32, -32, -33]
    bias = [acc.max - 60] * P + [acc.min + 60] * P
    weights = [[60 + d for d in over], [-60 - d for d in over]]
    dut = MxVChannel(FMTS, inputs=2, hidden=2 * P, rows=P, columns=K, bias=np.array(bias))
    want = [[acc.max + d for d in over], [acc.min - d for d in over]]
    seen = []

    async def step(ctx, delta):
        for blk in range(2):
            ctx.set(dut.slot.valid, 1)
            ctx.set(dut.slot.block, blk)
            ctx.set(dut.slot.delta[0], [delta] * P)
            ctx.set(dut.slot.weight[0], weights[blk])
            await ctx.tick()
        ctx.set(dut.slot.valid, 0)
        await ctx.tick().repeat(MXV_STAGES)
        for blk in range(2):
            ctx.set(dut.ap_read.en, (1 << P) - 1)
            ctx.set(dut.ap_read.block, [blk] * P)
            await ctx.tick()
            seen.append([ctx.get(dut.ap_read.m[p]) for p in range(P)])
        ctx.set(dut.ap_read.en, 0)
        await ctx.tick()

    async def tb(ctx):
        await ctx.tick().repeat(dut.bias_load_cycles)
        await step(ctx, 1)     # M = bias + w: the edges
        await step(ctx, 0)     # nothing added: the saturated start values themselves
        await step(ctx, 1)     # from them, once more

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    clipped = [list(np.clip(w, acc.min, acc.max)) for w in want]
    again = [[int(c) + 60 + d for c, d in zip(clipped[0], over)],
             [int(c) - 60 - d for c, d in zip(clipped[1], over)]]
    assert seen[0:2] == want
    assert seen[2:4] == clipped
    assert seen[4:6] == again
