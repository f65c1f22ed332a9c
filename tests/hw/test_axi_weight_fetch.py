"""AxiWeightFetch on its own (Amaranth simulator): the AR bursts it issues for a list of kept
columns (addresses from WEIGHT_BASE in the documented layout, INCR, beat size, split at every
multiple of the burst length, never more in flight than allowed), the weights of every slot
(the bundle's, per gate and block), ``hold`` until a group's columns are in, and the
parameters it refuses. The queue and the memory are played by the testbench."""

import math

import numpy as np
import pytest
from amaranth.sim import Simulator

from drnn_hw.axi_weight_fetch import AxiWeightFetch
from drnn_hw.bundle import random_bundle
from drnn_hw.delta_encoder import address_width, delta_entry_layout
from drnn_hw.dram import dram_image
from drnn_hw.cycle_model import CoreShape
from drnn_hw.weight_bank import CHANNELS

BASE = 0x3000


def _weights(bundle, gate, col, block, P):
    I, H = bundle.input_size, bundle.hidden_size
    return [0 if block * P + p >= H else
            int(bundle.w_x[gate, block * P + p, col]) if col < I else
            int(bundle.w_h[gate, block * P + p, col - I]) for p in range(P)]


@pytest.mark.parametrize("K,burst,outstanding,latency", [(2, 4, 2, 3), (1, 16, 4, 1),
                                                         (2, 2, 1, 6)])
def test_fetch_and_slots(K, burst, outstanding, latency):
    I, H, P = 3, 5, 4                                   # NB = 2; a block word 96 bits, SB = 2
    bundle = random_bundle(I, H, seed=4, weight_scale=3.0)
    NB, SB = 2, 2
    shape = CoreShape(rows=P, columns=K, scan=4, weights="axi", bus_bits=64, burst=burst)
    image = dram_image(bundle, shape)
    entry = delta_entry_layout(bundle.formats, address_width(I, H, P))
    dut = AxiWeightFetch(bundle, rows=P, columns=K, entry_layout=entry, count=16, bus_bits=64,
                         outstanding=outstanding, burst=burst, buffer=2 * K)
    cols = [4, 0, 7, 2, 5, 6, 1]                        # kept columns, in queue order
    ars, slots = [], []

    async def memory(ctx):
        """Fixed latency, no back-pressure; checks the outstanding limit."""
        pending, cycle = [], 0
        ctx.set(dut.axi.arready, 1)
        while True:
            shown = bool(pending) and pending[0][0] <= cycle
            ctx.set(dut.axi.rvalid, int(shown))
            if shown:
                off = pending[0][1] - BASE
                ctx.set(dut.axi.rdata, int.from_bytes(image[off:off + 8], "little"))
                ctx.set(dut.axi.rlast, int(pending[0][2] == 1))
            if ctx.get(dut.axi.arvalid):
                addr, n = ctx.get(dut.axi.araddr), ctx.get(dut.axi.arlen) + 1
                assert ctx.get(dut.axi.arsize) == 3 and ctx.get(dut.axi.arburst) == 1
                ars.append((addr, n))
                pending.append([cycle + latency, addr, n])
            assert len(pending) <= outstanding
            assert ctx.get(dut.axi.rready)
            await ctx.tick()
            cycle += 1
            if shown:
                head = pending[0]
                head[1] += 8
                head[2] -= 1
                if head[2] == 0:
                    pending.pop(0)

    async def queue(ctx):
        """All columns written at once; groups issue (NB slots each) whenever hold is low."""
        ctx.set(dut.base, BASE)
        ctx.set(dut.written, len(cols))
        group, block, held = 0, 0, 0
        G = math.ceil(len(cols) / K)
        while group < G:
            ctx.set(dut.ahead_entry.addr, cols[ctx.get(dut.ahead_index)] * NB
                    if ctx.get(dut.ahead_index) < len(cols) else 0)
            members = cols[group * K:group * K + K]
            ctx.set(dut.issue.column_valid, (1 << len(members)) - 1)
            for k, c in enumerate(members):
                ctx.set(dut.issue.entry[k].addr, c * NB)
                ctx.set(dut.issue.entry[k].delta, 100 + c)
                ctx.set(dut.issue.entry[k].is_x, int(c < I))
            go = block > 0 or not ctx.get(dut.hold)
            held += not go
            ctx.set(dut.issue.valid, int(go))
            ctx.set(dut.issue.block, block)
            await ctx.tick()
            if go:
                slots.append((members, block))
                block += 1
                if block == NB:
                    block, group = 0, group + 1
        ctx.set(dut.issue.valid, 0)
        assert held > 0                                 # the memory was slower than the issue

    async def check(ctx):
        seen = 0
        while seen < math.ceil(len(cols) / K) * NB:
            await ctx.tick()
            out = [getattr(dut, f"slot_{n}") for n in CHANNELS]
            if ctx.get(out[0].valid):
                members, block = slots[seen]
                for g, o in enumerate(out):
                    assert ctx.get(o.block) == block
                    for k, c in enumerate(members):
                        got = [ctx.get(o.weight[k][p]) for p in range(P)]
                        assert got == _weights(bundle, g, c, block, P), (g, c, block)
                        assert [ctx.get(o.delta[k][p]) for p in range(P)] == [100 + c] * P
                seen += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(memory, background=True)
    sim.add_testbench(queue)
    sim.add_testbench(check)
    sim.run_until(2e-5)
    # Every column's NB·SB = 4 beats, in queue order, split at multiples of the burst.
    want = []
    for c in cols:
        beat = c * NB * SB
        end = beat + NB * SB
        while beat < end:
            n = min(burst - beat % burst, end - beat)
            want.append((BASE + beat * 8, n))
            beat += n
    assert ars == want
    assert len(slots) == math.ceil(len(cols) / K) * NB


