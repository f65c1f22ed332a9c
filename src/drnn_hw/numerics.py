"""The written specification of the accelerator's arithmetic.

Everything the hardware computes is defined here as integer operations on NumPy arrays; the
golden model (:mod:`drnn_hw.golden`), the trainer's exact mode and the gateware all follow it.

Formats (all two's complement, ``Qm.f`` meaning ``f`` fractional bits):

* **activation** ``act``: inputs x, hidden state h, references x̂/ĥ, LUT outputs, AP operands.
  Default Q8.8 in 16 bits, as in DeltaRNN.
* **delta**: Δ = x − x̂ is kept *exact*, one bit wider than ``act`` (17 bits by default). A
  saturated delta would leave the delta memory permanently off from W·x, since the reference is
  updated to x regardless; one more multiplier input bit is free on 18×18 DSPs.
* **weight** ``w``: default Q2.6 in 8 bits. 8-bit weights halve weight BRAM against 16 bits at a
  measured cost within the accuracy target (see README, "Weight precision").
* **accumulator** ``acc``: the four delta memories M_r, M_z, M_nx, M_nh and the biases. Its
  fractional bits are ``act.frac + w.frac`` so products are accumulated exactly (no rounding in
  the MxV). Stored width ``acc_bits`` (default 32). Within one timestep the hardware accumulates
  in ``acc_bits`` plus guard bits (:func:`accumulator_guard_bits`) so the sum is exact and order
  independent; at the end of every timestep each memory is saturated back to ``acc_bits``.

Rounding: one mode everywhere, **round half up** (add half an LSB, then arithmetic shift right:
``floor(v / 2**s + 1/2)``). Float-to-fixed conversion uses the same rule.

Saturation: **every narrowing saturates** to the target width (never wraps).

Activation pipeline per hidden unit j (all integers, ``A = act.frac``):

    mr  = narrow(M_r[j]),  mz = narrow(M_z[j])           # acc -> act: round + saturate
    mnx = narrow(M_nx[j]), mnh = narrow(M_nh[j])
    r   = SIGMOID_LUT[index(mr)],  z = SIGMOID_LUT[index(mz)]      # in [0, 2**A]
    rnh = sat_act(round_shift(r * mnh, A))
    pre = sat_act(mnx + rnh)
    n   = TANH_LUT[index(pre)]                                    # in [-2**A, 2**A]
    h'  = sat_act(n + round_shift(z * (h - n), A))                # = (1-z) n + z h

**LSTM** (``cell = "lstm"`` in the bundle; PyTorch's ``nn.LSTM`` convention, gates i, f, g, o,
states c and h). Four delta memories M_i, M_f, M_g, M_o in the accumulator format, each starting
from its bias sum (b_i* + b_h*) and accumulating ``W_x·Δx + W_h·Δh`` exactly as the GRU's do;
the cell state c is kept in the **cell format** ``cell`` (:attr:`Formats.cell`), C = ``cell.frac``
fractional bits. Per hidden unit j (integers; ``A = act.frac``)::

    mi = narrow(M_i[j]), mf = narrow(M_f[j]), mg = narrow(M_g[j]), mo = narrow(M_o[j])
    i  = SIGMOID_LUT[index(mi)],  f = SIGMOID_LUT[index(mf)]        # act codes in [0, 2**A]
    g  = TANH_LUT[index(mg)],     o = SIGMOID_LUT[index(mo)]        # g in [-2**A, 2**A]
    fc = sat_cell(round_shift(f * c, A))                            # A + C frac -> C
    ig = sat_cell(round_shift(i * g, 2*A - C))                      # 2A frac    -> C
    c' = sat_cell(fc + ig)
    tc = TANH_LUT[cell_index(c')]                                   # tanh(c'), act code
    h' = sat_act(round_shift(o * tc, A))                            # 2A frac    -> A

Each product is rounded once (round half up) and saturated; the sum c' saturates too (fc and
ig cannot overflow on their own, |fc| ≤ |c| and |ig| ≤ 2**C, but every narrowing saturates by
rule). ``cell_index`` is the LUT index of a cell-format value: the same bins, reached with one
arithmetic shift of ``C − A`` more bits, ``clamp((c >> (shift + C − A)) + 2**(lut_bits-1), 0,
2**lut_bits − 1)`` (:func:`lut_index_cell`): ``floor(floor(c / 2**(C−A)) / 2**shift) =
floor(c / 2**(shift + C − A))``, so it is the index of c floored to the activation grid, with no
intermediate narrowing (and so no saturation) of c; the LUT error bound holds for every real
input of a bin, so it holds for every cell code.

Why c has its own format. The cell format is ``Q(act_bits − act_frac).(act_frac + CELL_EXTRA_FRAC)``
(:data:`CELL_EXTRA_FRAC` = 2; Q8.10 in 18 bits by default): the activation's integer range and
two more fractional bits.

* *Range.* Unlike h (|h| ≤ 1: o and tanh are within [−1, 1]), c is a sum of up to t terms i·g of
  magnitude ≤ 1 (|c_t| ≤ |c_{t−1}| + 1 since 0 ≤ f ≤ 1), so it leaves [−1, 1] within two steps
  of a saturated gate. The activation format's ±128 already covers 128 such steps; beyond
  |c| = 4 tanh(c) is the LUT's last entry anyway, and c saturating at ±128 changes h only
  through f·c of a cell that has been saturating for over a hundred steps. No wider integer
  part pays.
* *Precision.* With f ≈ 1 (a remembering cell) c' = f·c + i·g does not contract its error: the
  two roundings of each step add up to one cell LSB per step, for as long as the cell remembers
  (h's error, in contrast, is re-made every step by o·tanh(c)). Two more fractional bits make
  that rounding drift 4× smaller than at the activation LSB. Measured end to end against
  float64 torch.nn.LSTM (imported default nn.LSTM(12, 64), 3 seeds × 16 sequences of 100
  steps, ``docs/lstm/cell_format.py``): mean |h error| 0.00246 with c in Q8.8, 0.00188 in
  Q8.10, 0.00178 in Q8.12; with the forget bias raised by 3 (a remembering cell) 0.00988,
  0.00849, 0.00814 (the LUTs' errors, not c's rounding, dominate the rest). Q8.10 takes most
  of the gain, and 18 bits is still one operand of an 18×18 multiplier (the f·c product:
  f ≤ 2**A is 9 bits unsigned).

LUTs: a table of ``2**lut_bits`` entries covers ``[-2**range_log2, 2**range_log2)`` of its
act-format input; entry k holds ``round(f(lo + (k + 1/2) * step) * 2**A)`` (centre of its
bin), the index of an input v is ``clamp((v >> shift) + 2**(lut_bits-1), 0, 2**lut_bits - 1)``
with ``shift = A + range_log2 + 1 - lut_bits`` (an arithmetic shift: floor). Outputs have the
activation LSB as resolution (``2**-A``), so they resolve one activation LSB.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "Fixed",
    "Formats",
    "round_shift",
    "saturate",
    "quantize",
    "dequantize",
    "lut_index",
    "make_sigmoid_lut",
    "make_tanh_lut",
    "lut_error_bound",
    "accumulator_guard_bits",
    "CELLS",
    "CELL_EXTRA_FRAC",
    "lut_index_cell",
    "narrow_acc",
]

#: The recurrent cells a bundle may hold: the delta-GRU and the delta-LSTM (a core is generated
#: for either: :mod:`drnn_hw.core`).
CELLS = ("gru", "lstm")

#: Fractional bits the LSTM's cell format has beyond the activation format (module doc).
CELL_EXTRA_FRAC = 2


@dataclass(frozen=True)
class Fixed:
    """A signed fixed-point format: ``bits`` in total, ``frac`` of them fractional."""

    bits: int
    frac: int

    def __post_init__(self):
        if not (2 <= self.bits <= 48):
            raise ValueError(f"fixed-point width must be 2..48 bits, got {self.bits}")
        if not (0 <= self.frac < 64):
            raise ValueError(f"fractional bits must be 0..63, got {self.frac}")

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    def __str__(self):
        return f"Q{self.bits - self.frac}.{self.frac}"


@dataclass(frozen=True)
class Formats:
    """All number formats of one accelerator instance. Stored in the model bundle."""

    act_bits: int = 16
    act_frac: int = 8
    w_bits: int = 8
    w_frac: int = 6
    acc_bits: int = 32
    lut_bits: int = 10
    sigmoid_range_log2: int = 3   # sigmoid LUT covers [-8, 8)
    tanh_range_log2: int = 2      # tanh LUT covers [-4, 4)

    def __post_init__(self):
        if not (4 <= self.act_bits <= 18 and 1 <= self.act_frac < self.act_bits):
            raise ValueError(f"activation format Q{self.act_bits - self.act_frac}.{self.act_frac} "
                             "not supported (need 4..18 bits, 1..bits-1 fractional)")
        if not 2 <= self.w_bits <= 18:
            raise ValueError(f"weight format {self.w_bits} bits / {self.w_frac} fractional not "
                             "supported (need 2..18 bits)")
        if not (self.act_bits + self.w_bits <= self.acc_bits <= 48):
            raise ValueError(f"accumulator width {self.acc_bits} must be in "
                             f"{self.act_bits + self.w_bits}..48")
        # The weight may have more fractional bits than bits (negative integer bits: small
        # weights, e.g. a default-initialised nn.GRU(16, 512) within ±0.044, in at 8
        # bits). The accumulator has act_frac + w_frac fractional bits, so its integer part
        # must still cover the activation range for narrowing to saturate at the activation
        # limits: acc_bits - act_frac - w_frac >= act_bits - act_frac.
        if not 0 <= self.w_frac <= self.acc_bits - self.act_bits:
            raise ValueError(f"weight format {self.w_bits} bits / {self.w_frac} fractional not "
                             f"supported (need 0..{self.acc_bits - self.act_bits} fractional "
                             f"bits with a {self.acc_bits}-bit accumulator)")
        for name, rng in (("sigmoid", self.sigmoid_range_log2), ("tanh", self.tanh_range_log2)):
            shift = self.act_frac + rng + 1 - self.lut_bits
            if shift < 0:
                raise ValueError(f"{name} LUT with {self.lut_bits} address bits over ±2^{rng} is "
                                 "finer than the activation LSB; use fewer entries")
            if rng + 1 > self.act_bits - self.act_frac:
                raise ValueError(f"{name} LUT range ±2^{rng} exceeds the activation range")

    # Derived formats.
    @property
    def act(self) -> Fixed:
        return Fixed(self.act_bits, self.act_frac)

    @property
    def delta(self) -> Fixed:
        return Fixed(self.act_bits + 1, self.act_frac)

    @property
    def weight(self) -> Fixed:
        return Fixed(self.w_bits, self.w_frac)

    @property
    def acc(self) -> Fixed:
        return Fixed(self.acc_bits, self.act_frac + self.w_frac)

    @property
    def cell(self) -> Fixed:
        """The LSTM cell state's format: the activation's integer bits, ``act_frac +
        CELL_EXTRA_FRAC`` fractional bits (Q8.10 in 18 bits by default; module doc)."""
        return Fixed(self.act_bits + CELL_EXTRA_FRAC, self.act_frac + CELL_EXTRA_FRAC)

    @property
    def lut_entries(self) -> int:
        return 1 << self.lut_bits

    @property
    def one(self) -> int:
        """1.0 in the activation format."""
        return 1 << self.act_frac

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Formats":
        return cls(**d)


# ---------------------------------------------------------------------------------------------
# Primitive operations. Inputs are integer NumPy arrays (int64); results are int64.

def _i64(v) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype.kind not in "iu":
        raise TypeError(f"integer array expected, got {a.dtype}")
    return a.astype(np.int64, copy=False)


def round_shift(v, shift: int) -> np.ndarray:
    """Divide by ``2**shift`` rounding half up: ``floor(v / 2**shift + 1/2)``."""
    v = _i64(v)
    if shift <= 0:
        return v << (-shift)
    return (v + (1 << (shift - 1))) >> shift


def saturate(v, bits: int) -> np.ndarray:
    """Clamp to the range of a ``bits``-wide signed integer."""
    v = _i64(v)
    return np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def quantize(x, fmt: Fixed) -> np.ndarray:
    """Float to fixed point: round half up, then saturate. Rejects NaN and infinities."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot quantize NaN or infinite values")
    scaled = np.floor(x * (2.0 ** fmt.frac) + 0.5)
    lo, hi = fmt.min, fmt.max
    return np.clip(scaled, lo, hi).astype(np.int64)


