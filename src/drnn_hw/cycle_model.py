"""The cycle model: how many clock cycles the core takes for one timestep.

This is the performance contract of the RTL: the cycle counter of the generated core must equal
:func:`step_cycles` exactly, for every step. The schedule it describes:

* **Scan** (IEU): after ``SCAN_LATENCY`` cycles (the fetch, test and pick stages fill the
  schedule stage; every time below counts from there), the encoder visits ``WX = ceil(I/E)`` windows of x, then ``WH = ceil(H/E)``
  windows of h, E elements each. A window with ``d`` kept deltas occupies the scheduler for
  ``c = max(1, ceil(d/K))`` cycles, emitting its deltas K per cycle in index order, so the j-th
  delta of window w leaves at ``s_w + floor(j/K)`` where ``s_w`` is the window's start cycle.
  The scan ends at ``S = sum(c_w)``.
* **MxV**: deltas are grouped K at a time in emission order (Δx first, then Δh, groups may span
  windows). A full group can start the cycle after its last delta was emitted; the last,
  partial group at ``S`` (only then is it known to be last). A group holds the MxV for
  ``NB = ceil(H/P)`` cycles (one P-row block of the weight columns per cycle). In order, with
  release times ``r_g``: ``m_g = max(r_g, m_{g-1} + NB)``, which gives the closed form
  ``D = max_g (r_g + (G - g) * NB)`` for the cycle after the last issue, ``G = ceil(nnz/K)``.
* **AP**: may start at ``A0 = max(S, D + mxv_drain(NB))`` (``A0 = S`` when no delta was kept):
  it reads block b at ``A0 + 1 + b`` (its read address is registered), which must not come
  before the last slot's write of block b, ``MXV_WRITE`` cycles after that slot (the read
  port is transparent to the write, so the write's own cycle will do), so
  ``mxv_drain(NB) = max(MXV_WRITE - 1 - NB, 0)``. It issues one P-element block per cycle for
  NB cycles, then needs ``AP_LATENCY`` more cycles (the issue's register and the pipeline) to
  commit the new h.

    cycles = SCAN_LATENCY + A0 + NB + AP_LATENCY

The AP's depth depends on the cell (:func:`ap_latency`): ``AP_LATENCY`` (12) is the GRU's,
``AP_LATENCY_LSTM`` (12) the LSTM's (the same depth from different stages: the LSTM's cell
state sum c' = fc + ig before tanh(c'), the GRU's register of tanh's address); everything else
is the same schedule. The three constants are pipeline depths, chosen so that every stage
holds at most one carry chain, table lookup or multiplier, and every product is registered
before it goes on (the clock target is 100 MHz on an ECP5); the core checks at import time
that its blocks' stage counts add up to them.

**Weights in DRAM** (``CoreShape.weights == "axi"``, :mod:`drnn_hw.axi_weight_fetch`): a
group can only start once its columns' weights are in the column buffer, so the MxV recurrence
becomes ``m_g = max(r_g, c_g, m_{g-1} + NB)`` with ``c_g`` the cycle after the last beat of the
group's last column; the fetch of column n starts after the delta is queued, when fewer than
``outstanding`` bursts are in flight and the buffer has a free column. With W-bit beats a
column is ``NB · SB`` beats, ``SB = ceil(G·P·w_bits / W)`` (bytes per column ÷ bus width),
read in bursts of at most ``burst`` beats, each ``latency`` cycles from its address to its
first beat (:func:`_axi_issue_end`, exact for a fixed-latency memory that never holds back
AR or R; :class:`ColumnFetch` carries SB, the layer's place in the image and the latency).
Streaming, a step costs about ``latency + nnz · NB · SB`` cycles once ``outstanding`` bursts
cover the latency. A compressed core in DRAM (``weight_format == "compressed"``) runs the same
memory terms on columns of ``kept`` pair words (SB then counts a pair word's beats) within
the spatial schedule (:func:`drnn_hw.spatial.spatial_step_cycles` with ``fetch``).

The counter runs from the cycle the step starts (a full x frame buffered, the core idle) to the
commit; cycles spent waiting for the output stream to take the previous h are not counted.

**Step overlap** (issue #10, the *prescan*; :func:`scan_schedule`; a core generated with
``CoreShape.step_overlap``, the default since the thirty-third round): a step whose x frame is waiting when the previous step's last pass starts its AP begins its scan of layer 0 then,
``prescan`` cycles before its cycle 0 (the cycle after the previous commit, from which its
cycles are counted); its h windows wait for h_t (fetched from its cycle 1) and its MxV groups
for the AP to be done with the multipliers and delta memories (from its cycle 0). Frames back
to back give :func:`streamed_prescan`; a frame that finds the core idle, 0 (today's schedule,
which is also a frame's latency, :func:`frame_latency`). The core shows each step's prescan
in PRESCAN_LAST.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["CoreShape", "ColumnFetch", "column_bursts", "WEIGHT_SOURCES", "WEIGHT_FORMATS",
           "AXI_FIELDS",
           "PRESETS", "SCAN_LATENCY", "MXV_WRITE", "AP_LATENCY", "AP_LATENCY_LSTM",
           "CHANNELS", "ap_latency", "LAYER_GAP", "FRAME_IO", "PRESCAN_GAP", "streamed_prescan",
           "beat_lags", "output_tail",
           "mxv_drain", "scan_schedule", "step_schedule",
           "step_cycles",
           "cycle_bound", "frame_latency", "frame_interval", "cycles_for_masks", "FORMULA"]

#: Cycles from the step's start to the first schedule cycle: the encoder's fetch, test and pick
#: stages (window values and deltas, threshold test, the first K picks) are registered before
#: the scheduler.
SCAN_LATENCY = 3
#: Cycles from an MxV issue slot to the write of its sums into the delta memory: the weights
#: are read, registered beside the multipliers (the channel's t0, issue #10: the block RAMs'
#: words crossing the die), registered as multiplier operands, multiplied, lane-summed,
#: accumulated. The AP may read a block in its write's cycle (:func:`mxv_drain`).
MXV_WRITE = 5
#: Cycles from the AP's start (A0) plus its NB issue cycles to the committed h: the AP issues
#: its first block one cycle after the start (a registered read address), then eleven pipeline
#: stages (memory read, σ ROM and its register, r·mnh 2, its register, the
#: ROM and its register, z·(h−n) 2, h′'s register); the commit takes the last block in the
#: cycle it is written.
AP_LATENCY = 12
#: The same for the LSTM core: the registered issue, then eleven stages (memory read, σ/tanh
#: ROMs of i, f, g, o and their register, f·c and i·g 2, their roundings, c' = fc + ig and
#: tanh(c')'s address, tanh ROM and its register, o·tc 2, h′'s register),
#: :mod:`drnn_hw.activation_lstm`.
AP_LATENCY_LSTM = 12
#: MxV channels (P·K multipliers each) of the core for each cell: the GRU's r, z, n; the
#: LSTM's i, f, g, o.
CHANNELS = {"gru": 3, "lstm": 4}
#: Idle cycles between one layer's pass and the next in a stacked core (the encoder loads the
#: next layer's window counters and threshold): a step of L layers takes the sum of the
#: layers' :func:`step_cycles` plus ``(L - 1) · LAYER_GAP``.
LAYER_GAP = 1

#: The host's view of a frame beyond the step's cycles and the output beats: the x FIFO's level
#: and the start condition's copy of it are registers (the step's cycle 0 is the second cycle
#: after the edge that takes the frame's last beat). See :func:`frame_latency`.
FRAME_IO = 1


def beat_lags(hidden, rows: int, scan: int, out_layers: str = "last", pass_cycles=None):
    """For each beat w of an output frame, how many cycles before the commit the AP writes the
    block of h that holds the beat's last unit (0: the commit's own block).

    ``hidden``: the layers' sizes H_l (an int for one layer); ``rows`` P and ``scan`` E as the
    core uses them (P = min(rows, max H_l)); ``out_layers`` "last" (the frame is the last
    layer's h) or "all" (every layer's, layer 0's first). The AP writes a layer's NB_l blocks
    in order, one per cycle, the last in the pass's last cycle, so a block b of the last layer
    is ``NB_L - 1 - b`` cycles before the commit. With "all", a block of layer l < L - 1 is
    also before the later passes: ``pass_cycles`` (shape (..., L), the layers' cycles of each
    step, :func:`step_cycles` per layer) adds ``Σ_{l' > l} (pass_cycles[l'] + LAYER_GAP)``.
    Returns an int array of shape (..., WH). Raises ValueError for another ``out_layers`` or
    a missing ``pass_cycles``.
    """
    hidden = [hidden] if isinstance(hidden, (int, np.integer)) else [int(h) for h in hidden]
    if out_layers not in ("last", "all"):
        raise ValueError(f"out_layers must be 'last' or 'all', got {out_layers!r}")
    P = min(rows, max(hidden))
    layers = range(len(hidden)) if out_layers == "all" else [len(hidden) - 1]
    # (layer, local block) of every output unit, in frame order.
    units = [(l, j // P) for l in layers for j in range(hidden[l])]
    need = [units[min((w + 1) * scan, len(units)) - 1] for w in range(-(-len(units) // scan))]
    nb = [-(-h // P) for h in hidden]
    lags = np.array([nb[l] - 1 - b for l, b in need])
    if all(l == len(hidden) - 1 for l, _ in need):
        return lags
    if pass_cycles is None:
        raise ValueError("beat_lags: out_layers 'all' with several layers needs pass_cycles")
    pc = np.asarray(pass_cycles)
    later = np.stack([(pc[..., l + 1:] + LAYER_GAP).sum(axis=-1) for l, _ in need], axis=-1)
    return lags + later


def output_tail(lags):
    """Cycles from the commit's clock edge to the edge at which the output frame's last beat
    leaves, for an output stream that is always ready and no earlier frame still in it.

    ``lags`` (shape (..., WH), :func:`beat_lags`): beat w loads into the output register one
    edge after the AP wrote its last block (from the hidden state, or after the commit from
    the holding registers), and leaves one edge after it loaded and after beat w - 1 left:
    ``t_w = max(t_{w-1} + 1, 2 - lag_w)``; a first beat that needs the commit's own block
    is taken from the AP at the commit (``t_0 = 1``). With every beat needing the last block
    (the frame sent after the commit) this is WH, the tail before issue #10's streaming.
    """
    lags = np.asarray(lags)
    t = np.where(lags[..., 0] == 0, 1, 2 - lags[..., 0])
    for w in range(1, lags.shape[-1]):
        t = np.maximum(t + 1, 2 - lags[..., w])
    return t


def frame_latency(cycles, lags):
    """Cycles from the clock edge that takes x_t's last beat to the edge at which h_t's last
    beat leaves, for a frame that finds the core idle and an output stream that is always
    ready: ``cycles + FRAME_IO + output_tail(lags)`` (``lags``: :func:`beat_lags` of the
    core's output frame). Works on arrays of ``cycles`` (and of ``lags``, shape (..., WH))."""
    return np.asarray(cycles) + FRAME_IO + output_tail(lags)


#: Cycles from a pass's AP start (the cycle A0 is decided) to the start of the next step's
#: scan when its x frame is waiting: the front (encoder, queue) is cleared in the cycle after
#: A0, and the scan starts in the cycle after that (:mod:`drnn_hw.core`, *prescan*).
PRESCAN_GAP = 2


def streamed_prescan(nb_last: int, cell: str = "gru") -> int:
    """The prescan (:func:`scan_schedule`) of a step whose x frame was already waiting when
    the previous step's last pass started its AP, as with frames back to back: that step
    commits ``NB_L + ap_latency(cell) - 1`` cycles after its A0 and the scan starts
    :data:`PRESCAN_GAP` cycles after it, so ``NB_L + ap_latency(cell) - PRESCAN_GAP``
    (``nb_last``: the last layer's NB). ValueError for an unknown cell."""
    return nb_last + ap_latency(cell) - PRESCAN_GAP


def frame_interval(cycles, layers: int = 1, step_overlap: bool = False):
    """Cycles between the last beats of two consecutive h frames when the x frames come back
    to back (the throughput), ``cycles`` being the later step's as the core counts them: a
    step starts in the cycle after the previous commit, a stacked core (L > 1) one cycle
    later (it loads layer 0's window counters; see :mod:`drnn_hw.core`). With the step
    overlap (``CoreShape.step_overlap``) the step's scan already started during the previous
    AP (its cycles are :func:`step_cycles` with :func:`streamed_prescan`, counted from the
    cycle after the previous commit) and no idle cycle comes between, so the interval is the
    cycles on any core."""
    return np.asarray(cycles) + (1 if layers > 1 and not step_overlap else 0)


def ap_latency(cell: str = "gru") -> int:
    """``AP_LATENCY`` of the core for ``cell`` ("gru" or "lstm"); ValueError for another."""
    try:
        return {"gru": AP_LATENCY, "lstm": AP_LATENCY_LSTM}[cell]
    except KeyError:
        raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}") from None


