"""The weight source of a core with its weights in DRAM (``--weights axi``): an AXI4 read
master that fetches, for each kept delta, that delta's weight column (every gate's rows) into
an on-chip column buffer, ahead of the MxV issue; and the issue slot's read stage out of that
buffer. It replaces :class:`~drnn_hw.weight_bank.WeightBank` and feeds the MxV channels the
same :class:`~drnn_hw.mxv.SlotSignature` slots, one cycle after the issue.

EdgeDRNN's scheme (Gao et al., IEEE JETCAS 2020: weights in DRAM, one column per kept delta,
so the traffic falls with temporal sparsity); this block and the image layout
(:mod:`drnn_hw.dram`) are this project's own.

Schedule (the cycle model's, :func:`drnn_hw.cycle_model._axi_issue_end`):

* **Request**: the delta queue holds the step's kept deltas in order (:class:`~drnn_hw.
  delta_queue.DeltaQueue` with ``lookahead``); column n's address is read from it as soon as
  it is written, long before its group issues. A column of ``NB_l · SB`` beats is requested in
  INCR bursts split at every multiple of ``burst`` beats (none crosses 4 KB), one burst address
  per cycle at most, while fewer than ``outstanding`` bursts are in flight and column n's
  buffer slot (n mod C, C = ``buffer`` columns) is free: column n − C's group has issued.
  ``arvalid``/``araddr``/``arlen`` are registers.
* **Receive**: ``rready`` is always high (every burst in flight has its slot); SB beats make a
  block word (every gate's P weights of one block), written to the buffer; the column counts
  as there after its last beat.
* **Issue**: a group starts only when its columns are all there (``hold`` to the queue);
  then its NB slots read the buffer one block per cycle, as from the on-chip banks. The
  group's slots are freed after its last block.

A pass (one layer of a step) ends only after every column it fetched has been used, so no read
is in flight at ``clear`` (the end of the pass), which resets the counters. R responses other
than OKAY are not checked (the data is taken as it comes).

**Compressed weights** (``kept``, ``--weight-format compressed``; issue #13 with the weights in
DRAM): a column is the layer's ``kept_l`` *pair words* (every gate's P (value, block) pairs,
the compressed on-chip banks' words side by side: :mod:`drnn_hw.dram`) instead of NB_l block
words. Everything above holds with NB → kept: the queue's issue slots and the encoder's
addresses are the baked compressed core's (the issue-slot layout, :func:`~drnn_hw.layer_map.
layer_map` with ``blocks = kept``), a column is ``kept_l · SB`` beats, a group holds the issue
for kept_l slots, and each slot hands the :class:`~drnn_hw.mxv_compressed.
CompressedMxVChannel` one pair word per cycle (``weight`` and ``index``), as the compressed
:class:`~drnn_hw.weight_bank.WeightBank` does. Why the same words: the channels, queue and
encoder stay the baked compressed core's, and a kept delta costs kept_l words of traffic and
kept_l issue cycles (Spartus + EdgeDRNN: the traffic falls with both sparsities).
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .bundle import ModelBundle
from .delta_queue import IssueSignature
from .hdl_arith import check_positive, refuse
from .layer_map import layer_map, total_blocks
from .mxv import SlotSignature, drive_slot_deltas
from .weight_bank import CELL_CHANNELS, pair_index_bits, unpack_pairs

__all__ = ["AxiReadSignature", "AxiWeightFetch", "AXI_ADDR_BITS"]

#: Width of the AXI read address.
AXI_ADDR_BITS = 32


class AxiReadSignature(wiring.Signature):
    """The read half of an AXI4 interface, seen from the master (AR and R channels; names as
    in the AXI specification, so ``m_axi__arvalid`` etc. in Verilog).

    Members: ``arvalid``, ``arid`` (1, always 0), ``araddr`` (32), ``arlen`` (8, beats − 1),
    ``arsize`` (3, log2 bytes per beat), ``arburst`` (2, 1 = INCR), ``arcache`` (4),
    ``arprot`` (3) out, ``arready`` in; ``rvalid``, ``rid`` (1, ignored), ``rdata``
    (``data_bits``), ``rresp`` (2), ``rlast`` in, ``rready`` out. Every burst has ID 0, so
    the data comes back in order (an interconnect with wider IDs pads them).

    Raises ValueError naming ``data_bits`` unless it is a power of two from 8 to 1024.
    """

    def __init__(self, data_bits: int):
        if data_bits < 8 or data_bits > 1024 or data_bits & (data_bits - 1):
            raise ValueError(f"data_bits must be a power of two from 8 to 1024, got "
                             f"{data_bits}")
        self.data_bits = data_bits
        super().__init__({
            "arvalid": Out(1), "arready": In(1), "arid": Out(1), "araddr": Out(AXI_ADDR_BITS),
            "arlen": Out(8), "arsize": Out(3), "arburst": Out(2), "arcache": Out(4),
            "arprot": Out(3),
            "rvalid": In(1), "rready": Out(1), "rid": In(1), "rdata": In(data_bits),
            "rresp": In(2),
            "rlast": In(1),
        })

    def __eq__(self, other):
        return type(other) is type(self) and self.data_bits == other.data_bits

    __hash__ = None


class AxiWeightFetch(wiring.Component):
    """Column fetch from DRAM over AXI4, column buffer and issue read stage (module docstring).

    Parameters
    ----------
    bundle : ModelBundle
        The cell (G = 3 gates for a GRU, 4 for an LSTM), formats and every layer's I_l, H_l
        (the weights themselves are in DRAM: :func:`drnn_hw.dram.dram_image`).
    rows, columns : int
        P (the core's effective rows) and K (1 or 2).
    entry_layout : data.StructLayout
        A queue entry (:func:`~drnn_hw.delta_encoder.delta_entry_layout`): ``addr`` is the
        column's word address as the on-chip banks would have it.
    count : int
        Entries a queue can count (the range of its ``written``).
    bus_bits, outstanding, burst, buffer : int
        AXI data width W, bursts in flight N, longest burst in beats, buffer columns C (a power
        of two ≥ 2K).
    kept : sequence of int, optional
        A compressed core's pairs per slice of every layer (1 ≤ kept_l ≤ NB_l): columns of
        kept_l pair words, ``entry.addr`` in the issue-slot layout, and the slots carry each
        pair's block on ``index`` (module docstring).

    Ports
    -----
    issue : In(IssueSignature(entry_layout, K, ΣNB))
        The queue's issue slot (the columns of the group are buffer slots ``released + k``);
        Σkept slots with ``kept``.
    slot_r, slot_z, slot_n (LSTM: slot_i, slot_f, slot_g, slot_o) : Out(SlotSignature(...))
        As :class:`~drnn_hw.weight_bank.WeightBank`'s (with ``kept``: the compressed bank's,
        ``index_bits`` = :func:`~drnn_hw.weight_bank.pair_index_bits`): one cycle after the
        issue.
    written : In(range(count)), ahead_index : Out(range(count)), ahead_entry : In(entry)
        The queue's look-ahead read (entry ``ahead_index`` of the step, once written).
    hold : Out(1)
        The queue's next group is not in the buffer yet.
    layer : In(range(L))
        Only with L > 1: the layer of the pass.
    clear : In(1)
        End of the pass: reset the counters (nothing is in flight then).
    base : In(32)
        WEIGHT_BASE, the image's byte address (bits [11:0] zero).
    axi : Out(AxiReadSignature(bus_bits))
        The AXI4 read master.

    Raises
    ------
    ValueError
        ``rows`` or ``columns`` < 1, a buffer that is not a power of two ≥ 2K, a
        burst of more than 256 beats or 4096 bytes, or ``kept`` not one value in [1, NB_l]
        per layer.
    """

    def __init__(self, bundle: ModelBundle, *, rows: int, columns: int, entry_layout,
                 count: int, bus_bits: int = 64, outstanding: int = 4, burst: int = 16,
                 buffer: int = 8, kept=None):
        check_positive(self, rows=rows, columns=columns, count=count, outstanding=outstanding)
        if buffer & (buffer - 1) or buffer < 2 * columns:
            raise refuse(self, f"buffer must be a power of two ≥ 2·K = {2 * columns} "
                               f"columns, got {buffer}")
        if burst & (burst - 1) or burst > 256 or burst * bus_bits // 8 > 4096:
            raise refuse(self, f"burst must be a power of two of at most 256 beats and 4096 "
                               f"bytes, got {burst} beats of {bus_bits} bits")
        self.bundle, self.P, self.K = bundle, rows, columns
        self.W, self.N, self.Lb, self.C = bus_bits, outstanding, burst, buffer
        self.hidden = [ly.hidden_size for ly in bundle.layers]
        fmts = bundle.formats
        self.kept, self.index_bits = None, None
        if kept is not None:
            nbs = [math.ceil(h / rows) for h in self.hidden]
            self.kept = [int(k) for k in kept]
            if len(self.kept) != len(nbs) or \
                    not all(1 <= k <= nb for k, nb in zip(self.kept, nbs)):
                raise refuse(self, f"kept must be one value in [1, NB_l] per layer (NB = "
                                   f"{nbs}), got {list(kept)}")
            self.index_bits = pair_index_bits(bundle, rows)
        #: The image's word layout: a column is ``blocks`` words (NB_l, or kept_l pair words).
        self.map = layer_map(bundle.input_size, self.hidden, rows, 1, self.kept)
        self.NB = total_blocks(self.map)
        self.channels = CELL_CHANNELS[bundle.cell]
        #: Bits of one gate's share of a word (P weights, or P pairs), of a word (every
        #: gate's), and its beats on the bus (SB).
        self.gate_bits = rows * (fmts.w_bits + (self.index_bits or 0))
        self.word_bits = len(self.channels) * self.gate_bits
        self.SB = math.ceil(self.word_bits / bus_bits)
        self.entry = entry_layout
        L = len(self.hidden)
        ports = {
            "issue": In(IssueSignature(entry_layout, columns, self.NB)),
            "written": In(range(count)), "ahead_index": Out(range(count)),
            "ahead_entry": In(entry_layout), "hold": Out(1),
            **({"layer": In(range(L))} if L > 1 else {}),
            "clear": In(1), "base": In(32),
            "axi": Out(AxiReadSignature(bus_bits)),
        }
        for name in self.channels:
            ports[f"slot_{name}"] = Out(SlotSignature(
                rows=rows, columns=columns, delta_bits=fmts.act_bits + 1, w_bits=fmts.w_bits,
                blocks=self.NB, index_bits=self.index_bits))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        K, P, SB, C, N, Lb, W = self.K, self.P, self.SB, self.C, self.N, self.Lb, self.W
        fmts, lm, issue, axi = self.bundle.formats, self.map, self.issue, self.axi
        nb_max = max(s.blocks for s in lm)
        count = self.written.shape()

        def per_layer(values):
            if len(lm) == 1:
                return Const(values[0])
            return Array(Const(v) for v in values)[self.layer]

        nb = per_layer([s.blocks for s in lm])
        block_base = per_layer([s.block_base for s in lm])
        last_block = per_layer([s.last_block for s in lm])
        col_beats = per_layer([s.blocks * SB for s in lm])

        # --- request (AR) ---------------------------------------------------------------
        n_ar = Signal(count)                       # the column being requested
        off = Signal(range(nb_max * SB + 1))       # its next burst's first beat
        in_flight = Signal(range(N + 1))           # bursts requested, not fully received
        released = Signal(count)                   # columns whose group has issued
        ar_valid = Signal()
        ar_addr = Signal(32)
        ar_len = Signal(8)
        m.d.comb += [
            self.ahead_index.eq(n_ar),
            axi.arvalid.eq(ar_valid), axi.arid.eq(0), axi.araddr.eq(ar_addr),
            axi.arlen.eq(ar_len),
            axi.arsize.eq(exact_log2(W // 8)), axi.arburst.eq(1),      # INCR
            axi.arcache.eq(0b0011), axi.arprot.eq(0),                  # normal, bufferable
        ]
        # Beat address of the burst from WEIGHT_BASE: word (addr + block_base) · SB + off.
        addr_bits = Shape.cast(self.entry["addr"].shape).width
        beat = Signal(addr_bits + 2 + (SB * (nb_max + 1)).bit_length())
        m.d.comb += beat.eq((self.ahead_entry.addr + block_base) * SB + off)
        room = Signal(range(Lb + 1))
        if Lb > 1:
            m.d.comb += room.eq(Lb - beat[:exact_log2(Lb)])
        else:
            m.d.comb += room.eq(1)
        left = Signal.like(off)
        m.d.comb += left.eq(col_beats - off)
        length = Signal(range(max(Lb, nb_max * SB) + 1))
        m.d.comb += length.eq(Mux(room < left, room, left))
        rx_last = Signal()
        load = Signal()
        m.d.comb += load.eq((~ar_valid | axi.arready) & (n_ar < self.written) &
                            ((n_ar - released) < C) & (in_flight < N))
        with m.If(load):
            m.d.sync += [ar_valid.eq(1),
                         ar_addr.eq(self.base + beat * (W // 8)),
                         ar_len.eq(length - 1)]
            with m.If(off + length == col_beats):
                m.d.sync += [off.eq(0), n_ar.eq(n_ar + 1)]
            with m.Else():
                m.d.sync += off.eq(off + length)
        with m.Elif(axi.arready):
            m.d.sync += ar_valid.eq(0)
        m.d.sync += in_flight.eq(in_flight + load - rx_last)

        # --- receive (R) into the column buffer ------------------------------------------------
        buf = memory.Memory(shape=unsigned(self.word_bits), depth=C * nb_max, init=[])
        m.submodules.buffer = buf
        wp = buf.write_port()
        n_rx = Signal(count)                       # columns fully received
        rx_beat = Signal(range(max(SB, 2)))
        rx_block = Signal(range(max(nb_max, 2)))
        parts = [Signal(W, name=f"rx_part{i}") for i in range(SB - 1)]
        rx = Signal()
        m.d.comb += [axi.rready.eq(1), rx.eq(axi.rvalid), rx_last.eq(rx & axi.rlast)]
        slot_of = (lambda n: n[:exact_log2(C)])
        m.d.comb += [
            wp.addr.eq(slot_of(n_rx) * nb_max + rx_block),
            wp.data.eq(Cat(*parts, axi.rdata)[:self.word_bits]),
            wp.en.eq(rx & (rx_beat == SB - 1)),
        ]
        with m.If(rx):
            if SB > 1:
                with m.Switch(rx_beat):
                    for i in range(SB - 1):
                        with m.Case(i):
                            m.d.sync += parts[i].eq(axi.rdata)
            with m.If(rx_beat == SB - 1):
                m.d.sync += rx_beat.eq(0)
                with m.If(rx_block == nb - 1):
                    m.d.sync += [rx_block.eq(0), n_rx.eq(n_rx + 1)]
                with m.Else():
                    m.d.sync += rx_block.eq(rx_block + 1)
            with m.Else():
                m.d.sync += rx_beat.eq(rx_beat + 1)

        # --- issue: hold the queue until the group's columns are there; read the slot ----------
        cnt = issue.column_valid[0] if K == 1 else \
            issue.column_valid[0] + issue.column_valid[1]
        m.d.comb += self.hold.eq(n_rx < released + cnt)
        with m.If(issue.valid & (issue.block == last_block)):
            m.d.sync += released.eq(released + cnt)

        slot = Signal(data.StructLayout({
            "valid": 1, "block": issue.block.shape(), "is_x": K,
        }), name="slot")
        m.d.sync += [slot.valid.eq(issue.valid), slot.block.eq(issue.block)]
        m.d.sync += [slot.is_x[k].eq(issue.entry[k].is_x) for k in range(K)]
        deltas = [issue.entry[k].delta for k in range(K)]
        wb = self.gate_bits
        local = Signal(range(max(nb_max, 2)))
        m.d.comb += local.eq(issue.block - block_base)
        reads = []
        for k in range(K):
            port = buf.read_port()
            m.d.comb += port.addr.eq(slot_of(released + k) * nb_max + local)
            reads.append(port)
        for g, name in enumerate(self.channels):
            out = getattr(self, f"slot_{name}")
            m.d.comb += [out.valid.eq(slot.valid), out.block.eq(slot.block),
                         out.is_x.eq(slot.is_x)]
            drive_slot_deltas(m, out, deltas, issue.column_valid, f"slot_{name}")
            for k in range(K):
                word = reads[k].data[g * wb:(g + 1) * wb]
                if self.kept is None:
                    m.d.comb += out.weight[k].as_value().eq(word)
                else:
                    fields = unpack_pairs(word, P, fmts.w_bits, self.index_bits)
                    for p, (weight, index) in enumerate(fields):
                        m.d.comb += [out.weight[k][p].eq(weight), out.index[k][p].eq(index)]

        with m.If(self.clear):
            m.d.sync += [n_ar.eq(0), off.eq(0), released.eq(0), n_rx.eq(0), rx_beat.eq(0),
                         rx_block.eq(0)]
        return m


def exact_log2(n: int) -> int:
    """log2 of a power of two (ValueError otherwise)."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"{n} is not a power of two")
    return n.bit_length() - 1
