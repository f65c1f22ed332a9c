"""Fixed-point helpers for the gateware: the HDL mirror of :mod:`drnn_hw.numerics`.

Plain functions that build Amaranth expressions (no state, no multipliers): saturation,
round-half-up shifts, LUT indexing. Every narrowing in the core goes through these so the
gateware follows the written specification in one place. Also the blocks' shared check of
their constructor parameters (:func:`refuse`, :func:`check_positive`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Elaboratable, Mux, Value, unsigned

from .numerics import Formats, lut_shift

__all__ = ["saturate", "round_shift", "round_saturate", "add_rounded", "add_two_rounded",
           "narrow_acc", "lut_index",
           "saturated_lut_index", "lut_range_inside_act", "select_onehot", "refuse",
           "check_positive", "times_const"]


def refuse(owner, message: str) -> ValueError:
    """The ValueError a block's (or a signature's) constructor raises, ``raise refuse(self,
    ...)``, for a parameter it cannot build with; ``message`` names the parameter.

    A half-built component is marked so that Amaranth does not add, when it is collected, a
    warning that it was "created but never used": the error says everything.
    """
    if isinstance(owner, Elaboratable):
        owner._MustUse__silence = True
    return ValueError(message)


def check_positive(owner, **values: int) -> None:
    """:func:`refuse` the first of ``values`` (parameter name = value) that is < 1."""
    for name, value in values.items():
        if value < 1:
            raise refuse(owner, f"{name} must be ≥ 1, got {value}")


def saturate(v, bits: int):
    """Clamp the signed expression ``v`` to a ``bits``-wide signed value (result ``signed(bits)``).

    Built from bit tests, not comparisons: ``v`` fits when its bits from ``bits - 1`` up are all
    equal (all copies of the sign), which is a LUT tree rather than a carry chain.
    """
    v = Value.cast(v)
    if not v.shape().signed:
        v = Cat(v, Const(0, 1)).as_signed()
    if len(v) <= bits:       # fits already: sign-extend to exactly ``bits``
        return Cat(v, v[-1].replicate(bits - len(v))).as_signed()
    top = v[bits - 1:]
    fits = top.all() | ~top.any()
    limit = Mux(v[-1], Const(1 << (bits - 1), bits), Const((1 << (bits - 1)) - 1, bits))
    return Mux(fits, v[:bits], limit).as_signed()


def round_shift(v, shift: int):
    """``floor(v / 2**shift + 1/2)`` for a signed expression: add half an LSB, shift right."""
    if shift <= 0:
        return v << (-shift)
    return (v + (1 << (shift - 1))) >> shift


def add_rounded(v, shift: int, a):
    """``round_shift(v, shift) + a`` (``shift`` ≥ 1; v and a signed) as one adder of ``a``'s
    width, not of v's.

    ``(v + 2**(shift-1)) >> shift`` is ``(v >> shift) + c`` with c = bit ``shift - 1`` of v;
    the sum with ``a`` takes c as the carry into an extra low bit of both operands:
    ``((2·(v >> shift) + c) + (2·a + c)) >> 1``.
    """
    v, a = Value.cast(v), Value.cast(a)
    c = v[shift - 1]
    return (Cat(c, v[shift:]).as_signed() + Cat(c, a).as_signed()) >> 1


def add_two_rounded(a, ra, b, rb, width: int):
    """``a + ra + b + rb`` (``a``, ``b`` signed; ``ra``, ``rb`` one bit each: two values
    rounded half up, each as its floor and its rounding bit) as one adder, modulo
    ``2**width`` (result ``signed(width)``, which must hold the sum).

    One adder takes one carry in. A carry-save layer adds ``rb`` first, a LUT per bit and no
    carry chain (``a + b + rb = (a ^ b ^ rb) + 2·maj(a, b, rb)``, with ``rb`` at bit 0 only),
    and ``ra`` is the carry into an extra low bit of both operands, as in
    :func:`add_rounded`.
    """
    def extend(v):
        v = Value.cast(v)
        if not v.shape().signed:
            v = Cat(v, Const(0, 1)).as_signed()
        return Cat(v, v[-1].replicate(max(0, width - len(v))))[:width]

    a, b = extend(a), extend(b)
    r = Cat(Value.cast(rb)[0], Const(0, width - 1))
    partial = a ^ b              # the carry-save layer: its sum bits (with rb) and carries
    carry = Cat(Const(0, 1), ((a & b) | (partial & r))[:width - 1])
    total = Cat(ra, partial ^ r).as_signed() + Cat(ra, carry).as_signed()
    return (total >> 1)[:width].as_signed()


def narrow_acc(m, fmts: Formats):
    """An accumulator value to the activation format (round half up, saturate), as
    :func:`round_saturate` (no carry chain across the accumulator)."""
    if fmts.w_frac <= 0:
        return saturate(round_shift(m, fmts.w_frac), fmts.act_bits)
    return round_saturate(m, fmts.w_frac, fmts.w_frac, fmts.act_bits)


def _index_of_shifted(u, fmts: Formats):
    """``clamp(u + 2**(L-1), 0, 2**L - 1)`` as ``saturate(u, L)`` with its sign bit flipped."""
    return (saturate(u, fmts.lut_bits).as_unsigned() ^ (1 << (fmts.lut_bits - 1)))[:fmts.lut_bits]


def lut_index(v, fmts: Formats, range_log2: int):
    """Table index of an activation-format value: arithmetic shift, offset, clamp."""
    return _index_of_shifted(v >> lut_shift(fmts, range_log2), fmts)


def lut_range_inside_act(fmts: Formats, range_log2: int) -> bool:
    """Whether saturating to the activation format can never change a table index."""
    shift = lut_shift(fmts, range_log2)
    half, top = 1 << (fmts.lut_bits - 1), fmts.lut_entries - 1
    return (fmts.act.max >> shift) + half >= top and (fmts.act.min >> shift) + half <= 0


def saturated_lut_index(v, fmts: Formats, range_log2: int, pre_shift: int = 0,
                        rounded: bool = False):
    """``lut_index(saturate(round_shift(v, pre_shift), act_bits))``, with fewer adders.

    The index is monotonic in its input and clamps at both ends; when the table's input range
    lies inside the activation range (the defaults: ±8 and ±4 against ±128), saturating to
    act_bits first cannot change it, and the two shifts merge into one. Otherwise this is the
    plain composition. ``rounded``: ``v`` already holds the half LSB of the rounding.

    The same argument covers values wider than ``acc_bits``: narrowing a delta memory row
    before or after its saturation to acc_bits gives the same activation value, because
    ``acc_bits >= act_bits + w_bits`` puts the acc limits beyond the act limits.
    """
    if not lut_range_inside_act(fmts, range_log2):
        rnd = v if rounded or pre_shift <= 0 else v + (1 << (pre_shift - 1))
        return lut_index(saturate(rnd >> pre_shift, fmts.act_bits), fmts, range_log2)
    shift = pre_shift + lut_shift(fmts, range_log2)
    if rounded or pre_shift <= 0:
        return _index_of_shifted(v >> shift, fmts)
    if shift < pre_shift:
        return _index_of_shifted((v + (1 << (pre_shift - 1))) >> shift, fmts)
    return _rounded_index(Value.cast(v), pre_shift, shift, fmts)


def _rounded_index(v, half_bit: int, shift: int, fmts: Formats):
    """``_index_of_shifted((v + 2**(half_bit-1)) >> shift)``: :func:`round_saturate` to the
    table's index width, sign bit flipped."""
    bits = fmts.lut_bits
    return (round_saturate(v, half_bit, shift, bits).as_unsigned() ^ (1 << (bits - 1)))[:bits]


