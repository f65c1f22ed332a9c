"""How far the integer accelerator can be from the float GRU it was exported from.

:func:`gru_error_bound` gives, for a bundle at Θx = Θh = 0 and inputs that are exactly
representable (activation codes), a per-step, per-unit upper bound on
``|h_hardware − h_float|`` where ``h_float`` is ``torch.nn.GRU`` (float64) with the bundle's
*dequantised* weights and biases. Weight quantisation is therefore not part of the difference;
what remains is the activation pipeline: narrowing M to the activation format, the σ/tanh
LUTs, and the two rounded products. Derivation (vectors per hidden unit, ``e`` the bound on
the previous step's ``|h_g − h_f|``, q the activation LSB, εσ, ετ the LUT bounds of
:func:`drnn_hw.numerics.lut_error_bound`):

* At Θ = 0 the delta memories telescope exactly: ``M = b + W x + W h_g`` (integers, no
  rounding), so ``|M_g − M_f| ≤ |W_h| e`` and narrowing adds at most q/2:
  ``e_mr = |W_hr| e + q/2``, ``e_mz = |W_hz| e + q/2``, ``e_mnh = |W_hn| e + q/2``,
  ``e_mnx = q/2``.
* σ has slope ≤ 1/4: ``|LUT(m_g) − σ(M_f)| ≤ εσ + e_m / 4`` (the LUT bound holds for every
  activation code); tanh has slope ≤ 1: ``e_n ≤ ετ + e_pre``.
* ``r_g m_g − r_f M_f = r_g (m_g − M_f) + (r_g − r_f) M_f`` with 0 ≤ r_g ≤ 1 and
  ``|M_nh,f| ≤ |b_hn| + Σ|W_hn|`` (|h_f| ≤ 1): ``e_rnh ≤ q/2 + e_mnh + e_r B_nh``;
  ``e_pre ≤ e_mnx + e_rnh``.
* ``h_g' − h_f' = (n_g − n_f)(1 − z_g) + z_g (h_g − h_f) + (z_g − z_f)(h_f − n_f)`` plus the
  rounding of ``z (h − n)``: ``e' ≤ max(e_n, e) + 2 e_z + q/2`` (0 ≤ z_g ≤ 1, |h_f − n_f| ≤ 2).

This assumes no saturation (|M| and |h| stay inside the activation range), which
:func:`gru_error_bound` checks and refuses otherwise. The bound compounds through the
recurrence, so it is tight only for short sequences or small recurrent weights.
"""

from __future__ import annotations

import numpy as np

from drnn_hw.numerics import dequantize, lut_error_bound

__all__ = ["gru_error_bound"]


def gru_error_bound(bundle, x_codes, steps: int | None = None) -> np.ndarray:
    """(T, H) bound on |h_golden − h_torch_gru| per step and unit (Θ = 0, see module doc)."""
    f = bundle.formats
    if bundle.theta_x or bundle.theta_h:
        raise ValueError("the bound holds for thresholds 0 only")
    q = f.act.lsb
    es, et = lut_error_bound(f, "sigmoid"), lut_error_bound(f, "tanh")
    wx = np.abs(dequantize(bundle.w_x, f.weight))            # (3, H, I)
    wh = np.abs(dequantize(bundle.w_h, f.weight))            # (3, H, H)
    b = np.abs(dequantize(bundle.bias, f.acc))               # (4, H)
    x = np.asarray(x_codes)
    T = x.shape[1] if steps is None else steps
    xmax = float(np.abs(dequantize(x, f.act)).max()) if x.size else 0.0
    b_nh = b[3] + wh[2].sum(1)
    bounds = np.zeros((T, bundle.hidden_size))
    e = np.zeros(bundle.hidden_size)
    act_top = f.act.max * q
    for t in range(T):
        # |M| ≤ |b| + Σ|W_x| |x|max + Σ|W_h| (1 + e): must not reach the saturation limit.
        worst_m = max(float((b[k] + wx[k].sum(1) * xmax + wh[k].sum(1) * (1 + e.max())).max())
                      for k in range(3))
        if worst_m + q >= act_top or 1 + e.max() >= act_top:
            raise ValueError("model may saturate; the bound does not apply")
        e_mr = wh[0] @ e + q / 2
        e_mz = wh[1] @ e + q / 2
        e_mnh = wh[2] @ e + q / 2
        e_r, e_z = es + e_mr / 4, es + e_mz / 4
        e_rnh = q / 2 + e_mnh + e_r * b_nh
        e_n = et + q / 2 + e_rnh
        e = np.maximum(e_n, e) + 2 * e_z + q / 2
        bounds[t] = e
    return bounds
