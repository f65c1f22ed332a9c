"""cocotb test module that streams sequences through the core (used by the verilator engine).

Input: the npz named by ``$DRNN_SIM_IN`` (written by :func:`drnn_sim.cosim.simulate`):

``x`` (N, T, I) activation codes, ``lengths`` (N,), ``act_bits``, ``scan`` (E), ``hidden`` (H),
``step_limit`` (cycles per step, stalls included, after which the core counts as hung: the
test then fails instead of running forever), ``theta_x``/``theta_h`` (N,) codes to
write to THETA_X/THETA_H before sequence n (-1: leave as is), ``x_valid_prob`` and
``h_ready_prob`` (1.0: no stalls), ``stall_seed``; ``layers`` (L), ``layer_thetas`` (N, L, 2)
every layer's (Θx, Θh) codes for sequence n (-1: leave as is), ``reset`` (N,) (False: sequence
n continues the state of sequence n-1, no RESET_STATE), ``h0`` (N, ΣH) and ``h0_given``
(write the initial state over H0 after the reset), ``layer_stats`` (read every layer's
counters while each output frame's last beat waits, with ready held low), ``lockstep`` (send
x frame t only after h frame t-1 has left, instead of back to back); ``load_model`` (a model
bundle directory, or empty): first load it into the (run-time) core over the register bus,
as a host does (:mod:`drnn_hw.load`: the core's ID, SHAPE, MAXIMA, FORMATS and KEPT read back, the
bundle checked, then one register write per cycle). A core with its weights in
DRAM also gets ``dram`` (the image, uint8), ``weight_base`` (written to WEIGHT_BASE after the
reset), ``bus_bytes``, ``latency`` and ``ar_pause``/``r_pause``: both 0, a fixed-latency
memory (:class:`~drnn_sim.axi_mem.FixedLatencyMemory`); else cocotbext-axi's RAM pausing AR and
R with these probabilities.

Per sequence: write the thresholds if asked, write CTRL.RESET_STATE (and h0), stream the frames,
collect the h frames; ``status`` is sampled when the last beat of each output frame is transferred.
Sequences run one after the other (the reset must land between the last step of one and the first
of the next). Without stalls Python only wakes per beat, never per idle cycle.

Output: the npz named by ``$DRNN_SIM_OUT``: ``h`` (N, T, H), ``nnz_dx``, ``nnz_dh``, ``cycles``,
``prescan`` (PRESCAN_LAST: cycles the step's scan started before its cycle 0),
``steps`` (status.steps at each frame end), ``x_done``/``h_done`` (the clock edge at which
the last beat of x frame t went in / of h frame t came out) (N, T), ``steps_reg`` (N,) the
STEPS register after each sequence, ``status_end`` (STATUS at the end), ``sim_cycles``, ``wall_seconds`` and
``cpu_seconds`` (the simulator process's CPU time: the speed measure that does not depend on
other jobs sharing the machine), ``load_writes`` and ``load_cycles`` (the load's register
writes and the cycles it took, 0 without ``load_model``).
"""

from __future__ import annotations

import os
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from .axi_mem import FixedLatencyMemory, random_memory
from .bus import CTRL, CTRL_RESET_STATE, FORMATS0, FORMATS1, H0, ID, KEPT, MAXIMA, SHAPE, \
    STATUS, STEPS, THETA_H, THETA_X, WEIGHT_BASE, Csr, frame_beats, layer_register, unpack_beat

CLOCK_NS = 10