def test_refuses():
    bundle = random_bundle(3, 5)
    entry = delta_entry_layout(bundle.formats, 4)
    with pytest.raises(ValueError, match="buffer must be a power of two"):
        AxiWeightFetch(bundle, rows=4, columns=2, entry_layout=entry, count=16, buffer=3)
    with pytest.raises(ValueError, match="burst"):
        AxiWeightFetch(bundle, rows=4, columns=1, entry_layout=entry, count=16, burst=512)


def _pair(w, c, p, P, j):
    """The j-th (weight, block) pair of slice p of column c of ``w`` (H, C) in the documented
    compressed format: the slice's non-zero weights in increasing row order, then (0, the
    block of the slice's last real row)."""
    H = w.shape[0]
    real = [b for b in range(-(-H // P)) if b * P + p < H]
    nz = [(int(w[b * P + p, c]), b) for b in real if w[b * P + p, c] != 0]
    return nz[j] if j < len(nz) else (0, real[-1] if real else 0)


@pytest.mark.parametrize("K,burst,outstanding,latency", [(2, 4, 2, 3), (1, 2, 1, 5)])
def test_compressed_fetch_and_slots(K, burst, outstanding, latency):
    """A compressed core's fetch (``kept``): columns of kept = 2 pair words (I = 3, H = 9,
    P = 4: NB = 3, γ = 0.5; a pair word 3 gates · 4 · (8 + 2) = 120 bits, SB = 2 beats), the
    column's kept·SB beats from beat c·kept·SB, and every slot's pair (weight and global
    block) of every gate, lane and multiplier: the j-th pair of the column's slice."""
    from drnn_hw.balance import prune_bundle
    from drnn_hw.mxv_compressed import index_bits

    I, H, P = 3, 9, 4
    bundle = prune_bundle(random_bundle(I, H, seed=4, weight_scale=3.0), P, 0.5)
    kept, SB = 2, 2
    assert bundle.layers[0].balance.kept == kept
    shape = CoreShape(rows=P, columns=K, scan=4, weights="axi", bus_bits=64, burst=burst,
                      weight_format="compressed")
    image = dram_image(bundle, shape)
    entry = delta_entry_layout(bundle.formats, address_width(I, H, P))
    dut = AxiWeightFetch(bundle, rows=P, columns=K, entry_layout=entry, count=16, bus_bits=64,
                         outstanding=outstanding, burst=burst, buffer=2 * K, kept=[kept])
    assert dut.SB == SB and dut.index_bits == index_bits(3) == 2
    w = np.concatenate([np.asarray(bundle.w_x), np.asarray(bundle.w_h)], axis=2)  # (G, H, C)
    cols = [4, 0, 11, 2, 5, 9, 1]
    ars, slots = [], []

    async def memory(ctx):
        pending, cycle = [], 0
        ctx.set(dut.axi.arready, 1)
        while True:
            shown = bool(pending) and pending[0][0] <= cycle
            ctx.set(dut.axi.rvalid, int(shown))
            if shown:
                off = pending[0][1] - BASE
                ctx.set(dut.axi.rdata, int.from_bytes(image[off:off + 8], "little"))
                ctx.set(dut.axi.rlast, int(pending[0][2] == 1))
            if ctx.get(dut.axi.arvalid):
                addr, n = ctx.get(dut.axi.araddr), ctx.get(dut.axi.arlen) + 1
                ars.append((addr, n))
                pending.append([cycle + latency, addr, n])
            assert len(pending) <= outstanding
            await ctx.tick()
            cycle += 1
            if shown:
                head = pending[0]
                head[1] += 8
                head[2] -= 1
                if head[2] == 0:
                    pending.pop(0)

    async def queue(ctx):
        """Addresses in the issue-slot layout (column c at c·kept); kept slots per group."""
        ctx.set(dut.base, BASE)
        ctx.set(dut.written, len(cols))
        group, slot, held = 0, 0, 0
        G = math.ceil(len(cols) / K)
        while group < G:
            ctx.set(dut.ahead_entry.addr, cols[ctx.get(dut.ahead_index)] * kept
                    if ctx.get(dut.ahead_index) < len(cols) else 0)
            members = cols[group * K:group * K + K]
            ctx.set(dut.issue.column_valid, (1 << len(members)) - 1)
            for k, c in enumerate(members):
                ctx.set(dut.issue.entry[k].addr, c * kept)
                ctx.set(dut.issue.entry[k].delta, 100 + c)
                ctx.set(dut.issue.entry[k].is_x, int(c < I))
            go = slot > 0 or not ctx.get(dut.hold)
            held += not go
            ctx.set(dut.issue.valid, int(go))
            ctx.set(dut.issue.block, slot)
            await ctx.tick()
            if go:
                slots.append((members, slot))
                slot += 1
                if slot == kept:
                    slot, group = 0, group + 1
        ctx.set(dut.issue.valid, 0)
        assert held > 0

    async def check(ctx):
        seen = 0
        while seen < math.ceil(len(cols) / K) * kept:
            await ctx.tick()
            out = [getattr(dut, f"slot_{n}") for n in CHANNELS]
            if ctx.get(out[0].valid):
                members, j = slots[seen]
                for g, o in enumerate(out):
                    assert ctx.get(o.block) == j
                    for k, c in enumerate(members):
                        got = [(ctx.get(o.weight[k][p]), ctx.get(o.index[k][p]))
                               for p in range(P)]
                        assert got == [_pair(w[g], c, p, P, j) for p in range(P)], (g, c, j)
                        assert [ctx.get(o.delta[k][p]) for p in range(P)] == [100 + c] * P
                seen += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(memory, background=True)
    sim.add_testbench(queue)
    sim.add_testbench(check)
    sim.run_until(2e-5)
    want = []
    for c in cols:
        beat = c * kept * SB
        end = beat + kept * SB
        while beat < end:
            n = min(burst - beat % burst, end - beat)
            want.append((BASE + beat * 8, n))
            beat += n
    assert ars == want
    assert len(slots) == math.ceil(len(cols) / K) * kept


def test_refuses_kept_out_of_range():
    bundle = random_bundle(3, 9)                       # NB = 3 at P = 4
    entry = delta_entry_layout(bundle.formats, 6)
    with pytest.raises(ValueError, match=r"kept must be one value in \[1, NB_l\]"):
        AxiWeightFetch(bundle, rows=4, columns=2, entry_layout=entry, count=16, kept=[4])
    with pytest.raises(ValueError, match="kept"):
        AxiWeightFetch(bundle, rows=4, columns=2, entry_layout=entry, count=16, kept=[1, 1])
