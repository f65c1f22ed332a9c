"""DeltaRNNCore (also called DeltaGRUCore): the delta-RNN accelerator (top level), for one layer
or a stack of L layers time-multiplexed on the same multipliers (EdgeDRNN's scheme), of the cell
the bundle holds (``bundle.cell``): the delta-GRU or the delta-LSTM.

Blocks and the interfaces between them (each a ``wiring.Signature`` joined with
``wiring.connect``)::

    x FIFO ─► DeltaEncoder ─deltas: DeltaStreamSignature─► DeltaQueue
    DeltaQueue ─issue: IssueSignature─► WeightBank
    WeightBank ─slot_r/z/n: SlotSignature─► MxVChannel r, z, n (slot)
    ActivationPipeline ─mul_r, mul_z: MultiplierBankSignature─► MxVChannel r, z (ap_mul)
    ActivationPipeline ─read_r/z/n: DeltaReadSignature─► MxVChannel r, z, n (ap_read)

Weights in DRAM (``shape.weights == "axi"``, EdgeDRNN's scheme): the
:class:`~drnn_hw.axi_weight_fetch.AxiWeightFetch` replaces the WeightBank. It reads the step's
kept deltas from the queue ahead of the issue (the queue's look-ahead port), fetches each one's
weight column over the AXI4 read master ``m_axi`` (:class:`~drnn_hw.axi_weight_fetch.
AxiReadSignature`) from WEIGHT_BASE (image layout: :mod:`drnn_hw.dram`) into a column buffer,
and holds the queue (``hold``) until a group's columns are there; the slots it hands the
channels are the WeightBank's. The AP's start condition (nothing pending in the queue, no slot
in the last ``mxv_drain`` cycles) already waits for the last slot, however late the memory
delivers it; the cycle counter counts those cycles (the cycle model's memory terms).

Compressed weights (``shape.weight_format == "compressed"``, issue #13, baked, run-time or
in DRAM): the weight bank holds each layer's column-balanced (value, block) pairs, ``kept_l``
words per column (:func:`~drnn_hw.spatial.layer_kept`), the encoder's addresses and the
queue's issue slots follow that layout (a kept delta column costs ``kept_l`` slots instead of
NB_l; kept_l is the KEPT register's, a constant in a baked core), and the
channels are :class:`~drnn_hw.mxv_compressed.CompressedMxVChannel` (one partial delta memory
per lane and multiplier, the lane sum on the AP's read port); the AP starts ``mxv_drain(1)``
cycles after the last slot in every layer. The step takes :func:`drnn_hw.spatial.
spatial_step_cycles` (per layer, plus the layer gaps); everything else is this module's.
A compressed *run-time* core (``maxima``) fixes its capacity at generation: every layer slot
holds I_max + H_max columns of ``kept_max`` words (``maxima.kept``, by default the initial
bundle's largest kept: the bank depth is the block RAM it costs, and the pairs of a column
must sit at a fixed stride for the encoder's address arithmetic), while a loaded layer's own
kept_l (≤ kept_max) is the writable KEPT register, so the encoder's addresses (column c at
``c·kept_l`` of the slot) and the queue's slots count the loaded kept and the step costs the
spatial model on the loaded sizes and kept, not the capacity's. LAYER_COUNTS.blocks stays
NB_l (the AP's), LAYER_H_COLUMN is the pair layout's; the compressed channels' biases sit in
writable RAMs (as the dense channels'); pair words and biases are loaded over LOAD_ADDR /
LOAD_DATA (:mod:`drnn_hw.load`).
With ``shape.weights == "axi"`` too, the AxiWeightFetch replaces that bank: it fetches each
kept column's ``kept_l`` pair words (:mod:`drnn_hw.dram`'s compressed image) and hands the
channels the bank's slots, so the queue (with its look-ahead), the encoder and the channels
are the baked compressed core's; the step takes the spatial model with the memory terms
(``spatial_step_cycles`` with the layer's ``fetch``).

An LSTM bundle gets four channels i, f, g, o (one delta memory each) and the
:class:`~drnn_hw.activation_lstm.LSTMActivationPipeline`, which reads all four memories,
borrows the column-0 multipliers of i, f and o, and keeps the cell state c in its own RAM
(RESET_STATE clears it; an H0 write sets h only, so c0 = 0). Everything else (encoder, queue,
weight bank with one memory per channel, registers, streams, layer sequencing) is the same
block for both cells; the step's schedule differs only in the AP's depth
(:func:`~drnn_hw.cycle_model.ap_latency`). The SHAPE register's ``cell`` field says which
cell the core runs.

Ports (Verilog names flattened with ``__``: ``x__valid``, ``x__payload``, ``csr__addr``, ...)
--------------------------------------------------------------------------------------------
``x``: In(stream.Signature(StructLayout({"data": ArrayLayout(signed(act_bits), E), "last": 1})))
    One timestep = WX beats; x[i] in element i % E of beat i // E; padding elements ignored;
    ``last`` expected on beat WX-1 (a mismatch sets the sticky FRAME_ERROR; frames are always
    counted as WX beats). In Verilog element e is ``x__payload[act_bits*e +: act_bits]``,
    ``last`` is bit ``act_bits*E``.
``h``: Out(stream.Signature(same layout))
    One frame of WH beats per timestep (h[j] in element j % E of beat j // E, padding elements
    0, ``last`` on beat WH-1). Exactly one output frame per input frame, in order. A beat may
    leave as soon as the AP has written every unit it carries, before the step commits; the
    last beat always leaves after the commit (:func:`~drnn_hw.cycle_model.output_tail`).
``csr``: In(Signature({"addr": Out(4), "r_stb": Out(1), "r_data": In(32), "w_stb": Out(1),
    "w_data": Out(32)})): write with ``w_stb``; read with ``r_stb``, ``r_data`` next cycle.
``status``: Out(Signature({"busy", "cycles_last": 32, "nnz_dx_last": 16, "nnz_dh_last": 16,
    "steps": 32, "prescan_last": 32, "inputs": 16, "outputs": 16})): the register values as
    plain outputs; they hold a step's values when the last beat of its output frame is
    transferred. ``inputs`` and ``outputs`` are the frame sizes in elements (I of layer 0,
    H_out): constants in a baked core, the loaded model's in a run-time core (a board link
    sizes its frames from them).
``m_axi``: Out(AxiReadSignature(bus_bits)), only with ``--weights axi``: the AXI4 read
    master (``m_axi__arvalid``, ``m_axi__araddr``, ..., ``m_axi__rdata``).

Register map (word addresses; the contract is :mod:`drnn_hw.contract`) — 0 ID, 1 SIZES, 2 SHAPE,
3 CTRL (W: bit0 RESET_STATE, bit1 CLEAR_STEPS, bit2 CLEAR_ERROR), 4 STATUS (bit0 BUSY,
bit1 FRAME_ERROR, bit2 RESET_PENDING), 5 THETA_X, 6 THETA_H, 7 CYCLES_LAST, 8 NNZ_DX_LAST,
9 NNZ_DH_LAST, 10 STEPS, 11 LAYERS, 12 H0 (W), 13 MAXIMA, 14 FORMATS0, 15 FORMATS1,
16 LOAD_ADDR (W), 17 LOAD_DATA (W), 18 WEIGHT_BASE (RW, ``--weights axi`` only), 19 KEPT
(a compressed core), 20 PRESCAN_LAST, and per layer l from word 32 + 8·l: LAYER_SIZES,
LAYER_THETA_X, LAYER_THETA_H, LAYER_CYCLES, LAYER_NNZ_DX, LAYER_NNZ_DH, LAYER_COUNTS,
LAYER_H_COLUMN (a run-time core: LAYERS and the layer's SIZES, COUNTS and H_COLUMN writable).
Thresholds are sampled when a step's scan starts (every layer's; for a step scanned ahead,
below, during the AP of the step before). RESET_STATE is applied in idle before the next step
starts (it takes ΣNB + 5 cycles, while the delta memories take their biases back; STATUS
shows RESET_PENDING until then; the same follows the clock domain's reset): write it after
the last output frame of a sequence, before the next sequence's first frame (a frame already
scanned ahead when it is written runs first, on the old state); then optionally ΣH_l H0
writes (the initial state). Without RESET_STATE the state (x̂, ĥ, h, M of every layer)
carries over to the next frame, so a sequence may be sent in chunks.

Layer descriptors (:data:`drnn_hw.layer_map.LayerDescriptor`): the encoder, the queue, the AP
and this top read each layer's sizes and counts (I_l, H_l, NB_l, WX_l, WH_l, the weight address
of its h columns) as signals, and the memories' layout (every base and depth) from the layout
:func:`~drnn_hw.layer_map.layer_map`. A baked core's layout is the bundle's and its
descriptors are constants, which synthesis folds. A *run-time core* (``maxima``,
``drnn generate --weights runtime``) lays its memories out for the maxima (every layer slot
I_max + H_max columns, H_max rows) and holds the descriptors, and L, in registers the host
writes; its weight banks and bias memories (the RESET_STATE refill source) are writable over
LOAD_ADDR / LOAD_DATA while no step runs (the contract's *Loading*; :mod:`drnn_hw.load` is the
host's sequence). The σ and tanh tables stay ROMs: they are a function of the formats, which
a loaded model must share with the core (a bundle's tables are checked against its formats),
so writable tables would cost a second block RAM per table row (Yosys maps a written table
read on two ports to two DP16KD) for contents that cannot differ. A step on a run-time core takes the cycles of a
baked core of the loaded sizes (:mod:`drnn_hw.cycle_model` on I_l, H_l); the differences are
outside the step: the input FIFO holds 2·WX_max beats, and with ``maxima.layers`` > 1 the
idle cycle after a commit (below) follows every step, also of a one-layer model.
Weight bank writes take read port 0's address (muxed while a word is written), so each bank
keeps the block RAMs of the baked core's (Yosys adds soft logic for the read-during-write
behaviour it cannot prove unused).

Stacked layers (:mod:`drnn_hw.layer_map`): a step runs one *pass* per layer, in order, each the
single-layer schedule below on the layer's sizes, the delta memories' and weight banks' region
of the layer, and its x̂/ĥ; layer l > 0 takes layer l−1's new h as its x straight from the
hidden-state registers. ``LAYER_GAP`` idle cycle(s) separate two passes, and (L > 1 only) one
idle cycle follows a commit before the next step can start (not counted in its cycles).

Step (see :mod:`drnn_hw.cycle_model`; ``cycles = SCAN_LATENCY + A0 + NB + AP_LATENCY``):

1. start: idle, no reset pending, the input FIFO (2·WX beats) holds a full frame, no register
   write in the previous cycle; cycle 0 (or, scanned ahead, below, the cycle after the
   previous commit).
2. scan (:class:`~drnn_hw.delta_encoder.DeltaEncoder`) feeds the delta queue
   (:class:`~drnn_hw.delta_queue.DeltaQueue`), which issues groups of K deltas to the weight
   bank and the three :class:`~drnn_hw.mxv.MxVChannel` (NB cycles per group).
3. AP (:class:`~drnn_hw.activation.ActivationPipeline`) at ``A0 = max(S, D + mxv_drain(NB))``
   (both counted from the first schedule cycle), once every block's last accumulation has
   landed by the time the AP reads it.
4. commit, in the cycle the AP writes the last block: h (with that block taken from the AP) is
   copied into the output holding buffer (waits while the previous frame is still there;
   those cycles are not counted), the status registers update. The output frame's beats
   whose blocks were written earlier may already have left, straight from h.

The next step's scan (issue #10's step overlap, the *prescan*; a core with
``shape.step_overlap``, the default; without it, ``--no-step-overlap``, the core is the one
before and PRESCAN_LAST reads 0): the encoder, the queue and the DRAM fetch (the *front*) have nothing
left of a pass once its AP has started, and are cleared in the cycle after. From then on, while the step's last pass is in its AP, an x frame that is
waiting (on the terms of an idle start: no RESET_STATE pending, no register write in the
cycle before) starts the next step's scan of layer 0 a cycle later (``pre``). That scan takes
its x windows, holds before its h windows (the encoder's ``h_hold``: h_t is still being
written) and the queue holds its groups (the AP still borrows the multipliers and reads the
delta memories), until the commit; the scanned step then runs on, its cycle 0 the cycle
after the commit, its h windows fetched from its cycle 1. PRESCAN_LAST shows how many cycles
before its cycle 0 the step's scan started (0: it started idle), and its cycles are
:func:`~drnn_hw.cycle_model.step_cycles` with that ``prescan``; with frames back to back it is
:func:`~drnn_hw.cycle_model.streamed_prescan`, ``NB_L + AP_LATENCY − 2``. A stacked core's
later layers take layer l−1's new h, so only layer 0 is scanned ahead.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .activation import AP_ISSUE, AP_STAGES, ActivationPipeline
from .activation_lstm import LSTM_AP_STAGES, LSTMActivationPipeline, ap_a_bits
from .axi_weight_fetch import AxiReadSignature, AxiWeightFetch
from .bundle import ModelBundle
from .cycle_model import (AP_LATENCY, AP_LATENCY_LSTM, LAYER_GAP, MXV_WRITE, SCAN_LATENCY,
                          CoreShape, mxv_drain)
from .delta_encoder import DeltaEncoder
from .delta_queue import DeltaQueue
from .contract import (CELL_CODES, CSRSignature, LoadMemory, StatusSignature, frame_layout,
                       load_word_bits)
from .hdl_arith import refuse
from .layer_map import MAX_LAYERS, Maxima, descriptor_values, layer_map
from .mxv import MXV_STAGES, MxVChannel
from .registers import RegisterFile
from .weight_bank import CELL_CHANNELS, WeightBank

__all__ = ["DeltaRNNCore", "DeltaGRUCore"]

#: The scan's fetch, test and pick stages (DeltaEncoder F, T and P, registered before B).
_SCAN_PIPELINE = 3
#: Issue slot -> weight bank read (one cycle) -> the channel's stages -> write into M.
_MXV_PIPELINE = 1 + MXV_STAGES
#: The AP's registered issue, then its stages after the last issue; the commit shares the
#: last block's write cycle.
_AP_TAIL = AP_ISSUE + AP_STAGES
if (SCAN_LATENCY, MXV_WRITE, AP_LATENCY) != (_SCAN_PIPELINE, _MXV_PIPELINE, _AP_TAIL):
    raise ImportError(f"cycle_model SCAN_LATENCY/MXV_WRITE/AP_LATENCY = {SCAN_LATENCY}/"
                      f"{MXV_WRITE}/{AP_LATENCY}, but the RTL takes {_SCAN_PIPELINE}/"
                      f"{_MXV_PIPELINE}/{_AP_TAIL}")
if AP_LATENCY_LSTM != AP_ISSUE + LSTM_AP_STAGES:
    raise ImportError(f"cycle_model AP_LATENCY_LSTM = {AP_LATENCY_LSTM}, but the LSTM AP takes "
                      f"{AP_ISSUE + LSTM_AP_STAGES}")


#: Units of h one register of the delayed RESET_STATE clear clears.
H_PER_CLEAR = 16


class DeltaRNNCore(wiring.Component):
    """The delta-RNN accelerator for one model bundle, GRU or LSTM (see the module docstring).

    Parameters
    ----------
    bundle : ModelBundle
        Cell (``"gru"``: channels r, z, n; ``"lstm"``: channels i, f, g, o), sizes I, H
        (every layer's), formats, weights, biases, LUTs, threshold reset values.
    shape : CoreShape, optional
        P (rows), K (columns), E (scan); :data:`~drnn_hw.cycle_model.PRESETS` ``"default"``
        when omitted.
        ``shape.weight_format == "compressed"``: the compressed-weight core (module
        docstring) for a bundle whose layers carry a balance pattern for the core's P (a
        layer without one is stored as pairs with kept = NB).
    maxima : Maxima, optional
        Build a run-time core for any model of the bundle's cell and formats within these
        sizes (the bundle gives its initial contents); ``shape.out_layers`` must be
        ``"last"``. P is then ``min(rows, maxima.hidden)``. With compressed weights
        ``maxima.kept`` is the pairs per column of every slot (module docstring).

    Ports
    -----
    x : In(stream.Signature(frame_layout(act_bits, E)))
        Input frames, ``WX = ceil(I/E)`` beats per timestep.
    h : Out(stream.Signature(frame_layout(act_bits, E)))
        Output frames, ``WH = ceil(H_out/E)`` beats per timestep: the last layer's h, or with
        ``shape.out_layers == "all"`` every layer's (layer 0's first, ``H_out = ΣH_l``).
    csr : In(CSRSignature)
        The register bus (:mod:`drnn_hw.contract`).
    status : Out(StatusSignature)
        The status registers as plain outputs.

    (Details, Verilog names and the step's schedule in the module docstring.)

    Raises
    ------
    ValueError
        From the blocks, naming the parameter, for a bundle or shape they cannot build
        (e.g. a bundle with no hidden units), more than
        :data:`~drnn_hw.layer_map.MAX_LAYERS` layers, a cell other than "gru" and "lstm",
        or (run-time core) a bundle beyond ``maxima`` (naming the limit); a compressed
        core for a pattern balanced for another P, or (run-time) ``maxima.kept`` outside
        [the initial bundle's largest kept, ceil(H_max/P)].
    """

    def __init__(self, bundle: ModelBundle, shape: CoreShape | None = None, *,
                 maxima: Maxima | None = None):
        shape = shape or CoreShape()
        self.maxima = maxima
        self.bundle, self.shape = bundle, shape
        self.fmts = bundle.formats
        if bundle.cell not in CELL_CHANNELS:
            raise refuse(self, f"cell {bundle.cell!r}: the core computes the cells "
                               f"{', '.join(CELL_CHANNELS)}")
        self.cell = bundle.cell
        if bundle.num_layers > MAX_LAYERS:
            raise refuse(self, f"{bundle.num_layers} stacked layers: a core holds at most "
                               f"{MAX_LAYERS}")
        model_hidden = [layer.hidden_size for layer in bundle.layers]
        if min(model_hidden) < 1:
            raise refuse(self, f"bundle must have hidden units (H ≥ 1), got H = "
                               f"{min(model_hidden)}")
        if maxima is None:
            # A baked core: the layout is the bundle's own.
            self.hidden = model_hidden
            self.I, self.H = bundle.input_size, bundle.hidden_size
        else:
            # A run-time core: the layout is the maxima's, the bundle only its initial model.
            if shape.weights == "axi":
                raise refuse(self, "weights in DRAM (--weights axi) and run-time loading into "
                                   "on-chip banks (--weights runtime) are two different cores")
            why = maxima.refuse(bundle.input_size, model_hidden)
            if why:
                raise refuse(self, f"the initial bundle does not fit: {why}")
            if shape.out_layers != "last":
                raise refuse(self, "a run-time core outputs the last layer's h only "
                                   f"(out_layers = {shape.out_layers!r})")
            self.hidden = [maxima.hidden] * maxima.layers
            self.I, self.H = maxima.inputs, maxima.hidden
        self.L = len(self.hidden)
        # With H < P the rows past H would never hold a weight: build only min(P, H) of them
        # (NB = 1 either way, so the schedule is the same; Yosys would remove them anyway).
        self.P, self.K, self.E = min(shape.rows, max(self.hidden)), shape.columns, shape.scan
        self.map = layer_map(self.I, self.hidden, self.P, self.E)
        self.NB = self.map[-1].blocks
        #: A compressed core's (value, row) pairs per slice per column of every layer
        #: (:func:`~drnn_hw.spatial.layer_kept`), None for a dense core.
        self.kept = None
        #: A compressed run-time core's pairs per column of every layer slot (the banks'
        #: capacity, ``maxima.kept`` or the initial bundle's largest kept), else None.
        self.kept_max = None
        self.compressed = shape.weight_format == "compressed"
        if self.compressed:
            from dataclasses import replace

            from .spatial import layer_kept
            try:
                self.kept = [layer_kept(ly, replace(shape, rows=self.P))
                             for ly in bundle.layers]
            except ValueError as e:
                raise refuse(self, f"--weight-format compressed: {e}") from None
            if maxima is not None:
                # The capacity is fixed at generation: every slot holds kept_max pairs per
                # column (the bank's depth), a loaded layer uses its own kept_l of them (the
                # KEPT register), so its step costs the spatial model on kept_l, not kept_max.
                nb_max = self.map[0].blocks
                kept_max = max(self.kept) if maxima.kept is None else maxima.kept
                if not max(self.kept) <= kept_max <= nb_max:
                    raise refuse(self, f"--max-kept = {kept_max}: must lie in [the initial "
                                       f"bundle's kept {max(self.kept)}, NB = ceil(--max-hidden"
                                       f" / P) = {nb_max}]")
                self.kept_max = kept_max
        #: The weight banks' issue-slot layout (a compressed core: ``kept`` words per column,
        #: a run-time one ``kept_max`` in every slot), else None.
        self.pair_map = None
        if self.compressed:
            slot_kept = self.kept if maxima is None else [self.kept_max] * self.L
            self.pair_map = layer_map(self.I, self.hidden, self.P, self.E, slot_kept)
        # The layer descriptors the core starts with: the bundle's, placed in the layout (a
        # run-time core's slots past the bundle's layers: full-size layers, never run until
        # LAYERS says so).
        self.desc_init = descriptor_values(bundle.input_size, model_hidden, self.P, self.E,
                                           layout=self.map)
        for s in self.map[len(self.desc_init):]:
            self.desc_init.append({"inputs": s.inputs, "hidden": s.hidden, "blocks": s.blocks,
                                   "x_windows": s.x_windows, "h_windows": s.h_windows,
                                   "h_column": s.column_base + s.inputs * s.blocks})
        #: A compressed core's kept_l of every layer slot as the KEPT register starts.
        self.kept_init = None
        if self.compressed:
            # The weight addresses are the issue-slot layout's: LAYER_H_COLUMN is its h column
            # (LAYER_COUNTS.blocks stays NB_l, the AP's).
            self.kept_init = self.kept + [self.kept_max] * (self.L - len(self.kept))
            own = descriptor_values(bundle.input_size, model_hidden, self.P, self.E,
                                    layout=self.pair_map, blocks=self.kept)
            for l, (d, s) in enumerate(zip(self.desc_init, self.pair_map)):
                d["h_column"] = own[l]["h_column"] if l < len(own) else \
                    s.column_base + s.inputs * s.blocks
        #: Bits of a compressed core's pair index (its global delta-memory block), else 0.
        self.index_bits = 0
        if self.compressed:
            from .mxv_compressed import index_bits
            self.index_bits = index_bits(self.map[-1].block_base + self.map[-1].blocks)
        self.model_layers = len(model_hidden)
        #: Bits of the widest loadable word (a run-time core's LOAD_DATA words).
        self.load_bits = None
        if maxima is not None:
            self.load_bits = max(self.load_word_bits(code) for code in self.load_memories())
        # The output frame: the last layer's h, or every layer's (shape.out_layers).
        self.H_out = shape.output_units(self.hidden)
        self.WX, self.WH = self.map[0].x_windows, math.ceil(self.H_out / self.E)
        frame = frame_layout(self.fmts.act_bits, self.E)
        self.axi = shape.weights == "axi"
        super().__init__({
            "x": In(stream.Signature(frame)),
            "h": Out(stream.Signature(frame)),
            "csr": In(CSRSignature),
            "status": Out(StatusSignature),
            **({"m_axi": Out(AxiReadSignature(shape.bus_bits))} if self.axi else {}),
        })

    def load_word_bits(self, code: int) -> int:
        """Bits of a word of loadable memory ``code`` (a compressed core's weight words hold
        P (value, block) pairs)."""
        return load_word_bits(code, rows=self.P, fmts=self.fmts, index_bits=self.index_bits)

    def load_memories(self) -> list[int]:
        """The :class:`~drnn_hw.contract.LoadMemory` codes of a run-time core's memories."""
        gates = len(CELL_CHANNELS[self.cell])
        return ([LoadMemory.WEIGHTS + c for c in range(gates)] +
                [LoadMemory.BIAS + r for r in range(4)])

    def elaborate(self, platform):
        m = Module()
        b, fmts, lm, L = self.bundle, self.fmts, self.map, self.L
        runtime = self.maxima is not None
        I, H, P, K, E = self.I, self.H_out, self.P, self.K, self.E
        WX, WH = self.WX, self.WH
        act = signed(fmts.act_bits)
        frame = frame_layout(fmts.act_bits, E)
        hidden = self.hidden if L > 1 else H
        h_total = sum(self.hidden)
        # The first unit of the hidden state the output frame carries.
        out_base = h_total - H

        running = Signal()          # a step is in progress (after its cycle 0)
        # Issue #10's step overlap (``shape.step_overlap``; "the next step's scan" below).
        # Without it the core is the one before it, netlist for netlist.
        ov = self.shape.step_overlap

        # --- blocks -------------------------------------------------------------------------
        pad = [0] * (L - self.model_layers)
        m.submodules.regs = regs = RegisterFile(
            inputs=I, hidden=hidden, rows=self.shape.rows, columns=K, scan=E,
            act_bits=fmts.act_bits, theta_x=[int(ly.theta_x) for ly in b.layers] + pad,
            theta_h=[int(ly.theta_h) for ly in b.layers] + pad, cell=CELL_CODES[self.cell],
            descriptors=self.desc_init, formats=fmts, runtime=runtime,
            layers=self.model_layers,
            load_bits={c: self.load_word_bits(c) for c in self.load_memories()}
            if runtime else None, weight_base=self.axi, kept=self.kept_init,
            prescan=self.shape.step_overlap,
            kept_max=self.kept_max)
        wiring.connect(m, wiring.flipped(self.csr), regs.csr)
        # The layer descriptors every block reads (a baked core's are constants) and the
        # number of layers a step runs.
        desc, n_layers = regs.desc, regs.layers

        # Two frames of x, read asynchronously (the memory's output feeds the encoder's F
        # stage). A buffered FIFO (head beat from a register, 2·WX + 1 beats), which took the
        # 80 MHz build's critical path off this read, left the demo core's 80 MHz placement
        # unroutable (issue #10's eighteenth round), so it was taken out again.
        m.submodules.x_fifo = x_fifo = fifo.SyncFIFO(width=frame.size, depth=2 * WX)
        # The issue slot's weight words: a register per weight memory of the block RAM bank
        # (IssueSignature.word); the AXI fetch reads its column buffer from one.
        word_copies = 1 if self.axi else len(CELL_CHANNELS[self.cell])
        if self.compressed:
            # A compressed core's columns are kept_l words (pairs) long: the encoder's weight
            # addresses and the queue's issue slots follow that layout, the delta memories
            # and the AP the NB_l blocks.
            slot_kept = [s.blocks for s in self.pair_map]
            m.submodules.encoder = enc = DeltaEncoder(fmts, I, hidden, rows=P, columns=K,
                                                      scan=E, slots=slot_kept, hold=ov)
            m.submodules.queue = queue = DeltaQueue(
                enc.entry, columns=K, blocks=slot_kept,
                capacity=max(s.inputs + s.hidden for s in lm), lookahead=self.axi,
                copies=word_copies, registered_writes=L > 1, hold=ov)
        else:
            m.submodules.encoder = enc = DeltaEncoder(fmts, I, hidden, rows=P, columns=K,
                                                      scan=E, hold=ov)
            m.submodules.queue = queue = DeltaQueue(
                enc.entry, columns=K, blocks=[s.blocks for s in lm],
                capacity=max(s.inputs + s.hidden for s in lm), lookahead=self.axi,
                copies=word_copies, registered_writes=L > 1, hold=ov)
        if self.axi:
            # Weights in DRAM: the fetch takes the queue's look-ahead and holds its issue
            # until a group's columns are in the buffer.
            sh = self.shape
            m.submodules.weights = bank = AxiWeightFetch(
                b, rows=P, columns=K, entry_layout=enc.entry, count=queue.depth * K + 1,
                bus_bits=sh.bus_bits, outstanding=sh.outstanding, burst=sh.burst,
                buffer=sh.buffer, kept=self.kept)
            m.d.comb += [bank.written.eq(queue.written), queue.ahead_index.eq(bank.ahead_index),
                         bank.ahead_entry.eq(queue.ahead_entry),
                         bank.base.eq(regs.weight_base)]
            m.d.comb += queue.hold.eq(bank.hold)
            wiring.connect(m, wiring.flipped(self.m_axi), bank.axi)
        elif self.compressed:
            m.submodules.weights = bank = WeightBank(
                b, rows=P, columns=K, addr_bits=enc.addr_bits, kept=self.kept,
                layout=lm if runtime else None, load_bits=self.load_bits,
                kept_max=self.kept_max)
        else:
            m.submodules.weights = bank = WeightBank(
                b, rows=P, columns=K, addr_bits=enc.addr_bits, layout=lm if runtime else None,
                load_bits=self.load_bits)
        if self.compressed:
            # The encoder's addresses and the queue's issue slots count kept_l words per
            # column (the KEPT register); the rest of the descriptor is the layer's (its
            # LAYER_H_COLUMN already the issue-slot layout's). Constants in a baked core.
            for block in (enc, queue):
                for l in range(L):
                    for name in ("inputs", "hidden", "x_windows", "h_windows", "h_column"):
                        m.d.comb += block.desc[l][name].eq(desc[l][name])
                    m.d.comb += block.desc[l].blocks.eq(regs.kept[l])
        else:
            for block in (enc, queue):
                m.d.comb += block.desc.eq(desc)

        def biases(c):
            # Bias row c of every layer slot (the bundle's layers, zeros past them).
            out = []
            for l, s in enumerate(lm):
                row = [int(v) for v in b.layers[l].bias[c]] if l < len(b.layers) else []
                out += row + [0] * (s.hidden - len(row))
            return out

        def loads(*rows):
            if not runtime:
                return {}
            return {"load_codes": [LoadMemory.BIAS + r for r in rows],
                    "load_bits": self.load_bits}

        lstm = self.cell == "lstm"
        chans = {}
        if self.compressed:
            from .mxv_compressed import CompressedMxVChannel

            slots = sum(s.blocks for s in self.pair_map)
            fault = getattr(self, "_fault", None)     # tests only (negative controls)
            names = CELL_CHANNELS[self.cell]
            for c, name in enumerate(names):
                split = not lstm and name == "n"
                chans[name] = CompressedMxVChannel(
                    fmts, inputs=I, hidden=hidden, rows=P, columns=K, bias=biases(c),
                    bias_h=biases(3) if split else None,
                    ap_a_bits=ap_a_bits(fmts) if lstm else None, slots=slots, fault=fault,
                    **loads(*((c, 3) if split else (c,))))
        elif lstm:
            # One channel per gate, one delta memory each; the multipliers' first operand is
            # as wide as c (the AP's f·c).
            for c, name in enumerate(CELL_CHANNELS["lstm"]):
                chans[name] = MxVChannel(fmts, inputs=I, hidden=hidden, rows=P, columns=K,
                                         bias=biases(c), ap_a_bits=ap_a_bits(fmts),
                                         **loads(c))
        else:
            for c, name in enumerate(("r", "z")):
                chans[name] = MxVChannel(fmts, inputs=I, hidden=hidden, rows=P, columns=K,
                                         bias=biases(c), **loads(c))
            chans["n"] = MxVChannel(fmts, inputs=I, hidden=hidden, rows=P, columns=K,
                                    bias=biases(2), bias_h=biases(3), **loads(2, 3))
        for name, ch in chans.items():
            m.submodules[f"mxv_{name}"] = ch
        first = next(iter(chans.values()))
        ap_class = LSTMActivationPipeline if lstm else ActivationPipeline
        m.submodules.ap = ap = ap_class(fmts, hidden=hidden, rows=P,
                                        acc_width=first.acc_width,
                                        sigmoid_lut=b.sigmoid_lut, tanh_lut=b.tanh_lut)
        m.d.comb += ap.desc.eq(desc)
        if runtime:
            # Loads only while no step runs (a write takes a read port's address).
            for block in (bank, *chans.values()):
                m.d.comb += [block.load.we.eq(regs.load.we & ~running),
                             block.load.memory.eq(regs.load.memory),
                             block.load.addr.eq(regs.load.addr),
                             block.load.data.eq(regs.load.data)]

        # --- state ----------------------------------------------------------------------------
        # Every layer's hidden state, concatenated (layer l's units from lm[l].h_base).
        h_state = [Signal(act, name=f"h{j}") for j in range(h_total)]
        ap_started = Signal()
        ap_done = Signal()          # the pass's new h is complete, waiting to commit
        reset_pending = Signal()
        frame_error = Signal()
        cycle = Signal(32)          # the step's cycle index (wait cycles not counted)
        # The next step's scan (issue #10's step overlap, the *prescan*;
        # ``cycle_model.scan_schedule``). Once the AP of a step's last pass has started, the
        # encoder and the queue have nothing left of it (they are cleared the cycle after,
        # ``ap_go_q``), so an x frame that is waiting starts the next step's scan of layer 0
        # then (``pre_go``). ``pre``: that scan runs and this step has not committed; it
        # holds the scan before its h windows (h_t is not written yet) and the queue's groups
        # (the AP still uses the multipliers and reads the delta memories) until the commit,
        # from which the scanned step is the running one, its cycle 0 the cycle after.
        # ``pre_count``: cycles since that scan started; ``step_prescan``: the running step's
        # (0 when it started idle), shown in PRESCAN_LAST from its commit. Without the step
        # overlap none of them exists (``pre`` and PRESCAN_LAST are 0).
        ap_go = Signal()            # the pass's AP starts (A0)
        pre = pre_go = prescan_last = Const(0)
        if ov:
            ap_go_q = Signal()
            pre, pre_go = Signal(name="pre"), Signal(name="pre_go")
            pre_count, step_prescan = Signal(32), Signal(32)
            prescan_last = Signal(32)
            # A pass's kept deltas, taken from the encoder as its front is cleared.
            pass_nnz_dx, pass_nnz_dh = Signal(16), Signal(16)
        else:
            pass_nnz_dx, pass_nnz_dh = enc.nnz_dx, enc.nnz_dh
        # The output (see "output" below). out_full: the output register holds a beat, out_beat
        # its index in the frame (while empty: the next beat's), out_last: it is the frame's
        # last; hold_valid: the frame being sent was committed, its values are in ``hold``
        # (before its commit a frame's beats come straight from the hidden state).
        out_full = Signal()
        hold_valid = Signal()
        # Copies of them, one per element of a beat, each enabling and selecting the output
        # registers of its element: out_full itself reached all H·act_bits holding registers,
        # one net (17.1 ns of routing on the ULX3S demo build).
        out_full_e = [Signal(name=f"out_full{e}_dup") for e in range(min(E, H))]
        hold_valid_e = [Signal(name=f"hold_valid{e}_dup") for e in range(min(E, H))]
        step_done = Signal()        # the step's last pass is done: it commits unless hold_valid
        out_beat = Signal(range(max(WH, 2)))
        # ... and of the beat counter, one per element: each selects its element's next window
        # (one counter selected all E·act_bits window multiplexers).
        out_beat_e = [Signal.like(out_beat, name=f"out_beat{e}_dup") for e in range(min(E, H))]
        # ... and, beside each, whether its beat is the frame's last (``out_beat == wh - 1``,
        # worked out as the counter moves): with the compare behind it, each copy's next state
        # was four LUT levels from the link's ready (12.9 ns on the ULX3S at 75 MHz, #10).
        out_last = Signal(name="out_last")
        out_last_e = [Signal(name=f"out_last{e}_dup") for e in range(min(E, H))]
        hold = [Signal(act, name=f"hold{j}") for j in range(H)]
        beat = [Signal(act, name=f"beat{e}") for e in range(min(E, H))]   # the h payload
        steps = Signal(32)
        cycles_last = Signal(32)
        nnz_dx_last = Signal(16)
        nnz_dh_last = Signal(16)

        # Start conditions from registers (``start`` below is worked out from their next
        # values). frame_ready may be
        # one cycle stale, which is safe: it only matters when idle, and the last pop of a step
        # is many cycles before its commit. A step starts no earlier than the second cycle
        # after a register write, so the encoder's copy of the thresholds (taken in idle
        # cycles) is the registers' value at the start.
        frame_ready = Signal()
        csr_wrote = Signal()
        m.d.sync += [frame_ready.eq(x_fifo.r_level >= desc[0].x_windows),
                     csr_wrote.eq(self.csr.w_stb)]
        start = Signal()            # a step starts (layer 0's pass)
        pass_start = Signal()       # a layer's pass starts
        pass_start_n = Signal()     # ... in the next cycle (the encoder registers it per element)
        layer_done = Signal()       # the AP has written the pass's last block (now or before)
        commit = Signal()           # the step ends (the last layer's pass is done)
        apply_reset = Signal()
        idle = ~running
        # A stacked core also waits one cycle after a commit: the encoder loads layer 0's
        # window counters and threshold while idle with ``layer`` back at 0 (as between layers).
        after_commit = Const(0)
        if L > 1:
            after_commit = Signal()
            m.d.sync += after_commit.eq(commit)
        # RESET_STATE takes effect in idle: x̂, ĥ and h are cleared in one cycle, the delta
        # memories take their biases back over the next bias_load_cycles (reset_busy).
        # (Also after the domain's reset, which the delta memories' contents do not see.)
        fill = first.bias_load_cycles
        reset_busy = Signal(init=1)
        reset_left = Signal(range(fill + 1), init=fill)
        m.d.comb += [
            # (A RESET_STATE during the bias fill restarts it.)
            apply_reset.eq(idle & reset_pending),
            layer_done.eq(ap.done | ap_done),
        ]
        # ``start`` is a register: the AND of its six terms, each worked out from the value
        # the term's own register takes at this edge (below: running, reset_pending,
        # reset_busy, frame_ready, csr_wrote, after_commit), so it equals
        # ``idle & ~reset_pending & ~reset_busy & frame_ready & ~csr_wrote & ~after_commit``
        # in every cycle. Worked out in its own cycle, the AND sat in front of the encoder's
        # fetch enables across the die: the random model's critical path at 80 MHz (12.56 ns,
        # 11.09 of it routing, issue #10's fifteenth round).
        idle_n = ((commit & ~pre) if ov else commit) | (idle & ~start)
        # (A RESET_STATE write also sets reset_pending, but the write itself holds the start.)
        reset_pending_n = reset_pending & ~apply_reset
        reset_busy_n = apply_reset | (reset_busy & (reset_left != 0))
        frame_ready_n = x_fifo.r_level >= desc[0].x_windows
        after_commit_n = commit if L > 1 else Const(0)
        start_n = Signal(name="start_n")   # a step starts in the next cycle
        start_q = Signal(name="start_q")
        m.d.comb += start_n.eq(idle_n & ~reset_pending_n & ~reset_busy_n & frame_ready_n &
                               ~self.csr.w_stb & ~after_commit_n)
        m.d.sync += start_q.eq(start_n)
        m.d.comb += start.eq(start_q)
        probe = getattr(self, "_probe", None)    # tests only: the register against its terms
        if probe is not None:
            spec = Signal(name="start_spec")
            m.d.comb += spec.eq(idle & ~reset_pending & ~reset_busy & frame_ready & ~csr_wrote &
                                ~after_commit)
            probe.update(start=start, start_spec=spec, idle=idle, reset_pending=reset_pending,
                         reset_busy=reset_busy, frame_ready=frame_ready, csr_wrote=csr_wrote,
                         after_commit=after_commit)

        # --- layers ---------------------------------------------------------------------------
        # One pass per layer within the step. Between passes LAYER_GAP idle cycle(s): the
        # encoder loads the next layer's window counters and threshold while idle, with
        # ``layer`` already pointing at it (see DeltaEncoder.layer).
        if L > 1:
            layer = Signal(range(L))
            last_layer = Signal()
            m.d.comb += last_layer.eq(layer == n_layers - 1)
            # With the step overlap, the encoder's, the queue's (and the DRAM fetch's) layer:
            # the pass's, and layer 0 from the start of the last pass's AP, when they may take
            # the next step's scan.
            front_layer = Signal(range(L)) if ov else layer
            for block in (enc, queue) + ((bank,) if self.axi else ()):
                m.d.comb += block.layer.eq(front_layer)
            m.d.comb += ap.layer.eq(layer)
            gap = Signal(LAYER_GAP + 1)     # a shift register: the next pass starts at its end
            next_pass = Signal()            # a non-last layer's pass ends this cycle
            m.d.comb += [next_pass.eq(layer_done & ~last_layer),
                         step_done.eq(layer_done & last_layer),
                         commit.eq(step_done & ~hold_valid),
                         pass_start.eq(start | gap[LAYER_GAP])]
            gap_n = Cat(next_pass, gap[:LAYER_GAP])
            m.d.sync += gap.eq(gap_n)
            m.d.comb += pass_start_n.eq(start_n | gap_n[LAYER_GAP])
            with m.If(next_pass):
                m.d.sync += layer.eq(layer + 1)
            if ov:
                with m.If(next_pass):
                    m.d.sync += front_layer.eq(layer + 1)
                with m.If(ap_go & last_layer):
                    m.d.sync += front_layer.eq(0)
            with m.If(commit):
                m.d.sync += layer.eq(0)
            # The thresholds of a step: the registers' values at its start (layer 0 reads the
            # registers as a single-layer core does; later layers this copy, taken in idle and
            # as the next step's scan starts).
            step_theta_x = Signal.like(regs.theta_x)
            step_theta_h = Signal.like(regs.theta_h)
            with m.If((idle | pre_go) if ov else idle):
                m.d.sync += [step_theta_x.eq(regs.theta_x), step_theta_h.eq(regs.theta_h)]
            # (Array of the elements, not a view index: that would be a wide shifter.)
            later = running & (front_layer != 0) if ov else running
            m.d.comb += [
                enc.theta_x.eq(Mux(later, Array(step_theta_x[l] for l in range(L))[front_layer],
                                   regs.theta_x[0])),
                enc.theta_h.eq(Mux(later, Array(step_theta_h[l] for l in range(L))[front_layer],
                                   regs.theta_h[0])),
            ]
            pass_end = next_pass | commit
            stalled = step_done & hold_valid
        else:
            last_layer = Const(1)
            m.d.comb += [step_done.eq(layer_done), commit.eq(step_done & ~hold_valid),
                         pass_start.eq(start), pass_start_n.eq(start_n),
                         enc.theta_x.eq(regs.theta_x[0]), enc.theta_h.eq(regs.theta_h[0])]
            pass_end = commit
            stalled = step_done & hold_valid
        # The front (encoder, queue, DRAM fetch) is cleared at the end of a pass, or with the
        # step overlap the cycle after its AP started: nothing is left in it then, and the
        # next step's scan may follow.
        front_clear = ap_go_q if ov else pass_end

        # --- the next step's scan -----------------------------------------------------------
        # From the cycle after the last pass's AP started (``ap_started``; the front is cleared
        # in that cycle) up to the cycle before the commit, on the terms an idle start has
        # (a frame, no RESET_STATE pending, no register write in the cycle before the scan).
        if ov:
            m.d.comb += pre_go.eq(ap_started & last_layer & ~pre & ~commit & frame_ready &
                                  ~reset_pending & ~self.csr.w_stb)
            # ``pre`` in the next cycle: set by ``pre_go``, cleared by the commit (below). The
            # queue registers it into its decision (``hold_next``).
            pre_n = Signal(name="pre_n")
            m.d.comb += pre_n.eq(pre_go | (pre & ~commit))
            m.d.sync += pre.eq(pre_n)
            with m.If(pre_go):
                m.d.sync += pre_count.eq(0)
            with m.Elif(pre):
                m.d.sync += pre_count.eq(pre_count + 1)
            m.d.comb += [enc.h_hold.eq(pre), queue.hold_next.eq(pre_n)]

        # --- input ----------------------------------------------------------------------------
        x_head = Signal(frame)
        m.d.comb += [
            x_fifo.w_data.eq(self.x.payload),
            x_fifo.w_en.eq(self.x.valid),
            self.x.ready.eq(x_fifo.w_rdy),
            x_head.eq(x_fifo.r_data),
            x_fifo.r_en.eq(enc.x_pop),
        ]
        with m.If(enc.x_pop & (x_head.last != enc.x_pop_last)):
            m.d.sync += frame_error.eq(1)

        # --- scan -----------------------------------------------------------------------------
        m.d.comb += [
            enc.start_next.eq(pass_start_n | pre_go if ov else pass_start_n),
            enc.clear.eq(front_clear),
            enc.clear_refs.eq(apply_reset),
            enc.x_data.eq(x_head.data),
        ]
        for j in range(h_total):
            m.d.comb += enc.h[j].eq(h_state[j])

        # --- delta queue and MxV ----------------------------------------------------------------
        # Encoder -> queue -> weight bank (one issue slot per cycle) -> the three channels, the
        # slot arriving with its weights one cycle after the issue.
        wiring.connect(m, scheduler=enc.deltas, queue=queue.deltas)
        wiring.connect(m, sequencer=queue.issue, weight_bank=bank.issue)
        m.d.comb += queue.clear.eq(front_clear)
        if self.axi:
            m.d.comb += bank.clear.eq(front_clear)
        for name, ch in chans.items():
            wiring.connect(m, weight_bank=getattr(bank, f"slot_{name}"), channel=ch.slot)
            m.d.comb += ch.load_bias.eq(apply_reset)

        # --- activation pipeline ----------------------------------------------------------------
        # A0: the scan is over, nothing is left to issue, and no slot in the previous
        # mxv_drain(NB) cycles (the AP reads block b no earlier than the last write of it).
        drains = [mxv_drain(s.blocks) for s in lm]
        drain = max(drains)
        drained = Const(1)
        if self.compressed:
            # A pair's row is arbitrary: the last slot may write block 0, as after a one-block
            # column (drnn_hw.spatial: A0 = max(S, D + mxv_drain(1))), in every layer.
            drain = mxv_drain(1)
            slot_hist = Signal(drain)
            m.d.sync += slot_hist.eq(Mux(running | start,
                                         (slot_hist << 1) | queue.issue.valid, 0)[:drain])
            drained = slot_hist == 0
        elif runtime:
            # The loaded layers' NB: any from 1 up.
            drain = mxv_drain(1)
            slot_hist = Signal(drain)
            m.d.sync += slot_hist.eq(Mux(running | start,
                                         (slot_hist << 1) | queue.issue.valid, 0)[:drain])
            nb = desc[0].blocks if L == 1 else Array(d.blocks for d in desc)[layer]
            mask = Const(0, drain)
            for k in range(1, drain + 1):
                mask = Mux(nb == k, (1 << mxv_drain(k)) - 1, mask)
            drained = (slot_hist & mask) == 0
        elif drain:
            slot_hist = Signal(drain)
            m.d.sync += slot_hist.eq(Mux(running | start,
                                         (slot_hist << 1) | queue.issue.valid, 0)[:drain])
            if L == 1:
                drained = slot_hist == 0
            else:
                mask = Array(Const((1 << d) - 1, drain) for d in drains)[layer]
                drained = (slot_hist & mask) == 0
        m.d.comb += ap_go.eq(running & ~ap_started & enc.deltas.done & ~queue.pending & drained)
        with m.If(ap_go):
            m.d.sync += ap_started.eq(1)
        if ov:
            m.d.sync += ap_go_q.eq(ap_go)
            with m.If(ap_go_q):
                m.d.sync += [pass_nnz_dx.eq(enc.nnz_dx), pass_nnz_dh.eq(enc.nnz_dh)]
        # Global block g (layer l's local block bb) holds units h_base + bb·P + p.
        where = [(s, bb) for s in lm for bb in range(s.blocks)]

        def unit(s, bb, p):
            return s.h_base + bb * P + p if bb * P + p < s.hidden else None

        m.d.comb += ap.start.eq(ap_go)
        # The AP reads the delta memories of all channels. The GRU's borrows the column-0
        # multipliers of r (for r·M_nh) and z (for z·(h − n)) and reads the old h; the LSTM's
        # those of f (f·c), i (i·g) and o (o·tanh(c')), and keeps c itself (cleared with h).
        for name, ch in chans.items():
            wiring.connect(m, ap=getattr(ap, f"read_{name}"), channel=ch.ap_read)
        if lstm:
            for name in ("i", "f", "o"):
                wiring.connect(m, ap=getattr(ap, f"mul_{name}"), channel=chans[name].ap_mul)
            m.d.comb += ap.clear.eq(apply_reset)
        else:
            h_block_in = [Array(h_state[unit(s, bb, p)] if unit(s, bb, p) is not None
                                else Const(0, act) for s, bb in where)[ap.h_block[p]]
                          for p in range(P)]
            wiring.connect(m, ap=ap.mul_r, channel=chans["r"].ap_mul)
            wiring.connect(m, ap=ap.mul_z, channel=chans["z"].ap_mul)
            for p in range(P):
                m.d.comb += ap.h_in[p].eq(h_block_in[p])
        def loaded(s, j):
            """Unit j of slot s is one of the loaded layer's (a baked core's always are)."""
            return Const(j < s.hidden) if not runtime else \
                Const(j) < desc[lm.index(s)].hidden

        # One condition per block rather than one Switch over the blocks: the Verilog backend
        # writes a unit's register with every arm of a Switch that drives it (empty ones
        # included), which made the core's Verilog grow as ΣH² (a 2×512 core did not fit
        # Verilator in 22 GB); a comparison per block is the same decoder in the netlist.
        # Row p's units are written with row p's copy of the write (``ap.h_write``).
        for g, (s, bb) in enumerate(where):
            for p in range(P):
                if unit(s, bb, p) is None:
                    continue
                with m.If(ap.h_write[p][g]):
                    if runtime:
                        # Units past the loaded H_l stay 0 (the output frame's padding, the
                        # next layer's x past I_l).
                        with m.If(loaded(s, bb * P + p)):
                            m.d.sync += h_state[unit(s, bb, p)].eq(ap.h_out[p])
                    else:
                        m.d.sync += h_state[unit(s, bb, p)].eq(ap.h_out[p])
        with m.If(ap.done):
            m.d.sync += ap_done.eq(1)

        # --- step control, counters -------------------------------------------------------------
        with m.If(start):
            m.d.sync += [running.eq(1), cycle.eq(1)]
            if ov:
                m.d.sync += step_prescan.eq(0)
        with m.Elif(running & ~stalled):
            m.d.sync += cycle.eq(cycle + 1)
        with m.If(pass_end):
            m.d.sync += [ap_started.eq(0), ap_done.eq(0)]
        if L > 1:
            # Per layer: the pass's cycles and kept deltas, gathered during the step and shown
            # (with the step's totals) from its commit.
            pass_cycle = Signal(32)
            with m.If(pass_start):
                m.d.sync += pass_cycle.eq(1)
            with m.Elif(running & ~stalled):
                m.d.sync += pass_cycle.eq(pass_cycle + 1)
            if ov:
                with m.If(commit & pre):
                    m.d.sync += pass_cycle.eq(0)    # the scanned step's cycle 0 is the next
            step_cycles = Signal(data.ArrayLayout(32, L))
            step_nnz_dx = Signal(data.ArrayLayout(16, L))
            step_nnz_dh = Signal(data.ArrayLayout(16, L))
            layer_cycles = Signal(data.ArrayLayout(32, L))
            layer_nnz_dx = Signal(data.ArrayLayout(16, L))
            layer_nnz_dh = Signal(data.ArrayLayout(16, L))
            with m.If(pass_end):
                with m.Switch(layer):
                    for l in range(L):
                        with m.Case(l):
                            m.d.sync += [step_cycles[l].eq(pass_cycle + 1),
                                         step_nnz_dx[l].eq(pass_nnz_dx),
                                         step_nnz_dh[l].eq(pass_nnz_dh)]
            with m.If(commit):
                # The last layer's values arrive in this very cycle.
                if runtime:
                    # The last loaded layer is the one that commits; layers past it did not
                    # run (they show 0).
                    for l in range(L):
                        now, ran = n_layers == l + 1, l + 1 < n_layers
                        m.d.sync += [
                            layer_cycles[l].eq(Mux(now, pass_cycle + 1,
                                                   Mux(ran, step_cycles[l], 0))),
                            layer_nnz_dx[l].eq(Mux(now, pass_nnz_dx,
                                                   Mux(ran, step_nnz_dx[l], 0))),
                            layer_nnz_dh[l].eq(Mux(now, pass_nnz_dh,
                                                   Mux(ran, step_nnz_dh[l], 0)))]
                    m.d.sync += [
                        nnz_dx_last.eq(sum(Mux(l + 1 < n_layers, step_nnz_dx[l], 0)
                                           for l in range(L - 1)) + pass_nnz_dx),
                        nnz_dh_last.eq(sum(Mux(l + 1 < n_layers, step_nnz_dh[l], 0)
                                           for l in range(L - 1)) + pass_nnz_dh)]
                else:
                    for l in range(L - 1):
                        m.d.sync += [layer_cycles[l].eq(step_cycles[l]),
                                     layer_nnz_dx[l].eq(step_nnz_dx[l]),
                                     layer_nnz_dh[l].eq(step_nnz_dh[l])]
                    m.d.sync += [layer_cycles[L - 1].eq(pass_cycle + 1),
                                 layer_nnz_dx[L - 1].eq(pass_nnz_dx),
                                 layer_nnz_dh[L - 1].eq(pass_nnz_dh),
                                 nnz_dx_last.eq(sum(step_nnz_dx[l] for l in range(L - 1))
                                                + pass_nnz_dx),
                                 nnz_dh_last.eq(sum(step_nnz_dh[l] for l in range(L - 1))
                                                + pass_nnz_dh)]
            m.d.comb += [regs.layer_cycles.eq(layer_cycles), regs.layer_nnz_dx.eq(layer_nnz_dx),
                         regs.layer_nnz_dh.eq(layer_nnz_dh)]
        else:
            with m.If(commit):
                m.d.sync += [nnz_dx_last.eq(pass_nnz_dx), nnz_dh_last.eq(pass_nnz_dh)]
        with m.If(commit):
            m.d.sync += [
                running.eq(pre), steps.eq(steps + 1), cycles_last.eq(cycle + 1),
            ]
            if ov:
                m.d.sync += prescan_last.eq(step_prescan)
                with m.If(pre):
                    # The scanned step runs on: its cycle 0 is the next (``pre_n`` is 0).
                    m.d.sync += [cycle.eq(0), step_prescan.eq(pre_count + 1)]
            new_h = []
            if runtime:
                # The last loaded layer's h; the block the AP writes in this very cycle (its
                # last, when it has just finished) taken from the AP.
                for j in range(H):
                    src = []
                    for s in lm:
                        g = s.block_base + j // P
                        src.append(Mux(ap.h_we & (ap.h_wblock == g) & loaded(s, j),
                                       ap.h_out[j % P], h_state[s.h_base + j]))
                    new_h.append(src[0] if L == 1 else Array(src)[n_layers - 1])
            else:
                # The last block is written in this very cycle when the AP has just finished.
                last = lm[-1].h_base + (lm[-1].blocks - 1) * P - out_base
                new_h = [h_state[out_base + j] if j < last else
                         Mux(ap.done, ap.h_out[j - last], h_state[out_base + j])
                         for j in range(H)]
        # The holding registers: those of element e's units load with e's copy of the commit
        # (the same condition as ``commit``; one ``commit`` net enabled them all).
        for j in range(H):
            with m.If(step_done & ~hold_valid_e[j % len(hold_valid_e)]):
                m.d.sync += hold[j].eq(new_h[j])
        with m.If(apply_reset):
            m.d.sync += [reset_pending.eq(0), reset_busy.eq(1),
                         reset_left.eq(fill - 1)]
        with m.Elif(reset_busy):
            m.d.sync += reset_left.eq(reset_left - 1)
            with m.If(reset_left == 0):
                m.d.sync += reset_busy.eq(0)
        # h is cleared a cycle after the reset applies, like x̂ and ĥ in the encoder, from one
        # register per H_PER_CLEAR units: ``apply_reset`` is a decision and its net reached
        # 1,777 registers. No step starts in that cycle (reset_busy is set); an H0 write of
        # that cycle still wins (it comes after this clear).
        for i in range(0, len(h_state), H_PER_CLEAR):
            clear_h = Signal(name=f"clear_h{i}_dup")
            m.d.sync += clear_h.eq(apply_reset)
            with m.If(clear_h):
                m.d.sync += [s.eq(0) for s in h_state[i:i + H_PER_CLEAR]]
        with m.If(regs.reset_state):
            m.d.sync += reset_pending.eq(1)
        with m.If(regs.clear_steps):
            m.d.sync += steps.eq(0)
        with m.If(regs.clear_error):
            m.d.sync += frame_error.eq(0)

        # Initial state: each H0 write sets the next unit (layer 0's first); RESET_STATE points
        # back at unit 0. After the reset's clear, so a write in the cycle it applies wins.
        if runtime:
            self._h0_runtime(m, regs, desc, n_layers, h_state)
        else:
            self._h0(m, regs, h_state)

        # --- output -----------------------------------------------------------------------------
        # (A run-time core: as many beats as the last loaded layer's h takes.)
        # A beat leaves as soon as the AP has written every unit it carries, not after the
        # step's commit: the AP writes the blocks of h in order, one per cycle, so the frame's
        # first beats go out while it writes the last ones (issue #10, frame latency;
        # ``cycle_model.output_tail``). ``written`` is one past the last global block the AP
        # wrote in this step (the blocks of a step come in increasing order, layer by layer),
        # back to 0 at the commit; beat w may load once it passes ``need[w]``, the block of
        # the beat's last unit. Before the commit the beat comes from the hidden state (which
        # nothing else writes while the step runs), after it from the holding registers the
        # commit loaded (the next step's AP, RESET_STATE and H0 writes may then change h).
        # The commit waits while a committed frame is still being sent, as before.
        # The payload is a register of one beat, loaded with the next window as a beat leaves
        # or becomes available: the window multiplexer (selected by the beat counter) sits
        # before it, not between it and the consumer (on the ULX3S it was in front of the
        # board link's CRC, a critical path), and the consumer's ready enables these E
        # registers only. In the commit's cycle the last block is not yet in a register: a
        # frame whose first beat needs it takes that beat from the AP (``new_h``), as every
        # frame did before, so no beat leaves later than it did then.
        # Each element's copies (full, beat, last, hold_valid) move on their own copy of the
        # same conditions, so they equal out_full, out_beat, out_last and hold_valid in every
        # cycle.
        wh = WH if not runtime else Array(d.h_windows for d in desc)[n_layers - 1]
        where_index = {(s.h_base, bb): g for g, (s, bb) in enumerate(where)}
        written = Signal(range(len(where) + 1))
        with m.If(ap.h_we):
            m.d.sync += written.eq(ap.h_wblock + 1)
        with m.If(commit):
            m.d.sync += written.eq(0)
        if not runtime:
            def block_of(u):
                s = next(s for s in lm if s.h_base <= u < s.h_base + s.hidden)
                return where_index[(s.h_base, (u - s.h_base) // P)]
            need = [Const(block_of(out_base + min((w + 1) * E, H) - 1),
                          range(max(len(where), 2))) for w in range(WH)]
            # The hidden state's units of the output frame.
            h_out_units = [h_state[out_base + j] for j in range(H)]
        else:
            # The last loaded layer's slot; its NB_l blocks from its first global block.
            # Registered: the descriptors change only while no step runs.
            need = [Signal(range(max(len(where), 2)), name=f"need{w}") for w in range(WH)]
            for w in range(WH):
                per_slot = [Const(where_index[(s.h_base, 0)]) +
                            Mux(desc[i].blocks - 1 < ((w + 1) * E - 1) // P,
                                desc[i].blocks - 1, ((w + 1) * E - 1) // P)
                            for i, s in enumerate(lm)]
                m.d.sync += need[w].eq(per_slot[0] if L == 1 else
                                       Array(per_slot)[n_layers - 1])
            h_out_units = [h_state[lm[0].h_base + j] if L == 1 else
                           Array(h_state[s.h_base + j] for s in lm)[n_layers - 1]
                           for j in range(H)]
        m.d.comb += [self.h.payload.data[e].eq(beat[e]) for e in range(min(E, H))]
        m.d.comb += [self.h.payload.last.eq(out_last), self.h.valid.eq(out_full)]
        copies = [(out_full, out_beat, out_last, hold_valid, None)] + \
            [(f, c, la, hv, e) for e, (f, c, la, hv) in
             enumerate(zip(out_full_e, out_beat_e, out_last_e, hold_valid_e))]
        for full, count, last, hv, e in copies:
            nxt = Mux(full, count + 1, count)       # the next beat to load
            free = ~full | (self.h.ready & ~last)   # the register can take a beat of the frame
            avail = hv | (written > Array(need)[nxt])
            load = free & avail
            bypass = step_done & ~hv & free & (nxt == 0) & ~avail
            with m.If(step_done & ~hv):
                m.d.sync += hv.eq(1)
            with m.If(load | bypass):
                m.d.sync += [full.eq(1), count.eq(nxt), last.eq(nxt == wh - 1)]
                if e is not None:
                    # (Every window of both sources: leaving out those the control never asks
                    # for, hold's beat 0 and h's beats of the last block, saved 288 LUT4 in
                    # the ECP5 estimate, but the random model's ULX3S placement of that
                    # netlist missed 90 MHz; issue #10's thirty-first round.)
                    def window(units):
                        return Array(units[w * E + e] if w * E + e < H else Const(0, act)
                                     for w in range(WH))[nxt]
                    with m.If(bypass):
                        m.d.sync += beat[e].eq(new_h[e])
                    with m.Elif(hv):
                        m.d.sync += beat[e].eq(window(hold))
                    with m.Else():
                        m.d.sync += beat[e].eq(window(h_out_units))
            with m.Elif(full & self.h.ready):
                with m.If(last):
                    m.d.sync += [full.eq(0), count.eq(0), hv.eq(0)]
                with m.Else():
                    m.d.sync += [full.eq(0), count.eq(count + 1)]
        self._status(m, regs, running, frame_error, reset_pending, reset_busy, cycles_last,
                     nnz_dx_last, nnz_dh_last, steps, prescan_last)
        return m

    def _h0_write(self, m, regs, units: int):
        """The H0 write, registered: (write enable, data) a cycle after the register write,
        one copy per :data:`H_PER_CLEAR` units (a list, copy i for units i·H_PER_CLEAR …).

        Why registered: the CSR address decode drove every h unit's enable across the die (the
        ULX3S's critical path, 13.9 ns). Why copies: one data register then reached every
        unit, 12.1 ns of routing on the ULX3S at 80 MHz (#10, eighth round). The write still
        lands before any step can read h (a step starts no earlier than the second cycle after
        a register write, ``csr_wrote``), and after a RESET_STATE's clear in the same cycle, so
        an H0 write still wins over it."""
        copies = []
        for i in range(0, units, H_PER_CLEAR):
            we = Signal(name=f"h0_we{i}_dup")
            data = Signal(self.fmts.act_bits, name=f"h0_data{i}_dup")
            m.d.sync += [we.eq(regs.h0_we), data.eq(regs.h0_data[:self.fmts.act_bits])]
            copies.append((we, data))
        return copies

    def _h0(self, m, regs, h_state):
        h_total = len(h_state)
        # The next unit to write, one counter per copy of the write (each compared with its
        # own units only).
        for i, (we, data) in enumerate(self._h0_write(m, regs, h_total)):
            h0_next = Signal(range(h_total + 1), name=f"h0_next{i}_dup")
            for j in range(i * H_PER_CLEAR, min(h_total, (i + 1) * H_PER_CLEAR)):
                with m.If(we & (h0_next == j)):     # one condition per unit (see the AP's)
                    m.d.sync += h_state[j].eq(data)
            with m.If(we):
                with m.If(h0_next != h_total):
                    m.d.sync += h0_next.eq(h0_next + 1)
            with m.If(regs.reset_state):
                m.d.sync += h0_next.eq(0)

    def _h0_runtime(self, m, regs, desc, n_layers, h_state):
        """H0 writes in a run-time core: the next unit of the loaded layers' (each layer's
        H_l units from its slot's ``h_base``)."""
        lm, L = self.map, self.L
        h0_layer = Signal(range(L + 1))
        h0_unit = Signal(range(max(s.hidden for s in lm) + 1))
        copies = self._h0_write(m, regs, len(h_state))
        we = copies[0][0]
        write = Signal()
        m.d.comb += write.eq(we & (h0_layer < n_layers))
        for l, s in enumerate(lm):      # one condition per unit (see the AP's h write)
            for j in range(s.hidden):
                cwe, data = copies[(s.h_base + j) // H_PER_CLEAR]
                with m.If(cwe & (h0_layer < n_layers) & (h0_layer == l) & (h0_unit == j)):
                    m.d.sync += h_state[s.h_base + j].eq(data)
        with m.If(write):
            hidden = desc[0].hidden if L == 1 else Array(d.hidden for d in desc)[h0_layer]
            with m.If(h0_unit == hidden - 1):
                m.d.sync += [h0_layer.eq(h0_layer + 1), h0_unit.eq(0)]
            with m.Else():
                m.d.sync += h0_unit.eq(h0_unit + 1)
        with m.If(regs.reset_state):
            m.d.sync += [h0_layer.eq(0), h0_unit.eq(0)]

    def _status(self, m, regs, running, frame_error, reset_pending, reset_busy, cycles_last,
                nnz_dx_last, nnz_dh_last, steps, prescan_last):
        m.d.comb += [
            regs.busy.eq(running), regs.frame_error.eq(frame_error),
            regs.reset_pending.eq(reset_pending | reset_busy), regs.cycles_last.eq(cycles_last),
            regs.nnz_dx_last.eq(nnz_dx_last), regs.nnz_dh_last.eq(nnz_dh_last),
            regs.steps.eq(steps),
            self.status.busy.eq(running), self.status.cycles_last.eq(cycles_last),
            self.status.nnz_dx_last.eq(nnz_dx_last), self.status.nnz_dh_last.eq(nnz_dh_last),
            self.status.steps.eq(steps),
            self.status.prescan_last.eq(prescan_last),
        ]
        if self.shape.step_overlap:
            m.d.comb += regs.prescan_last.eq(prescan_last)
        if self.maxima is None:
            m.d.comb += [self.status.inputs.eq(self.bundle.input_size),
                         self.status.outputs.eq(self.H_out)]
        else:
            # A run-time core outputs the last loaded layer's h (out_layers "last" only).
            m.d.comb += [self.status.inputs.eq(regs.desc[0].inputs),
                         self.status.outputs.eq(
                             Array(regs.desc[l].hidden for l in range(self.L))[regs.layers - 1])]


#: The former name of :class:`DeltaRNNCore` (it builds an LSTM core from an LSTM bundle too).
DeltaGRUCore = DeltaRNNCore
