"""Golden model: the bit-exact integer behaviour of the accelerator, and a float64 reference.

:func:`run` is the reference every other engine (trainer exact mode, Amaranth simulation,
Verilator) is compared with, to the last bit. The arithmetic is specified in
:mod:`drnn_hw.numerics`, the timing in :mod:`drnn_hw.cycle_model`.

Per timestep, for every sequence of the batch (integers throughout)::

    Δx = x_t − x̂ kept where Δx ≠ 0 and |Δx| ≥ θx;  x̂ ← x_t where kept       (Δ exact, 17 bits)
    Δh = h − ĥ   kept where Δh ≠ 0 and |Δh| ≥ θh;  ĥ ← h   where kept
    M_r  += W_ir Δx + W_hr Δh        M_z  += W_iz Δx + W_hz Δh
    M_nx += W_in Δx                  M_nh += W_hn Δh              (exact within the step)
    M    ← saturate(M, acc_bits)                                  (end of step)
    h    ← activation pipeline (numerics module docstring)

A stacked bundle (L layers) does this layer after layer within each timestep, layer l's new h
being layer l+1's x_t; each layer keeps its own x̂, ĥ, h and M (:class:`LayerState`). The state
can be given (a previous run's, to continue sequences in chunks) or start from a non-zero h0.

**LSTM bundles** (``bundle.cell == "lstm"``): the same deltas and references, four delta memories
M_i, M_f, M_g, M_o that all take ``W_x Δx + W_h Δh`` (saturated at the end of the step), and the
LSTM activation step of :mod:`drnn_hw.numerics` (:func:`lstm_activation`), which also updates
the cell state c (:class:`LayerState` ``c``, cell-format codes). Stacking, ragged lengths,
h0 (and c0), state and chunking behave as for the GRU. **Cycles**: the LSTM core's schedule is
the GRU's with its own AP depth (:func:`~drnn_hw.cycle_model.ap_latency`; four MxV channels
work in parallel, so the MxV time is the same), and :func:`run` returns it as for the GRU.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .bundle import ModelBundle
from .cycle_model import LAYER_GAP, CoreShape, cycles_for_masks, step_cycles, streamed_prescan
from .numerics import Formats, lut_index, lut_index_cell, narrow_acc, round_shift, saturate

__all__ = ["GoldenResult", "LayerState", "initial_state", "run", "activation_pipeline",
           "lstm_activation", "float_delta_gru", "float_delta_lstm", "check_lengths", "kept_masks"]


@dataclass
class LayerState:
    """The state one layer carries from step to step, for N sequences (int64 codes).

    ``x_ref`` (N, I) x̂ and ``h_ref`` (N, H) ĥ: the reference vectors (activation codes);
    ``h`` (N, H): the hidden state; ``m`` (N, 4, H): the delta memories M_r, M_z, M_nx, M_nh
    (accumulator codes), for an LSTM M_i, M_f, M_g, M_o; ``c`` (N, H): an LSTM's cell state in
    the cell format (:attr:`~drnn_hw.numerics.Formats.cell`), None for a GRU.
    """

    x_ref: np.ndarray
    h_ref: np.ndarray
    h: np.ndarray
    m: np.ndarray
    c: np.ndarray | None = None

    def copy(self) -> "LayerState":
        return LayerState(self.x_ref.copy(), self.h_ref.copy(), self.h.copy(), self.m.copy(),
                          None if self.c is None else self.c.copy())


@dataclass
class GoldenResult:
    """What an engine returns for N sequences of T steps of an L-layer bundle.

    ``h`` (N, T, H_out) int64: the last layer's hidden state codes, or every layer's
    concatenated when the shape's ``out_layers`` is "all" (0 past a sequence's end);
    ``nnz_dx``, ``nnz_dh`` (N, T) int64: kept deltas per step, summed over the layers (0 past
    the end); ``cycles`` (N, T): cycles per step (cycle model or measured; 0 past the end;
    None from an engine that does not report them);
    ``lengths`` (N,). Golden model only (None from engines that do not report them):
    ``layer_nnz_dx``, ``layer_nnz_dh`` (N, T, L) per layer; ``layer_h`` a list of L arrays
    (N, T, H_l); ``state`` the final state (list of L :class:`LayerState`, each sequence's
    state after its last valid step), to pass as ``state`` to continue the sequences;
    ``layer_cycles`` (N, T, L): each layer's pass (the layer gaps not included; golden model
    and the RTL engines of a stacked core). ``prescan`` (N, T): cycles each step's scan
    started before its cycle 0 (issue #10's step overlap; the core's PRESCAN_LAST, or what
    the golden model's cycles assume, None for 0 everywhere); :meth:`with_prescan` gives the
    golden model's cycles for another.
    """

    h: np.ndarray
    nnz_dx: np.ndarray
    nnz_dh: np.ndarray
    cycles: np.ndarray
    lengths: np.ndarray
    layer_nnz_dx: np.ndarray | None = None
    layer_nnz_dh: np.ndarray | None = None
    layer_h: list | None = None
    state: list | None = None
    layer_cycles: np.ndarray | None = None
    prescan: np.ndarray | None = None
    #: The golden model's cycles for other prescans: prescan (N, T) -> (cycles, layer_cycles).
    recount: object = field(default=None, repr=False, compare=False)

    def with_prescan(self, prescan) -> "GoldenResult":
        """This golden result with its cycles for steps whose layer-0 scan started
        ``prescan`` (N, T) cycles before their cycle 0 (a measured PRESCAN_LAST per step,
        e.g. an RTL engine's ``prescan``; :func:`drnn_hw.cycle_model.step_cycles`). ValueError
        for a result that cannot recount (an engine's) or a wrong shape."""
        if self.recount is None:
            raise ValueError("only a golden model result can recount its cycles")
        prescan = np.asarray(prescan, dtype=np.int64)
        if prescan.shape != self.cycles.shape:
            raise ValueError(f"prescan must be {self.cycles.shape}, got {prescan.shape}")
        cycles, layer_cycles = self.recount(prescan)
        return replace(self, cycles=cycles, layer_cycles=layer_cycles, prescan=prescan)

    def flat(self, key: str) -> np.ndarray:
        """Per-step values of the valid steps, sequences concatenated in order (None when
        the field is None, e.g. an LSTM's cycles)."""
        a = getattr(self, key)
        if a is None:
            return None
        return np.concatenate([a[n, :L] for n, L in enumerate(self.lengths)]) \
            if len(self.lengths) else a.reshape((0,) + a.shape[2:])


def activation_pipeline(m_r, m_z, m_nx, m_nh, h, sigmoid_lut, tanh_lut, fmts: Formats):
    """The AP, element-wise on integer arrays: returns the new hidden state codes."""
    A = fmts.act_frac
    r = sigmoid_lut[lut_index(narrow_acc(m_r, fmts), fmts, fmts.sigmoid_range_log2)]
    z = sigmoid_lut[lut_index(narrow_acc(m_z, fmts), fmts, fmts.sigmoid_range_log2)]
    rnh = saturate(round_shift(r * narrow_acc(m_nh, fmts), A), fmts.act_bits)
    pre = saturate(narrow_acc(m_nx, fmts) + rnh, fmts.act_bits)
    n = tanh_lut[lut_index(pre, fmts, fmts.tanh_range_log2)]
    return saturate(n + round_shift(z * (h - n), A), fmts.act_bits)


def lstm_activation(m_i, m_f, m_g, m_o, c, sigmoid_lut, tanh_lut, fmts: Formats):
    """The LSTM activation step of :mod:`drnn_hw.numerics`, element-wise on integer arrays.

    ``m_*``: accumulator codes of M_i, M_f, M_g, M_o; ``c``: the cell state (cell-format codes).
    Returns (h', c'): activation codes and cell-format codes, each of ``c``'s shape.
    """
    A, C = fmts.act_frac, fmts.cell.frac
    cb = fmts.cell.bits
    i = sigmoid_lut[lut_index(narrow_acc(m_i, fmts), fmts, fmts.sigmoid_range_log2)]
    f = sigmoid_lut[lut_index(narrow_acc(m_f, fmts), fmts, fmts.sigmoid_range_log2)]
    g = tanh_lut[lut_index(narrow_acc(m_g, fmts), fmts, fmts.tanh_range_log2)]
    o = sigmoid_lut[lut_index(narrow_acc(m_o, fmts), fmts, fmts.sigmoid_range_log2)]
    fc = saturate(round_shift(f * c, A), cb)
    ig = saturate(round_shift(i * g, 2 * A - C), cb)
    c_new = saturate(fc + ig, cb)
    tc = tanh_lut[lut_index_cell(c_new, fmts, fmts.tanh_range_log2)]
    return saturate(round_shift(o * tc, A), fmts.act_bits), c_new


def check_lengths(lengths, n: int, t: int) -> np.ndarray:
    if lengths is None:
        return np.full(n, t, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.shape != (n,) or np.any(lengths < 0) or np.any(lengths > t):
        raise ValueError(f"lengths must be {n} integers in [0, {t}], got shape {lengths.shape}")
    return lengths


def _stacked_weights(b, cell: str = "gru") -> np.ndarray:
    """(I+H, 4H) so that [Δx Δh] @ W gives the increments of M_r, M_z, M_nx, M_nh (GRU) or of
    M_i, M_f, M_g, M_o (LSTM: every gate takes both parts).

    ``b``: a :class:`~drnn_hw.bundle.Layer` or a single-layer bundle."""
    I, H = b.input_size, int(np.shape(b.w_x)[1])
    W = np.zeros((I + H, 4 * H), dtype=np.int64)
    if cell == "lstm":
        for k in range(4):
            W[:I, k * H:(k + 1) * H], W[I:, k * H:(k + 1) * H] = b.w_x[k].T, b.w_h[k].T
        return W
    W[:I, 0:H], W[I:, 0:H] = b.w_x[0].T, b.w_h[0].T
    W[:I, H:2 * H], W[I:, H:2 * H] = b.w_x[1].T, b.w_h[1].T
    W[:I, 2 * H:3 * H] = b.w_x[2].T
    W[I:, 3 * H:] = b.w_h[2].T
    return W


def _keep(delta, theta: int):
    return (delta != 0) & (np.abs(delta) >= theta)


def _initial_codes(given, name: str, l: int, n: int, H: int, fmt) -> np.ndarray:
    h = np.zeros((n, H), np.int64)
    if given is not None and given[l] is not None:
        a = np.asarray(given[l])
        if a.dtype.kind not in "iu" or a.shape not in ((H,), (n, H)):
            raise ValueError(f"{name}[{l}]: expected integer codes of shape ({H},) or "
                             f"({n}, {H}), got {a.dtype} {a.shape}")
        if a.size and (a.min() < fmt.min or a.max() > fmt.max):
            raise ValueError(f"{name}[{l}]: codes must lie in [{fmt.min}, {fmt.max}]")
        h = np.broadcast_to(a.astype(np.int64), (n, H)).copy()
    return h


def initial_state(bundle: ModelBundle, n: int, h0=None, c0=None) -> list:
    """The state of every layer before the first step, for ``n`` sequences.

    x̂ = ĥ = 0 and M = the bias; h = 0, or ``h0``: a list of L arrays of activation codes,
    layer l's (H_l,) (the same for every sequence) or (n, H_l), or None for a layer starting
    at 0. With ĥ = 0 the first step's Δh is h0 itself, so M picks up W_h·h0 and the step
    computes the GRU with initial state h0 (torch's ``nn.GRU(x, h0)``). An LSTM bundle's
    layers also get c = 0, or ``c0`` (the same form, cell-format codes): torch's
    ``nn.LSTM(x, (h0, c0))``. Raises ValueError for a wrong count, shape, codes outside
    their format, or ``c0`` for a GRU bundle.
    """
    fmts = bundle.formats
    lstm = bundle.cell == "lstm"
    for name, v in (("h0", h0), ("c0", c0)):
        if v is not None and len(v) != bundle.num_layers:
            raise ValueError(f"{name}: expected {bundle.num_layers} arrays (one per layer), "
                             f"got {len(v)}")
    if c0 is not None and not lstm:
        raise ValueError("c0: a GRU has no cell state (c0 is for an LSTM bundle)")
    state = []
    for l, ly in enumerate(bundle.layers):
        H, I = ly.hidden_size, ly.input_size
        h = _initial_codes(h0, "h0", l, n, H, fmts.act)
        c = _initial_codes(c0, "c0", l, n, H, fmts.cell) if lstm else None
        state.append(LayerState(x_ref=np.zeros((n, I), np.int64),
                                h_ref=np.zeros((n, H), np.int64), h=h,
                                m=np.tile(ly.bias[None], (n, 1, 1)).astype(np.int64), c=c))
    return state


def _check_state(bundle: ModelBundle, state, n: int) -> list:
    if len(state) != bundle.num_layers:
        raise ValueError(f"state: expected {bundle.num_layers} layers, got {len(state)}")
    for l, (s, ly) in enumerate(zip(state, bundle.layers)):
        I, H = ly.input_size, ly.hidden_size
        for name, shape in (("x_ref", (n, I)), ("h_ref", (n, H)), ("h", (n, H)),
                            ("m", (n, 4, H))):
            if np.shape(getattr(s, name)) != shape:
                raise ValueError(f"state[{l}].{name}: expected shape {shape}, "
                                 f"got {np.shape(getattr(s, name))}")
        if bundle.cell == "lstm" and (s.c is None or np.shape(s.c) != (n, H)):
            raise ValueError(f"state[{l}].c: expected shape {(n, H)} (an LSTM's cell state), "
                             f"got {None if s.c is None else np.shape(s.c)}")
        if bundle.cell != "lstm" and s.c is not None:
            raise ValueError(f"state[{l}].c: a GRU has no cell state, got an array")
    return [s.copy() for s in state]


def _run_layer(ly, fmts: Formats, sigmoid_lut, tanh_lut, x, active, s: LayerState,
               cell: str = "gru"):
    """One layer over all T steps; updates ``s`` in place. Returns (h (N, T, H) with 0 at
    inactive steps, the state's h at every step (N, T, H), dx masks, dh masks)."""
    N, T, I = x.shape
    H = ly.hidden_size
    W = _stacked_weights(ly, cell)
    c = s.c
    M = s.m.reshape(N, 4 * H)
    out = np.zeros((N, T, H), np.int64)
    carried = np.zeros((N, T, H), np.int64)
    dx_masks = np.zeros((N, T, I), bool)
    dh_masks = np.zeros((N, T, H), bool)
    x_ref, h_ref, h = s.x_ref, s.h_ref, s.h
    for t in range(T):
        act = active[:, t:t + 1]
        dx = x[:, t] - x_ref
        kx = _keep(dx, ly.theta_x) & act
        dh = h - h_ref
        kh = _keep(dh, ly.theta_h) & act
        x_ref = np.where(kx, x[:, t], x_ref)
        h_ref = np.where(kh, h, h_ref)
        d = np.concatenate([np.where(kx, dx, 0), np.where(kh, dh, 0)], axis=1)
        M = np.where(act, saturate(M + d @ W, fmts.acc_bits), M)
        if cell == "lstm":
            m_i, m_f, m_g, m_o = np.split(M, 4, axis=1)
            h_new, c_new = lstm_activation(m_i, m_f, m_g, m_o, c, sigmoid_lut, tanh_lut, fmts)
            c = np.where(act, c_new, c)
        else:
            m_r, m_z, m_nx, m_nh = np.split(M, 4, axis=1)
            h_new = activation_pipeline(m_r, m_z, m_nx, m_nh, h, sigmoid_lut, tanh_lut, fmts)
        h = np.where(act, h_new, h)
        out[:, t] = np.where(act, h, 0)
        carried[:, t] = h
        dx_masks[:, t], dh_masks[:, t] = kx, kh
    s.x_ref, s.h_ref, s.h, s.m, s.c = x_ref, h_ref, h, M.reshape(N, 4, H), c
    return out, carried, dx_masks, dh_masks


def kept_masks(bundle: ModelBundle, x_codes,
               lengths=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Which deltas every step keeps, per layer: a list of L pairs (dx masks (S, I_l), dh masks
    (S, H_l)) of bools over the S valid steps (sequences concatenated in order, as
    :meth:`GoldenResult.flat`), from the initial state. What the cycle model's schedule
    (:func:`~drnn_hw.cycle_model.step_schedule`) takes; the same run as :func:`run`. Raises
    ValueError for a wrong input shape or bad lengths."""
    x = np.asarray(x_codes, dtype=np.int64)
    if x.ndim != 3 or x.shape[2] != bundle.input_size:
        raise ValueError(f"x must be (N, T, {bundle.input_size}), got {x.shape}")
    N, T, _ = x.shape
    lengths = check_lengths(lengths, N, T)
    valid = np.arange(T)[None, :] < lengths[:, None]
    state, out, inp = initial_state(bundle, N), [], x
    for l, ly in enumerate(bundle.layers):
        _, inp, kx, kh = _run_layer(ly, bundle.formats, bundle.sigmoid_lut, bundle.tanh_lut,
                                    inp, valid, state[l], bundle.cell)
        out.append((kx[valid], kh[valid]))
    return out


def run(bundle: ModelBundle, x_codes, lengths=None, shape: CoreShape | None = None,
        with_cycles: bool = True, state=None, h0=None, c0=None,
        dram_latency: int | None = None, prescan=None) -> GoldenResult:
    """Run the integer model on ``x_codes`` (N, T, I) activation codes.

    ``lengths`` (N,) marks ragged sequences: steps at or past a sequence's length do not happen
    (no state change, no output, no cycles). The run starts from ``state`` (a list of L
    :class:`LayerState`, e.g. a previous result's ``state``: a long sequence run in chunks
    gives the same h as in one piece), or else from :func:`initial_state` with ``h0`` (and, for
    an LSTM bundle, ``c0``). Returns a :class:`GoldenResult` with the final state.

    Stacked layers (L > 1): within each timestep, layer after layer, layer l's new h being
    layer l+1's x_t of the same step. The loops run layer-major (layer 0 over all T steps,
    then layer 1 on its h, ...), which is the same function: layer l's step t depends only on
    its own state and on layer l-1's h at step t. Cycles for L > 1 are the sum over the layers
    of each layer's single-layer :func:`~drnn_hw.cycle_model.step_cycles` (on its own I_l,
    H_l and kept deltas) plus ``(L − 1) · LAYER_GAP``: the schedule of the time-multiplexed
    core (:class:`~drnn_hw.core.DeltaGRUCore`), layers in sequence on one set of multipliers
    (EdgeDRNN's schedule), which its cycle counter must equal; an LSTM bundle's with the
    LSTM core's AP depth (module doc).
    A compressed-weight core (``shape.weight_format == "compressed"``) takes the spatial
    model's cycles (:func:`drnn_hw.spatial.spatial_step_cycles` with each layer's ``kept``,
    :func:`~drnn_hw.spatial.layer_kept`); the numerics are the same.
    A core with its weights in DRAM (``shape.weights == "axi"``) waits for each column's
    weights: its cycles are the cycle model's memory terms at the fixed read latency
    ``dram_latency`` (cycles, default :data:`drnn_hw.dram.DEFAULT_LATENCY`); both at once
    (compressed weights in DRAM), the spatial model with the memory terms on columns of
    ``kept`` pair words (:mod:`drnn_hw.spatial`).
    ``prescan``: cycles each step's scan of layer 0 started before its cycle 0 (issue #10's
    step overlap, a core with ``shape.step_overlap``; :func:`drnn_hw.cycle_model.
    scan_schedule`), an int or (N, T). By default the frames of a sequence come back to back,
    as every engine sends them: on such a core a sequence's first step finds the core idle
    (0), every later one was scanned while the AP finished the step before
    (:func:`~drnn_hw.cycle_model.streamed_prescan`); on a core without it every prescan is
    0. 0: every step found the core idle (a frame's latency). :meth:`GoldenResult.
    with_prescan` recounts for another.
    Raises ValueError for a wrong input shape, out-of-range codes, bad lengths or state.
    """
    fmts = bundle.formats
    fetches = [None] * bundle.num_layers
    compressed = shape is not None and shape.weight_format == "compressed"
    if compressed:
        from .spatial import layer_kept, spatial_cycles_for_masks, spatial_step_cycles
        # The P the core builds (rows past the largest H hold nothing; drnn_hw.core).
        shape = replace(shape, rows=min(shape.rows, max(ly.hidden_size
                                                        for ly in bundle.layers)))
    if shape is not None and shape.weights == "axi":
        from .dram import DEFAULT_LATENCY, column_fetch
        fetches = column_fetch(bundle, shape, DEFAULT_LATENCY if dram_latency is None
                               else dram_latency)
    x = np.asarray(x_codes, dtype=np.int64)
    if x.ndim != 3 or x.shape[2] != bundle.input_size:
        raise ValueError(f"x must be (N, T, {bundle.input_size}), got {x.shape}")
    if x.size and (x.min() < fmts.act.min or x.max() > fmts.act.max):
        raise ValueError(f"x codes must lie in [{fmts.act.min}, {fmts.act.max}]")
    N, T, _ = x.shape
    lengths = check_lengths(lengths, N, T)
    if state is not None and (h0 is not None or c0 is not None):
        raise ValueError("give state or h0 (c0), not both")
    state = initial_state(bundle, N, h0, c0) if state is None else \
        _check_state(bundle, state, N)
    valid = np.arange(T)[None, :] < lengths[:, None]
    L = bundle.num_layers
    layer_h, nnz_dx, nnz_dh = [], np.zeros((N, T, L), np.int64), np.zeros((N, T, L), np.int64)
    cycles = np.zeros((N, T), np.int64)
    layer_cycles = np.zeros((N, T, L), np.int64)
    inp = x
    masks0 = None

    def layer_step_cycles(l, kx, kh, pre):
        """Cycles of layer l's passes, kept masks (S, I_l) and (S, H_l), prescans (S,)."""
        if compressed:
            kept = layer_kept(bundle.layers[l], shape)
            return np.array([spatial_step_cycles(a, b, shape, kept, bundle.cell, fetches[l], o)
                             for a, b, o in zip(kx, kh, pre)], dtype=np.int64)
        return np.array([step_cycles(a, b, shape or CoreShape(), bundle.cell, fetches[l], o)
                         for a, b, o in zip(kx, kh, pre)], dtype=np.int64)

    for l, ly in enumerate(bundle.layers):
        out, carried, kx, kh = _run_layer(ly, fmts, bundle.sigmoid_lut, bundle.tanh_lut, inp,
                                          valid, state[l], bundle.cell)
        layer_h.append(out)
        nnz_dx[..., l], nnz_dh[..., l] = kx.sum(-1), kh.sum(-1)
        if l == 0:
            masks0 = (kx[valid], kh[valid])
        if with_cycles and valid.any() and compressed:
            layer_cycles[valid, l] = spatial_cycles_for_masks(
                kx[valid], kh[valid], shape, layer_kept(ly, shape), bundle.cell, fetches[l])
            cycles[valid] += layer_cycles[valid, l]
        elif with_cycles and valid.any():
            layer_cycles[valid, l] = cycles_for_masks(kx[valid], kh[valid],
                                                      shape or CoreShape(), bundle.cell,
                                                      fetches[l])
            cycles[valid] += layer_cycles[valid, l]
        inp = carried
    if with_cycles and L > 1:
        cycles[valid] += (L - 1) * LAYER_GAP

    def recount(pre):
        # Layer 0's passes again, only those of steps with a prescan.
        out_c, out_l = cycles.copy(), layer_cycles.copy()
        pv = pre[valid]
        redo = np.flatnonzero(pv)
        if with_cycles and len(redo):
            new = layer_step_cycles(0, masks0[0][redo], masks0[1][redo], pv[redo])
            col = out_l[..., 0][valid]
            delta = np.zeros_like(pv)
            delta[redo] = new - col[redo]
            col[redo] = new
            lc0 = out_l[..., 0]
            lc0[valid] = col
            out_l[..., 0] = lc0
            out_c[valid] += delta
        return out_c, out_l
    # What the core's output stream carries (CoreShape.out_layers).
    h_out = np.concatenate(layer_h, axis=-1) if (shape or CoreShape()).out_layers == "all" \
        else layer_h[-1]
    result = GoldenResult(h=h_out, nnz_dx=nnz_dx.sum(-1), nnz_dh=nnz_dh.sum(-1),
                          cycles=cycles, lengths=lengths, layer_nnz_dx=nnz_dx,
                          layer_nnz_dh=nnz_dh, layer_h=layer_h, state=state,
                          layer_cycles=layer_cycles if with_cycles else None,
                          recount=recount if with_cycles else None)
    if with_cycles:
        if prescan is None and (shape or CoreShape()).step_overlap:
            nb_last = (shape or CoreShape()).blocks(bundle.layers[-1].hidden_size)
            prescan = np.where(valid & (np.arange(T)[None, :] > 0),
                               streamed_prescan(nb_last, bundle.cell), 0)
        elif prescan is None:
            prescan = 0
        result = result.with_prescan(np.where(valid, np.broadcast_to(prescan, (N, T)), 0))
    return result


def float_delta_gru(w_ih, w_hh, b_ih, b_hh, x, theta_x: float = 0.0, theta_h: float = 0.0,
                    lengths=None):
    """Float64 delta-GRU (PyTorch layout: w_ih (3H, I), w_hh (3H, H), gate order r, z, n).

    With both thresholds 0 this is ``torch.nn.GRU``. Returns (h (N, T, H), nnz_dx, nnz_dh).
    """
    w_ih, w_hh = np.asarray(w_ih, np.float64), np.asarray(w_hh, np.float64)
    H = w_hh.shape[1]
    b_ih = np.zeros(3 * H) if b_ih is None else np.asarray(b_ih, np.float64)
    b_hh = np.zeros(3 * H) if b_hh is None else np.asarray(b_hh, np.float64)
    x = np.asarray(x, np.float64)
    N, T, I = x.shape
    lengths = check_lengths(lengths, N, T)
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    x_ref = np.zeros((N, I))
    h_ref = np.zeros((N, H))
    h = np.zeros((N, H))
    m_r = np.tile(b_ih[:H] + b_hh[:H], (N, 1))
    m_z = np.tile(b_ih[H:2 * H] + b_hh[H:2 * H], (N, 1))
    m_nx = np.tile(b_ih[2 * H:], (N, 1))
    m_nh = np.tile(b_hh[2 * H:], (N, 1))
    out = np.zeros((N, T, H))
    nnz_dx = np.zeros((N, T), np.int64)
    nnz_dh = np.zeros((N, T), np.int64)
    for t in range(T):
        active = (t < lengths)[:, None]
        dx = x[:, t] - x_ref
        kx = (dx != 0) & (np.abs(dx) >= theta_x) & active
        dh = h - h_ref
        kh = (dh != 0) & (np.abs(dh) >= theta_h) & active
        dx, dh = np.where(kx, dx, 0.0), np.where(kh, dh, 0.0)
        x_ref = np.where(kx, x[:, t], x_ref)
        h_ref = np.where(kh, h, h_ref)
        m_r += dx @ w_ih[:H].T + dh @ w_hh[:H].T
        m_z += dx @ w_ih[H:2 * H].T + dh @ w_hh[H:2 * H].T
        m_nx += dx @ w_ih[2 * H:].T
        m_nh += dh @ w_hh[2 * H:].T
        r, z = sig(m_r), sig(m_z)
        n = np.tanh(m_nx + r * m_nh)
        h = np.where(active, (1 - z) * n + z * h, h)
        out[:, t] = np.where(active, h, 0.0)
        nnz_dx[:, t], nnz_dh[:, t] = kx.sum(-1), kh.sum(-1)
    return out, nnz_dx, nnz_dh


def float_delta_lstm(w_ih, w_hh, b_ih, b_hh, x, theta_x: float = 0.0, theta_h: float = 0.0,
                     lengths=None, h0=None, c0=None):
    """Float64 delta-LSTM (PyTorch layout: w_ih (4H, I), w_hh (4H, H), b_ih, b_hh (4H,) or
    None, gate order i, f, g, o).

    Four delta memories start from b_ih + b_hh and accumulate the kept deltas (thresholds as
    :func:`run`'s, in real units); i, f, o = σ(M), g = tanh(M_g), c' = f c + i g,
    h' = o tanh(c'). ``h0``, ``c0``: (H,) or (N, H) initial states (default 0). With both
    thresholds 0 this is ``torch.nn.LSTM``. Returns (h (N, T, H), nnz_dx, nnz_dh) (0 past each
    of ``lengths``).
    """
    w_ih, w_hh = np.asarray(w_ih, np.float64), np.asarray(w_hh, np.float64)
    H = w_hh.shape[1]
    b_ih = np.zeros(4 * H) if b_ih is None else np.asarray(b_ih, np.float64)
    b_hh = np.zeros(4 * H) if b_hh is None else np.asarray(b_hh, np.float64)
    x = np.asarray(x, np.float64)
    N, T, I = x.shape
    lengths = check_lengths(lengths, N, T)
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    x_ref = np.zeros((N, I))
    h_ref = np.zeros((N, H))
    h = np.zeros((N, H)) if h0 is None else np.broadcast_to(np.asarray(h0, np.float64),
                                                            (N, H)).copy()
    c = np.zeros((N, H)) if c0 is None else np.broadcast_to(np.asarray(c0, np.float64),
                                                            (N, H)).copy()
    m = np.tile(b_ih + b_hh, (N, 1))                       # (N, 4H): M_i, M_f, M_g, M_o
    out = np.zeros((N, T, H))
    nnz_dx = np.zeros((N, T), np.int64)
    nnz_dh = np.zeros((N, T), np.int64)
    for t in range(T):
        active = (t < lengths)[:, None]
        dx = x[:, t] - x_ref
        kx = (dx != 0) & (np.abs(dx) >= theta_x) & active
        dh = h - h_ref
        kh = (dh != 0) & (np.abs(dh) >= theta_h) & active
        dx, dh = np.where(kx, dx, 0.0), np.where(kh, dh, 0.0)
        x_ref = np.where(kx, x[:, t], x_ref)
        h_ref = np.where(kh, h, h_ref)
        m = m + dx @ w_ih.T + dh @ w_hh.T
        i, f = sig(m[:, :H]), sig(m[:, H:2 * H])
        g, o = np.tanh(m[:, 2 * H:3 * H]), sig(m[:, 3 * H:])
        c_new = f * c + i * g
        c = np.where(active, c_new, c)
        h = np.where(active, o * np.tanh(c_new), h)
        out[:, t] = np.where(active, h, 0.0)
        nnz_dx[:, t], nnz_dh[:, t] = kx.sum(-1), kh.sum(-1)
    return out, nnz_dx, nnz_dh
