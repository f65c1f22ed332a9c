"""Fake quantisation for quantisation-aware training, following :mod:`drnn_hw.numerics`.

Forward: exactly the hardware's conversion, ``clamp(floor(v * 2**f + 1/2), min, max) / 2**f``
(round half up, saturate). Backward: straight-through for the rounding (gradient 1), and the
gradient of the clamp for the saturation (0 where the value saturated), so training learns to
stay inside the format instead of being pushed further out.

The LUT activations use the hardware tables in the forward pass and the derivative of the true
function in the backward pass. In float64 every value the forward pass produces is a multiple
of the format's LSB far below 2**53, so the QAT forward pass computes the same numbers as the
integer hardware (apart from accumulator saturation, which :mod:`drnn_train.model`'s exact mode
models and which never triggers for trained weights).
"""

from __future__ import annotations

import torch

from drnn_hw.numerics import Fixed, Formats, lut_shift

__all__ = ["fake_quant", "fake_quant_codes", "round_half_up", "lut_activation"]


def round_half_up(v: torch.Tensor) -> torch.Tensor:
    return torch.floor(v + 0.5)


def fake_quant(v: torch.Tensor, fmt: Fixed) -> torch.Tensor:
    """Quantise to ``fmt`` in the forward pass; straight-through rounding, clamp gradient."""
    return fake_quant_codes(v, 1 << fmt.frac, fmt.min, fmt.max)


def fake_quant_codes(v: torch.Tensor, scale: int, qmin: int, qmax: int) -> torch.Tensor:
    """:func:`fake_quant` with the format given as LSB count per unit and code range."""
    clamped = torch.clamp(v, qmin / scale, qmax / scale)     # gradient 0 where saturated
    q = torch.clamp(round_half_up(v * scale), qmin, qmax) / scale
    return clamped + (q - clamped).detach()


def lut_activation(v: torch.Tensor, lut: torch.Tensor, fmts: Formats, range_log2: int,
                   fn, frac: int | None = None) -> torch.Tensor:
    """``fn`` through the hardware LUT: ``v`` must already lie on the activation grid (or,
    with ``frac``, on the grid of ``frac`` fractional bits: the LSTM's cell format, indexed as
    :func:`drnn_hw.numerics.lut_index_cell`).

    ``lut`` holds the integer table entries (as a float tensor). Forward: the table value;
    backward: the derivative of ``fn``.
    """
    one = float(fmts.one)
    frac = fmts.act_frac if frac is None else frac
    codes = torch.round(v.detach() * float(1 << frac))   # exact: v is on the grid
    shift = lut_shift(fmts, range_log2) + frac - fmts.act_frac
    idx = torch.floor(codes / float(1 << shift)) + (1 << (fmts.lut_bits - 1))
    idx = torch.clamp(idx, 0, fmts.lut_entries - 1).long()
    table = lut[idx] / one
    smooth = fn(v)
    return smooth + (table - smooth).detach()
