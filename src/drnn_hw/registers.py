"""The core's register file behind a minimal CSR bus (amaranth-soc style timing).

Bus (seen from the master): ``addr`` (4 bits), ``w_stb`` + ``w_data`` write in the same cycle;
``r_stb`` with ``addr`` reads, ``r_data`` is valid the next cycle.

| addr | name | access | meaning |
|---|---|---|---|
| 0 | ID | R | 0x44524E4E ("DRNN") |
| 1 | SIZES | R | I in [15:0], H in [31:16] |
| 2 | SHAPE | R | P in [15:0], K in [19:16], E in [31:24] |
| 3 | CTRL | W | bit0 RESET_STATE, bit1 CLEAR_STEPS, bit2 CLEAR_ERROR (strobes) |
| 4 | STATUS | R | bit0 BUSY, bit1 FRAME_ERROR (sticky), bit2 RESET_PENDING |
| 5 | THETA_X | RW | Δx threshold code (activation format, unsigned) |
| 6 | THETA_H | RW | Δh threshold code |
| 7 | CYCLES_LAST | R | cycles of the last step |
| 8 | NNZ_DX_LAST | R | kept Δx of the last step |
| 9 | NNZ_DH_LAST | R | kept Δh of the last step |
| 10 | STEPS | R | steps completed since reset / CLEAR_STEPS |

Other addresses read 0 and ignore writes.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CSRSignature", "RegisterFile", "REGISTERS", "ID_VALUE"]

ID_VALUE = 0x44524E4E

#: name -> (word address, access)
REGISTERS = {
    "ID": (0, "R"), "SIZES": (1, "R"), "SHAPE": (2, "R"), "CTRL": (3, "W"),
    "STATUS": (4, "R"), "THETA_X": (5, "RW"), "THETA_H": (6, "RW"), "CYCLES_LAST": (7, "R"),
    "NNZ_DX_LAST": (8, "R"), "NNZ_DH_LAST": (9, "R"), "STEPS": (10, "R"),
}

#: The bus, seen from the master (the core takes it as ``In(CSRSignature)``).
CSRSignature = wiring.Signature({
    "addr": Out(4), "r_stb": Out(1), "r_data": In(32), "w_stb": Out(1), "w_data": Out(32),
})


class RegisterFile(wiring.Component):
    """Ports
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
        self.sizes = (hidden << 16) | inputs
        self.shape = (scan << 24) | (columns << 16) | rows
        self.act_bits = act_bits
        self.theta_init = (theta_x, theta_h)
        if not (inputs < 1 << 16 and hidden < 1 << 16 and rows < 1 << 16 and scan < 1 << 8):
            raise ValueError("sizes do not fit the SIZES/SHAPE registers")
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
        A = REGISTERS

        with m.If(bus.w_stb):
            with m.Switch(bus.addr):
                with m.Case(A["CTRL"][0]):
                    m.d.comb += [self.reset_state.eq(bus.w_data[0]),
                                 self.clear_steps.eq(bus.w_data[1]),
                                 self.clear_error.eq(bus.w_data[2])]
                with m.Case(A["THETA_X"][0]):
                    m.d.sync += self.theta_x.eq(bus.w_data)
                with m.Case(A["THETA_H"][0]):
                    m.d.sync += self.theta_h.eq(bus.w_data)

        read = Signal(32)
        with m.Switch(bus.addr):
            values = {
                "ID": ID_VALUE, "SIZES": self.sizes, "SHAPE": self.shape,
                "STATUS": self.busy | (self.frame_error << 1) | (self.reset_pending << 2),
                "THETA_X": self.theta_x, "THETA_H": self.theta_h,
                "CYCLES_LAST": self.cycles_last, "NNZ_DX_LAST": self.nnz_dx_last,
                "NNZ_DH_LAST": self.nnz_dh_last, "STEPS": self.steps,
            }
            for name, value in values.items():
                with m.Case(A[name][0]):
                    m.d.comb += read.eq(value)
        with m.If(bus.r_stb):
            m.d.sync += bus.r_data.eq(read)
        return m
