"""The spatial term of the cycle model: a step of a core with compressed, column-balanced weights.

The cycle model of the compressed-weight core of issue #13 (Spartus's spatio-temporal
sparsity: C. Gao, T. Delbruck, S.-C. Liu, "Spartus: A 9.9 TOp/s FPGA-based LSTM accelerator
exploiting spatio-temporal sparsity", IEEE TNNLS, 2022): ``CoreShape(weight_format=
"compressed")`` (:mod:`drnn_hw.mxv_compressed`, ``drnn generate --weight-format``), whose
cycle counter must equal :func:`spatial_step_cycles` exactly on every step, as the dense core
is held to :func:`drnn_hw.cycle_model.step_cycles` (tests/hw/test_core_compressed.py in
Amaranth's simulator, tests/sim/test_sim_compressed.py in Verilator). The golden run
(:func:`drnn_hw.golden.run`) returns these cycles for a compressed shape.

The compressed core. Weights are pruned column-balanced (:mod:`drnn_hw.balance`): every slice
of every column (the rows a multiplier p = r mod P serves) holds the same ``kept`` (value, row)
pairs. A multiplier takes one pair per cycle, so a group of K delta columns holds the MxV for
``kept`` cycles instead of ``NB = ceil(H/P)`` (one pair of every slice of the K columns per
cycle). Everything else is the dense core's schedule of :mod:`drnn_hw.cycle_model`, with one
change that follows from the compression:

* **Scan** as the dense core: ``S = Σ_w max(1, ceil(d_w / K))``, deltas released in groups of K.
* **MxV**: ``D = max_g (r_g + (G − g) · kept)`` (the dense formula with NB → ``kept``).
* **Drain**: a pair's row is arbitrary, so the last slot of the last group may write any block
  of the delta memories; the AP may read block 0 only after it, as after a one-block column:
  ``A0 = max(S, D + mxv_drain(1))`` (= ``D + MXV_WRITE − 2``), where the dense core has
  ``mxv_drain(NB)`` (0 for NB ≥ 4).
* **AP** unchanged: it still updates all H units, P per cycle: ``NB`` issue cycles then
  ``AP_LATENCY``.

::

    cycles = SCAN_LATENCY + A0 + NB + AP_LATENCY       (A0 = S when no delta was kept)

A stacked core runs one such pass per layer (each with its layer's ``kept``) plus
``(L − 1) · LAYER_GAP``, as the dense core. With H ≤ P (NB = 1, hence kept = 1) the model is
exactly the dense one. With ``kept = NB`` (γ = 0) it costs ``mxv_drain(1) − mxv_drain(NB)``
more than the dense core on steps whose MxV ends last.

The LSTM core takes its own AP depth (``cell``, :func:`~drnn_hw.cycle_model.ap_latency`).

**Weights in DRAM** (``shape.weights == "axi"``, :mod:`drnn_hw.dram`'s pair-word image):
a kept column is ``kept`` pair words in DRAM, fetched as the dense AXI core fetches its NB
block words, so the MxV term is the dense AXI core's memory recurrence
(:func:`drnn_hw.cycle_model._axi_issue_end`) with NB → ``kept``: column words, the group's
issue slots and the buffer slot's release (``m_g + kept``) all count pair words. The AP's
start is this module's, ``A0 = max(S, D + mxv_drain(1))``: however late the memory delivers,
the last slot may still write any block. Exact for a fixed-latency memory without
back-pressure, as the dense AXI model.
"""

from __future__ import annotations

import math

import numpy as np

from .cycle_model import (LAYER_GAP, SCAN_LATENCY, ColumnFetch, CoreShape, _axi_issue_end,
                          ap_latency, mxv_drain, scan_schedule)

__all__ = ["SPATIAL_FORMULA", "spatial_step_cycles", "spatial_cycles_for_masks",
           "delta_masks", "layer_kept", "weight_memory_bits", "bundle_spatial_cycles",
           "weight_sparsity"]

SPATIAL_FORMULA = ("cycles = SCAN_LATENCY + max(S, D + mxv_drain(1) if nnz else 0) + ceil(H/P) "
                   "+ AP_LATENCY; S = sum_w max(1, ceil(d_w/K)); D = max_g(r_g + (G-g)*kept); "
                   "kept = non-zero (value, row) pairs per multiplier slice per column")


