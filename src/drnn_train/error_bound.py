"""How far the integer accelerator can be from the float GRU (or LSTM) it was exported from.

The LSTM's bound, :func:`lstm_error_bound`, is derived in its docstring the same way.

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

**Stacked layers** (L > 1). Layer l ≥ 1 takes layer l−1's h as its input: the hardware feeds
it the code ``x_g = h_g^(l−1)`` as it is (h is already in the activation format: no second
rounding), the float GRU feeds ``x_f = h_f^(l−1)``. So its input is not exactly representable
on the float side, and the input error is not q/2 but layer l−1's bound at the same step,
``|x_g − x_f| ≤ E^(l−1)_t`` (per unit). At Θ = 0, ``M_g − M_f = δb + δW_x x_f +
W_x,q (x_g − x_f) + δW_h h_f + W_h,q (h_g − h_f)`` as above, so each gate with an input part
(r, z, nx) gains ``|W_x,q| E^(l−1)_t``; with ``float_params`` the ``|δW_x| |x_f|`` term takes
``|x_f| ≤ hmax`` of layer l−1 (below). The steps above then give layer l's ``E^(l)_t``; the
bound of the model's output is the last layer's.

**Initial state.** A GRU's h stays within ``hmax = max(1, |h0|)``: h' = (1 − z) n + z h is a
convex combination of n ∈ [−1, 1] and h, in the float GRU and in the hardware alike (the
rounded ``z (h − n)`` lies between 0 and ``h − n``, both integers). So ``|h_f| ≤ hmax`` replaces
``|h_f| ≤ 1`` above (``B_nh``, ``Σ|δW_h|``) and ``|h_f − n_f| ≤ hmax + 1`` replaces 2. The
starting error is ``e_0 = |h0_g − h0_f|`` (0 when torch is given the dequantised codes; at
most q/2 when it is given the real h0 the codes were quantised from). With h0 = 0 both are the
single-layer values above, unchanged.

This assumes no saturation (|M| and |h| stay inside the activation range), which
:func:`gru_error_bound` checks and refuses otherwise. The bound compounds through the
recurrence and through the layers, so it is tight only for short sequences, small recurrent
weights and few layers.
"""

from __future__ import annotations

import numpy as np

from drnn_hw.numerics import dequantize, lut_error_bound

__all__ = ["gru_error_bound", "layer_error_bounds", "lstm_error_bound", "lstm_layer_error_bounds"]


def gru_error_bound(bundle, x_codes, steps: int | None = None, float_params=None,
                    x_float=None, h0=None, h0_float=None) -> np.ndarray:
    """(T, H) bound on |h_golden − h_torch_gru| of the model's output (its last layer's h) per
    step and unit (Θ = 0, see the module doc); :func:`layer_error_bounds` gives every layer's.

    ``x_codes`` (N, T, I) activation codes the golden model runs on. Without ``float_params``
    the reference is ``torch.nn.GRU`` (float64; for L layers, the layers one after the other)
    with the bundle's dequantised weights, fed the dequantised codes. With ``float_params``
    ({w_ih (3H, I), w_hh (3H, H), b_ih, b_hh (3H,) or None}, nn.GRU layout; for a stacked
    bundle a list of L such dicts, layer l's ``w_ih`` (3H_l, H_{l−1})) it is the GRU with those
    float weights, fed ``x_float`` (N, T, I, the normalised inputs whose codes are
    ``x_codes``; default: the dequantised codes). ``h0``: the initial state the golden model
    starts from, a list of L activation-code arrays (H_l,) or (N, H_l), or None for a layer
    starting at 0 (as :func:`drnn_hw.golden.initial_state`); torch is given the dequantised
    codes, or ``h0_float`` (a list of L real arrays of the same shapes, the values the codes
    were quantised from). Raises ValueError for nonzero thresholds, a wrong ``float_params``
    count, or when the model or an input may saturate.
    """
    return layer_error_bounds(bundle, x_codes, steps, float_params, x_float, h0, h0_float)[-1]


