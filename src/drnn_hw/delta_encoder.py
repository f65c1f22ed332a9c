"""The input encoding unit (IEU): delta encoder and delta scheduler.

Per timestep the encoder visits ``WX = ceil(I/E)`` windows of the input x (one FIFO beat each),
then ``WH = ceil(H/E)`` windows of the hidden state h, E elements per window. For every element
of a window it computes the exact delta against its reference (x̂ or ĥ, held here in flip-flops),
applies the threshold, and the scheduler emits the kept deltas as (value, weight address) pairs,
up to K per cycle, in index order. A window with d kept deltas occupies ``max(1, ceil(d/K))``
cycles (see :mod:`drnn_hw.cycle_model`). The references of a window are updated at its last
cycle, where the delta was kept.

The weight address of a delta is ``column · NB`` (the weight bank's layout, ``NB = ceil(H/P)``),
kept as a running window base plus a constant per lane, so no multiplier is needed.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .hdl_arith import select_onehot
from .numerics import Formats

__all__ = ["DeltaEncoder", "delta_entry_layout", "address_width"]


def address_width(inputs: int, hidden: int, pe: int) -> int:
    """Bits of a weight-bank address: ``(I + H) · NB`` rows."""
    depth = (inputs + hidden) * math.ceil(hidden / pe)
    return max(1, (depth - 1).bit_length())


def delta_entry_layout(fmts: Formats, addr_bits: int) -> data.StructLayout:
    """One scheduled delta: its exact value, the weight address of its column, x or h."""
    return data.StructLayout({
        "delta": signed(fmts.act_bits + 1),
        "addr": unsigned(addr_bits),
        "is_x": unsigned(1),
    })


class DeltaEncoder(wiring.Component):
    """Delta encoder + scheduler for one GRU layer.

    Ports
    -----
    start : In(1)
        The step starts this cycle; the first window is scanned in this same cycle.
    clear : In(1)
        End of step: drop ``done`` and the nnz counters (must not coincide with ``start``).
    clear_refs : In(1)
        Reset x̂ and ĥ to 0 (RESET_STATE).
    theta_x, theta_h : In(act_bits)
        Threshold codes used during the scan (the core samples them at the step start).
    x_data : In(ArrayLayout(signed(act_bits), E))
        The head beat of the input FIFO. ``x_pop`` pops it at the last cycle of its window;
        ``x_pop_last`` says this was window WX-1 (the beat must carry ``last``).
    h : In(ArrayLayout(signed(act_bits), H))
        The hidden state (stable during the scan).
    emit_valid : Out(K), emit : Out(ArrayLayout(entry, K))
        Deltas emitted this cycle; valid bits form a prefix (lane 0 first, index order).
    done : Out(1)
        The scan is over (from cycle S until ``clear``).
    nnz_dx, nnz_dh : Out(16)
        Kept deltas of the step so far.
    """

    def __init__(self, fmts: Formats, inputs: int, hidden: int, *, pe: int, lanes: int,
                 scan: int):
        self.fmts, self.I, self.H = fmts, inputs, hidden
        self.P, self.K, self.E = pe, lanes, scan
        self.NB = math.ceil(hidden / pe)
        self.WX, self.WH = math.ceil(inputs / scan), math.ceil(hidden / scan)
        self.addr_bits = address_width(inputs, hidden, pe)
        self.entry = delta_entry_layout(fmts, self.addr_bits)
        act = signed(fmts.act_bits)
        super().__init__({
            "start": In(1),
            "clear": In(1),
            "clear_refs": In(1),
            "theta_x": In(unsigned(fmts.act_bits)),
            "theta_h": In(unsigned(fmts.act_bits)),
            "x_data": In(data.ArrayLayout(act, scan)),
            "x_pop": Out(1),
            "x_pop_last": Out(1),
            "h": In(data.ArrayLayout(act, hidden)),
            "emit_valid": Out(lanes),
            "emit": Out(data.ArrayLayout(self.entry, lanes)),
            "done": Out(1),
            "nnz_dx": Out(16),
            "nnz_dh": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        fmts, I, H, E, K, NB = self.fmts, self.I, self.H, self.E, self.K, self.NB
        WX, WH = self.WX, self.WH
        act = signed(fmts.act_bits)

        # References in flip-flops: every window reads E of them and may update all E at once.
        x_ref = [Signal(act, name=f"x_ref{i}") for i in range(I)]
        h_ref = [Signal(act, name=f"h_ref{j}") for j in range(H)]

        running = Signal()
        in_x = Signal(init=1)              # scanning x windows (else h windows)
        xw = Signal(range(max(WX, 2)))     # window index within x / within h
        hw = Signal(range(max(WH, 2)))
        base = Signal(self.addr_bits + 1)  # weight address of the window's lane 0
        emitted = Signal(E)                # lanes of this window already emitted
        scanning = Signal()
        m.d.comb += scanning.eq(self.start | running)

        def lane(values, w, e, n):
            i = w * E + e
            return values[i] if i < n else Const(0, act)

        # The window under the scanner: current values, references, and which lanes exist.
        cur = [Signal(act, name=f"cur{e}") for e in range(E)]
        ref = [Signal(act, name=f"ref{e}") for e in range(E)]
        lane_ok = Signal(E)
        for e in range(E):
            h_cur = Array(lane(self.h, w, e, H) for w in range(WH))[hw]
            x_r = Array(lane(x_ref, w, e, I) for w in range(WX))[xw]
            h_r = Array(lane(h_ref, w, e, H) for w in range(WH))[hw]
            x_ok = Array(Const(w * E + e < I) for w in range(WX))[xw]
            h_ok = Array(Const(w * E + e < H) for w in range(WH))[hw]
            m.d.comb += [
                cur[e].eq(Mux(in_x, self.x_data[e], h_cur)),
                ref[e].eq(Mux(in_x, x_r, h_r)),
                lane_ok[e].eq(Mux(in_x, x_ok, h_ok)),
            ]

        theta = Signal(unsigned(fmts.act_bits))
        m.d.comb += theta.eq(Mux(in_x, self.theta_x, self.theta_h))
        delta = [Signal(signed(fmts.act_bits + 1), name=f"delta{e}") for e in range(E)]
        keep = Signal(E)
        for e in range(E):
            mag = Mux(delta[e] < 0, -delta[e], delta[e])
            m.d.comb += [
                delta[e].eq(cur[e] - ref[e]),
                keep[e].eq(lane_ok[e] & (delta[e] != 0) & (mag >= theta)),
            ]

        # Scheduler: the lowest K not-yet-emitted kept lanes, as one-hot vectors.
        remaining = Signal(E)
        m.d.comb += remaining.eq(keep & ~emitted)
        picks = []
        rest = remaining
        for k in range(K):
            pick = Signal(E, name=f"pick{k}")
            m.d.comb += pick.eq((rest & (~rest + 1))[:E])   # lowest set bit
            picks.append(pick)
            rest_next = Signal(E, name=f"rest{k}")
            m.d.comb += rest_next.eq(rest & ~pick)
            rest = rest_next
        window_last = Signal()
        m.d.comb += window_last.eq(rest == 0)

        lane_addr = [Const(e * NB, self.addr_bits + 1) for e in range(E)]
        for k, pick in enumerate(picks):
            m.d.comb += [
                self.emit_valid[k].eq(scanning & pick.any()),
                self.emit[k].delta.eq(select_onehot(pick, delta, signed(fmts.act_bits + 1))),
                self.emit[k].addr.eq(base + select_onehot(pick, lane_addr,
                                                          unsigned(self.addr_bits + 1))),
                self.emit[k].is_x.eq(in_x),
            ]

        count = sum(self.emit_valid[k] for k in range(K))
        with m.If(scanning):
            with m.If(in_x):
                m.d.sync += self.nnz_dx.eq(self.nnz_dx + count)
            with m.Else():
                m.d.sync += self.nnz_dh.eq(self.nnz_dh + count)

        m.d.comb += [
            self.x_pop.eq(scanning & in_x & window_last),
            self.x_pop_last.eq(xw == WX - 1),
        ]

        with m.If(self.start):
            m.d.sync += running.eq(1)

        def store_kept(window, windows, refs, size):
            # At the end of a window, the reference of every kept element takes its new value.
            with m.Switch(window):
                for w in range(windows):
                    with m.Case(w):
                        for e in range(E):
                            if w * E + e < size:
                                with m.If(keep[e]):
                                    m.d.sync += refs[w * E + e].eq(cur[e])

        with m.If(scanning):
            with m.If(~window_last):
                m.d.sync += emitted.eq(emitted | sum_or(picks))
            with m.Else():
                m.d.sync += emitted.eq(0)
                with m.If(in_x):
                    store_kept(xw, WX, x_ref, I)
                    with m.If(xw == WX - 1):
                        m.d.sync += [in_x.eq(0), xw.eq(0), base.eq(I * NB)]
                    with m.Else():
                        m.d.sync += [xw.eq(xw + 1), base.eq(base + E * NB)]
                with m.Else():
                    store_kept(hw, WH, h_ref, H)
                    with m.If(hw == WH - 1):
                        m.d.sync += [in_x.eq(1), hw.eq(0), base.eq(0),
                                     running.eq(0), self.done.eq(1)]
                    with m.Else():
                        m.d.sync += [hw.eq(hw + 1), base.eq(base + E * NB)]

        with m.If(self.clear):
            m.d.sync += [self.done.eq(0), self.nnz_dx.eq(0), self.nnz_dh.eq(0)]
        with m.If(self.clear_refs):
            m.d.sync += [r.eq(0) for r in x_ref + h_ref]
        return m


def sum_or(values):
    acc = values[0]
    for v in values[1:]:
        acc = acc | v
    return acc
