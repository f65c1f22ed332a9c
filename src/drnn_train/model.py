"""The trainable delta-GRU and delta-LSTM, their (stacked) classifier, and the trainer's
hardware-exact mode.

:class:`DeltaGRU` keeps PyTorch's ``nn.GRU`` parameter layout (``w_ih`` (3H, I), ``w_hh``
(3H, H), ``b_ih``, ``b_hh``, gate order r, z, n) so a float ``nn.GRU`` and this layer are
interchangeable at thresholds 0.

Forward pass. The delta memories of the hardware telescope: after step t,
``M_r = b_ir + b_hr + W_ir x̂_t + W_hr ĥ_t`` (and likewise for z, n), where x̂, ĥ are the
reference vectors (the value of each element when its delta was last kept). Training computes
the gates from x̂ and ĥ directly, which is the same function as accumulating kept deltas but
lets all W_ir x̂ products of a batch be one matrix product. The thresholds act in the forward
pass; the gradient is straight-through (``ĥ = h + (ĥ − h).detach()``: the loss sees the
thresholded network, the gradient flows as if every delta had been kept).

With ``quantize`` on, weights, the combined biases, inputs and every narrowing of the
activation pipeline are fake-quantised to :class:`~drnn_hw.numerics.Formats`, and σ/tanh come
from the hardware LUTs (:mod:`drnn_train.quant`); in float64 the forward pass then reproduces
the integer arithmetic. :func:`exact_run` is the hardware-exact evaluation proper: integer
codes (held in float64 tensors, exact since every partial sum is below 2**53), delta memories
accumulated step by step and saturated to the accumulator width, exactly as
:func:`drnn_hw.golden.run`.

:class:`DeltaLSTM` is the same for PyTorch's ``nn.LSTM`` (``w_ih`` (4H, I), ``w_hh`` (4H, H),
``b_ih``, ``b_hh`` (4H,), gate order i, f, g, o; states c and h): the four delta memories
telescope to ``b_i* + b_h* + W_x x̂ + W_h ĥ``, and with ``quantize`` on the forward pass computes
the integer LSTM step of :mod:`drnn_hw.numerics` in float64 (c on the cell format's grid, each
product rounded half up once and saturated, tanh(c) indexed from c's format).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from drnn_hw.numerics import Formats, lut_shift, make_sigmoid_lut, make_tanh_lut

from .quant import fake_quant, fake_quant_codes, lut_activation, round_half_up

__all__ = ["DeltaGRU", "DeltaLSTM", "DeltaGRUClassifier", "DeltaRNNClassifier", "exact_run",
           "last_step", "per_layer", "bundle_head", "CELL_MODULES"]

DTYPE = torch.float64


class DeltaGRU(nn.Module):
    """A single-layer delta-GRU over batches of zero-padded ragged sequences (batch first)."""

    def __init__(self, input_size: int, hidden_size: int, formats: Formats | None = None,
                 theta_x: float = 0.0, theta_h: float = 0.0, quantize: bool = False):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.formats = formats or Formats()
        self.theta_x, self.theta_h = float(theta_x), float(theta_h)
        self.quantize = quantize
        H, I = hidden_size, input_size
        k = 1.0 / math.sqrt(H)      # nn.GRU's initialisation
        self.w_ih = nn.Parameter(torch.empty(3 * H, I, dtype=DTYPE).uniform_(-k, k))
        self.w_hh = nn.Parameter(torch.empty(3 * H, H, dtype=DTYPE).uniform_(-k, k))
        self.b_ih = nn.Parameter(torch.empty(3 * H, dtype=DTYPE).uniform_(-k, k))
        self.b_hh = nn.Parameter(torch.empty(3 * H, dtype=DTYPE).uniform_(-k, k))
        self.register_buffer("sigmoid_lut", torch.tensor(make_sigmoid_lut(self.formats),
                                                         dtype=DTYPE), persistent=False)
        self.register_buffer("tanh_lut", torch.tensor(make_tanh_lut(self.formats), dtype=DTYPE),
                             persistent=False)
        # Column-balanced weight sparsity (drnn_train.prune): None, or float 0/1 masks of
        # w_ih's and w_hh's shapes multiplied into the weights in every forward pass, before
        # the fake quantisation (a pruned weight is exactly 0). Not part of the state dict.
        self.weight_mask = None

    # -- parameters as the hardware sees them ----------------------------------------------------

    def masked_weights(self):
        """(w_ih, w_hh) with :attr:`weight_mask` applied (the parameters when it is None)."""
        if self.weight_mask is None:
            return self.w_ih, self.w_hh
        return self.w_ih * self.weight_mask[0], self.w_hh * self.weight_mask[1]

    def gate_params(self):
        """(w_ih, w_hh, bias (4, H)) after fake quantisation when ``quantize`` is on, the
        weights masked by :attr:`weight_mask` first (column-balanced sparsity).

        bias rows: b_ir + b_hr, b_iz + b_hz, b_in, b_hn (the initial delta memories).
        """
        H = self.hidden_size
        bias = torch.stack([self.b_ih[:H] + self.b_hh[:H], self.b_ih[H:2 * H] + self.b_hh[H:2 * H],
                            self.b_ih[2 * H:], self.b_hh[2 * H:]])
        w_ih, w_hh = self.masked_weights()
        if not self.quantize:
            return w_ih, w_hh, bias
        f = self.formats
        return fake_quant(w_ih, f.weight), fake_quant(w_hh, f.weight), fake_quant(bias, f.acc)

    # -- forward -------------------------------------------------------------------------------

    def _sigmoid(self, v):
        if not self.quantize:
            return torch.sigmoid(v)
        f = self.formats
        return lut_activation(v, self.sigmoid_lut, f, f.sigmoid_range_log2, torch.sigmoid)

    def _tanh(self, v):
        if not self.quantize:
            return torch.tanh(v)
        f = self.formats
        return lut_activation(v, self.tanh_lut, f, f.tanh_range_log2, torch.tanh)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        """x (N, T, I) float, lengths (N,) int. Returns (h (N, T, H), stats).

        Steps at or past a sequence's length change nothing and output 0. ``stats``:
        ``nnz_dx``, ``nnz_dh`` (N, T) kept deltas per step (no gradient), ``l1_dh`` the sum of
        |Δh| over kept deltas (with gradient, for the sparsity penalty).
        """
        f = self.formats
        x = x.to(DTYPE)
        N, T, _ = x.shape
        H = self.hidden_size
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        steps = torch.arange(T)
        active_all = (steps[None, :] < lengths[:, None])            # (N, T)
        w_ih, w_hh, bias = self.gate_params()
        act = f.act
        one, amin, amax = f.one, act.min, act.max
        q = (lambda v: fake_quant_codes(v, one, amin, amax)) if self.quantize else (lambda v: v)
        theta_x, theta_h = self.theta_x, self.theta_h
        if self.quantize:
            x = q(x)
            # The hardware compares with the threshold's activation code.
            theta_x = math.floor(theta_x * f.one + 0.5) / f.one
            theta_h = math.floor(theta_h * f.one + 0.5) / f.one

        # Input references for all steps (they do not depend on h): x̂_t and the kept masks.
        x_ref = torch.zeros_like(x[:, 0])
        refs, nnz_dx = [], []
        for t in range(T):
            dx = x[:, t] - x_ref
            keep = (dx != 0) & (dx.abs() >= theta_x) & active_all[:, t:t + 1]
            x_ref = torch.where(keep, x[:, t], x_ref)
            refs.append(x_ref)
            nnz_dx.append(keep.sum(-1))
        x_hat = torch.stack(refs, 1)
        x_hat = x + (x_hat - x).detach()                             # straight-through
        gx = x_hat @ w_ih.T                                          # (N, T, 3H)
        gx_r, gx_z, gx_n = gx.split(H, dim=-1)
        w_hr, w_hz, w_hn = w_hh.split(H, dim=0)

        h = x.new_zeros(N, H)
        h_ref = x.new_zeros(N, H)
        out, nnz_dh = [], []
        l1 = x.new_zeros(())
        for t in range(T):
            active = active_all[:, t:t + 1]
            dh = h - h_ref
            keep = (dh != 0) & (dh.abs() >= theta_h) & active
            l1 = l1 + torch.where(keep, dh, 0.0).abs().sum()
            h_ref = torch.where(keep, h, h_ref)
            h_hat = h + (h_ref - h).detach()                         # straight-through
            m_r = bias[0] + gx_r[:, t] + h_hat @ w_hr.T
            m_z = bias[1] + gx_z[:, t] + h_hat @ w_hz.T
            m_nx = bias[2] + gx_n[:, t]
            m_nh = bias[3] + h_hat @ w_hn.T
            r = self._sigmoid(q(m_r))
            z = self._sigmoid(q(m_z))
            if self.quantize:
                n = self._tanh(q(q(m_nx) + q(r * q(m_nh))))
                # round_shift(z * (h - n)) is not saturated in the hardware, only the sum is.
                zhn = z * (h - n)
                zhn = zhn + (round_half_up(zhn * one) / one - zhn).detach()
                h_new = q(n + zhn)
            else:
                n = torch.tanh(m_nx + r * m_nh)
                h_new = (1 - z) * n + z * h
            h = torch.where(active, h_new, h)
            out.append(torch.where(active, h, 0.0))
            nnz_dh.append(keep.sum(-1))
        stats = {"nnz_dx": torch.stack(nnz_dx, 1), "nnz_dh": torch.stack(nnz_dh, 1), "l1_dh": l1}
        return torch.stack(out, 1), stats


class DeltaLSTM(DeltaGRU):
    """A single-layer delta-LSTM over batches of zero-padded ragged sequences (batch first).

    Parameters in ``nn.LSTM``'s layout and initialisation (uniform ±1/√H): ``w_ih`` (4H, I),
    ``w_hh`` (4H, H), ``b_ih``, ``b_hh`` (4H,), gate order i, f, g, o. Thresholds, fake
    quantisation and the straight-through gradients are the :class:`DeltaGRU`'s.
    """

    def __init__(self, input_size: int, hidden_size: int, formats: Formats | None = None,
                 theta_x: float = 0.0, theta_h: float = 0.0, quantize: bool = False):
        super().__init__(input_size, hidden_size, formats, theta_x, theta_h, quantize)
        H, I = hidden_size, input_size
        k = 1.0 / math.sqrt(H)      # nn.LSTM's initialisation
        self.w_ih = nn.Parameter(torch.empty(4 * H, I, dtype=DTYPE).uniform_(-k, k))
        self.w_hh = nn.Parameter(torch.empty(4 * H, H, dtype=DTYPE).uniform_(-k, k))
        self.b_ih = nn.Parameter(torch.empty(4 * H, dtype=DTYPE).uniform_(-k, k))
        self.b_hh = nn.Parameter(torch.empty(4 * H, dtype=DTYPE).uniform_(-k, k))

    def gate_params(self):
        """(w_ih, w_hh, bias (4, H)) after fake quantisation when ``quantize`` is on; bias rows
        b_ii + b_hi, b_if + b_hf, b_ig + b_hg, b_io + b_ho (the initial M_i, M_f, M_g, M_o)."""
        bias = (self.b_ih + self.b_hh).reshape(4, self.hidden_size)
        w_ih, w_hh = self.masked_weights()
        if not self.quantize:
            return w_ih, w_hh, bias
        f = self.formats
        return fake_quant(w_ih, f.weight), fake_quant(w_hh, f.weight), fake_quant(bias, f.acc)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        """x (N, T, I) float, lengths (N,) int. Returns (h (N, T, H), stats) as
        :meth:`DeltaGRU.forward` (c starts at 0 and, like h, does not change past a length)."""
        f = self.formats
        x = x.to(DTYPE)
        N, T, _ = x.shape
        H = self.hidden_size
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        active_all = (torch.arange(T)[None, :] < lengths[:, None])
        w_ih, w_hh, bias = self.gate_params()
        act, cell = f.act, f.cell
        q = (lambda v: fake_quant_codes(v, f.one, act.min, act.max)) if self.quantize \
            else (lambda v: v)
        qc = (lambda v: fake_quant_codes(v, 1 << cell.frac, cell.min, cell.max)) \
            if self.quantize else (lambda v: v)
        theta_x, theta_h = self.theta_x, self.theta_h
        if self.quantize:
            x = q(x)
            theta_x = math.floor(theta_x * f.one + 0.5) / f.one
            theta_h = math.floor(theta_h * f.one + 0.5) / f.one
        x_ref = torch.zeros_like(x[:, 0])
        refs, nnz_dx = [], []
        for t in range(T):
            dx = x[:, t] - x_ref
            keep = (dx != 0) & (dx.abs() >= theta_x) & active_all[:, t:t + 1]
            x_ref = torch.where(keep, x[:, t], x_ref)
            refs.append(x_ref)
            nnz_dx.append(keep.sum(-1))
        x_hat = torch.stack(refs, 1)
        x_hat = x + (x_hat - x).detach()                             # straight-through
        gx = x_hat @ w_ih.T + bias.reshape(1, 1, 4 * H)              # (N, T, 4H)
        h = x.new_zeros(N, H)
        c = x.new_zeros(N, H)
        h_ref = x.new_zeros(N, H)
        out, nnz_dh = [], []
        l1 = x.new_zeros(())
        for t in range(T):
            active = active_all[:, t:t + 1]
            dh = h - h_ref
            keep = (dh != 0) & (dh.abs() >= theta_h) & active
            l1 = l1 + torch.where(keep, dh, 0.0).abs().sum()
            h_ref = torch.where(keep, h, h_ref)
            h_hat = h + (h_ref - h).detach()                         # straight-through
            m_i, m_f, m_g, m_o = (gx[:, t] + h_hat @ w_hh.T).split(H, dim=-1)
            i, fg = self._sigmoid(q(m_i)), self._sigmoid(q(m_f))
            g, o = self._tanh(q(m_g)), self._sigmoid(q(m_o))
            if self.quantize:
                c_new = qc(qc(fg * c) + qc(i * g))
                tc = lut_activation(c_new, self.tanh_lut, f, f.tanh_range_log2, torch.tanh,
                                    frac=cell.frac)
                h_new = q(o * tc)
            else:
                c_new = fg * c + i * g
                h_new = o * torch.tanh(c_new)
            c = torch.where(active, c_new, c)
            h = torch.where(active, h_new, h)
            out.append(torch.where(active, h, 0.0))
            nnz_dh.append(keep.sum(-1))
        stats = {"nnz_dx": torch.stack(nnz_dx, 1), "nnz_dh": torch.stack(nnz_dh, 1), "l1_dh": l1}
        return torch.stack(out, 1), stats


#: The trainer's layer module of each cell type.
CELL_MODULES = {"gru": DeltaGRU, "lstm": DeltaLSTM}


def last_step(h: torch.Tensor, lengths) -> torch.Tensor:
    """The hidden state at each sequence's last valid step: (N, T, H) -> (N, H)."""
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    return h[torch.arange(h.shape[0]), lengths - 1]