def _float_layer(fp: dict, H: int, I: int):
    """nn.GRU-layout float parameters -> (w_ih (3, H, I), w_hh (3, H, H), b_f (4, H) in M's
    order: b_ir + b_hr, b_iz + b_hz, b_in, b_hn)."""
    w_ih = np.asarray(fp["w_ih"], np.float64).reshape(3, H, I)
    w_hh = np.asarray(fp["w_hh"], np.float64).reshape(3, H, H)
    zero = np.zeros(3 * H)
    b_ih = zero if fp.get("b_ih") is None else np.asarray(fp["b_ih"], np.float64)
    b_hh = zero if fp.get("b_hh") is None else np.asarray(fp["b_hh"], np.float64)
    b_f = np.stack([b_ih[:H] + b_hh[:H], b_ih[H:2 * H] + b_hh[H:2 * H], b_ih[2 * H:],
                    b_hh[2 * H:]])
    return w_ih, w_hh, b_f


def layer_error_bounds(bundle, x_codes, steps: int | None = None, float_params=None,
                       x_float=None, h0=None, h0_float=None) -> list:
    """The bound of every layer: a list of L arrays (T, H_l), layer l's bound on
    |h_golden^(l) − h_torch^(l)| per step and unit. Arguments, reference and errors as
    :func:`gru_error_bound`; layer l ≥ 1's input error is layer l−1's bound (module doc)."""
    f = bundle.formats
    for l, ly in enumerate(bundle.layers):
        if ly.theta_x or ly.theta_h:
            raise ValueError("the bound holds for thresholds 0 only"
                             + (f" (layer {l} has nonzero thresholds)"
                                if bundle.num_layers > 1 else ""))
    L = bundle.num_layers
    if isinstance(float_params, dict):
        float_params = [float_params]
    if float_params is not None and len(float_params) != L:
        raise ValueError(f"float_params: expected {L} layers, got {len(float_params)}")
    for name, v in (("h0", h0), ("h0_float", h0_float)):
        if v is not None and len(v) != L:
            raise ValueError(f"{name}: expected {L} arrays (one per layer), got {len(v)}")
    q = f.act.lsb
    es, et = lut_error_bound(f, "sigmoid"), lut_error_bound(f, "tanh")
    act_top = f.act.max * q
    x = np.asarray(x_codes)
    T = x.shape[1] if steps is None else steps
    xmax = float(np.abs(dequantize(x, f.act)).max()) if x.size else 0.0
    xf = None
    e_x = 0.0
    if float_params is not None:
        xf = dequantize(x, f.act) if x_float is None else np.asarray(x_float, np.float64)
        if xf.shape != x.shape:
            raise ValueError(f"x_float: expected shape {x.shape}, got {xf.shape}")
        if x_float is not None:
            if np.abs(xf).max(initial=0.0) + q / 2 >= act_top:
                raise ValueError("an input saturates; the bound does not apply")
            e_x = q / 2
    # Layer l ≥ 1's input: its error bound (T, I_l) and the bound on its magnitude.
    e_in, in_hmax = None, 1.0
    out = []
    for l, ly in enumerate(bundle.layers):
        wxq = dequantize(ly.w_x, f.weight)                   # (3, H, I)
        whq = dequantize(ly.w_h, f.weight)                   # (3, H, H)
        bq = dequantize(ly.bias, f.acc)                      # (4, H)
        wx, wh, b = np.abs(wxq), np.abs(whq), np.abs(bq)
        H, I = ly.hidden_size, ly.input_size
        e, hmax = np.zeros(H), 1.0
        if h0 is not None and h0[l] is not None:
            g0 = dequantize(np.asarray(h0[l]), f.act)
            f0 = g0 if h0_float is None or h0_float[l] is None else \
                np.asarray(h0_float[l], np.float64)
            if f0.shape != g0.shape:
                raise ValueError(f"h0_float[{l}]: expected shape {g0.shape}, got {f0.shape}")
            diff = np.abs(g0 - f0).reshape(-1, H)
            e = diff.max(axis=0) if diff.size else e
            hmax = max(1.0, float(np.abs(g0).max(initial=0.0)),
                       float(np.abs(f0).max(initial=0.0)))
        # Per step: the extra e_m of M_r, M_z, M_nx, M_nh from the weight/bias rounding (d) and
        # from the input error of a layer fed by the one below (g).
        d = np.zeros((T, 4, H))
        g = np.zeros((T, 3, H))
        b_nh = b[3] + wh[2].sum(1) * hmax
        if float_params is not None:
            w_ih, w_hh, b_f = _float_layer(float_params[l], H, I)
            dwx, dwh, db = np.abs(wxq - w_ih), np.abs(whq - w_hh), np.abs(bq - b_f)
            # |x_f| per step and feature: the data for layer 0, hmax of the layer below else.
            xa = np.abs(xf[:, :T]).max(axis=0) if l == 0 else np.full((T, I), in_hmax)
            ex = e_x if l == 0 else 0.0                       # layer l ≥ 1: in g instead
            for k in range(3):                                # r, z: x and h parts; nx: x part
                d[:, k] = db[k] + xa @ dwx[k].T + (wx[k].sum(1) * ex)[None]
                if k < 2:
                    d[:, k] += (dwh[k].sum(1) * hmax)[None]
            d[:, 3] = db[3] + (dwh[2].sum(1) * hmax)[None]
            b_nh = np.maximum(b_nh, np.abs(b_f[3]) + np.abs(w_hh[2]).sum(1) * hmax)
        if l > 0:
            for k in range(3):
                g[:, k] = e_in @ wx[k].T
        in_max = xmax if l == 0 else in_hmax
        bounds = np.zeros((T, H))
        for t in range(T):
            # |M| ≤ |b| + Σ|W_x| |x|max + Σ|W_h| (hmax + e): must not reach the saturation
            # limit, and neither may |h| ≤ hmax + e.
            worst_m = max(float((b[k] + wx[k].sum(1) * in_max
                                 + wh[k].sum(1) * (hmax + e.max())).max()) for k in range(3))
            if worst_m + q >= act_top or hmax + e.max() >= act_top:
                raise ValueError("model may saturate; the bound does not apply"
                                 + (f" (layer {l})" if L > 1 else ""))
            e_mr = wh[0] @ e + q / 2 + d[t, 0] + g[t, 0]
            e_mz = wh[1] @ e + q / 2 + d[t, 1] + g[t, 1]
            e_mnx = q / 2 + d[t, 2] + g[t, 2]
            e_mnh = wh[2] @ e + q / 2 + d[t, 3]
            e_r, e_z = es + e_mr / 4, es + e_mz / 4
            e_rnh = q / 2 + e_mnh + e_r * b_nh
            e_n = et + e_mnx + e_rnh
            e = np.maximum(e_n, e) + (hmax + 1) * e_z + q / 2
            bounds[t] = e
        out.append(bounds)
        e_in, in_hmax = bounds, hmax
    return out


