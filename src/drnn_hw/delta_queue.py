"""The delta queue between the scheduler and the MxV, and the MxV issue sequencer.

The scheduler emits up to K deltas per cycle; the MxV consumes them K at a time (a *group*),
one P-row block per cycle for NB cycles. The queue holds every delta of a step (I + H at most),
so the scan never stalls. It is K banks of ``lib.memory.Memory`` (entry n of the step lives in
bank ``n % K`` at row ``n // K``): the up to K entries written in one cycle are consecutive and
so land in different banks, and a group is one row across the banks, read asynchronously.

Issue schedule (the cycle model's): a full group can issue the cycle after its last entry was
written; the final partial group once the scan is done; groups in order, back to back.
"""

from __future__ import annotations

import math

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["DeltaQueue"]


class DeltaQueue(wiring.Component):
    """K-bank delta queue with the MxV group sequencer.

    Ports
    -----
    w_valid : In(K), w_entry : In(ArrayLayout(entry, K))
        Deltas from the scheduler (valid bits form a prefix).
    scan_done : In(1)
        No more deltas this step: the partial group (if any) may issue.
    clear : In(1)
        End of step: empty the queue.
    slot_valid : Out(1)
        An MxV issue slot this cycle, for group ``slot_entry`` at row block ``slot_block``.
    slot_lane_valid : Out(K)
        Which lanes of the group hold a delta (the last group may be partial).
    pending : Out(1)
        Something is still to be issued (now or later) this step.
    """

    def __init__(self, entry_layout, *, lanes: int, blocks: int, capacity: int):
        self.K, self.NB = lanes, blocks
        self.rows = math.ceil(capacity / lanes) + 1
        self.entry_layout = entry_layout
        super().__init__({
            "w_valid": In(lanes),
            "w_entry": In(data.ArrayLayout(entry_layout, lanes)),
            "scan_done": In(1),
            "clear": In(1),
            "slot_valid": Out(1),
            "slot_block": Out(range(max(blocks, 2))),
            "slot_entry": Out(data.ArrayLayout(entry_layout, lanes)),
            "slot_lane_valid": Out(lanes),
            "pending": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        K, NB = self.K, self.NB
        full = Signal(range(self.rows + 1))    # complete groups written
        phase = Signal(range(max(K, 2)))       # entries in the partial group
        group = Signal(range(self.rows + 1))   # next group to issue
        busy = Signal()                        # a group is mid-way through its NB blocks
        block = Signal(range(max(NB, 2)))

        banks = []
        for k in range(K):
            mem = memory.Memory(shape=self.entry_layout, depth=self.rows, init=[])
            m.submodules[f"bank{k}"] = mem
            banks.append((mem.write_port(), mem.read_port(domain="comb")))

        # Write side.
        if K == 1:
            wp, _ = banks[0]
            m.d.comb += [wp.addr.eq(full), wp.data.eq(self.w_entry[0]), wp.en.eq(self.w_valid[0])]
            with m.If(self.w_valid[0]):
                m.d.sync += full.eq(full + 1)
        else:
            (wp0, _), (wp1, _) = banks
            v0, v1 = self.w_valid[0], self.w_valid[1]
            with m.If(phase == 0):
                m.d.comb += [
                    wp0.addr.eq(full), wp0.data.eq(self.w_entry[0]), wp0.en.eq(v0),
                    wp1.addr.eq(full), wp1.data.eq(self.w_entry[1]), wp1.en.eq(v1),
                ]
                with m.If(v1):
                    m.d.sync += full.eq(full + 1)
                with m.Elif(v0):
                    m.d.sync += phase.eq(1)
            with m.Else():
                m.d.comb += [
                    wp1.addr.eq(full), wp1.data.eq(self.w_entry[0]), wp1.en.eq(v0),
                    wp0.addr.eq(full + 1), wp0.data.eq(self.w_entry[1]), wp0.en.eq(v1),
                ]
                with m.If(v0):
                    m.d.sync += full.eq(full + 1)
                with m.If(v0 & ~v1):
                    m.d.sync += phase.eq(0)

        # Read side: the group under issue.
        for k, (_, rp) in enumerate(banks):
            m.d.comb += [rp.addr.eq(group), self.slot_entry[k].eq(rp.data)]
        is_full = Signal()
        m.d.comb += is_full.eq(group < full)
        partial = Signal()
        m.d.comb += partial.eq(self.scan_done & (phase != 0) & (group == full))
        # A group that issues holds at least one delta; only a full one holds K.
        m.d.comb += self.slot_lane_valid.eq(Mux(is_full, (1 << K) - 1, 1))

        m.d.comb += [
            self.slot_valid.eq(busy | is_full | partial),
            self.slot_block.eq(Mux(busy, block, 0)),
            self.pending.eq(busy | is_full | ((phase != 0) & (group == full)) | ~self.scan_done),
        ]
        with m.If(self.slot_valid):
            with m.If(self.slot_block == NB - 1):
                m.d.sync += [busy.eq(0), block.eq(0), group.eq(group + 1)]
            with m.Else():
                m.d.sync += [busy.eq(1), block.eq(self.slot_block + 1)]

        with m.If(self.clear):
            m.d.sync += [full.eq(0), phase.eq(0), group.eq(0), busy.eq(0), block.eq(0)]
        return m
