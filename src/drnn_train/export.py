"""Trained model -> :class:`~drnn_hw.bundle.ModelBundle` (integer weights, LUTs, head).

Checkpoint format (``torch.save`` of a dict, read with ``torch.load(weights_only=True)``)::

    kind           "drnn-train-checkpoint"
    version        1 (one layer) or 2 (stacked layers: adds num_layers, hidden_sizes)
    config         dict: dataset, hidden, layers, theta_x, theta_h, epochs, finetune_epochs,
                   lr, finetune_lr, batch_size, l1, weight_bits, weight_frac, seed (hidden,
                   theta_x, theta_h: one value or one per layer)
    input_size, hidden_size, num_classes   int (hidden_size: the last layer's H)
    num_layers, hidden_sizes   int L, list of L ints (version 2; version 1 means L = 1)
    formats        drnn_hw.numerics.Formats.to_dict()
    state          DeltaGRUClassifier.state_dict(): rnn.w_ih (3H, I), rnn.w_hh (3H, H),
                   rnn.b_ih (3H,), rnn.b_hh (3H,) in nn.GRU layout, layer l > 0 likewise under
                   rnn{l}.; head.weight (C, H_last), head.bias
    input_mean, input_scale   list of float (I,): z-score normalisation of the raw inputs
    classes        list of str (class id -> label)
    dataset        the data set: a built-in name or the absolute path of the .npz
    metrics        the training metrics (also in CKPT.metrics.json)
    float_state    the state after float pre-training (the threshold sweep starts from it)
    balance        only for a model trained with column-balanced sparsity (drnn train
                   --spatial-sparsity): {"rows": P, "gamma": γ}; its pruned weights are 0 in
                   ``state``, and the exported bundle records each layer's
                   drnn_hw.balance.BalanceUnit (bundle format version 4)

Bias export: the bundle's ``bias`` rows are the initial delta memories
``[b_ir + b_hr, b_iz + b_hz, b_in, b_hn]`` in the accumulator format; b_hn stays separate
because the reset gate multiplies it (n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))).

LSTM checkpoints (``drnn train --cell lstm``) add ``cell: "lstm"`` (absent: a GRU) and hold
``nn.LSTM``-layout parameters (``rnn.w_ih`` (4H, I), ... gate order i, f, g, o); their bundle
``bias`` rows are ``b_ih + b_hh`` per gate (the initial M_i, M_f, M_g, M_o).

Importing a PyTorch LSTM (``drnn export --torch-lstm``): the same search as for a GRU
(``nn.LSTM`` of any ``num_layers``, either ``batch_first``, with or without biases, or
``nn.LSTMCell``), weight rows 4H; projections (``proj_size``) and bidirectional LSTMs are
refused.

Importing a PyTorch GRU (``drnn export --torch-gru``, :func:`bundle_from_torch_file`): the
``nn.GRU`` (any ``num_layers``, unidirectional) or ``nn.GRUCell`` is found by its key names
anywhere in the file's nested dicts (:func:`load_torch_gru`), with the ``nn.Linear`` head beside
it; its weight format is the one with the most fractional bits that saturates no weight of any
layer (:func:`choose_weight_format`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drnn_hw.balance import BalanceUnit
from drnn_hw.bundle import GATES, Layer, ModelBundle
from drnn_hw.errors import UserError
from drnn_hw.numerics import Fixed, Formats, quantize, quantize_count

__all__ = [
    "CHECKPOINT_KIND",
    "TorchGRU",
    "bundle_from_checkpoint",
    "bundle_from_gru_params",
    "bundle_from_layer_params",
    "bundle_from_torch_file",
    "choose_weight_format",
    "load_checkpoint",
    "load_torch_gru",
    "load_torch_gru_state",
    "load_torch_lstm",
    "parse_vector",
    "threshold_code",
]

CHECKPOINT_KIND = "drnn-train-checkpoint"


def threshold_code(value: float, fmts: Formats, name: str) -> int:
    """A threshold in real units to its activation code; out of range is a UserError."""
    v = float(value)
    top = fmts.act.max * fmts.act.lsb
    if not math.isfinite(v) or v < 0 or v > top:
        raise UserError(f"--{name.replace('_', '-')}: expected a threshold in [0, {top:g}] "
                        f"(activation format {fmts.act}), got {value}")
    return int(quantize(v, fmts.act))


def _layer_arrays(w_ih, w_hh, b_ih, b_hh, where: str = "", cell: str = "gru"):
    """nn.GRU-layout float parameters of one layer -> (wx (3, H, I), wh (3, H, H), bias (4, H))
    in the bundle's layout (``cell`` "lstm": nn.LSTM layout -> (4, H, I), (4, H, H) and bias
    b_ih + b_hh per gate); NaN/inf is a UserError naming ``where`` (e.g. 'layer1.')."""
    w_ih, w_hh = np.asarray(w_ih, np.float64), np.asarray(w_hh, np.float64)
    H = w_hh.shape[1]
    I = w_ih.shape[1]
    if cell == "lstm":
        zero = np.zeros(4 * H)
        bias = (zero if b_ih is None else np.asarray(b_ih, np.float64)) + \
            (zero if b_hh is None else np.asarray(b_hh, np.float64))
        arrays = (w_ih.reshape(4, H, I), w_hh.reshape(4, H, H), bias.reshape(4, H))
        for name, a in zip(("w_ih", "w_hh", "bias"), arrays):
            if not np.all(np.isfinite(a)):
                raise UserError(f"{where}{name}: contains NaN or infinity")
        return arrays
    b_ih = np.zeros(3 * H) if b_ih is None else np.asarray(b_ih, np.float64)
    b_hh = np.zeros(3 * H) if b_hh is None else np.asarray(b_hh, np.float64)
    wx = w_ih.reshape(3, H, I)
    wh = w_hh.reshape(3, H, H)
    bias = np.stack([b_ih[:H] + b_hh[:H], b_ih[H:2 * H] + b_hh[H:2 * H],
                     b_ih[2 * H:], b_hh[2 * H:]])
    for name, a in (("w_ih", wx), ("w_hh", wh), ("bias", bias)):
        if not np.all(np.isfinite(a)):
            raise UserError(f"{where}{name}: contains NaN or infinity")
    return wx, wh, bias


def bundle_from_layer_params(params, fmts: Formats, theta_x=0.0, theta_h=0.0,
                             cell: str = "gru", balance=None,
                             **bundle_fields) -> tuple[ModelBundle, int]:
    """L layers of nn.GRU-layout float parameters -> (bundle, number of saturated
    weights/biases over all layers).

    ``params``: a list of L tuples (w_ih (3H_l, I_l), w_hh (3H_l, H_l), b_ih, b_hh), biases
    None for a GRU without biases (zero biases). ``theta_x``/``theta_h``: one threshold (real
    units) for every layer or a list of L. ``cell`` "lstm": nn.LSTM-layout parameters
    (4H_l rows), an LSTM bundle. ``balance``: None (dense) or a list of L
    :class:`~drnn_hw.balance.BalanceUnit` (None for a dense layer): the layers' column-balanced
    patterns, recorded in the bundle, whose validation checks that the quantised weights follow
    them (BundleError otherwise).
    """
    params = list(params)
    L = len(params)
    txs = list(theta_x) if isinstance(theta_x, (list, tuple)) else [theta_x] * L
    ths = list(theta_h) if isinstance(theta_h, (list, tuple)) else [theta_h] * L
    if len(txs) != L or len(ths) != L:
        raise UserError(f"--theta-x/--theta-h: expected {L} values (one per layer) or one")
    layers, saturated = [], 0
    for l, (w_ih, w_hh, b_ih, b_hh) in enumerate(params):
        wx, wh, bias = _layer_arrays(w_ih, w_hh, b_ih, b_hh, f"layer{l}." if L > 1 else "",
                                     cell)
        saturated += (quantize_count(wx, fmts.weight) + quantize_count(wh, fmts.weight)
                      + quantize_count(bias, fmts.acc))
        layers.append(Layer(quantize(wx, fmts.weight), quantize(wh, fmts.weight),
                            quantize(bias, fmts.acc),
                            threshold_code(txs[l], fmts, "theta_x"),
                            threshold_code(ths[l], fmts, "theta_h"),
                            None if balance is None else balance[l]))
    return ModelBundle(formats=fmts, layers=layers, cell=cell, **bundle_fields), saturated


def bundle_from_gru_params(w_ih, w_hh, b_ih, b_hh, fmts: Formats, theta_x: float = 0.0,
                           theta_h: float = 0.0, **bundle_fields) -> tuple[ModelBundle, int]:
    """nn.GRU-layout float parameters of one layer -> (bundle, number of saturated
    weights/biases).

    ``b_ih``/``b_hh`` may be None (a GRU without biases): zero biases.
    """
    return bundle_from_layer_params([(w_ih, w_hh, b_ih, b_hh)], fmts, theta_x, theta_h,
                                    **bundle_fields)


def _torch_load(p: Path, what: str, kind: str):
    """``torch.load`` of tensors only (no pickled code); a one-line UserError otherwise.

    ``weights_only=True`` stays: unpickling arbitrary objects runs code from the file. A file
    refused for holding such objects (typically ``torch.save(model)``, a whole module) gets a
    message saying to save ``model.state_dict()`` instead.
    """
    import pickle
    import zipfile

    import torch

    if p.is_dir():
        raise UserError(f"{p}: is a directory, expected a {what} file (torch.save)")
    if not p.is_file():
        raise UserError(f"{p}: file not found (expected a {what})")
    # torch.save writes a zip archive; anything else is not a torch file (or a legacy one,
    # which torch.load still reads).
    archive = zipfile.is_zipfile(p)
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not archive:
            raise UserError(f"{p}: not a torch file (torch.save writes a zip archive; "
                            f"expected a {what})") from None
        if "weights only load failed" in str(e).lower():
            raise UserError(f"{p}: holds pickled Python objects (e.g. a whole module saved with "
                            "torch.save(model)), which are not loaded since unpickling runs code; "
                            "save the weights instead: torch.save(model.state_dict(), PATH)"
                            ) from None
        raise UserError(f"{p}: not a readable torch {kind} ({type(e).__name__})") from None
    except Exception as e:
        if not archive:
            raise UserError(f"{p}: not a torch file (torch.save writes a zip archive; "
                            f"expected a {what})") from None
        raise UserError(f"{p}: not a readable torch {kind} ({type(e).__name__})") from None


def load_checkpoint(path) -> dict:
    """Read a trainer checkpoint; anything else is a one-line UserError."""
    p = Path(path)
    ckpt = _torch_load(p, "checkpoint", "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND:
        raise UserError(f"{p}: not a drnn train checkpoint (expected a dict with kind="
                        f"'{CHECKPOINT_KIND}'; for a plain nn.GRU state dict use --torch-gru, "
                        "for an nn.LSTM's --torch-lstm)")
    for key in ("config", "state", "formats", "input_mean", "input_scale", "classes"):
        if key not in ckpt:
            raise UserError(f"{p}: checkpoint is missing '{key}'")
    return ckpt


def bundle_from_checkpoint(ckpt: dict, theta_x=None, theta_h=None, name: str | None = None):
    """Checkpoint dict -> (bundle, saturated count). Thresholds default to the trained ones
    (one value for every layer, or a list of L). A checkpoint of L layers (``num_layers``,
    absent in version 1 = 1) holds layer 0 under ``rnn.`` and layer l > 0 under ``rnn{l}.``."""
    from .model import bundle_head

    cfg, st = ckpt["config"], ckpt["state"]
    fmts = Formats.from_dict(ckpt["formats"])
    np_ = lambda k: st[k].detach().cpu().double().numpy()
    L = int(ckpt.get("num_layers", 1))
    params = []
    for l in range(L):
        p = "rnn." if l == 0 else f"rnn{l}."
        params.append(tuple(np_(p + k) for k in ("w_ih", "w_hh", "b_ih", "b_hh")))
    hs = ckpt.get("hidden_sizes", [ckpt["hidden_size"]])
    tag = f"h{hs[0]}" if L == 1 else "h" + "-".join(map(str, hs))
    bal = ckpt.get("balance")       # column-balanced pruning (drnn train --spatial-sparsity)
    units = None if bal is None else \
        [BalanceUnit.for_layer(bal["gamma"], H, bal["rows"]) for H in hs]
    return bundle_from_layer_params(
        params, fmts, cell=ckpt.get("cell", "gru"), balance=units,
        theta_x=cfg["theta_x"] if theta_x is None else theta_x,
        theta_h=cfg["theta_h"] if theta_h is None else theta_h,
        input_mean=np.asarray(ckpt["input_mean"], np.float64),
        input_scale=np.asarray(ckpt["input_scale"], np.float64),
        **bundle_head(ckpt),     # head, classes; a regression head in target units
        name=name or f"{Path(str(ckpt.get('dataset', 'model'))).stem}-{tag}",
        source=f"drnn train: {cfg}", extra={"dataset": ckpt.get("dataset")})


# -- importing a PyTorch GRU -------------------------------------------------------------------

# nn.GRU parameter names (layer k, optionally the reverse direction) and nn.GRUCell's.
_LAYER_RE = re.compile(r"^(weight|bias)_(ih|hh)_l(\d+)(_reverse)?$")
_LAYER_KEYS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
_CELL_KEYS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_EXPECTED = ("expected nn.GRU keys weight_ih_l0, weight_hh_l0[, bias_ih_l0, bias_hh_l0] or "
             "nn.GRUCell keys weight_ih, weight_hh[, bias_ih, bias_hh], under any prefix")


@dataclass
class TorchGRU:
    """A GRU of L ≥ 1 layers (and its linear head, if found) read from a torch file.

    Arrays are float64 NumPy in ``nn.GRU`` layout (gate rows r, z, n): ``w_ih`` (3H, I),
    ``w_hh`` (3H, H), ``b_ih``/``b_hh`` (3H,) or None (a GRU without biases) are layer 0's;
    ``upper`` holds layers 1 .. L-1 as dicts with the same four keys (``w_ih`` (3H_l, H_{l-1}));
    ``head_w`` (C, H_last) and ``head_b`` (C,) or None (headless; a head without bias gets
    zeros). ``prefix`` and ``head_prefix`` are where the keys were found, dotted through nested
    dicts ('' = top level, else ending in '.'); ``cell`` says the keys were ``nn.GRUCell``'s.
    ``kind`` "lstm": an ``nn.LSTM`` / ``nn.LSTMCell`` read by :func:`load_torch_lstm` (4H rows,
    gate order i, f, g, o; ``cell`` then means ``nn.LSTMCell``).
    """

    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray | None
    b_hh: np.ndarray | None
    prefix: str = ""
    cell: bool = False
    head_w: np.ndarray | None = None
    head_b: np.ndarray | None = None
    head_prefix: str | None = None
    upper: list = field(default_factory=list)
    kind: str = "gru"

    @property
    def layers(self) -> list:
        """[(w_ih, w_hh, b_ih, b_hh)] for each of the L layers, input first."""
        return [(self.w_ih, self.w_hh, self.b_ih, self.b_hh)] + \
            [(u["w_ih"], u["w_hh"], u["b_ih"], u["b_hh"]) for u in self.upper]

    @property
    def num_layers(self) -> int:
        return 1 + len(self.upper)

    @property
    def input_size(self) -> int:
        return int(self.w_ih.shape[1])

    @property
    def hidden_size(self) -> int:
        """The last layer's H (what the head reads)."""
        return int(self.layers[-1][1].shape[1])


