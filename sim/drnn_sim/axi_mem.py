"""DRAM models for a core with its weights in DRAM (``--weights axi``), on its ``m_axi`` read
port (Verilog ``m_axi__arvalid`` ...).

:class:`FixedLatencyMemory` is this project's own responder: ``arready`` always high, the
first beat of a burst ``latency`` cycles after its address handshake, the beats one per cycle
with bursts in order and never overlapping on R. It is the memory the cycle model's memory
terms are exact for (:func:`drnn_hw.cycle_model.step_cycles` with a
:class:`~drnn_hw.cycle_model.ColumnFetch` of the same latency), written from the AXI
specification, not from the core.

:func:`random_memory` is ``cocotbext-axi``'s ``AxiRamRead`` with random pauses on AR (back-
pressure on the addresses) and on R (random gaps between beats, so random latency): results
must stay bit-exact, cycles at least the model's.
"""

from __future__ import annotations

from collections import deque

from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["FixedLatencyMemory", "random_memory", "PREFIX"]

#: The core's AXI port prefix (cocotbext-axi joins it to the signal names with "_").
PREFIX = "m_axi_"


class FixedLatencyMemory:
    """An AXI4 read slave with a fixed read latency and no back-pressure (module docstring).

    ``image`` (bytes) is placed at byte address ``base``; a read outside it fails the test.
    ``latency`` ≥ 1: cycles from the AR handshake to the first R beat. ``bus_bytes``: the data
    width in bytes. Checks that every burst is INCR with the bus's beat size.
    """

    def __init__(self, dut, image: bytes, base: int, latency: int, bus_bytes: int):
        if latency < 1:
            raise ValueError(f"latency must be ≥ 1 cycle, got {latency}")
        self.dut, self.image, self.base = dut, image, base
        self.latency, self.bus_bytes = latency, bus_bytes
        self.bursts = 0
        self.beats = 0
        self.max_in_flight = 0
        dut.m_axi__arready.value = 1
        dut.m_axi__rvalid.value = 0
        dut.m_axi__rdata.value = 0
        dut.m_axi__rlast.value = 0
        dut.m_axi__rresp.value = 0
        dut.m_axi__rid.value = 0

    def _beat(self, addr: int) -> int:
        off = addr - self.base
        if off < 0 or off + self.bus_bytes > len(self.image):
            raise AssertionError(f"AXI read at 0x{addr:x} outside the weight image "
                                 f"[0x{self.base:x}, 0x{self.base + len(self.image):x})")
        return int.from_bytes(self.image[off:off + self.bus_bytes], "little")

    async def run(self):
        d = self.dut
        pending = deque()        # [cycle of the first beat, address of the next beat, beats left]
        cycle, presenting = 0, False
        while True:
            await ReadOnly()
            taken = presenting and int(d.m_axi__rready.value)
            if int(d.m_axi__arvalid.value):
                size, kind = int(d.m_axi__arsize.value), int(d.m_axi__arburst.value)
                assert 1 << size == self.bus_bytes and kind == 1, \
                    f"AXI burst of size {size}, type {kind}: expected INCR beats of " \
                    f"{self.bus_bytes} bytes"
                pending.append([cycle + self.latency, int(d.m_axi__araddr.value),
                                int(d.m_axi__arlen.value) + 1])
                self.bursts += 1
                self.max_in_flight = max(self.max_in_flight, len(pending))
            await RisingEdge(d.clk)
            cycle += 1
            if taken:
                self.beats += 1
                head = pending[0]
                head[1] += self.bus_bytes
                head[2] -= 1
                if head[2] == 0:
                    pending.popleft()
            presenting = bool(pending) and pending[0][0] <= cycle
            d.m_axi__rvalid.value = int(presenting)
            if presenting:
                d.m_axi__rdata.value = self._beat(pending[0][1])
                d.m_axi__rlast.value = int(pending[0][2] == 1)


def random_memory(dut, image: bytes, base: int, rng, ar_pause: float, r_pause: float):
    """cocotbext-axi's ``AxiRamRead`` on the core's port holding ``image`` at ``base``, with
    AR and R paused in each cycle with probabilities ``ar_pause`` and ``r_pause`` (from
    ``rng``, a NumPy Generator). Returns the RAM model."""
    from cocotbext.axi import AxiRamRead, AxiReadBus

    size = 1 << max(12, (base + len(image) - 1).bit_length())
    ram = AxiRamRead(AxiReadBus.from_prefix(dut, PREFIX), dut.clk, dut.rst, size=size)
    ram.write(base, image)

    def pauses(p):
        while True:
            yield bool(rng.random() < p)

    ram.ar_channel.set_pause_generator(pauses(ar_pause))
    ram.r_channel.set_pause_generator(pauses(r_pause))
    return ram
