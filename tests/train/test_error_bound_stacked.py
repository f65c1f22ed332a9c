"""The error bound of drnn_train.error_bound for stacked layers and a non-zero h0: the golden
model's h of every layer stays within the bound of torch (float64, layer after layer), and the
bound is informative (small, and a broken model or an input error taken as exact violates it)."""

import numpy as np
import pytest
import torch

from drnn_hw.bundle import Layer, ModelBundle
from drnn_hw.golden import run
from drnn_hw.numerics import Formats, dequantize, quantize
from drnn_train.error_bound import gru_error_bound, layer_error_bounds
from drnn_train.export import bundle_from_layer_params, choose_weight_format

F = Formats()


def _params(rng, I, hs, w_in=0.6, w_rec=0.05, b=0.3):
    """nn.GRU-layout float parameters of len(hs) layers (layer l: I_l = H_{l-1})."""
    out = []
    for H in hs:
        out.append((rng.normal(0, w_in / np.sqrt(I), (3 * H, I)),
                    rng.normal(0, w_rec, (3 * H, H)), rng.normal(0, b, 3 * H),
                    rng.normal(0, b, 3 * H)))
        I = H
    return out


def _deq_params(b: ModelBundle):
    """The bundle's dequantised weights in nn.GRU layout, biases split so that the sums are
    M's initial values (b_hr = b_hz = 0)."""
    out = []
    for ly in b.layers:
        H, I = ly.hidden_size, ly.input_size
        bias = dequantize(ly.bias, F.acc)
        out.append((dequantize(ly.w_x, F.weight).reshape(3 * H, I),
                    dequantize(ly.w_h, F.weight).reshape(3 * H, H),
                    np.concatenate([bias[0], bias[1], bias[2]]),
                    np.concatenate([np.zeros(2 * H), bias[3]])))
    return out


def _torch_layers(params, x, h0=None):
    """torch.nn.GRU (float64) layer after layer on x (N, T, I) real: the list of each layer's
    h (N, T, H_l). ``h0``: a list of L real arrays (N, H_l) or None."""
    outs, inp = [], torch.tensor(x)
    for l, (w_ih, w_hh, b_ih, b_hh) in enumerate(params):
        H, I = w_hh.shape[1], w_ih.shape[1]
        gru = torch.nn.GRU(I, H, batch_first=True, dtype=torch.float64)
        with torch.no_grad():
            for name, v in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh),
                            ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
                getattr(gru, name).copy_(torch.tensor(v))
            start = None if h0 is None or h0[l] is None else torch.tensor(h0[l])[None]
            inp, _ = gru(inp, start)
        outs.append(inp.numpy())
    return outs


def _errors(b, x_codes, ref, h0_codes=None):
    """|h_golden − h_torch| of every layer, (N, T, H_l) each."""
    g = run(b, x_codes, with_cycles=False, h0=h0_codes)
    return [np.abs(dequantize(h, F.act) - r) for h, r in zip(g.layer_h, ref)]


def _fp(params):
    return [{"w_ih": w, "w_hh": u, "b_ih": bi, "b_hh": bh} for w, u, bi, bh in params]


@pytest.mark.parametrize("hs", [[9, 5], [7, 12, 4]], ids=["L2", "L3"])
@pytest.mark.parametrize("seed", range(3))
def test_stacked_golden_within_bound_of_torch_with_dequantised_weights(seed, hs):
    """Layers of different widths, every layer's h within its bound at every step and unit.
    The bound compounds over steps and layers (each layer's input error is the bound of the
    layer below): 3 layers are checked over 3 steps, where it is still below 2, the trivial
    bound of two values in [−1, 1]."""
    rng = np.random.default_rng(seed)
    b, _ = bundle_from_layer_params(_params(rng, 5, hs, w_in=0.5), F)
    T = 6 if len(hs) == 2 else 3
    x = quantize(rng.normal(0, 1, (6, T, 5)), F.act)
    errs = _errors(b, x, _torch_layers(_deq_params(b), dequantize(x, F.act)))
    bounds = layer_error_bounds(b, x)
    assert [bd.shape for bd in bounds] == [(T, H) for H in hs]
    for l, (err, bound) in enumerate(zip(errs, bounds)):
        assert np.all(err <= bound[None]), (l, err.max(), bound.max())
    assert np.array_equal(gru_error_bound(b, x), bounds[-1])
    # Informative: layer 0 a few LSB at the first step (0.027 here, measured ≤ 0.008); each
    # layer adds to the one below (its input error), so the bounds grow with depth.
    assert bounds[0][0].max() < 0.03
    assert all(bounds[l + 1][0].max() > bounds[l][0].max() for l in range(len(hs) - 1))
    assert bounds[-1].max() < 0.8, bounds[-1].max()
    assert errs[-1].max() > 0