def _flatten(obj, prefix: str = "", out: dict | None = None, depth: int = 0) -> dict:
    """Every tensor in nested dicts, by dotted path; other entries (epoch, lists...) skipped."""
    import torch

    out = {} if out is None else out
    if depth > 16:          # deeper than any checkpoint; guards against self-referencing dicts
        return out
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, torch.Tensor):
            out[key] = v
        elif isinstance(v, dict):
            _flatten(v, key + ".", out, depth + 1)
    return out


def _split(key: str) -> tuple[str, str]:
    """'a.b.weight' -> ('a.b.', 'weight')."""
    head, _, leaf = key.rpartition(".")
    return (head + "." if head else ""), leaf


def _show(prefix: str) -> str:
    """A prefix as the user passes it to --prefix / --head-prefix."""
    return prefix[:-1] if prefix else "''"


def _match(prefixes, wanted: str) -> list[str]:
    """Prefixes equal to ``wanted`` or ending with it at a dot ('rnn' finds 'model.rnn.')."""
    w = wanted.strip()
    if w and not w.endswith("."):
        w += "."
    exact = [c for c in prefixes if c == w]
    return exact or [c for c in prefixes if w and c.endswith("." + w)]


def _keys_under(flat: dict, prefix: str) -> dict:
    """Tensors directly under ``prefix`` (one more name, no further dot), by that name."""
    return {k[len(prefix):]: v for k, v in flat.items()
            if k.startswith(prefix) and "." not in k[len(prefix):]}


