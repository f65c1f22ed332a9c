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
register per channel) and hands each MxV channel the slot with its weights one cycle after the
issue.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .bundle import ModelBundle
from .contract import LoadMemory, load_signature
from .delta_encoder import delta_entry_layout
from .delta_queue import IssueSignature
from .hdl_arith import check_positive, refuse
from .layer_map import layer_map, total_blocks, total_words
from .mxv import SlotSignature, drive_slot_deltas

__all__ = ["WeightBank", "bank_words", "compressed_bank_words", "compressed_layer_words",
           "compressed_pairs", "pair_index_bits", "unpack_pairs", "CHANNELS", "CELL_CHANNELS"]

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


def compressed_pairs(w, rows: int, kept: int) -> tuple[np.ndarray, np.ndarray]:
    """The (value, block) pairs of a matrix ``w`` (H, C) for a compressed core of P = ``rows``:
    arrays (C, kept, P) of the values and of the blocks b (row ``b·P + p`` of slice p).

    In each slice (c, p) the non-zero weights in increasing row order, then padding pairs
    (value 0, block of the slice's last real row, or 0) up to ``kept`` (:mod:`drnn_hw.balance`:
    a slice with fewer real rows, or fewer non-zeros, is padded; a padding pair adds 0 to a
    real row of its slice). Raises ValueError naming the column and slice when a slice holds
    more than ``kept`` non-zeros (the pattern is not column-balanced for this core).
    """
    w = np.asarray(w, dtype=np.int64)
    H, C = w.shape
    nb = math.ceil(H / rows)
    values = np.zeros((C, kept, rows), np.int64)
    blocks = np.zeros((C, kept, rows), np.int64)
    for c in range(C):
        for p in range(rows):
            real = [b for b in range(nb) if b * rows + p < H]
            nz = [b for b in real if w[b * rows + p, c] != 0]
            if len(nz) > kept:
                raise ValueError(f"column {c}, slice p = {p}: {len(nz)} non-zero weights, a "
                                 f"compressed core of P = {rows} stores {kept} per slice")
            pad = real[-1] if real else 0
            for j in range(kept):
                if j < len(nz):
                    values[c, j, p], blocks[c, j, p] = w[nz[j] * rows + p, c], nz[j]
                else:
                    blocks[c, j, p] = pad
    return values, blocks


def compressed_layer_words(layer, gate: int, rows: int, kept: int, block_base: int,
                           w_bits: int, index_bits: int) -> list[int]:
    """One layer's words of gate ``gate``'s compressed bank, from its region's start: the
    word of column c, pair j at ``c·kept + j`` holds P pairs, pair p at bits
    ``[p·(w_bits + index_bits), …)``: the weight (``w_bits``), then its global delta-memory
    block ``block_base + b`` (``index_bits``), so the pair names row ``p + P·b`` of its slice.
    Pairs: :func:`compressed_pairs` (ValueError when a slice holds more than ``kept``)."""
    wmask, pair_bits = (1 << w_bits) - 1, w_bits + index_bits
    w = np.concatenate([np.asarray(layer.w_x[gate]), np.asarray(layer.w_h[gate])], axis=1)
    values, blk = compressed_pairs(w, rows, kept)
    out = []
    for col in range(w.shape[1]):
        for j in range(kept):
            word = 0
            for p in range(rows):
                pair = (int(values[col, j, p]) & wmask) | \
                    (int(block_base + blk[col, j, p]) << w_bits)
                word |= pair << (p * pair_bits)
            out.append(word)
    return out


