"""The input encoding unit (IEU): delta encoder and delta scheduler.

Per timestep the encoder visits ``WX = ceil(I/E)`` windows of the input x (one FIFO beat each),
then ``WH = ceil(H/E)`` windows of the hidden state h, E elements per window. Two stages:

* **A, encode**: for every element of the window, the exact delta against its reference (x̂ or
  ĥ, held here in flip-flops) and the threshold test; registered into B when B is free.
* **B, schedule**: emits the window's kept deltas as (value, weight address) pairs, up to K per
  cycle, in index order. A window with d kept deltas occupies B for ``max(1, ceil(d/K))``
  cycles (see :mod:`drnn_hw.cycle_model`); at its last cycle the references of the kept
  elements take their new values.

A always has the next window ready (its inputs are a buffered frame and the hidden state), so
B runs windows back to back and the whole schedule is the cycle model's, one cycle
(``SCAN_LATENCY``) after the start. The register between the stages keeps the subtract/compare
chain and the priority pick in separate cycles.

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
        The step starts this cycle; the first window is encoded (stage A) in this same cycle.
    clear : In(1)
        End of step: drop ``done`` and the nnz counters (must not coincide with ``start``).
    clear_refs : In(1)
        Reset x̂ and ĥ to 0 (RESET_STATE).
    theta_x, theta_h : In(act_bits)
        Threshold codes used during the scan (the core samples them at the step start).
    x_data : In(ArrayLayout(signed(act_bits), E))
        The head beat of the input FIFO. ``x_pop`` pops it when its window moves to stage B;
        ``x_pop_last`` says this was window WX-1 (the beat must carry ``last``).
    h : In(ArrayLayout(signed(act_bits), H))
        The hidden state (stable during the scan).
    emit_valid : Out(K), emit : Out(ArrayLayout(entry, K))
        Deltas emitted this cycle (by stage B); valid bits form a prefix (lane 0 first, index order).
    done : Out(1)
        The scan is over (from cycle ``S + SCAN_LATENCY`` until ``clear``).
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
        dlt = signed(fmts.act_bits + 1)

        # References in flip-flops: every window reads E of them and may update all E at once.
        x_ref = [Signal(act, name=f"x_ref{i}") for i in range(I)]
        h_ref = [Signal(act, name=f"h_ref{j}") for j in range(H)]

        # --- stage A: the window under the encoder (deltas, threshold) ----------------------
        a_run = Signal()                   # windows are left to encode this step
        a_in_x = Signal(init=1)            # encoding x windows (else h windows)
        xw = Signal(range(max(WX, 2)))     # window index within x / within h
        hw = Signal(range(max(WH, 2)))
        a_base = Signal(self.addr_bits + 1)    # weight address of the window's lane 0
        a_valid = Signal()
        m.d.comb += a_valid.eq(self.start | a_run)

        def lane(values, w, e, n):
            i = w * E + e
            return values[i] if i < n else Const(0, act)

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
                cur[e].eq(Mux(a_in_x, self.x_data[e], h_cur)),
                ref[e].eq(Mux(a_in_x, x_r, h_r)),
                lane_ok[e].eq(Mux(a_in_x, x_ok, h_ok)),
            ]

        theta = Signal(unsigned(fmts.act_bits))
        m.d.comb += theta.eq(Mux(a_in_x, self.theta_x, self.theta_h))
        delta = [Signal(dlt, name=f"delta{e}") for e in range(E)]
        keep = Signal(E)
        for e in range(E):
            # |Δ| ≥ θ as two comparisons side by side (no negation in series).
            m.d.comb += [
                delta[e].eq(cur[e] - ref[e]),
                keep[e].eq(lane_ok[e] & (delta[e] != 0) &
                           ((delta[e] >= theta) | (delta[e] <= -theta))),
            ]

        # --- stage B: the scheduler, on the window registered from stage A ------------------
        b_valid = Signal()
        b_keep = Signal(E)
        b_delta = Signal(data.ArrayLayout(dlt, E))
        b_cur = Signal(data.ArrayLayout(act, E))
        b_in_x = Signal()
        b_xw = Signal.like(xw)
        b_hw = Signal.like(hw)
        b_base = Signal.like(a_base)
        b_final = Signal()                 # the step's last window
        emitted = Signal(E)                # lanes of this window already emitted

        # The lowest K not-yet-emitted kept lanes, as one-hot vectors.
        remaining = Signal(E)
        m.d.comb += remaining.eq(b_keep & ~emitted)
        picks = []
        rest = remaining
        for k in range(K):
            pick = Signal(E, name=f"pick{k}")
            m.d.comb += pick.eq((rest & (~rest + 1))[:E])   # lowest set bit
            picks.append(pick)
            rest_next = Signal(E, name=f"rest{k}")
            m.d.comb += rest_next.eq(rest & ~pick)
            rest = rest_next
        window_last = Signal()             # B finishes its window this cycle
        m.d.comb += window_last.eq(b_valid & (rest == 0))

        lane_addr = [Const(e * NB, self.addr_bits + 1) for e in range(E)]
        for k, pick in enumerate(picks):
            m.d.comb += [
                self.emit_valid[k].eq(b_valid & pick.any()),
                self.emit[k].delta.eq(select_onehot(pick, list(b_delta), dlt)),
                self.emit[k].addr.eq(b_base + select_onehot(pick, lane_addr,
                                                            unsigned(self.addr_bits + 1))),
                self.emit[k].is_x.eq(b_in_x),
            ]

        count = sum(self.emit_valid[k] for k in range(K))
        with m.If(b_valid):
            with m.If(b_in_x):
                m.d.sync += self.nnz_dx.eq(self.nnz_dx + count)
            with m.Else():
                m.d.sync += self.nnz_dh.eq(self.nnz_dh + count)

        # --- A -> B: a window moves on when B is empty or finishing ---------------------------
        load = Signal()
        m.d.comb += [
            load.eq(a_valid & (~b_valid | window_last)),
            self.x_pop.eq(load & a_in_x),
            self.x_pop_last.eq(xw == WX - 1),
        ]
        with m.If(self.start):
            m.d.sync += a_run.eq(1)
        with m.If(load):
            m.d.sync += [
                b_valid.eq(1), b_keep.eq(keep), b_in_x.eq(a_in_x), b_xw.eq(xw), b_hw.eq(hw),
                b_base.eq(a_base), b_final.eq(~a_in_x & (hw == WH - 1)),
            ]
            m.d.sync += [b_delta[e].eq(delta[e]) for e in range(E)]
            m.d.sync += [b_cur[e].eq(cur[e]) for e in range(E)]
            with m.If(a_in_x):
                with m.If(xw == WX - 1):
                    m.d.sync += [a_in_x.eq(0), xw.eq(0), a_base.eq(I * NB)]
                with m.Else():
                    m.d.sync += [xw.eq(xw + 1), a_base.eq(a_base + E * NB)]
            with m.Else():
                with m.If(hw == WH - 1):
                    m.d.sync += [a_in_x.eq(1), hw.eq(0), a_base.eq(0), a_run.eq(0)]
                with m.Else():
                    m.d.sync += [hw.eq(hw + 1), a_base.eq(a_base + E * NB)]
        with m.Elif(window_last):
            m.d.sync += b_valid.eq(0)

        def store_kept(window, windows, refs, size):
            # At the end of a window, the reference of every kept element takes its new value.
            with m.Switch(window):
                for w in range(windows):
                    with m.Case(w):
                        for e in range(E):
                            if w * E + e < size:
                                with m.If(b_keep[e]):
                                    m.d.sync += refs[w * E + e].eq(b_cur[e])

        with m.If(b_valid):
            with m.If(~window_last):
                m.d.sync += emitted.eq(emitted | sum_or(picks))
            with m.Else():
                m.d.sync += emitted.eq(0)
                with m.If(b_in_x):
                    store_kept(b_xw, WX, x_ref, I)
                with m.Else():
                    store_kept(b_hw, WH, h_ref, H)
                with m.If(b_final):
                    m.d.sync += self.done.eq(1)

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