def per_layer(value, layers: int, name: str) -> list:
    """One value for every layer, or a sequence of ``layers`` values -> a list of ``layers``."""
    if isinstance(value, (list, tuple)):
        if len(value) != layers:
            raise ValueError(f"{name}: expected {layers} values (one per layer) or one, "
                             f"got {len(value)}")
        return list(value)
    return [value] * layers


class DeltaGRUClassifier(nn.Module):
    """Stacked delta-GRU (or, with ``cell="lstm"``, delta-LSTM) layers on the accelerator, a linear head on the host (the last
    layer's h at the last valid step; with ``per_step``, at every step: a per-step regression
    model). ``num_classes`` is the head's rows: C classes or O regression outputs.

    ``hidden_size``: one H for every layer or a list (H_0, ..., H_{L-1}); ``num_layers``
    (default: the list's length, else 1); ``theta_x``/``theta_h``: one threshold for every
    layer or a list (layer l's Θx acts on its input, layer l-1's h for l > 0). Layer 0 is
    ``self.rnn`` and layer l > 0 ``self.rnn{l}``, so a one-layer model keeps the parameter
    names ``rnn.w_ih`` ... of earlier checkpoints (state dict keys ``rnn{l}.w_ih`` for l > 0).
    ``cell``: "gru" (:class:`DeltaGRU` layers) or "lstm" (:class:`DeltaLSTM`); ValueError
    otherwise.
    """

    def __init__(self, input_size: int, hidden_size, num_classes: int,
                 formats: Formats | None = None, theta_x=0.0, theta_h=0.0,
                 quantize: bool = False, num_layers: int | None = None,
                 per_step: bool = False, cell: str = "gru"):
        super().__init__()
        if cell not in CELL_MODULES:
            raise ValueError(f"cell: expected one of {', '.join(CELL_MODULES)}, got {cell!r}")
        self.per_step, self.cell = per_step, cell
        if num_layers is None:
            num_layers = len(hidden_size) if isinstance(hidden_size, (list, tuple)) else 1
        hs = [int(h) for h in per_layer(hidden_size, num_layers, "hidden_size")]
        txs = per_layer(theta_x, num_layers, "theta_x")
        ths = per_layer(theta_h, num_layers, "theta_h")
        I = input_size
        for l, H in enumerate(hs):
            setattr(self, "rnn" if l == 0 else f"rnn{l}",
                    CELL_MODULES[cell](I, H, formats, txs[l], ths[l], quantize))
            I = H
        self.num_layers = num_layers
        self.head = nn.Linear(hs[-1], num_classes, dtype=DTYPE)

    @property
    def grus(self) -> list:
        """The L :class:`DeltaGRU` (or :class:`DeltaLSTM`) layers, input first."""
        return [self.rnn] + [getattr(self, f"rnn{l}") for l in range(1, self.num_layers)]

    def set_delta(self, theta_x, theta_h, quantize: bool):
        """Thresholds (one for all layers, or one per layer) and fake quantisation on/off."""
        for g, tx, th in zip(self.grus, per_layer(theta_x, self.num_layers, "theta_x"),
                             per_layer(theta_h, self.num_layers, "theta_h")):
            g.theta_x, g.theta_h, g.quantize = float(tx), float(th), quantize

    def forward(self, x, lengths):
        """x (N, T, I), lengths (N,) -> (head output, stats). The head output is (N, C) on
        the last valid step, or with ``per_step`` (N, T, C) on every step (0 past each
        length). stats: ``nnz_dx``, ``nnz_dh`` (N, T) summed over the layers, ``l1_dh``
        summed, ``layer_nnz_dx``/``layer_nnz_dh`` lists of L (N, T) tensors."""
        h, stats = self.hidden(x, lengths)
        if self.per_step:
            valid = torch.arange(h.shape[1])[None, :] < torch.as_tensor(lengths)[:, None]
            return torch.where(valid[..., None], self.head(h), 0.0), stats
        return self.head(last_step(h, lengths)), stats

    def hidden(self, x, lengths):
        """x (N, T, I), lengths (N,) -> (the last layer's h (N, T, H_last), stats as
        :meth:`forward`)."""
        h, stats = x, {"nnz_dx": 0, "nnz_dh": 0, "l1_dh": 0, "layer_nnz_dx": [],
                       "layer_nnz_dh": []}
        for g in self.grus:
            h, st = g(h, lengths)
            for k in ("nnz_dx", "nnz_dh", "l1_dh"):
                stats[k] = stats[k] + st[k]
            stats["layer_nnz_dx"].append(st["nnz_dx"])
            stats["layer_nnz_dh"].append(st["nnz_dh"])
        return h, stats


