"""The core's external contract, stated once: what a host, a board link or a bus wrapper may
rely on. The gateware (:mod:`.registers`, :mod:`.core`), the host driver and the UART link
(:mod:`drnn_boards`) and the AXI wrapper import it from here. The testbenches in
:mod:`drnn_sim.bus` keep their own, deliberately independent statement of the same map, so a
swapped address or bit is caught by the co-simulation rather than agreed on by both sides.

Register bus (:data:`CSRSignature`, seen from the master): ``addr`` (8 bits, word address),
``w_stb`` + ``w_data`` write in the same cycle; ``r_stb`` with ``addr`` reads, ``r_data`` is
valid the next cycle. 32-bit words; the AXI4-Lite byte address is 4 × the word address.

| word | name | access | layout |
|---|---|---|---|
| 0 | ID | R | :data:`ID_VALUE` = 0x44524E4E ("DRNN") |
| 1 | SIZES | R | :data:`SizesLayout`: I (of layer 0) in [15:0], H (of the last layer) in [31:16] |
| 2 | SHAPE | R | :data:`ShapeLayout`: P in [15:0], K in [19:16], cell in [23:20] (:data:`CELL_CODES`: 0 GRU, 1 LSTM), E in [31:24] |
| 3 | CTRL | W | :data:`CtrlLayout`: bit0 RESET_STATE, bit1 CLEAR_STEPS, bit2 CLEAR_ERROR (strobes) |
| 4 | STATUS | R | :data:`StatusLayout`: bit0 BUSY, bit1 FRAME_ERROR (sticky), bit2 RESET_PENDING |
| 5 | THETA_X | RW | Θx code of layer 0 (activation format, unsigned), sampled when a step starts |
| 6 | THETA_H | RW | Θh code of layer 0 |
| 7 | CYCLES_LAST | R | cycles of the last step, all layers (the cycle-model quantity) |
| 8 | NNZ_DX_LAST | R | kept Δx of the last step, summed over the layers |
| 9 | NNZ_DH_LAST | R | kept Δh of the last step, summed over the layers |
| 10 | STEPS | R | steps completed since reset or CLEAR_STEPS |
| 11 | LAYERS | R (RW) | L, the number of stacked layers (a run-time core: of the loaded model) |
| 12 | H0 | W | one initial-state code (activation format, two's complement in [act_bits-1:0]) |
| 13 | MAXIMA | R | :data:`MaximaLayout`: the layout's I (layer 0) in [11:0], H in [23:12], layers in [28:24], bit 29 RUNTIME (a ``--weights runtime`` core) |
| 14 | FORMATS0 | R | :data:`Formats0Layout`: act_bits, act_frac, w_bits, w_frac (a byte each) |
| 15 | FORMATS1 | R | :data:`Formats1Layout`: acc_bits, lut_bits, sigmoid_range_log2, tanh_range_log2 |
| 16 | LOAD_ADDR | W | :data:`LoadAddrLayout`: the word address in [23:0], the memory (:class:`LoadMemory`) in [31:24] (run-time core only) |
| 17 | LOAD_DATA | W | the next 32 bits of the word at LOAD_ADDR (run-time core only; see *Loading*) |
| 18 | WEIGHT_BASE | RW | only in a core with weights in DRAM (``--weights axi``; reads 0 otherwise): the byte address of the weight image (:mod:`drnn_hw.dram`), a multiple of 4096 (bits [11:0] read 0); write it while idle |
| 19 | KEPT | RW | only in a compressed-weight core (``--weight-format compressed``; reads 0 otherwise): :data:`KeptLayout`, kept_l of the selected layer in [11:0], the core's capacity kept_max in [23:12] (read-only), the selected layer in [28:24]; a write selects its ``layer`` and, in a run-time core, sets that layer's kept_l to ``kept`` when 1 ≤ kept ≤ kept_max (kept = 0 only selects) |
| 20 | PRESCAN_LAST | R | only in a core with the step overlap (``CoreShape.step_overlap``, the default; reads 0 in a ``--no-step-overlap`` core): cycles the last step's scan started before its cycle 0, the cycle after the previous step's commit (issue #10's step overlap: a step whose x frame was waiting scans its x while the AP finishes the step before); 0 for a step that started idle. CYCLES_LAST counts from cycle 0, so the step's cycles are :func:`drnn_hw.cycle_model.step_cycles` with ``prescan`` = this |
| 32 + 8l + 0 | LAYER_SIZES | R (RW) | layer l's I_l and H_l (:data:`SizesLayout`) |
| 32 + 8l + 1 | LAYER_THETA_X | RW | Θx code of layer l (for l = 0 the same register as THETA_X) |
| 32 + 8l + 2 | LAYER_THETA_H | RW | Θh code of layer l (l = 0: THETA_H) |
| 32 + 8l + 3 | LAYER_CYCLES | R | cycles of layer l's pass in the last step |
| 32 + 8l + 4 | LAYER_NNZ_DX | R | kept Δx of layer l in the last step |
| 32 + 8l + 5 | LAYER_NNZ_DH | R | kept Δh of layer l in the last step |
| 32 + 8l + 6 | LAYER_COUNTS | R (RW) | :data:`CountsLayout`: layer l's NB_l in [11:0], WX_l in [21:12], WH_l in [31:22] |
| 32 + 8l + 7 | LAYER_H_COLUMN | R (RW) | weight address of layer l's first h column, less its first block (:func:`drnn_hw.layer_map.descriptor_values`) |

In a run-time core (MAXIMA.runtime = 1) LAYERS, LAYER_SIZES, LAYER_COUNTS and LAYER_H_COLUMN
are writable (:data:`RUNTIME_ACCESS`): they are the layer descriptors
(:data:`drnn_hw.layer_map.LayerDescriptor`) every block reads. A host writes them only while
the core is idle and consistent with each other (``descriptor_values`` computes them); then
RESET_STATE. SIZES shows layer 0's I and the last loaded layer's H.

**Loading** (run-time core): a LOAD_ADDR write selects a memory and a word; each memory word
of W bits (:func:`load_word_bits`) takes ``ceil(W/32)`` LOAD_DATA writes, least significant
32 bits first, and is written when its last part arrives; the word address then increments.
The words: weight bank c (``LoadMemory.WEIGHTS + c``, the P weights of a block of a column,
``w_bits`` each, :func:`drnn_hw.weight_bank.bank_words` in the core's layout) and bias row r
(``LoadMemory.BIAS + r``, r as the bundle's ``bias`` rows: GRU M_r, M_z, M_nx, M_nh, LSTM
M_i, M_f, M_g, M_o; word b = the P biases of global block b, ``acc_bits`` codes). Loads are
ignored while the core is busy; the delta memories take the new biases at the next
RESET_STATE. The σ and tanh tables are not loaded: they are a function of the formats
(FORMATS0/1), which a loaded model must share with the core.

**Compressed weights** (KEPT.max ≠ 0: the banks hold column-balanced (value, block) pairs,
:mod:`drnn_hw.mxv_compressed`): word j of column c of layer l's region is at
``weight_base + c · kept_l + j`` of the issue-slot layout (every layer slot I_max + H_max
columns of kept_max words, :func:`drnn_hw.layer_map.layer_map` with ``blocks = kept_max``),
and holds P pairs, pair p at bits ``[p·(w_bits + index_bits), …)``: the weight, then the
global delta-memory block of its row (``index_bits`` = :func:`drnn_hw.mxv_compressed.index_bits`
of the maxima's ΣNB; :func:`drnn_hw.weight_bank.compressed_bank_words`). LAYER_COUNTS.blocks
stays NB_l (the AP's blocks); LAYER_H_COLUMN is the issue-slot layout's h column
(``column_base + I_l · kept_l``); KEPT holds kept_l, the words per column the encoder's
addresses and the queue's issue slots count. A host writes KEPT for every loaded layer
before RESET_STATE.

Other addresses read 0 and ignore writes (so do the blocks of layers l ≥ L).

**Initial state**: every write to H0 sets the next unit of the hidden state, layer 0's units
first, then layer 1's, ...; a CTRL RESET_STATE write points it back at layer 0's unit 0. So a
host writes RESET_STATE, then ΣH_l codes, then sends the sequence: the first step starts from
h = h0 (x̂ = ĥ = 0, M = the biases: :func:`drnn_hw.golden.initial_state`). Write H0 only
while the core is idle (STATUS.BUSY = 0) and no step is waiting (between sequences). A host reads and writes these words with
:func:`decode_word` and :func:`encode_word` (for example ``decode_word(ShapeLayout, word)``
gives ``{"rows": P, "columns": K, "cell": 0 or 1, "scan": E}``; :data:`CELL_NAMES` names the
cell), so the field positions live in the layouts only.

**Cell** (SHAPE.cell): 0 the delta-GRU, 1 the delta-LSTM. An LSTM core has the same streams,
registers and step protocol; its state also holds the cell state c, which RESET_STATE clears
and H0 writes leave at 0 (c0 = 0: h0 sets h only).

Streams (:func:`frame_signature`): x in and h out carry :func:`frame_layout` beats, E elements
of ``act_bits`` each (two's complement activation codes) and ``last``; element i of a vector
travels in element ``i % E`` of beat ``i // E``, ``last`` marks the frame's final beat. In
Verilog element e is ``payload[act_bits*e +: act_bits]`` and ``last`` is bit ``act_bits*E``.
"""