def spatial_step_cycles(dx_mask, dh_mask, shape: CoreShape, kept: int,
                        cell: str = "gru", fetch: ColumnFetch | None = None,
                        prescan: int = 0) -> int:
    """Cycles of one step of a compressed core (module docstring) given the kept deltas
    (boolean vectors of size I and H) and ``kept`` pairs per slice (1 ≤ kept ≤ NB), on the
    core for ``cell`` (its AP depth, :func:`~drnn_hw.cycle_model.ap_latency`).

    A core with its weights in DRAM (``shape.weights == "axi"``) also needs ``fetch``, the
    layer's :class:`~drnn_hw.cycle_model.ColumnFetch` (:func:`drnn_hw.dram.column_fetch` of
    the compressed shape: SB of a pair word, the layer's first pair word): its groups wait for
    their columns' pair words (module docstring).

    ``prescan``: cycles the step's scan started before its cycle 0, the scan and the queue's
    hold of :func:`~drnn_hw.cycle_model.scan_schedule` (0: today's core).

    Raises ValueError for ``kept`` outside [1, NB], an unknown cell, an AXI shape without
    ``fetch``, or a negative ``prescan``.
    """
    ap = ap_latency(cell)
    if shape.weights == "axi" and fetch is None:
        raise ValueError("an AXI core's cycles depend on its memory: give fetch "
                         "(drnn_hw.dram.column_fetch)")
    dx_mask = np.asarray(dx_mask, dtype=bool)
    dh_mask = np.asarray(dh_mask, dtype=bool)
    K = shape.columns
    nb = shape.blocks(dh_mask.size)
    if not 1 <= kept <= nb:
        raise ValueError(f"kept must lie in [1, NB = {nb}], got {kept}")
    emit, release, S = scan_schedule(dx_mask, dh_mask, shape, prescan)
    if not len(emit):
        return SCAN_LATENCY + S + nb + ap
    G = len(release)
    if shape.weights == "axi":
        cols = np.flatnonzero(np.concatenate([dx_mask, dh_mask]))
        D = _axi_issue_end(cols, emit, release, kept, K, shape, fetch)
    else:
        D = int(np.max(release + (G - np.arange(G)) * kept))
    return SCAN_LATENCY + max(S, D + mxv_drain(1)) + nb + ap


def spatial_cycles_for_masks(dx_masks, dh_masks, shape: CoreShape, kept: int,
                             cell: str = "gru", fetch: ColumnFetch | None = None,
                             prescan=0) -> np.ndarray:
    """:func:`spatial_step_cycles` over leading dimensions: masks (..., I) and (..., H),
    ``prescan`` an int or an array of the leading shape."""
    dx_masks = np.asarray(dx_masks, dtype=bool)
    dh_masks = np.asarray(dh_masks, dtype=bool)
    lead = dx_masks.shape[:-1]
    fx = dx_masks.reshape(-1, dx_masks.shape[-1])
    fh = dh_masks.reshape(-1, dh_masks.shape[-1])
    fo = np.broadcast_to(np.asarray(prescan, dtype=np.int64), lead).reshape(-1)
    out = np.fromiter((spatial_step_cycles(a, b, shape, kept, cell, fetch, int(o))
                       for a, b, o in zip(fx, fh, fo)),
                      dtype=np.int64, count=fx.shape[0])
    return out.reshape(lead)


def layer_kept(layer, shape: CoreShape) -> int:
    """The pairs per slice a compressed core of ``shape`` stores for a bundle layer: its
    balance record's ``kept`` (when the record's P gives the core's slices), else NB (dense
    weights stored as pairs: every row). Raises ValueError when the record was made for
    another P (:func:`drnn_hw.balance.check_core_shape` names both)."""
    from .balance import effective_rows

    nb = shape.blocks(layer.hidden_size)
    unit = getattr(layer, "balance", None)
    if unit is None:
        return nb
    H = layer.hidden_size
    if effective_rows(unit.rows, H) != effective_rows(shape.rows, H):
        raise ValueError(f"the layer's pattern is balanced for P = {unit.rows}, the core has "
                         f"P = {shape.rows}")
    return max(1, min(unit.kept, nb))


def weight_sparsity(bundle) -> float:
    """The share of zero weight codes over every W_x and W_h of every layer of a bundle
    (the spatial sparsity; 0.0 for dense weights)."""
    total = zeros = 0
    for ly in bundle.layers:
        for w in (ly.w_x, ly.w_h):
            total += w.size
            zeros += int(np.count_nonzero(np.asarray(w) == 0))
    return zeros / total