def quantize_count(x, fmt: Fixed) -> int:
    """How many values of ``x`` saturate when quantized to ``fmt``."""
    x = np.asarray(x, dtype=np.float64)
    scaled = np.floor(x * (2.0 ** fmt.frac) + 0.5)
    return int(np.count_nonzero((scaled < fmt.min) | (scaled > fmt.max)))


def dequantize(v, fmt: Fixed) -> np.ndarray:
    return np.asarray(v, dtype=np.float64) * fmt.lsb


def narrow_acc(m, fmts: Formats) -> np.ndarray:
    """Accumulator value to the activation format (round half up, saturate)."""
    return saturate(round_shift(m, fmts.w_frac), fmts.act_bits)


# ---------------------------------------------------------------------------------------------
# Lookup tables.

def lut_shift(fmts: Formats, range_log2: int) -> int:
    return fmts.act_frac + range_log2 + 1 - fmts.lut_bits


def lut_index(v, fmts: Formats, range_log2: int) -> np.ndarray:
    """Table index of an activation-format input ``v`` (arithmetic shift, then clamp)."""
    v = _i64(v)
    half = 1 << (fmts.lut_bits - 1)
    return np.clip((v >> lut_shift(fmts, range_log2)) + half, 0, fmts.lut_entries - 1)


