"""The delta queue between the scheduler and the MxV, and the MxV issue sequencer.

The scheduler emits up to K deltas per cycle; the MxV consumes them K at a time (a *group*),
one P-row block per cycle for NB cycles. The queue holds every delta of a step (I + H at most),
so the scan never stalls. It is K banks of ``lib.memory.Memory`` (entry n of the step lives in
bank ``n % K`` at address ``n // K``): the up to K entries written in one cycle are consecutive
and so land in different banks, and a group is one address across the banks, read
asynchronously (with ``registered_writes``, a stacked core's choice, the writes reach the banks
a cycle later from a register and the group under issue is held in registers, so the banks are
read at the next group's address only).

Issue schedule (the cycle model's): a full group can issue the cycle after its last entry was
written; the final partial group once the scan is done; groups in order, back to back.

Stacked layers: the blocks are global (:mod:`drnn_hw.layer_map`): a group of layer l's pass
issues the layer's blocks ``block_base .. block_base + NB_l − 1``.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .delta_encoder import DeltaStreamSignature
from .hdl_arith import check_positive, refuse
from .layer_map import LayerDescriptor

__all__ = ["DeltaQueue", "IssueSignature"]


class IssueSignature(wiring.Signature):
    """One MxV issue slot per cycle: a group of K deltas and the P-row block to multiply, seen
    from the sequencer (the sender).

    A plain signature, not a ``lib.stream`` one: the weight bank and the MxV channels take a
    slot in every cycle, so there is no ready, and the slot times are the cycle model's.

    Members
    -------
    valid : Out(1)
        A slot this cycle.
    block : Out(range(max(blocks, 2)))
        The block b (rows ``b·P .. b·P + P - 1``) of the group's columns.
    entry : Out(ArrayLayout(entry_layout, columns))
        The group's deltas (:func:`~drnn_hw.delta_encoder.delta_entry_layout`); entry k is
        column k of the group, read through port k of the weight bank. From a register (the
        sender reads it a cycle ahead), as ``word``.
    column_valid : Out(columns)
        Which columns of the group hold a delta (the last group of a step may be partial).
    word : Out(ArrayLayout(ArrayLayout(entry_layout["addr"], columns), copies))
        The weight word column k reads in this slot, ``entry[k].addr + block``, from a
        register (the sender works it out a cycle ahead), so the weight banks' read addresses
        start at a flip-flop: the banks' block RAMs spread across the chip, and an adder
        behind the queue's read in front of that route was the core's critical path.
        ``word[c][k]``: ``copies`` equal registers, one per weight memory (channel) of the
        receiver, so that each drives one memory's block RAMs, not all of them (one copy
        for every bank was 12.2–12.9 ns of routing on the ULX3S at 75 MHz, issue #10).

    Raises ValueError naming ``columns``, ``blocks`` or ``copies`` when it is < 1.
    """

    def __init__(self, entry_layout: data.StructLayout, columns: int, blocks: int,
                 copies: int = 1):
        check_positive(self, columns=columns, blocks=blocks, copies=copies)
        self.entry_layout, self.columns, self.blocks = entry_layout, columns, blocks
        self.copies = copies
        super().__init__({
            "valid": Out(1),
            "block": Out(range(max(blocks, 2))),
            "entry": Out(data.ArrayLayout(entry_layout, columns)),
            "column_valid": Out(columns),
            "word": Out(data.ArrayLayout(
                data.ArrayLayout(entry_layout["addr"].shape, columns), copies)),
        })

    def __eq__(self, other):
        return type(other) is type(self) and \
            (self.entry_layout, self.columns, self.blocks, self.copies) \
            == (other.entry_layout, other.columns, other.blocks, other.copies)

    __hash__ = None


class DeltaQueue(wiring.Component):
    """K-bank delta queue with the MxV group sequencer (see the module docstring).

    Parameters
    ----------
    entry_layout : data.StructLayout
        One delta (:func:`~drnn_hw.delta_encoder.delta_entry_layout`).
    columns : int
        K, deltas per group (1 or 2): the scheduler's deltas per cycle and the weight bank's
        read ports.
    blocks : int or sequence of int
        NB (≥ 1), issue slots per group; or NB_l of every layer of a stacked core (the
        layers' blocks numbered one after the other).
    capacity : int
        Deltas a step can hold (≥ 1; I + H in the core).
    copies : int
        Copies of the issue slot's weight words (``IssueSignature.word``), one per weight
        memory of the receiver (≥ 1).
    hold : bool
        Build the ``hold_next`` input (issue #10's step overlap).
    registered_writes : bool
        A cycle's bank writes reach the banks a cycle later, from a register, and the entries
        of the group under issue are held in the entry registers as they are written, so no
        bank read is in front of the next weight word. The core takes it for stacked cores,
        whose next word adds the layer's first block behind that read (the 2-layer P = 8
        core on the ULX3S: 69.41 → 73.81 MHz against 70, the queue's next word 14.41 →
        13.04 ns); not for one layer, whose builds it made slower (86.84 → 86.22 MHz on the
        demo core, 82.27 → 80.01 on ``make bitstream``'s random model; issue #10's
        twenty-fifth round). The same schedule and entries either way.

    Ports
    -----
    layer : In(range(L))
        Only with L > 1: the layer of the pass (stable while it issues).
    deltas : In(DeltaStreamSignature(entry_layout, K))
        Deltas from the scheduler (``valid`` a prefix); ``done``: no more deltas this step, the
        partial group (if any) may issue.
    clear : In(1)
        End of step: empty the queue.
    issue : Out(IssueSignature(entry_layout, K, ΣNB, copies))
        An MxV issue slot per cycle while groups are left: each group for NB consecutive
        cycles, blocks 0 .. NB-1 (of a stacked core: the layer's global blocks).
    pending : Out(1)
        Something is still to be issued (now or later) this step.
    hold : In(1)
        Only with ``lookahead``: no group starts while it is high (a started group's NB
        slots go on). An AXI core's fetch holds a group until its columns' weights are in
        the buffer.
    hold_next : In(1)
        Only with ``hold``: the same for the next cycle, no group starts in a cycle after
        one in which ``hold_next`` was high. Issue #10's step overlap holds the next step's
        groups until the AP has done with the multipliers and delta memories; registered
        into the decision's registers, the hold adds no term to the issue decision (as a
        fifth input it added a LUT level to the ULX3S builds' slowest paths, the queue's
        issue entries and next word; #10's thirty-third round).

    With ``lookahead`` (an AXI core's weight fetch, :mod:`drnn_hw.axi_weight_fetch`):

    written : Out(range(depth·K + 1)), depth = ceil(capacity/K) + 1 words per bank
        Entries written this step (entry n is readable from the cycle after its write).
    ahead_index : In(range(depth·K + 1)), ahead_entry : Out(entry_layout)
        A second, asynchronous read of the queue: entry ``ahead_index`` of the step (valid
        when ``ahead_index < written``), so the fetch can request columns ahead of the issue.

    Raises
    ------
    ValueError
        ``columns`` not 1 or 2 (the write side places two consecutive entries in two banks),
        ``blocks`` < 1 or ``capacity`` < 1.
    """

    def __init__(self, entry_layout, *, columns: int, blocks: int, capacity: int,
                 lookahead: bool = False, copies: int = 1, registered_writes: bool = False,
                 hold: bool = False):
        if columns not in (1, 2):
            raise refuse(self, f"columns must be 1 or 2, got {columns}")
        per_layer = [blocks] if isinstance(blocks, int) else list(blocks)
        check_positive(self, capacity=capacity, copies=copies,
                       **{f"blocks[{l}]" if len(per_layer) > 1 else "blocks": nb
                          for l, nb in enumerate(per_layer)})
        self.first = [sum(per_layer[:l]) for l in range(len(per_layer))]
        self.last = [f + nb - 1 for f, nb in zip(self.first, per_layer)]
        self.K, self.NB = columns, sum(per_layer)
        self.depth = math.ceil(capacity / columns) + 1     # words per bank
        self.entry_layout = entry_layout
        self.lookahead = lookahead
        self.hold_ahead = hold
        self.copies = copies
        self.registered_writes = registered_writes
        count = range(self.depth * columns + 1)
        super().__init__({
            **({"layer": In(range(len(per_layer)))} if len(per_layer) > 1 else {}),
            "desc": In(data.ArrayLayout(LayerDescriptor, len(per_layer)),
                       init=[{"blocks": nb} for nb in per_layer]),
            **({"written": Out(count), "ahead_index": In(count),
                "ahead_entry": Out(entry_layout)} if lookahead else {}),
            **({"hold": In(1)} if lookahead else {}),
            **({"hold_next": In(1)} if hold else {}),
            "deltas": In(DeltaStreamSignature(entry_layout, columns)),
            "clear": In(1),
            "issue": Out(IssueSignature(entry_layout, columns, self.NB, copies)),
            "pending": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        K = self.K
        w_valid, w_entry, issue = self.deltas.valid, self.deltas.entry, self.issue
        full = Signal(range(self.depth + 1))   # complete groups written
        phase = Signal(range(max(K, 2)))       # entries in the partial group
        group = Signal(range(self.depth + 1))  # next group to issue
        busy = Signal()                        # a group is mid-way through its NB blocks
        block = Signal(range(max(self.NB, 2)))

        banks, mems = [], []
        for k in range(K):
            mem = memory.Memory(shape=self.entry_layout, depth=self.depth, init=[])
            m.submodules[f"bank{k}"] = mem
            mems.append(mem)
            if not self.registered_writes:
                banks.append((mem.write_port(), mem.read_port(domain="comb")))

        # Write side. ``full`` and ``phase`` go through their next values before a clear
        # (``full_w``, ``phase_w``; after it, ``full_n``, ``phase_n``), from which the
        # sequencer's registered decisions are worked out. With ``registered_writes`` this
        # cycle's writes (``live``) are registered (``bank_write{k}``) and reach the banks a
        # cycle later; the reads below take a registered write from the register until the
        # bank holds it.
        if self.registered_writes:
            write = data.StructLayout({"en": 1, "addr": range(self.depth),
                                       "data": self.entry_layout})
            live = [Signal(write, name=f"live_write{k}") for k in range(K)]
            pending_w = [Signal(write, name=f"bank_write{k}") for k in range(K)]
            ports = live
        else:
            ports = [wp for wp, _ in banks]
        full_w, phase_w = Signal.like(full), Signal.like(phase)
        m.d.comb += [full_w.eq(full), phase_w.eq(phase)]
        if K == 1:
            wp = ports[0]
            m.d.comb += [wp.addr.eq(full), wp.data.eq(w_entry[0]), wp.en.eq(w_valid[0])]
            with m.If(w_valid[0]):
                m.d.comb += full_w.eq(full + 1)
        else:
            wp0, wp1 = ports
            v0, v1 = w_valid[0], w_valid[1]
            with m.If(phase == 0):
                m.d.comb += [
                    wp0.addr.eq(full), wp0.data.eq(w_entry[0]), wp0.en.eq(v0),
                    wp1.addr.eq(full), wp1.data.eq(w_entry[1]), wp1.en.eq(v1),
                ]
                with m.If(v1):
                    m.d.comb += full_w.eq(full + 1)
                with m.Elif(v0):
                    m.d.comb += phase_w.eq(1)
            with m.Else():
                m.d.comb += [
                    wp1.addr.eq(full), wp1.data.eq(w_entry[0]), wp1.en.eq(v0),
                    wp0.addr.eq(full + 1), wp0.data.eq(w_entry[1]), wp0.en.eq(v1),
                ]
                with m.If(v0):
                    m.d.comb += full_w.eq(full + 1)
                with m.If(v0 & ~v1):
                    m.d.comb += phase_w.eq(0)
        if self.registered_writes:
            for mem, lw, pw in zip(mems, live, pending_w):
                wp = mem.write_port()
                m.d.sync += pw.eq(lw)
                m.d.comb += [wp.addr.eq(pw.addr), wp.data.eq(pw.data), wp.en.eq(pw.en)]

        # Read side: the group under issue, from registers loaded a cycle ahead (below).
        # The sequencer's decision (does a slot issue, is it its group's last block) comes
        # from registers too, each worked out from the next state a cycle ahead: the
        # comparisons of ``group`` with ``full`` and of ``block`` with the layer's last block
        # behind the decision, and the decision behind the next word's select, were the
        # ULX3S build's critical path (13.5 ns at 75 MHz, issue #10's sixth round).
        #   is_full   = group < full                      (a full group is waiting)
        #   tail      = (phase != 0) & (group == full)    (the partial group is next)
        #   last_busy = block + 1 == last                 (after a slot short of its
        #               group's last block: is the next one the last?)
        is_full = Signal(name="is_full")
        tail = Signal(name="tail")
        last_busy = Signal(name="last_busy")
        # A group that issues holds at least one delta; only a full one holds K.
        m.d.comb += issue.column_valid.eq(Mux(is_full, (1 << K) - 1, 1))

        # The layout's first block of the layer, the descriptor's block count.
        if len(self.first) == 1:
            first = self.first[0]
            blocks = self.desc[0].blocks
        else:
            first = Array(Const(v) for v in self.first)[self.layer]
            blocks = Array(self.desc[l].blocks for l in range(len(self.first)))[self.layer]
        last = blocks + (first - 1)
        # A group's first slot is its last one when the layer has a single block.
        single = Signal()
        m.d.comb += single.eq(blocks == 1)
        # With ``hold``, the same tests with the hold folded in, registered beside them:
        #   go_full = is_full & ~hold,  go_tail = tail & ~hold
        # (``is_full`` and ``tail`` also say what is pending, whatever the hold).
        go_full, go_tail = is_full, tail
        if self.hold_ahead:
            go_full, go_tail = Signal(name="go_full"), Signal(name="go_tail")
        ready = go_full | (self.deltas.done & go_tail)
        if self.lookahead:
            ready = ready & ~self.hold
            # The entries written so far, and the look-ahead read (entry n: bank n % K,
            # word n // K).
            m.d.comb += self.written.eq(full * K + phase)
            peek = [mem.read_port(domain="comb") for mem in mems]
            for k, rp in enumerate(peek):
                m.d.comb += rp.addr.eq(self.ahead_index // K if K > 1 else self.ahead_index)
            peeked = [rp.data for rp in peek]
            if self.registered_writes:
                # (Last cycle's write from its register: ``written`` counts it.)
                peeked = [Mux(pw.en & (pw.addr == rp.addr), pw.data, rp.data)
                          for pw, rp in zip(pending_w, peek)]
            if K == 1:
                m.d.comb += self.ahead_entry.eq(peeked[0])
            else:
                m.d.comb += self.ahead_entry.eq(Mux(self.ahead_index[0], peeked[1], peeked[0]))
        m.d.comb += [
            issue.valid.eq(busy | ready),
            issue.block.eq(Mux(busy, block, first)),
            self.pending.eq(busy | is_full | tail | ~self.deltas.done),
        ]
        # The sequencer's next state (registered below). ``at_last``: this slot, if it
        # issues, is its group's last block.
        at_last = Signal()
        m.d.comb += at_last.eq(Mux(busy, last_busy, single))
        advance = Signal()          # the group's last slot issues: group_n == group + 1
        m.d.comb += advance.eq(issue.valid & at_last)
        group_w, group_n, busy_n = Signal.like(group), Signal.like(group), Signal()
        full_n, phase_n = Signal.like(full), Signal.like(phase)
        block_n = Signal.like(block)
        # group + 1, registered (``group_next``).
        group1 = Signal.like(group, name="group_next", init=1)
        m.d.comb += [group_w.eq(Mux(advance, group1, group)),
                     group_n.eq(group_w), full_n.eq(full_w), phase_n.eq(phase_w),
                     busy_n.eq(issue.valid & ~at_last),
                     block_n.eq(Mux(busy_n, Mux(busy, block + 1, first + 1), 0))]
        with m.If(self.clear):
            m.d.comb += [group_n.eq(0), busy_n.eq(0), block_n.eq(0),
                         full_n.eq(0), phase_n.eq(0)]
        m.d.sync += [group.eq(group_n), busy.eq(busy_n), block.eq(block_n),
                     full.eq(full_n), phase.eq(phase_n),
                     group1.eq(Mux(self.clear, 1, group_w + 1))]    # the clear behind the add
        # The decision's registers. ``last_busy`` is only read while ``busy``, i.e. after a
        # slot that was not its group's last: the next slot's block is ``issue.block + 1``.
        # After a clear both tests are false (0 < 0, phase 0), so they compare the values
        # before the clear and the clear enters behind the comparison: ``clear`` is the end of
        # the step's decision in the core, and with the compare's carry chain behind its
        # route across the die the path was the demo build's critical one (12.68 ns at 75 MHz,
        # issue #10's twelfth round).
        m.d.sync += [
            is_full.eq(~self.clear & (group_w < full_w)),
            tail.eq(~self.clear & (phase_w != 0) & (group_w == full_w)),
            last_busy.eq(issue.block + 1 == last),
        ]
        if self.hold_ahead:
            m.d.sync += [
                go_full.eq(~self.clear & ~self.hold_next & (group_w < full_w)),
                go_tail.eq(~self.clear & ~self.hold_next & (phase_w != 0) & (group_w == full_w)),
            ]
        # Where this cycle's writes land against the group under issue and the next one,
        # from registers worked out the same way (a bank writes word ``full``, or
        # ``full + 1``: port 0 of two while a group is partial):
        #   at_full      = full == group       (``full`` is word group, ``full + 1`` group1)
        #   full_ahead   = full == group + 1   (``full`` is word group1)
        #   full_ahead2  = full == group + 2   (``full`` is the word after group1;
        #                                       with ``registered_writes`` only)
        #   full1_here   = full + 1 == group   (``full + 1`` is word group)
        # The adder and the comparators behind the write's address, in front of the slot's
        # word, were the queue's slowest path group at 80 MHz (11.73 ns, issue #10).
        at_full = Signal(name="at_full", init=1)
        full_ahead = Signal(name="full_ahead")
        if self.registered_writes:
            full_ahead2 = Signal(name="full_ahead2")
        full1_here = Signal(name="full1_here")
        m.d.sync += [
            at_full.eq(self.clear | (full_w == group_w)),
            full_ahead.eq(~self.clear & (full_w == group_w + 1)),
            *([full_ahead2.eq(~self.clear & (full_w == group_w + 2))]
              if self.registered_writes else []),
            full1_here.eq(~self.clear & (full_w + 1 == group_w)),
        ]

        # The next slot's entries and weight words, registered (``issue.entry``,
        # ``issue.word``): the group it will read is ``group`` or ``group + 1`` (or 0 after a
        # clear), and the sequencer's decision only picks one: the read behind the decision
        # (its address from the decision, its data to every channel's copy of the slot's
        # deltas) was two slow path groups of the ULX3S build (12.3 ns at 80 MHz). An entry
        # written in this cycle is taken from the write (a group issues the cycle after its
        # last entry was written). Word ``group + 1`` is read from the bank at the registered
        # ``group_next`` (with ``registered_writes``, from last cycle's write instead while
        # that is still in ``bank_write{k}``: ``pending_ahead{k}``). Word ``group`` is read
        # from the bank at ``group``; with ``registered_writes`` it is not read at all: the
        # entry register of column k holds it as far as it has been written, from the write
        # of an entry of the group under issue and from word ``group + 1`` when the group
        # before ends. After a clear the registers hold a stale entry until the step's
        # entries are written (in cycles in which ``group_n == group``, 0). A layer's first
        # block changes only between passes, long before their first slot. Only a valid
        # slot's entries and words are used.
        for k, mem in enumerate(mems):
            nxt = mem.read_port(domain="comb")
            if self.registered_writes:
                m.d.comb += nxt.addr.eq(group1)
            else:
                wp, rp = banks[k]
                m.d.comb += [rp.addr.eq(group), nxt.addr.eq(group1)]
            # Port k writes word ``full + 1`` only as port 0 of two, after an odd entry.
            plus1 = (phase != 0) if K == 2 and k == 0 else Const(0)
            hit_here = Mux(plus1, full1_here, at_full)       # the write's addr == group
            hit_ahead = Mux(plus1, at_full, full_ahead)      # the write's addr == group1
            if self.registered_writes:
                hit_ahead2 = Mux(plus1, full_ahead, full_ahead2)  # ... == group1 + 1
                wp, pw = live[k], pending_w[k]
                # bank_write{k}.addr == group_next, from this cycle's write and decision.
                pending_ahead = Signal(name=f"pending_ahead{k}")
                m.d.sync += pending_ahead.eq(~self.clear & wp.en &
                                             Mux(advance, hit_ahead2, hit_ahead))
            entry = Signal(self.entry_layout, name=f"issue_entry{k}")
            here = Signal(self.entry_layout, name=f"entry_here{k}")
            ahead = Signal(self.entry_layout, name=f"entry_ahead{k}")
            if self.registered_writes:
                m.d.comb += [here.eq(Mux(wp.en & hit_here, wp.data, entry)),
                             ahead.eq(Mux(wp.en & hit_ahead, wp.data,
                                          Mux(pending_ahead, pw.data, nxt.data)))]
            else:
                m.d.comb += [here.eq(Mux(wp.en & hit_here, wp.data, rp.data)),
                             ahead.eq(Mux(wp.en & hit_ahead, wp.data, nxt.data))]
            m.d.sync += entry.eq(Mux(advance, ahead, here))
            m.d.comb += issue.entry[k].eq(entry)
            # A group going on to its next block reads the word after this one (busy_n only
            # follows a valid slot short of its last block); a new group's first word is its
            # column's, summed before the decision picks it.
            word_here, word_ahead = here.addr + first, ahead.addr + first
            word_n = Signal.like(issue.word[0][k], name=f"word_next{k}")
            m.d.comb += word_n.eq(Mux(busy_n, issue.word[0][k] + 1,
                                      Mux(advance, word_ahead, word_here)))
            # Equal registers are merged by synthesis unless kept: the copies' names end in
            # ``_dup`` (drnn_boards.ulx3s keeps those).
            for c in range(self.copies):
                copy = Signal.like(word_n, name=f"word{c}_{k}_dup" if self.copies > 1
                                   else f"word{k}")
                m.d.sync += copy.eq(word_n)
                m.d.comb += issue.word[c][k].eq(copy)
        return m
