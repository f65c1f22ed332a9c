"""The core's register file behind the CSR bus. The map (word addresses, access) and the bit
layouts of SIZES, SHAPE, CTRL and STATUS are the contract's (:mod:`drnn_hw.contract`); this
module only implements them."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .contract import (ID_VALUE, REGISTERS, CSRSignature, CtrlLayout, LayerRegister, Register,
                       ShapeLayout, SizesLayout, StatusLayout, encode_word, layer_register)
from .layer_map import MAX_LAYERS

__all__ = ["RegisterFile", "CSRSignature", "REGISTERS", "ID_VALUE"]


class RegisterFile(wiring.Component):
    """The core's registers: thresholds, control strobes, and the read-only sizes, shape and
    performance counters, at the word addresses of :class:`~drnn_hw.contract.Register`.

    A write (``csr.w_stb``) takes effect at the next clock edge (THETA_X, THETA_H) or strobes
    the CTRL outputs combinationally in the same cycle; a read (``csr.r_stb``) presents the
    word on ``csr.r_data`` one cycle later. Unmapped addresses read 0 and ignore writes.

    Parameters
    ----------
    inputs : int
        I (of layer 0), shown in SIZES (0 ≤ I < 2**16).
    hidden : int or sequence of int
        H, or every layer's H_l (a stacked core of L layers); SIZES shows the last layer's,
        LAYER_SIZES each layer's (each 0 ≤ H < 2**16).
    rows, columns, scan : int
        P, K, E, shown in SHAPE (P < 2**16, K < 2**4, E < 2**8).
    cell : int, optional
        The cell's code (:data:`~drnn_hw.contract.CELL_CODES`: 0 GRU, the default; 1 LSTM),
        shown in SHAPE.
    act_bits : int
        Width of the threshold registers (the activation format's width in bits, ≥ 1).
    theta_x, theta_h : int or sequence of int
        Reset values of THETA_X and THETA_H (Θ codes, 0 ≤ code < 2**act_bits), or of every
        layer's LAYER_THETA_X / LAYER_THETA_H.

    Ports
    -----
    csr : In(CSRSignature)
        The register bus (8-bit word address, 32-bit data; see :mod:`drnn_hw.contract`).
    theta_x, theta_h : Out(ArrayLayout(unsigned(act_bits), L))
        The threshold registers of every layer, unsigned Θ codes.
    reset_state, clear_steps, clear_error : Out(1)
        One-cycle strobes, high in the cycle of a CTRL write with the matching bit set.
    h0_we : Out(1), h0_data : Out(act_bits)
        A write to H0: strobe and the written code, in the cycle of the write.
    busy, frame_error, reset_pending : In(1)
        Shown in STATUS.
    cycles_last : In(32)
        Clock cycles of the last step, shown in CYCLES_LAST.
    nnz_dx_last, nnz_dh_last : In(16)
        Kept Δx and Δh of the last step, shown in NNZ_DX_LAST and NNZ_DH_LAST.
    steps : In(32)
        Steps completed, shown in STEPS.
    layer_cycles : In(ArrayLayout(32, L)), layer_nnz_dx, layer_nnz_dh : In(ArrayLayout(16, L))
        Only with L > 1: each layer's cycles and kept deltas of the last step (with one layer,
        LAYER_CYCLES etc. show CYCLES_LAST etc.).
    weight_base : Out(32)
        Only with ``weight_base=True`` (weights in DRAM): WEIGHT_BASE, the weight image's byte
        address with bits [11:0] zero (without it the register reads 0 and ignores writes).

    Raises
    ------
    ValueError
        Naming the parameter that does not fit its register field.
    """

    def __init__(self, *, inputs: int, hidden, rows: int, columns: int, scan: int,
                 act_bits: int, theta_x, theta_h, cell: int = 0, weight_base: bool = False):
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        L = len(hidden)
        theta_x = [theta_x] * L if isinstance(theta_x, int) else list(theta_x)
        theta_h = [theta_h] * L if isinstance(theta_h, int) else list(theta_h)
        try:
            if act_bits < 1:
                raise ValueError(f"act_bits must be ≥ 1, got {act_bits}")
            if not 1 <= L <= MAX_LAYERS or len(theta_x) != L or len(theta_h) != L:
                raise ValueError(f"1 to {MAX_LAYERS} layers with a threshold each, got "
                                 f"{L} layers, {len(theta_x)} theta_x, {len(theta_h)} theta_h")
            for name, values in (("theta_x", theta_x), ("theta_h", theta_h)):
                for value in values:
                    if not 0 <= value < 1 << act_bits:
                        raise ValueError(f"{name} = {value} does not fit its {act_bits}-bit "
                                         "register")
            self.sizes = encode_word(SizesLayout, inputs=inputs, hidden=hidden[-1])
            self.layer_sizes = [encode_word(SizesLayout, inputs=i, hidden=h)
                                for i, h in zip([inputs] + hidden[:-1], hidden)]
            self.shape = encode_word(ShapeLayout, rows=rows, columns=columns, cell=cell,
                                     scan=scan)
        except ValueError:
            self._MustUse__silence = True     # never elaborated: do not warn about it
            raise
        self.act_bits, self.L = act_bits, L
        self.has_weight_base = weight_base
        self.theta_init = (theta_x, theta_h)
        theta = data.ArrayLayout(unsigned(act_bits), L)
        per_layer = {}
        if L > 1:
            per_layer = {"layer_cycles": In(data.ArrayLayout(32, L)),
                         "layer_nnz_dx": In(data.ArrayLayout(16, L)),
                         "layer_nnz_dh": In(data.ArrayLayout(16, L))}
        super().__init__({
            "csr": In(CSRSignature),
            "theta_x": Out(theta, init=theta_x),
            "theta_h": Out(theta, init=theta_h),
            "reset_state": Out(1),
            "clear_steps": Out(1),
            "clear_error": Out(1),
            "h0_we": Out(1),
            "h0_data": Out(act_bits),
            "busy": In(1),
            "frame_error": In(1),
            "reset_pending": In(1),
            "cycles_last": In(32),
            "nnz_dx_last": In(16),
            "nnz_dh_last": In(16),
            "steps": In(32),
            **per_layer,
            **({"weight_base": Out(32)} if weight_base else {}),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.csr
        ctrl = CtrlLayout(bus.w_data[:CtrlLayout.size])

        L = self.L
        m.d.comb += self.h0_data.eq(bus.w_data)
        with m.If(bus.w_stb):
            with m.Switch(bus.addr):
                with m.Case(Register.CTRL):
                    m.d.comb += [self.reset_state.eq(ctrl.reset_state),
                                 self.clear_steps.eq(ctrl.clear_steps),
                                 self.clear_error.eq(ctrl.clear_error)]
                with m.Case(Register.H0):
                    m.d.comb += self.h0_we.eq(1)
                if self.has_weight_base:
                    with m.Case(Register.WEIGHT_BASE):
                        # A 4 KB-aligned byte address (the fetch's bursts rely on it).
                        m.d.sync += self.weight_base.eq(bus.w_data & ~0xFFF)
                for l in range(L):
                    # THETA_X/THETA_H are layer 0's LAYER_THETA_X/LAYER_THETA_H.
                    x_addrs = [layer_register(l, LayerRegister.LAYER_THETA_X)]
                    h_addrs = [layer_register(l, LayerRegister.LAYER_THETA_H)]
                    if l == 0:
                        x_addrs.append(Register.THETA_X)
                        h_addrs.append(Register.THETA_H)
                    with m.Case(*x_addrs):
                        m.d.sync += self.theta_x[l].eq(bus.w_data)
                    with m.Case(*h_addrs):
                        m.d.sync += self.theta_h[l].eq(bus.w_data)

        status = Signal(StatusLayout)
        m.d.comb += [status.busy.eq(self.busy), status.frame_error.eq(self.frame_error),
                     status.reset_pending.eq(self.reset_pending)]

        read = Signal(32)
        with m.Switch(bus.addr):
            values = {
                Register.ID: ID_VALUE, Register.SIZES: self.sizes, Register.SHAPE: self.shape,
                Register.STATUS: status.as_value(),
                Register.THETA_X: self.theta_x[0], Register.THETA_H: self.theta_h[0],
                Register.CYCLES_LAST: self.cycles_last, Register.NNZ_DX_LAST: self.nnz_dx_last,
                Register.NNZ_DH_LAST: self.nnz_dh_last, Register.STEPS: self.steps,
                Register.LAYERS: L,
            }
            if self.has_weight_base:
                values[Register.WEIGHT_BASE] = self.weight_base
            for l in range(L):
                if L > 1:
                    counters = (self.layer_cycles[l], self.layer_nnz_dx[l],
                                self.layer_nnz_dh[l])
                else:
                    counters = (self.cycles_last, self.nnz_dx_last, self.nnz_dh_last)
                for reg, value in zip(
                        (LayerRegister.LAYER_SIZES, LayerRegister.LAYER_THETA_X,
                         LayerRegister.LAYER_THETA_H, LayerRegister.LAYER_CYCLES,
                         LayerRegister.LAYER_NNZ_DX, LayerRegister.LAYER_NNZ_DH),
                        (self.layer_sizes[l], self.theta_x[l], self.theta_h[l]) + counters):
                    values[layer_register(l, reg)] = value
            for reg, value in values.items():
                with m.Case(reg):
                    m.d.comb += read.eq(value)
        with m.If(bus.r_stb):
            m.d.sync += bus.r_data.eq(read)
        return m