#: The classifier under the name that says it holds either cell.
DeltaRNNClassifier = DeltaGRUClassifier


def bundle_head(ckpt: dict) -> dict:
    """The head fields of the bundle exported from a trainer checkpoint (keyword arguments of
    :class:`~drnn_hw.bundle.ModelBundle`): ``head_w`` (C, H_last), ``head_b`` (C,),
    ``classes``, ``task``, ``outputs``.

    Classification: the trained head and the class labels. Regression (``ckpt["task"]``):
    the model learned normalised targets ``(y − target_mean) / target_scale``; the exported
    head gives the targets in their own units, ``W' = target_scale · W`` (row-wise),
    ``b' = target_scale · b + target_mean``, so the host needs no extra step and every RMSE
    downstream is in the target's units.
    """
    st = ckpt["state"]
    w = st["head.weight"].detach().cpu().double().numpy()
    b = st["head.bias"].detach().cpu().double().numpy()
    if ckpt.get("task", "classification") != "regression":
        return {"head_w": w, "head_b": b, "classes": [str(c) for c in ckpt["classes"]]}
    mean = np.asarray(ckpt["target_mean"], np.float64)
    scale = np.asarray(ckpt["target_scale"], np.float64)
    return {"head_w": w * scale[:, None], "head_b": b * scale + mean, "classes": None,
            "task": "regression", "outputs": [str(o) for o in ckpt["outputs"]]}


