"""cocotb benches of the Arty Z7 wrapper (:class:`~drnn_boards.arty_z7.DeltaRNNAXI`) in Verilator.

Small AXI4-Lite and AXI4-Stream drivers of our own (cocotb 2.1). Input ``$DRNN_AXI_IN`` (npz):
``x`` (T, I) codes, ``act_bits``, ``input_size``, ``hidden_size``, ``scan``, ``theta_x``,
``theta_h`` (the bundle's reset values), ``tdata_bits``. Output ``$DRNN_AXI_OUT``: ``h`` (T, H)
from the stream bench (compared with the golden model by the pytest side), ``lite`` (the values
the AXI4-Lite bench read: ID, SIZES, THETA_X after each write pattern...), ``bresp``.
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

# The testbenches' own register map (deliberately not the contract the wrapper is built from).
from drnn_sim.bus import CTRL, CTRL_RESET_STATE, ID, SIZES, THETA_H, THETA_X

CLOCK_NS = 10


def _cfg():
    return dict(np.load(os.environ["DRNN_AXI_IN"]))


async def _start(dut):
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    for name in ("s_axi_awvalid", "s_axi_wvalid", "s_axi_bready", "s_axi_arvalid",
                 "s_axi_rready", "s_axis_tvalid", "s_axis_tlast", "m_axis_tready"):
        getattr(dut, name).value = 0
    dut.s_axi_awprot.value = 0
    dut.s_axi_arprot.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


class AXILiteMaster:
    """One transaction at a time; ``order`` chooses how AW and W are presented."""

    def __init__(self, dut, rng):
        self.dut, self.rng = dut, rng

    async def _handshake(self, valid, ready):
        """Hold ``valid`` until a rising edge with ``ready`` (sampled before the edge)."""
        valid.value = 1
        while True:
            await ReadOnly()
            done = int(ready.value)
            await RisingEdge(self.dut.clk)
            if done:
                valid.value = 0
                return

    async def write(self, reg: int, value: int, strb: int = 0xF, order: str = "both",
                    b_delay: int = 0) -> int:
        d = self.dut
        d.s_axi_awaddr.value = 4 * reg
        d.s_axi_wdata.value = value
        d.s_axi_wstrb.value = strb
        if order == "aw_first":
            d.s_axi_awvalid.value = 1
            await ClockCycles(d.clk, 3)
            await self._handshake(d.s_axi_wvalid, d.s_axi_wready)
            d.s_axi_awvalid.value = 0
        elif order == "w_first":
            d.s_axi_wvalid.value = 1
            await ClockCycles(d.clk, 3)
            await self._handshake(d.s_axi_awvalid, d.s_axi_awready)
            d.s_axi_wvalid.value = 0
        else:
            d.s_axi_wvalid.value = 1
            await self._handshake(d.s_axi_awvalid, d.s_axi_awready)
            d.s_axi_wvalid.value = 0
        # B channel, optionally with back-pressure: bvalid must stay up meanwhile.
        for _ in range(b_delay):
            await ReadOnly()
            bvalid = int(d.s_axi_bvalid.value)
            await RisingEdge(d.clk)
            assert bvalid, "bvalid not held until bready"
        d.s_axi_bready.value = 1
        while True:
            await ReadOnly()
            if int(d.s_axi_bvalid.value):
                resp = int(d.s_axi_bresp.value)
                await RisingEdge(d.clk)
                break
            await RisingEdge(d.clk)
        d.s_axi_bready.value = 0
        return resp

    async def read(self, reg: int, r_delay: int = 0) -> int:
        d = self.dut
        d.s_axi_araddr.value = 4 * reg
        await self._handshake(d.s_axi_arvalid, d.s_axi_arready)
        seen = None
        for _ in range(r_delay):
            await ReadOnly()
            if int(d.s_axi_rvalid.value):
                data = int(d.s_axi_rdata.value)
                assert seen is None or seen == data, "rdata changed while rvalid and !rready"
                seen = data
            await RisingEdge(d.clk)
        d.s_axi_rready.value = 1
        while True:
            await ReadOnly()
            if int(d.s_axi_rvalid.value):
                data, resp = int(d.s_axi_rdata.value), int(d.s_axi_rresp.value)
                await RisingEdge(d.clk)
                break
            await RisingEdge(d.clk)
        d.s_axi_rready.value = 0
        assert resp == 0, f"RRESP {resp}"
        assert seen is None or seen == data
        return data


@cocotb.test()
async def axi_lite_registers(dut):
    await _start(dut)
    bus = AXILiteMaster(dut, random.Random(1))
    lite = [await bus.read(ID), await bus.read(SIZES, r_delay=4),
            await bus.read(THETA_X), await bus.read(THETA_H)]
    bresp = []
    for k, order in enumerate(("both", "aw_first", "w_first")):
        bresp.append(await bus.write(THETA_X, 100 + k, order=order, b_delay=k * 3))
        lite.append(await bus.read(THETA_X, r_delay=k))
    # a partial write is refused (SLVERR) and changes nothing
    bresp.append(await bus.write(THETA_X, 7, strb=0b0011))
    lite.append(await bus.read(THETA_X))
    bresp.append(await bus.write(THETA_H, 0x55))
    lite.append(await bus.read(THETA_H))
    np.savez(os.environ["DRNN_AXI_OUT"] + ".lite.npz", lite=np.array(lite, np.int64),
             bresp=np.array(bresp, np.int64))


def _pack(codes, element_bits):
    """TDATA of one beat: element e in bits [L e + L - 1 : L e], L = ``element_bits``."""
    mask = (1 << element_bits) - 1
    word = 0
    for e, v in enumerate(codes):
        word |= (int(v) & mask) << (element_bits * e)
    return word


async def stream_frames(dut, x, *, I: int, H: int, E: int, A: int, tdata_bits: int, rng):
    """Send the (T, I) codes ``x`` as T frames on s_axis (random gaps on tvalid) and collect
    T h frames of H elements from m_axis (random back-pressure on tready), checking the
    AXI4-Stream rules on the way (a stalled beat holds, tlast on each frame's last beat, tkeep
    all ones). Returns h (T, H)."""
    L = 8 * -(-A // 8)
    T = x.shape[0]
    WX, WH = -(-I // E), -(-H // E)
    beats = []
    for t in range(T):
        row = list(x[t]) + [0] * (WX * E - I)
        for w in range(WX):
            beats.append((_pack(row[w * E:(w + 1) * E], L), int(w == WX - 1)))

    async def source():
        for data, last in beats:
            while rng.random() < 0.4:                      # gaps on tvalid
                dut.s_axis_tvalid.value = 0
                await RisingEdge(dut.clk)
            dut.s_axis_tdata.value = data
            dut.s_axis_tlast.value = last
            dut.s_axis_tvalid.value = 1
            while True:
                await ReadOnly()
                ok = int(dut.s_axis_tready.value)
                await RisingEdge(dut.clk)
                if ok:
                    break
        dut.s_axis_tvalid.value = 0

    cocotb.start_soon(source())
    out, held = [], None
    mask = (1 << L) - 1
    keep_all = (1 << (tdata_bits // 8)) - 1
    cycles = 0
    while len(out) < T * WH:
        ready = rng.random() < 0.5                           # back-pressure on tready
        dut.m_axis_tready.value = int(ready)
        await ReadOnly()
        if int(dut.m_axis_tvalid.value):
            beat = (int(dut.m_axis_tdata.value), int(dut.m_axis_tlast.value),
                    int(dut.m_axis_tkeep.value))
            # AXI4-Stream: once valid, the beat must not change until it is taken
            assert held is None or held == beat, "m_axis beat changed while stalled"
            held = None if ready else beat
            if ready:
                out.append(beat)
        else:
            assert held is None, "m_axis tvalid dropped before tready"
        await RisingEdge(dut.clk)
        cycles += 1
        assert cycles < 200_000, "stream bench hung"
    dut.m_axis_tready.value = 0
    h = np.zeros((T, H), np.int64)
    for t in range(T):
        frame = out[t * WH:(t + 1) * WH]
        assert [b[1] for b in frame] == [0] * (WH - 1) + [1], "tlast not on the last beat"
        assert all(b[2] == keep_all for b in frame)
        vals = []
        for data, _, _ in frame:
            for e in range(E):
                v = (data >> (L * e)) & mask
                vals.append(v - (1 << L) if v >> (L - 1) else v)
        h[t] = vals[:H]
    return h


@cocotb.test()
async def axi_stream_backpressure(dut):
    cfg = _cfg()
    await _start(dut)
    rng = random.Random(int(os.environ.get("COCOTB_RANDOM_SEED", "1")))
    bus = AXILiteMaster(dut, rng)
    await bus.write(CTRL, CTRL_RESET_STATE)             # a fresh sequence
    h = await stream_frames(dut, cfg["x"], I=int(cfg["input_size"]),
                            H=int(cfg["hidden_size"]), E=int(cfg["scan"]),
                            A=int(cfg["act_bits"]), tdata_bits=int(cfg["tdata_bits"]), rng=rng)
    np.savez(os.environ["DRNN_AXI_OUT"], h=h)
