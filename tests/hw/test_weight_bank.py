"""WeightBank, the issue slot's weight-read stage: every word read through every port equals the
bundle's weights (layout col·NB + b, rows ≥ H zero), port k at ``entry[k].addr + block``, one
cycle after the slot, ports independent; the slot's deltas (0 for an empty column or no slot),
x/h flags, valid bit and block come out with the weights, the same on all three channels; the
parameters it refuses."""

import math

import numpy as np
import pytest
from amaranth.sim import Simulator

from drnn_hw.bundle import random_bundle
from drnn_hw.delta_encoder import address_width
from drnn_hw.weight_bank import CHANNELS, WeightBank


def expected_word(bundle, channel, col, block, P):
    I, H = bundle.input_size, bundle.hidden_size
    out = []
    for p in range(P):
        row = block * P + p
        if row >= H:
            out.append(0)
        elif col < I:
            out.append(int(bundle.w_x[channel, row, col]))
        else:
            out.append(int(bundle.w_h[channel, row, col - I]))
    return out


@pytest.mark.parametrize("I,H,P,K", [(3, 5, 2, 2), (1, 3, 4, 1), (4, 8, 8, 2), (2, 7, 3, 2)])
def test_slot_reads(I, H, P, K):
    bundle = random_bundle(I, H, seed=I + H, weight_scale=3.0)
    NB = math.ceil(H / P)
    depth = (I + H) * NB
    dut = WeightBank(bundle, rows=P, columns=K, addr_bits=address_width(I, H, P))
    rng = np.random.default_rng(0)
    # Port k walks the addresses in a different order from port 0.
    orders = [list(range(depth))] + [list(rng.permutation(depth)) for _ in range(K - 1)]
    checked = set()

    def offer(i):
        """Slot i: port k reads address orders[k][i]; random deltas, flags, validity."""
        targets = [int(orders[k][i]) for k in range(K)]
        return dict(targets=targets, block=min(i % NB, *targets),
                    valid=int(rng.random() < 0.8),
                    used=int(rng.integers(1, K + 1)),        # columns holding a delta (a prefix)
                    deltas=[int(v) for v in rng.integers(-65536, 65536, K)],
                    is_x=[int(v) for v in rng.integers(0, 2, K)])

    async def tb(ctx):
        prev = None
        for i in range(depth + 1):
            s = offer(i) if i < depth else dict(offer(0), valid=0)
            ctx.set(dut.issue.valid, s["valid"])
            ctx.set(dut.issue.block, s["block"])
            ctx.set(dut.issue.column_valid, (1 << s["used"]) - 1)
            for k in range(K):
                ctx.set(dut.issue.entry[k].addr, s["targets"][k] - s["block"])
                for c in range(len(CHANNELS)):     # the sender's copies, one per memory
                    ctx.set(dut.issue.word[c][k], s["targets"][k])
                ctx.set(dut.issue.entry[k].delta, s["deltas"][k])
                ctx.set(dut.issue.entry[k].is_x, s["is_x"][k])
            # With slot i offered, the outputs still show slot i-1: one cycle after its issue.
            for c, name in enumerate(CHANNELS):
                if prev is None:
                    break
                out = getattr(dut, f"slot_{name}")
                assert (ctx.get(out.valid), ctx.get(out.block)) == (prev["valid"], prev["block"])
                for k in range(K):
                    want_delta = prev["deltas"][k] if k < prev["used"] else 0
                    # Every row's copy (drive_slot_deltas) holds the slot's delta. (A cycle
                    # without a slot may carry any: the channels use valid slots only.)
                    if prev["valid"]:
                        assert [ctx.get(out.delta[k][p]) for p in range(P)] == [want_delta] * P
                    assert ctx.get(out.is_x[k]) == prev["is_x"][k]
                    got = [ctx.get(out.weight[k][p]) for p in range(P)]
                    col, blk = divmod(prev["targets"][k], NB)
                    assert got == expected_word(bundle, c, col, blk, P), (k, name, prev)
                    checked.add((k, c, prev["targets"][k]))
            prev = s
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert checked == {(k, c, a) for k in range(K) for c in range(3) for a in range(depth)}
    # The weights span the format, negatives and saturated codes included.
    assert bundle.w_h.min() == bundle.formats.weight.min


def test_refuses_what_it_cannot_build():
    bundle = random_bundle(3, 5, seed=1)
    bits = address_width(3, 5, 2)          # 8 columns x 3 blocks = 24 words: 5 bits
    for kwargs, name in ((dict(rows=0), "rows"), (dict(columns=0), "columns"),
                         (dict(addr_bits=bits - 1), "addr_bits"), (dict(addr_bits=0), "addr_bits")):
        with pytest.raises(ValueError, match=name):
            WeightBank(bundle, **{**dict(rows=2, columns=2, addr_bits=bits), **kwargs})
    empty = random_bundle(3, 5, seed=1)
    empty.w_x = np.zeros((3, 0, 3), np.int64)   # no rows (a bundle emptied after validation)
    with pytest.raises(ValueError, match="bundle"):
        WeightBank(empty, rows=2, columns=2, addr_bits=bits)