def round_saturate(v, half_bit: int, shift: int, bits: int):
    """``saturate((v + 2**(half_bit-1)) >> shift, bits)`` without a carry chain across ``v``
    (``1 ≤ half_bit ≤ shift``; result ``signed(bits)``).

    With ``v = q·2**shift + r``, adding the half carries into bit ``shift`` exactly when the bits
    ``r[half_bit-1 : shift]`` are all ones, so the shifted sum is ``q + c`` (c that AND); and
    ``saturate(q + c, bits)`` is q's low bits plus c when q fits (held at the top code, where
    the increment would wrap), the top code when q lies above, the bottom code when q lies
    below (q + c is then at most the bottom code). The wide add becomes an AND, a sign test
    over q's top bits and a ``bits``-wide increment: a few LUT levels instead of a carry chain
    across a whole delta memory row (the AP's narrowing and σ addresses, ULX3S timing).
    """
    v = Value.cast(v)
    if not v.shape().signed:
        v = Cat(v, Const(0, 1)).as_signed()
    if len(v) <= shift + 1:
        # Nothing of q above its sign bit: the plain form is as short.
        return saturate((v + (1 << (half_bit - 1))) >> shift, bits)
    c = v[half_bit - 1:shift].all()
    q = v[shift:]
    if len(q) < bits + 1:
        q = Cat(q, q[-1].replicate(bits + 1 - len(q)))
    top = q[bits - 1:]
    fits = top.all() | ~top.any()
    low = q[:bits]
    inc = Mux(low == (1 << (bits - 1)) - 1, low, (low + c)[:bits])
    limit = Mux(q[-1], Const(1 << (bits - 1), bits), Const((1 << (bits - 1)) - 1, bits))
    return Mux(fits, inc, limit).as_signed()


def select_onehot(onehot, values, shape):
    """The element of ``values`` picked by the one-hot ``onehot`` (0 when no bit is set).

    An OR of AND-masked values: cheaper than an index mux when the select is one-hot already.
    """
    shape = shape if not isinstance(shape, int) else unsigned(shape)
    acc = Const(0, unsigned(shape.width))
    for i, v in enumerate(values):
        acc = acc | Mux(onehot[i], v.as_unsigned(), 0)
    return acc[:shape.width].as_signed() if shape.signed else acc[:shape.width]



def times_const(v, c: int):
    """``v · c`` for a constant ``c`` ≥ 0 as a sum of shifted copies of ``v``: adders only
    (a ``*`` by a constant may be mapped to a DSP multiplier, which a run-time core's weight
    addresses must not take from the MxV)."""
    if c < 0:
        raise ValueError(f"times_const needs c ≥ 0, got {c}")
    terms = [v << k for k in range(c.bit_length()) if c >> k & 1]
    if not terms:
        return Const(0, 1)
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total