def lut_index_cell(c, fmts: Formats, range_log2: int) -> np.ndarray:
    """Table index of a cell-format input ``c`` (the LSTM's tanh(c)): the bins of
    :func:`lut_index`, reached with one arithmetic shift by ``C − A`` more bits, then the clamp.
    Equal to ``lut_index(floor(c / 2**(C − A)))`` without narrowing c (module doc)."""
    c = _i64(c)
    half = 1 << (fmts.lut_bits - 1)
    shift = lut_shift(fmts, range_log2) + fmts.cell.frac - fmts.act_frac
    return np.clip((c >> shift) + half, 0, fmts.lut_entries - 1)


def _make_lut(fn, fmts: Formats, range_log2: int) -> np.ndarray:
    n = fmts.lut_entries
    step = 2.0 ** (range_log2 + 1) / n
    centres = -(2.0 ** range_log2) + (np.arange(n) + 0.5) * step
    return quantize(fn(centres), fmts.act)


def make_sigmoid_lut(fmts: Formats) -> np.ndarray:
    return _make_lut(lambda v: 1.0 / (1.0 + np.exp(-v)), fmts, fmts.sigmoid_range_log2)


def make_tanh_lut(fmts: Formats) -> np.ndarray:
    return _make_lut(np.tanh, fmts, fmts.tanh_range_log2)