def delta_masks(x_codes, layer_h, lengths, thresholds):
    """The kept-delta masks of every layer and step, replayed from a golden run.

    ``x_codes`` (N, T, I) the layer-0 inputs, ``layer_h`` the golden result's per-layer h
    (a list of L arrays (N, T, H_l)), ``lengths`` (N,), ``thresholds`` L pairs (Θx, Θh) of
    codes. The delta encoder's rule (:mod:`drnn_hw.golden`): Δ kept where Δ ≠ 0 and
    |Δ| ≥ Θ, the reference updated where kept; h starts at 0 (no h0). Returns a list of L pairs
    (dx masks (N, T, I_l), dh masks (N, T, H_l)), False past each length.
    """
    x = np.asarray(x_codes, np.int64)
    N, T, _ = x.shape
    lengths = np.asarray(lengths)
    active = (np.arange(T)[None, :] < lengths[:, None])
    out, inp = [], x
    for l, (tx, th) in enumerate(thresholds):
        h = np.asarray(layer_h[l], np.int64)
        H = h.shape[2]
        prev_h = np.concatenate([np.zeros((N, 1, H), np.int64), h[:, :-1]], axis=1)
        masks = []
        for seq, theta in ((inp, tx), (prev_h, th)):
            ref = np.zeros((N, seq.shape[2]), np.int64)
            m = np.zeros(seq.shape, bool)
            for t in range(T):
                d = seq[:, t] - ref
                keep = (d != 0) & (np.abs(d) >= theta) & active[:, t:t + 1]
                ref = np.where(keep, seq[:, t], ref)
                m[:, t] = keep
            masks.append(m)
        out.append(tuple(masks))
        inp = h
    return out


def weight_memory_bits(layer, shape: CoreShape, w_bits: int, gates: int = 3,
                       kept: int | None = None) -> int:
    """Weight memory of a layer in bits on a core of ``shape`` (as built). Dense (``kept`` None): the banks of
    :mod:`drnn_hw.weight_bank`, ``gates · (I + H) · NB · P · w_bits`` (padding rows
    included). Compressed: ``kept`` (value, row) pairs per slice per column,
    ``gates · (I + H) · P · kept · (w_bits + ceil(log2 NB))`` (the row within its slice is
    its block, ``ceil(log2 NB)`` bits; none when NB = 1)."""
    I, H = layer.input_size, layer.hidden_size
    P = shape.rows          # the built core's P (the CLI clamps it to the largest H)
    nb = math.ceil(H / P)
    if kept is None:
        return gates * (I + H) * nb * P * w_bits
    index_bits = math.ceil(math.log2(nb)) if nb > 1 else 0
    return gates * (I + H) * P * kept * (w_bits + index_bits)


def bundle_spatial_cycles(bundle, masks, shape: CoreShape, dense: bool = False,
                          fetches=None, prescan=None) -> np.ndarray:
    """Cycles per step (N, T) of a bundle on a compressed core (``dense``: on the dense core,
    :func:`~drnn_hw.cycle_model.step_cycles`), from :func:`delta_masks`' per-layer masks:
    the layers' passes plus ``(L − 1) · LAYER_GAP`` (0 past each length, where every mask is
    False and no step happens: pass ``lengths`` via the masks' caller). ``fetches``: an AXI
    shape's :class:`~drnn_hw.cycle_model.ColumnFetch` per layer (:func:`drnn_hw.dram.
    column_fetch` of ``shape``; required then, ValueError otherwise). ``prescan`` (N, T) or
    an int: cycles each step's layer-0 scan started before its cycle 0
    (:func:`~drnn_hw.cycle_model.scan_schedule`); by default the frames come back to back,
    as :func:`drnn_hw.golden.run`'s default (on a core with ``shape.step_overlap``, every step
    after a sequence's first: :func:`~drnn_hw.cycle_model.streamed_prescan`; else 0)."""
    from .cycle_model import cycles_for_masks, streamed_prescan

    total = None
    fetches = [None] * len(bundle.layers) if fetches is None else list(fetches)
    if prescan is None and not shape.step_overlap:
        prescan = 0
    elif prescan is None:
        T = masks[0][0].shape[1]
        nb_last = shape.blocks(bundle.layers[-1].hidden_size)
        prescan = np.where(np.arange(T)[None, :] > 0, streamed_prescan(nb_last, bundle.cell), 0)
    lead = masks[0][0].shape[:-1]
    for l, (ly, (mx, mh), f) in enumerate(zip(bundle.layers, masks, fetches)):
        o = np.broadcast_to(prescan, lead) if l == 0 else 0
        c = cycles_for_masks(mx, mh, shape, bundle.cell, f, o) if dense else \
            spatial_cycles_for_masks(mx, mh, shape, layer_kept(ly, shape), bundle.cell, f, o)
        total = c if total is None else total + c
    return total + (len(bundle.layers) - 1) * LAYER_GAP