def _is_gru_shaped(names: dict, cell: bool, kind: str = "gru") -> bool:
    w = names.get("weight_hh" if cell else "weight_hh_l0")
    return w is not None and w.ndim == 2 and w.shape[1] >= 1 and \
        w.shape[0] == GATES[kind] * w.shape[1]


def _gru_arrays(p: Path, flat: dict, prefix: str, cell: bool, kind: str = "gru") -> list[dict]:
    """Validated float64 arrays of the GRU (``kind`` "lstm": the LSTM) under ``prefix``, one
    dict per layer (w_ih, w_hh, b_ih, b_hh); a one-line UserError otherwise."""
    names = _keys_under(flat, prefix)
    K = kind.upper()
    proj = sorted(n for n in names if re.fullmatch(r"weight_hr_l\d+(_reverse)?", n))
    if proj:
        raise UserError(f"{p}: {prefix}{proj[0]}: an LSTM with projections (proj_size > 0); "
                        "only proj_size=0 is supported (h is the cell output o·tanh(c))")
    if cell:
        return [_one_layer(p, names, prefix, _CELL_KEYS, None, kind)]
    # weight_ih first: the key a user recognises as "the layer" in the message.
    layered = sorted((n for n in names if _LAYER_RE.match(n)),
                     key=lambda n: (not n.startswith("weight_ih"), n))
    rev = [n for n in layered if n.endswith("_reverse")]
    if rev:
        raise UserError(f"{p}: bidirectional {K} found ({prefix}{rev[0]}); only "
                        f"unidirectional {K}s are supported")
    L = 1 + max(int(_LAYER_RE.match(n).group(3)) for n in layered) if layered else 1
    out, prev_h = [], None
    for l in range(L):
        keys = tuple(k.replace("_l0", f"_l{l}") for k in _LAYER_KEYS)
        out.append(_one_layer(p, names, prefix, keys, prev_h, kind))
        prev_h = out[-1]["w_hh"].shape[1]
    with_bias = [o["b_ih"] is not None for o in out]
    if any(with_bias) and not all(with_bias):
        l = with_bias.index(False)
        raise UserError(f"{p}: {prefix}bias_ih_l{l}: missing (the other layers have biases)")
    return out