def lut_error_bound(fmts: Formats, kind: str) -> float:
    """Worst-case |LUT(v) − f(v)| over every act-format input v, in real units.

    Within the range: half a bin times the steepest slope (1/4 for sigmoid, 1 for tanh) plus
    half an output LSB of rounding. Outside it: the distance of f(±2^r) from its asymptote.
    """
    rng = fmts.sigmoid_range_log2 if kind == "sigmoid" else fmts.tanh_range_log2
    slope = 0.25 if kind == "sigmoid" else 1.0
    step = 2.0 ** (rng + 1) / fmts.lut_entries
    inside = slope * step / 2 + fmts.act.lsb / 2
    edge = 2.0 ** rng
    tail = (1.0 / (1.0 + math.exp(edge)) if kind == "sigmoid" else 1.0 - math.tanh(edge))
    return max(inside, tail + fmts.act.lsb / 2)


def accumulator_guard_bits(fmts: Formats, columns: int) -> int:
    """Extra bits the in-step accumulator needs so that ``columns`` products never overflow it.

    Start of a step: |M| ≤ 2^(acc_bits-1). Each kept delta adds at most
    |Δ|·|w| ≤ 2^(act_bits) · 2^(w_bits-1). The sum must fit a signed register.
    """
    worst = (1 << (fmts.acc_bits - 1)) + columns * (1 << fmts.act_bits) * (1 << (fmts.w_bits - 1))
    width = worst.bit_length() + 1
    return max(0, width - fmts.acc_bits)