@pytest.mark.parametrize("L", [2, 3])
def test_imported_stacked_gru_within_bound_of_original_float_gru(L):
    """Against nn.GRU(num_layers=L) with its own float weights (before quantisation) and float
    inputs: weight rounding and input quantisation are in the bound too."""
    torch.manual_seed(L)
    gru = torch.nn.GRU(4, 6, num_layers=L, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for l in range(L):       # small recurrent gain so that the compounding bound stays useful
            getattr(gru, f"weight_hh_l{l}").mul_(0.2)
    params = [tuple(getattr(gru, f"{k}_l{l}").detach().numpy() for k in
                    ("weight_ih", "weight_hh", "bias_ih", "bias_hh")) for l in range(L)]
    fmts, _ = choose_weight_format([w for p in params for w in p[:2]],
                                   [v for p in params for v in p[2:]])
    b, sat = bundle_from_layer_params(params, fmts)
    assert sat == 0
    x = np.random.default_rng(L).normal(0, 1, (5, 3, 4))
    with torch.no_grad():
        ref, _ = gru(torch.tensor(x))
    g = run(b, b.quantize_input(x), with_cycles=False)
    err = np.abs(dequantize(g.h, fmts.act) - ref.numpy())
    bound = gru_error_bound(b, b.quantize_input(x), float_params=_fp(params), x_float=x)
    assert np.all(err <= bound[None]), (err.max(), bound.max())
    # Informative: 0.15 (L = 2) and 0.4 (L = 3) at the first step, below the trivial 2 at the
    # last (measured: 0.007).
    assert bound[0].max() < 0.5 and bound.max() < 2 and err.max() > 0


def test_nonzero_h0_within_bound():
    """h0 given in real units: the hardware starts from its codes (e_0 ≤ q/2), torch from the
    real values; some of them beyond 1 (hmax > 1 in the bound)."""
    rng = np.random.default_rng(4)
    hs = [8, 6]
    b, _ = bundle_from_layer_params(_params(rng, 3, hs), F)
    x = quantize(rng.normal(0, 1, (4, 4, 3)), F.act)
    h0 = [rng.uniform(-1.3, 1.3, (4, H)) for H in hs]
    h0_codes = [quantize(h, F.act) for h in h0]
    assert max(np.abs(h).max() for h in h0) > 1
    ref = _torch_layers(_deq_params(b), dequantize(x, F.act), h0)
    errs = _errors(b, x, ref, h0_codes)
    bounds = layer_error_bounds(b, x, h0=h0_codes, h0_float=h0)
    for err, bound in zip(errs, bounds):
        assert np.all(err <= bound[None]), (err.max(), bound.max())
    assert bounds[-1].max() < 0.6
    # Negative control: hardware that dropped h0 (started from 0) is caught by the bound.
    dropped = _errors(b, x, ref, None)
    assert all(np.any(err > bound[None]) for err, bound in zip(dropped, bounds))


def test_dropped_recurrent_bias_in_the_upper_layer_violates_the_bound():
    """Negative control: layer 1 exported without b_hn (the DeltaRNN peer's bug)."""
    rng = np.random.default_rng(0)
    b, _ = bundle_from_layer_params(_params(rng, 5, [9, 5], b=0.6), F)
    ly = b.layers[1]
    broken = ModelBundle(formats=F, layers=[b.layers[0], Layer(
        ly.w_x, ly.w_h, np.concatenate([ly.bias[:3], np.zeros((1, ly.hidden_size), int)]))])
    x = quantize(rng.normal(0, 1, (6, 8, 5)), F.act)
    ref = _torch_layers(_deq_params(b), dequantize(x, F.act))
    err = _errors(broken, x, ref)[1]
    assert np.any(err > layer_error_bounds(b, x)[1][None])


def test_bound_refusals():
    rng = np.random.default_rng(0)
    params = _params(rng, 3, [4, 4])
    b, _ = bundle_from_layer_params(params, F, theta_x=[0.0, 0.0], theta_h=[0.0, 0.1])
    x = quantize(rng.normal(0, 1, (2, 3, 3)), F.act)
    with pytest.raises(ValueError, match="thresholds 0 only .layer 1"):
        gru_error_bound(b, x)
    b, _ = bundle_from_layer_params(params, F)
    with pytest.raises(ValueError, match="float_params: expected 2 layers, got 1"):
        gru_error_bound(b, x, float_params=_fp(params)[0])
    with pytest.raises(ValueError, match="h0: expected 2 arrays"):
        gru_error_bound(b, x, h0=[None])
