"""The LSTM activation pipeline: delta memories and cell state to the new h and c, one P-block
per cycle.

For every hidden unit (the spec is :mod:`drnn_hw.numerics`, module docstring, "LSTM"; the
reference :func:`drnn_hw.golden.lstm_activation`, bit for bit), in cycles after the block's
issue ``c0`` (at most one carry chain, table lookup or multiplier per stage)::

    c0  read the block of the four delta memories M_i, M_f, M_g, M_o
    c1  σ ROM addresses of M_i, M_f, M_o, tanh ROM address of M_g;  read c (the cell RAM)
    c2  i, f, g, o from the ROMs, c (registered)
    c3  f·c to the f channel's multipliers, i·g to the i channel's (column 0)
    c5  f·c, i·g registered: each as its floor in the cell format and its rounding bit
    c6  c' = sat(fc + ig), fc and ig rounded half up inside the one add, written to the
        cell RAM;  tanh ROM address of c'
    c7  tc = tanh(c') from the ROM (registered)
    c8  o·tc to the o channel's multipliers (column 0)
    c10 h' = sat(round(o·tc)) (registered)
    c11 h' written to h

Every table and RAM word is registered before it goes anywhere, and so is h′ before it goes to
h, as in the GRU's AP (a block RAM's output comes 5.6 ns after the clock on an ECP5, and the
multipliers sit in the die's DSP rows, away from h: :mod:`drnn_hw.activation`).

Identities of the spec's integer arithmetic that save stages (exact, not approximations):

* a table index depends on its input only through a clamp, so it is computed straight from the
  wider value (:func:`~drnn_hw.hdl_arith.saturated_lut_index`): from the unsaturated delta
  memory rows at c1, and from the unsaturated sum ``fc + ig`` at c5 (the cell format has the
  activation's integer range, so the tanh table's ±4 lies inside it and saturating c' first
  cannot change the index; ``cell_index`` is the index of ``floor(c' / 2^(C−A))``);
* ``fc`` and ``ig`` never saturate (the spec saturates them; here that is a no-op): the σ
  table's entries lie in [0, 2^A] and the tanh table's in [−2^A, 2^A] (both checked here), so
  ``|round(f·c / 2^A)| ≤ |c|`` and ``|round(i·g / 2^(2A−C))| ≤ 2^C``, both inside the cell
  format; so they stay in the cell format's width, and so do their floors but for one bit.
* round half up is the floor plus the bit below it, so c' = fc + ig is the two floors and
  the two rounding bits summed: one adder (:func:`~drnn_hw.hdl_arith.add_two_rounded`, a
  carry-save layer for one bit, the carry in for the other), behind a register that holds
  the products' bits as they leave the multipliers.
* ``h′ = sat(round(o·tc / 2^A))`` never saturates when ``A ≤ act_bits − 2`` (the default
  Q8.8): o in [0, 2^A] and tc in [−2^A, 2^A] put |h′| at most 2^A, so h′ is the product's
  floor plus its rounding bit, an increment of act_bits; otherwise
  :func:`~drnn_hw.hdl_arith.round_saturate` (no carry chain across the product).

Why this shape. The LSTM core has four MxV channels (i, f, g, o), one per gate, each with one
delta memory, so the MxV time is the GRU's (a delta column is multiplied into all four gates in
the same cycle); the AP needs three multiplications per unit, which it borrows from the column-0
multipliers of three channels: f·c and i·g in the same cycle (c3) on the f and i channels, o·tc
five cycles later (c8) on the o channel, so no multiplier is asked twice in a cycle. The AP owns no multiplier: the core has exactly 4·P·K. Unlike the GRU's,
it does not read the old h (h' depends on c' and o only), so the core's h block mux is not in
its path. The multipliers' first operand is ``cell.bits`` wide (18 by default: c in Q8.10; one
MULT18X18D on an ECP5), so the LSTM core's channels take ``ap_a_bits`` = :func:`ap_a_bits`.

The cell state c lives here, in a ``lib.memory`` RAM of ΣNB words of P cell-format codes beside
the core's h registers (nothing else needs c, and nothing needs it in parallel: the encoder
scans h, not c). Each block is read at c1 and written at c6 of the same pass, so one read and
one write port suffice (two blocks in flight have different addresses; the next read of a
block is a step later). ``clear`` (RESET_STATE) writes zeros over the next ΣNB cycles, one
block per cycle, as the MxV restores its biases in the same idle time (and the same after the
clock domain's reset, which leaves RAM contents as they were): c0 = 0. An initial h0 (the H0
register) does not touch c.

Issue starts in the cycle after ``start`` (:data:`AP_ISSUE`) and runs NB blocks back to back;
``done`` pulses in the cycle the last block's h is written. Stacked layers as in
:class:`~drnn_hw.activation.ActivationPipeline` (global blocks from the layer's
``block_base``; the cell RAM holds every layer's c).
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .activation import (AP_ISSUE, block_issue, drive_h_write, drive_reads, h_write_shape,
                         lend_enables)
from .hdl_arith import (add_two_rounded, check_positive, refuse, round_saturate, round_shift,
                        saturate, saturated_lut_index)
from .multiplier import MultiplierBankSignature
from .mxv import AP_MUL_LATENCY, AP_READ_LATENCY, DeltaReadSignature, ap_operand_b_bits
from .layer_map import LayerDescriptor
from .numerics import Formats

__all__ = ["LSTMActivationPipeline", "LSTM_AP_STAGES", "AP_ISSUE", "ap_a_bits", "GATES"]

#: The gates, in the bundle's order (PyTorch's names).
GATES = ("i", "f", "g", "o")

#: When each stage happens, in cycles after the block's issue (see the module docstring).
_C_M = AP_READ_LATENCY                 # memories' rows arrive: ROM addresses; c read
_C_G = _C_M + 2                        # i, f, g, o, c registered: f·c and i·g issued
_C_P = _C_G + AP_MUL_LATENCY           # products: fc, ig rounded
_C_C = _C_P + 1                        # c' = sat(fc + ig) written; tanh(c') address
_C_T = _C_C + 2                        # tanh(c') registered: o·tanh(c') issued
_C_H = _C_T + AP_MUL_LATENCY           # h' registered
#: Cycles from a block's issue (c0) to its h write.
LSTM_AP_STAGES = _C_H + 1


def ap_a_bits(fmts: Formats) -> int:
    """Width of the first operand of the multipliers the LSTM AP borrows: c (``cell.bits``),
    a gate value or tanh(c') (``act_bits``), or, for the MxV itself, a delta
    (``act_bits + 1``)."""
    return max(fmts.act_bits + 1, fmts.cell.bits)


def _round_to(v, shift: int, bits: int):
    """``saturate(round_shift(v, shift), bits)`` (round half up, then saturate), with
    :func:`~drnn_hw.hdl_arith.round_saturate` when there is something to round."""
    if shift <= 0:
        return saturate(round_shift(v, shift), bits)
    return round_saturate(v, shift, shift, bits)


def _floor_and_half(m, product, shift: int, bits: int, name: str):
    """``round_shift(product, shift)`` as ``(floor, half)`` from one register of the product's
    bits (``name``): ``floor = product >> shift`` (``signed(bits + 1)``: the rounded value fits
    in ``bits``, module docstring, so its floor fits in one bit more) and ``half`` the bit
    below it (0 when ``shift`` ≤ 0: nothing is rounded), so that ``floor + half`` is the
    rounded value. The register takes the product's bits as they are: no logic between the
    multiplier and it."""
    product = Value.cast(product)
    if not product.shape().signed:
        product = Cat(product, Const(0, 1)).as_signed()
    product = Cat(product, product[-1].replicate(bits + 2 + max(0, -shift)))
    reg = Signal(bits + 2, name=name)
    if shift >= 1:
        m.d.sync += reg.eq(product[shift - 1:shift + bits + 1])
    else:
        m.d.sync += reg.eq(Cat(Const(0, 1), (product << -shift)[:bits + 1]))
    return reg[1:].as_signed(), reg[0]


class LSTMActivationPipeline(wiring.Component):
    """The LSTM gate math for one P-row block per cycle, and the cell state (see the module
    docstring; the algorithm is :func:`drnn_hw.golden.lstm_activation`, bit for bit).

    Parameters
    ----------
    fmts : Formats
        Number formats (:mod:`drnn_hw.numerics`; c in ``fmts.cell``).
    hidden : int or sequence of int
        H (≥ 1), or every layer's H for a stacked core; ``NB = ceil(H/P)`` blocks (per layer).
    rows : int
        P (≥ 1).
    acc_width : int
        Width of the delta memories' rows (:func:`~drnn_hw.mxv.acc_width`, ≥ ``acc_bits``).
    sigmoid_lut, tanh_lut : sequences of ``2**lut_bits`` ints
        The σ and tanh tables (activation-format codes; σ entries in [0, 2^act_frac], tanh
        entries in [−2^act_frac, 2^act_frac]).

    Ports
    -----
    layer : In(range(L))
        Only with L > 1: the layer of the pass (stable from ``start`` to ``done``).
    start : In(1)
        Issue block 0 in the next cycle, then blocks 1..NB-1 on the following cycles.
    clear : In(1)
        Set c to 0 (RESET_STATE): ΣNB writes over the next ΣNB cycles; no ``start`` before
        they are done (the core's bias refill of the delta memories takes longer).
    read_i, read_f, read_g, read_o : Out(DeltaReadSignature(P, acc_width, ΣNB))
        Block reads of M_i, M_f, M_g, M_o (all four the same block in the same cycle); the rows
        arrive ``AP_READ_LATENCY`` cycles later (acc_bits + guard bits, not saturated).
    mul_i, mul_f, mul_o : Out(MultiplierBankSignature(P, ap_a_bits, ap_operand_b_bits))
        The borrowed column-0 multipliers of the i, f and o channels (product
        ``AP_MUL_LATENCY`` cycles after ``en``).
    h_we : Out(1), h_wblock : Out(range(max(ΣNB, 2))), h_out : Out(ArrayLayout(signed(act_bits), P))
        New hidden state of one block (activation codes; rows past H are don't-care).
    h_write : Out(ArrayLayout(unsigned(max(ΣNB, 2)), P))
        Row p's copy of (``h_we``, ``h_wblock``) decoded, as the GRU pipeline's
        (:func:`~drnn_hw.activation.drive_h_write`).
    done : Out(1)
        The last block was written this cycle.

    Raises
    ------
    ValueError
        ``hidden`` or ``rows`` < 1, ``acc_width`` < ``acc_bits``, a table not of
        ``2**lut_bits`` entries, σ entries outside [0, 2^act_frac] or tanh entries outside
        [−2^act_frac, 2^act_frac] (named in the message).
    """

    def __init__(self, fmts: Formats, *, hidden, rows: int, acc_width: int, sigmoid_lut,
                 tanh_lut):
        layers = [hidden] if isinstance(hidden, int) else list(hidden)
        check_positive(self, rows=rows, **{f"hidden[{l}]" if len(layers) > 1 else "hidden": h
                                           for l, h in enumerate(layers)})
        if acc_width < fmts.acc_bits:
            raise refuse(self, f"acc_width must be ≥ acc_bits = {fmts.acc_bits}, got "
                               f"{acc_width}")
        self.fmts, self.H, self.P = fmts, hidden, rows
        nbs = [math.ceil(h / rows) for h in layers]
        self.first = [sum(nbs[:l]) for l in range(len(nbs))]
        self.last = [f + nb - 1 for f, nb in zip(self.first, nbs)]
        self.NB = sum(nbs)
        self.sigmoid_lut = [int(v) for v in sigmoid_lut]
        self.tanh_lut = [int(v) for v in tanh_lut]
        one = 1 << fmts.act_frac
        for name, table, lo in (("sigmoid_lut", self.sigmoid_lut, 0),
                                ("tanh_lut", self.tanh_lut, -one)):
            if len(table) != fmts.lut_entries:
                raise refuse(self, f"{name} must have 2**lut_bits = {fmts.lut_entries} "
                                   f"entries, got {len(table)}")
            # fc and ig need no saturation (module docstring) because of these ranges.
            if not all(lo <= v <= one for v in table):
                raise refuse(self, f"{name} entries must lie in [{lo}, 2^act_frac = {one}]")
        act = signed(fmts.act_bits)
        blk = range(max(self.NB, 2))
        mul = MultiplierBankSignature(rows, ap_a_bits(fmts), ap_operand_b_bits(fmts))
        read = DeltaReadSignature(rows=rows, acc_width=acc_width, blocks=self.NB)
        super().__init__({
            **({"layer": In(range(len(layers)))} if len(layers) > 1 else {}),
            "desc": In(data.ArrayLayout(LayerDescriptor, len(layers)),
                       init=[{"blocks": nb} for nb in nbs]),
            "start": In(1),
            "clear": In(1),
            **{f"read_{g}": Out(read) for g in GATES},
            "mul_i": Out(mul),
            "mul_f": Out(mul),
            "mul_o": Out(mul),
            "h_we": Out(1),
            "h_wblock": Out(blk),
            "h_write": Out(data.ArrayLayout(h_write_shape(blk), rows)),
            "h_out": Out(data.ArrayLayout(act, rows)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fmts, P, NB = self.fmts, self.P, self.NB
        A, C = fmts.act_frac, fmts.cell.frac
        cb = fmts.cell.bits
        act, cell = signed(fmts.act_bits), signed(cb)
        blk = range(max(NB, 2))

        # Stage c0 (the block read) and its copies in stages c1..c10: valid bit, block number.
        stage = data.StructLayout({"valid": 1, "block": blk})
        c = [Signal(stage, name=f"c{i}") for i in range(LSTM_AP_STAGES + 1)]
        # The layout's first block of the layer, the descriptor's block count.
        if len(self.first) == 1:
            first = self.first[0]
            last = self.desc[0].blocks + (first - 1)
        else:
            first = Array(Const(v) for v in self.first)[self.layer]
            last = Array(self.desc[l].blocks + (f - 1)
                         for l, f in enumerate(self.first))[self.layer]
        # c0 and the reads come from registers only, the reads from copies per port and group
        # of rows (as the GRU AP's).
        issuing, count = block_issue(m, self.start, first, last, blk, "issue")
        m.d.comb += [c[0].valid.eq(issuing), c[0].block.eq(count)]
        reads = {g: getattr(self, f"read_{g}") for g in GATES}
        drive_reads(m, reads, P, self.start, first, last, blk)
        m.d.sync += [c[i].eq(c[i - 1]) for i in range(1, LSTM_AP_STAGES + 1)]
        # ``done`` from a register (worked out a stage early): it ends the pass in the core,
        # which clears the encoder, the queue and the banks with it.
        done = Signal(name="done_q")
        m.d.sync += done.eq(c[LSTM_AP_STAGES - 1].valid &
                            (c[LSTM_AP_STAGES - 1].block == last))
        m.d.comb += self.done.eq(done)

        mul_i, mul_f, mul_o = self.mul_i, self.mul_f, self.mul_o
        lend_enables(m, {"mul_i": (mul_i, c[_C_G - 1].valid), "mul_f": (mul_f, c[_C_G - 1].valid),
                         "mul_o": (mul_o, c[_C_T - 1].valid)}, P)
        m.d.comb += [
            self.h_we.eq(c[LSTM_AP_STAGES].valid), self.h_wblock.eq(c[LSTM_AP_STAGES].block),
        ]
        drive_h_write(m, self.h_write, c[LSTM_AP_STAGES - 2])

        # The cell state: read at c1 (data at c2), written at c6; zeros after ``clear``.
        c_mem = memory.Memory(shape=data.ArrayLayout(cell, P), depth=max(NB, 2), init=[])
        m.submodules.cell = c_mem
        c_rd, c_wr = c_mem.read_port(), c_mem.write_port()
        filling = Signal(init=1)        # also after the domain's reset (RAM keeps contents)
        fill_block = Signal(blk)
        with m.If(self.clear):
            m.d.sync += [filling.eq(1), fill_block.eq(0)]
        with m.Elif(filling):
            m.d.sync += fill_block.eq(fill_block + 1)
            with m.If(fill_block == NB - 1):
                m.d.sync += filling.eq(0)
        m.d.comb += [c_rd.addr.eq(c[_C_M].block), c_rd.en.eq(c[_C_M].valid),
                     c_wr.en.eq(c[_C_C].valid | filling),
                     c_wr.addr.eq(Mux(filling, fill_block, c[_C_C].block))]

        def delay(value, frm, to, name):
            """``value`` (valid at stage ``frm``, registered there) carried to stage ``to``."""
            for i in range(frm + 1, to + 1):
                nxt = Signal.like(value, name=f"{name}_c{i}")
                m.d.sync += nxt.eq(value)
                value = nxt
            return value

        for p in range(P):
            sig_if = memory.Memory(shape=act, depth=len(self.sigmoid_lut), init=self.sigmoid_lut)
            sig_o = memory.Memory(shape=act, depth=len(self.sigmoid_lut), init=self.sigmoid_lut)
            tanh_rom = memory.Memory(shape=act, depth=len(self.tanh_lut), init=self.tanh_lut)
            m.submodules[f"sigmoid_if{p}"] = sig_if
            m.submodules[f"sigmoid_o{p}"] = sig_o
            m.submodules[f"tanh{p}"] = tanh_rom
            rd_i, rd_f, rd_o = sig_if.read_port(), sig_if.read_port(), sig_o.read_port()
            rd_g, rd_c = tanh_rom.read_port(), tanh_rom.read_port()

            # c1: table addresses straight from the unsaturated delta memory rows.
            for port, g, rng in ((rd_i, "i", fmts.sigmoid_range_log2),
                                 (rd_f, "f", fmts.sigmoid_range_log2),
                                 (rd_g, "g", fmts.tanh_range_log2),
                                 (rd_o, "o", fmts.sigmoid_range_log2)):
                m.d.comb += port.addr.eq(saturated_lut_index(reads[g].m[p], fmts, rng,
                                                             fmts.w_frac))
            # c2: the words registered; c3: f·c on the f channel, i·g on the i channel; o kept
            # for c8.
            q = {n: Signal(act, name=f"{n}_{p}") for n in "ifgo"}
            c_q = Signal(cell, name=f"c_{p}")
            m.d.sync += [q["i"].eq(rd_i.data), q["f"].eq(rd_f.data), q["g"].eq(rd_g.data),
                         q["o"].eq(rd_o.data), c_q.eq(c_rd.data[p])]
            m.d.comb += [mul_f.a[p].eq(c_q), mul_f.b[p].eq(q["f"]),
                         mul_i.a[p].eq(q["g"]), mul_i.b[p].eq(q["i"])]
            o8 = delay(q["o"], _C_G, _C_T, f"o_{p}")
            # c5: each product registered as it leaves the multiplier, as its floor in the
            # cell format and its rounding bit (``_floor_and_half``): the rounding (a LUT
            # level or more, round_saturate) between a DSP and its register was the LSTM
            # core's slowest path group at 80 MHz (the i·g register, 13.13 ns, issue #10).
            # c6: c' = sat(fc + ig) = sat(⌊f·c⌋ + ⌊i·g⌋ + the two rounding bits), one adder
            # (add_two_rounded), into the cell RAM; the tanh address of c' from the
            # unsaturated sum: cell_index(v) is the index of floor(v / 2^(C − A)), which
            # ``saturated_lut_index`` with ``rounded`` (no half added) and pre_shift C − A is.
            fc, fc_half = _floor_and_half(m, mul_f.product[p], A, cb, f"fc_{p}")
            ig, ig_half = _floor_and_half(m, mul_i.product[p], 2 * A - C, cb, f"ig_{p}")
            total = add_two_rounded(fc, fc_half, ig, ig_half, cb + 2)
            m.d.comb += [
                c_wr.data[p].eq(Mux(filling, 0, saturate(total, cb))),
                rd_c.addr.eq(saturated_lut_index(total, fmts, fmts.tanh_range_log2, C - A,
                                                 rounded=True)),
            ]
            # c7: tanh(c') registered; c8: o · tanh(c') on the o channel;
            # c10: h' = sat(round(o · tanh(c'))), registered; c11: written.
            tc = Signal(act, name=f"tc_{p}")
            m.d.sync += tc.eq(rd_c.data)
            m.d.comb += [mul_o.a[p].eq(tc), mul_o.b[p].eq(o8)]
            # With A ≤ act_bits − 2 the clamp is a no-op (|o·tanh(c')| ≤ 2^(2A), so
            # |h'| ≤ 2^A, inside the activation format; module docstring): h' is the
            # product's floor plus its rounding bit, an increment and nothing else between
            # the DSP and h′'s register (round_saturate's compare and clamp behind the die
            # crossing were one of the LSTM core's slowest path groups, 12.48 ns at 80 MHz).
            h_next = Signal(act, name=f"h_next_{p}")
            prod_o = mul_o.product[p]
            if A <= fmts.act_bits - 2:
                m.d.sync += h_next.eq((prod_o[A:A + fmts.act_bits] + prod_o[A - 1])
                                      [:fmts.act_bits])
            else:
                m.d.sync += h_next.eq(_round_to(prod_o, A, fmts.act_bits))
            m.d.comb += self.h_out[p].eq(h_next)
        return m