from __future__ import annotations

from amaranth.hdl import signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ID_VALUE", "ADDR_BITS", "LAYER_BLOCK", "LAYER_STRIDE", "CELL_CODES", "CELL_NAMES",
           "Register", "LayerRegister",
           "layer_register", "ACCESS", "LAYER_ACCESS", "REGISTERS", "SizesLayout",
           "ShapeLayout", "CtrlLayout", "MaximaLayout", "Formats0Layout", "Formats1Layout",
           "CountsLayout", "KeptLayout", "LoadAddrLayout", "LoadMemory", "load_word_bits",
           "load_signature",
           "RUNTIME_ACCESS", "StatusLayout", "CSRSignature", "StatusSignature",
           "frame_layout", "frame_signature", "decode_word", "encode_word"]

#: The ID register's value: "DRNN" in ASCII.
ID_VALUE = 0x44524E4E
#: Width of the register bus's word address.
ADDR_BITS = 8
#: Word address of layer 0's register block, and the distance between two layers' blocks.
LAYER_BLOCK = 32
LAYER_STRIDE = 8


class Register(enum.IntEnum, shape=ADDR_BITS):
    """Word addresses of the registers."""
    ID = 0
    SIZES = 1
    SHAPE = 2
    CTRL = 3
    STATUS = 4
    THETA_X = 5
    THETA_H = 6
    CYCLES_LAST = 7
    NNZ_DX_LAST = 8
    NNZ_DH_LAST = 9
    STEPS = 10
    LAYERS = 11
    H0 = 12
    MAXIMA = 13
    FORMATS0 = 14
    FORMATS1 = 15
    LOAD_ADDR = 16
    LOAD_DATA = 17
    WEIGHT_BASE = 18
    KEPT = 19
    PRESCAN_LAST = 20


