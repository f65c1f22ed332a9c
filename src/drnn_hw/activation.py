"""The activation pipeline (AP): delta memories to the new hidden state, one P-block per cycle.

For every hidden unit (see :func:`drnn_hw.golden.activation_pipeline`)::

    a0  M saturated to acc_bits (and written back), narrowed to act; σ ROM addresses (r, z)
    a1  r, z from the σ ROM;      r·mnh on the r-channel multipliers (lane 0)
    a2  rnh = sat(round(r·mnh)); pre = sat(mnx + rnh); tanh ROM address
    a3  n from the tanh ROM;      z·(h − n) on the z-channel multipliers (lane 0)
    a4  h' = sat(n + round(z·(h − n))), written to h

The σ/tanh tables are ``lib.memory`` ROMs, one σ ROM with two read ports (r, z) and one tanh ROM
per lane. The AP owns no multiplier: it borrows the MxV's (idle once all deltas are consumed).
Issue starts with ``start`` (block 0 in that very cycle) and runs NB blocks back to back;
``done`` pulses in the cycle the last block's h is written.
"""

from __future__ import annotations

import math

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .hdl_arith import lut_index, narrow_acc, round_shift, saturate
from .mxv import ap_operand_b_bits
from .numerics import Formats

__all__ = ["ActivationPipeline", "AP_STAGES"]

#: Cycles from a block's issue (a0) to its h write (a4).
AP_STAGES = 4


