"""cocotb verification benches for the register bus and frame handling of the core.

Expected values come from ``$DRNN_BENCH_IN`` (an npz written by the pytest side from the bundle,
the core shape and the golden model; never from the design under test):

``sizes`` (I, H), ``shape`` (P, K, E), ``act_bits``, ``theta`` (bundle θx, θh), ``x`` (T, I)
codes of one sequence, and the golden model's ``h`` (T, H), ``nnz_dx``, ``nnz_dh``, ``cycles``
(T,) for that sequence started from the initial state; ``h_from1``, ``cycles_from1``: the same
for the sequence ``x[1:]`` (a restart from the initial state at the second frame).
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from .bus import CELL_GRU, CTRL, CTRL_CLEAR_ERROR, CTRL_CLEAR_STEPS, CTRL_RESET_STATE, CYCLES_LAST, ID, \
    ID_VALUE, NNZ_DH_LAST, NNZ_DX_LAST, PRESCAN_LAST, SHAPE, SIZES, STATUS, STATUS_BUSY, \
    STATUS_FRAME_ERROR, STATUS_RESET_PENDING, STEPS, THETA_H, THETA_X, Csr, frame_beats, \
    shape_word, sizes_word
from .driver import CLOCK_NS, FrameSink, StreamSource


def _expect():
    return dict(np.load(os.environ["DRNN_BENCH_IN"]))


async def _start(dut):
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    csr = Csr(dut)
    dut.x__valid.value = 0
    dut.h__ready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    return csr


async def _run_frames(dut, ex, frames_x, beats_override=None):
    """Stream frames (T, I) and collect their h frames; returns list of (h, status)."""
    A, E, H = int(ex["act_bits"]), int(ex["shape"][2]), int(ex["sizes"][1])
    await RisingEdge(dut.clk)          # leave a CSR read's ReadOnly phase before driving
    rng = np.random.default_rng(0)
    source = StreamSource(dut, 1.0, rng)
    sink = FrameSink(dut, A, E, H, 1.0, rng)
    beats = beats_override or [b for f in frames_x for b in frame_beats(f, A, E)]
    task = cocotb.start_soon(sink.receive(len(frames_x), "bench"))
    await source.send(beats)
    return await task


@cocotb.test()
async def identity_registers(dut):
    """ID, SIZES, SHAPE and the threshold reset values read back as the contract says."""
    ex = _expect()
    csr = await _start(dut)
    I, H = (int(v) for v in ex["sizes"])
    P, K, E = (int(v) for v in ex["shape"])
    cell = int(ex["cell"]) if "cell" in ex else CELL_GRU
    assert await csr.read(ID) == ID_VALUE
    assert await csr.read(SIZES) == sizes_word(I, H)
    assert await csr.read(SHAPE) == shape_word(P, K, E, cell)
    assert await csr.read(THETA_X) == int(ex["theta"][0])
    assert await csr.read(THETA_H) == int(ex["theta"][1])
    status = await csr.read(STATUS)
    assert status & (STATUS_BUSY | STATUS_FRAME_ERROR) == 0, f"STATUS after reset {status:#x}"
    assert await csr.read(STEPS) == 0
    for reg, value in ((THETA_X, 0x1234), (THETA_H, 0x0F0F), (THETA_X, 0), (THETA_H, 0x7FFF)):
        await csr.write(reg, value)
        got = await csr.read(reg)
        assert got == value, f"register {reg}: wrote {value:#x}, read {got:#x}"


@cocotb.test()
async def step_registers(dut):
    """Per step: CYCLES_LAST, NNZ_DX_LAST, NNZ_DH_LAST, STEPS, PRESCAN_LAST (CSR and status
    port) match the golden model, one frame at a time (nothing scanned ahead) and back to
    back (each step after the first scanned during the AP of the one before); CLEAR_STEPS
    zeroes STEPS; RESET_STATE restarts the sequence bit-exactly."""
    ex = _expect()
    csr = await _start(dut)
    x = ex["x"]
    T = x.shape[0]
    for t in range(T):
        (h, status), = await _run_frames(dut, ex, x[t:t + 1])
        assert h == list(ex["h"][t]), f"step {t}: h differs from the golden model"
        want = (int(ex["cycles"][t]), int(ex["nnz_dx"][t]), int(ex["nnz_dh"][t]), t + 1, 0)
        assert status == want, f"step {t}: status port {status}, golden {want}"
        regs = (await csr.read(CYCLES_LAST), await csr.read(NNZ_DX_LAST),
                await csr.read(NNZ_DH_LAST), await csr.read(STEPS),
                await csr.read(PRESCAN_LAST))
        assert regs == want, f"step {t}: registers {regs}, golden {want}"
        status_reg = await csr.read(STATUS)
        assert status_reg & STATUS_BUSY == 0, f"step {t}: BUSY still set after the frame"
    await csr.write(CTRL, CTRL_CLEAR_STEPS)
    assert await csr.read(STEPS) == 0
    # After RESET_STATE the same sequence gives the same outputs from the initial state.
    await csr.write(CTRL, CTRL_RESET_STATE)
    frames = await _run_frames(dut, ex, x)
    for t, (h, status) in enumerate(frames):
        assert h == list(ex["h"][t]), f"after RESET_STATE, step {t}: h differs"
        want = (int(ex["cycles_streamed"][t]), int(ex["nnz_dx"][t]), int(ex["nnz_dh"][t]))
        assert status[:3] == want, f"back to back, step {t}: status {status}, golden {want}"
        assert status[4] == int(ex["prescan_streamed"][t]), \
            f"back to back, step {t}: PRESCAN_LAST {status[4]}, golden {ex['prescan_streamed'][t]}"
    assert await csr.read(STEPS) == T


@cocotb.test()
async def frame_error(dut):
    """A frame with ``last`` on the wrong beat still counts as one frame of WX beats (the core
    keeps sync and the outputs stay bit-exact), sets the sticky FRAME_ERROR bit; CLEAR_ERROR
    clears it."""
    ex = _expect()
    csr = await _start(dut)
    A, E = int(ex["act_bits"]), int(ex["shape"][2])
    x = ex["x"]
    beats = [b for f in x for b in frame_beats(f, A, E)]
    last_bit = 1 << (A * E)
    beats[0] ^= last_bit        # frame 0: flip `last` on its first beat (set if WX > 1, else clear)
    await csr.write(CTRL, CTRL_RESET_STATE)
    frames = await _run_frames(dut, ex, x, beats_override=beats)
    for t, (h, _) in enumerate(frames):
        assert h == list(ex["h"][t]), f"step {t}: h differs after a malformed frame"
    status = await csr.read(STATUS)
    assert status & STATUS_FRAME_ERROR, f"STATUS {status:#x}: FRAME_ERROR not set"
    status = await csr.read(STATUS)
    assert status & STATUS_FRAME_ERROR, "FRAME_ERROR is not sticky"
    await csr.write(CTRL, CTRL_CLEAR_ERROR)
    status = await csr.read(STATUS)
    assert not status & STATUS_FRAME_ERROR, f"STATUS {status:#x}: CLEAR_ERROR did not clear"


@cocotb.test()
async def busy_during_step(dut):
    """status.busy is high while a step runs and low once its frame is out."""
    ex = _expect()
    await _start(dut)
    A, E = int(ex["act_bits"]), int(ex["shape"][2])
    x = ex["x"]
    source = StreamSource(dut, 1.0, None)
    await source.send(frame_beats(x[0], A, E))
    seen_busy = False
    for _ in range(int(ex["cycles"][0]) + 8):
        await ReadOnly()
        seen_busy |= bool(dut.status__busy.value)
        await RisingEdge(dut.clk)
    assert seen_busy, "status.busy never rose during a step"
    dut.h__ready.value = 1
    await ClockCycles(dut.clk, 3 + -(-int(ex["sizes"][1]) // E))
    await ReadOnly()
    assert not dut.status__busy.value, "status.busy stays high after the step"


@cocotb.test()
async def reset_during_step(dut):
    """RESET_STATE written while a step runs is pending (STATUS.RESET_PENDING) until the step
    has committed, then applied in idle: that step's output is unaffected, the next frame
    starts from the initial state."""
    ex = _expect()
    csr = await _start(dut)
    A, E = int(ex["act_bits"]), int(ex["shape"][2])
    x = ex["x"]
    source = StreamSource(dut, 1.0, None)
    await source.send(frame_beats(x[0], A, E))
    await ReadOnly()
    while not dut.status__busy.value:
        await RisingEdge(dut.status__busy)
        await ReadOnly()
    await csr.write(CTRL, CTRL_RESET_STATE)
    status = await csr.read(STATUS)
    assert status & STATUS_BUSY, f"STATUS {status:#x}: the step is over already (test too slow)"
    assert status & STATUS_RESET_PENDING, f"STATUS {status:#x} during a step: no RESET_PENDING"
    frames = await _run_frames(dut, ex, x[1:2])     # collects frame 0, then sends x[1]
    frames += await FrameSink(dut, A, E, int(ex["sizes"][1]), 1.0, None).receive(1, "bench")
    (h0, s0), (h1, s1) = frames[0], frames[1]
    assert h0 == list(ex["h"][0]), "the step running during the reset write was disturbed"
    assert h1 == list(ex["h_from1"][0]), "after the reset the next frame did not start afresh"
    assert s1[0] == int(ex["cycles_from1"][0])
    assert not await csr.read(STATUS) & STATUS_RESET_PENDING
