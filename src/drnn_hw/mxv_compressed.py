"""One MxV channel of a compressed-weight core (issue #13): lane-split partial delta memories.

The weights are pruned column-balanced (:mod:`drnn_hw.balance`): every slice (c, p) of a
column (rows ≡ p mod P) holds ``kept`` (value, row) pairs. The weight bank
(:class:`~drnn_hw.weight_bank.WeightBank` with ``kept``) hands the channel, per issue slot,
K deltas and for each lane k (the k-th column of the group) and multiplier p one pair: its
weight ``weight[k][p]`` and the global block ``index[k][p]`` of its row (row
``index·P + p``). A kept column costs ``kept`` slots instead of NB; the schedule is
:mod:`drnn_hw.spatial`'s (Spartus's spatio-temporal sparsity: C. Gao, T. Delbruck, S.-C. Liu,
"Spartus: A 9.9 TOp/s FPGA-based LSTM accelerator exploiting spatio-temporal sparsity",
IEEE TNNLS, 2022). The design is ``docs/cbtd/core_design.md``'s.

**One partial delta memory per lane and multiplier.** The K products of multiplier p in one
cycle belong to K different columns and in general to K different rows, possibly the same
one. So each (lane k, multiplier p) owns a memory of NB words, ``acc_width`` bits each:
the partial sums of rows p, p + P, ... from lane k's columns only. A cycle makes at most one
product per (k, p), so a memory sees at most one read-modify-write per cycle: two products
never reach one memory word in one cycle, by construction. The one remaining race, the
same (k, p) on the same row in two consecutive cycles, is met by the accumulation read port
being transparent to the write (the t4 → t3 bypass).

Pipeline per (k, p), one stage per cycle as the dense channel's (:mod:`drnn_hw.mxv`), so
``MXV_WRITE`` is the same:

* ``t0`` the slot registered (:func:`~drnn_hw.mxv.register_slot`, the dense channel's);
* ``t1`` operands ``delta_k``, ``weight[k][p]`` registered (the multiplier's input registers),
  the pair's block carried along;
* ``t2`` product registered (the multiplier);
* ``t3`` the product registered (no column sum: each lane has its own memory), the word of
  the pair's block read (transparent to this cycle's t4 write of the same word), and what
  the sum starts from decided and registered;
* ``t4`` ``M_k,p[block] + product`` written back.

**M is the sum of the lanes.** The AP's read (``ap_read``, as the dense channel's) reads the
block from all K·P memories and presents ``Σ_k M_k,p`` per row, one adder per row before the
AP's table address. The lanes are kept modulo ``2^acc_width``: a lane alone may drift over
the steps (its columns' products only), but the sum, the value that matters, is the dense
memory's M, which ``acc_width`` holds exactly (the guard bits of one step's sum), so the
wrap-around sum is exact and the order of the deltas still cannot change any result.

**Biases** live in lane 0's memories; the other lanes start at 0 (``load_bias``, RESET_STATE:
NB fill writes down the pipeline into every memory, as the dense channel's).

**End-of-step saturation** (the numerics' rule, ``M ← sat(M)``). When the AP reads a row whose
lane sum lies outside the accumulator format, the row's value must become the format's max
(min): lane 0's word is then *overridden* by max (min) and every other lane's word by 0,
one flag per (lane, multiplier, block), set one cycle after the read (as the rows arrive).
A flag stands for the word's content until the word is next written: the accumulation's
read (t3) starts from the flag's value instead of the memory (the decision registered with
the read, as the dense channel's), its write clears the flag, and the AP's read of a flagged
word takes the flag's value too. A row whose sum lies inside the format needs nothing (its
lanes already sum to ``sat(M)``). A lane that takes no product in a step keeps its flag, so
its 0 (or max/min) holds however many steps pass.

The multipliers of lane 0 are lent to the AP on ``ap_mul`` as in the dense channel. Stacked
layers: the blocks (and the pairs' indices) are global, as in :mod:`drnn_hw.mxv`.

``fault`` (tests only, the negative control of the collision test): ``"no_bypass"`` builds
the accumulation read without the t4 → t3 bypass; ``"shared"`` makes the K lanes of
multiplier p share one memory (K write ports on it, the last lane's write winning a
collision). Both compute wrong results in the worst-case collision pattern.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .contract import load_signature
from .hdl_arith import check_positive, refuse
from .layer_map import layer_map, total_blocks
from .multiplier import MultiplierBankSignature, PipelinedMultiplier
from .mxv import (DeltaReadSignature, SlotSignature, acc_width, ap_operand_a_bits,
                  ap_operand_b_bits, register_slot)
from .numerics import Formats

__all__ = ["CompressedMxVChannel", "index_bits", "FAULTS"]

#: The test-only faults of :class:`CompressedMxVChannel` (module docstring).
FAULTS = ("no_bypass", "shared")


def _bit(flags, index):
    """Bit ``index`` of ``flags`` (0 past its width), as a full-width shift and a slice: the
    Verilog then has no truncating assignment (``bit_select`` makes one)."""
    return (flags >> index)[0]


def index_bits(blocks: int) -> int:
    """Bits of a pair's global block number for ``blocks`` (ΣNB) delta-memory words (≥ 1)."""
    return max(1, (blocks - 1).bit_length())


