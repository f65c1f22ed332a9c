"""The Amaranth engine: the generated core in Amaranth's own simulator.

Slow (about 10k cycles per second) but needs nothing beyond Amaranth; for debugging and for the
unit tests of the gateware. Each sequence starts with a CTRL RESET_STATE write, written once the
previous sequence's last output frame has been received. ``cycles``, ``nnz_dx`` and ``nnz_dh``
are read from the core's status port when the last beat of a step's output frame is taken.
"""

from __future__ import annotations

import math

import numpy as np

from drnn_hw.cycle_model import CoreShape
from drnn_hw.errors import UserError
from drnn_hw.golden import GoldenResult, check_lengths
from drnn_hw.contract import LayerRegister, layer_register
from drnn_hw.golden import initial_state
from drnn_hw.registers import REGISTERS

__all__ = ["run", "simulate"]


def _pack_frames(x_seq: np.ndarray, act_bits: int, scan: int) -> list[int]:
    """(T, I) codes -> T·WX packed beats (element e at bits [act_bits·e, ...), last at act_bits·E)."""
    T, I = x_seq.shape
    wx = math.ceil(I / scan)
    mask = (1 << act_bits) - 1
    beats = []
    for t in range(T):
        for w in range(wx):
            word = 0
            for e in range(scan):
                i = w * scan + e
                if i < I:
                    word |= (int(x_seq[t, i]) & mask) << (act_bits * e)
            if w == wx - 1:
                word |= 1 << (act_bits * scan)
            beats.append(word)
    return beats


def _unpack_beat(word: int, act_bits: int, scan: int) -> tuple[list[int], int]:
    mask, sign = (1 << act_bits) - 1, 1 << (act_bits - 1)
    elements = []
    for e in range(scan):
        v = (word >> (act_bits * e)) & mask
        elements.append(v - (1 << act_bits) if v & sign else v)
    return elements, (word >> (act_bits * scan)) & 1


