"""One MxV channel (gate r, z or n): P·K multipliers, the lane adders and its delta memory.

Per issue slot the channel gets K deltas and, one cycle later from the weight bank, the P
weights of each delta's column for one P-row block. Pipeline:

* stage 1 (weights arrive): P·K products ``delta_k · w_k[p]``, registered (DSP M register);
* stage 2: the K products of each row are summed and added to the delta memory M of that row
  (exact: M is ``acc_bits`` plus guard bits wide), written back at the end of the cycle.

Channel n keeps two memories: products of x columns go to M_nx, of h columns to M_nh.

The multipliers are shared with the activation pipeline (the MxV is idle while it runs): with
``ap_mul`` the lane-0 multipliers take ``ap_a[p] · ap_b[p]`` instead, and the product appears on
``ap_prod`` the next cycle. These are the only multipliers of the core.

The memories are flip-flops (one read-modify-write per cycle, no hazards between back-to-back
groups) with the biases as reset value; ``load_bias`` restores them. The activation pipeline
reads one block through ``rd_block`` / ``rd_m`` (already saturated to ``acc_bits``) and with
``rd_saturate`` writes the saturated value back (the end-of-step saturation of the spec).
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .hdl_arith import saturate
from .numerics import Formats, accumulator_guard_bits

__all__ = ["MxVChannel", "ap_operand_b_bits"]


def ap_operand_b_bits(fmts: Formats) -> int:
    """Width of the multipliers' second operand: a weight, or a gate value in [0, 2^A]."""
    return max(fmts.w_bits, fmts.act_frac + 2)


