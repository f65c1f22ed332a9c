"""cocotb test module: the host driver against the Verilated ULX3S board logic, over the UART.

The board logic (:class:`~drnn_boards.ulx3s.DeltaRNNBoard`: core + UART + protocol engine) runs
in Verilator; its ``rx``/``tx`` pins are driven and decoded bit by bit here. The *unchanged*
host driver (:class:`~drnn_boards.host.DeltaRNNLink`) runs in a cocotb bridge thread and talks
to the simulated UART through :class:`SimUARTTransport`. So host -> UART -> link -> core ->
link -> UART -> host is exercised exactly as on the board (only the PLL and pins are absent).

Input ``$DRNN_BOARD_IN`` (npz, written by :func:`drnn_boards.sim.run_board`): ``model_dir``,
``x`` (N, T, I) codes, ``lengths``, ``divisor``, ``idle_timeout``, ``error_cases`` (0/1).
Output ``$DRNN_BOARD_OUT`` (npz): ``h``, ``nnz_dx``, ``nnz_dh``, ``cycles`` (N, T), ``ident``
(id, I, H, P, K, E), ``errors`` (the error code each bad request got), ``after_errors`` (h of
the first step of sequence 0 sent after the bad requests), ``sim_ns``.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, Timer
from cocotb.utils import get_sim_time

from . import protocol as P
from .protocol import Command
from .host import BoardError, DeltaRNNLink

CLOCK_NS = 10


class SimUARTTransport:
    """A byte transport over the simulated UART pins (used from the bridge thread)."""

    def __init__(self, dut, divisor: int, timeout_cycles: int):
        self.dut = dut
        self.bit_ns = divisor * CLOCK_NS
        self.timeout_ns = timeout_cycles * CLOCK_NS
        self.received = bytearray()
        self.monitor_errors = []
        dut.rx.value = 1

    async def monitor(self):
        """Decode ``tx`` forever: wait for a start bit, sample each bit in its middle."""
        while True:
            await FallingEdge(self.dut.tx)
            await Timer(self.bit_ns // 2, unit="ns")
            if int(self.dut.tx.value) != 0:
                self.monitor_errors.append("glitch instead of a start bit")
                continue
            byte = 0
            for i in range(8):
                await Timer(self.bit_ns, unit="ns")
                byte |= int(self.dut.tx.value) << i
            await Timer(self.bit_ns, unit="ns")
            if int(self.dut.tx.value) != 1:
                self.monitor_errors.append("stop bit is 0")
            self.received.append(byte)

    async def _send_bits(self, bits):
        for b in bits:
            self.dut.rx.value = b
            await Timer(self.bit_ns, unit="ns")

    async def _write(self, data: bytes, stop: int = 1):
        for byte in data:
            await self._send_bits([0] + [(byte >> i) & 1 for i in range(8)] + [stop])

    async def _read(self, n: int) -> bytes:
        waited = 0
        step = 10 * self.bit_ns
        while len(self.received) < n and waited < self.timeout_ns:
            await Timer(step, unit="ns")
            waited += step
        out = bytes(self.received[:n])
        del self.received[:n]
        return out

    # blocking interface for the host driver (runs in a cocotb bridge thread)
    def write(self, data: bytes):
        resume(self._write)(bytes(data))

    def read(self, n: int) -> bytes:
        return resume(self._read)(n)

    def write_bad_stop_bit(self, byte: int):
        """One character whose stop bit is 0 (a UART framing error), then idle."""
        resume(self._write)(bytes([byte]), 0)
        resume(self._send_bits)([1])


def _bad_requests(I: int, B: int):
    good = P.encode_frame(Command.STEP, bytes(I * B))
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0x01
    return [
        ("bad checksum", bytes(bad_crc)),
        ("bad length", P.encode_frame(Command.STEP, bytes(I * B + 1))),
        ("unknown command", P.encode_frame(0x55, b"\x00")),
        ("truncated", good[:5]),
        ("bad sync", b"\x00\x11\x22"),
        ("bad address", P.encode_frame(Command.READ_REG, bytes([200]))),
    ]


@cocotb.test()
async def host_over_uart(dut):
    from drnn_hw.bundle import ModelBundle

    cfg = dict(np.load(os.environ["DRNN_BOARD_IN"]))
    bundle = ModelBundle.load(str(cfg["model_dir"]))
    x, lengths = cfg["x"], cfg["lengths"]
    divisor, idle = int(cfg["divisor"]), int(cfg["idle_timeout"])
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    transport = SimUARTTransport(dut, divisor, timeout_cycles=4 * idle + 200_000)
    cocotb.start_soon(transport.monitor())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)
    t0 = get_sim_time("ns")

    def host():
        link = DeltaRNNLink(transport, act_bits=bundle.formats.act_bits)
        info = link.identify()
        ident = [info[k] for k in ("id", "input_size", "hidden_size", "rows", "columns", "scan")]
        h0 = [cfg[f"h0_{l}"] for l in range(bundle.num_layers)] if "h0_0" in cfg else None
        res = link.run(bundle, x, lengths, h0=h0)
        errors, after = [], np.zeros(0, np.int64)
        if int(cfg["error_cases"]):
            for _, frame in _bad_requests(bundle.input_size, link.element_bytes):
                transport.write(frame)
                try:
                    link.read_response()
                    errors.append(0)
                except BoardError as e:
                    errors.append(int(e.code))
            transport.write_bad_stop_bit(P.SYNC)
            try:
                link.read_response()
                errors.append(0)
            except BoardError as e:
                errors.append(int(e.code))
            link.reset_state()
            after = link.step(x[0, 0])
        return ident, res, errors, after

    ident, res, errors, after = await bridge(host)()
    assert not transport.monitor_errors, transport.monitor_errors
    np.savez(os.environ["DRNN_BOARD_OUT"], h=res.h, nnz_dx=res.nnz_dx, nnz_dh=res.nnz_dh,
             cycles=res.cycles, ident=np.array(ident, np.int64),
             errors=np.array(errors, np.int64), after_errors=after,
             sim_ns=get_sim_time("ns") - t0)