class CompressedMxVChannel(wiring.Component):
    """One gate channel of a compressed core's MxV: P·K multipliers and K·P partial delta
    memories per memory kind (see the module docstring).

    Parameters
    ----------
    fmts : Formats
        Number formats (:mod:`drnn_hw.numerics`).
    inputs : int
        I (≥ 0), of layer 0.
    hidden : int or sequence of int
        H (≥ 1), or every layer's H for a stacked core: NB = ΣNB_l words per memory.
    rows, columns : int
        P and K (≥ 1).
    bias : sequence of ΣH_l ints
        Lane 0's reset value (M_r, M_z, M_nx; the LSTM's gates), accumulator-format codes.
    bias_h : sequence of ΣH_l ints, optional
        Channel n: products of h columns go to a second set of memories (M_nh).
    ap_a_bits : int, optional
        As :class:`~drnn_hw.mxv.MxVChannel`'s (the LSTM AP's wider first operand).
    fault : str, optional
        Tests only: one of :data:`FAULTS` (module docstring).

    Ports
    -----
    slot : In(SlotSignature(P, K, act_bits + 1, w_bits, Σkept, index_bits(ΣNB)))
        An issue slot one cycle after the issue: deltas, x/h flags, and per (k, p) a weight
        and the global block of its row (``block`` is the pair number, unused here). Any
        rows in any cycles: no spacing is required.
    ap_mul : In(MultiplierBankSignature(P, max(act_bits + 1, ap_a_bits), ap_operand_b_bits))
        Lane 0's multipliers lent to the AP (not while a slot comes).
    ap_read : In(DeltaReadSignature(P, acc_width, ΣNB, split=bias_h is not None))
        ``m`` (and ``m_h``) one cycle after ``en``: the lane sums of the block's rows (exact,
        not saturated), registered. May come in the cycle of the block's last write of the
        step (the read takes that write). Applies the end-of-step saturation.
    load_bias : In(1)
        RESET_STATE: the biases into lane 0, 0 into the other lanes, NB cycles down the
        pipeline (:attr:`bias_load_cycles`); also after the domain's reset.
    load : In(load_signature(load_bits))
        Only with ``load_codes`` (a run-time core, as :class:`~drnn_hw.mxv.MxVChannel`'s): a
        word write into the bias memory of M (``load.memory == load_codes[0]``) or M_nh
        (``load_codes[1]``): the P biases of block ``load.addr`` (``acc_bits`` codes, row p
        in bits ``[p·acc_bits, …)``), taken at the next ``load_bias``.

    Raises
    ------
    ValueError
        ``inputs`` < 0, ``hidden``, ``rows`` or ``columns`` < 1, ``bias`` / ``bias_h`` not
        ΣH_l values in the accumulator format, an unknown ``fault`` (named in the message).
    """

    def __init__(self, fmts: Formats, *, inputs: int, hidden, rows: int, columns: int,
                 bias, bias_h=None, ap_a_bits: int | None = None, slots: int = 1,
                 fault: str | None = None, load_codes=None, load_bits: int | None = None):
        if inputs < 0:
            raise refuse(self, f"inputs must be ≥ 0, got {inputs}")
        layers = [hidden] if isinstance(hidden, int) else list(hidden)
        check_positive(self, rows=rows, columns=columns, slots=slots,
                       **{f"hidden[{l}]" if len(layers) > 1 else "hidden": h
                          for l, h in enumerate(layers)})
        if fault is not None and fault not in FAULTS:
            raise refuse(self, f"fault must be one of {', '.join(FAULTS)} or None, got "
                               f"{fault!r}")
        self.fmts, self.P, self.K, self.fault = fmts, rows, columns, fault
        self.H = sum(layers)
        self.map = layer_map(max(inputs, 1), layers, rows, 1)
        self.NB = total_blocks(self.map)
        self.index_bits = index_bits(self.NB)
        #: Cycles from ``load_bias`` until every block reads as its biases (as the dense
        #: channel's: NB fill blocks enter t2 from the second cycle, each written at t4).
        self.bias_load_cycles = self.NB + 4
        self.split = bias_h is not None
        self.load_codes = load_codes
        self.bias = self._check_bias("bias", bias)
        self.bias_h = None if bias_h is None else self._check_bias("bias_h", bias_h)
        self.acc_width = acc_width(fmts, inputs, hidden)
        self.delta_bits = ap_operand_a_bits(fmts)
        self.a_bits = max(self.delta_bits, ap_a_bits or 0)
        self.b_bits = ap_operand_b_bits(fmts)
        self.prod_bits = self.a_bits + self.b_bits
        super().__init__({
            "slot": In(SlotSignature(rows=rows, columns=columns, delta_bits=self.delta_bits,
                                     w_bits=fmts.w_bits, blocks=slots,
                                     index_bits=self.index_bits)),
            "ap_mul": In(MultiplierBankSignature(rows, self.a_bits, self.b_bits)),
            "ap_read": In(DeltaReadSignature(rows=rows, acc_width=self.acc_width,
                                             blocks=self.NB, split=self.split)),
            "load_bias": In(1),
            **({"load": In(load_signature(load_bits))} if load_codes is not None else {}),
        })

    def _check_bias(self, name: str, values) -> list[int]:
        if np.shape(values) != (self.H,):
            raise refuse(self, f"{name} must be a vector of hidden = {self.H} values, got "
                               f"shape {np.shape(values)}")
        values = [int(v) for v in values]
        acc = self.fmts.acc
        bad = [v for v in values if not acc.min <= v <= acc.max]
        if bad:
            raise refuse(self, f"{name} values must lie in the accumulator format "
                               f"[{acc.min}, {acc.max}], got {bad[0]}")
        return values

    def elaborate(self, platform):
        m = Module()
        P, K, NB = self.P, self.K, self.NB
        slot, lent = register_slot(m, self.slot), self.ap_mul     # t0
        blk = range(max(NB, 2))
        idx = unsigned(self.index_bits)

        # t1, t2: the multipliers (lane 0's take the AP's operands when it borrows them).
        prod = [[None] * P for _ in range(K)]
        for k in range(K):
            for p in range(P):
                mul = PipelinedMultiplier(self.a_bits, self.b_bits)
                m.submodules[f"mul{k}_{p}"] = mul
                a, b = slot.delta[k][p], slot.weight[k][p]
                if k == 0:
                    a, b = Mux(lent.en[p], lent.a[p], a), Mux(lent.en[p], lent.b[p], b)
                m.d.comb += [mul.a.eq(a), mul.b.eq(b)]
                prod[k][p] = mul.p
        m.d.comb += [lent.product[p].eq(prod[0][p]) for p in range(P)]

        # The slot's control and every pair's block alongside the multipliers (t2, t3), then
        # t4. After ``load_bias`` NB fill writes go down the same stages into every memory.
        stage = data.StructLayout({"valid": 1, "is_x": K, "fill": 1,
                                   "index": data.ArrayLayout(data.ArrayLayout(idx, P), K)})
        t2 = Signal(stage, name="t2")
        t3 = Signal(stage, name="t3")
        t4 = Signal(stage, name="t4")
        filling = Signal(init=1)
        fill_block = Signal(blk)
        with m.If(self.load_bias):
            m.d.sync += [filling.eq(1), fill_block.eq(0)]
        with m.Elif(filling):
            m.d.sync += fill_block.eq(fill_block + 1)
            with m.If(fill_block == NB - 1):
                m.d.sync += filling.eq(0)
        m.d.sync += [t2.valid.eq((slot.valid & ~lent.en[0]) | filling),
                     t2.is_x.eq(slot.is_x), t2.fill.eq(filling), t3.eq(t2), t4.eq(t3)]
        for k in range(K):
            for p in range(P):
                m.d.sync += t2.index[k][p].eq(Mux(filling, fill_block, slot.index[k][p]))

        read = self.ap_read
        # The AP's read: per row, the block and its valid bit one cycle later, as the rows
        # arrive (each row has its own read address, see DeltaReadSignature).
        ap_block = [Signal(blk, name=f"ap_block{p}") for p in range(P)]
        ap_seen = [Signal(name=f"ap_seen{p}") for p in range(P)]
        for p in range(P):
            m.d.sync += [ap_seen[p].eq(read.en[p]), ap_block[p].eq(read.block[p])]
        if self.split:
            kinds = [("x", lambda k: t3.is_x[k], self.bias, read.m),
                     ("h", lambda k: ~t3.is_x[k], self.bias_h, read.m_h)]
        else:
            kinds = [("", lambda k: None, self.bias, read.m)]
        for i, (name, sel, bias, out) in enumerate(kinds):
            code = None if self.load_codes is None else self.load_codes[i]
            self._memories(m, f"m{name}", sel, bias, out, prod, t3, t4, ap_seen, ap_block,
                           code, t2.index[0][0])
        return m

    def _memories(self, m, name, sel, bias, out, prod, t3, t4, ap_seen, ap_block, code,
                  pre_block):
        """The K·P partial memories of one kind (M, or M_nx / M_nh), their override flags,
        the accumulation and the AP's lane sum. ``code``: the kind's bias memory's load code
        (a run-time core), ``pre_block``: the block a fill reads next (t2's)."""
        P, K, NB, fmts = self.P, self.K, self.NB, self.fmts
        accw = signed(self.acc_width)
        acc = fmts.acc
        where = [(s, b) for s in self.map for b in range(s.blocks)]
        shared = self.fault == "shared"

        # Memories and write ports first: with ``fault == "shared"`` lane k > 0 writes
        # into lane 0's memory, and every read port must see every write port.
        mems = [[None] * P for _ in range(K)]
        wps = [[None] * P for _ in range(K)]
        init = []
        for p in range(P):
            words = [bias[s.h_base + b * P + p] if b * P + p < s.hidden else 0
                     for s, b in where]
            init.append(words)
            for k in range(K):
                if k > 0 and shared:
                    mems[k][p] = mems[0][p]
                else:
                    mem = memory.Memory(shape=accw, depth=max(NB, 2),
                                        init=words if k == 0 else [])
                    m.submodules[f"{name}_{k}_{p}"] = mem
                    mems[k][p] = mem
                wps[k][p] = mems[k][p].write_port()

        fill_bias = None
        if code is not None:
            # Writable biases (a run-time core): a RAM of ΣNB words of P biases, read one
            # stage ahead (at t2, from the fill's block: every pair of a fill names it) so
            # its word arrives with the t3 read, as the dense channel's.
            b_row = data.ArrayLayout(signed(fmts.acc_bits), P)
            b_mem = memory.Memory(shape=b_row, depth=max(NB, 2),
                                  init=[[words[b] for words in init] for b in range(NB)])
            m.submodules[f"{name}_bias"] = b_mem
            b_wp, b_rp = b_mem.write_port(), b_mem.read_port()
            m.d.comb += [b_wp.addr.eq(self.load.addr),
                         b_wp.en.eq(self.load.we & (self.load.memory == code)),
                         b_wp.data.eq(self.load.data), b_rp.addr.eq(pre_block)]
            fill_bias = b_rp.data

        sums = []
        for k in range(K):
            for p in range(P):
                mem, wp = mems[k][p], wps[k][p]
                own = tuple(w for kk in range(K) for w in [wps[kk][p]] if mems[kk][p] is mem)
                acc_rp = mem.read_port(transparent_for=() if self.fault == "no_bypass"
                                       else own)                               # t3 -> t4
                rd_idx = t3.index[k][p]
                wr_idx = t4.index[k][p]
                # What lane k's word of row p holds when a flag is set: lane 0 max / min, the
                # other lanes 0. Flags are per block (bit b).
                if k == 0:
                    hi = Signal(NB, name=f"{name}_{k}_{p}_hi")
                    lo = Signal(NB, name=f"{name}_{k}_{p}_lo")
                    flags = (hi, lo)
                else:
                    zero = Signal(NB, name=f"{name}_{k}_{p}_zero")
                    flags = (zero,)

                # t3: read, and what the sum starts from (registered with the read, so the t4
                # loop holds one mux before its adder). A write of the same word in this
                # cycle (the bypass) clears its flag: the read already sees its value.
                # No enable on the read or the t3 registers: the pipeline never stalls and t4
                # uses them only for a valid slot, while an enable would be one clock-enable
                # net across every row (mxv.py).
                m.d.comb += acc_rp.addr.eq(rd_idx)
                q_over = Signal(name=f"{name}_{k}_{p}_over")
                q_value = Signal(accw, name=f"{name}_{k}_{p}_value")
                s = Signal(signed(self.prod_bits), name=f"{name}_{k}_{p}_sum")
                pick = sel(k)
                product = prod[k][p] if pick is None else Mux(pick, prod[k][p], 0)
                m.d.sync += s.eq(Mux(t3.fill, 0, product))
                fresh = ~(wp.en & (wp.addr == rd_idx))
                if k == 0:
                    f_hi = _bit(hi, rd_idx) & fresh
                    f_lo = _bit(lo, rd_idx) & fresh
                    b_val = Array(Const(v, accw) for v in init[p])[rd_idx] \
                        if fill_bias is None else fill_bias[p]
                    m.d.sync += [q_over.eq(t3.fill | f_hi | f_lo),
                                 q_value.eq(Mux(t3.fill, b_val, Mux(f_hi, acc.max, acc.min)))]
                else:
                    f_zero = _bit(zero, rd_idx) & fresh
                    m.d.sync += [q_over.eq(t3.fill | f_zero), q_value.eq(0)]

                # t4: accumulate and write. (A shared memory's other lanes do not fill: the
                # fill is lane 0's.)
                en = t4.valid if not (shared and k > 0) else t4.valid & ~t4.fill
                m.d.comb += [wp.en.eq(en), wp.addr.eq(wr_idx),
                             wp.data.eq(Mux(q_over, q_value, acc_rp.data) + s)]
                for b in range(NB):
                    with m.If(wp.en & (wp.addr == b)):
                        m.d.sync += [f[b].eq(0) for f in flags]

                # The AP's read of this lane: the word, or its flag's value; from the cycle
                # of the word's last write, read asynchronously with the write of this cycle
                # in its place (transparent) and, summed over the lanes, registered: the
                # dense channel's registered word (mxv.py), so the AP's c1 starts from a
                # flip-flop. A write in this cycle also clears the word's flag.
                ap_rp = mem.read_port(domain="comb")
                ap_at = self.ap_read.block[p]
                m.d.comb += ap_rp.addr.eq(ap_at)
                word = ap_rp.data
                for w in own:          # in port order: the last write port's data wins
                    word = Mux(w.en & (w.addr == ap_at), w.data, word)
                kept = ~(wp.en & (wp.addr == ap_at))
                if k == 0:
                    value = Mux(_bit(hi, ap_at) & kept, acc.max,
                                Mux(_bit(lo, ap_at) & kept, acc.min, word))
                else:
                    value = Mux(_bit(zero, ap_at) & kept, 0, word)
                if not (shared and k > 0):
                    sums.append((k, p, value, flags))

        # The lane sums (mod 2^acc_width: exact, module docstring), and the end-of-step
        # saturation: a row read outside the accumulator format overrides its lanes.
        for p in range(P):
            lanes = [(k, v, f) for k, pp, v, f in sums if pp == p]
            total = lanes[0][1]
            for _, v, _ in lanes[1:]:
                total = total + v
            m.d.sync += out[p].eq(total[:self.acc_width].as_signed())
            top = out[p][fmts.acc_bits - 1:]
            hi_p = ~top[-1] & top.any()
            lo_p = top[-1] & ~top.all()
            with m.If(ap_seen[p] & (hi_p | lo_p)):
                with m.Switch(ap_block[p]):
                    for b in range(NB):
                        with m.Case(b):
                            for k, _, f in lanes:
                                if k == 0:
                                    m.d.sync += [f[0][b].eq(hi_p), f[1][b].eq(lo_p)]
                                else:
                                    m.d.sync += f[0][b].eq(1)
