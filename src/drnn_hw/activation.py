"""The activation pipeline (AP): delta memories to the new hidden state, one P-block per cycle.

For every hidden unit (see :func:`drnn_hw.golden.activation_pipeline`), in cycles after the
block's issue ``c0`` (at most one carry chain, table lookup or multiplier per stage)::

    c0  read the block of the four delta memories
    c1  σ ROM addresses of M_r, M_z;  mnx, mnh = narrow(M_nx), narrow(M_nh)
    c2  r, z from the σ ROM;          r·mnh to the r-channel multipliers (lane 0)
    c4  tanh ROM address of pre = sat(mnx + round(r·mnh))
    c5  n from the tanh ROM, h read;  z·(h − n) to the z-channel multipliers (lane 0)
    c7  h' = sat(n + round(z·(h − n))), written to h

Two identities of the spec's integer arithmetic save stages (both exact, not approximations):

* a table index depends on its input only through a clamp, so it is computed straight from the
  wider value (:func:`~drnn_hw.hdl_arith.saturated_lut_index`): from the unsaturated delta
  memory row at c1, and from ``r·mnh`` plus ``mnx`` at c4;
* ``rnh = sat(round(r·mnh))`` never saturates, because the σ table's entries lie in [0, 2^A]
  (checked here; the bundle enforces it), so ``mnx + rnh`` is one add of the product and
  ``mnx·2^A + half``.

The tables are ``lib.memory`` ROMs, one σ ROM with two read ports (r, z) and one tanh ROM per
lane. The AP owns no multiplier: it borrows the MxV's (idle once all deltas are consumed).
Issue starts with ``start`` (block 0 in that very cycle) and runs NB blocks back to back;
``done`` pulses in the cycle the last block's h is written.
"""

from __future__ import annotations

import math

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .hdl_arith import narrow_acc, saturate, saturated_lut_index
from .mxv import AP_MUL_LATENCY, AP_READ_LATENCY, ap_operand_b_bits
from .numerics import Formats

__all__ = ["ActivationPipeline", "AP_STAGES"]

#: When each stage happens, in cycles after the block's issue (see the module docstring).
_C_M = AP_READ_LATENCY                 # memories' rows arrive, σ ROM addresses
_C_RZ = _C_M + 1                       # σ ROM data
_C_PRE = _C_RZ + AP_MUL_LATENCY        # r·mnh arrives, tanh ROM address
_C_N = _C_PRE + 1                      # tanh ROM data, h read
_C_H = _C_N + AP_MUL_LATENCY           # z·(h − n) arrives, h written
#: Cycles from a block's issue (c0) to its h write.
AP_STAGES = _C_H