def compressed_bank_words(bundle: ModelBundle, rows: int, kept, index_bits: int,
                          layout=None, pair_layout=None) -> list[list[int]]:
    """The init words of a compressed core's banks (:class:`WeightBank` with ``kept``):
    ``[channel][word]`` as packed unsigned ints. Layer l's words
    (:func:`compressed_layer_words`, ``kept[l]`` per column) from the issue-slot layout's
    ``weight_base`` (:func:`~drnn_hw.layer_map.layer_map` with ``blocks = kept``), their
    blocks from the delta-memory layout's ``block_base``. A run-time core passes its own
    layouts (``layout``: the maxima's :func:`~drnn_hw.layer_map.layer_map`, ``pair_layout``:
    the same with ``blocks = kept_max``): each layer then starts at its slot, zeros between,
    ``total_words(pair_layout)`` words per bank."""
    w_bits = bundle.formats.w_bits
    gates = len(CELL_CHANNELS[bundle.cell])
    hidden = [ly.hidden_size for ly in bundle.layers]
    blocks = layout or layer_map(bundle.layers[0].input_size, hidden, rows, 1)
    out = [[] for _ in range(gates)]
    for l, layer in enumerate(bundle.layers):
        for c in range(gates):
            if pair_layout is not None:
                out[c].extend([0] * (pair_layout[l].weight_base - len(out[c])))
            out[c].extend(compressed_layer_words(layer, c, rows, kept[l],
                                                 blocks[l].block_base, w_bits, index_bits))
    if pair_layout is not None:
        for words in out:
            words.extend([0] * (total_words(pair_layout) - len(words)))
    return out


def pair_index_bits(bundle: ModelBundle, rows: int) -> int:
    """Bits of a pair's block field in a compressed core of P = ``rows``: the global
    delta-memory block, ``max(1, ceil(log2 ΣNB_l))`` (:func:`drnn_hw.mxv_compressed.
    index_bits`). One pair is ``w_bits + pair_index_bits`` bits, one gate's pair word P
    pairs."""
    from .mxv_compressed import index_bits

    return index_bits(sum(math.ceil(ly.hidden_size / rows) for ly in bundle.layers))