def _one_layer(p: Path, names: dict, prefix: str, keys: tuple, prev_h: int | None,
               kind: str = "gru") -> dict:
    """One layer's arrays under ``keys`` (weight_ih, weight_hh, bias_ih, bias_hh names);
    ``prev_h``: the previous layer's H, which must be this layer's input width; ``kind``: the
    cell (GATES[kind]·H weight rows)."""
    kw_ih, kw_hh, kb_ih, kb_hh = keys
    G = GATES[kind]
    for k in (kw_ih, kw_hh):
        if k not in names:
            raise UserError(f"{p}: {prefix}{k}: missing ({_EXPECTED})")
    has_b = sorted({kb_ih, kb_hh} & set(names))
    if len(has_b) == 1:
        raise UserError(f"{p}: expected both {prefix}{kb_ih} and {prefix}{kb_hh} or neither, "
                        f"got only {prefix}{has_b[0]}")
    w_hh = names[kw_hh]
    if w_hh.ndim != 2 or w_hh.shape[1] < 1 or w_hh.shape[0] != G * w_hh.shape[1]:
        other = ("(an LSTM has 4H rows: drnn export --torch-lstm; an RNN H rows)"
                 if kind == "gru" else
                 "(a GRU has 3H rows: drnn export --torch-gru; an RNN H rows)")
        raise UserError(f"{p}: {prefix}{kw_hh}: expected shape ({G}H, H), "
                        f"got {tuple(w_hh.shape)} {other}")
    H = w_hh.shape[1]
    w_ih = names[kw_ih]
    if prev_h is None:
        if w_ih.ndim != 2 or w_ih.shape[0] != G * H or w_ih.shape[1] < 1:
            raise UserError(f"{p}: {prefix}{kw_ih}: expected shape ({G * H}, I), "
                            f"got {tuple(w_ih.shape)}")
    elif tuple(w_ih.shape) != (G * H, prev_h):
        raise UserError(f"{p}: {prefix}{kw_ih}: expected shape ({G * H}, {prev_h}) (its input "
                        f"is the previous layer's h), got {tuple(w_ih.shape)}")
    for k in has_b:
        if tuple(names[k].shape) != (G * H,):
            raise UserError(f"{p}: {prefix}{k}: expected shape ({G * H},), "
                            f"got {tuple(names[k].shape)}")
    out = {}
    for field_, k in zip(("w_ih", "w_hh", "b_ih", "b_hh"), keys):
        v = names.get(k)
        if v is not None:
            v = v.detach().double().numpy()
            if not np.all(np.isfinite(v)):
                raise UserError(f"{p}: {prefix}{k}: contains NaN or infinity")
        out[field_] = v
    return out