class LayerRegister(enum.IntEnum, shape=3):
    """Word offsets in a layer's register block (:func:`layer_register`)."""
    LAYER_SIZES = 0
    LAYER_THETA_X = 1
    LAYER_THETA_H = 2
    LAYER_CYCLES = 3
    LAYER_NNZ_DX = 4
    LAYER_NNZ_DH = 5
    LAYER_COUNTS = 6
    LAYER_H_COLUMN = 7


def layer_register(layer: int, reg: LayerRegister) -> int:
    """Word address of ``reg`` of layer ``layer`` (0 ≤ layer < 28; ValueError otherwise)."""
    if not 0 <= layer < ((1 << ADDR_BITS) - LAYER_BLOCK) // LAYER_STRIDE:
        raise ValueError(f"layer {layer} has no register block")
    return LAYER_BLOCK + LAYER_STRIDE * layer + int(LayerRegister(reg))


#: Access of each register: R (read-only), W (write-only strobes), RW.
ACCESS = {
    Register.ID: "R", Register.SIZES: "R", Register.SHAPE: "R", Register.CTRL: "W",
    Register.STATUS: "R", Register.THETA_X: "RW", Register.THETA_H: "RW",
    Register.CYCLES_LAST: "R", Register.NNZ_DX_LAST: "R", Register.NNZ_DH_LAST: "R",
    Register.STEPS: "R", Register.LAYERS: "R", Register.H0: "W", Register.MAXIMA: "R",
    Register.FORMATS0: "R", Register.FORMATS1: "R", Register.LOAD_ADDR: "W",
    Register.LOAD_DATA: "W", Register.WEIGHT_BASE: "RW", Register.KEPT: "RW",
    Register.PRESCAN_LAST: "R",
}
LAYER_ACCESS = {
    LayerRegister.LAYER_SIZES: "R", LayerRegister.LAYER_THETA_X: "RW",
    LayerRegister.LAYER_THETA_H: "RW", LayerRegister.LAYER_CYCLES: "R",
    LayerRegister.LAYER_NNZ_DX: "R", LayerRegister.LAYER_NNZ_DH: "R",
    LayerRegister.LAYER_COUNTS: "R", LayerRegister.LAYER_H_COLUMN: "R",
}
#: The registers a run-time core makes writable (the layer descriptors and L).
RUNTIME_ACCESS = {"LAYERS": "RW", "LAYER_SIZES": "RW", "LAYER_COUNTS": "RW",
                  "LAYER_H_COLUMN": "RW"}

