"""The core's register file behind the CSR bus. The map (word addresses, access) and the bit
layouts of SIZES, SHAPE, CTRL and STATUS are the contract's (:mod:`drnn_hw.contract`); this
module only implements them."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from amaranth.hdl import Array, Cat

from .contract import (ID_VALUE, REGISTERS, CountsLayout, CSRSignature, CtrlLayout,
                       Formats0Layout, Formats1Layout, KeptLayout, LayerRegister,
                       LoadAddrLayout,
                       MaximaLayout, Register, ShapeLayout, SizesLayout, StatusLayout,
                       encode_word, layer_register, load_signature)
from .layer_map import MAX_LAYERS, LayerDescriptor, descriptor_values

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
    prescan_last : In(32)
        Only with ``prescan`` (a core with the step overlap): cycles the last step's scan
        started before its cycle 0, shown in PRESCAN_LAST (which reads 0 otherwise).
    layer_cycles : In(ArrayLayout(32, L)), layer_nnz_dx, layer_nnz_dh : In(ArrayLayout(16, L))
        Only with L > 1: each layer's cycles and kept deltas of the last step (with one layer,
        LAYER_CYCLES etc. show CYCLES_LAST etc.).
    desc : Out(ArrayLayout(LayerDescriptor, L))
        The layer descriptors: constants (``descriptors``), or with ``runtime`` the
        LAYER_SIZES / LAYER_COUNTS / LAYER_H_COLUMN registers.
    layers : Out(range(1, L + 1))
        The number of layers a step runs: L, or with ``runtime`` the LAYERS register.
    load : Out(load_signature(load_bits))
        Only with ``runtime``: a memory word assembled from LOAD_DATA writes, strobed
        (``we``) the cycle after its last part was written (see :mod:`drnn_hw.contract`).

    Further parameters (all keyword): ``descriptors`` (the reset values of the layer
    descriptors, :func:`~drnn_hw.layer_map.descriptor_values`; by default the sizes'),
    ``maxima`` ((I, H, L) of the layout, shown in MAXIMA; by default the sizes'), ``formats``
    (shown in FORMATS0/1), ``runtime`` (writable descriptors, LAYERS, and the load port),
    ``load_bits`` ({memory code: word bits}, the loadable memories of a run-time core),
    ``layers`` (the reset value of LAYERS, by default L).
    kept : Out(ArrayLayout(unsigned(12), L))
        Only with ``kept`` (a compressed-weight core, one int per layer: the reset values):
        every layer's kept_l, the (value, block) pairs per column its weights take (KEPT;
        writable with ``runtime``, within 1 .. ``kept_max``; other values are ignored, so
        the encoder's addresses never leave a layer slot). ``kept_max`` (≥ max(kept)): the
        pairs per column a layer slot holds, shown in KEPT.max.
    weight_base : Out(32)
        Only with ``weight_base=True`` (weights in DRAM): WEIGHT_BASE, the weight image's byte
        address with bits [11:0] zero (without it the register reads 0 and ignores writes).

    Raises
    ------
    ValueError
        Naming the parameter that does not fit its register field.
    """

    def __init__(self, *, inputs: int, hidden, rows: int, columns: int, scan: int,
                 act_bits: int, theta_x, theta_h, cell: int = 0, descriptors=None,
                 maxima=None, formats=None, runtime: bool = False, load_bits=None,
                 layers: int | None = None, weight_base: bool = False, kept=None,
                 kept_max: int | None = None, prescan: bool = False):
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
            if descriptors is None:
                descriptors = descriptor_values(inputs, hidden, rows, scan)
            if len(descriptors) != L:
                raise ValueError(f"{len(descriptors)} descriptors for {L} layers")
            mi, mh, ml = maxima or (inputs, max(hidden), L)
            # (A baked core larger than the fields shows their maximum: MAXIMA is for hosts
            # loading a run-time core.)
            self.maxima = encode_word(MaximaLayout, inputs=min(mi, 4095),
                                      hidden=min(mh, 4095), layers=ml, runtime=int(runtime))
            self.formats = [0, 0]
            if formats is not None:
                self.formats = [
                    encode_word(Formats0Layout, act_bits=formats.act_bits,
                                act_frac=formats.act_frac, w_bits=formats.w_bits,
                                w_frac=formats.w_frac),
                    encode_word(Formats1Layout, acc_bits=formats.acc_bits,
                                lut_bits=formats.lut_bits,
                                sigmoid_range_log2=formats.sigmoid_range_log2,
                                tanh_range_log2=formats.tanh_range_log2)]
            if kept is not None:
                kept = [int(k) for k in kept]
                kept_max = max(kept) if kept_max is None else int(kept_max)
                if len(kept) != L or not 1 <= min(kept) <= max(kept) <= kept_max < 1 << 12:
                    raise ValueError(f"kept: {L} values in [1, kept_max = {kept_max}] "
                                     f"(kept_max < 4096), got {kept}")
        except ValueError:
            self._MustUse__silence = True     # never elaborated: do not warn about it
            raise
        self.act_bits, self.L = act_bits, L
        self.runtime = runtime
        self.has_weight_base = weight_base
        self.has_prescan = prescan
        self.kept_init, self.kept_max = kept, kept_max
        self.theta_init = (theta_x, theta_h)
        self.load_bits = dict(load_bits or {})
        load_width = max(self.load_bits.values(), default=32)
        self.load_parts = (load_width + 31) // 32
        loading = {"load": Out(load_signature(load_width))} if runtime else {}
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
            **({"prescan_last": In(32)} if prescan else {}),
            "desc": Out(data.ArrayLayout(LayerDescriptor, L), init=descriptors),
            "layers": Out(range(1, L + 1), init=layers or L),
            **per_layer,
            **loading,
            **({"weight_base": Out(32)} if weight_base else {}),
            **({"kept": Out(data.ArrayLayout(unsigned(12), L), init=kept)}
               if kept is not None else {}),
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
                    if self.runtime:
                        desc = self.desc[l]
                        sizes = SizesLayout(bus.w_data)
                        counts = CountsLayout(bus.w_data)
                        with m.Case(layer_register(l, LayerRegister.LAYER_SIZES)):
                            m.d.sync += [desc.inputs.eq(sizes.inputs),
                                         desc.hidden.eq(sizes.hidden)]
                        with m.Case(layer_register(l, LayerRegister.LAYER_COUNTS)):
                            m.d.sync += [desc.blocks.eq(counts.blocks),
                                         desc.x_windows.eq(counts.x_windows),
                                         desc.h_windows.eq(counts.h_windows)]
                        with m.Case(layer_register(l, LayerRegister.LAYER_H_COLUMN)):
                            m.d.sync += desc.h_column.eq(bus.w_data)
                if self.runtime:
                    with m.Case(Register.LAYERS):
                        # (1 ≤ L ≤ the layout's: other values are ignored.)
                        with m.If((bus.w_data >= 1) & (bus.w_data <= L)):
                            m.d.sync += self.layers.eq(bus.w_data)
        if self.runtime:
            self._load(m)
        kept_word = self._kept(m) if self.kept_init is not None else None

        status = Signal(StatusLayout)
        m.d.comb += [status.busy.eq(self.busy), status.frame_error.eq(self.frame_error),
                     status.reset_pending.eq(self.reset_pending)]

        read = Signal(32)
        sizes, layer_sizes, layers = self.sizes, self.layer_sizes, L
        if self.runtime:
            # The loaded sizes: SIZES shows layer 0's I and the last loaded layer's H.
            def word(layout, **fields):
                w = Signal(layout)
                m.d.comb += [w[k].eq(v) for k, v in fields.items()]
                return w.as_value()
            last_h = Array(self.desc[l].hidden for l in range(L))[self.layers - 1]
            sizes = word(SizesLayout, inputs=self.desc[0].inputs, hidden=last_h)
            layer_sizes = [word(SizesLayout, inputs=d.inputs, hidden=d.hidden)
                           for d in self.desc]
            layers = self.layers
        with m.Switch(bus.addr):
            values = {
                Register.ID: ID_VALUE, Register.SIZES: sizes, Register.SHAPE: self.shape,
                Register.MAXIMA: self.maxima, Register.FORMATS0: self.formats[0],
                Register.FORMATS1: self.formats[1],
                Register.STATUS: status.as_value(),
                Register.THETA_X: self.theta_x[0], Register.THETA_H: self.theta_h[0],
                Register.CYCLES_LAST: self.cycles_last, Register.NNZ_DX_LAST: self.nnz_dx_last,
                Register.NNZ_DH_LAST: self.nnz_dh_last, Register.STEPS: self.steps,
                Register.LAYERS: layers,
            }
            if self.has_prescan:
                values[Register.PRESCAN_LAST] = self.prescan_last
            if self.has_weight_base:
                values[Register.WEIGHT_BASE] = self.weight_base
            if kept_word is not None:
                values[Register.KEPT] = kept_word
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
                        (layer_sizes[l], self.theta_x[l], self.theta_h[l]) + counters):
                    values[layer_register(l, reg)] = value
                d = self.desc[l]
                values[layer_register(l, LayerRegister.LAYER_COUNTS)] = Cat(
                    d.blocks[:12], d.x_windows[:10], d.h_windows[:10])
                values[layer_register(l, LayerRegister.LAYER_H_COLUMN)] = d.h_column
            for reg, value in values.items():
                with m.Case(reg):
                    m.d.comb += read.eq(value)
        with m.If(bus.r_stb):
            m.d.sync += bus.r_data.eq(read)
        return m

    def _kept(self, m):
        """KEPT: the selected layer (any write selects), its kept_l (a run-time core's write
        sets it when 1 ≤ kept ≤ kept_max), the capacity. Returns the register's read value."""
        bus, L = self.csr, self.L
        w = KeptLayout(bus.w_data[:KeptLayout.size])
        sel = Signal(range(max(L, 2)), name="kept_layer")
        with m.If(bus.w_stb & (bus.addr == Register.KEPT)):
            with m.If(w.layer < L):
                m.d.sync += sel.eq(w.layer)
                if self.runtime:
                    with m.If((w.kept >= 1) & (w.kept <= self.kept_max)):
                        with m.Switch(w.layer):
                            for l in range(L):
                                with m.Case(l):
                                    m.d.sync += self.kept[l].eq(w.kept)
        word = Signal(KeptLayout, name="kept_word")
        m.d.comb += [word.kept.eq(self.kept[0] if L == 1 else
                                  Array(self.kept[l] for l in range(L))[sel]),
                     word.max.eq(self.kept_max), word.layer.eq(sel)]
        return word.as_value()

    def _load(self, m):
        """LOAD_ADDR / LOAD_DATA: parts collected into ``buf``; the word's write is strobed
        the cycle after its last part, with the parts in ``buf`` (a part written in that very
        cycle lands after the memory has taken the word)."""
        bus, load = self.csr, self.load
        n = self.load_parts
        buf = Signal(data.ArrayLayout(32, n), name="load_buf")
        sel = Signal(8, name="load_memory")
        addr = Signal(24, name="load_word")
        part = Signal(range(max(n, 2)), name="load_part")
        # Parts per word of the selected memory (0 for a code that names none: ignored).
        parts = Signal(range(n + 1), name="load_parts")
        with m.Switch(sel):
            for code, bits in self.load_bits.items():
                with m.Case(code):
                    m.d.comb += parts.eq((bits + 31) // 32)
        m.d.comb += [load.memory.eq(sel), load.data.eq(buf.as_value())]
        m.d.sync += load.we.eq(0)
        with m.If(load.we):
            m.d.sync += addr.eq(addr + 1)
        m.d.comb += load.addr.eq(addr)
        la = LoadAddrLayout(bus.w_data)
        with m.If(bus.w_stb & (bus.addr == Register.LOAD_ADDR)):
            m.d.sync += [sel.eq(la.memory), addr.eq(la.word), part.eq(0)]
        with m.If(bus.w_stb & (bus.addr == Register.LOAD_DATA) & (parts != 0)):
            with m.Switch(part):
                for i in range(n):
                    with m.Case(i):
                        m.d.sync += buf[i].eq(bus.w_data)
            with m.If(part == parts - 1):
                m.d.sync += [part.eq(0), load.we.eq(1)]
            with m.Else():
                m.d.sync += part.eq(part + 1)

