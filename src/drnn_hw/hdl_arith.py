"""Fixed-point helpers for the gateware: the HDL mirror of :mod:`drnn_hw.numerics`.

Plain functions that build Amaranth expressions (no state, no multipliers): saturation,
round-half-up shifts, LUT indexing. Every narrowing in the core goes through these so the
gateware follows the written specification in one place.
"""

from __future__ import annotations

from amaranth.hdl import Const, Mux, unsigned

from .numerics import Formats, lut_shift

__all__ = ["saturate", "round_shift", "narrow_acc", "lut_index", "select_onehot"]


def saturate(v, bits: int):
    """Clamp the signed expression ``v`` to a ``bits``-wide signed value (result ``signed(bits)``)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    clamped = Mux(v > hi, hi, Mux(v < lo, lo, v))
    return clamped.as_signed()[:bits].as_signed()


def round_shift(v, shift: int):
    """``floor(v / 2**shift + 1/2)`` for a signed expression: add half an LSB, shift right."""
    if shift <= 0:
        return v << (-shift)
    return (v + (1 << (shift - 1))) >> shift


def narrow_acc(m, fmts: Formats):
    """An accumulator value to the activation format (round half up, saturate)."""
    return saturate(round_shift(m, fmts.w_frac), fmts.act_bits)


def lut_index(v, fmts: Formats, range_log2: int):
    """Table index of an activation-format value: arithmetic shift, offset, clamp."""
    half = 1 << (fmts.lut_bits - 1)
    top = fmts.lut_entries - 1
    idx = (v >> lut_shift(fmts, range_log2)) + half
    clamped = Mux(idx < 0, 0, Mux(idx > top, top, idx))
    return clamped.as_unsigned()[:fmts.lut_bits]


def select_onehot(onehot, values, shape):
    """The element of ``values`` picked by the one-hot ``onehot`` (0 when no bit is set).

    An OR of AND-masked values: cheaper than an index mux when the select is one-hot already.
    """
    shape = shape if not isinstance(shape, int) else unsigned(shape)
    acc = Const(0, unsigned(shape.width))
    for i, v in enumerate(values):
        acc = acc | Mux(onehot[i], v.as_unsigned(), 0)
    return acc[:shape.width].as_signed() if shape.signed else acc[:shape.width]