def lstm_error_bound(bundle, x_codes, steps: int | None = None) -> np.ndarray:
    """(T, H) bound on |h_golden − h_torch_lstm| of an LSTM bundle's output (its last layer's
    h) per step and unit; :func:`lstm_layer_error_bounds` gives every layer's.

    The reference is ``torch.nn.LSTM`` in float64 with the bundle's *dequantised* weights and
    biases (for L layers, the layers one after the other), fed the dequantised ``x_codes``
    (N, T, I), from h0 = c0 = 0, at Θx = Θh = 0. Derivation (vectors per hidden unit; ``e_h``,
    ``e_c`` the bounds of the previous step's |h_g − h_f| and |c_g − c_f|, both 0 at the start;
    q the activation LSB, q_c the cell LSB, εσ, ετ the LUT bounds of
    :func:`drnn_hw.numerics.lut_error_bound`):

    * At Θ = 0 the delta memories telescope exactly (integers, no rounding):
      ``M_k = b_k + W_xk x + W_hk h_g`` for k = i, f, g, o, so ``|M_g − M_f| ≤ |W_hk| e_h``,
      and narrowing to the activation format adds at most q/2:
      ``e_mk = |W_hk| e_h + q/2``.
    * σ has slope ≤ 1/4 and tanh ≤ 1, and the LUT bounds hold for every input code:
      ``e_i = εσ + e_mi/4``, ``e_f = εσ + e_mf/4``, ``e_o = εσ + e_mo/4``,
      ``e_g = ετ + e_mg`` (each at most 1, 1, 1, 2: the values lie in [0, 1] or [−1, 1]).
    * ``f_g c_g − f_f c_f = f_g (c_g − c_f) + (f_g − f_f) c_f`` with ``0 ≤ f_g ≤ 1`` (the σ
      table's largest entry is exactly 1) and ``|c_f| ≤ t−1`` before step t (|c_t| ≤ |c_{t−1}|
      + |i g| ≤ |c_{t−1}| + 1, in the float LSTM and in the hardware alike: round(f·c) with
      f ≤ 1 never grows |c|); ``i_g g_g − i_f g_f = i_g (g_g − g_f) + (i_g − i_f) g_f``; each
      product is rounded once to the cell LSB: ``e_c' = e_c + (t−1) e_f + e_g + e_i + q_c``.
      Nothing contracts e_c: a cell that remembers (f ≈ 1) keeps its error, which is why c has
      two more fractional bits than h (:mod:`drnn_hw.numerics`).
    * ``tc = TANH_LUT[cell_index(c')]``: the LUT bound holds for every real input of a bin,
      so for every cell code (tested over all of them): ``e_tc = ετ + e_c'`` (at most 2).
    * ``h' = round(o · tc)``: ``o_g tc_g − o_f tc_f = o_g (tc_g − tc_f) + (o_g − o_f) tc_f``
      with |o_g| ≤ 1, |tanh| ≤ 1: ``e_h' = e_tc + e_o + q/2`` (at most 2: |h| ≤ 1 on both
      sides).

    **Stacked layers**: layer l ≥ 1 gets layer l−1's h codes as they are (no second rounding),
    the float LSTM layer l−1's float h, so ``e_mk`` gains ``|W_xk| E^(l−1)_t`` (layer l−1's
    bound at the same step), as in :func:`layer_error_bounds`.

    No saturation is assumed: |M| ≤ |b| + Σ|W_x| max|x| + Σ|W_h| (|h| ≤ 1) must stay below the
    activation range (narrowing), and |c| ≤ T below the cell format's; otherwise ValueError.
    The bound compounds through the recurrence (per step by about Σ|W_h| through e_g and
    (t−1)·Σ|W_hf|/4 through e_f), so it is informative for the first steps of a model of
    default initialisation and loose after that, like the GRU's. Raises ValueError for a GRU
    bundle, nonzero thresholds or a model that may saturate.
    """
    return lstm_layer_error_bounds(bundle, x_codes, steps)[-1]


