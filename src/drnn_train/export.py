"""Trained model -> :class:`~drnn_hw.bundle.ModelBundle` (integer weights, LUTs, head).

Checkpoint format (``torch.save`` of a dict, read with ``torch.load(weights_only=True)``)::

    kind           "drnn-train-checkpoint"
    version        1
    config         dict: dataset, hidden, theta_x, theta_h, epochs, finetune_epochs, lr,
                   finetune_lr, batch_size, l1, weight_bits, weight_frac, seed
    input_size, hidden_size, num_classes   int
    formats        drnn_hw.numerics.Formats.to_dict()
    state          DeltaGRUClassifier.state_dict(): rnn.w_ih (3H, I), rnn.w_hh (3H, H),
                   rnn.b_ih (3H,), rnn.b_hh (3H,) in nn.GRU layout; head.weight (C, H), head.bias
    input_mean, input_scale   list of float (I,): z-score normalisation of the raw inputs
    classes        list of str (class id -> label)
    dataset        the data set: a built-in name or the absolute path of the .npz
    metrics        the training metrics (also in CKPT.metrics.json)
    float_state    the state after float pre-training (the threshold sweep starts from it)

Bias export: the bundle's ``bias`` rows are the initial delta memories
``[b_ir + b_hr, b_iz + b_hz, b_in, b_hn]`` in the accumulator format; b_hn stays separate
because the reset gate multiplies it (n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from drnn_hw.bundle import ModelBundle
from drnn_hw.errors import UserError
from drnn_hw.numerics import Formats, quantize, quantize_count

__all__ = ["CHECKPOINT_KIND", "bundle_from_gru_params", "bundle_from_checkpoint",
           "load_checkpoint", "load_torch_gru_state", "threshold_code"]

CHECKPOINT_KIND = "drnn-train-checkpoint"


def threshold_code(value: float, fmts: Formats, name: str) -> int:
    """A threshold in real units to its activation code; out of range is a UserError."""
    v = float(value)
    top = fmts.act.max * fmts.act.lsb
    if not math.isfinite(v) or v < 0 or v > top:
        raise UserError(f"--{name.replace('_', '-')}: expected a threshold in [0, {top:g}] "
                        f"(activation format {fmts.act}), got {value}")
    return int(quantize(v, fmts.act))


def bundle_from_gru_params(w_ih, w_hh, b_ih, b_hh, fmts: Formats, theta_x: float = 0.0,
                           theta_h: float = 0.0, **bundle_fields) -> tuple[ModelBundle, int]:
    """nn.GRU-layout float parameters -> (bundle, number of saturated weights/biases).

    ``b_ih``/``b_hh`` may be None (a GRU without biases): zero biases.
    """
    w_ih, w_hh = np.asarray(w_ih, np.float64), np.asarray(w_hh, np.float64)
    H = w_hh.shape[1]
    I = w_ih.shape[1]
    b_ih = np.zeros(3 * H) if b_ih is None else np.asarray(b_ih, np.float64)
    b_hh = np.zeros(3 * H) if b_hh is None else np.asarray(b_hh, np.float64)
    wx = w_ih.reshape(3, H, I)
    wh = w_hh.reshape(3, H, H)
    bias = np.stack([b_ih[:H] + b_hh[:H], b_ih[H:2 * H] + b_hh[H:2 * H],
                     b_ih[2 * H:], b_hh[2 * H:]])
    for name, a in (("w_ih", wx), ("w_hh", wh), ("bias", bias)):
        if not np.all(np.isfinite(a)):
            raise UserError(f"{name}: contains NaN or infinity")
    saturated = (quantize_count(wx, fmts.weight) + quantize_count(wh, fmts.weight)
                 + quantize_count(bias, fmts.acc))
    bundle = ModelBundle(
        formats=fmts, w_x=quantize(wx, fmts.weight), w_h=quantize(wh, fmts.weight),
        bias=quantize(bias, fmts.acc), theta_x=threshold_code(theta_x, fmts, "theta_x"),
        theta_h=threshold_code(theta_h, fmts, "theta_h"), **bundle_fields)
    return bundle, saturated


def _torch_load(p: Path, what: str, kind: str):
    """``torch.load`` of tensors only (no pickled code); a one-line UserError otherwise."""
    import torch

    if not p.is_file():
        raise UserError(f"{p}: {what} not found")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{p}: not a readable torch {kind} ({type(e).__name__})") from None


def load_checkpoint(path) -> dict:
    """Read a trainer checkpoint; anything else is a one-line UserError."""
    p = Path(path)
    ckpt = _torch_load(p, "checkpoint", "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND:
        raise UserError(f"{p}: not a drnn train checkpoint (expected a dict with kind="
                        f"'{CHECKPOINT_KIND}'; for a plain nn.GRU state dict use --torch-gru)")
    for key in ("config", "state", "formats", "input_mean", "input_scale", "classes"):
        if key not in ckpt:
            raise UserError(f"{p}: checkpoint is missing '{key}'")
    return ckpt


def bundle_from_checkpoint(ckpt: dict, theta_x: float | None = None,
                           theta_h: float | None = None, name: str | None = None):
    """Checkpoint dict -> (bundle, saturated count). Thresholds default to the trained ones."""
    cfg, st = ckpt["config"], ckpt["state"]
    fmts = Formats.from_dict(ckpt["formats"])
    np_ = lambda k: st[k].detach().cpu().double().numpy()  # noqa: E731
    return bundle_from_gru_params(
        np_("rnn.w_ih"), np_("rnn.w_hh"), np_("rnn.b_ih"), np_("rnn.b_hh"), fmts,
        theta_x=cfg["theta_x"] if theta_x is None else theta_x,
        theta_h=cfg["theta_h"] if theta_h is None else theta_h,
        input_mean=np.asarray(ckpt["input_mean"], np.float64),
        input_scale=np.asarray(ckpt["input_scale"], np.float64),
        head_w=np_("head.weight"), head_b=np_("head.bias"),
        classes=[str(c) for c in ckpt["classes"]],
        name=name or f"{Path(str(ckpt.get('dataset', 'model'))).stem}-h{ckpt['hidden_size']}",
        source=f"drnn train: {cfg}", extra={"dataset": ckpt.get("dataset")})


_GRU_KEYS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def load_torch_gru_state(path) -> dict:
    """A ``torch.save(nn.GRU(...).state_dict())`` file of a single-layer unidirectional GRU.

    Returns {w_ih, w_hh, b_ih, b_hh} as float64 NumPy arrays (biases None when absent).
    """
    import torch

    p = Path(path)
    sd = _torch_load(p, "GRU state dict", "file")
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{p}: expected a state dict of tensors (torch.save(gru.state_dict())), "
                        f"got {type(sd).__name__}")
    keys = set(sd)
    if any(k.endswith("_reverse") for k in keys):
        raise UserError(f"{p}: bidirectional GRU not supported (found "
                        f"{sorted(k for k in keys if k.endswith('_reverse'))[0]})")
    deeper = sorted(k for k in keys if not k.endswith("_l0") and "_l" in k)
    if deeper:
        tails = [k.rsplit("_l", 1)[1] for k in deeper]
        layers = 1 + max((int(t) for t in tails if t.isdigit()), default=1)
        raise UserError(f"{p}: multi-layer GRU not supported ({layers} layers, found key "
                        f"{deeper[0]}); export a single-layer nn.GRU")
    unknown = sorted(keys - set(_GRU_KEYS))
    if unknown or not {"weight_ih_l0", "weight_hh_l0"} <= keys:
        raise UserError(f"{p}: expected nn.GRU keys weight_ih_l0, weight_hh_l0 "
                        f"[, bias_ih_l0, bias_hh_l0], got {sorted(keys)}")
    has_b = {"bias_ih_l0", "bias_hh_l0"} & keys
    if has_b and len(has_b) != 2:
        raise UserError(f"{p}: expected both bias_ih_l0 and bias_hh_l0 or neither, "
                        f"got only {sorted(has_b)[0]}")
    w_hh = sd["weight_hh_l0"]
    if w_hh.ndim != 2 or w_hh.shape[0] != 3 * w_hh.shape[1] or w_hh.shape[1] < 1:
        raise UserError(f"{p}: weight_hh_l0: expected shape (3H, H), got {tuple(w_hh.shape)} "
                        "(an LSTM has 4H rows, an RNN H rows)")
    H = w_hh.shape[1]
    w_ih = sd["weight_ih_l0"]
    if w_ih.ndim != 2 or w_ih.shape[0] != 3 * H or w_ih.shape[1] < 1:
        raise UserError(f"{p}: weight_ih_l0: expected shape ({3 * H}, I), got {tuple(w_ih.shape)}")
    for k in has_b:
        if tuple(sd[k].shape) != (3 * H,):
            raise UserError(f"{p}: {k}: expected shape ({3 * H},), got {tuple(sd[k].shape)}")
    out = {k: sd[key].detach().double().numpy() if key in sd else None
           for k, key in zip(("w_ih", "w_hh", "b_ih", "b_hh"), _GRU_KEYS)}
    for k, v in out.items():
        if v is not None and not np.all(np.isfinite(v)):
            raise UserError(f"{p}: {k}: contains NaN or infinity")
    return out