class ActivationPipeline(wiring.Component):
    """Ports
    -----
    start : In(1)
        Issue block 0 now, then blocks 1..NB-1 on the following cycles.
    block : Out(range(NB)), saturate : Out(1)
        The block read from the delta memories this cycle (and written back saturated).
    m_r, m_z, m_nx, m_nh : In(ArrayLayout(signed(acc_bits), P))
        That block of the memories, already saturated to acc_bits.
    h_in : In(ArrayLayout(signed(act_bits), P))
        That block of the current hidden state.
    mul_r_en, mul_r_a, mul_r_b, mul_r_prod; mul_z_*
        Borrowed multipliers (product one cycle after ``*_en``).
    h_we, h_block, h_out : Out
        New hidden state of one block.
    done : Out(1)
        The last block was written this cycle.
    """

    def __init__(self, fmts: Formats, *, hidden: int, pe: int, sigmoid_lut, tanh_lut):
        self.fmts, self.H, self.P = fmts, hidden, pe
        self.NB = math.ceil(hidden / pe)
        self.sigmoid_lut = [int(v) for v in sigmoid_lut]
        self.tanh_lut = [int(v) for v in tanh_lut]
        acc = signed(fmts.acc_bits)
        act = signed(fmts.act_bits)
        a_bits, b_bits = fmts.act_bits + 1, ap_operand_b_bits(fmts)
        prod = signed(a_bits + b_bits)
        blk = range(max(self.NB, 2))
        super().__init__({
            "start": In(1),
            "block": Out(blk),
            "saturate": Out(1),
            "m_r": In(data.ArrayLayout(acc, pe)),
            "m_z": In(data.ArrayLayout(acc, pe)),
            "m_nx": In(data.ArrayLayout(acc, pe)),
            "m_nh": In(data.ArrayLayout(acc, pe)),
            "h_in": In(data.ArrayLayout(act, pe)),
            "mul_r_en": Out(1),
            "mul_r_a": Out(data.ArrayLayout(signed(a_bits), pe)),
            "mul_r_b": Out(data.ArrayLayout(signed(b_bits), pe)),
            "mul_r_prod": In(data.ArrayLayout(prod, pe)),
            "mul_z_en": Out(1),
            "mul_z_a": Out(data.ArrayLayout(signed(a_bits), pe)),
            "mul_z_b": Out(data.ArrayLayout(signed(b_bits), pe)),
            "mul_z_prod": In(data.ArrayLayout(prod, pe)),
            "h_we": Out(1),
            "h_block": Out(blk),
            "h_out": Out(data.ArrayLayout(act, pe)),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        fmts, P, NB = self.fmts, self.P, self.NB
        A = fmts.act_frac
        act = signed(fmts.act_bits)
        blk = range(max(NB, 2))

        issuing = Signal()
        count = Signal(blk)
        issue = Signal()
        m.d.comb += [issue.eq(self.start | issuing), self.block.eq(Mux(self.start, 0, count)),
                     self.saturate.eq(issue)]
        with m.If(issue):
            with m.If(self.block == NB - 1):
                m.d.sync += [issuing.eq(0), count.eq(0)]
            with m.Else():
                m.d.sync += [issuing.eq(1), count.eq(self.block + 1)]

        # Stage valid bits and block numbers a1..a4.
        valid = [issue] + [Signal(name=f"v{i}") for i in range(1, 5)]
        block = [self.block] + [Signal(blk, name=f"blk{i}") for i in range(1, 5)]
        for i in range(1, 5):
            m.d.sync += [valid[i].eq(valid[i - 1]), block[i].eq(block[i - 1])]

        m.d.comb += [self.mul_r_en.eq(valid[1]), self.mul_z_en.eq(valid[3]),
                     self.h_we.eq(valid[4]), self.h_block.eq(block[4]),
                     self.done.eq(valid[4] & (block[4] == NB - 1))]

        for p in range(P):
            sig_rom = memory.Memory(shape=act, depth=len(self.sigmoid_lut), init=self.sigmoid_lut)
            tanh_rom = memory.Memory(shape=act, depth=len(self.tanh_lut), init=self.tanh_lut)
            m.submodules[f"sigmoid{p}"] = sig_rom
            m.submodules[f"tanh{p}"] = tanh_rom
            rd_r, rd_z = sig_rom.read_port(), sig_rom.read_port()
            rd_n = tanh_rom.read_port()

            # a0
            mnx1, mnh1, h1 = (Signal(act, name=f"{n}1_{p}") for n in ("mnx", "mnh", "h"))
            m.d.comb += [
                rd_r.addr.eq(lut_index(narrow_acc(self.m_r[p], fmts), fmts,
                                       fmts.sigmoid_range_log2)),
                rd_z.addr.eq(lut_index(narrow_acc(self.m_z[p], fmts), fmts,
                                       fmts.sigmoid_range_log2)),
            ]
            m.d.sync += [mnx1.eq(narrow_acc(self.m_nx[p], fmts)),
                         mnh1.eq(narrow_acc(self.m_nh[p], fmts)), h1.eq(self.h_in[p])]
            # a1
            mnx2, z2, h2 = (Signal(act, name=f"{n}2_{p}") for n in ("mnx", "z", "h"))
            m.d.comb += [self.mul_r_a[p].eq(mnh1), self.mul_r_b[p].eq(rd_r.data)]
            m.d.sync += [mnx2.eq(mnx1), z2.eq(rd_z.data), h2.eq(h1)]
            # a2
            rnh = saturate(round_shift(self.mul_r_prod[p], A), fmts.act_bits)
            pre = Signal(act, name=f"pre{p}")
            m.d.comb += [pre.eq(saturate(mnx2 + rnh, fmts.act_bits)),
                         rd_n.addr.eq(lut_index(pre, fmts, fmts.tanh_range_log2))]
            z3, h3 = (Signal(act, name=f"{n}3_{p}") for n in ("z", "h"))
            m.d.sync += [z3.eq(z2), h3.eq(h2)]
            # a3
            n4 = Signal(act, name=f"n4_{p}")
            m.d.comb += [self.mul_z_a[p].eq(h3 - rd_n.data), self.mul_z_b[p].eq(z3)]
            m.d.sync += n4.eq(rd_n.data)
            # a4
            m.d.comb += self.h_out[p].eq(
                saturate(n4 + round_shift(self.mul_z_prod[p], A), fmts.act_bits))
        return m