def simulate(bundle, sequences, shape: CoreShape, *, waves=None, stall_seed=None,
             x_valid_prob: float = 1.0, h_ready_prob: float = 1.0, thetas=None,
             reset_between: bool = True, extra_checks=None, h0=None, maxima=None,
             core_bundle=None, layer_stats: bool = False, core_options=None, monitor=None):
    """Run ``sequences`` (list of (T_n, I) code arrays) through a fresh core.

    Returns a list (per sequence) of dicts with ``h`` (T, H), ``cycles``, ``nnz_dx``, ``nnz_dh``,
    ``prescan`` (T,; the status port's PRESCAN_LAST: cycles the step's scan started before its
    cycle 0), plus ``frames_h_last_ok`` (every output frame had ``last`` exactly on its final beat).
    ``thetas``: optional per-sequence (theta_x, theta_h) written over the bus before the
    sequence (layer 0's registers), or per sequence a list of L such pairs (every layer's).
    ``h0``: optional per-sequence initial state, ΣH_l codes (layer 0's units first), written
    to the H0 register after the sequence's RESET_STATE. ``x_valid_prob`` / ``h_ready_prob``
    < 1 insert random stalls on the streams. ``maxima``
    (:class:`~drnn_hw.layer_map.Maxima`): run on a run-time core of these maxima, generated
    from ``core_bundle`` (by default ``bundle``), into which ``bundle`` is first loaded over
    the register bus (:func:`drnn_hw.load.load_writes`, read back through the bus).
    ``layer_stats``: also read every layer's LAYER_CYCLES over the bus at each step (while
    its output frame waits, so the next step cannot overwrite them): ``layer_cycles`` (T, L).
    ``core_options``: attributes set on the core before it is elaborated (tests only, e.g.
    the compressed MxV's ``_fault``). ``monitor``: an async function ``(ctx, dut)`` run
    beside the producer and consumer as a background testbench (tests only: checks of
    internal signals in every cycle).
    """
    from amaranth.sim import Simulator

    from drnn_hw.core import DeltaGRUCore

    fmts = bundle.formats
    E = shape.scan
    if maxima is None:
        dut = DeltaGRUCore(bundle, shape)
    else:
        dut = DeltaGRUCore(core_bundle or bundle, shape, maxima=maxima)
    for name, value in (core_options or {}).items():
        setattr(dut, name, value)
    n_layers = bundle.num_layers
    H = shape.output_units([ly.hidden_size for ly in bundle.layers])
    WH = math.ceil(H / E)
    act_bits = fmts.act_bits
    rng = np.random.default_rng(stall_seed)
    results = [dict(h=np.zeros((len(s), H), np.int64), cycles=np.zeros(len(s), np.int64),
                    prescan=np.zeros(len(s), np.int64),
                    nnz_dx=np.zeros(len(s), np.int64), nnz_dh=np.zeros(len(s), np.int64),
                    **({"layer_cycles": np.zeros((len(s), n_layers), np.int64)}
                       if layer_stats else {}))
               for s in sequences]
    state = {"seq_go": -1, "seq_done": -1, "last_ok": True}
    x_payload, h_payload = dut.x.payload.as_value(), dut.h.payload.as_value()

    async def csr_write(ctx, name, value):
        ctx.set(dut.csr.addr, REGISTERS[name][0] if isinstance(name, str) else name)
        ctx.set(dut.csr.w_data, value)
        ctx.set(dut.csr.w_stb, 1)
        await ctx.tick()
        ctx.set(dut.csr.w_stb, 0)

    async def csr_read(ctx, addr):
        ctx.set(dut.csr.addr, addr)
        ctx.set(dut.csr.r_stb, 1)
        await ctx.tick()
        ctx.set(dut.csr.r_stb, 0)
        await ctx.tick()
        return ctx.get(dut.csr.r_data)

    async def producer(ctx):
        if maxima is not None:
            from drnn_hw.load import INFO_REGISTERS, CoreInfo, load_writes

            regs = {}
            for addr in INFO_REGISTERS:
                regs[int(addr)] = await csr_read(ctx, int(addr))
            for addr, value in load_writes(bundle, CoreInfo.read(regs.__getitem__)):
                await csr_write(ctx, addr, value)
            state["load_done"] = True
        for n, seq in enumerate(sequences):
            # Wait until every output of the previous sequence was received.
            while state["seq_done"] < n - 1:
                await ctx.tick()
            if reset_between:
                await csr_write(ctx, "CTRL", 1)
            if h0 is not None:
                for code in h0[n]:
                    await csr_write(ctx, "H0", int(code) & ((1 << act_bits) - 1))
            if thetas is not None:
                pairs = thetas[n] if np.ndim(thetas[n]) == 2 else [thetas[n]]
                for l, (tx, th) in enumerate(pairs):
                    await csr_write(ctx, layer_register(l, LayerRegister.LAYER_THETA_X), int(tx))
                    await csr_write(ctx, layer_register(l, LayerRegister.LAYER_THETA_H), int(th))
            state["seq_go"] = n
            for beat in _pack_frames(np.asarray(seq), act_bits, E):
                while x_valid_prob < 1.0 and rng.random() >= x_valid_prob:
                    ctx.set(dut.x.valid, 0)
                    await ctx.tick()
                ctx.set(x_payload, beat)
                ctx.set(dut.x.valid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.x.ready)
                    if ready:
                        break
                ctx.set(dut.x.valid, 0)

    async def consumer(ctx):
        for n, seq in enumerate(sequences):
            T = len(seq)
            for t in range(T):
                h = []
                if layer_stats:
                    # The frame's commit has updated the layer registers; the next step cannot
                    # commit before this frame is taken.
                    ctx.set(dut.h.ready, 0)
                    while not (await ctx.tick().sample(dut.h.valid))[2]:
                        pass
                    for l in range(n_layers):
                        results[n]["layer_cycles"][t, l] = await csr_read(
                            ctx, layer_register(l, LayerRegister.LAYER_CYCLES))
                for w in range(WH):
                    while True:
                        ready = 1 if h_ready_prob >= 1.0 else int(rng.random() < h_ready_prob)
                        ctx.set(dut.h.ready, ready)
                        _, _, valid, word, cyc, ndx, ndh, pre = await ctx.tick().sample(
                            dut.h.valid, h_payload, dut.status.cycles_last,
                            dut.status.nnz_dx_last, dut.status.nnz_dh_last,
                            dut.status.prescan_last)
                        if valid and ready:
                            break
                    elements, last = _unpack_beat(word, act_bits, E)
                    if last != (w == WH - 1):
                        state["last_ok"] = False
                    h.extend(elements)
                ctx.set(dut.h.ready, 0)
                r = results[n]
                r["h"][t] = h[:H]
                if any(h[H:]):
                    state["last_ok"] = False
                r["cycles"][t], r["nnz_dx"][t], r["nnz_dh"][t] = cyc, ndx, ndh
                r["prescan"][t] = pre
            state["seq_done"] = n
        if extra_checks is not None:
            await extra_checks(ctx, dut)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    if monitor is not None:
        async def watch(ctx):
            await monitor(ctx, dut)
        sim.add_testbench(watch, background=True)
    if waves:
        with sim.write_vcd(str(waves)):
            sim.run()
    else:
        sim.run()
    for r in results:
        r["frames_ok"] = state["last_ok"]
    return results


