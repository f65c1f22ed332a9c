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

Against the original float GRU (``float_params``: the weights before quantisation, as
imported by ``drnn export --torch-gru``) and float inputs ``x_f`` whose codes are
``x_q = quantize(x_f)``: ``M_g − M_f = δb + δW_x x_f + W_x,q (x_q − x_f) + δW_h h_f +
W_h,q (h_g − h_f)`` with ``δW = W_q − W`` (the rounding of each weight, taken exactly from the
two) and ``|x_q − x_f| ≤ q/2`` (checked: no input saturates), so each gate's ``e_m`` gains
``d = |δb| + |δW_x| |x_f| + |W_x,q| q/2 + Σ|δW_h|`` (|h_f| ≤ 1), ``|x_f|`` the largest over
the batch at that step; ``B_nh`` uses the larger of the float and quantised weights.

This assumes no saturation (|M| and |h| stay inside the activation range), which
:func:`gru_error_bound` checks and refuses otherwise. The bound compounds through the
recurrence, so it is tight only for short sequences or small recurrent weights.
"""

from __future__ import annotations

import numpy as np

from drnn_hw.numerics import dequantize, lut_error_bound

__all__ = ["gru_error_bound"]


def gru_error_bound(bundle, x_codes, steps: int | None = None, float_params: dict | None = None,
                    x_float=None) -> np.ndarray:
    """(T, H) bound on |h_golden − h_torch_gru| per step and unit (Θ = 0, see module doc).

    ``x_codes`` (N, T, I) activation codes the golden model runs on. Without ``float_params``
    the reference is ``torch.nn.GRU`` (float64) with the bundle's dequantised weights, fed the
    dequantised codes. With ``float_params`` ({w_ih (3H, I), w_hh (3H, H), b_ih, b_hh (3H,) or
    None}, nn.GRU layout) it is the GRU with those float weights, fed ``x_float`` (N, T, I, the
    normalised inputs whose codes are ``x_codes``; default: the dequantised codes). Raises
    ValueError for nonzero thresholds, or when the model or an input may saturate.
    """
    f = bundle.formats
    if bundle.theta_x or bundle.theta_h:
        raise ValueError("the bound holds for thresholds 0 only")
    q = f.act.lsb
    es, et = lut_error_bound(f, "sigmoid"), lut_error_bound(f, "tanh")
    wxq = dequantize(bundle.w_x, f.weight)                   # (3, H, I)
    whq = dequantize(bundle.w_h, f.weight)                   # (3, H, H)
    bq = dequantize(bundle.bias, f.acc)                      # (4, H)
    wx, wh, b = np.abs(wxq), np.abs(whq), np.abs(bq)
    H, I = bundle.hidden_size, bundle.input_size
    x = np.asarray(x_codes)
    T = x.shape[1] if steps is None else steps
    xmax = float(np.abs(dequantize(x, f.act)).max()) if x.size else 0.0
    # Per step: the largest |x_f| of each feature over the batch, and the weight/bias rounding.
    d = np.zeros((T, 4, H))                                   # extra e_m for M_r, M_z, M_nx, M_nh
    b_nh = b[3] + wh[2].sum(1)
    if float_params is not None:
        xf = dequantize(x, f.act) if x_float is None else np.asarray(x_float, np.float64)
        if xf.shape != x.shape:
            raise ValueError(f"x_float: expected shape {x.shape}, got {xf.shape}")
        e_x = 0.0
        if x_float is not None:
            if np.abs(xf).max(initial=0.0) + q / 2 >= f.act.max * q:
                raise ValueError("an input saturates; the bound does not apply")
            e_x = q / 2
        w_ih = np.asarray(float_params["w_ih"], np.float64).reshape(3, H, I)
        w_hh = np.asarray(float_params["w_hh"], np.float64).reshape(3, H, H)
        zero = np.zeros(3 * H)
        b_ih = zero if float_params.get("b_ih") is None else np.asarray(float_params["b_ih"])
        b_hh = zero if float_params.get("b_hh") is None else np.asarray(float_params["b_hh"])
        b_f = np.stack([b_ih[:H] + b_hh[:H], b_ih[H:2 * H] + b_hh[H:2 * H], b_ih[2 * H:],
                        b_hh[2 * H:]])
        dwx, dwh, db = np.abs(wxq - w_ih), np.abs(whq - w_hh), np.abs(bq - b_f)
        xa = np.abs(xf[:, :T]).max(axis=0)                    # (T, I)
        for k in range(3):                                    # r, z: x and h parts; nx: x part
            d[:, k] = db[k] + xa @ dwx[k].T + (wx[k].sum(1) * e_x)[None]
            if k < 2:
                d[:, k] += dwh[k].sum(1)[None]
        d[:, 3] = db[3] + dwh[2].sum(1)[None]
        b_nh = np.maximum(b_nh, np.abs(b_f[3]) + np.abs(w_hh[2]).sum(1))
    bounds = np.zeros((T, H))
    e = np.zeros(H)
    act_top = f.act.max * q
    for t in range(T):
        # |M| ≤ |b| + Σ|W_x| |x|max + Σ|W_h| (1 + e): must not reach the saturation limit.
        worst_m = max(float((b[k] + wx[k].sum(1) * xmax + wh[k].sum(1) * (1 + e.max())).max())
                      for k in range(3))
        if worst_m + q >= act_top or 1 + e.max() >= act_top:
            raise ValueError("model may saturate; the bound does not apply")
        e_mr = wh[0] @ e + q / 2 + d[t, 0]
        e_mz = wh[1] @ e + q / 2 + d[t, 1]
        e_mnx = q / 2 + d[t, 2]
        e_mnh = wh[2] @ e + q / 2 + d[t, 3]
        e_r, e_z = es + e_mr / 4, es + e_mz / 4
        e_rnh = q / 2 + e_mnh + e_r * b_nh
        e_n = et + e_mnx + e_rnh
        e = np.maximum(e_n, e) + 2 * e_z + q / 2
        bounds[t] = e
    return bounds
