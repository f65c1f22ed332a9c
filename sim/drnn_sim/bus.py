"""cocotb access to the core's ports: CSR bus cycles and stream payload packing.

The register map below is the testbenches' own statement of the core's contract, written out
from the documentation on purpose and *not* imported from :mod:`drnn_hw.contract`: the gateware
takes its map from the contract, so a testbench that took it from there too would agree with a
swapped address or bit instead of catching it. ``tests/sim/test_register_map.py`` pins every
number here to literal values and to the contract.

Payload of ``x`` and ``h`` (contract): E elements of ``act_bits`` two's complement codes,
element e at bits ``[A*e + A-1 : A*e]``, ``last`` at bit ``A*E``.
"""

from __future__ import annotations

from cocotb.triggers import ReadOnly, RisingEdge

# Register map: word addresses.
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
#: Only in a core with its weights in DRAM: the weight image's byte address (4 KB-aligned).
WEIGHT_BASE = 18
#: Only in a compressed-weight core (reads 0 otherwise): kept_l of the selected layer in
#: [11:0], the capacity kept_max in [23:12], the selected layer in [28:24].
KEPT = 19
#: Cycles the last step's scan started before the cycle after the previous commit (0: idle).
PRESCAN_LAST = 20
#: Per-layer register blocks: word 32 + 8·layer + offset.
LAYER_OFFSETS = {"LAYER_SIZES": 0, "LAYER_THETA_X": 1, "LAYER_THETA_H": 2, "LAYER_CYCLES": 3,
                 "LAYER_NNZ_DX": 4, "LAYER_NNZ_DH": 5, "LAYER_COUNTS": 6, "LAYER_H_COLUMN": 7}
#: The ID register's value, "DRNN" in ASCII.
ID_VALUE = 0x44524E4E
# CTRL strobes and STATUS flags: bit masks.
CTRL_RESET_STATE = 1 << 0
CTRL_CLEAR_STEPS = 1 << 1
CTRL_CLEAR_ERROR = 1 << 2
STATUS_BUSY = 1 << 0
STATUS_FRAME_ERROR = 1 << 1
STATUS_RESET_PENDING = 1 << 2
# SIZES and SHAPE fields: (lowest bit, width).
SIZES_INPUTS = (0, 16)
SIZES_HIDDEN = (16, 16)
SHAPE_ROWS = (0, 16)
SHAPE_COLUMNS = (16, 4)
SHAPE_CELL = (20, 4)
SHAPE_SCAN = (24, 8)
#: SHAPE's cell field: 0 the delta-GRU, 1 the delta-LSTM.
CELL_GRU = 0
CELL_LSTM = 1


def layer_register(layer: int, name: str) -> int:
    """Word address of a per-layer register (``name`` a key of :data:`LAYER_OFFSETS`)."""
    return 32 + 8 * layer + LAYER_OFFSETS[name]


def sizes_word(inputs: int, hidden: int) -> int:
    """The SIZES register's value for I and H."""
    return inputs << SIZES_INPUTS[0] | hidden << SIZES_HIDDEN[0]


def shape_word(rows: int, columns: int, scan: int, cell: int = CELL_GRU) -> int:
    """The SHAPE register's value for P, K, E and the cell code (:data:`CELL_GRU`,
    :data:`CELL_LSTM`)."""
    return (rows << SHAPE_ROWS[0] | columns << SHAPE_COLUMNS[0] | cell << SHAPE_CELL[0]
            | scan << SHAPE_SCAN[0])


def pack_beat(codes, act_bits: int, elements: int, last: bool) -> int:
    """One beat's payload from up to E element codes (missing elements are padding, 0)."""
    mask = (1 << act_bits) - 1
    v = int(bool(last)) << (act_bits * elements)
    for e, c in enumerate(codes):
        v |= (int(c) & mask) << (act_bits * e)
    return v


def unpack_beat(value: int, act_bits: int, elements: int) -> tuple[list[int], int]:
    """(element codes, last) from a beat's payload integer."""
    mask = (1 << act_bits) - 1
    sign = 1 << (act_bits - 1)
    codes = []
    for e in range(elements):
        c = (value >> (act_bits * e)) & mask
        codes.append(c - (1 << act_bits) if c & sign else c)
    return codes, (value >> (act_bits * elements)) & 1


def frame_beats(frame, act_bits: int, elements: int) -> list[int]:
    """The payload integers of one x frame (``frame`` holds I codes): ceil(I/E) beats."""
    n = len(frame)
    beats = -(-n // elements)
    out = []
    for b in range(beats):
        out.append(pack_beat(frame[b * elements:(b + 1) * elements], act_bits, elements,
                             b == beats - 1))
    return out


class Csr:
    """The register bus, driven right after rising edges (the core samples on the next one)."""

    def __init__(self, dut):
        self.dut = dut
        self.clk = dut.clk
        dut.csr__r_stb.value = 0
        dut.csr__w_stb.value = 0
        dut.csr__addr.value = 0
        dut.csr__w_data.value = 0

    async def write(self, addr: int, value: int):
        d = self.dut
        await RisingEdge(self.clk)
        d.csr__addr.value = addr
        d.csr__w_data.value = value
        d.csr__w_stb.value = 1
        await RisingEdge(self.clk)
        d.csr__w_stb.value = 0

    async def write_many(self, writes):
        """``writes`` (word address, value) pairs, one per cycle (w_stb held high)."""
        d = self.dut
        await RisingEdge(self.clk)
        for addr, value in writes:
            d.csr__addr.value = int(addr)
            d.csr__w_data.value = int(value)
            d.csr__w_stb.value = 1
            await RisingEdge(self.clk)
        d.csr__w_stb.value = 0

    async def read(self, addr: int) -> int:
        d = self.dut
        await RisingEdge(self.clk)
        d.csr__addr.value = addr
        d.csr__r_stb.value = 1
        await RisingEdge(self.clk)        # sampled here; r_data is valid in the next cycle
        d.csr__r_stb.value = 0
        await ReadOnly()
        value = d.csr__r_data.value.to_unsigned()
        return value