def mxv_drain(nb: int) -> int:
    """Cycles from D (the cycle after the last issue slot) to the earliest AP start: the AP
    reads block b at ``A0 + 1 + b``, no earlier than the last slot's write of it at
    ``D - nb + b + MXV_WRITE`` (the AP's read port is transparent to the write, so it may
    read in the write's cycle)."""
    return max(MXV_WRITE - 1 - nb, 0)


FORMULA = ("cycles = SCAN_LATENCY + max(S, D + max(MXV_WRITE - 1 - ceil(H/P), 0) if nnz else 0) + "
           "ceil(H/P) + AP_LATENCY; S = sum_w max(1, ceil(d_w/K)); "
           "D = max_g(r_g + (G-g)*ceil(H/P)); "
           f"SCAN_LATENCY={SCAN_LATENCY}, MXV_WRITE={MXV_WRITE}, AP_LATENCY={AP_LATENCY} "
           f"(GRU), {AP_LATENCY_LSTM} (LSTM)")


#: The largest P and E the SHAPE register's fields hold (:data:`drnn_hw.contract.ShapeLayout`,
#: 16 and 8 bits; a test holds the two together).
MAX_ROWS, MAX_SCAN = 2 ** 16 - 1, 2 ** 8 - 1


@dataclass(frozen=True)
class CoreShape:
    """The core's parallelism: what shapes the schedule (not the numerics).

    ``rows`` (P)
        Weight rows each MxV channel multiplies per delta column per cycle: one *block* of a
        column is P rows, a column of H rows takes ``NB = ceil(H/P)`` cycles.
    ``columns`` (K)
        Delta columns processed per cycle: the delta scheduler emits K (value, index) pairs per
        cycle and each weight bank has K read ports (DeltaRNN's dual-port BRAM gives K = 2).
    ``scan`` (E)
        Elements the delta encoder examines per cycle; also the elements per beat of the x and
        h streams.

    ``out_layers``
        What the h stream of a stacked core carries: ``"last"`` the last layer's h (H_{L−1}
        units per frame), ``"all"`` every layer's, concatenated, layer 0's first (ΣH_l
        units). Changes the output frame only, not the schedule (CLI ``--out-layers``).

    Each channel is a P × K array of multipliers (a multiplier is what the open peer calls a
    PE), so a GRU core has ``3·P·K`` (:attr:`multipliers`), an LSTM core ``4·P·K``
    (:meth:`multipliers_for`). Raises ValueError naming the parameter (as its CLI flag)
    when P or E is outside its SHAPE register field (1 .. :data:`MAX_ROWS`, 1 ..
    :data:`MAX_SCAN`), K ∉ {1, 2} or ``out_layers`` is not "last" or "all".
    """

    rows: int = 16     # P
    columns: int = 2   # K
    scan: int = 16     # E
    out_layers: str = "last"
    # Where the weights live (CLI ``--weights``): "baked" block RAM initialised at
    # generation, "runtime" block RAM loaded over the register bus (same schedule), or "axi": DRAM behind an AXI4 read master (:mod:`drnn_hw.axi_weight_fetch`),
    # with its bus width in bits, outstanding bursts, longest burst in beats and fetch buffer
    # in columns. They change the schedule (the fetch's memory terms), not the numerics.
    weights: str = "baked"
    bus_bits: int = 64
    outstanding: int = 4
    burst: int = 16
    buffer: int = 8
    # How the weight banks store a column (CLI ``--weight-format``): "dense" every row
    # (a kept delta column costs NB = ceil(H/P) cycles), or "compressed" the column-balanced
    # (value, row) pairs of each multiplier slice (a kept column costs the layer's ``kept``
    # cycles; the schedule is :mod:`drnn_hw.spatial`'s, the MxV :mod:`drnn_hw.mxv_compressed`).
    weight_format: str = "dense"
    # Issue #10's step overlap (CLI ``--step-overlap/--no-step-overlap``, module docstring): a
    # waiting x frame's scan starts while the AP finishes the step before
    # (:func:`scan_schedule`'s prescan). The default since the thirty-third round, when its
    # netlist met the ULX3S's 90 MHz; without it the core is the one before.
    step_overlap: bool = True

    def __post_init__(self):
        if not 1 <= self.rows <= MAX_ROWS:
            raise ValueError(f"--rows (P) must be from 1 to {MAX_ROWS} (the SHAPE register's "
                             f"field), got {self.rows}")
        if self.columns not in (1, 2):
            raise ValueError(f"--columns (K) must be 1 or 2 (the weight banks' read ports), "
                             f"got {self.columns}")
        if not 1 <= self.scan <= MAX_SCAN:
            raise ValueError(f"--scan (E) must be from 1 to {MAX_SCAN} (the SHAPE register's "
                             f"field), got {self.scan}")
        if self.out_layers not in ("last", "all"):
            raise ValueError(f"--out-layers must be 'last' or 'all', got {self.out_layers!r}")
        if self.weights not in WEIGHT_SOURCES:
            raise ValueError(f"--weights must be one of {', '.join(WEIGHT_SOURCES)}, got "
                             f"{self.weights!r}")
        if self.weight_format not in WEIGHT_FORMATS:
            raise ValueError(f"--weight-format must be one of {', '.join(WEIGHT_FORMATS)}, got "
                             f"{self.weight_format!r}")
        if self.bus_bits not in (32, 64, 128, 256, 512, 1024):
            raise ValueError(f"--bus-bits must be a power of two from 32 to 1024 (an AXI data "
                             f"bus), got {self.bus_bits}")
        if not 1 <= self.outstanding <= 64:
            raise ValueError(f"--outstanding must be 1 to 64 bursts, got {self.outstanding}")
        if self.burst not in (1, 2, 4, 8, 16, 32, 64, 128, 256) or \
                self.burst * self.bus_bits // 8 > 4096:
            raise ValueError(f"--burst must be a power of two of at most 256 beats and 4096 "
                             f"bytes (AXI4's limits), got {self.burst} beats of "
                             f"{self.bus_bits} bits")
        if not isinstance(self.step_overlap, bool):
            raise ValueError(f"step_overlap must be True or False, got {self.step_overlap!r}")
        if self.buffer & (self.buffer - 1) or self.buffer < 2 * self.columns:
            raise ValueError(f"--buffer must be a power of two ≥ 2·K = {2 * self.columns} "
                             f"columns, got {self.buffer}")

    @property
    def multipliers(self) -> int:
        """Multipliers of a GRU core, ``3·P·K`` (:meth:`multipliers_for` for any cell)."""
        return self.multipliers_for("gru")

    def multipliers_for(self, cell: str) -> int:
        """Multipliers of the core for ``cell``: ``CHANNELS[cell]·P·K`` (3 for the GRU, 4 for
        the LSTM). ValueError for an unknown cell."""
        if cell not in CHANNELS:
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        return CHANNELS[cell] * self.rows * self.columns

    def blocks(self, hidden: int) -> int:
        """NB: P-row blocks of an H-row column."""
        return math.ceil(hidden / self.rows)

    @classmethod
    def from_dict(cls, d: dict) -> "CoreShape":
        """The inverse of :meth:`to_dict`; also reads the keys ``pe``/``lanes`` written before
        the rename to ``rows``/``columns``, and a record without ``step_overlap`` as one
        written before the step overlap was the default (off unless it says so)."""
        fetch = {k: d[k] for k in AXI_FIELDS if k in d}
        return cls(rows=d.get("rows", d.get("pe")), columns=d.get("columns", d.get("lanes")),
                   scan=d["scan"], out_layers=d.get("out_layers", "last"),
                   weights=d.get("weights", "baked"),
                   weight_format=d.get("weight_format", "dense"),
                   step_overlap=bool(d.get("step_overlap", False)), **fetch)

    def to_dict(self) -> dict:
        """P, K, E (``rows``, ``columns``, ``scan``), ``out_layers`` unless "last", and the
        weight source unless "baked", with the fetch parameters of an "axi" one,
        ``weight_format`` unless "dense", and ``step_overlap`` always (:meth:`from_dict`
        reads a record without it as one without the overlap)."""
        d = asdict(self)
        if self.weight_format == "dense":
            del d["weight_format"]
        if self.out_layers == "last":
            del d["out_layers"]
        if self.weights != "axi":
            for k in AXI_FIELDS:
                del d[k]
        if self.weights == "baked":
            del d["weights"]
        return d

    def output_units(self, hidden) -> int:
        """Units per output frame for layers of ``hidden`` sizes (a sequence, or an int)."""
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        return sum(hidden) if self.out_layers == "all" else hidden[-1]


