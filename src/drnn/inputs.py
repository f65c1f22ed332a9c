"""The user's arrays for ``drnn simulate`` and ``drnn run``: X.npy in, STATS.json out, with
one-line errors that name the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from drnn_hw.errors import UserError


def load_inputs(path, input_size: int) -> tuple[np.ndarray, bool]:
    """Load X.npy: float (T, I) or (N, T, I). Returns (N, T, I) float64 and whether it was 2-D."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: input file not found")
    try:
        x = np.load(p, allow_pickle=False)
    except Exception as e:
        raise UserError(f"{p}: not a readable .npy array ({type(e).__name__})") from None
    if x.dtype.kind not in "fiu":
        raise UserError(f"{p}: expected a numeric array, got dtype {x.dtype}")
    if x.ndim not in (2, 3):
        raise UserError(f"{p}: expected shape (T, {input_size}) or (N, T, {input_size}), "
                        f"got {x.shape}")
    if x.shape[-1] != input_size:
        raise UserError(f"{p}: expected {input_size} input features in the last dimension, "
                        f"got shape {x.shape}")
    if x.shape[-2] == 0:
        raise UserError(f"{p}: no timesteps (shape {x.shape})")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise UserError(f"{p}: contains {bad} NaN or infinite values")
    single = x.ndim == 2
    return (x[None] if single else x), single


def write_stats(path, result, extra: dict | None = None):
    """STATS.json: steps, per-step nnz_dx, nnz_dh, cycles (sequences in order) and totals."""
    nnz_dx, nnz_dh, cycles = (result.flat(k).tolist() for k in ("nnz_dx", "nnz_dh", "cycles"))
    stats = {
        "steps": len(cycles),
        "nnz_dx": nnz_dx, "nnz_dh": nnz_dh, "cycles": cycles,
        "nnz_dx_total": int(sum(nnz_dx)), "nnz_dh_total": int(sum(nnz_dh)),
        "cycles_total": int(sum(cycles)),
    }
    if extra:
        stats.update(extra)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(stats, indent=1) + "\n")
    return stats