def lstm_layer_error_bounds(bundle, x_codes, steps: int | None = None) -> list:
    """Every layer's bound (a list of L arrays (T, H_l)) of :func:`lstm_error_bound`."""
    if bundle.cell != "lstm":
        raise ValueError("lstm_error_bound: a GRU bundle (use gru_error_bound)")
    f = bundle.formats
    for l, ly in enumerate(bundle.layers):
        if ly.theta_x or ly.theta_h:
            raise ValueError("the bound holds for thresholds 0 only"
                             + (f" (layer {l} has nonzero thresholds)"
                                if bundle.num_layers > 1 else ""))
    q, qc = f.act.lsb, f.cell.lsb
    es, et = lut_error_bound(f, "sigmoid"), lut_error_bound(f, "tanh")
    act_top = f.act.max * q
    x = np.asarray(x_codes)
    T = x.shape[1] if steps is None else steps
    if T + 1 >= f.cell.max * qc:
        raise ValueError("the cell state may saturate over this many steps; the bound does "
                         "not apply")
    xmax = float(np.abs(dequantize(x, f.act)).max()) if x.size else 0.0
    e_in, out = None, []
    for l, ly in enumerate(bundle.layers):
        wx = np.abs(dequantize(ly.w_x, f.weight))            # (4, H, I)
        wh = np.abs(dequantize(ly.w_h, f.weight))            # (4, H, H)
        b = np.abs(dequantize(ly.bias, f.acc))               # (4, H)
        H = ly.hidden_size
        in_max = xmax if l == 0 else 1.0
        worst_m = float((b + wx.sum(2) * in_max + wh.sum(2)).max())
        if worst_m + q >= act_top:
            raise ValueError("model may saturate; the bound does not apply"
                             + (f" (layer {l})" if bundle.num_layers > 1 else ""))
        e_h, e_c = np.zeros(H), np.zeros(H)
        bounds = np.zeros((T, H))
        for t in range(T):
            e_m = np.stack([wh[k] @ e_h for k in range(4)]) + q / 2
            if l > 0:
                e_m += np.stack([wx[k] @ e_in[t] for k in range(4)])
            e_i = np.minimum(es + e_m[0] / 4, 1.0)
            e_f = np.minimum(es + e_m[1] / 4, 1.0)
            e_g = np.minimum(et + e_m[2], 2.0)
            e_o = np.minimum(es + e_m[3] / 4, 1.0)
            e_c = e_c + t * e_f + e_g + e_i + qc           # |c_f| ≤ t before step t + 1
            e_tc = np.minimum(et + e_c, 2.0)
            e_h = np.minimum(e_tc + e_o + q / 2, 2.0)
            bounds[t] = e_h
        out.append(bounds)
        e_in = bounds
    return out