def _linear(flat: dict, prefix: str, H: int) -> tuple | None:
    """(weight, bias|None) of an nn.Linear(H, C) at ``prefix``, or None if it is not one."""
    w, b = flat.get(prefix + "weight"), flat.get(prefix + "bias")
    if w is None or w.ndim != 2 or w.shape[1] != H or w.shape[0] < 1:
        return None
    if b is not None and tuple(b.shape) != (w.shape[0],):
        return None
    return w, b


def _find_head(p: Path, flat: dict, gru_prefix: str, H: int, head_prefix: str | None,
               K: str = "GRU"):
    """(prefix, weight (C, H), bias (C,)) of the GRU's linear head, or None (headless)."""
    linears = sorted({k[:-len("weight")] for k in flat if k.endswith(".weight")})
    if head_prefix is not None:
        found = _match(linears, head_prefix)
        if not found:
            raise UserError(f"{p}: --head-prefix {head_prefix}: no {head_prefix}.weight in the "
                            f"file (linear layers: {', '.join(map(_show, linears)) or 'none'})")
        if len(found) > 1:
            raise UserError(f"{p}: --head-prefix {head_prefix} matches "
                            f"{', '.join(map(_show, found))}; give the whole prefix")
        hp = found[0]
        w, b = flat[hp + "weight"], flat.get(hp + "bias")
        if w.ndim != 2 or w.shape[1] != H or w.shape[0] < 1:
            raise UserError(f"{p}: {hp}weight: expected shape (C, {H}) for a linear head on the "
                            f"{K}'s {H} hidden units, got {tuple(w.shape)}")
        if b is not None and tuple(b.shape) != (w.shape[0],):
            raise UserError(f"{p}: {hp}bias: expected shape ({w.shape[0]},), "
                            f"got {tuple(b.shape)}")
        return hp, w, b
    # Automatic: a Linear(H, C) beside the GRU, i.e. directly under its parent prefix; if
    # there is none there, under the grandparent, and so on ('encoder.gru.' -> 'encoder.' -> '').
    parent = gru_prefix
    while parent:
        parent = _split(parent[:-1])[0]
        here = [q for q in linears if q.startswith(parent) and "." not in q[len(parent):-1]
                and q != gru_prefix and _linear(flat, q, H) is not None]
        if len(here) > 1:
            raise UserError(f"{p}: several linear layers on the {K}'s {H} hidden units: "
                            f"{', '.join(map(_show, here))}; pass --head-prefix to pick the head")
        if here:
            hp = here[0]
            w, b = _linear(flat, hp, H)
            # A Linear whose output another sibling Linear consumes is the first layer of a
            # deeper head (fc1 -> fc2); taking it as the classifier would be silently wrong.
            C = w.shape[0]
            nxt = [q for q in linears if q.startswith(parent) and "." not in q[len(parent):-1]
                   and q != hp and flat[q + "weight"].ndim == 2
                   and flat[q + "weight"].shape[1] == C]
            if nxt:
                raise UserError(f"{p}: {hp}weight ({C}, {H}) feeds {nxt[0]}weight: only a single "
                                f"nn.Linear head on the {K} is supported (pass --head-prefix to "
                                "force one)")
            return hp, w, b
    return None


