"""WeightBank: every word read through every port equals the bundle's weights (layout
col·NB + b, rows ≥ H zero), one cycle after the address; both ports independent."""

import math

import numpy as np
import pytest
from amaranth.sim import Simulator

from drnn_hw.bundle import random_bundle
from drnn_hw.weight_bank import WeightBank


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


@pytest.mark.parametrize("I,H,P,K", [(3, 5, 2, 2), (1, 3, 4, 1), (4, 8, 8, 2)])
def test_dual_port_reads(I, H, P, K):
    bundle = random_bundle(I, H, seed=I + H, weight_scale=3.0)
    NB = math.ceil(H / P)
    depth = (I + H) * NB
    dut = WeightBank(bundle, pe=P, lanes=K, addr_bits=max(1, (depth - 1).bit_length()))
    rng = np.random.default_rng(0)
    # Port k walks the addresses in a different order from port 0.
    orders = [list(range(depth))] + [list(rng.permutation(depth)) for _ in range(K - 1)]

    async def tb(ctx):
        for i in range(depth):
            for k in range(K):
                ctx.set(dut.addr[k], int(orders[k][i]))
            await ctx.tick()   # synchronous read: the word is out after the clock edge
            for k in range(K):
                addr = int(orders[k][i])
                col, block = divmod(addr, NB)
                for c, name in enumerate("rzn"):
                    got = [ctx.get(getattr(dut, f"data_{name}")[k][p]) for p in range(P)]
                    assert got == expected_word(bundle, c, col, block, P), (k, name, addr)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    # The weights span the format, negatives and saturated codes included.
    assert bundle.w_h.min() == bundle.formats.weight.min