#: name -> (word address, access), for manifests and simple lookups (the per-layer blocks:
#: :func:`layer_register`, :data:`LAYER_ACCESS`).
REGISTERS = {r.name: (int(r), ACCESS[r]) for r in Register}

#: SIZES (and each LAYER_SIZES): input size I and hidden size H.
SizesLayout = data.StructLayout({"inputs": 16, "hidden": 16})
#: SHAPE: P (rows), K (columns), the cell (:data:`CELL_CODES`), E (scan).
ShapeLayout = data.StructLayout({"rows": 16, "columns": 4, "cell": 4, "scan": 8})
#: SHAPE.cell: the code of each cell, and the cell of each code.
CELL_CODES = {"gru": 0, "lstm": 1}
CELL_NAMES = {code: name for name, code in CELL_CODES.items()}
#: MAXIMA: the core's layout (for a run-time core the generation maxima) and its kind.
MaximaLayout = data.StructLayout({"inputs": 12, "hidden": 12, "layers": 5, "runtime": 1})
#: FORMATS0, FORMATS1: the numeric formats the core computes in (:class:`drnn_hw.numerics.Formats`).
Formats0Layout = data.StructLayout({"act_bits": 8, "act_frac": 8, "w_bits": 8, "w_frac": 8})
Formats1Layout = data.StructLayout({"acc_bits": 8, "lut_bits": 8, "sigmoid_range_log2": 8,
                                    "tanh_range_log2": 8})
#: LAYER_COUNTS: NB_l, WX_l, WH_l.
CountsLayout = data.StructLayout({"blocks": 12, "x_windows": 10, "h_windows": 10})
#: KEPT: a compressed core's pairs per column of the selected layer (kept_l), its capacity
#: (kept_max, read-only: the pairs per column a layer slot holds) and the selected layer.
KeptLayout = data.StructLayout({"kept": 12, "max": 12, "layer": 5})
#: LOAD_ADDR: word address and memory.
LoadAddrLayout = data.StructLayout({"word": 24, "memory": 8})


class LoadMemory(enum.IntEnum, shape=8):
    """The memories a run-time core loads (LOAD_ADDR.memory): ``WEIGHTS + c`` is channel c's
    weight bank, ``BIAS + r`` bias row r."""
    WEIGHTS = 0x00
    BIAS = 0x10


