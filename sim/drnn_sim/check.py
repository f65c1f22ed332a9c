"""Comparison of a co-simulation against the golden model, with messages naming the first
mismatch (sequence, step, element)."""

from __future__ import annotations

import numpy as np

__all__ = ["mismatches", "assert_matches_golden", "sparse_walk"]


def mismatches(result, golden) -> list[str]:
    """Every way ``result`` (h, nnz_dx, nnz_dh, cycles, lengths, prescan; and the per-layer
    counters layer_nnz_dx, layer_nnz_dh, layer_cycles when it has them) differs from
    ``golden``."""
    out = []
    if not np.array_equal(result.lengths, golden.lengths):
        return [f"lengths {result.lengths} != {golden.lengths}"]
    valid = np.arange(golden.h.shape[1])[None, :] < golden.lengths[:, None]
    keys = ["h", "nnz_dx", "nnz_dh", "cycles"]
    # The prescans (cycles each step's scan started before its cycle 0; issue #10's step
    # overlap): the golden result's are those of frames back to back unless a run with
    # stalls or one frame at a time gave it the core's own (``GoldenResult.with_prescan``).
    if getattr(result, "prescan", None) is not None and golden.prescan is not None:
        keys.append("prescan")
    # Per-layer counters (N, T, L), when the run read them (a stacked core's registers).
    keys += [k for k in ("layer_nnz_dx", "layer_nnz_dh", "layer_cycles")
             if getattr(result, k, None) is not None]
    for key in keys:
        a, b = getattr(result, key), getattr(golden, key)
        if a.shape != b.shape:
            out.append(f"{key}: shape {a.shape}, golden {b.shape}")
            continue
        diff = (a != b)
        diff = diff & (valid[..., None] if a.ndim == 3 else valid)
        if diff.any():
            idx = tuple(int(i) for i in np.argwhere(diff)[0])
            out.append(f"{key}: {int(diff.sum())} mismatches, first at {idx}: "
                       f"rtl {a[idx]}, golden {b[idx]}")
    return out


def assert_matches_golden(result, golden):
    problems = mismatches(result, golden)
    assert not problems, "RTL differs from the golden model: " + "; ".join(problems)


def sparse_walk(rng, n: int, t: int, i: int, fmt, step: float = 0.25, hold: float = 0.3):
    """(n, t, i) activation codes of a random walk that sometimes holds still (zero deltas)."""
    steps = rng.normal(0, step, (n, t, i))
    steps[rng.random((n, t, i)) < hold] = 0
    walk = np.cumsum(steps, axis=1)
    codes = np.round(walk * 2 ** fmt.frac).astype(np.int64)
    return np.clip(codes, fmt.min, fmt.max)