def load_torch_lstm(path, prefix: str | None = None, head_prefix: str | None = None) -> TorchGRU:
    """:func:`load_torch_gru` for an ``nn.LSTM`` (any ``num_layers``, with or without biases)
    or ``nn.LSTMCell``: a :class:`TorchGRU` with ``kind`` "lstm" (4H weight rows, gate order
    i, f, g, o). Refuses, on one line naming file and key, what the GRU import refuses and an
    LSTM with projections (``weight_hr_l0``)."""
    return load_torch_gru(path, prefix, head_prefix, kind="lstm")


def load_torch_gru(path, prefix: str | None = None, head_prefix: str | None = None,
                   kind: str = "gru") -> TorchGRU:
    """Find the GRU (any number of layers; and its linear head) in a ``torch.save`` file.

    The file is read with ``torch.load(weights_only=True)`` and may be a state dict of an
    ``nn.GRU`` or ``nn.GRUCell``, of a model holding one (keys under a prefix such as ``rnn.``,
    ``module.`` or ``encoder.gru.``), or a checkpoint dict holding such a state dict beside
    non-tensor entries (``{"epoch": 3, "model_state_dict": {...}, "optimizer": {...}}``): nested
    dicts are searched. ``prefix`` picks one GRU when the file holds several (matched against
    the dotted prefix, whole or as its tail). The head is ``head_prefix``'s ``weight`` (C, H)
    and ``bias`` (C,) or, when not given, the one ``nn.Linear(H, C)`` beside the GRU (see
    :func:`_find_head`); none: headless.

    Raises a one-line :class:`UserError` naming the file and key for: an unreadable file or a
    pickled module, no GRU, several GRUs without ``prefix``, a bidirectional GRU, wrong shapes
    (layer l's input width must be layer l-1's H), one bias of two or biases in some layers
    only, NaN/inf.
    """
    import torch

    p = Path(path)
    K = kind.upper()
    obj = _torch_load(p, f"{K} state dict", "file")
    if isinstance(obj, torch.Tensor) or not isinstance(obj, dict):
        raise UserError(f"{p}: expected a state dict of tensors (torch.save(gru.state_dict())), "
                        f"got {type(obj).__name__}")
    flat = _flatten(obj)
    found = {}                                     # prefix -> cell?
    for k in flat:
        pre, leaf = _split(k)
        if leaf in ("weight_ih_l0", "weight_hh_l0"):
            found[pre] = False
        elif leaf in ("weight_ih", "weight_hh"):
            found.setdefault(pre, True)
    if prefix is not None:
        chosen = _match(found, prefix)
        if not chosen:
            raise UserError(f"{p}: --prefix {prefix}: no {K} keys under it ({K}s found at: "
                            f"{', '.join(map(_show, sorted(found))) or 'none'})")
    else:
        grus = [c for c in sorted(found)
                if _is_gru_shaped(_keys_under(flat, c), found[c], kind)]
        chosen = grus or sorted(found)[:1]
        if not chosen:
            names = sorted(flat)
            shown = ", ".join(names[:8]) + (f", ... ({len(names)} tensors)" if len(names) > 8
                                            else "")
            expected = _EXPECTED if kind == "gru" else \
                _EXPECTED.replace("GRU", "LSTM")
            raise UserError(f"{p}: no {K} found: {expected}; got {shown or 'no tensors'}")
    if len(chosen) > 1:
        raise UserError(f"{p}: {len(chosen)} {K}s found, at {', '.join(map(_show, chosen))}; "
                        "pass --prefix to pick one")
    pre = chosen[0]
    arrays = _gru_arrays(p, flat, pre, found[pre], kind)
    gru = TorchGRU(**arrays[0], prefix=pre, cell=found[pre], upper=arrays[1:], kind=kind)
    head = _find_head(p, flat, pre, gru.hidden_size, head_prefix, K)
    if head is not None:
        hp, w, b = head
        gru.head_prefix = hp
        gru.head_w = w.detach().double().numpy()
        gru.head_b = (np.zeros(w.shape[0]) if b is None else b.detach().double().numpy())
        for k, v in (("weight", gru.head_w), ("bias", gru.head_b)):
            if not np.all(np.isfinite(v)):
                raise UserError(f"{p}: {hp}{k}: contains NaN or infinity")
    return gru


