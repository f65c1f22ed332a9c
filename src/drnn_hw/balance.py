"""Column-balanced weight sparsity: the pattern, its record in a bundle, and the core-shape check.

The source of the algorithm is Column-Balanced Targeted Dropout (CBTD) of Spartus: C. Gao,
T. Delbruck, S.-C. Liu, "Spartus: A 9.9 TOp/s FPGA-based LSTM accelerator exploiting
spatio-temporal sparsity", IEEE TNNLS, 2022. This module states the pattern in this project's
terms (the core's P/K layout, :mod:`drnn_hw.weight_bank`); the training schedule that produces
it is :mod:`drnn_train.prune`.

**The pattern.** A weight matrix ``w`` (H, C) (one gate's ``W_x`` (H, I) or ``W_h`` (H, H))
is multiplied by the core column by column; row r of a column goes to multiplier
``p = r mod P`` in block ``b = r // P`` (``NB = ceil(H/P)`` blocks). The *slice* (c, p) of
column c holds rows p, p + P, p + 2P, ... . A matrix is *balanced* with ``kept`` when every
slice of every column holds at most ``kept`` non-zero weights: whichever delta column fires,
each multiplier has the same ``kept`` (value, row) pairs to multiply.

**Kept count (the rounding rule).** For a target sparsity γ ∈ [0, 1)::

    kept = NB − floor(γ · NB)          (= ceil((1 − γ) · NB); γ·NB rounded to 9 decimals first)

the same for every slice of every column of every matrix of a layer (W_x and W_h have H rows
each, so one NB). It rounds the kept count up: the achieved sparsity never exceeds γ, and
``kept ≥ 1`` for every γ < 1. With H = 64, P = 16 (NB = 4) the reachable sparsities are 0,
25, 50 and 75 %: γ = 0.9 and 0.94 both keep 1 of 4.

**A last partial block.** When P does not divide H, the slices p ≥ H mod P have only NB − 1
real rows (row ``p + (NB−1)·P`` would be ≥ H: the weight bank holds 0 there). Every slice still
gets the same ``kept``: a slice with fewer real rows keeps ``min(kept, real rows)`` of them,
and a compressed format pads it with (0, padding row) pairs up to ``kept``, so every
multiplier still holds exactly ``kept`` pairs per column. The rows ≥ H are never chosen over a
real weight (they are not candidates at all).

**Which weights are kept.** In each slice the ``kept`` largest magnitudes; among equal
magnitudes the lower row wins (a stable order), so the mask is a function of the weights.

**The record** (:class:`BalanceUnit`, model.json ``layers[l].balance``, format version 4 of
:mod:`drnn_hw.bundle`): ``rows`` (P, the balance unit), ``kept`` and ``gamma``. A layer without
it is dense.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cycle_model import CoreShape

__all__ = ["BalanceUnit", "kept_per_slice", "slice_nonzeros", "balanced_mask",
           "first_violation", "matrix_names", "matrix_sparsity", "check_core_shape",
           "effective_rows", "ShapeMismatch", "prune_bundle"]


class ShapeMismatch(ValueError):
    """A core shape whose P is not the balance unit the bundle's weights were pruned for."""


def _blocks(hidden: int, rows: int) -> int:
    return math.ceil(hidden / rows)


def kept_per_slice(gamma: float, hidden: int, rows: int) -> int:
    """``NB − floor(γ·NB)`` with ``NB = ceil(hidden/rows)`` (module docstring).

    Raises ValueError unless 0 ≤ γ < 1, hidden ≥ 1 and rows ≥ 1.
    """
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and 0 <= gamma < 1):
        raise ValueError(f"spatial sparsity γ must lie in [0, 1), got {gamma!r}")
    if hidden < 1 or rows < 1:
        raise ValueError(f"hidden size and rows must be ≥ 1, got H={hidden}, P={rows}")
    nb = _blocks(hidden, rows)
    return nb - math.floor(round(gamma * nb, 9))


