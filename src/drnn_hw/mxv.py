"""One MxV channel (gate r, z or n): P·K multipliers, the lane adders and its delta memory.

Per issue slot the channel gets K deltas and, from the weight bank, the P weights of each
delta's column for one P-row block (both arrive together, one cycle after the issue slot).
Pipeline, one stage per cycle so each holds at most one carry chain or one multiplier:

* ``t1`` operands: ``delta_k`` and ``w_k[p]`` registered (the multiplier inputs);
* ``t2`` products: ``delta_k · w_k[p]``, registered (both registers belong to the
  :class:`~drnn_hw.multiplier.PipelinedMultiplier`, so a DSP block absorbs them);
* ``t3`` lane sum: the K products of each row summed, registered; the block's memory row is
  read (synchronous read, transparent for the write of the same cycle);
* ``t4`` accumulate: ``M[block] + sum`` written back (exact: M is ``acc_bits`` plus guard bits).

Channel n keeps two memories: products of x columns go to M_nx, of h columns to M_nh.

The delta memories are ``lib.memory`` RAMs of NB words (one word = the P rows of a block), so
they map to block or distributed RAM instead of H·acc_bits flip-flops behind block muxes. Two
per-block bits make the spec's whole-memory operations cost nothing:

* *fresh*: the block still holds its biases (RESET_STATE, or power-up). Reads return the biases
  (constants); the first write clears the bit. Set by reset and ``load_bias``.
* *stale*: the AP has read the block, so the step is over for it and the spec saturates it to
  ``acc_bits``. The next accumulation reads it saturated (and its write clears the bit). The
  AP itself needs no saturated copy: narrowing a wider value to the activation format gives
  the same number (:func:`drnn_hw.hdl_arith.saturated_lut_index`), so nothing is written back.

The multipliers are shared with the activation pipeline (the last slot has left them before the
AP's first product, two cycles after its first read, which is after the last issue): with
``ap_mul`` the lane-0 operand registers take ``ap_a[p]``, ``ap_b[p]`` instead, and the product
appears on ``ap_prod`` two cycles later. These are the only multipliers of the core.

The activation pipeline reads one block with ``ap_read`` / ``ap_block`` on a second read port
(so it can start while the last slots are still accumulating into later blocks): one cycle
later ``ap_m`` (and ``ap_m_h``) hold its rows, ``acc_bits`` plus guard bits wide.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from . import multiplier
from .hdl_arith import saturate
from .multiplier import PipelinedMultiplier
from .numerics import Formats, accumulator_guard_bits

__all__ = ["MxVChannel", "ap_operand_b_bits", "acc_width", "MXV_STAGES", "AP_MUL_LATENCY",
           "AP_READ_LATENCY"]

#: Cycles from a slot's operands (``valid``) to the write of its sums into M (t1 -> t4):
#: the multiplier's two, then the lane sum.
MXV_STAGES = multiplier.LATENCY + 1
#: Cycles from ``ap_mul`` to the product on ``ap_prod``.
AP_MUL_LATENCY = multiplier.LATENCY
#: Cycles from ``ap_read`` to the rows on ``ap_m``.
AP_READ_LATENCY = 1


def ap_operand_b_bits(fmts: Formats) -> int:
    """Width of the multipliers' second operand: a weight, or a gate value in [0, 2^A]."""
    return max(fmts.w_bits, fmts.act_frac + 2)


def acc_width(fmts: Formats, inputs: int, hidden: int) -> int:
    """Width of a delta memory row: ``acc_bits`` plus the guard bits of one step's sum."""
    return fmts.acc_bits + accumulator_guard_bits(fmts, inputs + hidden)


