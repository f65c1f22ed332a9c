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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bundle import ModelBundle
from .cycle_model import CoreShape, cycles_for_masks
from .numerics import Formats, lut_index, narrow_acc, round_shift, saturate

__all__ = ["GoldenResult", "run", "activation_pipeline", "float_delta_gru", "check_lengths"]


@dataclass
class GoldenResult:
    h: np.ndarray        # (N, T, H) int64 activation codes; steps past a sequence's end are 0
    nnz_dx: np.ndarray   # (N, T) int64 kept input deltas per step (0 past the end)
    nnz_dh: np.ndarray   # (N, T)
    cycles: np.ndarray   # (N, T) cycle model prediction for the core shape (0 past the end)
    lengths: np.ndarray  # (N,)

    def flat(self, key: str) -> np.ndarray:
        """Per-step values of the valid steps, sequences concatenated in order."""
        a = getattr(self, key)
        return np.concatenate([a[n, :L] for n, L in enumerate(self.lengths)]) \
            if len(self.lengths) else a.reshape(0)


def activation_pipeline(m_r, m_z, m_nx, m_nh, h, sigmoid_lut, tanh_lut, fmts: Formats):
    """The AP, element-wise on integer arrays: returns the new hidden state codes."""
    A = fmts.act_frac
    r = sigmoid_lut[lut_index(narrow_acc(m_r, fmts), fmts, fmts.sigmoid_range_log2)]
    z = sigmoid_lut[lut_index(narrow_acc(m_z, fmts), fmts, fmts.sigmoid_range_log2)]
    rnh = saturate(round_shift(r * narrow_acc(m_nh, fmts), A), fmts.act_bits)
    pre = saturate(narrow_acc(m_nx, fmts) + rnh, fmts.act_bits)
    n = tanh_lut[lut_index(pre, fmts, fmts.tanh_range_log2)]
    return saturate(n + round_shift(z * (h - n), A), fmts.act_bits)


def check_lengths(lengths, n: int, t: int) -> np.ndarray:
    if lengths is None:
        return np.full(n, t, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.shape != (n,) or np.any(lengths < 0) or np.any(lengths > t):
        raise ValueError(f"lengths must be {n} integers in [0, {t}], got shape {lengths.shape}")
    return lengths


def _stacked_weights(b: ModelBundle) -> np.ndarray:
    """(I+H, 4H) so that [Δx Δh] @ W gives the increments of M_r, M_z, M_nx, M_nh."""
    I, H = b.input_size, b.hidden_size
    W = np.zeros((I + H, 4 * H), dtype=np.int64)
    W[:I, 0:H], W[I:, 0:H] = b.w_x[0].T, b.w_h[0].T
    W[:I, H:2 * H], W[I:, H:2 * H] = b.w_x[1].T, b.w_h[1].T
    W[:I, 2 * H:3 * H] = b.w_x[2].T
    W[I:, 3 * H:] = b.w_h[2].T
    return W


def _keep(delta, theta: int):
    return (delta != 0) & (np.abs(delta) >= theta)


def run(bundle: ModelBundle, x_codes, lengths=None, shape: CoreShape | None = None,
        with_cycles: bool = True) -> GoldenResult:
    """Run the integer model on ``x_codes`` (N, T, I) activation codes from the initial state.

    ``lengths`` (N,) marks ragged sequences: steps at or past a sequence's length do not happen
    (no state change, no output, no cycles).
    """
    fmts = bundle.formats
    x = np.asarray(x_codes, dtype=np.int64)
    if x.ndim != 3 or x.shape[2] != bundle.input_size:
        raise ValueError(f"x must be (N, T, {bundle.input_size}), got {x.shape}")
    if x.size and (x.min() < fmts.act.min or x.max() > fmts.act.max):
        raise ValueError(f"x codes must lie in [{fmts.act.min}, {fmts.act.max}]")
    N, T, I = x.shape
    H = bundle.hidden_size
    lengths = check_lengths(lengths, N, T)
    W = _stacked_weights(bundle)

    x_ref = np.zeros((N, I), np.int64)
    h_ref = np.zeros((N, H), np.int64)
    h = np.zeros((N, H), np.int64)
    M = np.tile(bundle.bias.reshape(1, 4 * H), (N, 1))
    out = np.zeros((N, T, H), np.int64)
    dx_masks = np.zeros((N, T, I), bool)
    dh_masks = np.zeros((N, T, H), bool)

    for t in range(T):
        active = (t < lengths)[:, None]
        dx = x[:, t] - x_ref
        kx = _keep(dx, bundle.theta_x) & active
        dh = h - h_ref
        kh = _keep(dh, bundle.theta_h) & active
        x_ref = np.where(kx, x[:, t], x_ref)
        h_ref = np.where(kh, h, h_ref)
        d = np.concatenate([np.where(kx, dx, 0), np.where(kh, dh, 0)], axis=1)
        M = saturate(M + d @ W, fmts.acc_bits)
        m_r, m_z, m_nx, m_nh = np.split(M, 4, axis=1)
        h_new = activation_pipeline(m_r, m_z, m_nx, m_nh, h, bundle.sigmoid_lut,
                                    bundle.tanh_lut, fmts)
        h = np.where(active, h_new, h)
        out[:, t] = np.where(active, h, 0)
        dx_masks[:, t], dh_masks[:, t] = kx, kh

    valid = np.arange(T)[None, :] < lengths[:, None]
    cycles = np.zeros((N, T), np.int64)
    if with_cycles and valid.any():
        cycles[valid] = cycles_for_masks(dx_masks[valid], dh_masks[valid], shape or CoreShape())
    return GoldenResult(h=out, nnz_dx=dx_masks.sum(-1), nnz_dh=dh_masks.sum(-1), cycles=cycles,
                        lengths=lengths)


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