class StreamSource:
    """Drives the ``x`` stream: beats back to back, or with random idle cycles before beats."""

    def __init__(self, dut, valid_prob: float, rng):
        self.dut, self.clk = dut, dut.clk
        self.valid_prob, self.rng = valid_prob, rng
        dut.x__valid.value = 0
        dut.x__payload.value = 0

    async def send(self, beats, per_frame: int = 1):
        """Drive ``beats``; returns the clock edge (cycles since time 0) at which the last beat
        of every ``per_frame`` beats was transferred."""
        d = self.dut
        done = []
        for i, v in enumerate(beats):
            if self.valid_prob < 1.0:
                idle = int(self.rng.geometric(self.valid_prob)) - 1
                if idle:
                    d.x__valid.value = 0
                    await ClockCycles(self.clk, idle)
            d.x__payload.value = v
            d.x__valid.value = 1
            await ReadOnly()
            while not d.x__ready.value:
                await RisingEdge(d.x__ready)     # wake only when the FIFO has room again
                await ReadOnly()
            await RisingEdge(self.clk)           # the beat is taken at this edge
            if (i + 1) % per_frame == 0:
                done.append(get_sim_time("ns") // CLOCK_NS)
        d.x__valid.value = 0
        return done


class FrameSink:
    """Collects ``h`` frames; checks ``last`` and zero padding; samples ``status`` at frame ends."""

    def __init__(self, dut, act_bits: int, elements: int, hidden: int, ready_prob: float, rng,
                 layer_stats=None):
        self.dut, self.clk = dut, dut.clk
        self.layer_stats = layer_stats      # async () -> per-layer counters, or None
        self.layers = []                    # per received frame: those counters (or None)
        self.A, self.E, self.H = act_bits, elements, hidden
        self.WH = -(-hidden // elements)
        self.ready_prob, self.rng = ready_prob, rng
        self.always_ready = ready_prob >= 1.0 and layer_stats is None
        self.done = []                      # per frame: the edge its last beat left at
        dut.h__ready.value = 1 if self.always_ready else 0

    def _take(self, beat: int, frame: list, where: str):
        codes, last = unpack_beat(self.dut.h__payload.value.to_unsigned(), self.A, self.E)
        want_last = int(beat == self.WH - 1)
        assert last == want_last, f"{where} beat {beat}: last={last}, expected {want_last}"
        n = min(self.E, self.H - beat * self.E)
        assert not any(codes[n:]), f"{where} beat {beat}: padding elements not zero: {codes[n:]}"
        frame.extend(codes[:n])

    def _status(self):
        s = self.dut
        return (s.status__cycles_last.value.to_unsigned(),
                s.status__nnz_dx_last.value.to_unsigned(),
                s.status__nnz_dh_last.value.to_unsigned(),
                s.status__steps.value.to_unsigned(),
                s.status__prescan_last.value.to_unsigned())

    async def receive(self, frames: int, where: str):
        """``frames`` output frames: list of (h codes, (cycles, nnz_dx, nnz_dh, steps,
        prescan))."""
        d = self.dut
        out = []
        for f in range(frames):
            frame = []
            layers = None
            for beat in range(self.WH):
                if self.layer_stats is not None and beat == self.WH - 1:
                    # The core holds this step's counters until the frame has left: read them
                    # with the last beat waiting (ready low), then take it.
                    d.h__ready.value = 0
                    await ReadOnly()
                    while not d.h__valid.value:
                        await RisingEdge(d.h__valid)
                        await ReadOnly()
                    await RisingEdge(self.clk)
                    layers = await self.layer_stats()
                    await RisingEdge(self.clk)      # out of the read's read-only phase
                    d.h__ready.value = 1
                    await ReadOnly()
                elif self.always_ready:
                    await ReadOnly()
                    while not d.h__valid.value:
                        await RisingEdge(d.h__valid)
                        await ReadOnly()
                else:                           # a fresh random ready after every edge
                    while True:
                        d.h__ready.value = int(self.rng.random() < self.ready_prob)
                        await ReadOnly()
                        if d.h__valid.value and d.h__ready.value:
                            break
                        await RisingEdge(self.clk)
                # valid and ready in this cycle: the beat is transferred at the next edge
                self._take(beat, frame, f"{where} frame {f}")
                status = self._status() if beat == self.WH - 1 else None
                await RisingEdge(self.clk)
                if beat == self.WH - 1:
                    self.done.append(get_sim_time("ns") // CLOCK_NS)
                if not self.always_ready:
                    d.h__ready.value = 0
            out.append((frame, status))
            self.layers.append(layers)
        if not self.always_ready:
            d.h__ready.value = 0
        return out


@cocotb.test()
async def stream_sequences(dut):
    cfg = dict(np.load(os.environ["DRNN_SIM_IN"]))
    x, lengths = cfg["x"], cfg["lengths"]
    A, E, H = int(cfg["act_bits"]), int(cfg["scan"]), int(cfg["hidden"])
    N, T, _ = x.shape
    rng = np.random.default_rng(int(cfg.get("stall_seed", 0)))
    theta_x = cfg.get("theta_x", np.full(N, -1))
    theta_h = cfg.get("theta_h", np.full(N, -1))
    x_prob = float(cfg.get("x_valid_prob", 1.0))
    h_prob = float(cfg.get("h_ready_prob", 1.0))
    limit = int(cfg["step_limit"])
    n_layers = int(cfg.get("layers", 1))
    thetas = cfg.get("layer_thetas", np.full((N, n_layers, 2), -1))
    resets = cfg.get("reset", np.ones(N, bool))
    h0, h0_given = cfg.get("h0"), bool(cfg.get("h0_given", False))
    want_layers = bool(cfg.get("layer_stats", False))
    lockstep = bool(cfg.get("lockstep", False))

    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    source = StreamSource(dut, x_prob, rng)
    csr = Csr(dut)
    memory = None
    if "dram" in cfg:
        # A core with its weights in DRAM: the image at WEIGHT_BASE, behind a memory with a
        # fixed latency (the cycle model's) or cocotbext-axi's RAM with random pauses.
        image, base = cfg["dram"].tobytes(), int(cfg["weight_base"])
        if float(cfg["ar_pause"]) > 0 or float(cfg["r_pause"]) > 0:
            memory = random_memory(dut, image, base, np.random.default_rng(
                int(cfg.get("stall_seed", 0)) + 1), float(cfg["ar_pause"]),
                float(cfg["r_pause"]))
        else:
            memory = FixedLatencyMemory(dut, image, base, int(cfg["latency"]),
                                        int(cfg["bus_bytes"]))
            cocotb.start_soon(memory.run())

    async def layer_counters():
        return [[await csr.read(layer_register(l, name)) for l in range(n_layers)]
                for name in ("LAYER_CYCLES", "LAYER_NNZ_DX", "LAYER_NNZ_DH")]

    sink = FrameSink(dut, A, E, H, h_prob, rng, layer_counters if want_layers else None)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    if memory is not None:
        await csr.write(WEIGHT_BASE, int(cfg["weight_base"]))

    load_writes, load_cycles = 0, 0
    model = str(cfg.get("load_model", ""))
    if model:
        # The host's load (drnn_hw.load): what the core is, from its registers; the bundle
        # checked against it; then the writes.
        from drnn_hw.bundle import ModelBundle
        from drnn_hw.load import CoreInfo, load_writes as writes_for

        regs = {}
        for addr in (ID, SHAPE, MAXIMA, FORMATS0, FORMATS1, KEPT):
            regs[addr] = await csr.read(addr)
        await RisingEdge(dut.clk)
        writes = writes_for(ModelBundle.load(model), CoreInfo.read(regs.__getitem__))
        c_load = get_sim_time("ns")
        await csr.write_many(writes)
        load_writes, load_cycles = len(writes), (get_sim_time("ns") - c_load) // CLOCK_NS

    h = np.zeros((N, T, H), np.int64)
    stats = np.zeros((5, N, T), np.int64)
    x_done = np.zeros((N, T), np.int64)
    h_done = np.zeros((N, T), np.int64)
    layer_stats = np.zeros((3, N, T, n_layers), np.int64)
    steps_reg = np.zeros(N, np.int64)
    t0, cpu0, c0 = time.perf_counter(), time.process_time(), get_sim_time("ns")
    for n in range(N):
        L = int(lengths[n])
        if theta_x[n] >= 0:
            await csr.write(THETA_X, int(theta_x[n]))
        if theta_h[n] >= 0:
            await csr.write(THETA_H, int(theta_h[n]))
        for l in range(n_layers):
            for k, reg in enumerate(("LAYER_THETA_X", "LAYER_THETA_H")):
                if thetas[n, l, k] >= 0:
                    await csr.write(layer_register(l, reg), int(thetas[n, l, k]))
        await RisingEdge(dut.clk)        # out of the last register read's read-only phase
        if resets[n]:
            await csr.write(CTRL, CTRL_RESET_STATE)
            if h0_given:
                for code in h0[n]:
                    await csr.write(H0, int(code) & ((1 << A) - 1))
        if L and lockstep:
            # One frame at a time: x_t only after h_{t-1} has left (the latency of a frame).
            frames = []
            for t in range(L):
                sink_task = cocotb.start_soon(sink.receive(1, f"sequence {n} step {t}"))
                beats = frame_beats(x[n, t], A, E)
                x_done[n, t] = (await source.send(beats, len(beats)))[0]
                frames += await with_timeout(sink_task, limit * CLOCK_NS, "ns")
        elif L:
            sink_task = cocotb.start_soon(sink.receive(L, f"sequence {n}"))
            beats = [b for t in range(L) for b in frame_beats(x[n, t], A, E)]
            x_done[n, :L] = await source.send(beats, len(beats) // L)
            frames = await with_timeout(sink_task, limit * L * CLOCK_NS, "ns")
        if L:
            h_done[n, :L] = sink.done[-L:]
            for t, ((frame, status), layers) in enumerate(zip(frames, sink.layers[-L:])):
                h[n, t] = frame
                stats[:, n, t] = status
                if layers is not None:
                    layer_stats[:, n, t] = layers
        steps_reg[n] = await csr.read(STEPS)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sim_cycles = (get_sim_time("ns") - c0) // CLOCK_NS
    status_end = await csr.read(STATUS)
    np.savez(os.environ["DRNN_SIM_OUT"], h=h, cycles=stats[0], nnz_dx=stats[1],
             nnz_dh=stats[2], steps=stats[3], prescan=stats[4], steps_reg=steps_reg,
             status_end=status_end,
             layer_cycles=layer_stats[0], layer_nnz_dx=layer_stats[1],
             layer_nnz_dh=layer_stats[2], x_done=x_done, h_done=h_done,
             sim_cycles=sim_cycles, wall_seconds=wall, cpu_seconds=cpu,
             load_writes=load_writes, load_cycles=load_cycles)