def h0_per_sequence(bundle, h0, n: int) -> list | None:
    """``h0`` (a list of L code arrays, (H_l,) or (n, H_l), checked by
    :func:`~drnn_hw.golden.initial_state`) as n flat vectors of ΣH_l codes (the H0 writes)."""
    if h0 is None:
        return None
    try:
        state = initial_state(bundle, n, h0)
    except ValueError as e:
        raise UserError(f"h0: {e}") from None
    return [np.concatenate([s.h[i] for s in state]) for i in range(n)]


def run(bundle, x_codes, lengths=None, shape=None, waves=None, h0=None, state=None,
        **options) -> GoldenResult:
    """Run (N, T, I) activation codes through the core; same result type as the golden model.

    ``h0``: every layer's initial state (see :func:`~drnn_hw.golden.initial_state`), written
    over the H0 register before each sequence. A carried ``state`` (x̂, ĥ, M) cannot be
    loaded into the core: UserError."""
    if state is not None:
        raise UserError("a carried state (--state-in) needs the golden engine: the core can "
                        "load h0 but not x̂, ĥ and the delta memories")
    shape = shape or CoreShape()
    if shape.weights == "axi":
        raise UserError("--weights axi: the amaranth engine has no DRAM model; use --engine "
                        "verilator (a fixed-latency AXI memory) or golden")
    x = np.asarray(x_codes, dtype=np.int64)
    if x.ndim != 3 or x.shape[2] != bundle.input_size:
        raise ValueError(f"x must be (N, T, {bundle.input_size}), got {x.shape}")
    N, T, _ = x.shape
    lengths = check_lengths(lengths, N, T)
    H = shape.output_units([ly.hidden_size for ly in bundle.layers])
    seqs = [x[n, :lengths[n]] for n in range(N) if lengths[n] > 0]
    h0_flat = h0_per_sequence(bundle, h0, N)
    if h0_flat is not None:
        options["h0"] = [h0_flat[n] for n in range(N) if lengths[n] > 0]
    results = iter(simulate(bundle, seqs, shape, waves=waves, **options))
    out = GoldenResult(h=np.zeros((N, T, H), np.int64), nnz_dx=np.zeros((N, T), np.int64),
                       nnz_dh=np.zeros((N, T), np.int64), cycles=np.zeros((N, T), np.int64),
                       lengths=lengths, prescan=np.zeros((N, T), np.int64))
    for n in range(N):
        L = lengths[n]
        if L == 0:
            continue
        r = next(results)
        out.h[n, :L] = r["h"]
        out.nnz_dx[n, :L], out.nnz_dh[n, :L], out.cycles[n, :L] = (
            r["nnz_dx"], r["nnz_dh"], r["cycles"])
        out.prescan[n, :L] = r["prescan"]
        if "layer_cycles" in r:
            if out.layer_cycles is None:
                out.layer_cycles = np.zeros((N, T, bundle.num_layers), np.int64)
            out.layer_cycles[n, :L] = r["layer_cycles"]
    return out
