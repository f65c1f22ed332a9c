"""The core's register file behind the CSR bus. The map (word addresses, access) and the bit
layouts of SIZES, SHAPE, CTRL and STATUS are the contract's (:mod:`drnn_hw.contract`); this
module only implements them."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .contract import (ID_VALUE, REGISTERS, CSRSignature, CtrlLayout, Register, ShapeLayout,
                       SizesLayout, StatusLayout, encode_word)

__all__ = ["RegisterFile", "CSRSignature", "REGISTERS", "ID_VALUE"]


class RegisterFile(wiring.Component):
    """The core's registers: thresholds, control strobes, and the read-only sizes, shape and
    performance counters, at the word addresses of :class:`~drnn_hw.contract.Register`.

    A write (``csr.w_stb``) takes effect at the next clock edge (THETA_X, THETA_H) or strobes
    the CTRL outputs combinationally in the same cycle; a read (``csr.r_stb``) presents the
    word on ``csr.r_data`` one cycle later. Unmapped addresses read 0 and ignore writes.

    Parameters
    ----------
    inputs, hidden : int
        I and H, shown in SIZES (each 0 ≤ n < 2**16).
    rows, columns, scan : int
        P, K, E, shown in SHAPE (P < 2**16, K < 2**4, E < 2**8).
    act_bits : int
        Width of the threshold registers (the activation format's width in bits, ≥ 1).
    theta_x, theta_h : int
        Reset values of THETA_X and THETA_H (Θ codes, 0 ≤ code < 2**act_bits).

    Ports
    -----
    csr : In(CSRSignature)
        The register bus (4-bit word address, 32-bit data; see :mod:`drnn_hw.contract`).
    theta_x, theta_h : Out(act_bits)
        The threshold registers, unsigned Θ codes.
    reset_state, clear_steps, clear_error : Out(1)
        One-cycle strobes, high in the cycle of a CTRL write with the matching bit set.
    busy, frame_error, reset_pending : In(1)
        Shown in STATUS.
    cycles_last : In(32)
        Clock cycles of the last step, shown in CYCLES_LAST.
    nnz_dx_last, nnz_dh_last : In(16)
        Kept Δx and Δh of the last step, shown in NNZ_DX_LAST and NNZ_DH_LAST.
    steps : In(32)
        Steps completed, shown in STEPS.

    Raises
    ------
    ValueError
        Naming the parameter that does not fit its register field.
    """

    def __init__(self, *, inputs: int, hidden: int, rows: int, columns: int, scan: int,
                 act_bits: int, theta_x: int, theta_h: int):
        try:
            if act_bits < 1:
                raise ValueError(f"act_bits must be ≥ 1, got {act_bits}")
            for name, value in (("theta_x", theta_x), ("theta_h", theta_h)):
                if not 0 <= value < 1 << act_bits:
                    raise ValueError(f"{name} = {value} does not fit its {act_bits}-bit "
                                     "register")
            self.sizes = encode_word(SizesLayout, inputs=inputs, hidden=hidden)
            self.shape = encode_word(ShapeLayout, rows=rows, columns=columns, scan=scan)
        except ValueError:
            self._MustUse__silence = True     # never elaborated: do not warn about it
            raise
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