@dataclass(frozen=True)
class BalanceUnit:
    """A layer's column-balanced pattern: ``rows`` (P ≥ 1, the slices are rows r mod P),
    ``kept`` (at most this many non-zero weights in every slice of every column of every
    W_x and W_h of the layer) and ``gamma`` (the target sparsity it was made for; ``kept`` is
    :func:`kept_per_slice` of it). Raises ValueError for P < 1, kept < 0 or γ outside [0, 1).
    """

    rows: int
    kept: int
    gamma: float

    def __post_init__(self):
        if not isinstance(self.rows, (int, np.integer)) or self.rows < 1:
            raise ValueError(f"rows: expected an integer ≥ 1, got {self.rows!r}")
        if not isinstance(self.kept, (int, np.integer)) or self.kept < 0:
            raise ValueError(f"kept: expected an integer ≥ 0, got {self.kept!r}")
        if not (isinstance(self.gamma, (int, float)) and math.isfinite(self.gamma)
                and 0 <= self.gamma < 1):
            raise ValueError(f"gamma: expected a number in [0, 1), got {self.gamma!r}")

    @classmethod
    def for_layer(cls, gamma: float, hidden: int, rows: int) -> "BalanceUnit":
        """The unit of a layer of ``hidden`` rows pruned to γ over slices of ``rows``."""
        return cls(rows=int(rows), kept=kept_per_slice(gamma, hidden, rows), gamma=float(gamma))

    def to_dict(self) -> dict:
        return {"rows": int(self.rows), "kept": int(self.kept), "gamma": float(self.gamma)}

    @classmethod
    def from_dict(cls, d: dict) -> "BalanceUnit":
        return cls(rows=d["rows"], kept=d["kept"], gamma=d["gamma"])


def _slices(w: np.ndarray, rows: int) -> np.ndarray:
    """(H, C) -> (NB, P, C), rows ≥ H padded with 0: element [b, p, c] is row b·P + p."""
    w = np.asarray(w)
    H, C = w.shape
    nb = _blocks(H, rows)
    padded = np.zeros((nb * rows, C), dtype=w.dtype)
    padded[:H] = w
    return padded.reshape(nb, rows, C)


def slice_nonzeros(w, rows: int) -> np.ndarray:
    """Non-zero weights per slice: ``w`` (H, C) -> int (C, P), element [c, p] counting rows
    r < H of column c with r mod P = p and w[r, c] ≠ 0."""
    return np.count_nonzero(_slices(w, rows), axis=0).T


def balanced_mask(w, rows: int, kept: int) -> np.ndarray:
    """The column-balanced keep mask of ``w`` (H, C), bool (H, C): in every slice of every
    column the ``kept`` largest |w| (ties: the lower row), or all of a slice's real rows when
    it has no more than ``kept`` (module docstring)."""
    w = np.asarray(w, dtype=np.float64)
    H, C = w.shape
    nb = _blocks(H, rows)
    mag = np.full((nb * rows, C), -1.0)          # padding rows rank below every real weight
    mag[:H] = np.abs(w)
    mag = mag.reshape(nb, rows, C)
    order = np.argsort(-mag, axis=0, kind="stable")   # per slice, largest first, lower row first
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(nb)[:, None, None], axis=0)
    keep = (rank < kept).reshape(nb * rows, C)[:H]
    return keep


def first_violation(w, rows: int, kept: int):
    """None when ``w`` (H, C) is balanced with ``kept``, else (column, p, non-zeros) of the
    first slice (column-major, then p) holding more than ``kept`` non-zero weights."""
    counts = slice_nonzeros(w, rows)
    bad = np.argwhere(counts > kept)
    if not len(bad):
        return None
    c, p = (int(v) for v in bad[0])
    return c, p, int(counts[c, p])


#: Gate names per cell, PyTorch's order (nn.GRU r, z, n; nn.LSTM i, f, g, o).
GATE_NAMES = {"gru": ("r", "z", "n"), "lstm": ("i", "f", "g", "o")}


def matrix_names(cell: str) -> tuple:
    """The gate names of a cell (``"gru"``: r, z, n; ``"lstm"``: i, f, g, o)."""
    return GATE_NAMES[cell]