def unpack_pairs(word, rows: int, w_bits: int, index_bits: int) -> list:
    """The P (weight, block) fields of one gate's pair word (the format of
    :func:`compressed_bank_words`: pair p at bits ``[p·(w_bits + index_bits), …)``, weight
    first) as slices of the Amaranth value ``word``: a list of P (weight, block) pairs. Both
    readers of pair words use it (:class:`WeightBank` from its banks, the AXI fetch
    :class:`~drnn_hw.axi_weight_fetch.AxiWeightFetch` from its column buffer), so the format
    is written in one place each way."""
    pair = w_bits + index_bits
    return [(word[p * pair:p * pair + w_bits], word[p * pair + w_bits:(p + 1) * pair])
            for p in range(rows)]


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
    issue : In(IssueSignature(delta_entry_layout(formats, addr_bits), K, ΣNB, channels))
        The issue slot: port k of channel c's memory reads word ``issue.word[c][k]``
        (= ``issue.entry[k].addr + issue.block``, registered by the sender, a copy per
        channel).
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

    ``kept`` (optional, one int per layer): a compressed core's banks
    (:func:`compressed_bank_words`): the word of column c, pair j at ``c·kept_l + j`` of the
    layer's region holds P (weight, block) pairs; the issue's block is then the pair
    number (the issue-slot layout, :func:`~drnn_hw.layer_map.layer_map` with ``blocks =
    kept``) and the slots carry each pair's global block on ``index`` (``index_bits =
    max(1, ceil(log2 ΣNB))``). With ``layout`` (a run-time core's delta-memory layout) the
    bank is laid out for ``kept_max`` pairs per column of every slot (``layer_map(...,
    blocks=[kept_max] * L)``, ``kept_max`` by default max(kept)), the initial bundle's layers
    each with its own ``kept_l`` from its slot; ``load_bits`` then loads P-pair words
    (``P · (w_bits + index_bits)`` bits).

    Raises
    ------
    ValueError
        ``bundle`` with no hidden rows, ``rows`` or ``columns`` < 1, ``addr_bits`` too narrow
        for the bank's depth.
    """

    def __init__(self, bundle: ModelBundle, *, rows: int, columns: int, addr_bits: int,
                 layout=None, load_bits: int | None = None, kept=None,
                 kept_max: int | None = None):
        hidden = [layer.hidden_size for layer in bundle.layers]
        if min(hidden) < 1:
            raise refuse(self, f"bundle must have hidden rows (H ≥ 1), got H = "
                               f"{min(hidden)}")
        check_positive(self, rows=rows, columns=columns)
        self.bundle, self.P, self.K = bundle, rows, columns
        self.kept = None if kept is None else [int(k) for k in kept]
        self.index_bits = None
        self.pair_layout = None
        slots = layout
        if kept is not None:
            nbs = [math.ceil(h / rows) for h in hidden]
            if len(self.kept) != len(hidden) or \
                    not all(1 <= k <= nb for k, nb in zip(self.kept, nbs)):
                raise refuse(self, f"kept must be one value in [1, NB_l] per layer (NB = "
                                 f"{nbs}), got {self.kept}")
            total_nb = total_blocks(layout) if layout is not None else sum(nbs)
            self.index_bits = max(1, (total_nb - 1).bit_length())
            if layout is not None:
                # The run-time layout: every slot kept_max pairs per column.
                kept_max = max(self.kept) if kept_max is None else int(kept_max)
                if kept_max < max(self.kept) or kept_max > layout[0].blocks:
                    raise refuse(self, f"kept_max = {kept_max}: must lie in [max(kept) = "
                                       f"{max(self.kept)}, NB = {layout[0].blocks}]")
                self.pair_layout = layer_map(layout[0].inputs, [s.hidden for s in layout],
                                             rows, 1, [kept_max] * len(layout))
                slots = self.pair_layout
        slots = slots or layer_map(bundle.layers[0].input_size, hidden, rows, 1, self.kept)
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
        ports = {"issue": In(IssueSignature(self.entry, columns, self.NB,
                                            copies=len(self.channels)))}
        for name in self.channels:
            ports[f"slot_{name}"] = Out(SlotSignature(
                rows=rows, columns=columns, delta_bits=fmts.act_bits + 1, w_bits=fmts.w_bits,
                blocks=self.NB, index_bits=self.index_bits))
        if load_bits is not None:
            ports["load"] = In(load_signature(load_bits))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        K, issue = self.K, self.issue
        fmts = self.bundle.formats

        # The slot, registered while its weights are read (the delta of an empty column is 0,
        # so its products add nothing; a cycle without a slot writes nothing). One register per
        # channel: each drives its channel's P·K multipliers, and one register for all of
        # them was a single net across the die's DSP rows (17 ns on the ULX3S). Copies are
        # merged by synthesis unless kept: the names end in ``_dup`` (see drnn_boards.ulx3s).
        # The deltas: one register per channel and few rows (drive_slot_deltas).
        slot_layout = data.StructLayout({
            "valid": 1, "block": self.issue.block.shape(), "is_x": K,
        })
        slots = [Signal(slot_layout, name=f"slot_{name}_dup") for name in self.channels]
        deltas = [issue.entry[k].delta for k in range(K)]
        for slot in slots:
            m.d.sync += [slot.valid.eq(issue.valid), slot.block.eq(issue.block)]
            m.d.sync += [slot.is_x[k].eq(issue.entry[k].is_x) for k in range(K)]

        if self.kept is not None:
            pair = fmts.w_bits + self.index_bits
            width = self.P * pair
            words_all = compressed_bank_words(self.bundle, self.P, self.kept, self.index_bits,
                                              self.layout, self.pair_layout)
        else:
            width = self.P * fmts.w_bits
            words_all = bank_words(self.bundle, self.P, self.layout)
        for c, (name, words, slot) in enumerate(zip(self.channels, words_all, slots)):
            mem = memory.Memory(shape=unsigned(width), depth=self.depth, init=words)
            m.submodules[f"bank_{name}"] = mem
            out = getattr(self, f"slot_{name}")
            m.d.comb += [out.valid.eq(slot.valid), out.block.eq(slot.block),
                         out.is_x.eq(slot.is_x)]
            drive_slot_deltas(m, out, deltas, issue.column_valid, f"slot_{name}")
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
                # The slot's word, from the queue's register for this memory
                # (IssueSignature.word: a copy per channel).
                addr = issue.word[c][k]
                if k == 0 and wp is not None:
                    addr = Mux(we, load.addr, addr)
                    m.d.comb += wp.addr.eq(addr)
                if self.kept is None:
                    m.d.comb += [port.addr.eq(addr), out.weight[k].as_value().eq(port.data)]
                else:
                    m.d.comb += port.addr.eq(addr)
                    fields = unpack_pairs(port.data, self.P, fmts.w_bits, self.index_bits)
                    for p, (weight, index) in enumerate(fields):
                        m.d.comb += [out.weight[k][p].eq(weight), out.index[k][p].eq(index)]
        return m
