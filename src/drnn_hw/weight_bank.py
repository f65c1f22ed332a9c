"""Weight banks: one ``lib.memory.Memory`` per gate channel (GRU r, z, n; LSTM i, f, g, o), K
synchronous read ports, and the read stage of an issue slot.

Layout: a word holds the P weights of one P-row block of one column of the stacked matrix
``[W_x | W_h]`` (I + H columns); the word of column ``col``, block ``b`` is at address
``col · NB + b``. Rows ≥ H hold 0. With K = 2 each bank is a true dual-port RAM: port k serves
the k-th delta column of a group, both in the same cycle. Channel n holds ``W_in`` in its x
columns and ``W_hn`` in its h columns; the MxV splits the sums into M_nx and M_nh. An LSTM
bundle (``bundle.cell``) has four banks, one per gate, each with the gate's ``[W_x | W_h]``.

Stacked layers: layer l's words form its region, from ``weight_base`` of
:mod:`drnn_hw.layer_map`, each laid out as above with the layer's own I, H and NB; the
encoder's addresses already carry the region's base.

The read is synchronous, so the bank registers the slot's deltas alongside it (one struct
register) and hands each MxV channel the slot with its weights one cycle after the issue.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .bundle import ModelBundle
from .contract import LoadMemory, load_signature
from .delta_encoder import delta_entry_layout
from .delta_queue import IssueSignature
from .hdl_arith import check_positive, refuse
from .layer_map import layer_map, total_blocks, total_words
from .mxv import SlotSignature

__all__ = ["WeightBank", "bank_words", "CHANNELS", "CELL_CHANNELS"]

#: The GRU core's channels, in the bundle's gate order.
CHANNELS = ("r", "z", "n")
#: Every cell's channels (PyTorch's gate names), in the bundle's gate order.
CELL_CHANNELS = {"gru": CHANNELS, "lstm": ("i", "f", "g", "o")}


def bank_words(bundle: ModelBundle, rows: int, layout=None) -> list[list[int]]:
    """The init words of the banks (three for a GRU, four for an LSTM):
    ``[channel][col * NB + b]`` as packed unsigned ints (weight ``p`` of a word in bits
    ``[p·w_bits, (p+1)·w_bits)``, ``NB = ceil(H/rows)``); a stacked bundle's layers one region
    after the other, or with ``layout`` (a core's :func:`~drnn_hw.layer_map.layer_map`, e.g.
    a run-time core's from its maxima) each in its slot's region from ``weight_base``, zeros
    between (``total_words(layout)`` words per bank)."""
    w_bits = bundle.formats.w_bits
    mask = (1 << w_bits) - 1
    gates = len(CELL_CHANNELS[bundle.cell])
    out = [[] for _ in range(gates)]
    for l, layer in enumerate(bundle.layers):
        I, H = layer.input_size, layer.hidden_size
        if layout is not None:
            for words in out:
                words.extend([0] * (layout[l].weight_base - len(words)))
        nb = math.ceil(H / rows)
        for c in range(gates):
            cols = np.zeros((I + H, nb * rows), dtype=np.int64)    # [column, row]
            cols[:I, :H] = np.asarray(layer.w_x[c]).T
            cols[I:, :H] = np.asarray(layer.w_h[c]).T
            for col in range(I + H):
                for b in range(nb):
                    word = 0
                    for p, w in enumerate(cols[col, b * rows:(b + 1) * rows]):
                        word |= (int(w) & mask) << (p * w_bits)
                    out[c].append(word)
    if layout is not None:
        for words in out:
            words.extend([0] * (total_words(layout) - len(words)))
    return out


class WeightBank(wiring.Component):
    """One weight memory per channel (:data:`CELL_CHANNELS` of ``bundle.cell``) sharing K read
    addresses; the issue slot's weight-read stage.

    Parameters
    ----------
    bundle : ModelBundle
        Sizes I, H (H ≥ 1), formats, the cell and the weights ``w_x`` (G, H, I), ``w_h``
        (G, H, H) of every layer (G = 3 gates r, z, n of a GRU, 4 gates i, f, g, o of an LSTM).
    rows, columns : int
        P (≥ 1) weights per word, K (≥ 1) read ports.
    addr_bits : int
        Width of a weight address (:func:`~drnn_hw.delta_encoder.address_width`); must reach
        every one of the ``(I + H) · NB`` words (summed over the layers).

    Ports
    -----
    issue : In(IssueSignature(delta_entry_layout(formats, addr_bits), K, ΣNB))
        The issue slot: port k reads word ``issue.entry[k].addr + issue.block``.
    slot_r, slot_z, slot_n : Out(SlotSignature(P, K, act_bits + 1, w_bits, NB))
        (An LSTM bundle: ``slot_i``, ``slot_f``, ``slot_g``, ``slot_o``.)
        The slot for each MxV channel one cycle later: its valid bit and block, the deltas
        (0 for columns without one, and when no slot), x/h flags, and ``weight[k][p]``, the
        weights (``w_bits`` codes) of rows ``block·P + p`` of column k.

    load : In(load_signature(load_bits))
        Only with ``load_bits``: a word write from the register bus into bank c when
        ``load.memory == LoadMemory.WEIGHTS + c`` (only while no slot is issued: the write
        takes read port 0's address, so each bank keeps the baked bank's block RAMs).

    ``layout`` (optional, a :func:`~drnn_hw.layer_map.layer_map`): the banks' layout, by
    default the bundle's own; a run-time core's is its maxima's (``rows`` must be its P).

    Raises
    ------
    ValueError
        ``bundle`` with no hidden rows, ``rows`` or ``columns`` < 1, ``addr_bits`` too narrow
        for the bank's depth.
    """

    def __init__(self, bundle: ModelBundle, *, rows: int, columns: int, addr_bits: int,
                 layout=None, load_bits: int | None = None):
        hidden = [layer.hidden_size for layer in bundle.layers]
        if min(hidden) < 1:
            raise refuse(self, f"bundle must have hidden rows (H ≥ 1), got H = "
                               f"{min(hidden)}")
        check_positive(self, rows=rows, columns=columns)
        self.bundle, self.P, self.K = bundle, rows, columns
        slots = layout or layer_map(bundle.layers[0].input_size, hidden, rows, 1)
        self.layout = layout
        self.load_bits = load_bits
        self.NB = total_blocks(slots)
        self.depth = total_words(slots)
        if addr_bits < 1 or (self.depth - 1) >> addr_bits:
            raise refuse(self, f"addr_bits = {addr_bits} cannot address the bank's "
                               f"{self.depth} words")
        fmts = bundle.formats
        self.channels = CELL_CHANNELS[bundle.cell]
        self.entry = delta_entry_layout(fmts, addr_bits)
        ports = {"issue": In(IssueSignature(self.entry, columns, self.NB))}
        for name in self.channels:
            ports[f"slot_{name}"] = Out(SlotSignature(
                rows=rows, columns=columns, delta_bits=fmts.act_bits + 1, w_bits=fmts.w_bits,
                blocks=self.NB))
        if load_bits is not None:
            ports["load"] = In(load_signature(load_bits))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        K, issue = self.K, self.issue
        fmts = self.bundle.formats

        # The slot, registered while its weights are read (the delta of an empty column or of
        # a cycle without a slot is 0, so those products add nothing).
        slot = Signal(data.StructLayout({
            "valid": 1, "block": self.issue.block.shape(),
            "delta": data.ArrayLayout(signed(fmts.act_bits + 1), K), "is_x": K,
        }), name="slot")
        m.d.sync += [slot.valid.eq(issue.valid), slot.block.eq(issue.block)]
        for k in range(K):
            m.d.sync += [
                slot.delta[k].eq(Mux(issue.valid & issue.column_valid[k], issue.entry[k].delta,
                                     0)),
                slot.is_x[k].eq(issue.entry[k].is_x),
            ]

        width = self.P * fmts.w_bits
        words_all = bank_words(self.bundle, self.P, self.layout)
        for c, (name, words) in enumerate(zip(self.channels, words_all)):
            mem = memory.Memory(shape=unsigned(width), depth=self.depth, init=words)
            m.submodules[f"bank_{name}"] = mem
            out = getattr(self, f"slot_{name}")
            m.d.comb += [out.valid.eq(slot.valid), out.block.eq(slot.block),
                         out.delta.eq(slot.delta), out.is_x.eq(slot.is_x)]
            wp, we = None, None
            if self.load_bits is not None:
                # A load shares port 0's address, so Yosys sees one read/write port and one
                # read port: the block RAMs of a baked bank. (The read ports are declared
                # transparent to the write only because that is the cheaper emulation for
                # Yosys: nothing reads a word in the cycle it is written.)
                load = self.load
                wp = mem.write_port()
                we = load.we & (load.memory == LoadMemory.WEIGHTS + c)
                m.d.comb += [wp.en.eq(we), wp.data.eq(load.data)]
            for k in range(K):
                port = mem.read_port(transparent_for=(wp,) if wp is not None else ())
                addr = issue.entry[k].addr + issue.block
                if k == 0 and wp is not None:
                    addr = Mux(we, load.addr, addr)
                    m.d.comb += wp.addr.eq(addr)
                m.d.comb += [port.addr.eq(addr), out.weight[k].as_value().eq(port.data)]
        return m
