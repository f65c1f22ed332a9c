"""The user's arrays for ``drnn simulate`` and ``drnn run``: X.npy (and optional lengths) in,
H.npy and STATS.json out, with one-line errors that name the file and the problem.

X.npy holds float inputs in raw units, either one sequence (T, I) or a batch in the layout
``ntc`` (N, T, I; batch first) or ``tnc`` (T, N, I; the layout of ``torch.nn.GRU`` with
``batch_first=False``). Sequences of unequal length are given by a lengths file (N,) or, as in
the UCR/UEA archive and ``aeon``, by padding each shorter sequence at its end with timesteps
that are NaN in every feature. H.npy comes back in the same layout, NaN past each length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drnn_hw.errors import UserError
from drnn_hw.io import check_sequence_lengths, strip_padding

__all__ = ["LAYOUTS", "Inputs", "read_inputs", "saturation_warning",
           "write_stats"]

#: Layouts of a 3-D X.npy: name -> description.
LAYOUTS = {"ntc": "(N, T, I), batch first", "tnc": "(T, N, I), time first as nn.GRU default"}


@dataclass
class Inputs:
    """A batch read from X.npy, in the engines' layout."""

    path: Path
    x: np.ndarray        # (N, T, I) float64 raw units, 0.0 past each sequence's length
    lengths: np.ndarray  # (N,) int64 in [1, T]
    single: bool         # the file held one (T, I) sequence
    layout: str          # the file's layout, a key of LAYOUTS

    @property
    def valid(self) -> np.ndarray:
        """(N, T) bool: the steps within each sequence's length."""
        return np.arange(self.x.shape[1])[None, :] < self.lengths[:, None]

    def to_file_layout(self, h) -> np.ndarray:
        """Per-step outputs (N, T, H) → the file's layout ((T, H), (N, T, H) or (T, N, H)),
        float64 with NaN at the steps past each sequence's length."""
        h = np.where(self.valid[:, :, None], np.asarray(h, dtype=np.float64), np.nan)
        if self.single:
            return h[0]
        return h.transpose(1, 0, 2) if self.layout == "tnc" else h


def _load_npy(p: Path, what: str) -> np.ndarray:
    if not p.is_file():
        raise UserError(f"{p}: {what} file not found")
    try:
        return np.load(p, allow_pickle=False)
    except Exception as e:  # OSError/ValueError/EOFError...: not an .npy file we can read
        raise UserError(f"{p}: not a readable .npy array ({type(e).__name__})") from None


def read_inputs(path, input_size: int, *, layout: str = "ntc", lengths_path=None) -> Inputs:
    """Read X.npy (and the lengths file, if any) for a model with ``input_size`` features.

    ``layout`` is how a 3-D file is ordered (:data:`LAYOUTS`); a 2-D file is one sequence
    (T, I) in either layout. ``lengths_path`` is an .npy of N integers in [1, T]; without it
    each sequence's length is T minus its trailing all-NaN timesteps. Raises a one-line
    :class:`UserError` naming the file for a missing or unreadable file, a non-numeric array,
    a wrong shape or feature count, no sequences or no timesteps, bad lengths, and any NaN or
    infinity before a sequence's end (naming the sequence and step).
    """
    if layout not in LAYOUTS:
        raise UserError(f"--layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
    p = Path(path)
    x = _load_npy(p, "input")
    if x.dtype.kind not in "fiu":
        raise UserError(f"{p}: expected a numeric array, got dtype {x.dtype}")
    order = "(T, N, {i})" if layout == "tnc" else "(N, T, {i})"
    if x.ndim not in (2, 3):
        raise UserError(f"{p}: expected shape (T, {input_size}) or "
                        f"{order.format(i=input_size)} (layout {layout}), got {x.shape}")
    if x.shape[-1] != input_size:
        raise UserError(f"{p}: expected {input_size} input features in the last dimension, "
                        f"got shape {x.shape}")
    single, shape = x.ndim == 2, x.shape
    x = x[None] if single else (x.transpose(1, 0, 2) if layout == "tnc" else x)
    if x.shape[1] == 0:
        raise UserError(f"{p}: no timesteps (shape {shape}, layout {layout})")
    if x.shape[0] == 0:
        raise UserError(f"{p}: no sequences (shape {shape}, layout {layout})")
    lengths = None
    if lengths_path is not None:
        lp = Path(lengths_path)
        lengths = check_sequence_lengths(_load_npy(lp, "lengths"), x.shape[0], x.shape[1],
                                         str(lp))
    x, lengths = strip_padding(x.astype(np.float64), lengths, where=str(p))
    return Inputs(path=p, x=x, lengths=lengths, single=single, layout=layout)


def saturation_warning(where, saturation) -> str | None:
    """The one-line warning for inputs that saturated (an
    :class:`~drnn_hw.bundle.InputSaturation`), or None when none did."""
    s = saturation
    if not s.count:
        return None
    return (f"drnn: warning: {where}: {s.count} of {s.total} input values beyond the "
            f"activation range ±{s.limit:g} after normalisation were saturated "
            f"(largest magnitude {s.largest:.6g})")


def write_stats(path, result, extra: dict | None = None):
    """STATS.json: per-step nnz_dx, nnz_dh, cycles of the valid steps (sequences in order,
    steps past a sequence's length left out), their totals, and the sequence lengths; for a
    stacked model also layer_nnz_dx, layer_nnz_dh (per step, a list of L: one per layer;
    nnz_dx/nnz_dh are their sums) and layer_cycles (each layer's pass, when the engine
    reports it: golden model, verilator). An engine that reports no cycles leaves
    ``cycles`` and ``cycles_total`` null."""
    nnz_dx, nnz_dh = (result.flat(k).tolist() for k in ("nnz_dx", "nnz_dh"))
    cycles = result.flat("cycles")
    cycles = None if cycles is None else cycles.tolist()
    stats = {
        "steps": len(nnz_dx),
        "lengths": [int(v) for v in result.lengths],
        "nnz_dx": nnz_dx, "nnz_dh": nnz_dh, "cycles": cycles,
        "nnz_dx_total": int(sum(nnz_dx)), "nnz_dh_total": int(sum(nnz_dh)),
        "cycles_total": None if cycles is None else int(sum(cycles)),
    }
    if getattr(result, "layer_nnz_dx", None) is not None and result.layer_nnz_dx.shape[-1] > 1:
        # Stacked layers: per step and layer, (steps, L).
        stats["layer_nnz_dx"] = result.flat("layer_nnz_dx").tolist()
        stats["layer_nnz_dh"] = result.flat("layer_nnz_dh").tolist()
        if getattr(result, "layer_cycles", None) is not None:
            # Each layer's pass; cycles also count the idle cycles between passes.
            stats["layer_cycles"] = result.flat("layer_cycles").tolist()
    if extra:
        stats.update(extra)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(stats, indent=1) + "\n")
    return stats
