"""PipelinedMultiplier: ``p = a · b`` with registered operands and a registered product.

Every multiplier of the core is one of these (the MxV's, which the AP borrows). The operand
and product registers are part of the multiplier so that a DSP block can absorb them:

* on an ECP5 (``platform.family == "ecp5"``) it is one ``MULT18X18D`` with its input A/B and
  output registers enabled (all on CLK0). Without them Yosys maps ``*`` to a combinational
  MULT18X18D and the path is fabric flip-flop → routing → multiplier → routing → flip-flop,
  which is the longest in the core;
* anywhere else (simulation, Verilog for other tools) it is plain registers around ``*``;
  Yosys ``synth_xilinx`` and Vivado pack such registers into a DSP48E1 themselves.

Both have the same cycle behaviour: ``p`` two cycles after ``a``/``b``. The flip-flops start
at 0 in both (the DSP's registers are cleared by the device's global reset); nothing in the
core depends on that.

:class:`MultiplierBankSignature` is the port through which a block borrows P of these from an
MxV channel (the activation pipeline is the only borrower).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .hdl_arith import check_positive

__all__ = ["PipelinedMultiplier", "MultiplierBankSignature", "LATENCY"]

#: Cycles from the operands to the product.
LATENCY = 2
_ECP5_WIDTH = 18


class MultiplierBankSignature(wiring.Signature):
    """A bank of P borrowed multipliers, seen from the borrower (the lender takes it flipped).

    Members
    -------
    en : Out(rows)
        Bit p: the borrower drives multiplier p's operands this cycle (the lender's own are set
        aside). The borrower sets every bit alike; they are per row only so that each row's
        operand mux has its own driver, not one net across the die's DSP rows.
    a : Out(ArrayLayout(signed(a_bits), rows)); b : Out(ArrayLayout(signed(b_bits), rows))
        Two's complement operands of multiplier p = 0 .. rows-1.
    product : In(ArrayLayout(signed(a_bits + b_bits), rows))
        ``a[p] · b[p]`` (exact), :data:`LATENCY` cycles after ``en``.

    Raises ValueError naming ``rows``, ``a_bits`` or ``b_bits`` when one is < 1.
    """

    def __init__(self, rows: int, a_bits: int, b_bits: int):
        check_positive(self, rows=rows, a_bits=a_bits, b_bits=b_bits)
        self.rows, self.a_bits, self.b_bits = rows, a_bits, b_bits
        super().__init__({
            "en": Out(rows),
            "a": Out(data.ArrayLayout(signed(a_bits), rows)),
            "b": Out(data.ArrayLayout(signed(b_bits), rows)),
            "product": In(data.ArrayLayout(signed(a_bits + b_bits), rows)),
        })

    def __eq__(self, other):
        return type(other) is type(self) and \
            (self.rows, self.a_bits, self.b_bits) == (other.rows, other.a_bits, other.b_bits)

    __hash__ = None


class PipelinedMultiplier(wiring.Component):
    """``p = a · b`` with registered operands and a registered product (one DSP block).

    Parameters
    ----------
    a_bits, b_bits : int
        Widths of the two's complement operands (≥ 1). On ECP5 both ≤ 18 map to one
        MULT18X18D; wider operands fall back to the generic description.

    Ports
    -----
    a : In(signed(a_bits));  b : In(signed(b_bits))
        The operands, sampled every cycle.
    p : Out(signed(a_bits + b_bits))
        ``a · b`` (exact) of :data:`LATENCY` (= 2) cycles earlier.

    Raises
    ------
    ValueError
        ``a_bits`` or ``b_bits`` < 1 (named in the message).
    """

    def __init__(self, a_bits: int, b_bits: int):
        check_positive(self, a_bits=a_bits, b_bits=b_bits)
        self.a_bits, self.b_bits = a_bits, b_bits
        super().__init__({"a": In(signed(a_bits)), "b": In(signed(b_bits)),
                          "p": Out(signed(a_bits + b_bits))})

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "family", None) == "ecp5" and \
                max(self.a_bits, self.b_bits) <= _ECP5_WIDTH:
            self._ecp5(m)
        else:
            ra, rb = Signal(signed(self.a_bits)), Signal(signed(self.b_bits))
            m.d.sync += [ra.eq(self.a), rb.eq(self.b), self.p.eq(ra * rb)]
        return m

    def _ecp5(self, m):
        # Operands sign-extended to the 18-bit ports; the 36-bit product is exact.
        a = Cat(self.a, self.a[-1].replicate(_ECP5_WIDTH - self.a_bits))
        b = Cat(self.b, self.b[-1].replicate(_ECP5_WIDTH - self.b_bits))
        p = Signal(2 * _ECP5_WIDTH)
        ports = {f"i_A{i}": a[i] for i in range(_ECP5_WIDTH)}
        ports |= {f"i_B{i}": b[i] for i in range(_ECP5_WIDTH)}
        ports |= {f"i_C{i}": Const(0) for i in range(_ECP5_WIDTH)}
        ports |= {f"o_P{i}": p[i] for i in range(2 * _ECP5_WIDTH)}
        # Only CLK0/CE0/RST0 are connected: every register enabled above uses them, so the
        # other three sets select nothing. nextpnr-ecp5 routes each constant CLK/CE/RST pin of
        # a DSP from one fabric LUT (its A/B/C pins it ties in the tile instead); tying all
        # twelve cost 9 routed arcs per multiplier into the congested DSP rows.
        ports |= {"i_CLK0": ClockSignal(), "i_CE0": Const(1), "i_RST0": Const(0)}
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
            p_REG_PIPELINE_CLK="NONE", p_REG_INPUTC_CLK="NONE",
            p_CLK0_DIV="ENABLED", p_GSR="ENABLED", p_RESETMODE="SYNC",
            i_SIGNEDA=Const(1), i_SIGNEDB=Const(1), i_SOURCEA=Const(0), i_SOURCEB=Const(0),
            **ports)
        m.d.comb += self.p.eq(p[:self.a_bits + self.b_bits].as_signed())