def load_torch_gru_state(path) -> dict:
    """{w_ih, w_hh, b_ih, b_hh} (float64, biases None when absent) of :func:`load_torch_gru`."""
    g = load_torch_gru(path)
    return {"w_ih": g.w_ih, "w_hh": g.w_hh, "b_ih": g.b_ih, "b_hh": g.b_hh}


# -- number formats and input normalisation for an imported GRU --------------------------------

def _formats_or_none(w_bits: int, w_frac: int) -> Formats | None:
    try:
        return Formats(w_bits=w_bits, w_frac=w_frac)
    except ValueError:
        return None


def choose_weight_format(weights, biases, w_bits: int | None = None,
                         w_frac: int | None = None, where: str = "export"):
    """The weight format for float weights: (Formats, note or None).

    ``weights``: arrays quantised to the weight format; ``biases``: arrays quantised to the
    accumulator format (``act_frac + w_frac`` fractional bits). Width ``w_bits`` (default 8).
    With ``w_frac`` given: exactly that format. Otherwise the largest ``w_frac`` (fewest integer
    bits) at which no weight or bias saturates, clamped to the largest ``w_frac`` that
    :class:`~drnn_hw.numerics.Formats` accepts at this width (the note then says what the
    weights wanted); if even ``w_frac = 0`` saturates, 0 (the caller warns about saturation).
    Raises UserError naming --weight-bits/--weight-frac for a format Formats refuses.
    """
    bits = 8 if w_bits is None else int(w_bits)
    if w_frac is not None:
        try:
            return Formats(w_bits=bits, w_frac=int(w_frac)), None
        except ValueError as e:
            raise UserError(f"{where}: --weight-bits/--weight-frac: {e}") from None
    try:
        Formats(w_bits=bits, w_frac=0)
    except ValueError as e:
        raise UserError(f"{where}: --weight-bits: {e}") from None
    # Probe what Formats accepts rather than restate its rule here.
    supported = [f for f in range(64) if _formats_or_none(bits, f) is not None]
    top = max(supported)
    w_abs = max((float(np.max(np.abs(w))) for w in weights if np.size(w)), default=0.0)

    def fits(f):
        fm = Fixed(bits, f)
        return all(quantize_count(w, fm) == 0 for w in weights)

    wanted = max((f for f in range(64) if fits(f)), default=None)
    for f in sorted(supported, reverse=True):
        if f > (wanted if wanted is not None else -1):
            continue
        fmts = Formats(w_bits=bits, w_frac=f)
        if all(quantize_count(b, fmts.acc) == 0 for b in biases):
            break
    else:
        fmts = Formats(w_bits=bits, w_frac=min(supported))
    note = None
    if w_abs == 0:
        note = (f"drnn: note: every weight is zero; weights use {fmts.weight} (the format "
                "does not matter for them)")
    elif wanted is not None and wanted > top:
        note = (f"drnn: note: weights within ±{w_abs:.3g} would take w_frac={wanted} at {bits} "
                f"bits, but the {Formats().acc_bits}-bit accumulator allows at most "
                f"w_frac={top}; weights use {fmts.weight}")
    return fmts, note


