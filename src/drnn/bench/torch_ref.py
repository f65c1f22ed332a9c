"""The PyTorch reference of ``drnn bench``: ``nn.GRU`` (an LSTM bundle: ``nn.LSTM``) with the
bundle's quantised weights, its float accuracy, and its batch-1 latency on this CPU (a timing
measurement)."""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

from drnn_hw.bundle import ModelBundle
from drnn_hw.numerics import dequantize

from .metrics import last_hidden

__all__ = ["torch_dense_accuracy", "torch_dense_regression", "torch_gru_latency"]

def _torch_layer(layer, f, cell: str = "gru"):
    """One ``nn.GRU`` (``cell`` "lstm": ``nn.LSTM``) layer in float64 with a bundle layer's
    quantised weights (biases folded as in M)."""
    import torch

    I, H = layer.input_size, layer.hidden_size
    if cell == "lstm":
        lstm = torch.nn.LSTM(I, H, batch_first=True, dtype=torch.float64)
        bias = dequantize(layer.bias, f.acc)       # rows: M_i, M_f, M_g, M_o at reset
        with torch.no_grad():
            lstm.weight_ih_l0.copy_(torch.from_numpy(
                dequantize(layer.w_x, f.weight).reshape(4 * H, I)))
            lstm.weight_hh_l0.copy_(torch.from_numpy(
                dequantize(layer.w_h, f.weight).reshape(4 * H, H)))
            lstm.bias_ih_l0.copy_(torch.from_numpy(bias.reshape(4 * H)))
            lstm.bias_hh_l0.zero_()
        return lstm.eval()
    gru = torch.nn.GRU(I, H, batch_first=True, dtype=torch.float64)
    bias = dequantize(layer.bias, f.acc)           # rows: M_r, M_z, M_nx, M_nh at reset
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.from_numpy(dequantize(layer.w_x, f.weight).reshape(3 * H, I)))
        gru.weight_hh_l0.copy_(torch.from_numpy(dequantize(layer.w_h, f.weight).reshape(3 * H, H)))
        gru.bias_ih_l0.copy_(torch.from_numpy(np.concatenate([bias[0], bias[1], bias[2]])))
        gru.bias_hh_l0.copy_(torch.from_numpy(np.concatenate([np.zeros(2 * H), bias[3]])))
    return gru.eval()


def _torch_gru(bundle: ModelBundle):
    """The bundle's layers as float64 ``nn.GRU`` modules, one per layer, called like one
    ``nn.GRU``: ``gru(x, h)`` with ``h`` None or a list of L states returns (last layer's
    output, list of L states). Separate modules because layers may differ in width, which
    ``nn.GRU(num_layers=L)`` does not allow."""
    layers = [_torch_layer(ly, bundle.formats, bundle.cell) for ly in bundle.layers]

    class Stack:
        def __call__(self, x, h=None):
            hs = []
            for l, g in enumerate(layers):
                x, hn = g(x, None if h is None else h[l])
                hs.append(hn)
            return x, hs

        def float(self):
            for g in layers:
                g.float()
            return self

    return Stack()


def torch_dense_accuracy(bundle: ModelBundle, x_codes, lengths, labels) -> float | None:
    """Float64 ``nn.GRU`` (Θ = 0, exact σ/tanh) with the bundle's quantised weights, same head;
    None without a head or for a regression model (:func:`torch_dense_regression`)."""
    if not bundle.has_head or bundle.is_regression:
        return None
    import torch

    gru = _torch_gru(bundle)
    x = torch.from_numpy(dequantize(x_codes, bundle.formats.act))
    with torch.inference_mode():
        h, _ = gru(x)
    hl = last_hidden(h.numpy(), lengths)
    logits = hl @ np.asarray(bundle.head_w, dtype=np.float64).T + np.asarray(bundle.head_b)
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels)))


def torch_dense_regression(bundle: ModelBundle, x_codes, lengths, targets) -> dict:
    """A regression bundle's head on a float64 ``nn.GRU`` (Θ = 0, exact σ/tanh) with its
    quantised weights: ``rmse``, ``rmse_per_output``, ``nrmse`` against ``targets`` ((N, T, O)
    at every valid step or (N, O) at the last), as :func:`drnn_train.evaluate.
    regression_errors` (target units)."""
    import torch

    from drnn_train.evaluate import regression_errors

    gru = _torch_gru(bundle)
    x = torch.from_numpy(dequantize(x_codes, bundle.formats.act))
    with torch.inference_mode():
        h, _ = gru(x)
    h = h.numpy()
    targets = np.asarray(targets, np.float64)
    w, b = np.asarray(bundle.head_w, np.float64), np.asarray(bundle.head_b, np.float64)
    if targets.ndim == 3:
        valid = np.arange(h.shape[1])[None, :] < np.asarray(lengths)[:, None]
        pred = np.where(valid[..., None], h[:, :targets.shape[1]] @ w.T + b, 0.0)
    else:
        pred = last_hidden(h, lengths) @ w.T + b
    e = regression_errors(pred, targets, lengths)
    return {k: e[k] for k in ("rmse", "rmse_per_output", "nrmse")}


def torch_gru_latency(bundle: ModelBundle, steps: int, repeats: int = 20, warmup: int = 3,
                      threads: int = 1) -> dict:
    """Per-step latency of ``nn.GRU`` (float32, batch 1) on this CPU, streaming step by step.

    Method: ``torch.set_num_threads(threads)`` (restored after), ``inference_mode``; one run is
    ``steps`` calls ``gru(x[:, t:t+1], h)`` carrying h (streaming, as the core is used), timed
    with ``perf_counter_ns``; ``warmup`` runs discarded, then the median over ``repeats`` runs of
    (run time / steps). Also the same for one call over the whole sequence (``gru(x)``), which
    needs the whole input in advance. Dense: the time does not depend on the data.
    """
    import torch

    I = bundle.input_size
    steps = max(1, int(steps))
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gru = _torch_gru(bundle).float()
        x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, steps, I))).float()

        def streaming():
            h = [torch.zeros(1, 1, ly.hidden_size) for ly in bundle.layers]
            if bundle.cell == "lstm":
                h = [(s, torch.zeros_like(s)) for s in h]
            for t in range(steps):
                _, h = gru(x[:, t:t + 1], h)

        def whole():
            gru(x)

        res = {}
        with torch.inference_mode():
            for name, fn in (("streaming", streaming), ("sequence_call", whole)):
                for _ in range(warmup):
                    fn()
                per_step = []
                for _ in range(repeats):
                    t0 = time.perf_counter_ns()
                    fn()
                    per_step.append((time.perf_counter_ns() - t0) / steps / 1e3)
                res[name] = per_step
        return {
            "load_average_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(),
            "per_step_us": statistics.median(res["streaming"]),
            "per_step_us_min": min(res["streaming"]),
            "per_step_us_sequence_call": statistics.median(res["sequence_call"]),
            "threads": threads, "repeats": repeats, "warmup": warmup, "steps": steps,
            "dtype": "float32", "torch_version": torch.__version__,
            "module": "nn.LSTM" if bundle.cell == "lstm" else "nn.GRU",
            "method": f"nn.{'LSTM' if bundle.cell == 'lstm' else 'GRU'} batch 1 (one per "
                      "layer, in sequence), one call per step "
                      "carrying h, inference_mode, "
                      f"torch.set_num_threads({threads}); median over repeats of run time / "
                      "steps after warm-up (per_step_us_sequence_call: one call per sequence)",
        }
    finally:
        torch.set_num_threads(prev_threads)