class MxVChannel(wiring.Component):
    """Ports
    -----
    valid, block, delta, is_x : In
        Stage 1 of an issue slot: the K deltas (0 for empty lanes), which block, x/h columns.
    weight : In(ArrayLayout(ArrayLayout(signed(w_bits), P), K))
        The weights read for the slot (arrive with ``valid``).
    ap_mul, ap_a, ap_b : In;  ap_prod : Out
        Activation pipeline products on the lane-0 multipliers (result one cycle later).
    rd_block : In;  rd_m (and rd_m_h for channel n) : Out
        The block's memory rows saturated to acc_bits (M, or M_nx and M_nh).
    rd_saturate : In(1)
        Write the saturated values of ``rd_block`` back.
    load_bias : In(1)
        Restore the biases (RESET_STATE).
    """

    def __init__(self, fmts: Formats, *, inputs: int, hidden: int, pe: int, lanes: int,
                 bias, bias_h=None):
        self.fmts, self.H, self.P, self.K = fmts, hidden, pe, lanes
        self.NB = math.ceil(hidden / pe)
        self.split = bias_h is not None
        self.bias = [int(v) for v in bias]
        self.bias_h = None if bias_h is None else [int(v) for v in bias_h]
        self.acc_width = fmts.acc_bits + accumulator_guard_bits(fmts, inputs + hidden)
        self.a_bits = fmts.act_bits + 1
        self.b_bits = ap_operand_b_bits(fmts)
        self.prod_bits = self.a_bits + self.b_bits
        acc = signed(fmts.acc_bits)
        ports = {
            "valid": In(1),
            "block": In(range(max(self.NB, 2))),
            "delta": In(data.ArrayLayout(signed(self.a_bits), lanes)),
            "is_x": In(lanes),
            "weight": In(data.ArrayLayout(data.ArrayLayout(signed(fmts.w_bits), pe), lanes)),
            "ap_mul": In(1),
            "ap_a": In(data.ArrayLayout(signed(self.a_bits), pe)),
            "ap_b": In(data.ArrayLayout(signed(self.b_bits), pe)),
            "ap_prod": Out(data.ArrayLayout(signed(self.prod_bits), pe)),
            "rd_block": In(range(max(self.NB, 2))),
            "rd_m": Out(data.ArrayLayout(acc, pe)),
            "rd_saturate": In(1),
            "load_bias": In(1),
        }
        if self.split:
            ports["rd_m_h"] = Out(data.ArrayLayout(acc, pe))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        P, K, NB, H = self.P, self.K, self.NB, self.H
        fmts = self.fmts
        accw = signed(self.acc_width)

        def memory_rows(bias, name):
            # Rows >= H (padding of the last block) never change: constant 0, no flip-flops.
            return [Signal(accw, init=bias[j], name=f"{name}{j}") if j < H else None
                    for j in range(NB * P)]

        mems = [memory_rows(self.bias, "m")]
        if self.split:
            mems.append(memory_rows(self.bias_h, "m_h"))

        # Stage 1: the multipliers, shared with the AP on lane 0.
        prod = [[Signal(signed(self.prod_bits), name=f"prod{k}_{p}") for p in range(P)]
                for k in range(K)]
        for k in range(K):
            for p in range(P):
                a = self.delta[k]
                b = self.weight[k][p]
                if k == 0:
                    a = Mux(self.ap_mul, self.ap_a[p], a)
                    b = Mux(self.ap_mul, self.ap_b[p], b)
                m.d.sync += prod[k][p].eq(a * b)
        m.d.comb += [self.ap_prod[p].eq(prod[0][p]) for p in range(P)]

        s2_valid = Signal()
        s2_block = Signal(range(max(NB, 2)))
        s2_is_x = Signal(K)
        m.d.sync += [s2_valid.eq(self.valid & ~self.ap_mul), s2_block.eq(self.block),
                     s2_is_x.eq(self.is_x)]

        # Stage 2: sum the lanes of each row, accumulate.
        def accumulate(rows, lane_mask):
            for p in range(P):
                if p >= H:
                    continue
                total = 0
                for k in range(K):
                    sel = lane_mask(k)
                    total = total + (prod[k][p] if sel is True else Mux(sel, prod[k][p], 0))
                cur = Array(rows[b * P + p] for b in range(NB) if b * P + p < H)[s2_block]
                new = Signal(accw, name=f"acc_new{p}")
                m.d.comb += new.eq(cur + total)
                with m.If(s2_valid):
                    with m.Switch(s2_block):
                        for b in range(NB):
                            if b * P + p < H:
                                with m.Case(b):
                                    m.d.sync += rows[b * P + p].eq(new)

        if self.split:
            accumulate(mems[0], lambda k: s2_is_x[k])
            accumulate(mems[1], lambda k: ~s2_is_x[k])
        else:
            accumulate(mems[0], lambda k: True)

        # Activation pipeline access: saturated read, optional write-back.
        outs = [self.rd_m] + ([self.rd_m_h] if self.split else [])
        for rows, out in zip(mems, outs):
            for p in range(P):
                if p >= H:
                    m.d.comb += out[p].eq(0)
                    continue
                valid_blocks = [b for b in range(NB) if b * P + p < H]
                cur = Array(rows[b * P + p] for b in valid_blocks)[self.rd_block]
                sat = Signal(signed(fmts.acc_bits), name=f"sat{p}")
                m.d.comb += sat.eq(saturate(cur, fmts.acc_bits))
                if valid_blocks[-1] == NB - 1:
                    m.d.comb += out[p].eq(sat)
                else:   # blocks past the last one that has row p read as 0 (padding rows)
                    m.d.comb += out[p].eq(Mux(self.rd_block > valid_blocks[-1], 0, sat))
                with m.If(self.rd_saturate):
                    with m.Switch(self.rd_block):
                        for b in valid_blocks:
                            with m.Case(b):
                                m.d.sync += rows[b * P + p].eq(sat)

        with m.If(self.load_bias):
            for rows, bias in zip(mems, [self.bias, self.bias_h]):
                for j in range(H):
                    m.d.sync += rows[j].eq(bias[j])
        return m
