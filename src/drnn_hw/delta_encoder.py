"""The input encoding unit (IEU): delta encoder and delta scheduler.

Per timestep the encoder visits ``WX = ceil(I/E)`` windows of the input x (one FIFO beat each),
then ``WH = ceil(H/E)`` windows of the hidden state h, E elements per window. Four stages, a
register after each of the first three:

* **F, fetch**: the window's current values, references (x̂ or ĥ, held here in distributed
  RAM, one x̂ and one ĥ memory per element) and their exact differences; each element's
  reference and h-side value are registered a cycle before the fetch (from a copy of the
  window counters one window ahead), so the memories' reads and the subtraction are in
  different cycles;
* **T, test**: the threshold test of every element;
* **P, pick**: the scheduler's first cycle (the lowest K kept elements, whether the window
  fits in one cycle);
* **B, schedule**: emits the window's kept deltas as (value, weight address) pairs, up to K per
  cycle, in index order, and picks the next cycle's elements. A window with d kept deltas
  occupies B for ``max(1, ceil(d/K))`` cycles (see :mod:`drnn_hw.cycle_model`); at its last
  cycle the references of the kept elements take their new values. Whether a cycle is the
  window's last comes from registers only: it moves every stage.

F, T and P always have the next windows ready (their inputs are a buffered frame and the
hidden state), so B runs windows back to back and the whole schedule is the cycle model's,
three cycles (``SCAN_LATENCY``) after the start. The stages all advance when B is empty or
finishing. (T and P were one stage until the ULX3S build's critical path ran from the
comparators through the pick trees.)

The control every element's registers depend on (the window counters and x/h flag of F, the
pass's start and run flags, the stages' enable, the end of a window for the reference stores)
exists once per element, in registers named ``*_dup`` that equal the encoder's own in every
cycle: from one register it was a net over the whole encoder, the ULX3S builds' critical path
(issue #10).

The weight address of a delta is ``column · NB`` (the weight bank's layout, ``NB = ceil(H/P)``),
kept as a running window base plus a constant per element, so no multiplier is needed.

Stacked layers (:mod:`drnn_hw.layer_map`): the encoder holds every layer's x̂ and ĥ and runs
one layer per start (``start_next`` a cycle before), the one on its ``layer`` input (stable
from the cycle before the start to the end of the pass). Layer 0's x comes from the FIFO,
layer l's from layer l−1's hidden state; window indices and weight addresses are the
layer's (its region's column base added).

The stage registers F, T and B are ``lib.data`` struct views; the deltas leave on a
:class:`DeltaStreamSignature` port (to :class:`~drnn_hw.delta_queue.DeltaQueue`).
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .hdl_arith import check_positive, refuse, select_onehot, times_const
from .layer_map import LayerDescriptor, descriptor_values, layer_map, total_words
from .numerics import Formats

__all__ = ["DeltaEncoder", "DeltaStreamSignature", "delta_entry_layout", "address_width"]


def address_width(inputs: int, hidden, rows: int) -> int:
    """Bits of a weight-bank address: the bank has ``(I + H) · NB`` words, ``NB = ceil(H/P)``,
    ``P = rows`` (summed over the layers when ``hidden`` is a sequence of per-layer H)."""
    depth = total_words(layer_map(inputs, hidden, rows, 1))
    return max(1, (depth - 1).bit_length())


def delta_entry_layout(fmts: Formats, addr_bits: int) -> data.StructLayout:
    """One scheduled delta: its exact value, the weight address of its column, x or h."""
    return data.StructLayout({
        "delta": signed(fmts.act_bits + 1),
        "addr": unsigned(addr_bits),
        "is_x": unsigned(1),
    })


#: Elements of stage F whose threshold comparators one copy of the window's Θ feeds.
THETA_ELEMENTS_PER_COPY = 4


class DeltaStreamSignature(wiring.Signature):
    """The kept deltas of a step, K per cycle at most, seen from the scheduler (the sender).

    A plain signature, not a ``lib.stream`` one: there is no ready. The receiver
    (:class:`~drnn_hw.delta_queue.DeltaQueue`) holds every delta of a step, so it can never
    refuse one, and the scan's timing is the cycle model's, which a stall would break.

    Members
    -------
    valid : Out(columns)
        Which of the K entries hold a delta this cycle; always a prefix (column 0 first), the
        deltas in index order across columns and cycles.
    entry : Out(ArrayLayout(entry_layout, columns))
        The deltas (:func:`delta_entry_layout`).
    done : Out(1)
        No more deltas this step (held until the step is cleared).

    Raises ValueError naming ``columns`` when it is < 1.
    """

    def __init__(self, entry_layout: data.StructLayout, columns: int):
        check_positive(self, columns=columns)
        self.entry_layout, self.columns = entry_layout, columns
        super().__init__({
            "valid": Out(columns),
            "entry": Out(data.ArrayLayout(entry_layout, columns)),
            "done": Out(1),
        })

    def __eq__(self, other):
        return type(other) is type(self) and \
            (self.entry_layout, self.columns) == (other.entry_layout, other.columns)

    __hash__ = None


class DeltaEncoder(wiring.Component):
    """Delta encoder + scheduler for one GRU layer (the IEU; see the module docstring).

    Parameters
    ----------
    fmts : Formats
        Number formats (:mod:`drnn_hw.numerics`); values are ``act_bits`` activation codes,
        deltas ``act_bits + 1`` bits (exact).
    inputs : int
        I (≥ 1), of layer 0.
    hidden : int or sequence of int
        H (≥ 1), or every layer's H for a stacked core (:mod:`drnn_hw.layer_map`).
    rows : int
        P (≥ 1): only used for the weight addresses (``column · ceil(H/P)``).
    columns : int
        K, deltas emitted per cycle (1 or 2).
    scan : int
        E (≥ 1), elements examined per cycle = elements per x beat.
    slots : sequence of int, optional
        A compressed core's words per weight column of every layer (``kept_l``): the
        addresses are then ``column_base + column · kept_l`` in the issue-slot layout
        (:func:`~drnn_hw.layer_map.layer_map` with ``blocks = slots``); default NB_l.
    hold : bool
        Build the ``h_hold`` input (issue #10's step overlap). Without it the encoder has
        none of its logic: its per-element copies are registers the ULX3S flow keeps
        (``*_dup``), so even a constant hold would cost flip-flops and a term in every
        fetch enable.

    Ports
    -----
    layer : In(range(L))
        Only with L > 1: the layer of the next (or current) pass; must hold its value from
        the cycle before the start (when the window counters and thresholds are loaded for it)
        until the pass is cleared.
    desc : In(ArrayLayout(LayerDescriptor, L))
        The layers' descriptors (:func:`~drnn_hw.layer_map.descriptor_values`; by default the
        model's own, a run-time core's from its registers): like ``layer``, they must hold
        from the cycle before the start until the pass is cleared.
    start_next : In(1)
        The pass starts in the next cycle (its *start*, when stage F fetches the first
        window). Registered here, once per element besides the encoder's own (``start{e}_dup``):
        from one ``start`` register the pass's start reached every element's fetch enable
        through one net across the die, the critical path of the default core at 80 MHz
        (11.66 ns, #10's twenty-third round). A layer's pass may start only after its previous
        one is ``done`` (when the references it updates are written: they are read a cycle
        before the fetch).
    h_hold : In(1)
        Only with ``hold``: hold the pass before its first h window (issue #10's step overlap: a pass of layer 0
        may scan x_{t+1} while the AP still writes h_t). While ``h_hold`` is high, stage F
        fetches no h window; the x windows and the stages after F go on (the held cycles
        pass as empty windows). The paused window's h side is read again in every held
        cycle, so ``h`` must hold its new values from the first cycle ``h_hold`` is low; the
        window is fetched from the cycle after that at the earliest. It must not rise once
        the pass has fetched its first h window (the read is of the layer's first h window).
    clear : In(1)
        End of step: drop ``done`` and the nnz counters (must not coincide with the start).
    clear_refs : In(1)
        Reset x̂ and ĥ to 0 (RESET_STATE), in the next cycle (from one register per element,
        which marks every word of the element's reference memories as zero; no pass may
        start in that cycle).
    theta_x, theta_h : In(act_bits)
        Threshold codes of the layer, copied in every cycle without a scan: a pass uses the
        values of the cycle before its start.
    x_data : In(ArrayLayout(signed(act_bits), E))
        The head beat of the input FIFO. ``x_pop`` pops it when stage F takes its window;
        ``x_pop_last`` says this was window WX-1 (the beat must carry ``last``).
    h : In(ArrayLayout(signed(act_bits), ΣH))
        The hidden state of every layer, concatenated. Read a cycle before the fetch that
        uses it: layer l−1's h (a stacked layer's x) must be stable from the cycle before
        the start to the end of the pass, the layer's own from the start on (its first h
        window is fetched after its first x window).
    deltas : Out(DeltaStreamSignature(entry, K))
        Deltas emitted this cycle (by stage B): ``valid`` a prefix, column 0 first, index
        order; ``entry`` (:func:`delta_entry_layout` with ``addr_bits``) the exact delta, its
        column's weight address ``column_base + column · NB`` and whether it is a Δx. ``done``: the scan is
        over (from cycle ``S + SCAN_LATENCY`` until ``clear``).
    nnz_dx, nnz_dh : Out(16)
        Kept deltas of the step so far.

    Raises
    ------
    ValueError
        ``inputs``, ``hidden``, ``rows`` or ``scan`` < 1, or ``columns`` not 1 or 2 (the
        scheduler's pick and count trees are built for at most two per cycle).
    """

    def __init__(self, fmts: Formats, inputs: int, hidden: int, *, rows: int, columns: int,
                 scan: int, slots=None, hold: bool = False):
        layers = [hidden] if isinstance(hidden, int) else list(hidden)
        check_positive(self, inputs=inputs, rows=rows, scan=scan)
        check_positive(self, **{f"hidden[{l}]" if len(layers) > 1 else "hidden": h
                                for l, h in enumerate(layers)})
        if columns not in (1, 2):
            raise refuse(self, f"columns must be 1 or 2, got {columns}")
        self.map = layer_map(inputs, layers, rows, scan, slots)
        self.fmts, self.I, self.H = fmts, inputs, layers[0] if len(layers) == 1 else layers
        self.P, self.K, self.E = rows, columns, scan
        self.hold = hold
        self.NB = math.ceil(layers[0] / rows)
        self.WX, self.WH = self.map[0].x_windows, self.map[0].h_windows
        self.addr_bits = address_width(inputs, layers, rows) if slots is None else \
            max(1, (total_words(self.map) - 1).bit_length())
        self.entry = delta_entry_layout(fmts, self.addr_bits)
        act = signed(fmts.act_bits)
        super().__init__({
            **({"layer": In(range(len(layers)))} if len(layers) > 1 else {}),
            "desc": In(data.ArrayLayout(LayerDescriptor, len(layers)),
                       init=descriptor_values(inputs, layers, rows, scan, blocks=slots)),
            "start_next": In(1),
            **({"h_hold": In(1)} if hold else {}),
            "clear": In(1),
            "clear_refs": In(1),
            "theta_x": In(unsigned(fmts.act_bits)),
            "theta_h": In(unsigned(fmts.act_bits)),
            "x_data": In(data.ArrayLayout(act, scan)),
            "x_pop": Out(1),
            "x_pop_last": Out(1),
            "h": In(data.ArrayLayout(act, sum(layers))),
            "deltas": Out(DeltaStreamSignature(self.entry, columns)),
            "nnz_dx": Out(16),
            "nnz_dh": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        fmts, E, K, lm = self.fmts, self.E, self.K, self.map
        L = len(lm)
        act = signed(fmts.act_bits)
        dlt = signed(fmts.act_bits + 1)
        addr = unsigned(self.addr_bits + 1)

        def per_layer(values):
            """A constant per layer, chosen by the ``layer`` input (a plain int for one)."""
            return values[0] if L == 1 else Array(Const(v) for v in values)[self.layer]

        def field(name):
            """The pass's layer descriptor field (the ``desc`` port)."""
            if L == 1:
                return self.desc[0][name]
            return Array(self.desc[l][name] for l in range(L))[self.layer]

        # Every layer's windows, in order: global window index -> (layer, window in layer).
        x_windows = [(l, w) for l, s in enumerate(lm) for w in range(s.x_windows)]
        blocks = Signal(16)                # NB of the pass's layer
        m.d.comb += blocks.eq(field("blocks"))
        h_windows = [(l, w) for l, s in enumerate(lm) for w in range(s.h_windows)]
        # The references, x̂ and ĥ, in distributed RAM: per element e one memory of x̂ and one of
        # ĥ, word g holding element e of global x (h) window g (padding elements' words are
        # never written): a window reads one word of each element's memories and may write all
        # E, so each element has its own, one code wide. In flip-flops (the demo model's 1,216)
        # behind a window multiplexer per element, they cost the encoder 511 more LUT4 and 1,125
        # more FF in Yosys's estimate (issue #10's twenty-sixth and twenty-seventh rounds).
        # ``x_zero{e}``/``h_zero{e}``: the word reads as 0 (RESET_STATE marks every word, a
        # write unmarks its own), so the clear takes one cycle as the flip-flops' did.
        x_mem = [memory.Memory(shape=act, depth=max(2, len(x_windows)), init=[])
                 for _ in range(E)]    # (two words at least: Verilator refuses a 0-bit address)
        h_mem = [memory.Memory(shape=act, depth=max(2, len(h_windows)), init=[])
                 for _ in range(E)]
        for e in range(E):
            m.submodules[f"x_ref{e}"], m.submodules[f"h_ref{e}"] = x_mem[e], h_mem[e]
        # (All set at reset: the domain's reset zeroes x̂ and ĥ as it did the flip-flops.)
        x_zero = [Signal(len(x_windows), name=f"x_zero{e}", init=(1 << len(x_windows)) - 1)
                  for e in range(E)]
        h_zero = [Signal(len(h_windows), name=f"h_zero{e}", init=(1 << len(h_windows)) - 1)
                  for e in range(E)]
        # The delayed clear, one register per element: from one register, the core's decision
        # to apply RESET_STATE reached every reference across the encoder in one net.
        clear_e = [Signal(name=f"clear_refs{e}_dup") for e in range(E)]


        # --- window sequencer -------------------------------------------------------------
        a_run = Signal()                   # windows are left to fetch this pass
        a_in_x = Signal(init=1)            # fetching x windows (else h windows)
        xw = Signal(range(max(len(x_windows), 2)))     # global x / h window index
        hw = Signal(range(max(len(h_windows), 2)))
        # Each element e of stage F reads the window through its own copy of the counters and
        # the x/h flag (registers named ``*_dup``, which the ULX3S flow keeps unmerged): one
        # counter bit selected E·act_bits·windows mux inputs spread over the die, the critical
        # path of the P = 8, stacked and random-model ULX3S builds.
        counters = [(xw, hw, a_in_x)] + [
            (Signal.like(xw, name=f"xw{e}_dup"), Signal.like(hw, name=f"hw{e}_dup"),
             Signal(init=1, name=f"in_x{e}_dup")) for e in range(E)]
        a_base = Signal(addr)              # weight address of the window's element 0
        start = Signal(name="start")       # the pass starts (F fetches its first window)
        a_valid = Signal()
        m.d.sync += start.eq(self.start_next)
        m.d.comb += a_valid.eq(start | a_run)
        # Per element e, copies of ``start`` and ``a_run`` (equal to them in every cycle),
        # from which e's ``a_valid_e`` enables its fetch and loads its counters and read-ahead
        # registers between passes.
        start_e = [Signal(name=f"start{e}_dup") for e in range(E)]
        a_run_e = [Signal(name=f"a_run{e}_dup") for e in range(E)]
        a_valid_e = [Signal(name=f"a_valid{e}") for e in range(E)]
        for e in range(E):
            m.d.sync += start_e[e].eq(self.start_next)
            m.d.comb += a_valid_e[e].eq(start_e[e] | a_run_e[e])
            with m.If(start_e[e]):
                m.d.sync += a_run_e[e].eq(1)
        # The pass held before its first h window (``h_hold``, registered like the start, once
        # for the encoder's own fetch and once per element): the window to fetch next is an h
        # window and the hold was high in the cycle before.
        pause, pause_e = None, None
        if self.hold:
            h_hold_q = Signal(name="h_hold_q")
            m.d.sync += h_hold_q.eq(self.h_hold)
            pause = Signal()
            m.d.comb += pause.eq(h_hold_q & ~a_in_x)
            pause_e = [Signal(name=f"pause{e}") for e in range(E)]
            for e in range(E):
                h_hold_e = Signal(name=f"h_hold{e}_dup")
                m.d.sync += h_hold_e.eq(self.h_hold)
                m.d.comb += pause_e[e].eq(h_hold_e & ~counters[1 + e][2])
        fetch = Signal()                   # F takes the next window this cycle
        advance = Signal()                 # every stage moves on (B is empty or finishing)
        # The same per element e, from e's own copy of B's control (below): they enable e's
        # values, deltas and addresses in F, T and B and its window counters, about 3·60
        # flip-flops each, where one ``advance`` net enabled all E·180 across the encoder.
        advance_e = [Signal(name=f"advance{e}") for e in range(E)]
        fetch_e = [Signal(name=f"fetch{e}") for e in range(E)]
        # The pass's last x and h windows (the layout's window bases, the descriptor's window
        # counts), registered, once for the encoder's counters and once per element (for its
        # own and its read-ahead copy): each counter compared itself with the sum (a carry
        # chain from the descriptor) and the ahead counters were a slow path group of the
        # default core at 80 MHz (11.42 ns, #10's twenty-third round). They are the sums of
        # the cycle before, which is why ``layer`` and ``desc`` hold from the cycle before
        # the start. (For the descriptors ``descriptor_values`` writes, the sums are windows of
        # the layout, so a counter's width holds them.)
        x_last_sum = per_layer([s.x_window_base - 1 for s in lm]) + field("x_windows")
        h_last_sum = per_layer([s.h_window_base - 1 for s in lm]) + field("h_windows")
        lasts = [(Signal.like(xw, name="x_last" if c == 0 else f"x_last{c - 1}_dup"),
                  Signal.like(hw, name="h_last" if c == 0 else f"h_last{c - 1}_dup"))
                 for c in range(E + 1)]
        for x_l, h_l in lasts:
            m.d.sync += [x_l.eq(x_last_sum), h_l.eq(h_last_sum)]
        x_last, h_last = lasts[0]

        def h_element(values, g, e):
            """Element e of global h window g in ``values`` (every layer's h, concatenated)."""
            l, w = h_windows[g]
            j = w * E + e
            return values[lm[l].h_base + j] if j < lm[l].hidden else Const(0, act)

        def x_from_h(g, e):
            """Layer l > 0 takes its x from layer l−1's hidden state (0 for layer 0's windows,
            which come from the FIFO)."""
            l, w = x_windows[g]
            i = w * E + e
            if l == 0 or i >= lm[l].inputs:
                return Const(0, act)
            return self.h[lm[l - 1].h_base + i]

        # The window in flight, common to stages F, T and B: which window, x or h, the last one
        # of the step, and per element its value, its exact delta and its weight address.
        window = {
            "valid": 1, "in_x": 1, "xw": xw.shape(), "hw": hw.shape(), "final": 1,
            "delta": data.ArrayLayout(dlt, E), "cur": data.ArrayLayout(act, E),
            "addr": data.ArrayLayout(addr, E),
        }
        per_element = ("delta", "cur", "addr")     # moved on by each element's own enable

        # --- stage F: the next window's values and deltas -----------------------------------
        # ok: the element exists (not padding past I or H). Whether it differs from its
        # reference is the test stage's (Δ ≠ 0, beside the threshold's sums): as cur ≠ ref
        # here it sat behind both window multiplexers, 13 LUT levels from ĥ (12.3 ns on the
        # ULX3S at 80 MHz, #10).
        # The window's threshold (Θx or Θh) is chosen at fetch too (``theta{g}_dup`` below), so
        # that the test stage does not fan one x/h select bit out to every comparator (the
        # ULX3S build's critical path ran from f.in_x through that select).
        f = Signal(data.StructLayout({**window, "ok": E}), name="f")
        # Each element's reference (x̂ or ĥ) and h-side value (h, or a stacked layer's x from
        # layer l−1's h) for the window F fetches *next* are registered a cycle ahead
        # (``ref{e}``, ``h_cur{e}``): at a fetch from the window after it, through a second
        # copy of the counters one window ahead (``*_ahead_dup``); between passes from the
        # layer's first x window. The window multiplexers and the subtraction behind them
        # were one cycle, the critical path of the P = 8, stacked and 2-layer P = 8 ULX3S
        # builds (15.26 ns at 66 MHz, #10's twenty-second round). No reference of the window
        # fetched next is written in between: within a pass B only stores windows fetched
        # before it, and a layer's next pass starts after ``done``, when its stores are over
        # (``clear_refs`` is forwarded, below).
        ahead = [(Signal.like(xw, name=f"xw{e}_ahead_dup"),
                  Signal.like(hw, name=f"hw{e}_ahead_dup"), Signal(name=f"in_x{e}_ahead_dup"))
                 for e in range(E)]
        x_first = per_layer([s.x_window_base for s in lm])

        def first_x_from_h(e):
            """Element e of the first x window of the pass's layer, from h (a stacked layer's
            x; 0 for layer 0)."""
            def one(l):
                return x_from_h(lm[l].x_window_base, e)
            return one(0) if L == 1 else Array(one(l) for l in range(L))[self.layer]

        def first_h(e):
            """Element e of the first h window of the pass's layer (from ``h``)."""
            def one(l):
                return h_element(self.h, lm[l].h_window_base, e)
            return one(0) if L == 1 else Array(one(l) for l in range(L))[self.layer]

        for e, ((xw_e, hw_e, in_x_e), (xw_a, hw_a, in_x_a)) in enumerate(zip(counters[1:],
                                                                              ahead)):
            x_ok = Array(Const(w * E + e) < self.desc[l].inputs for l, w in x_windows)[xw_e]
            h_ok = Array(Const(w * E + e) < self.desc[l].hidden for l, w in h_windows)[hw_e]
            ref = Signal(act, name=f"ref{e}")
            h_cur = Signal(act, name=f"h_cur{e}")
            # The reference memories' reads (asynchronous): between passes the layer's first
            # x window, else the window after the one fetched (the ahead counters). A pending
            # clear reads as 0 too (it marks the words at the end of its cycle).
            x_rd = x_mem[e].read_port(domain="comb")
            h_rd = h_mem[e].read_port(domain="comb")
            x_addr = Mux(a_valid_e[e], xw_a, x_first)
            m.d.comb += [x_rd.addr.eq(x_addr), h_rd.addr.eq(hw_a)]
            x_zeroed = Array(x_zero[e][g] for g in range(len(x_windows)))[x_addr]
            h_zeroed = Array(h_zero[e][g] for g in range(len(h_windows)))[hw_a]
            x_r = Mux(clear_e[e] | x_zeroed, 0, x_rd.data)
            h_r = Mux(clear_e[e] | h_zeroed, 0, h_rd.data)
            with m.If(~a_valid_e[e]):
                m.d.sync += [ref.eq(x_r), h_cur.eq(first_x_from_h(e))]
            with m.Elif(fetch_e[e]):
                x_h = Array(x_from_h(g, e) for g in range(len(x_windows)))[xw_a]
                h_h = Array(h_element(self.h, g, e) for g in range(len(h_windows)))[hw_a]
                m.d.sync += [ref.eq(Mux(in_x_a, x_r, h_r)), h_cur.eq(Mux(in_x_a, x_h, h_h))]
            if self.hold:
                with m.Elif(pause_e[e]):
                    # Held before the layer's first h window: its h as it is now (ĥ is the
                    # encoder's own, already read).
                    m.d.sync += h_cur.eq(first_h(e))
            x_cur = self.x_data[e]
            if L > 1:
                x_cur = Mux(self.layer == 0, x_cur, h_cur)
            cur = Signal(act, name=f"cur{e}")
            m.d.comb += cur.eq(Mux(in_x_e, x_cur, h_cur))
            with m.If(fetch_e[e]):
                m.d.sync += [
                    f.cur[e].eq(cur), f.delta[e].eq(cur - ref),
                    f.ok[e].eq(Mux(in_x_e, x_ok, h_ok)),
                    f.addr[e].eq(a_base + times_const(blocks, e)),
                ]

        # --- stage T: the threshold test of the window in F -----------------------------------
        # The thresholds and their negatives, registered while no window is in flight: a step
        # uses the values of the cycle before its start.
        th = Signal(data.StructLayout({n: dlt for n in ("x", "h", "x_neg", "h_neg")}),
                    name="theta")
        with m.If(~a_valid & ~f.valid):
            m.d.sync += [th.x.eq(self.theta_x), th.h.eq(self.theta_h),
                         th.x_neg.eq(-self.theta_x), th.h_neg.eq(-self.theta_h)]
        # The window's threshold in F, one copy per THETA_ELEMENTS_PER_COPY elements, taken
        # with the first element's copies of the fetch and the x/h flag (equal to the
        # encoder's own in every cycle): one register fed all 2·E comparators across the die.
        keep = Signal(E)
        for g in range(0, E, THETA_ELEMENTS_PER_COPY):
            theta = Signal(dlt, name=f"theta{g}_dup")
            theta_neg = Signal(dlt, name=f"theta_neg{g}_dup")
            with m.If(fetch_e[g]):
                in_x_g = counters[1 + g][2]
                m.d.sync += [theta.eq(Mux(in_x_g, th.x, th.h)),
                             theta_neg.eq(Mux(in_x_g, th.x_neg, th.h_neg))]
            for e in range(g, min(E, g + THETA_ELEMENTS_PER_COPY)):
                # |Δ| ≥ θ: Δ − θ ≥ 0 or −θ − Δ ≥ 0, side by side, each the sign of a sum one
                # bit wider than its terms (a carry chain's last bit, no comparator logic
                # after it: the test was the P = 8 core's critical path, issue #10).
                d = f.delta[e]
                ge, le = ~(d - theta)[-1], ~(theta_neg - d)[-1]
                m.d.comb += keep[e].eq(f.ok[e] & (d != 0) & (ge | le))
        # The test's result is registered (stage T) before the scheduler's first cycle is
        # worked out from it (stage P): the comparators' carry chains and the pick trees
        # together were the ULX3S build's critical path.
        t = Signal(data.StructLayout({**window, "keep": E}), name="t")

        # --- stage P: the scheduler's first cycle of the window in T -------------------------
        # The lowest K kept elements (one-hot) and whether the window fits in one cycle or takes
        # two, registered, so the scheduler runs from registers.
        t_picks = lowest_set(t.keep, K)
        t_one_cycle = at_most(t.keep, K)
        t_kept = popcount(t.keep)
        # (From the saturated counts, not the popcount: the popcount's adders and compare in
        # front of the 16 copies of two_cycles were the P = 8 core's critical path at 85 MHz,
        # 11.8 ns, #10's twelfth round.)
        t_two_cycles = more_than(t.keep, K) & at_most(t.keep, 2 * K)
        # The window's cycles after its first two, ceil(d/K) - 2 for d kept elements, read only
        # if it takes more than two cycles. Registered once (``b_left``) as the window enters
        # B, and copied into ``left`` and each element's copy during the window's first cycle
        # (they are first read in its second): the popcount followed by a fan-out to those 17
        # registers was the critical path of the P = 8 core at 85 MHz (14.69 ns, #10).
        t_left = ((t_kept + (K - 1)) // K if K > 1 else t_kept) - 2
        b_left = Signal(range(E + 1), name="b_left")

        # --- stage B: the scheduler ---------------------------------------------------------
        # keep: the kept elements; rest: those not emitted yet; first: the window's first cycle;
        # two_cycles: the window takes two cycles (from T).
        b = Signal(data.StructLayout({**window, "keep": E, "rest": E, "two_cycles": 1,
                                      "first": 1}), name="b")
        picks = [Signal(E, name=f"pick{k}") for k in range(K)]   # this cycle's elements
        # ``pick_any[k] == picks[k].any()`` in every cycle, loaded alongside ``picks``: the
        # OR over E bits was in front of the delta queue's write decision and its registered
        # ``is_full`` (11 LUT levels from ``pick``, 12.3 ns on the ULX3S at 75 MHz, #10).
        pick_any = [Signal(name=f"pick_any{k}") for k in range(K)]
        # After the window's first cycle: its cycles after this one (in the first, ceil(d/K) - 2).
        left = Signal(range(E + 1))

        # The window ends this cycle (``b.valid`` and, in its first cycle, it fits in one;
        # later, no cycles are left): a register, worked out a cycle ahead, since it drives
        # every stage. From B's fields it was three LUT levels before the stages' enables, and
        # the copies' enables (below) were 13.4 ns on the ULX3S at 75 MHz (#10).
        #   after a window's last cycle (or none): last' = t.valid & t_one_cycle
        #   after a first cycle that is not the last: last' = two_cycles
        #   after a later cycle that is not the last: last' = (left == 1)
        window_last = Signal(name="window_last")
        # Per element, a copy of B's control (valid, first, two_cycles, left, last), updated as
        # B's own below, from which the element's ``advance_e`` / ``fetch_e`` come.
        ctl_layout = data.StructLayout({"valid": 1, "first": 1, "two_cycles": 1,
                                        "left": range(E + 1), "last": 1})
        window_last_e = []
        for e in range(E):
            ctl = Signal(ctl_layout, name=f"b_ctl{e}_dup")
            window_last_e.append(ctl.last)
            m.d.comb += [advance_e[e].eq(~ctl.valid | ctl.last),
                         fetch_e[e].eq(advance_e[e] & a_valid_e[e] & ~pause_e[e]
                                       if self.hold else advance_e[e] & a_valid_e[e])]
            with m.If(advance_e[e]):
                m.d.sync += [ctl.valid.eq(t.valid), ctl.first.eq(1),
                             ctl.two_cycles.eq(t_two_cycles),
                             ctl.last.eq(t.valid & t_one_cycle)]
            with m.Elif(ctl.valid):
                m.d.sync += [ctl.first.eq(0),
                             ctl.last.eq(Mux(ctl.first, ctl.two_cycles, ctl.left == 1))]
                with m.If(ctl.first):
                    m.d.sync += ctl.left.eq(b_left)
                with m.Else():
                    m.d.sync += ctl.left.eq(ctl.left - 1)

        out = self.deltas
        for k, pick in enumerate(picks):
            m.d.comb += [
                out.valid[k].eq(b.valid & pick_any[k]),
                out.entry[k].delta.eq(select_onehot(pick, list(b.delta), dlt)),
                out.entry[k].addr.eq(select_onehot(pick, list(b.addr), addr)),
                out.entry[k].is_x.eq(b.in_x),
            ]
        # The next cycle's elements: the lowest K of those not emitted yet.
        rest = Signal(E)
        m.d.comb += rest.eq(b.rest & ~sum_or(picks))
        next_picks = lowest_set(rest, K)

        count = sum(out.valid[k] for k in range(K))
        with m.If(b.valid):
            with m.If(b.in_x):
                m.d.sync += self.nnz_dx.eq(self.nnz_dx + count)
            with m.Else():
                m.d.sync += self.nnz_dh.eq(self.nnz_dh + count)

        # --- F -> T -> B ------------------------------------------------------------------
        m.d.comb += [
            advance.eq(~b.valid | window_last),
            fetch.eq(advance & a_valid & ~pause if self.hold else advance & a_valid),
            self.x_pop.eq(fetch & a_in_x & (self.layer == 0 if L > 1 else 1)),
            self.x_pop_last.eq(xw == self.desc[0].x_windows - 1),
        ]
        with m.If(start):
            m.d.sync += a_run.eq(1)
        with m.If(advance):
            m.d.sync += [
                f.valid.eq(a_valid & ~pause if self.hold else a_valid), f.in_x.eq(a_in_x),
                f.xw.eq(xw), f.hw.eq(hw),
                f.final.eq(~a_in_x & (hw == h_last)),
                b.two_cycles.eq(t_two_cycles), b.first.eq(1), b.keep.eq(t.keep),
                window_last.eq(t.valid & t_one_cycle), b_left.eq(t_left),
                b.rest.eq(t.keep),
            ]
            m.d.sync += [t[n].eq(f[n]) for n in window if n not in per_element]
            m.d.sync += [b[n].eq(t[n]) for n in window if n not in per_element]
            m.d.sync += [p.eq(t) for p, t in zip(picks, t_picks)]
            m.d.sync += [a.eq(more_than(t.keep, k)) for k, a in enumerate(pick_any)]
        for e in range(E):
            with m.If(advance_e[e]):
                m.d.sync += t.keep[e].eq(keep[e])
                m.d.sync += [t[n][e].eq(f[n][e]) for n in per_element]
                m.d.sync += [b[n][e].eq(t[n][e]) for n in per_element]
        step = times_const(blocks, E)
        with m.If(fetch):
            with m.If(a_in_x):
                with m.If(xw == x_last):
                    m.d.sync += a_base.eq(field("h_column"))
                with m.Else():
                    m.d.sync += a_base.eq(a_base + step)
            with m.Else():
                with m.If(hw == h_last):
                    m.d.sync += a_run.eq(0)
                with m.Else():
                    m.d.sync += a_base.eq(a_base + step)
        with m.If(~a_valid):
            m.d.sync += a_base.eq(per_layer([s.column_base for s in lm]))
        # The ahead copies step like the counters; between passes they point at the window
        # after the layer's first (its first h window when it has one x window).
        one_x = field("x_windows") == 1
        h_first = per_layer([s.h_window_base for s in lm])
        for e, (xw_a, hw_a, in_x_a) in enumerate(ahead):
            with m.If(~a_valid_e[e]):
                m.d.sync += [xw_a.eq(Mux(one_x, x_first, x_first + 1)), hw_a.eq(h_first),
                             in_x_a.eq(~one_x)]
        for i, (xw_c, hw_c, in_x_c) in enumerate(counters + ahead):
            x_last_c, h_last_c = lasts[0 if i == 0 else 1 + (i - 1) % E]
            with m.If(fetch if i == 0 else fetch_e[(i - 1) % E]):
                with m.If(in_x_c):
                    with m.If(xw_c == x_last_c):
                        m.d.sync += in_x_c.eq(0)
                    with m.Else():
                        m.d.sync += xw_c.eq(xw_c + 1)
                with m.Else():
                    with m.If(hw_c == h_last_c):
                        m.d.sync += in_x_c.eq(1)
                        if 1 <= i <= E:      # the pass's last fetch (as ``a_run`` below)
                            m.d.sync += a_run_e[i - 1].eq(0)
                    with m.Else():
                        m.d.sync += hw_c.eq(hw_c + 1)
            if i <= E:
                with m.If(~(a_valid if i == 0 else a_valid_e[i - 1])):
                    # Between passes the counters point at the first windows of the layer on
                    # ``layer`` (which is why it must be valid the cycle before the start).
                    m.d.sync += [xw_c.eq(x_first), hw_c.eq(h_first)]

        # At the end of a window the reference of every kept element takes its new value
        # (element e's from e's copy of B's control; only existing elements are kept).
        for e in range(E):
            store = Signal(name=f"store{e}")
            m.d.comb += store.eq(window_last_e[e] & b.keep[e])
            x_wr, h_wr = x_mem[e].write_port(), h_mem[e].write_port()
            m.d.comb += [x_wr.addr.eq(b.xw), x_wr.data.eq(b.cur[e]), x_wr.en.eq(store & b.in_x),
                         h_wr.addr.eq(b.hw), h_wr.data.eq(b.cur[e]), h_wr.en.eq(store & ~b.in_x)]
            for g in range(len(x_windows)):
                with m.If(store & b.in_x & (b.xw == g)):
                    m.d.sync += x_zero[e][g].eq(0)
            for g in range(len(h_windows)):
                with m.If(store & ~b.in_x & (b.hw == g)):
                    m.d.sync += h_zero[e][g].eq(0)

        with m.If(b.valid):
            with m.If(~window_last):
                m.d.sync += [b.rest.eq(rest), b.first.eq(0),
                             window_last.eq(Mux(b.first, b.two_cycles, left == 1))]
                m.d.sync += [p.eq(n) for p, n in zip(picks, next_picks)]
                m.d.sync += [a.eq(more_than(rest, k)) for k, a in enumerate(pick_any)]
                with m.If(b.first):
                    m.d.sync += left.eq(b_left)
                with m.Else():
                    m.d.sync += left.eq(left - 1)
            with m.Else():
                with m.If(b.final):
                    m.d.sync += out.done.eq(1)

        with m.If(self.clear):
            m.d.sync += [out.done.eq(0), self.nnz_dx.eq(0), self.nnz_dh.eq(0)]
        # The clear a cycle later, from one register per element.
        for e in range(E):
            m.d.sync += clear_e[e].eq(self.clear_refs)
            with m.If(clear_e[e]):
                m.d.sync += [x_zero[e].eq(-1), h_zero[e].eq(-1)]
        return m


def popcount(bits):
    """Number of set bits of a Value (an adder tree)."""
    terms = [bits[i] for i in range(len(bits))]
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def saturated_count(bits, top: int):
    """``min(number of set bits, top)`` for ``top`` ≤ 7, as a ``top.bit_length()``-bit value: a
    tree of small constant tables (groups of four bits, then pairs of counts), no carry chain;
    one LUT level per tree level for ``top`` ≤ 3, a LUT5/LUT6 (LUT4s and the slice's wide
    multiplexers) per join above."""
    assert 1 <= top <= 7
    w = top.bit_length()
    mask = (1 << w) - 1

    def table(n_in):      # saturated count of an n_in-bit group
        return Array(Const(min(bin(v).count("1"), top), w) for v in range(1 << n_in))

    def join(x, y):       # saturated sum of two saturated counts
        return Array(Const(min((v & mask) + (v >> w), top), w)
                     for v in range(1 << 2 * w))[Cat(x, y)]

    counts = [table(min(4, len(bits) - i))[bits[i:i + 4]] for i in range(0, len(bits), 4)]
    while len(counts) > 1:
        counts = [join(counts[i], counts[i + 1]) if i + 1 < len(counts) else counts[i]
                  for i in range(0, len(counts), 2)]
    return counts[0]


def at_most(bits, k: int):
    """Whether at most ``k`` (1 to 6) of ``bits`` are set."""
    return saturated_count(bits, k + 1) <= k


def more_than(bits, k: int):
    """Whether more than ``k`` (0 to 6) of ``bits`` are set (for k < K: whether
    :func:`lowest_set`'s vector ``k`` is not all zero)."""
    return saturated_count(bits, k + 1) > k


def lowest_set(bits, k: int):
    """The lowest ``k`` set bits of ``bits`` as ``k`` one-hot vectors (all zero when there are
    fewer): bit e is the j-th lowest when it is set and exactly j bits below it are.
    The counts are :func:`saturated_count` trees, in parallel for every bit, so the depth is
    a few LUT levels instead of k carry chains in series."""
    below = [Const(0, 2)] + [saturated_count(bits[:e], k) for e in range(1, len(bits))]
    return [Cat(*(bits[e] & (below[e] == j) for e in range(len(bits)))) for j in range(k)]


def sum_or(values):
    acc = values[0]
    for v in values[1:]:
        acc = acc | v
    return acc
