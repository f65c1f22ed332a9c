"""cocotb access to the core's ports: CSR bus cycles and stream payload packing.

Payload of ``x`` and ``h`` (contract): E lanes of ``act_bits`` two's complement codes, lane e
at bits ``[A*e + A-1 : A*e]``, ``last`` at bit ``A*E``.
"""

from __future__ import annotations

from cocotb.triggers import ReadOnly, RisingEdge

# Register map (word addresses), from the core interface contract.
ID, SIZES, SHAPE, CTRL, STATUS, THETA_X, THETA_H, CYCLES_LAST, NNZ_DX_LAST, NNZ_DH_LAST, STEPS = \
    range(11)
ID_VALUE = 0x44524E4E
CTRL_RESET_STATE, CTRL_CLEAR_STEPS, CTRL_CLEAR_ERROR = 1, 2, 4
STATUS_BUSY, STATUS_FRAME_ERROR, STATUS_RESET_PENDING = 1, 2, 4


def pack_beat(codes, act_bits: int, lanes: int, last: bool) -> int:
    """One beat's payload from up to E lane codes (missing lanes are padding, 0)."""
    mask = (1 << act_bits) - 1
    v = int(bool(last)) << (act_bits * lanes)
    for e, c in enumerate(codes):
        v |= (int(c) & mask) << (act_bits * e)
    return v


def unpack_beat(value: int, act_bits: int, lanes: int) -> tuple[list[int], int]:
    """(lane codes, last) from a beat's payload integer."""
    mask = (1 << act_bits) - 1
    sign = 1 << (act_bits - 1)
    codes = []
    for e in range(lanes):
        c = (value >> (act_bits * e)) & mask
        codes.append(c - (1 << act_bits) if c & sign else c)
    return codes, (value >> (act_bits * lanes)) & 1


def frame_beats(frame, act_bits: int, lanes: int) -> list[int]:
    """The payload integers of one x frame (``frame`` holds I codes): ceil(I/E) beats."""
    n = len(frame)
    beats = -(-n // lanes)
    out = []
    for b in range(beats):
        out.append(pack_beat(frame[b * lanes:(b + 1) * lanes], act_bits, lanes,
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
