"""Host driver: :class:`DeltaRNNLink` speaks the framed protocol over any byte transport.

A transport is an object with ``write(data: bytes)`` and ``read(n: int) -> bytes`` (at most
``n`` bytes; an empty result means the timeout expired). :class:`SerialTransport` wraps a serial port
(pyserial); the cocotb bench (:mod:`drnn_boards.ulx3s_bench`) supplies a transport that drives
the simulated UART of the Verilator model, so the *same* driver code is tested end to end.

    link = DeltaRNNLink(SerialTransport("/dev/ttyUSB0", 1_000_000), act_bits=16)
    link.check_core(bundle)                # ID and sizes match the model
    result = link.run(bundle, x_codes)     # (N, T, I) codes -> GoldenResult-like h and counters

A run-time core (``drnn generate --weights runtime``) takes a model first:
``link.load(bundle)`` (checked against the core's registers before anything is written).
"""

from __future__ import annotations

import numpy as np

from drnn_hw.contract import (CELL_NAMES, ID_VALUE, CtrlLayout, LayerRegister, Register, ShapeLayout,
                              SizesLayout, StatusLayout, decode_word, encode_word,
                              layer_register)

from . import protocol as P
from .protocol import Command, ErrorCode

__all__ = ["DeltaRNNLink", "BoardError", "LinkTimeout", "SerialTransport"]


class BoardError(Exception):
    """The board answered with an ERROR frame.

    ``code`` is the :class:`~drnn_boards.protocol.ErrorCode` (a plain int if the board sent a
    code this host does not know), ``cmd`` the command byte the board received.
    """

    def __init__(self, code: int, cmd: int):
        try:
            self.code = ErrorCode(code)
        except ValueError:
            self.code = code
        self.cmd = cmd
        name = P.ERROR_NAMES.get(self.code, f"error code {code}")
        super().__init__(f"board reported {name} (command byte 0x{cmd:02X})")


class LinkTimeout(Exception):
    """No complete response within the transport's timeout."""


class SerialTransport:
    """A serial port (pyserial) as a byte transport."""

    def __init__(self, port: str, baud: int = 1_000_000, timeout: float = 2.0):
        import serial   # pyserial; imported here so the simulated path does not need it

        try:
            self._port = serial.Serial(port, baudrate=baud, timeout=timeout)
        except serial.SerialException as e:
            raise OSError(f"{port}: cannot open serial port ({e})") from None
        self._port.reset_input_buffer()

    def write(self, data: bytes):
        self._port.write(data)

    def read(self, n: int) -> bytes:
        return self._port.read(n)

    def close(self):
        self._port.close()