def matrix_sparsity(layer, cell: str = "gru") -> list[dict]:
    """Per weight matrix of a bundle layer: dicts ``gate``, ``part`` ("x" or "h"),
    ``rows``/``columns`` (H, I or H), ``nonzero``, ``sparsity`` (zero fraction) and, when the
    layer has a balance record, ``max_slice_nonzero`` (the most non-zeros of any slice)."""
    out = []
    unit = getattr(layer, "balance", None)
    for part, ws in (("x", layer.w_x), ("h", layer.w_h)):
        for g, name in enumerate(GATE_NAMES[cell]):
            w = np.asarray(ws[g])
            nz = int(np.count_nonzero(w))
            d = {"gate": name, "part": part, "rows": int(w.shape[0]),
                 "columns": int(w.shape[1]), "nonzero": nz,
                 "sparsity": 1 - nz / w.size}
            if unit is not None:
                d["max_slice_nonzero"] = int(slice_nonzeros(w, unit.rows).max())
            out.append(d)
    return out


def effective_rows(rows: int, hidden: int) -> int:
    """The P a layer of ``hidden`` rows really sees: every P ≥ H gives the same slices (one
    row each), and the core clamps P to H (``drnn`` CLI), so P and min(P, H) are one unit."""
    return min(int(rows), int(hidden))


def check_core_shape(bundle, shape: CoreShape, where: str = "bundle") -> None:
    """Raise :class:`ShapeMismatch` when ``shape`` is not the core the bundle's column-balanced
    pattern was made for: for some layer l with a balance record, the core's P and the record's
    ``rows`` give different slices (``min(P, H_l)`` differs, :func:`effective_rows`). The
    one-line message names ``where`` (e.g. the model.json path), the field
    ``layers[l].balance.rows`` and both P values. Dense layers and dense bundles pass any
    shape. A core is built with one P for all layers; the check is per layer.
    """
    for l, ly in enumerate(bundle.layers):
        unit = getattr(ly, "balance", None)
        if unit is None:
            continue
        H = ly.hidden_size
        if effective_rows(unit.rows, H) != effective_rows(shape.rows, H):
            raise ShapeMismatch(
                f"{where}: layers[{l}].balance.rows: the weights are pruned column-balanced "
                f"for P = {unit.rows} rows per multiplier slice (γ = {unit.gamma:g}, "
                f"{unit.kept} kept per slice), the core has P = {shape.rows} (--rows); "
                f"generate with --rows {unit.rows}, or retrain with --balance-rows "
                f"{shape.rows}")


def prune_bundle(bundle, rows: int, gamma: float, layers=None):
    """A copy of ``bundle`` (a :class:`~drnn_hw.bundle.ModelBundle`) whose layers (all, or the
    indices in ``layers``) are pruned column-balanced for P = ``rows`` at γ: every W_x and W_h
    keeps :func:`balanced_mask` of its weights (the rest set to 0) with the layer's
    :class:`BalanceUnit` recorded. For tests and tools; the trainer prunes during training
    (:mod:`drnn_train.prune`). Raises ValueError as :func:`kept_per_slice`."""
    from .bundle import Layer

    out = []
    for l, ly in enumerate(bundle.layers):
        if layers is not None and l not in layers:
            out.append(ly)
            continue
        unit = BalanceUnit.for_layer(gamma, ly.hidden_size, rows)
        wx = np.stack([np.where(balanced_mask(w, rows, unit.kept), w, 0) for w in ly.w_x])
        wh = np.stack([np.where(balanced_mask(w, rows, unit.kept), w, 0) for w in ly.w_h])
        out.append(Layer(wx, wh, ly.bias, ly.theta_x, ly.theta_h, unit))
    return type(bundle)(
        formats=bundle.formats, layers=out, sigmoid_lut=bundle.sigmoid_lut,
        tanh_lut=bundle.tanh_lut, input_mean=bundle.input_mean,
        input_scale=bundle.input_scale, head_w=bundle.head_w, head_b=bundle.head_b,
        classes=bundle.classes, name=bundle.name, source=bundle.source, extra=bundle.extra,
        task=bundle.task, outputs=bundle.outputs, cell=bundle.cell)
