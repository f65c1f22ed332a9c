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
| 11 | LAYERS | R | L, the number of stacked layers |
| 12 | H0 | W | one initial-state code (activation format, two's complement in [act_bits-1:0]) |
| 13 | WEIGHT_BASE | RW | only in a core with weights in DRAM (``--weights axi``; reads 0 otherwise): the byte address of the weight image (:mod:`drnn_hw.dram`), a multiple of 4096 (bits [11:0] read 0); write it while idle |
| 32 + 8l + 0 | LAYER_SIZES | R | layer l's I_l and H_l (:data:`SizesLayout`) |
| 32 + 8l + 1 | LAYER_THETA_X | RW | Θx code of layer l (for l = 0 the same register as THETA_X) |
| 32 + 8l + 2 | LAYER_THETA_H | RW | Θh code of layer l (l = 0: THETA_H) |
| 32 + 8l + 3 | LAYER_CYCLES | R | cycles of layer l's pass in the last step |
| 32 + 8l + 4 | LAYER_NNZ_DX | R | kept Δx of layer l in the last step |
| 32 + 8l + 5 | LAYER_NNZ_DH | R | kept Δh of layer l in the last step |

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
           "ShapeLayout", "CtrlLayout", "StatusLayout", "CSRSignature", "StatusSignature",
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
    WEIGHT_BASE = 13


class LayerRegister(enum.IntEnum, shape=3):
    """Word offsets in a layer's register block (:func:`layer_register`)."""
    LAYER_SIZES = 0
    LAYER_THETA_X = 1
    LAYER_THETA_H = 2
    LAYER_CYCLES = 3
    LAYER_NNZ_DX = 4
    LAYER_NNZ_DH = 5


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
    Register.STEPS: "R", Register.LAYERS: "R", Register.H0: "W", Register.WEIGHT_BASE: "RW",
}
LAYER_ACCESS = {
    LayerRegister.LAYER_SIZES: "R", LayerRegister.LAYER_THETA_X: "RW",
    LayerRegister.LAYER_THETA_H: "RW", LayerRegister.LAYER_CYCLES: "R",
    LayerRegister.LAYER_NNZ_DX: "R", LayerRegister.LAYER_NNZ_DH: "R",
}

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
    "steps": Out(32),
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
