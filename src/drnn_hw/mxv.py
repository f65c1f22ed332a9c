"""One MxV channel (gate r, z or n): P·K multipliers, the column adders and its delta memory.

Per issue slot the channel gets K deltas and, from the weight bank, the P weights of each
delta's column for one P-row block (both arrive together on a :class:`SlotSignature` port,
one cycle after the issue slot).
Pipeline, one stage per cycle so each holds at most one carry chain or one multiplier:

* ``t0`` the slot registered beside the multipliers: a block RAM's word arrives 5.6 ns after
  the clock on an ECP5 (Yosys never sets the DP16KD's output register) and the banks' words
  then crossed the die to the DSP rows, 11.7–14.3 ns on the ULX3S (issue #10); with this
  register each half of that path is a net of its own;
* ``t1`` operands: ``delta_k`` and ``w_k[p]`` registered (the multiplier inputs);
* ``t2`` products: ``delta_k · w_k[p]``, registered (both registers belong to the
  :class:`~drnn_hw.multiplier.PipelinedMultiplier`, so a DSP block absorbs them);
* ``t3`` column sum: the K products of each row summed, registered; the block's memory row is
  read (synchronous read);
* ``t4`` accumulate: ``M[block] + sum`` written back (exact: M is ``acc_bits`` plus guard bits).

Channel n keeps two memories: products of x columns go to M_nx, of h columns to M_nh.

The delta memories are ``lib.memory`` RAMs of NB words, one per row (word b = row p of block
b), initialised to the biases, so they map to distributed RAM instead of H·acc_bits flip-flops
behind block muxes. Each row's RAM and flags take their read and write addresses from the
row's own copies of the t3/t4 control registers: the rows sit beside their multipliers, spread
over the die's DSP rows, and one register for all of them is a net across the chip.
``load_bias`` (RESET_STATE) writes the biases back, one block per cycle through the
accumulation's own stages (:attr:`MxVChannel.bias_load_cycles`). The
spec's end-of-step saturation costs nothing: when the AP has read a block the step is over for
it (*stale*, one bit per block). The AP itself needs no saturated copy: narrowing a wider value
to the activation format gives the same number
(:func:`drnn_hw.hdl_arith.saturated_lut_index`), so nothing is written back. Which rows of the
block lie above or below the format is worked out from the AP's read and kept as two flags per
row, written with the stale bit the cycle after the read; the next accumulation starts those
rows from the format's max or min (and its write clears the bit).

What a sum starts from is decided when the accumulation's read is issued (t3) and registered
with it, so the read-add-write loop of t4 holds one LUT level before its adder. That loop needs
no bypass of the write into the read unless a layer has a single block (NB_l = 1), the only
case in which the issue schedule sends two slots to one block in consecutive cycles.

The multipliers are shared with the activation pipeline (the last slot has left them before the
AP's first product, two cycles after its first read, which is after the last issue): the P
multipliers of column 0 are lent on the ``ap_mul`` port
(:class:`~drnn_hw.multiplier.MultiplierBankSignature`, flipped): with ``ap_mul.en`` their
operand registers take ``ap_mul.a[p]``, ``ap_mul.b[p]`` instead, and the product appears on
``ap_mul.product`` two cycles later. These are the only multipliers of the core.

The activation pipeline reads one block on the ``ap_read`` port (:class:`DeltaReadSignature`,
flipped), a second read port of the memories (so it can start while the last slots are still
accumulating into later blocks): one cycle later ``ap_read.m`` (and ``ap_read.m_h``) hold its
rows, ``acc_bits`` plus guard bits wide. The port is transparent to the accumulation's write,
so the AP may read a block in the cycle of its last write: the t0 stage then costs the
schedule no cycle (:func:`~drnn_hw.cycle_model.mxv_drain`). The port is the LUT-RAM's
asynchronous read with the write of the same cycle muxed in front of a data register, so the
AP's next stage (the σ ROMs' addresses) starts from a flip-flop (issue #10's fifteenth round;
synthesis would otherwise register the address and leave the read in that stage).

The stage registers are ``lib.data`` struct views (valid bit, block, x/h column flags).

Stacked layers (:mod:`drnn_hw.layer_map`): the memories hold every layer's blocks one after
the other (layer l's from its ``block_base``), with every layer's biases; the slots and reads
carry these global block numbers, so the channel does not need to know the layer.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from . import multiplier
from .contract import load_signature
from .hdl_arith import check_positive, refuse
from .layer_map import layer_map, total_blocks
from .multiplier import MultiplierBankSignature, PipelinedMultiplier
from .numerics import Formats, accumulator_guard_bits

__all__ = ["MxVChannel", "SlotSignature", "drive_slot_deltas", "register_slot",
           "SLOT_ROWS_PER_COPY", "T2_ROWS_PER_COPY",
           "DeltaReadSignature", "ap_operand_a_bits",
           "ap_operand_b_bits", "acc_width", "MXV_STAGES", "AP_MUL_LATENCY", "AP_READ_LATENCY"]

#: Cycles from a slot (``slot.valid``) to the write of its sums into M (t0 -> t4): the slot's
#: register, the multiplier's two, then the column sum. The AP's read sees the write in the
#: write's own cycle (its read port is transparent to it).
MXV_STAGES = 1 + multiplier.LATENCY + 1
#: Cycles from ``ap_mul.en`` to the product on ``ap_mul.product``.
AP_MUL_LATENCY = multiplier.LATENCY
#: Cycles from ``ap_read.en`` to the rows on ``ap_read.m``.
AP_READ_LATENCY = 1


def _blocks_shape(blocks: int) -> range:
    """Shape of a block number (at least one bit, also for NB = 1)."""
    return range(max(blocks, 2))


class SlotSignature(wiring.Signature):
    """An issue slot as the MxV channels take it, seen from the sender (the weight bank): K
    deltas and the P weights of each delta's column for one block, arriving together.

    A plain signature, not a ``lib.stream`` one: a channel takes a slot in every cycle (there
    is nothing to wait for), so the timing is fixed by the issue schedule.

    Members
    -------
    valid : Out(1)
        A slot this cycle.
    block : Out(range(max(blocks, 2)))
        The P-row block the products accumulate into.
    delta : Out(ArrayLayout(ArrayLayout(signed(delta_bits), rows), columns))
        ``delta[k][p]``: column k's exact delta (0 for an empty column of a partial group) as
        row p's multiplier takes it: the same value for every p; any value in a cycle
        without a slot (a receiver uses the products of a valid slot only). Per row so that a
        sender can drive the rows from copies of its register (:func:`drive_slot_deltas`); one
        register driving all P rows of a channel was one net across the die's DSP rows (the
        ULX3S build's critical path, 14.6 ns).
    is_x : Out(columns)
        Column k is an x column (its products go to M_nx in channel n) or an h column.
    weight : Out(ArrayLayout(ArrayLayout(signed(w_bits), rows), columns))
        ``weight[k][p]``: the weight of row ``block·P + p`` of column k (0 past H).

    index : Out(ArrayLayout(ArrayLayout(unsigned(index_bits), rows), columns))
        Only with ``index_bits`` (a compressed core, :mod:`drnn_hw.mxv_compressed`):
        ``index[k][p]``, the global delta-memory block of the row ``weight[k][p]`` belongs
        to (its row is ``index·P + p`` of the layer's block ``index − block_base``);
        ``block`` is then the issue slot (the pair number), which the channel does not use.

    Raises ValueError naming the parameter when ``rows``, ``columns``, ``delta_bits``,
    ``w_bits``, ``blocks`` or ``index_bits`` is < 1.
    """

    def __init__(self, *, rows: int, columns: int, delta_bits: int, w_bits: int,
                 blocks: int, index_bits: int | None = None):
        params = dict(rows=rows, columns=columns, delta_bits=delta_bits, w_bits=w_bits,
                      blocks=blocks)
        if index_bits is not None:
            params["index_bits"] = index_bits
        check_positive(self, **params)
        self.params = params
        super().__init__({
            "valid": Out(1),
            "block": Out(_blocks_shape(blocks)),
            "delta": Out(data.ArrayLayout(data.ArrayLayout(signed(delta_bits), rows), columns)),
            "is_x": Out(columns),
            "weight": Out(data.ArrayLayout(data.ArrayLayout(signed(w_bits), rows), columns)),
            **({"index": Out(data.ArrayLayout(data.ArrayLayout(unsigned(index_bits), rows),
                                              columns))} if index_bits is not None else {}),
        })

    def __eq__(self, other):
        return type(other) is type(self) and self.params == other.params

    __hash__ = None


#: Rows of a channel whose multipliers one copy of a slot's deltas drives (:func:`drive_slot_deltas`).
SLOT_ROWS_PER_COPY = 4
#: Rows whose t3 control copies one copy of t2's control feeds (:class:`MxVChannel`).
T2_ROWS_PER_COPY = 4


def drive_slot_deltas(m: Module, out, deltas, column_valid, name: str):
    """Register a slot's K deltas into ``out.delta`` of a :class:`SlotSignature` sender port,
    one register per :data:`SLOT_ROWS_PER_COPY` rows (named ``{name}_delta{g}_dup``, which
    the ULX3S flow keeps unmerged). ``deltas``: this cycle's K values; ``column_valid``: K
    bits, column k holds a delta this cycle (else its delta goes out as 0; column 0 of a slot
    always holds one). Every copy holds the same value in every cycle. The zeroing comes
    after the copies, from a registered bit per copy, so the group's column flags (a
    register's bit) reach the copies, not its data mux.

    The slot's ``valid`` takes no part: a channel uses the products of a valid slot only
    (its t4 write is enabled by the slot's valid bit), so a cycle without a slot may carry
    any delta. Gating the copies with the issue's ``valid`` (a LUT of the queue's state)
    was the demo core's critical path at 80 MHz on the ULX3S (11.96 ns, issue #10)."""
    K = len(out.delta)
    rows = len(out.delta[0])
    for g in range(0, rows, SLOT_ROWS_PER_COPY):
        copy = Signal(data.ArrayLayout(out.delta[0][0].shape(), K), name=f"{name}_delta{g}_dup")
        m.d.sync += [copy[k].eq(deltas[k]) for k in range(K)]
        keep = [None] + [Signal(name=f"{name}_delta_valid{g}_{k}_dup") for k in range(1, K)]
        m.d.sync += [keep[k].eq(column_valid[k]) for k in range(1, K)]
        for p in range(g, min(rows, g + SLOT_ROWS_PER_COPY)):
            m.d.comb += out.delta[0][p].eq(copy[0])
            m.d.comb += [out.delta[k][p].eq(Mux(keep[k], copy[k], 0)) for k in range(1, K)]


def register_slot(m: Module, slot):
    """The channels' t0 stage: every member of ``slot`` (a :class:`SlotSignature` port, seen
    from the channel) registered, returned as an object with the same members (``valid``,
    ``block``, ``is_x``, and ``delta[k][p]``, ``weight[k][p]``, ``index[k][p]`` as lists of
    signals). One register per row and column: the rows' delta registers, whose inputs are
    equal within a copy of :func:`drive_slot_deltas`, are merged by synthesis into one per
    copy; each weight register sits on its own path from a block RAM to a DSP."""
    K, P = len(slot.delta), len(slot.delta[0])
    ctrl = Signal(data.StructLayout({"valid": 1, "block": slot.block.shape(), "is_x": K}),
                  name="t0")
    m.d.sync += [ctrl.valid.eq(slot.valid), ctrl.block.eq(slot.block),
                 ctrl.is_x.eq(slot.is_x)]

    def rows(member, what):
        regs = [[Signal(member[k][p].shape(), name=f"t0_{what}{k}_{p}") for p in range(P)]
                for k in range(K)]
        m.d.sync += [regs[k][p].eq(member[k][p]) for k in range(K) for p in range(P)]
        return regs

    members = {"valid": ctrl.valid, "block": ctrl.block, "is_x": ctrl.is_x,
               "delta": rows(slot.delta, "delta"), "weight": rows(slot.weight, "weight")}
    if "index" in slot.signature.members:
        members["index"] = rows(slot.index, "index")
    return SimpleNamespace(**members)


class DeltaReadSignature(wiring.Signature):
    """Block reads of one channel's delta memories, seen from the reader (the AP).

    Members
    -------
    en : Out(rows)
        Bit p: row p reads block ``block[p]`` this cycle (ends the step for it: see
        :class:`MxVChannel`). Every row reads the same block in the same cycle; the bits and
        blocks are per row only so that the reader can drive groups of rows from separate
        registers (one register for all rows was one net across the die at P = 24 on the
        ULX3S).
    block : Out(ArrayLayout(range(max(blocks, 2)), rows))
    m : In(ArrayLayout(signed(acc_width), rows))
        The rows of the block read :data:`AP_READ_LATENCY` cycles earlier: M_r, M_z or M_nx
        (``acc_bits`` plus guard bits, exact, not saturated).
    m_h : In(ArrayLayout(signed(acc_width), rows))
        Only with ``split``: the same block of M_nh.

    Raises ValueError naming ``rows``, ``acc_width`` or ``blocks`` when it is < 1.
    """

    def __init__(self, *, rows: int, acc_width: int, blocks: int, split: bool = False):
        params = dict(rows=rows, acc_width=acc_width, blocks=blocks)
        check_positive(self, **params)
        self.params = {**params, "split": bool(split)}
        row = data.ArrayLayout(signed(acc_width), rows)
        members = {"en": Out(rows), "block": Out(data.ArrayLayout(_blocks_shape(blocks), rows)),
                   "m": In(row)}
        if split:
            members["m_h"] = In(row)
        super().__init__(members)

    def __eq__(self, other):
        return type(other) is type(self) and self.params == other.params

    __hash__ = None


def ap_operand_a_bits(fmts: Formats) -> int:
    """Width of the multipliers' first operand: a delta, or an activation difference."""
    return fmts.act_bits + 1


def ap_operand_b_bits(fmts: Formats) -> int:
    """Width of the multipliers' second operand: a weight, or a gate value in [0, 2^A]."""
    return max(fmts.w_bits, fmts.act_frac + 2)


def acc_width(fmts: Formats, inputs: int, hidden) -> int:
    """Width of a delta memory row: ``acc_bits`` plus the guard bits of one step's sum (of
    the widest layer's ``I_l + H_l`` columns when ``hidden`` is a sequence of per-layer H)."""
    hidden = [hidden] if isinstance(hidden, int) else list(hidden)
    columns = max(i + h for i, h in zip([inputs] + hidden[:-1], hidden))
    return fmts.acc_bits + accumulator_guard_bits(fmts, columns)


class MxVChannel(wiring.Component):
    """One gate channel of the MxV: P·K multipliers, column sums, its delta memory (or two).

    Parameters
    ----------
    fmts : Formats
        Number formats (:mod:`drnn_hw.numerics`).
    inputs : int
        I (≥ 0), of layer 0.
    hidden : int or sequence of int
        H (≥ 1), or every layer's H for a stacked core: they set the memory's rows, I + H the
        guard bits of one step's sum.
    rows, columns : int
        P and K (≥ 1): the channel has P·K multipliers, ``NB = ceil(H/P)`` memory words.
    bias : sequence of H (ΣH_l) ints
        The memory's reset value (M_r, M_z or M_nx), accumulator-format codes (``acc_bits``);
        the layers' biases concatenated.
    bias_h : sequence of H (ΣH_l) ints, optional
        Given for channel n: products of h columns go to a second memory M_nh with these
        reset values.
    ap_a_bits : int, optional
        Width of the borrower's first operand when wider than a delta (``act_bits + 1``): the
        LSTM's AP multiplies the cell state c (``cell.bits``). The multipliers take the wider
        of the two; default the delta's.

    Ports
    -----
    slot : In(SlotSignature(P, K, act_bits + 1, w_bits, ΣNB))
        An issue slot's K deltas (0 for empty columns), block, x/h flags and weights, one cycle
        after the issue slot (they come from the weight bank's read stage). Two slots to the
        same block must be at least two cycles apart unless some layer has a single block
        (the issue schedule's blocks ``first .. last`` of a group guarantee it).
    ap_mul : In(MultiplierBankSignature(P, max(act_bits + 1, ap_a_bits), ap_operand_b_bits))
        The column-0 multipliers lent to the activation pipeline (product ``AP_MUL_LATENCY``
        cycles after ``en``). ``ap_mul.en`` must not come in the cycle after a
        ``slot.valid`` (the slot's t0, when it takes the multipliers).
    ap_read : In(DeltaReadSignature(P, acc_width, ΣNB, split=bias_h is not None))
        Read block ``ap_read.block`` for the AP: ``AP_READ_LATENCY`` cycles later ``ap_read.m``
        (and ``m_h``) hold its rows (not saturated; see the module docstring), in that cycle
        only (the rows of ``block`` of the cycle before, whatever ``en``). Marks the block
        stale, a cycle later: the block's next accumulation (its t3 read, three cycles after
        the slot) must come two or more cycles after the read. May come in the cycle of the
        block's last write of the step, not before (the read port is transparent to the
        write, which saves the schedule the t0 stage's cycle).
    load : In(load_signature(load_bits))
        Only with ``load_codes``: a word write from the register bus into the bias memory
        of M (``load.memory == load_codes[0]``) or M_nh (``load_codes[1]``): the P biases
        of block ``load.addr`` (``acc_bits`` codes, row p in bits ``[p·acc_bits, …)``),
        taken at the next ``load_bias``. Only while no slot comes.
    load_bias : In(1)
        Restore the biases (RESET_STATE): NB writes, one block per cycle down the pipeline;
        reads see them :attr:`bias_load_cycles` cycles after ``load_bias``. No slot may come
        during those cycles. The same happens after the clock domain's reset (which leaves
        RAM contents as they were), from its first cycle.

    Raises
    ------
    ValueError
        ``inputs`` < 0, ``hidden``, ``rows`` or ``columns`` < 1, ``bias`` / ``bias_h`` not H
        values or a value outside the accumulator format (named in the message).
    """

    def __init__(self, fmts: Formats, *, inputs: int, hidden: int, rows: int, columns: int,
                 bias, bias_h=None, ap_a_bits: int | None = None, load_codes=None,
                 load_bits: int | None = None):
        if inputs < 0:
            raise refuse(self, f"inputs must be ≥ 0, got {inputs}")
        layers = [hidden] if isinstance(hidden, int) else list(hidden)
        check_positive(self, rows=rows, columns=columns,
                       **{f"hidden[{l}]" if len(layers) > 1 else "hidden": h
                          for l, h in enumerate(layers)})
        self.fmts, self.P, self.K = fmts, rows, columns
        self.H = sum(layers)
        self.map = layer_map(max(inputs, 1), layers, rows, 1)
        self.NB = total_blocks(self.map)
        # Whether two slots can accumulate into one block in consecutive cycles (see slot).
        # (A run-time core, ``load_codes``, may be loaded with layers of one block.)
        self.bypass = any(s.blocks == 1 for s in self.map) or load_codes is not None
        self.load_codes = load_codes
        #: Cycles from ``load_bias`` until every block reads as its biases: the fill's NB
        #: blocks enter t2 from the second cycle, and each is written at t4.
        self.bias_load_cycles = self.NB + 4
        self.split = bias_h is not None
        self.bias = self._check_bias("bias", bias)
        self.bias_h = None if bias_h is None else self._check_bias("bias_h", bias_h)
        self.acc_width = acc_width(fmts, inputs, hidden)
        self.delta_bits = ap_operand_a_bits(fmts)
        self.a_bits = max(self.delta_bits, ap_a_bits or 0)
        self.b_bits = ap_operand_b_bits(fmts)
        self.prod_bits = self.a_bits + self.b_bits
        super().__init__({
            "slot": In(SlotSignature(rows=rows, columns=columns, delta_bits=self.delta_bits,
                                     w_bits=fmts.w_bits, blocks=self.NB)),
            "ap_mul": In(MultiplierBankSignature(rows, self.a_bits, self.b_bits)),
            "ap_read": In(DeltaReadSignature(rows=rows, acc_width=self.acc_width,
                                             blocks=self.NB, split=self.split)),
            "load_bias": In(1),
            **({"load": In(load_signature(load_bits))} if load_codes is not None else {}),
        })

    def _check_bias(self, name: str, values) -> list[int]:
        """The H bias codes as ints; ValueError naming ``name`` unless there are H of them,
        each in the accumulator format (a wider one would be cut to the memory's width)."""
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
        slot, lent = register_slot(m, self.slot), self.ap_mul

        # t1, t2: the multipliers (operand registers, product register); those of column 0
        # take the AP's operands when it borrows them.
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

        # The slot's control alongside the multipliers (t2, t3), then t4. After ``load_bias``
        # NB bias writes go down the same stages (``fill``): block b's start value is its
        # biases and its sums are 0.
        stage = data.StructLayout({"valid": 1, "block": _blocks_shape(NB), "is_x": K,
                                   "fill": 1})
        # t2's control in copies, one per T2_ROWS_PER_COPY rows' t3 copies (below): one
        # register for all P rows was 12.2–12.9 ns of routing on the ULX3S at 75 MHz (#10).
        copies = range(0, P, T2_ROWS_PER_COPY)
        t2s = [Signal(stage, name=f"t2_{j}_dup") for j in copies]
        # A fill also runs after the domain's reset (the RAM keeps its contents through it).
        filling = Signal(init=1)
        fill_block = Signal(_blocks_shape(NB))
        with m.If(self.load_bias):
            m.d.sync += [filling.eq(1), fill_block.eq(0)]
        with m.Elif(filling):
            m.d.sync += fill_block.eq(fill_block + 1)
            with m.If(fill_block == NB - 1):
                m.d.sync += filling.eq(0)
        # The fill's block at t2 (equal to t2.block while t2.fill).
        fill_t2s = [Signal(_blocks_shape(NB), name=f"fill_t2_{j}_dup") for j in copies]
        for t2, fill_t2 in zip(t2s, fill_t2s):
            m.d.sync += fill_t2.eq(fill_block)
            m.d.sync += [t2.valid.eq((slot.valid & ~lent.en[0]) | filling),
                         t2.block.eq(Mux(filling, fill_block, slot.block)),
                         t2.is_x.eq(slot.is_x), t2.fill.eq(filling)]

        # t3: column sums (per memory), registered, and the block read; t4: accumulate, write.
        # t3's control exists once per row (valid, the fill flag, the block whose flags and
        # biases the row starts from, which memory of channel n each product goes to): the
        # rows sit beside their multipliers, spread over the die's DSP rows, and one register
        # driving P·acc_width selects across them was the critical path on the ULX3S (18-25
        # ns of routing). Copies of one register are merged by synthesis unless kept: the
        # names end in ``_dup``, which the ECP5 flow marks ``keep`` (drnn_boards.ulx3s).
        row_t3 = [Signal(data.StructLayout({"fill": 1, "block": _blocks_shape(NB),
                                            "fill_block": _blocks_shape(NB), "valid": 1,
                                            "is_x": K}),
                         name=f"t3_row{p}_dup") for p in range(P)]
        for p, r in enumerate(row_t3):
            t2, fill_t2 = t2s[p // T2_ROWS_PER_COPY], fill_t2s[p // T2_ROWS_PER_COPY]
            m.d.sync += r.eq(Cat(t2.fill, t2.block, fill_t2, t2.valid, t2.is_x))
        # And t4's (the row memory's write), one per row from the row's t3 copy.
        row_t4 = [Signal(data.StructLayout({"valid": 1, "block": _blocks_shape(NB)}),
                         name=f"t4_row{p}_dup") for p in range(P)]
        m.d.sync += [r.eq(Cat(rt.valid, rt.block)) for r, rt in zip(row_t4, row_t3)]

        read = self.ap_read
        if self.split:
            # (Per row: which memory each product goes to, from the row's copy of t3.)
            masks = [lambda k, p: row_t3[p].is_x[k], lambda k, p: ~row_t3[p].is_x[k]]
            biases, outs = [self.bias, self.bias_h], [read.m, read.m_h]
        else:
            masks, biases, outs = [lambda k, p: True], [self.bias], [read.m]

        for i, (mask, bias, out) in enumerate(zip(masks, biases, outs)):
            code = None if self.load_codes is None else self.load_codes[i]
            # One signal per row, not an array view: synthesis trims each sum's redundant sign
            # bits (wreduce) only on a signal of its own.
            sums = [Signal(signed(self.prod_bits + K), name=f"sum{i}_{p}") for p in range(P)]
            for p in range(P):
                total = 0
                for k in range(K):
                    sel = mask(k, p)
                    total = total + (prod[k][p] if sel is True else Mux(sel, prod[k][p], 0))
                m.d.sync += sums[p].eq(Mux(row_t3[p].fill, 0, total))
            self._memory(m, f"m{i}", bias, sums, out, rd=row_t3, wr=row_t4,
                         fill_t2=fill_t2s[0], code=code)
        return m

    def _memory(self, m, name, bias, sums, out, *, rd, wr, fill_t2, code):
        """One delta memory: the RAM (initialised to the biases), its stale bits and saturation
        flags, the two reads and the write. ``rd``, ``wr``: the per-row copies of t3's and
        t4's control; ``fill_t2``: the block a fill reads next.

        The RAM is one ``lib.memory`` per row (P of them, one ``acc_width`` word per block),
        each addressed by its row's copies of t3 and t4: synthesis splits a wide memory
        into LUT-RAM cells anyway, and one address register for all of them is a net across
        the die's DSP rows."""
        P, NB, fmts = self.P, self.NB, self.fmts
        accw = signed(self.acc_width)
        row = data.ArrayLayout(accw, P)
        # Global block g of layer l (local block b) holds rows h_base + b·P + p of ``bias``.
        where = [(s, b) for s in self.map for b in range(s.blocks)]
        words = [[bias[s.h_base + b * P + p] if b * P + p < s.hidden else 0 for p in range(P)]
                 for s, b in where]
        wps, acc_rps, ap_rps = [], [], []
        for p in range(P):
            mem = memory.Memory(shape=accw, depth=max(NB, 2), init=[w[p] for w in words])
            m.submodules[f"{name}_row{p}"] = mem
            wp = mem.write_port()
            # Two slots meet on a block in consecutive cycles (the second's read in the cycle
            # of the first's write) only in a layer of one block; otherwise the accumulation's
            # read needs no bypass of the write, which keeps a mux out of its read-add-write
            # loop.
            wps.append(wp)
            acc_rps.append(mem.read_port(transparent_for=(wp,) if self.bypass else ()))
            # The AP's read, asynchronous here and registered below with the bypass of the
            # write (see ap_read).
            ap_rps.append(mem.read_port(domain="comb"))
        row_t3, row_t4 = rd, wr
        if code is None:
            biases = [Array(Const(word[p], accw) for word in words)[row_t3[p].fill_block]
                      for p in range(P)]
        else:
            # Writable biases: a RAM beside the delta memory, read one stage ahead (at t2,
            # from the fill's block) so its word arrives with the t3 read.
            b_row = data.ArrayLayout(signed(fmts.acc_bits), P)
            b_mem = memory.Memory(shape=b_row, depth=max(NB, 2), init=words)
            m.submodules[f"{name}_bias"] = b_mem
            b_wp, b_rp = b_mem.write_port(), b_mem.read_port()
            m.d.comb += [b_wp.addr.eq(self.load.addr),
                         b_wp.en.eq(self.load.we & (self.load.memory == code)),
                         b_wp.data.eq(self.load.data), b_rp.addr.eq(fill_t2)]
            biases = [b_rp.data[p] for p in range(P)]

        # Per row (so each row's logic reads its own bits; the AP's read sets a block's in
        # every row, the row's own write clears it).
        stale = [[Signal(name=f"{name}_stale{p}_{b}") for b in range(NB)] for p in range(P)]
        # Per row of a stale block: its value lay above (high) or below (low) the accumulator
        # format when the AP read it, so the spec's saturation makes it the format's max / min.
        sat_hi = [Signal(P, name=f"{name}_sat_hi{b}") for b in range(NB)]
        sat_lo = [Signal(P, name=f"{name}_sat_lo{b}") for b in range(NB)]

        # The AP's read, from the cycle of the block's last write (see ap_read): the word is
        # read asynchronously and registered, the write of this cycle to the same block
        # taking its place (a transparent read). Left to itself, synthesis registers a
        # transparent LUT-RAM read's address instead (fewer flip-flops, no bypass mux), and
        # the read then began the AP's c1 stage: address copy → LUT-RAM → the σ ROM's clamp
        # → a route across the die to the ROM's block RAM, the demo build's slowest group at
        # 80 MHz (11.4–11.7 ns, issue #10's fourteenth round). With the word registered, c1
        # starts from a flip-flop, in the same cycle. Yosys's memory_dff would fold the
        # register and its bypass back into the memory; it folds only a register that is
        # the word's sole load, and the saturation test below reads the word before it.
        read = self.ap_read
        seens = []
        for p, ap_rp in enumerate(ap_rps):
            word = Signal(accw, name=f"{name}_ap_word{p}")
            same = wps[p].en & (wps[p].addr == read.block[p])
            m.d.comb += [ap_rp.addr.eq(read.block[p]),
                         word.eq(Mux(same, wps[p].data, ap_rp.data))]
            m.d.sync += out[p].eq(word)
            # The AP's read ends the step for the block: the next accumulation starts from
            # the saturation of what it read. Which way the row saturates is worked out from
            # the word as it is read and registered with it (two bits, beside the row), and
            # written into the block's flags and stale bit a cycle later (below), as the
            # compressed channel does: writing the NB flags straight from the compare put
            # the accumulation's adder, the bypass mux, the compare and the flags' routing in
            # one cycle (the random model's 12.0 ns group at 80 MHz, issue #10's sixteenth
            # round). Nothing reads a block's flags within two cycles of its AP read (the next
            # accumulation of the block is the next step's, after the AP).
            top = word[fmts.acc_bits - 1:]
            seen = Signal(data.StructLayout({"en": 1, "block": _blocks_shape(NB), "hi": 1,
                                             "lo": 1}), name=f"{name}_ap_seen{p}")
            m.d.sync += seen.eq(Cat(read.en[p], read.block[p], ~top[-1] & top.any(),
                                    top[-1] & ~top.all()))
            seens.append(seen)
            with m.If(seen.en):
                with m.Switch(seen.block):
                    for b in range(NB):
                        with m.Case(b):
                            m.d.sync += [sat_hi[b][p].eq(seen.hi), sat_lo[b][p].eq(seen.lo)]

        # t3: the accumulation's read, and per row whether the sum starts from what is read
        # or from a value chosen here: the biases (a fill after load_bias) or the format's
        # max / min (a saturated row of a stale block). Registered, so the t4 loop below
        # holds one LUT level before its adder.
        # The read and the t3 registers take no enable: the pipeline never stalls and t4 uses
        # them only when the slot was valid (t4.valid is t3.valid a cycle later). An enable
        # from rd_en would be a clock enable on every t3 register and read-data register of
        # the P rows: one net across the channel (28 ns of routing on the ULX3S at P = 24).
        acc = fmts.acc
        q_over = Signal(P, name=f"{name}_acc_over")
        q_value = Signal(row, name=f"{name}_acc_value")
        for p in range(P):
            # Each row reads, selects its flags and writes with its own copies of t3's and
            # t4's control (``row_t3``, ``row_t4``). A write to the block in this cycle
            # (possible only with the bypass) clears its stale bit.
            rt, wt = row_t3[p], row_t4[p]
            m.d.comb += acc_rps[p].addr.eq(rt.block)
            written = wt.valid & (wt.block == rt.block)
            is_stale = Array(stale[p])[rt.block] & ~written
            hi_r = Array(f[p] for f in sat_hi)[rt.block]
            lo_r = Array(f[p] for f in sat_lo)[rt.block]
            m.d.sync += [
                q_over[p].eq(rt.fill | (is_stale & (hi_r | lo_r))),
                q_value[p].eq(Mux(rt.fill, biases[p], Mux(hi_r, acc.max, acc.min))),
            ]
            # t4: accumulate and write.
            m.d.comb += [wps[p].en.eq(wt.valid), wps[p].addr.eq(wt.block),
                         wps[p].data.eq(Mux(q_over[p], q_value[p], acc_rps[p].data) + sums[p])]
            for b in range(NB):
                with m.If(wt.valid & (wt.block == b)):
                    m.d.sync += stale[p][b].eq(0)
                with m.If(seens[p].en & (seens[p].block == b)):
                    m.d.sync += stale[p][b].eq(1)