def parse_vector(text, n: int, flag: str, where: str, nonzero: bool = False) -> np.ndarray:
    """'1.5' or '0.1,0.2,...' (n values) -> (n,) float64; one value applies to every feature."""
    try:
        vals = [float(t) for t in str(text).split(",")]
    except ValueError:
        raise UserError(f"{where}: {flag}: expected {n} comma-separated numbers (or one), "
                        f"got {text!r}") from None
    if len(vals) not in (1, n):
        raise UserError(f"{where}: {flag}: expected {n} comma-separated numbers (or one), "
                        f"got {len(vals)}")
    a = np.array(vals * n if len(vals) == 1 else vals, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise UserError(f"{where}: {flag}: expected finite numbers, got {text!r}")
    if nonzero and np.any(a == 0):
        raise UserError(f"{where}: {flag}: expected non-zero scales, got {text!r}")
    return a


def bundle_from_torch_file(path, *, prefix: str | None = None, head_prefix: str | None = None,
                           weight_bits: int | None = None, weight_frac: int | None = None,
                           input_mean: str | None = None, input_scale: str | None = None,
                           dataset: str | None = None, theta_x: float = 0.0,
                           theta_h: float = 0.0, name: str | None = None, cell: str = "gru"):
    """A torch GRU file -> (bundle, saturated count, notes) for ``drnn export --torch-gru``;
    with ``cell`` "lstm" a torch LSTM file (:func:`load_torch_lstm`) -> an LSTM bundle, for
    ``drnn export --torch-lstm`` (biases: b_ih + b_hh per gate, in the accumulator format).

    The GRU and head come from :func:`load_torch_gru`; the weight format from
    :func:`choose_weight_format`. Input normalisation (x − mean) / scale: ``dataset`` (a name or
    .npz path) gives the training split's per-feature mean and standard deviation, as
    ``drnn train`` computes them (:func:`drnn_train.datasets.input_statistics`), and is recorded
    in ``extra["dataset"]`` (the name, or the absolute path); ``input_mean``/``input_scale``
    (strings for :func:`parse_vector`) override it; default mean 0, scale 1. Classes: the data
    set's labels when given (its class count must equal the head's C), else "0".."C-1".
    Every error is a one-line UserError naming the file and the key or flag.
    """
    from .datasets import DATASETS, input_statistics, load_dataset

    p = Path(path)
    gru = load_torch_gru(p, prefix, head_prefix, kind=cell)
    I = gru.input_size
    weights, biases = [], []
    for w_ih, w_hh, b_ih, b_hh in gru.layers:      # one weight format for every layer
        H = w_hh.shape[1]
        if cell == "lstm":
            zeros = np.zeros(4 * H)
            weights += [w_ih, w_hh]
            biases.append((zeros if b_ih is None else b_ih) + (zeros if b_hh is None else b_hh))
            continue
        zeros = np.zeros(3 * H)
        b_ih = zeros if b_ih is None else b_ih
        b_hh = zeros if b_hh is None else b_hh
        weights += [w_ih, w_hh]
        biases += [b_ih[:2 * H] + b_hh[:2 * H], b_ih[2 * H:], b_hh[2 * H:]]
    fmts, note = choose_weight_format(weights, biases, weight_bits, weight_frac, str(p))
    notes = [note] if note else []
    for n, v in (("theta_x", theta_x), ("theta_h", theta_h)):
        try:
            threshold_code(v, fmts, n)
        except UserError as e:
            raise UserError(f"{p}: {e}") from None
    mean, scale, ref, classes = np.zeros(I), np.ones(I), None, None
    task_fields = {}
    C = None if gru.head_w is None else gru.head_w.shape[0]
    if dataset is not None:
        ds = load_dataset(dataset)
        if ds.input_size != I:
            raise UserError(f"{p}: --dataset {dataset}: {ds.input_size} input features, the "
                            f"{cell.upper()}'s {gru.prefix}weight_ih has {I}")
        if ds.is_regression:
            # A regression head: its rows are the data set's O outputs, in the units the
            # model was trained on (imported as is).
            if C is not None and len(ds.outputs) != C:
                raise UserError(f"{p}: --dataset {dataset}: {len(ds.outputs)} regression "
                                f"outputs, the head {gru.head_prefix}weight has {C} rows")
            if C is not None:
                task_fields = {"task": "regression", "outputs": list(ds.outputs)}
        elif C is not None and ds.num_classes != C:
            raise UserError(f"{p}: --dataset {dataset}: {ds.num_classes} classes, the head "
                            f"{gru.head_prefix}weight has {C} rows")
        mean, scale = input_statistics(ds.x_train, ds.len_train)
        ref = dataset if dataset in DATASETS else str(Path(dataset).resolve())
        classes = list(ds.classes) if C is not None and not ds.is_regression else None
    if dataset is not None and (input_mean is not None or input_scale is not None):
        given = "--input-mean and --input-scale" if input_mean is not None and \
            input_scale is not None else ("--input-mean" if input_mean is not None
                                          else "--input-scale")
        notes.append(f"drnn: note: the normalisation takes {given} from the flags and the rest "
                     "from --dataset's training split")
    if input_mean is not None:
        mean = parse_vector(input_mean, I, "--input-mean", str(p))
    if input_scale is not None:
        scale = parse_vector(input_scale, I, "--input-scale", str(p), nonzero=True)
    if C is not None and classes is None and not task_fields:
        classes = [str(c) for c in range(C)]
    mod = "nn.LSTM" if cell == "lstm" else "nn.GRU"
    what = f"{mod}Cell" if gru.cell else \
        (mod if gru.num_layers == 1 else f"{mod}(num_layers={gru.num_layers})")
    source = f"torch {what} {p}" + (f" at {_show(gru.prefix)}" if gru.prefix else "")
    if gru.head_prefix is not None:
        source += f", head {_show(gru.head_prefix)}"
    bundle, saturated = bundle_from_layer_params(
        gru.layers, fmts, theta_x, theta_h, cell=cell,
        input_mean=mean, input_scale=scale, head_w=gru.head_w, head_b=gru.head_b,
        classes=classes, name=name or p.stem, source=source, extra={"dataset": ref},
        **task_fields)
    return bundle, saturated, notes