class DeltaRNNLink:
    """The board as seen from Python: registers, timesteps, whole sequences.

    Parameters
    ----------
    transport
        Byte transport: ``write(bytes)``, ``read(n) -> bytes`` (empty on timeout).
    act_bits : int
        Width of the core's activation codes (≥ 2); elements travel in
        ``ceil(act_bits / 8)`` bytes.

    Raises
    ------
    ValueError
        ``act_bits`` < 2. The methods raise :class:`BoardError` (an ERROR frame),
        :class:`LinkTimeout` (no complete response) and
        :class:`~drnn_boards.protocol.ProtocolError` (a malformed response).
    """

    def __init__(self, transport, *, act_bits: int = 16):
        if act_bits < 2:
            raise ValueError(f"act_bits must be ≥ 2, got {act_bits}")
        self.transport = transport
        self.act_bits = act_bits
        self.element_bytes = P.element_bytes(act_bits)
        self._decoder = P.FrameDecoder()

    # -- frames --------------------------------------------------------------------------------

    def read_response(self) -> P.Frame:
        """Read exactly one response frame (an ERROR frame raises :class:`BoardError`)."""
        while True:
            want = self._decoder.needed()
            data = self.transport.read(want)
            if not data:
                self._decoder = P.FrameDecoder()     # drop a partial frame
                raise LinkTimeout("no complete response from the board before the timeout")
            frames = self._decoder.feed(data)
            if frames:
                if len(frames) > 1:
                    raise P.ProtocolError("more than one response frame to one request")
                f = frames[0]
                if f.cmd == Command.ERROR:
                    if len(f.payload) != 2:
                        raise P.ProtocolError("ERROR frame with a payload other than 2 bytes")
                    raise BoardError(f.payload[0], f.payload[1])
                return f

    def request(self, cmd: Command, payload: bytes = b"") -> bytes:
        """Send one request, return its response's payload."""
        self.transport.write(P.encode_frame(cmd, payload))
        f = self.read_response()
        if f.cmd != cmd.response:
            raise P.ProtocolError(f"expected response 0x{cmd.response:02X}, "
                                  f"got 0x{f.cmd:02X}")
        return f.payload

    # -- registers -----------------------------------------------------------------------------

    def write_reg(self, addr: int, value: int):
        """Write the 32-bit ``value`` to register word ``addr`` (a :class:`Register`)."""
        payload = self.request(Command.WRITE_REG,
                               bytes([addr]) + int(value).to_bytes(4, "little"))
        if payload:
            raise P.ProtocolError("WRITE_REG acknowledge with a payload")

    def read_reg(self, addr: int) -> int:
        """The 32-bit word of register ``addr`` (a :class:`Register`)."""
        payload = self.request(Command.READ_REG, bytes([addr]))
        if len(payload) != 4:
            raise P.ProtocolError(f"READ_REG response of {len(payload)} bytes, expected 4")
        return int.from_bytes(payload, "little")

    def identify(self) -> dict:
        """ID, the core's sizes (SIZES) and shape (SHAPE): ``id``, ``input_size``,
        ``hidden_size``, ``rows``, ``columns``, ``scan``, ``cell`` ("gru" or "lstm", from
        SHAPE's cell field; a code no cell has is shown as ``"unknown (N)"``), and ``layers``:
        every layer's (I_l, H_l) from LAYERS and LAYER_SIZES."""
        ident = self.read_reg(Register.ID)
        sizes = decode_word(SizesLayout, self.read_reg(Register.SIZES))
        shape = decode_word(ShapeLayout, self.read_reg(Register.SHAPE))
        layers = []
        count = self.read_reg(Register.LAYERS)
        if count == 0:      # a bitstream from before stacked layers (the word read 0)
            layers = [(sizes["inputs"], sizes["hidden"])]
        for l in range(min(count, 28)):
            word = decode_word(SizesLayout, self.read_reg(
                layer_register(l, LayerRegister.LAYER_SIZES)))
            layers.append((word["inputs"], word["hidden"]))
        return {"id": ident, "input_size": sizes["inputs"], "hidden_size": sizes["hidden"],
                "rows": shape["rows"], "columns": shape["columns"], "scan": shape["scan"],
                "cell": CELL_NAMES.get(shape["cell"], f"unknown ({shape['cell']})"),
                "layers": layers}

    def status(self) -> dict:
        """The STATUS register's flags: ``busy``, ``frame_error``, ``reset_pending`` (0/1)."""
        return decode_word(StatusLayout, self.read_reg(Register.STATUS))

    def check_core(self, bundle) -> dict:
        """Raise ``ValueError`` unless the board's core has the bundle's sizes and cell."""
        info = self.identify()
        if info["id"] != ID_VALUE:
            raise ValueError(f"board ID register reads 0x{info['id']:08X}, expected "
                             f"0x{ID_VALUE:08X} (is the DRNN bitstream loaded?)")
        want = [(ly.input_size, ly.hidden_size) for ly in bundle.layers]
        got = info["layers"]
        if want != got:
            def show(sizes):
                return ", ".join(f"I={i} H={h}" for i, h in sizes) or "no layers"
            raise ValueError(f"board core has {len(got)} layer(s) {show(got)}, the model has "
                             f"{len(want)} layer(s) {show(want)}")
        if info["cell"] != bundle.cell:
            raise ValueError(f"board core computes the {info['cell']} cell (SHAPE), the model "
                             f"is a {bundle.cell} (load the model's bitstream)")
        return info

    def core_info(self):
        """What the core is, from its ID, SHAPE, MAXIMA and FORMATS registers
        (:class:`drnn_hw.load.CoreInfo`); :class:`~drnn_hw.load.LoadRefused` when ID is not
        the DRNN core's."""
        from drnn_hw.load import CoreInfo

        return CoreInfo.read(self.read_reg)

    def load(self, bundle, where: str = "model.json", progress=None) -> dict:
        """Load ``bundle`` into a run-time core: sizes, thresholds, biases, σ/tanh tables,
        weights, then RESET_STATE (:func:`drnn_hw.load.load_writes`, one WRITE_REG each).

        The core's registers are read and the bundle checked first: a bundle beyond the
        core's maxima, of another cell or other formats, or a baked core, raises
        :class:`~drnn_hw.load.LoadRefused` (one line, starting with ``where``) before any
        write. ``progress(n)`` is called every 256 writes. Returns ``writes`` and ``bytes``
        (register data written, 4 per write)."""
        from drnn_hw.load import check_bundle, load_summary, load_writes

        info = self.core_info()
        check_bundle(bundle, info, where=where)
        writes = load_writes(bundle, info)
        for i, (addr, value) in enumerate(writes):
            self.write_reg(addr, value)
            if progress and (i + 1) % 256 == 0:
                progress(256)
        return load_summary(writes)

    def counters(self) -> dict:
        """The last step's counters and STEPS: ``cycles_last``, ``nnz_dx_last``,
        ``nnz_dh_last``, ``prescan_last``, ``steps`` (ints), and ``status`` (the STATUS
        word)."""
        return {reg.name.lower(): self.read_reg(reg)
                for reg in (Register.CYCLES_LAST, Register.NNZ_DX_LAST, Register.NNZ_DH_LAST,
                            Register.PRESCAN_LAST, Register.STEPS, Register.STATUS)}

    def set_thresholds(self, theta_x: int, theta_h: int):
        """Write THETA_X and THETA_H (layer 0's Θ codes)."""
        self.write_reg(Register.THETA_X, theta_x)
        self.write_reg(Register.THETA_H, theta_h)

    def set_layer_thresholds(self, thetas):
        """Write every layer's LAYER_THETA_X and LAYER_THETA_H: ``thetas`` L pairs of codes."""
        for l, (theta_x, theta_h) in enumerate(thetas):
            self.write_reg(layer_register(l, LayerRegister.LAYER_THETA_X), theta_x)
            self.write_reg(layer_register(l, LayerRegister.LAYER_THETA_H), theta_h)

    def load_h0(self, codes):
        """Write an initial state after :meth:`reset_state`: every layer's h0 codes,
        concatenated (layer 0's first), one H0 write each."""
        mask = (1 << self.act_bits) - 1
        for code in np.asarray(codes, np.int64):
            self.write_reg(Register.H0, int(code) & mask)

    def control(self, **strobes: int):
        """Write CTRL with the named strobes set (``reset_state``, ``clear_steps``,
        ``clear_error``); ``ValueError`` for another name."""
        self.write_reg(Register.CTRL, encode_word(CtrlLayout, **strobes))

    def reset_state(self):
        """x̂, ĥ, h to 0 and the delta memories to the biases before the next step."""
        self.control(reset_state=1)

    # -- timesteps -----------------------------------------------------------------------------

    def encode_elements(self, codes) -> bytes:
        """Activation codes (signed ints) as STEP payload bytes; ``ValueError`` if one does
        not fit ``act_bits`` signed bits."""
        B, A = self.element_bytes, self.act_bits
        codes = np.asarray(codes, dtype=np.int64)
        if codes.size and (codes.min() < -(1 << (A - 1)) or codes.max() >= 1 << (A - 1)):
            raise ValueError(f"codes must fit {A} signed bits")
        return b"".join(int(v).to_bytes(B, "little", signed=True) for v in codes)

    def decode_elements(self, payload: bytes) -> np.ndarray:
        """A STEP response payload as int64 activation codes."""
        B = self.element_bytes
        return np.array([int.from_bytes(payload[i:i + B], "little", signed=True)
                         for i in range(0, len(payload), B)], dtype=np.int64)

    def step(self, x_codes) -> np.ndarray:
        """One timestep: x_t codes (I,) in, h_t codes (H,) out."""
        return self.decode_elements(self.request(Command.STEP, self.encode_elements(x_codes)))

    def run(self, bundle, x_codes, lengths=None, stats: bool = True, progress=None,
            h0=None):
        """Run (N, T, I) codes, every sequence from the initial state, like ``golden.run``
        (``h0``: every layer's initial state, as :func:`drnn_hw.golden.initial_state` takes).

        Every layer's thresholds are written from the bundle first. Returns a
        :class:`~drnn_hw.golden.GoldenResult` whose ``cycles`` and ``prescan`` are the board's
        measured CYCLES_LAST and PRESCAN_LAST (0 when ``stats`` is false; one step at a time,
        so no step is scanned ahead: its prescan is 0).
        """
        from drnn_hw.golden import GoldenResult, check_lengths, initial_state

        x = np.asarray(x_codes, dtype=np.int64)
        N, T, _ = x.shape
        lengths = check_lengths(lengths, N, T)
        H = None            # the core's output frame: H, or ΣH_l with --out-layers all
        out = np.zeros((N, T, 0), np.int64)
        nnz_dx = np.zeros((N, T), np.int64)
        nnz_dh = np.zeros((N, T), np.int64)
        cycles = np.zeros((N, T), np.int64)
        prescan = np.zeros((N, T), np.int64)
        self.set_layer_thresholds([(ly.theta_x, ly.theta_h) for ly in bundle.layers])
        h0_flat = None if h0 is None else \
            np.concatenate([s.h for s in initial_state(bundle, N, h0)], axis=1)
        for n in range(N):
            self.reset_state()
            if h0_flat is not None:
                self.load_h0(h0_flat[n])
            for t in range(int(lengths[n])):
                h = self.step(x[n, t])
                if H is None:
                    H = h.size
                    out = np.zeros((N, T, H), np.int64)
                out[n, t] = h
                if stats:
                    c = self.counters()
                    cycles[n, t], nnz_dx[n, t], nnz_dh[n, t], prescan[n, t] = (
                        c["cycles_last"], c["nnz_dx_last"], c["nnz_dh_last"],
                        c["prescan_last"])
                if progress:
                    progress(1)
        return GoldenResult(h=out, nnz_dx=nnz_dx, nnz_dh=nnz_dh, cycles=cycles, lengths=lengths,
                            prescan=prescan if stats else None)
