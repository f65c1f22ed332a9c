"""Reading the user's files with one-line errors that name the file and the problem: JSON
objects, and batches of float sequences whose ends are marked by lengths or by NaN padding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import UserError

__all__ = ["read_json_object", "check_sequence_lengths", "trailing_nan_lengths",
           "strip_padding"]


def read_json_object(path, error=UserError) -> dict:
    """A user-supplied JSON file that must hold an object; ``error`` (one line) otherwise."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{p}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise error(f"{p}: expected a JSON object")
    return data


def check_sequence_lengths(lengths, n: int, t: int, where: str) -> np.ndarray:
    """User-supplied sequence lengths: an integer array of shape (n,) with 1 ≤ length ≤ t.

    Returns them as int64. Raises :class:`UserError` ``"WHERE: expected ..., got ..."``
    (wrong shape, a non-integer dtype, a value out of range) naming the first bad sequence.
    """
    a = np.asarray(lengths)
    if a.shape != (n,):
        raise UserError(f"{where}: expected {n} lengths, shape ({n},), got shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise UserError(f"{where}: expected integer lengths, got dtype {a.dtype}")
    a = a.astype(np.int64)
    bad = np.flatnonzero((a < 1) | (a > t))
    if bad.size:
        k = int(bad[0])
        raise UserError(f"{where}: expected lengths in [1, {t}], got {a[k]} for sequence {k} "
                        f"({bad.size} out of range)")
    return a


def trailing_nan_lengths(x) -> np.ndarray:
    """(N, T, I) floats → (N,) int64: T minus the number of trailing all-NaN timesteps.

    This is the convention of the UCR/UEA archive and of ``aeon`` for series of unequal length
    in one array: a shorter series is padded at its end with rows that are NaN in every channel.
    Partially-NaN rows and NaN rows followed by real data are not padding (see
    :func:`strip_padding`, which reports them).
    """
    x = np.asarray(x, dtype=np.float64)
    t = x.shape[1]
    padding = np.all(np.isnan(x), axis=2)                     # (N, T) rows that are all NaN
    # Trailing run of all-NaN rows: reverse time, count until the first non-padding row.
    real = ~padding[:, ::-1]
    trailing = np.where(real.any(axis=1), real.argmax(axis=1), t)
    return (t - trailing).astype(np.int64)


def strip_padding(x, lengths=None, where: str = "input") -> tuple[np.ndarray, np.ndarray]:
    """Split a batch of sequences (N, T, I) floats into its valid steps and their lengths.

    ``lengths`` (N,) gives each sequence's length; values past it are padding and ignored
    (NaN or not). Without ``lengths`` they are inferred from trailing all-NaN timesteps
    (:func:`trailing_nan_lengths`). Returns ``(x, lengths)``: float64 (N, T, I) with 0.0 past
    each length, and (N,) int64 in [1, T].

    Raises :class:`UserError` naming ``where`` when a given ``lengths`` is malformed
    (:func:`check_sequence_lengths`), when a sequence is padding only (length 0), or when a
    value before a sequence's end is NaN or infinite (``sequence n, step t``, 0-based).
    """
    x = np.asarray(x, dtype=np.float64)
    n, t = x.shape[:2]
    if lengths is None:
        lengths = trailing_nan_lengths(x)
        empty = np.flatnonzero(lengths == 0)
        if empty.size:
            raise UserError(f"{where}: sequence {int(empty[0])} is NaN at every step (no data; "
                            "only trailing all-NaN timesteps are padding)")
        rule = "only trailing all-NaN timesteps are padding"
    else:
        lengths = check_sequence_lengths(lengths, n, t, f"{where}: lengths")
        rule = "values past the given lengths are ignored"
    valid = np.arange(t)[None, :] < lengths[:, None]               # (N, T)
    bad = valid[:, :, None] & ~np.isfinite(x)
    if bad.any():
        s, step, c = (int(v) for v in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(x[s, step, c]) else "infinite"
        raise UserError(f"{where}: sequence {s}, step {step}, feature {c}: {kind} value before "
                        f"the sequence's end at length {lengths[s]} ({rule}; indices from 0)")
    return np.where(valid[:, :, None], x, 0.0), lengths
