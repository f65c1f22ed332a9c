"""The core's register file behind the CSR bus; the map and bit layouts are the contract in
:mod:`drnn_hw.contract` (word addresses, access, layouts of SIZES, SHAPE, CTRL and STATUS)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .contract import (ID_VALUE, REGISTERS, CSRSignature, CtrlLayout, Register, ShapeLayout,
                       SizesLayout, StatusLayout)

__all__ = ["RegisterFile", "CSRSignature", "REGISTERS", "ID_VALUE"]


class RegisterFile(wiring.Component):
    """The register file: thresholds, control strobes, and the read-only sizes, shape and
    performance counters (map in :mod:`drnn_hw.contract`).

    Parameters
    ----------
    inputs, hidden : int
        I and H, shown in SIZES (each < 2**16).
    rows, columns, scan : int
        P, K, E, shown in SHAPE (P < 2**16, K < 16, E < 256).
    act_bits : int
        Width of the threshold registers (the activation format).
    theta_x, theta_h : int
        Reset values of THETA_X and THETA_H (codes, 0 ≤ code < 2**act_bits).

    Raises
    ------
    ValueError
        Naming the parameter that does not fit its register field.

    Ports
    -----
    csr : In(CSRSignature)
    theta_x, theta_h : Out(act_bits)
        The threshold registers (reset values from the bundle).
    reset_state, clear_steps, clear_error : Out(1)
        One-cycle strobes from a CTRL write.
    busy, frame_error, reset_pending, cycles_last, nnz_dx_last, nnz_dh_last, steps : In
        Status values shown in the read-only registers.
    """

    def __init__(self, *, inputs: int, hidden: int, rows: int, columns: int, scan: int,
                 act_bits: int, theta_x: int, theta_h: int):
        for name, value, bits in (("inputs", inputs, 16), ("hidden", hidden, 16),
                                  ("rows", rows, 16), ("columns", columns, 4), ("scan", scan, 8),
                                  ("theta_x", theta_x, act_bits), ("theta_h", theta_h, act_bits)):
            if not 0 <= value < 1 << bits:
                raise ValueError(f"{name} = {value} does not fit its {bits}-bit register field")
        self.sizes = SizesLayout.const({"inputs": inputs, "hidden": hidden}).as_value().value
        self.shape = ShapeLayout.const({"rows": rows, "columns": columns,
                                        "scan": scan}).as_value().value
        self.act_bits = act_bits
        self.theta_init = (theta_x, theta_h)
        super().__init__({
            "csr": In(CSRSignature),
            "theta_x": Out(act_bits, init=theta_x),
            "theta_h": Out(act_bits, init=theta_h),
            "reset_state": Out(1),
            "clear_steps": Out(1),
            "clear_error": Out(1),
            "busy": In(1),
            "frame_error": In(1),
            "reset_pending": In(1),
            "cycles_last": In(32),
            "nnz_dx_last": In(16),
            "nnz_dh_last": In(16),
            "steps": In(32),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.csr
        ctrl = CtrlLayout(bus.w_data[:CtrlLayout.size])

        with m.If(bus.w_stb):
            with m.Switch(bus.addr):
                with m.Case(Register.CTRL):
                    m.d.comb += [self.reset_state.eq(ctrl.reset_state),
                                 self.clear_steps.eq(ctrl.clear_steps),
                                 self.clear_error.eq(ctrl.clear_error)]
                with m.Case(Register.THETA_X):
                    m.d.sync += self.theta_x.eq(bus.w_data)
                with m.Case(Register.THETA_H):
                    m.d.sync += self.theta_h.eq(bus.w_data)

        status = Signal(StatusLayout)
        m.d.comb += [status.busy.eq(self.busy), status.frame_error.eq(self.frame_error),
                     status.reset_pending.eq(self.reset_pending)]

        read = Signal(32)
        with m.Switch(bus.addr):
            values = {
                Register.ID: ID_VALUE, Register.SIZES: self.sizes, Register.SHAPE: self.shape,
                Register.STATUS: status.as_value(),
                Register.THETA_X: self.theta_x, Register.THETA_H: self.theta_h,
                Register.CYCLES_LAST: self.cycles_last, Register.NNZ_DX_LAST: self.nnz_dx_last,
                Register.NNZ_DH_LAST: self.nnz_dh_last, Register.STEPS: self.steps,
            }
            for reg, value in values.items():
                with m.Case(reg):
                    m.d.comb += read.eq(value)
        with m.If(bus.r_stb):
            m.d.sync += bus.r_data.eq(read)
        return m