#: The weight sources a core can be generated with (``CoreShape.weights``, CLI ``--weights``).
WEIGHT_SOURCES = ("baked", "runtime", "axi")
#: How a core's weight banks hold the weights (``CoreShape.weight_format``, CLI
#: ``--weight-format``): every row, or column-balanced (value, row) pairs.
WEIGHT_FORMATS = ("dense", "compressed")
#: The fetch parameters of an "axi" core (``CoreShape`` fields).
AXI_FIELDS = ("bus_bits", "outstanding", "burst", "buffer")

PRESETS = {
    # Fits a ULX3S-85F (156 MULT18X18D) and an Arty Z7-20 (220 DSP48E1): 96 multipliers.
    "default": CoreShape(rows=16, columns=2, scan=16),
    # DeltaRNN (FPGA 2018) scale: 3 x 128 x 2 = 768 multipliers; with H=256, I=39, 16-bit weights.
    "deltarnn": CoreShape(rows=128, columns=2, scan=32),
}


@dataclass(frozen=True)
class ColumnFetch:
    """What the schedule of an AXI core (``CoreShape.weights == "axi"``) needs to know about
    one layer's columns in DRAM and the memory (:func:`drnn_hw.dram.column_fetch` makes them
    from a bundle; the layout is :mod:`drnn_hw.dram`'s).

    ``beats_per_block``: bus beats of one image word, SB: a block word (the P weights of every
    gate for one P-row block of a column), or a compressed core's pair word (every gate's P
    (value, block) pairs). ``first_word``: the layer's first word in the image (column c's
    word b is ``first_word + c·n + b``, n = NB or a compressed core's ``kept``, its beats
    from ``(first_word + c·n + b)·SB``; bursts split at multiples of ``burst`` beats).
    ``latency``: cycles from a read
    burst's address handshake (AR) to its first data beat (R) of a memory with a fixed latency
    and no back-pressure (≥ 1).
    """

    beats_per_block: int
    first_word: int = 0
    latency: int = 32

    def __post_init__(self):
        if self.beats_per_block < 1 or self.first_word < 0 or self.latency < 1:
            raise ValueError(f"ColumnFetch: beats_per_block ≥ 1, first_word ≥ 0 and latency "
                             f"≥ 1 cycle, got {self.beats_per_block}, {self.first_word}, "
                             f"{self.latency}")


