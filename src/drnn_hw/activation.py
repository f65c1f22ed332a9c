"""The activation pipeline (AP): delta memories to the new hidden state, one P-block per cycle.

For every hidden unit (see :func:`drnn_hw.golden.activation_pipeline`), in cycles after the
block's issue ``c0`` (at most one carry chain, table lookup or multiplier per stage)::

    c0   read the block of the four delta memories
    c1   σ ROM addresses of M_r, M_z;  mnx, mnh = narrow(M_nx), narrow(M_nh)
    c2   r, z from the σ ROM (registered)
    c3   r·mnh to the r channel's multipliers (column 0)
    c5   r·mnh registered (its rounding bit and high part)
    c6   the tanh ROM read at the address of pre = sat(mnx + round(r·mnh))
    c7   n from the tanh ROM (registered);  h read (registered)
    c8   z·(h − n) to the z channel's multipliers (column 0)
    c10  h' = sat(n + round(z·(h − n))) (registered)
    c11  h' written to h

Each table's word is registered before any logic uses it: a block RAM's output is 5.6 ns after
the clock on an ECP5 (``DP16KD`` without its output register, which Yosys does not infer), so
a table read followed by the h − n subtract and the multiplier's operand mux was the ULX3S
build's critical path (16.1 ns). So is each product's result before it goes on: the r and z
channels' multipliers sit in the die's DSP rows, away from the tables and from h, and the
paths product → tanh ROM address and product → h′ → h (and the output's holding registers)
were the slowest groups of the fifth round's 80 MHz build (12.3 and 12.6 ns, 9.8 of them
routing). The four registers cost four cycles per step (issue #10). r·mnh is registered as it
arrives, before the add (c5), h′ after its add (c10): h′'s register also feeds h and the
output's holding registers, while the tanh ROM's address is registered by the ROM itself.

Two identities of the spec's integer arithmetic save stages (both exact, not approximations):

* a table index depends on its input only through a clamp, so it is computed straight from the
  wider value (:func:`~drnn_hw.hdl_arith.saturated_lut_index`): from the unsaturated delta
  memory row at c1, and from ``r·mnh`` plus ``mnx`` at c6;
* ``rnh = sat(round(r·mnh))`` never saturates, because the σ table's entries lie in [0, 2^A]
  (checked here; the bundle enforces it), so ``mnx + rnh`` is one add;
* for the same reason ``h' = sat(n + round(z·(h − n)))`` never saturates: z·(h − n)/2^A lies
  between 0 and the integer h − n, so rounding it (half up, a monotone step) lands between
  them too, and h' between n and h, both act codes. The add is then exact modulo
  2^act_bits: only the product's rounding bit and its next act_bits bits enter it.

Each rounding is folded into the add that follows it (:func:`~drnn_hw.hdl_arith.add_rounded`,
the rounding bit as a carry-in) or into the clamp (:func:`~drnn_hw.hdl_arith.round_saturate`),
so no stage holds a carry chain across a whole product or delta memory row.

The tables are ``lib.memory`` ROMs, per row p of a block one σ ROM with two read ports (r, z)
and one tanh ROM. The AP owns no multiplier: it borrows the MxV's (idle once all deltas are
consumed) through two :class:`~drnn_hw.multiplier.MultiplierBankSignature` ports, and reads
the delta memories through three :class:`~drnn_hw.mxv.DeltaReadSignature` ports.
Issue starts in the cycle after ``start`` (:data:`AP_ISSUE`) and runs NB blocks back to back;
``done`` pulses in the cycle the last block's h is written. In a stacked core
(:mod:`drnn_hw.layer_map`) the blocks are global: a pass of layer l runs the layer's NB_l
blocks from its ``block_base``.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .hdl_arith import (add_rounded, check_positive, narrow_acc, refuse,
                         saturated_lut_index)
from .multiplier import MultiplierBankSignature
from .mxv import (AP_MUL_LATENCY, AP_READ_LATENCY, DeltaReadSignature, ap_operand_a_bits,
                  ap_operand_b_bits)
from .layer_map import LayerDescriptor
from .numerics import Formats

__all__ = ["ActivationPipeline", "AP_STAGES", "AP_ISSUE", "block_issue", "drive_reads",
           "lend_enables", "h_write_shape", "drive_h_write"]

#: When each stage happens, in cycles after the block's issue (see the module docstring).
_C_M = AP_READ_LATENCY                 # memories' rows arrive, σ ROM addresses
_C_RZ = _C_M + 2                       # σ ROM data registered: r·mnh issued
_C_PRE = _C_RZ + AP_MUL_LATENCY        # r·mnh arrives and is registered
_C_N = _C_PRE + 3                      # tanh ROM data registered, h read: z·(h − n) issued
_C_H = _C_N + AP_MUL_LATENCY           # z·(h − n) arrives, h' registered
#: Cycles from a block's issue (c0) to its h write.
AP_STAGES = _C_H + 1
#: Cycles from ``start`` to the first block's issue (c0 is a register).
AP_ISSUE = 1


def lend_enables(m: Module, banks: dict, rows: int):
    """Drive ``en`` of borrowed :class:`~drnn_hw.multiplier.MultiplierBankSignature` banks
    (``banks``: name → (port, the valid bit of the stage *before* the issuing one)) from
    per-row registers named ``{name}_en{p}_dup`` (kept unmerged on the ULX3S): each equals the
    issuing stage's valid bit and drives one row's operand mux, where one bit drove all P
    rows' across the die's DSP rows."""
    for name, (port, before) in banks.items():
        for p in range(rows):
            en = Signal(name=f"{name}_en{p}_dup")
            m.d.sync += en.eq(before)
            m.d.comb += port.en[p].eq(en)


def h_write_shape(blk) -> unsigned:
    """One row's copy of the AP's h write: one bit per block of ``blk`` (see ``h_write``)."""
    return unsigned(len(blk))


def drive_h_write(m: Module, port, before):
    """Drive ``port`` (the AP's ``h_write``: per row, the written block as a one-hot vector)
    from per-row registers named ``h_write{p}_dup`` (kept unmerged on the ULX3S), decoded
    from per-row copies ``h_write_pre{p}_dup`` of ``before``, the stage register two cycles
    before the write: each equals the write stage's (valid, block) in every cycle, decoded.
    One register enabled all of h across the die (the ULX3S build's paths into h: 975
    endpoints over 10 ns); with one (enable, block) copy per row, the block's decode in
    front of the enables of the row's units, spread over the die, was 11.2–12.2 ns in every
    build of issue #10's twelfth round: now each bit enables one unit's register."""
    for p in range(len(port)):
        pre_en = Signal(name=f"h_write_pre{p}_dup_en")
        pre_block = Signal.like(before.block, name=f"h_write_pre{p}_dup_block")
        m.d.sync += [pre_en.eq(before.valid), pre_block.eq(before.block)]
        onehot = Signal(len(port[p]), name=f"h_write{p}_dup")
        m.d.sync += onehot.eq(Cat(pre_en & (pre_block == g) for g in range(len(onehot))))
        m.d.comb += port[p].eq(onehot)


def block_issue(m: Module, start, first, last, blk, name: str):
    """The registers of an AP pass's block issue: ``valid`` from the cycle after ``start``
    until ``block`` has been ``last``; ``block`` counts up from ``first``, one per cycle.

    ``start`` must not come while ``valid`` (a pass starts its AP once, after the previous
    pass's issue ended), and ``first`` and ``last`` must hold from the cycle of ``start``
    until the pass's last block.

    Returns ``(valid, block)`` (signals named ``{name}_valid``, ``{name}_block``); ``block``
    is ``first`` whenever ``valid`` is low (only ``valid`` qualifies it)."""
    valid = Signal(name=f"{name}_valid")
    block = Signal(blk, name=f"{name}_block")
    # ``block`` waits at ``first`` between passes, so ``start`` (the end of a long decision in
    # the core, fanned out to every copy) enters one flip-flop's input, ``valid``'s, and not
    # the block bits' too: start → the read copies' blocks was the slowest path of both
    # ULX3S builds with the step overlap (#10, thirty-third round).
    with m.If(valid):
        with m.If(block == last):
            m.d.sync += valid.eq(0)
        with m.Else():
            m.d.sync += block.eq(block + 1)
    with m.Else():
        m.d.sync += [valid.eq(start), block.eq(first)]
    return valid, block


#: Rows of a read port addressed by one copy of the AP's issue registers (:func:`drive_reads`).
#: With 8, a copy's route to its rows' LUT-RAM cells (~9 per row) was 3.6 ns of the slowest
#: path of the twelfth round's demo build at 80 MHz (into the σ ROMs' addresses, #10).
READ_ROWS_PER_COPY = 4


def drive_reads(m: Module, reads: dict, rows: int, start, first, last, blk):
    """Drive the rows of every :class:`~drnn_hw.mxv.DeltaReadSignature` port in ``reads``
    (name → port) from copies of :func:`block_issue`'s registers, one per port and
    :data:`READ_ROWS_PER_COPY` rows (named ``*_dup``, which the ULX3S flow keeps unmerged).
    The copies equal the AP's own issue in every cycle. One register for every row of every
    channel was one net across the die (the P = 24 ULX3S build's critical path); one per
    row made ``start``, a decision at the end of a long path, a net to 3·P registers (the
    demo build's critical path, 48.5 MHz), hence groups of rows."""
    for name, read in reads.items():
        for g in range(0, rows, READ_ROWS_PER_COPY):
            valid, block = block_issue(m, start, first, last, blk, f"read_{name}{g}_dup")
            for p in range(g, min(rows, g + READ_ROWS_PER_COPY)):
                m.d.comb += [read.en[p].eq(valid), read.block[p].eq(block)]


class ActivationPipeline(wiring.Component):
    """The gate math of the delta-GRU for one P-row block per cycle (see the module docstring;
    the algorithm is :func:`drnn_hw.golden.activation_pipeline`, bit for bit).

    Parameters
    ----------
    fmts : Formats
        Number formats (:mod:`drnn_hw.numerics`).
    hidden : int or sequence of int
        H (≥ 1), or every layer's H for a stacked core; ``NB = ceil(H/P)`` blocks (per layer).
    rows : int
        P (≥ 1).
    acc_width : int
        Width of the delta memories' rows (:func:`~drnn_hw.mxv.acc_width`, ≥ ``acc_bits``).
    sigmoid_lut, tanh_lut : sequences of ``2**lut_bits`` ints
        The σ and tanh tables (activation-format codes; σ entries in [0, 2^act_frac]).

    Ports
    -----
    layer : In(range(L))
        Only with L > 1: the layer of the pass (stable from ``start`` to ``done``).
    start : In(1)
        Issue block 0 in the next cycle, then blocks 1..NB-1 on the following cycles.
    read_r, read_z : Out(DeltaReadSignature(P, acc_width, NB))
    read_n : Out(DeltaReadSignature(P, acc_width, NB, split=True))
        Block reads of M_r, M_z and M_nx / M_nh (all three, every row, read the same block in
        the same cycle); the rows arrive ``AP_READ_LATENCY`` cycles later (acc_bits + guard
        bits, not saturated).
    h_block : Out(ArrayLayout(range(max(NB, 2)), P));  h_in : In(ArrayLayout(signed(act_bits), P))
        The block of the current hidden state the AP reads this cycle (``h_in``, read
        combinationally, registered here for the next stage); it must not change before the
        AP's own write of that block. ``h_block[p]`` selects row p's unit: every row names the
        same block, each from its own register, so that one register does not select the
        whole block multiplexer.
    mul_r, mul_z : Out(MultiplierBankSignature(P, act_bits + 1, ap_operand_b_bits))
        The borrowed column-0 multipliers of the r and z channels (product ``AP_MUL_LATENCY``
        cycles after ``en``).
    h_we : Out(1), h_wblock : Out(range(max(NB, 2))), h_out : Out(ArrayLayout(signed(act_bits), P))
        New hidden state of one block (activation codes; rows past H are don't-care).
    h_write : Out(ArrayLayout(unsigned(max(NB, 2)), P))
        Row p's copy of (``h_we``, ``h_wblock``) decoded: bit b is ``h_we & (h_wblock == b)``
        in every cycle, each row from its own register (:func:`drive_h_write`): the core
        writes row p's unit of block b with bit b.
    done : Out(1)
        The last block was written this cycle.

    Raises
    ------
    ValueError
        ``hidden`` or ``rows`` < 1, ``acc_width`` < ``acc_bits``, a table not of
        ``2**lut_bits`` entries or with an entry outside the activation format,
        ``sigmoid_lut`` entries outside [0, 2^act_frac] (named in the message).
    """

    def __init__(self, fmts: Formats, *, hidden: int, rows: int, acc_width: int, sigmoid_lut,
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
        for name, table in (("sigmoid_lut", self.sigmoid_lut), ("tanh_lut", self.tanh_lut)):
            if len(table) != fmts.lut_entries:
                raise refuse(self, f"{name} must have 2**lut_bits = {fmts.lut_entries} "
                                   f"entries, got {len(table)}")
            if not all(fmts.act.min <= v <= fmts.act.max for v in table):
                raise refuse(self, f"{name} entries must lie in the activation format "
                                   f"[{fmts.act.min}, {fmts.act.max}]")
        # The adder savings of the module docstring (rnh and h' never saturate) rest on this.
        if not all(0 <= v <= 1 << fmts.act_frac for v in self.sigmoid_lut):
            raise refuse(self, f"sigmoid_lut entries must lie in [0, 2^act_frac = "
                               f"{1 << fmts.act_frac}]")
        act = signed(fmts.act_bits)
        blk = range(max(self.NB, 2))
        mul = MultiplierBankSignature(rows, ap_operand_a_bits(fmts), ap_operand_b_bits(fmts))
        super().__init__({
            **({"layer": In(range(len(layers)))} if len(layers) > 1 else {}),
            "desc": In(data.ArrayLayout(LayerDescriptor, len(layers)),
                       init=[{"blocks": nb} for nb in nbs]),
            "start": In(1),
            "read_r": Out(DeltaReadSignature(rows=rows, acc_width=acc_width, blocks=self.NB)),
            "read_z": Out(DeltaReadSignature(rows=rows, acc_width=acc_width, blocks=self.NB)),
            "read_n": Out(DeltaReadSignature(rows=rows, acc_width=acc_width, blocks=self.NB,
                                             split=True)),
            "h_block": Out(data.ArrayLayout(blk, rows)),
            "h_in": In(data.ArrayLayout(act, rows)),
            "mul_r": Out(mul),
            "mul_z": Out(mul),
            "h_we": Out(1),
            "h_wblock": Out(blk),
            "h_write": Out(data.ArrayLayout(h_write_shape(blk), rows)),
            "h_out": Out(data.ArrayLayout(act, rows)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fmts, P, NB = self.fmts, self.P, self.NB
        A = fmts.act_frac
        act = signed(fmts.act_bits)
        blk = range(max(NB, 2))

        # Stage c0 (the block read) and its copies in stages c1..c11: valid bit, block number.
        stage = data.StructLayout({"valid": 1, "block": blk})
        c = [Signal(stage, name=f"c{i}") for i in range(AP_STAGES + 1)]
        # The layout's first block of the layer, the descriptor's block count.
        if len(self.first) == 1:
            first = self.first[0]
            last = self.desc[0].blocks + (first - 1)
        else:
            first = Array(Const(v) for v in self.first)[self.layer]
            last = Array(self.desc[l].blocks + (f - 1)
                         for l, f in enumerate(self.first))[self.layer]
        # c0 comes from registers only (``start`` is the end of a long decision in the core),
        # and so do the reads, from copies of them per port and group of rows.
        issuing, count = block_issue(m, self.start, first, last, blk, "issue")
        m.d.comb += [c[0].valid.eq(issuing), c[0].block.eq(count)]
        drive_reads(m, {"r": self.read_r, "z": self.read_z, "n": self.read_n}, P, self.start,
                    first, last, blk)
        m.d.sync += [c[i].eq(c[i - 1]) for i in range(1, AP_STAGES + 1)]
        # ``done`` from a register (worked out a stage early): it ends the pass in the core,
        # which clears the encoder, the queue and the banks with it.
        done = Signal(name="done_q")
        m.d.sync += done.eq(c[AP_STAGES - 1].valid & (c[AP_STAGES - 1].block == last))
        m.d.comb += self.done.eq(done)

        m_r, m_z, m_nx, m_nh = self.read_r.m, self.read_z.m, self.read_n.m, self.read_n.m_h
        mul_r, mul_z = self.mul_r, self.mul_z
        lend_enables(m, {"mul_r": (mul_r, c[_C_RZ - 1].valid),
                         "mul_z": (mul_z, c[_C_N - 1].valid)}, P)
        m.d.comb += [
            self.h_we.eq(c[AP_STAGES].valid), self.h_wblock.eq(c[AP_STAGES].block),
        ]
        drive_h_write(m, self.h_write, c[AP_STAGES - 2])

        # h is read a stage early and registered here, so the operand h − n starts from a
        # register, not from the core's block mux; the read's block is c[_C_N − 1]'s, from
        # one register per row.
        for p in range(P):
            h_block = Signal(blk, name=f"h_block{p}_dup")
            m.d.sync += h_block.eq(c[_C_N - 2].block)
            m.d.comb += self.h_block[p].eq(h_block)

        def delay(value, frm, to, name):
            """``value`` (valid at stage ``frm``, registered there) carried to stage ``to``."""
            for i in range(frm + 1, to + 1):
                nxt = Signal.like(value, name=f"{name}_c{i}")
                m.d.sync += nxt.eq(value)
                value = nxt
            return value

        for p in range(P):
            sig_rom = memory.Memory(shape=act, depth=len(self.sigmoid_lut), init=self.sigmoid_lut)
            tanh_rom = memory.Memory(shape=act, depth=len(self.tanh_lut), init=self.tanh_lut)
            m.submodules[f"sigmoid{p}"] = sig_rom
            m.submodules[f"tanh{p}"] = tanh_rom
            rd_r, rd_z = sig_rom.read_port(), sig_rom.read_port()
            rd_n = tanh_rom.read_port()

            # c1: σ addresses; narrowed n-gate memories.
            m.d.comb += [
                rd_r.addr.eq(saturated_lut_index(m_r[p], fmts, fmts.sigmoid_range_log2,
                                                 fmts.w_frac)),
                rd_z.addr.eq(saturated_lut_index(m_z[p], fmts, fmts.sigmoid_range_log2,
                                                 fmts.w_frac)),
            ]
            mnx, mnh = Signal(act, name=f"mnx_{p}"), Signal(act, name=f"mnh_{p}")
            m.d.sync += [mnx.eq(narrow_acc(m_nx[p], fmts)),
                         mnh.eq(narrow_acc(m_nh[p], fmts))]
            # c2: r, z registered; c3: r · mnh on the r channel.
            r, z = Signal(act, name=f"r_{p}"), Signal(act, name=f"z_{p}")
            m.d.sync += [r.eq(rd_r.data), z.eq(rd_z.data)]
            mnh3 = delay(mnh, _C_M + 1, _C_RZ, f"mnh_{p}")
            m.d.comb += [mul_r.a[p].eq(mnh3), mul_r.b[p].eq(r)]
            # c5: the product registered as it leaves the multiplier, only its rounding bit
            # and high part: r lies in [0, 2^A] (checked above), so r·mnh fits in
            # A + act_bits signed bits and round(r·mnh) in act_bits. c6: the tanh ROM reads
            # the address of pre = sat(mnx + round(r·mnh)) worked out from that register
            # (add_rounded: one adder of act width). The register sits before the adder, not
            # after it: the product crosses the die from the DSP rows, and with the adder
            # behind that crossing the path was the ULX3S build's critical one (13.8 ns at
            # 70 MHz, 10.3 of it routing); the ROM's own address register ends the add.
            r_mnh = Signal(signed(fmts.act_bits + 1), name=f"r_mnh_{p}")
            m.d.sync += r_mnh.eq(mul_r.product[p][A - 1:A + fmts.act_bits])
            mnx6 = delay(mnx, _C_M + 1, _C_PRE + 1, f"mnx_{p}")
            m.d.comb += rd_n.addr.eq(saturated_lut_index(add_rounded(r_mnh, 1, mnx6), fmts,
                                                         fmts.tanh_range_log2))
            # c7: n registered; c8: z · (h − n) on the z channel, n kept for the c10 add.
            n = Signal(act, name=f"n_{p}")
            m.d.sync += n.eq(rd_n.data)
            z8 = delay(z, _C_M + 2, _C_N, f"z_{p}")
            h_q = Signal(act, name=f"h_{p}")
            m.d.sync += h_q.eq(self.h_in[p])
            m.d.comb += [mul_z.a[p].eq(h_q - n), mul_z.b[p].eq(z8)]
            n10 = delay(n, _C_N, _C_H, f"n_{p}")
            # c10: h' = sat(n + round(z · (h − n))), registered; c11: written. The clamp is
            # a no-op (module docstring), so the sum is taken modulo 2^act_bits: from the
            # product's rounding bit and its next act_bits bits only, one adder of act width
            # straight after the die crossing from the DSP rows (the random model's
            # critical path at 70 MHz, 13.32 ns, with the product's full width and the clamp).
            h_next = Signal(act, name=f"h_next_{p}")
            z_hn = mul_z.product[p][A - 1:A + fmts.act_bits]
            m.d.sync += h_next.eq(add_rounded(z_hn, 1, n10)[:fmts.act_bits])
            m.d.comb += self.h_out[p].eq(h_next)
        return m