class ActivationPipeline(wiring.Component):
    """Ports
    -----
    start : In(1)
        Issue block 0 now, then blocks 1..NB-1 on the following cycles.
    read, block : Out
        Read this block of the delta memories (the MxV channels' ``ap_read`` / ``ap_block``).
    m_r, m_z, m_nx, m_nh : In(ArrayLayout(signed(acc_width), P))
        The rows of the block read ``AP_READ_LATENCY`` cycles earlier (acc_bits + guard bits,
        not saturated).
    h_block : Out;  h_in : In(ArrayLayout(signed(act_bits), P))
        The block of the current hidden state the AP needs this cycle (read combinationally).
    mul_r_en, mul_r_a, mul_r_b, mul_r_prod; mul_z_*
        Borrowed multipliers (product ``AP_MUL_LATENCY`` cycles after ``*_en``).
    h_we, h_wblock, h_out : Out
        New hidden state of one block.
    done : Out(1)
        The last block was written this cycle.
    """

    def __init__(self, fmts: Formats, *, hidden: int, pe: int, acc_width: int, sigmoid_lut,
                 tanh_lut):
        self.fmts, self.H, self.P = fmts, hidden, pe
        self.NB = math.ceil(hidden / pe)
        self.sigmoid_lut = [int(v) for v in sigmoid_lut]
        self.tanh_lut = [int(v) for v in tanh_lut]
        if not all(0 <= v <= 1 << fmts.act_frac for v in self.sigmoid_lut):
            raise ValueError("σ table entries must lie in [0, 2^act_frac]")
        acc = signed(acc_width)
        act = signed(fmts.act_bits)
        a_bits, b_bits = fmts.act_bits + 1, ap_operand_b_bits(fmts)
        prod = signed(a_bits + b_bits)
        blk = range(max(self.NB, 2))
        super().__init__({
            "start": In(1),
            "read": Out(1),
            "block": Out(blk),
            "m_r": In(data.ArrayLayout(acc, pe)),
            "m_z": In(data.ArrayLayout(acc, pe)),
            "m_nx": In(data.ArrayLayout(acc, pe)),
            "m_nh": In(data.ArrayLayout(acc, pe)),
            "h_block": Out(blk),
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
            "h_wblock": Out(blk),
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
                     self.read.eq(issue)]
        with m.If(issue):
            with m.If(self.block == NB - 1):
                m.d.sync += [issuing.eq(0), count.eq(0)]
            with m.Else():
                m.d.sync += [issuing.eq(1), count.eq(self.block + 1)]

        # Valid bits and block numbers of stages c1..c9.
        valid = [issue] + [Signal(name=f"v{i}") for i in range(1, AP_STAGES + 1)]
        block = [self.block] + [Signal(blk, name=f"blk{i}") for i in range(1, AP_STAGES + 1)]
        for i in range(1, AP_STAGES + 1):
            m.d.sync += [valid[i].eq(valid[i - 1]), block[i].eq(block[i - 1])]

        m.d.comb += [
            self.mul_r_en.eq(valid[_C_RZ]), self.mul_z_en.eq(valid[_C_N]),
            self.h_block.eq(block[_C_N]),
            self.h_we.eq(valid[_C_H]), self.h_wblock.eq(block[_C_H]),
            self.done.eq(valid[_C_H] & (block[_C_H] == NB - 1)),
        ]

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
                rd_r.addr.eq(saturated_lut_index(self.m_r[p], fmts, fmts.sigmoid_range_log2,
                                                 fmts.w_frac)),
                rd_z.addr.eq(saturated_lut_index(self.m_z[p], fmts, fmts.sigmoid_range_log2,
                                                 fmts.w_frac)),
            ]
            mnx, mnh = Signal(act, name=f"mnx_{p}"), Signal(act, name=f"mnh_{p}")
            m.d.sync += [mnx.eq(narrow_acc(self.m_nx[p], fmts)),
                         mnh.eq(narrow_acc(self.m_nh[p], fmts))]
            # c2: r · mnh on the r channel; z kept; mnx·2^A + half for the c4 add.
            z = Signal(act, name=f"z_{p}")
            mnx_sh = Signal(signed(fmts.act_bits + A + 1), name=f"mnx_sh_{p}")
            m.d.comb += [self.mul_r_a[p].eq(mnh), self.mul_r_b[p].eq(rd_r.data)]
            m.d.sync += [z.eq(rd_z.data), mnx_sh.eq((mnx << A) + (1 << (A - 1)))]
            # c4: tanh address of sat(mnx + round(r·mnh)) = index of (prod + mnx·2^A + half) >> A.
            mnx_sh4 = delay(mnx_sh, _C_RZ + 1, _C_PRE, f"mnx_sh_{p}")
            m.d.comb += rd_n.addr.eq(saturated_lut_index(
                self.mul_r_prod[p] + mnx_sh4, fmts, fmts.tanh_range_log2, A, rounded=True))
            # c5: z · (h − n) on the z channel; n·2^A + half kept for the c7 add.
            z5 = delay(z, _C_RZ + 1, _C_N, f"z_{p}")
            m.d.comb += [self.mul_z_a[p].eq(self.h_in[p] - rd_n.data), self.mul_z_b[p].eq(z5)]
            n_sh = Signal(signed(fmts.act_bits + A + 1), name=f"n_sh_{p}")
            m.d.sync += n_sh.eq((rd_n.data << A) + (1 << (A - 1)))
            n_sh7 = delay(n_sh, _C_N + 1, _C_H, f"n_sh_{p}")
            # c7: h' = sat(n + round(z · (h − n))) = sat((prod + n·2^A + half) >> A).
            m.d.comb += self.h_out[p].eq(
                saturate((self.mul_z_prod[p] + n_sh7) >> A, fmts.act_bits))
        return m