class MxVChannel(wiring.Component):
    """Ports
    -----
    valid, block, delta, is_x : In
        An issue slot's K deltas (0 for empty lanes), which block, x/h columns; they arrive
        with the slot's weights, one cycle after the slot.
    weight : In(ArrayLayout(ArrayLayout(signed(w_bits), P), K))
        The weights read for the slot (arrive with ``valid``).
    ap_mul, ap_a, ap_b : In;  ap_prod : Out
        Activation pipeline products on the lane-0 multipliers (``AP_MUL_LATENCY`` later).
        ``ap_mul`` must not coincide with ``valid``.
    ap_read, ap_block : In;  ap_m (and ap_m_h for channel n) : Out
        Read block ``ap_block`` for the AP: ``AP_READ_LATENCY`` cycles later ``ap_m`` holds its
        rows (not saturated; see the module docstring). Marks the block stale. Must come after
        the block's last write of the step (a read in the cycle of that write sees it).
    load_bias : In(1)
        Restore the biases (RESET_STATE), effective for reads from the next cycle.
    """

    def __init__(self, fmts: Formats, *, inputs: int, hidden: int, pe: int, lanes: int,
                 bias, bias_h=None):
        self.fmts, self.H, self.P, self.K = fmts, hidden, pe, lanes
        self.NB = math.ceil(hidden / pe)
        self.split = bias_h is not None
        self.bias = [int(v) for v in bias]
        self.bias_h = None if bias_h is None else [int(v) for v in bias_h]
        self.acc_width = acc_width(fmts, inputs, hidden)
        self.a_bits = fmts.act_bits + 1
        self.b_bits = ap_operand_b_bits(fmts)
        self.prod_bits = self.a_bits + self.b_bits
        row = data.ArrayLayout(signed(self.acc_width), pe)
        blk = range(max(self.NB, 2))
        ports = {
            "valid": In(1),
            "block": In(blk),
            "delta": In(data.ArrayLayout(signed(self.a_bits), lanes)),
            "is_x": In(lanes),
            "weight": In(data.ArrayLayout(data.ArrayLayout(signed(fmts.w_bits), pe), lanes)),
            "ap_mul": In(1),
            "ap_a": In(data.ArrayLayout(signed(self.a_bits), pe)),
            "ap_b": In(data.ArrayLayout(signed(self.b_bits), pe)),
            "ap_prod": Out(data.ArrayLayout(signed(self.prod_bits), pe)),
            "ap_read": In(1),
            "ap_block": In(blk),
            "ap_m": Out(row),
            "load_bias": In(1),
        }
        if self.split:
            ports["ap_m_h"] = Out(row)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        P, K, NB = self.P, self.K, self.NB
        blk = range(max(NB, 2))

        # t1, t2: the multipliers (operand registers, product register); lane 0 takes the AP's
        # operands when it borrows them.
        prod = [[None] * P for _ in range(K)]
        for k in range(K):
            for p in range(P):
                mul = PipelinedMultiplier(self.a_bits, self.b_bits)
                m.submodules[f"mul{k}_{p}"] = mul
                a, b = self.delta[k], self.weight[k][p]
                if k == 0:
                    a, b = Mux(self.ap_mul, self.ap_a[p], a), Mux(self.ap_mul, self.ap_b[p], b)
                m.d.comb += [mul.a.eq(a), mul.b.eq(b)]
                prod[k][p] = mul.p
        m.d.comb += [self.ap_prod[p].eq(prod[0][p]) for p in range(P)]
        v2, blk2, is_x2 = Signal(), Signal(blk), Signal(K)
        m.d.sync += [v2.eq(self.valid & ~self.ap_mul), blk2.eq(self.block), is_x2.eq(self.is_x)]
        v3, blk3, is_x3 = Signal(), Signal(blk), Signal(K)
        m.d.sync += [v3.eq(v2), blk3.eq(blk2), is_x3.eq(is_x2)]

        # t3: lane sums (per memory), registered, and the block read; t4: accumulate, write.
        v4, blk4 = Signal(), Signal(blk)
        m.d.sync += [v4.eq(v3), blk4.eq(blk3)]

        if self.split:
            masks = [lambda k: is_x3[k], lambda k: ~is_x3[k]]
            biases, outs = [self.bias, self.bias_h], [self.ap_m, self.ap_m_h]
        else:
            masks, biases, outs = [lambda k: True], [self.bias], [self.ap_m]

        for i, (mask, bias, out) in enumerate(zip(masks, biases, outs)):
            sums = [Signal(signed(self.prod_bits + K), name=f"sum{i}_{p}") for p in range(P)]
            for p in range(P):
                total = 0
                for k in range(K):
                    sel = mask(k)
                    total = total + (prod[k][p] if sel is True else Mux(sel, prod[k][p], 0))
                m.d.sync += sums[p].eq(total)
            self._memory(m, f"m{i}", bias, sums, out, rd=(v3, blk3), wr=(v4, blk4))
        return m

    def _memory(self, m, name, bias, sums, out, *, rd, wr):
        """One delta memory: the RAM, its fresh and stale bits, the two reads and the write."""
        P, NB, H, fmts = self.P, self.NB, self.H, self.fmts
        accw = signed(self.acc_width)
        row = data.ArrayLayout(accw, P)
        blk = range(max(NB, 2))
        mem = memory.Memory(shape=row, depth=max(NB, 2), init=[])
        m.submodules[name] = mem
        wp = mem.write_port()
        acc_rp = mem.read_port(transparent_for=(wp,))    # t3 -> t4 accumulation
        ap_rp = mem.read_port(transparent_for=(wp,))     # the AP's read
        (rd_en, rd_block), (wr_en, wr_block) = rd, wr
        biases = [[Const(bias[b * P + p] if b * P + p < H else 0, accw) for b in range(NB)]
                  for p in range(P)]

        fresh = [Signal(init=1, name=f"{name}_fresh{b}") for b in range(NB)]
        stale = [Signal(name=f"{name}_stale{b}") for b in range(NB)]

        def read(port, en, addr, tag):
            """Synchronous read; returns the block's rows as the spec sees them, plus its
            registered address and stale bit (a write to the same block in the read's cycle is
            seen: the port is transparent and the write clears both bits)."""
            q_block = Signal(blk, name=f"{name}_{tag}_block")
            q_fresh = Signal(name=f"{name}_{tag}_fresh")
            q_stale = Signal(name=f"{name}_{tag}_stale")
            same = wp.en & (wp.addr == addr)
            m.d.comb += [port.addr.eq(addr), port.en.eq(en)]
            with m.If(en):
                m.d.sync += [q_block.eq(addr),
                             q_fresh.eq(Array(fresh)[addr] & ~same),
                             q_stale.eq(Array(stale)[addr] & ~same)]
            rows = Signal(row, name=f"{name}_{tag}_rows")
            for p in range(P):
                m.d.comb += rows[p].eq(Mux(q_fresh, Array(biases[p])[q_block], port.data[p]))
            return rows, q_stale

        acc_rows, acc_stale = read(acc_rp, rd_en, rd_block, "acc")
        ap_rows, _ = read(ap_rp, self.ap_read, self.ap_block, "ap")
        m.d.comb += [out[p].eq(ap_rows[p]) for p in range(P)]

        # t4: the first accumulation of a step into a stale block starts from its saturation.
        m.d.comb += [wp.en.eq(wr_en), wp.addr.eq(wr_block)]
        for p in range(P):
            start = Mux(acc_stale, saturate(acc_rows[p], fmts.acc_bits), acc_rows[p])
            m.d.comb += wp.data[p].eq(start + sums[p])

        for b in range(NB):
            with m.If(wp.en & (wp.addr == b)):
                m.d.sync += [fresh[b].eq(0), stale[b].eq(0)]
            with m.If(self.ap_read & (self.ap_block == b)):   # after the write: a read in
                m.d.sync += stale[b].eq(1)                    # the same cycle follows it
        with m.If(self.load_bias):
            m.d.sync += [f.eq(1) for f in fresh] + [s.eq(0) for s in stale]