def load_word_bits(memory: int, *, rows: int, fmts, index_bits: int = 0) -> int:
    """Bits of one word of ``memory`` (a :class:`LoadMemory` code) in a core of P = ``rows``
    and formats ``fmts``; ``index_bits`` > 0: a compressed core's weight words, P
    (weight, block index) pairs. Raises ValueError for a code that names no memory."""
    if 0 <= memory < LoadMemory.BIAS:
        return rows * (fmts.w_bits + index_bits)
    if LoadMemory.BIAS <= memory < LoadMemory.BIAS + 4:
        return rows * fmts.acc_bits
    raise ValueError(f"memory code {memory:#x} names no loadable memory")


def load_signature(data_bits: int) -> wiring.Signature:
    """A memory word write (from the register file, seen from it): ``we`` strobe, ``memory``
    code (:class:`LoadMemory`), ``addr`` word address, ``data`` (the word in its low bits)."""
    return wiring.Signature({"we": Out(1), "memory": Out(8), "addr": Out(24),
                             "data": Out(data_bits)})


#: CTRL: one-cycle strobes of a write.
CtrlLayout = data.StructLayout({"reset_state": 1, "clear_steps": 1, "clear_error": 1})
#: STATUS.
StatusLayout = data.StructLayout({"busy": 1, "frame_error": 1, "reset_pending": 1})

#: The register bus, seen from the master (the core takes it as ``In(CSRSignature)``).
CSRSignature = wiring.Signature({
    "addr": Out(ADDR_BITS), "r_stb": Out(1), "r_data": In(32), "w_stb": Out(1),
    "w_data": Out(32),
})

#: The core's status outputs (the same values as the registers, as plain wires); they hold a
#: step's values from the transfer of the last beat of its output frame.
StatusSignature = wiring.Signature({
    "busy": Out(1), "cycles_last": Out(32), "nnz_dx_last": Out(16), "nnz_dh_last": Out(16),
    "steps": Out(32), "prescan_last": Out(32),
    # The frame sizes of the model the core runs, in elements: I of layer 0 (an x frame) and
    # H_out (an h frame). Constants in a baked core; a run-time core's follow its loaded
    # descriptors, so a board link sizes its frames from them (SIZES shows the same).
    "inputs": Out(16), "outputs": Out(16),
})


def frame_layout(act_bits: int, scan: int) -> data.StructLayout:
    """One beat of the x or h stream: ``data`` (E signed ``act_bits`` codes) and ``last``."""
    return data.StructLayout({"data": data.ArrayLayout(signed(act_bits), scan), "last": 1})


def frame_signature(act_bits: int, scan: int) -> stream.Signature:
    """The x/h stream carrying :func:`frame_layout` beats (valid/ready, seen from the source)."""
    return stream.Signature(frame_layout(act_bits, scan))


def _public_fields(layout: data.StructLayout):
    return [(name, field) for name, field in layout if not name.startswith("_")]


def decode_word(layout: data.StructLayout, word: int) -> dict[str, int]:
    """The named fields of a register word (an int, 0 ≤ word < 2**32) as unsigned ints.

    Reserved fields (names starting with ``_``) are left out. Raises ``ValueError`` for a word
    that does not fit 32 bits.
    """
    if not 0 <= word < 1 << 32:
        raise ValueError(f"register word {word!r} does not fit 32 bits")
    value = layout.from_bits(word & ((1 << layout.size) - 1))
    return {name: int(value[name]) for name, _ in _public_fields(layout)}


def encode_word(layout: data.StructLayout, **fields: int) -> int:
    """The register word (an int) with the given fields set and every other bit zero.

    Raises ``ValueError`` naming a field the layout does not have (or that is reserved), or a
    value that does not fit the field's width.
    """
    known = dict(_public_fields(layout))
    for name, value in fields.items():
        if name not in known:
            raise ValueError(f"{name!r} is not a field of this register (fields: "
                             f"{', '.join(known)})")
        width = known[name].width
        if not 0 <= value < 1 << width:
            raise ValueError(f"{name} = {value} does not fit its {width}-bit field")
    return layout.const(fields).as_bits()