# ---------------------------------------------------------------------------------------------
# Hardware-exact mode.

def _round_shift(v: torch.Tensor, shift: int) -> torch.Tensor:
    if shift <= 0:
        return v * float(1 << -shift)
    return torch.floor((v + float(1 << (shift - 1))) / float(1 << shift))


def _sat(v: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.clamp(v, -float(1 << (bits - 1)), float((1 << (bits - 1)) - 1))


def exact_run(bundle, x_codes, lengths=None, h0=None, per_layer: bool = False):
    """The accelerator's integer computation, in torch: returns (h, nnz_dx, nnz_dh).

    ``h`` (N, T, H_last) int64 activation codes of the last layer (0 past each length),
    ``nnz_*`` (N, T) int64 kept deltas summed over the layers. With ``per_layer``, also
    ``layer_nnz_dx``, ``layer_nnz_dh`` (N, T, L). ``h0``: None or a list of L per-layer
    initial h codes ((H_l,) or (N, H_l), or None for 0), as :func:`drnn_hw.golden.initial_state`.
    Stacked layers run layer after layer within each timestep (layer l's new h is layer l+1's
    input of the same step), written here timestep-major. An LSTM bundle (``bundle.cell``)
    runs the LSTM step of :mod:`drnn_hw.numerics` (c from 0). Independent of
    :func:`drnn_hw.golden.run` (written from the numerics specification) and bit-exact with it,
    which the tests check.
    """
    f = bundle.formats
    x = torch.as_tensor(np.asarray(x_codes, dtype=np.float64))
    N, T, _ = x.shape
    lengths = torch.as_tensor(np.full(N, T) if lengths is None else np.asarray(lengths),
                              dtype=torch.long)
    sig = torch.as_tensor(bundle.sigmoid_lut, dtype=DTYPE)
    tnh = torch.as_tensor(bundle.tanh_lut, dtype=DTYPE)
    A, WF = f.act_frac, f.w_frac
    half = float(1 << (f.lut_bits - 1))

    def narrow(m):
        return _sat(_round_shift(m, WF), f.act_bits)

    def lut(table, v, range_log2):
        idx = torch.floor(v / float(1 << lut_shift(f, range_log2))) + half
        return table[torch.clamp(idx, 0, f.lut_entries - 1).long()]

    if bundle.cell == "lstm":
        return _exact_lstm(bundle, x, lengths, h0, per_layer)
    L = len(bundle.layers)
    layers = []
    for l, ly in enumerate(bundle.layers):
        H, I = ly.hidden_size, ly.input_size
        b = torch.as_tensor(ly.bias, dtype=DTYPE)
        h = torch.zeros(N, H, dtype=DTYPE)
        if h0 is not None and h0[l] is not None:
            h = torch.as_tensor(np.broadcast_to(np.asarray(h0[l], np.float64), (N, H)).copy())
        layers.append({
            "wx": torch.as_tensor(ly.w_x, dtype=DTYPE), "wh": torch.as_tensor(ly.w_h, dtype=DTYPE),
            "m": [b[k].expand(N, H).clone() for k in range(4)],
            "x_ref": torch.zeros(N, I, dtype=DTYPE), "h_ref": torch.zeros(N, H, dtype=DTYPE),
            "h": h, "tx": ly.theta_x, "th": ly.theta_h})
    out = torch.zeros(N, T, bundle.hidden_size, dtype=DTYPE)
    nnz_dx = torch.zeros(N, T, L, dtype=torch.long)
    nnz_dh = torch.zeros(N, T, L, dtype=torch.long)
    with torch.no_grad():
        for t in range(T):
            active = (t < lengths)[:, None]
            inp = x[:, t]
            for l, s in enumerate(layers):
                wx, wh, h = s["wx"], s["wh"], s["h"]
                dx = inp - s["x_ref"]
                kx = (dx != 0) & (dx.abs() >= s["tx"]) & active
                dh = h - s["h_ref"]
                kh = (dh != 0) & (dh.abs() >= s["th"]) & active
                dx, dh = torch.where(kx, dx, 0.0), torch.where(kh, dh, 0.0)
                s["x_ref"] = torch.where(kx, inp, s["x_ref"])
                s["h_ref"] = torch.where(kh, h, s["h_ref"])
                m_r, m_z, m_nx, m_nh = s["m"]
                m_r = _sat(m_r + dx @ wx[0].T + dh @ wh[0].T, f.acc_bits)
                m_z = _sat(m_z + dx @ wx[1].T + dh @ wh[1].T, f.acc_bits)
                m_nx = _sat(m_nx + dx @ wx[2].T, f.acc_bits)
                m_nh = _sat(m_nh + dh @ wh[2].T, f.acc_bits)
                s["m"] = [m_r, m_z, m_nx, m_nh]
                r = lut(sig, narrow(m_r), f.sigmoid_range_log2)
                z = lut(sig, narrow(m_z), f.sigmoid_range_log2)
                rnh = _sat(_round_shift(r * narrow(m_nh), A), f.act_bits)
                n = lut(tnh, _sat(narrow(m_nx) + rnh, f.act_bits), f.tanh_range_log2)
                h_new = _sat(n + _round_shift(z * (h - n), A), f.act_bits)
                s["h"] = torch.where(active, h_new, h)
                nnz_dx[:, t, l], nnz_dh[:, t, l] = kx.sum(-1), kh.sum(-1)
                inp = s["h"]                       # the next layer's x_t of this step
            out[:, t] = torch.where(active, inp, 0.0)
    result = (out.to(torch.long), nnz_dx.sum(-1), nnz_dh.sum(-1))
    return result + (nnz_dx, nnz_dh) if per_layer else result


def _exact_lstm(bundle, x, lengths, h0, per_layer: bool):
    """:func:`exact_run` of an LSTM bundle (integer codes in float64 tensors; c in the cell
    format), written from the numerics docstring."""
    f = bundle.formats
    N, T, _ = x.shape
    sig = torch.as_tensor(bundle.sigmoid_lut, dtype=DTYPE)
    tnh = torch.as_tensor(bundle.tanh_lut, dtype=DTYPE)
    A, C, WF = f.act_frac, f.cell.frac, f.w_frac
    half = float(1 << (f.lut_bits - 1))

    def narrow(m):
        return _sat(_round_shift(m, WF), f.act_bits)

    def lut(table, v, range_log2, frac=A):
        idx = torch.floor(v / float(1 << (lut_shift(f, range_log2) + frac - A))) + half
        return table[torch.clamp(idx, 0, f.lut_entries - 1).long()]

    def cell_of(v):
        return _sat(v, f.cell.bits)

    L = len(bundle.layers)
    layers = []
    for l, ly in enumerate(bundle.layers):
        H, I = ly.hidden_size, ly.input_size
        h = torch.zeros(N, H, dtype=DTYPE)
        if h0 is not None and h0[l] is not None:
            h = torch.as_tensor(np.broadcast_to(np.asarray(h0[l], np.float64), (N, H)).copy())
        layers.append({
            "wx": torch.as_tensor(ly.w_x, dtype=DTYPE), "wh": torch.as_tensor(ly.w_h, dtype=DTYPE),
            "m": torch.as_tensor(ly.bias, dtype=DTYPE)[None].expand(N, 4, H).clone(),
            "x_ref": torch.zeros(N, I, dtype=DTYPE), "h_ref": torch.zeros(N, H, dtype=DTYPE),
            "h": h, "c": torch.zeros(N, H, dtype=DTYPE), "tx": ly.theta_x, "th": ly.theta_h})
    out = torch.zeros(N, T, bundle.hidden_size, dtype=DTYPE)
    nnz_dx = torch.zeros(N, T, L, dtype=torch.long)
    nnz_dh = torch.zeros(N, T, L, dtype=torch.long)
    with torch.no_grad():
        for t in range(T):
            active = (t < lengths)[:, None]
            inp = x[:, t]
            for l, s in enumerate(layers):
                wx, wh, h, c = s["wx"], s["wh"], s["h"], s["c"]
                dx = inp - s["x_ref"]
                kx = (dx != 0) & (dx.abs() >= s["tx"]) & active
                dh = h - s["h_ref"]
                kh = (dh != 0) & (dh.abs() >= s["th"]) & active
                dx, dh = torch.where(kx, dx, 0.0), torch.where(kh, dh, 0.0)
                s["x_ref"] = torch.where(kx, inp, s["x_ref"])
                s["h_ref"] = torch.where(kh, h, s["h_ref"])
                m = _sat(s["m"] + torch.einsum("ghi,ni->ngh", wx, dx)
                         + torch.einsum("ghk,nk->ngh", wh, dh), f.acc_bits)
                s["m"] = m
                i = lut(sig, narrow(m[:, 0]), f.sigmoid_range_log2)
                fg = lut(sig, narrow(m[:, 1]), f.sigmoid_range_log2)
                g = lut(tnh, narrow(m[:, 2]), f.tanh_range_log2)
                o = lut(sig, narrow(m[:, 3]), f.sigmoid_range_log2)
                c_new = cell_of(cell_of(_round_shift(fg * c, A))
                                + cell_of(_round_shift(i * g, 2 * A - C)))
                tc = lut(tnh, c_new, f.tanh_range_log2, frac=C)
                h_new = _sat(_round_shift(o * tc, A), f.act_bits)
                s["c"] = torch.where(active, c_new, c)
                s["h"] = torch.where(active, h_new, h)
                nnz_dx[:, t, l], nnz_dh[:, t, l] = kx.sum(-1), kh.sum(-1)
                inp = s["h"]
            out[:, t] = torch.where(active, inp, 0.0)
    result = (out.to(torch.long), nnz_dx.sum(-1), nnz_dh.sum(-1))
    return result + (nnz_dx, nnz_dh) if per_layer else result