def column_bursts(start_beat: int, beats: int, burst: int) -> list[int]:
    """Beats of each read burst of one column of ``beats`` beats from beat address
    ``start_beat`` (counted from the 4 KB-aligned WEIGHT_BASE): split at every multiple of
    ``burst`` beats, so no burst crosses a 4 KB boundary (AXI's rule) or exceeds ``burst``."""
    out, a, end = [], start_beat, start_beat + beats
    while a < end:
        n = min(burst - a % burst, end - a)
        out.append(n)
        a += n
    return out


def _axi_issue_end(cols, emit, release, nb: int, K: int, shape: CoreShape,
                   fetch: ColumnFetch) -> int:
    """D of an AXI core: the cycle after the last issue slot, each group waiting for its
    columns' weights (:mod:`drnn_hw.axi_weight_fetch`'s schedule, exact for a memory with a
    fixed latency that never holds back AR or R).

    Column n (kept column ``cols[n]``) is fetched in bursts, in order, one burst address per
    cycle at most. Burst j is loaded into the AR register at cycle ``L_j`` ≥ ``L_{j-1} + 1``,
    ≥ ``emit[n] + 1`` (the delta is in the queue), ≥ ``m_{(n-C)//K} + NB`` when n ≥ C (the
    buffer slot of column n − C is free once its group has issued; C = ``shape.buffer``), and
    ≥ ``done_{j-N} + 1`` (at most N = ``shape.outstanding`` bursts in flight). The address
    handshake is at ``L_j + 1``, the burst's beats arrive one per cycle from ``max(L_j + 1 +
    latency, done_{j-1} + 1)`` (one R channel, bursts in order) to ``done_j``. Group g issues
    at ``m_g = max(r_g, c_g, m_{g-1} + NB)``, ``c_g`` the cycle after its last column's last
    beat.

    ``nb`` is the words of a column, which are also the issue slots of a group: NB, or a
    compressed core's ``kept`` (:mod:`drnn_hw.spatial`: one pair word per slot), the same
    recurrence with NB → kept."""
    C, N, Lb = shape.buffer, shape.outstanding, shape.burst
    sb, lat = fetch.beats_per_block, fetch.latency
    col_beats = nb * sb
    loads, done, m = [], [], []
    for n, c in enumerate(cols):
        for length in column_bursts((fetch.first_word + int(c) * nb) * sb, col_beats, Lb):
            j = len(loads)
            t = int(emit[n]) + 1
            if loads:
                t = max(t, loads[-1] + 1)
            if n >= C:
                t = max(t, m[(n - C) // K] + nb)
            if j >= N:
                t = max(t, done[j - N] + 1)
            loads.append(t)
            first = t + 1 + lat
            if done:
                first = max(first, done[-1] + 1)
            done.append(first + length - 1)
        if n % K == K - 1 or n == len(cols) - 1:
            g = n // K
            mg = max(int(release[g]), done[-1] + 1)
            m.append(max(mg, m[-1] + nb) if m else mg)
    return m[-1] + nb


def _held_window_starts(c, x_windows: int, prescan: int) -> np.ndarray:
    """The schedule cycles at which the windows enter the scheduler (stage B) when the scan
    starts ``prescan`` cycles before the step's cycle 0 and fetches no h window before cycle 1
    (:class:`~drnn_hw.delta_encoder.DeltaEncoder`'s ``h_hold``, low from cycle 0).

    ``c``: each window's cycles in B (x windows first, ``x_windows`` of them). A model of the
    encoder's stages: stage F fetches the next window in a cycle in which B is empty or in
    its window's last cycle; a window fetched in cycle f is in the F register in f + 1, in T
    in f + 2, and enters B in f + 3 when the stages move on then. Held cycles pass as empty
    windows, so after a hold that outlasts the x windows the h windows enter B at the fetch's
    f + 3. Returns schedule cycles (cycle − SCAN_LATENCY, the step's cycle 0 at −SCAN_LATENCY).
    """
    entry, f, t, b_left, b_busy, nxt, cyc = [], None, None, 0, False, 0, -prescan
    c = [int(v) for v in c]
    while len(entry) < len(c):
        if not b_busy or b_left == 1:           # B is empty or in its window's last cycle
            b_busy, b_left = t is not None, (c[t] if t is not None else 0)
            if t is not None:
                entry.append(cyc + 1)
            t, f = f, None
            if nxt < len(c) and (nxt < x_windows or cyc >= 1):
                f, nxt = nxt, nxt + 1
        else:
            b_left -= 1
        cyc += 1
    return np.array(entry, dtype=np.int64) - SCAN_LATENCY


def scan_schedule(dx_mask, dh_mask, shape: CoreShape, prescan: int = 0):
    """The scan of one step (module docstring, *Scan*): ``(emit, release, S)`` in schedule
    cycles (counted from the step's cycle SCAN_LATENCY): each kept delta's emission cycle in
    order (Δx first), each group's release (the cycle after its last delta, the last partial
    group's at S) and the scan's end S. The queue holds every group until the step's cycle 0
    (schedule cycle −SCAN_LATENCY), which binds only a scan that started before it.

    ``prescan`` (cycles, ≥ 0; issue #10's step overlap): the scan started that many cycles
    before the step's cycle 0 (the cycle after the previous step's commit), while the AP
    finished the previous step; its h windows are fetched from cycle 1 (they read h_t) and
    its groups wait for cycle 0 (the AP's multipliers and delta memories). The windows then
    enter the scheduler as :func:`_held_window_starts` models; with ``prescan`` = 0 this is
    the closed form of the module docstring. ValueError for a negative ``prescan``."""
    if prescan < 0:
        raise ValueError(f"prescan must be ≥ 0 cycles, got {prescan}")
    dx_mask = np.asarray(dx_mask, dtype=bool)
    dh_mask = np.asarray(dh_mask, dtype=bool)
    E, K = shape.scan, shape.columns

    def windows(mask):
        n = math.ceil(mask.size / E)
        padded = np.zeros(n * E, dtype=bool)
        padded[:mask.size] = mask
        return padded.reshape(n, E)

    win = np.concatenate([windows(dx_mask), windows(dh_mask)])    # (W, E)
    d = win.sum(axis=1)
    c = np.maximum(1, -(-d // K))
    if prescan == 0:
        starts = np.concatenate([[0], np.cumsum(c)[:-1]])
    else:
        starts = _held_window_starts(c, math.ceil(dx_mask.size / E), prescan)
    S = int(starts[-1] + c[-1])
    nnz = int(d.sum())
    rank = np.cumsum(win, axis=1) - 1                                # rank within window
    emit = (starts[:, None] + rank // K)[win]                        # emission cycles, in order
    G = -(-nnz // K)
    last = np.minimum(np.arange(G) * K + K - 1, nnz - 1)
    release = emit[last] + 1 if nnz else np.zeros(0, dtype=np.int64)
    if nnz % K:
        release[-1] = S
    return emit, np.maximum(release, -SCAN_LATENCY), S


def step_schedule(dx_mask, dh_mask, shape: CoreShape,
                  fetch: ColumnFetch | None = None,
                  prescan: int = 0) -> tuple[int, int | None, int]:
    """The schedule's times of one timestep (module docstring): ``(S, D, NB)``, the scan's end
    S, the cycle D after the last MxV issue slot (None when no delta was kept) and the blocks
    NB = ceil(H/P), counted from the first schedule cycle. Arguments as :func:`step_cycles`;
    ValueError when an AXI core has no ``fetch``."""
    if shape.weights == "axi" and fetch is None:
        raise ValueError("an AXI core's cycles depend on its memory: give fetch "
                         "(drnn_hw.dram.column_fetch)")
    dx_mask = np.asarray(dx_mask, dtype=bool)
    dh_mask = np.asarray(dh_mask, dtype=bool)
    K = shape.columns
    nb = shape.blocks(dh_mask.size)
    emit, release, S = scan_schedule(dx_mask, dh_mask, shape, prescan)
    if not len(emit):
        return S, None, nb
    G = len(release)
    if shape.weights == "axi":
        cols = np.flatnonzero(np.concatenate([dx_mask, dh_mask]))
        D = _axi_issue_end(cols, emit, release, nb, K, shape, fetch)
    else:
        D = int(np.max(release + (G - np.arange(G)) * nb))
    return S, D, nb


def step_cycles(dx_mask, dh_mask, shape: CoreShape, cell: str = "gru",
                fetch: ColumnFetch | None = None, prescan: int = 0) -> int:
    """Cycles of one timestep given which deltas were kept (boolean vectors of size I and H),
    on the core for ``cell`` (its AP depth, :func:`ap_latency`).

    An AXI core (``shape.weights == "axi"``) also needs ``fetch``, the layer's
    :class:`ColumnFetch`: its groups wait for their columns' weights (:func:`_axi_issue_end`);
    everything else is the same schedule. ``prescan``: cycles the step's scan started before
    its cycle 0 (:func:`scan_schedule`; 0, the default, is a step that starts at its cycle
    0, as every step of today's core does). ValueError when ``fetch`` is missing, ``cell``
    is neither "gru" nor "lstm" or ``prescan`` < 0."""
    ap = ap_latency(cell)
    S, D, nb = step_schedule(dx_mask, dh_mask, shape, fetch, prescan)
    if D is None:
        return SCAN_LATENCY + S + nb + ap
    return SCAN_LATENCY + max(S, D + mxv_drain(nb)) + nb + ap


def cycles_for_masks(dx_masks, dh_masks, shape: CoreShape, cell: str = "gru",
                     fetch: ColumnFetch | None = None, prescan=0) -> np.ndarray:
    """:func:`step_cycles` over leading dimensions: masks (..., I) and (..., H), ``prescan``
    an int or an array of the leading shape."""
    dx_masks = np.asarray(dx_masks, dtype=bool)
    dh_masks = np.asarray(dh_masks, dtype=bool)
    lead = dx_masks.shape[:-1]
    flat_x = dx_masks.reshape(-1, dx_masks.shape[-1])
    flat_h = dh_masks.reshape(-1, dh_masks.shape[-1])
    flat_o = np.broadcast_to(np.asarray(prescan, dtype=np.int64), lead).reshape(-1)
    out = np.fromiter((step_cycles(a, b, shape, cell, fetch, int(o))
                       for a, b, o in zip(flat_x, flat_h, flat_o)),
                      dtype=np.int64, count=flat_x.shape[0])
    return out.reshape(lead)


def cycle_bound(nnz, hidden: int, shape: CoreShape, kept: int | None = None):
    """The ideal: ``ceil(nnz/K) * ceil(H/P) + ceil(H/(P*K))`` (MxV fully busy, AP at P·K/cycle).

    ``kept``: a compressed-weight core (:mod:`drnn_hw.spatial`), whose group of K kept delta
    columns costs ``kept`` cycles (its (value, row) pairs per multiplier slice) instead of
    ``ceil(H/P)``: ``ceil(nnz/K) * kept + ceil(H/(P*K))``."""
    nnz = np.asarray(nnz, dtype=np.int64)
    K, P = shape.columns, shape.rows
    per_group = math.ceil(hidden / P) if kept is None else int(kept)
    return -(-nnz // K) * per_group + math.ceil(hidden / (P * K))
