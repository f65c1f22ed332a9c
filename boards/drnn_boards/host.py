"""Host driver: :class:`DeltaRNNLink` speaks the framed protocol over any byte transport.

A transport is an object with ``write(data: bytes)`` and ``read(n: int) -> bytes`` (at most
``n`` bytes; an empty result means the timeout expired). :class:`SerialTransport` wraps a serial port
(pyserial); the cocotb bench (``drnn_boards.sim.ulx3s_bench``) supplies a transport that drives
the simulated UART of the Verilator model, so the *same* driver code is tested end to end.

    link = DeltaRNNLink(SerialTransport("/dev/ttyUSB0", 1_000_000), act_bits=16)
    link.check_core(bundle)                # ID and sizes match the model
    result = link.run(bundle, x_codes)     # (N, T, I) codes -> GoldenResult-like h and counters
"""

from __future__ import annotations

import numpy as np

from . import protocol as P

__all__ = ["DeltaRNNLink", "BoardError", "LinkTimeout", "SerialTransport", "REG"]

#: Register word addresses (core interface contract).
REG = dict(ID=0, SIZES=1, SHAPE=2, CTRL=3, STATUS=4, THETA_X=5, THETA_H=6, CYCLES_LAST=7,
           NNZ_DX_LAST=8, NNZ_DH_LAST=9, STEPS=10)
CORE_ID = 0x44524E4E
CTRL_RESET_STATE, CTRL_CLEAR_STEPS, CTRL_CLEAR_ERROR = 1, 2, 4


class BoardError(Exception):
    """The board answered with an ERROR frame; ``code`` is the protocol error code."""

    def __init__(self, code: int, cmd: int):
        self.code, self.cmd = code, cmd
        name = P.ERROR_NAMES.get(code, f"error code {code}")
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
    """The board as seen from Python: registers, timesteps, whole sequences."""

    def __init__(self, transport, *, act_bits: int = 16):
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
                if f.cmd == P.CMD_ERROR:
                    if len(f.payload) != 2:
                        raise P.ProtocolError("ERROR frame with a payload other than 2 bytes")
                    raise BoardError(f.payload[0], f.payload[1])
                return f

    def request(self, cmd: int, payload: bytes = b"") -> bytes:
        self.transport.write(P.encode_frame(cmd, payload))
        f = self.read_response()
        if f.cmd != cmd | P.RESPONSE_BIT:
            raise P.ProtocolError(f"expected response 0x{cmd | P.RESPONSE_BIT:02X}, "
                                  f"got 0x{f.cmd:02X}")
        return f.payload

    # -- registers -----------------------------------------------------------------------------

    def write_reg(self, addr: int, value: int):
        payload = self.request(P.CMD_WRITE_REG, bytes([addr]) + int(value).to_bytes(4, "little"))
        if payload:
            raise P.ProtocolError("WRITE_REG acknowledge with a payload")

    def read_reg(self, addr: int) -> int:
        payload = self.request(P.CMD_READ_REG, bytes([addr]))
        if len(payload) != 4:
            raise P.ProtocolError(f"READ_REG response of {len(payload)} bytes, expected 4")
        return int.from_bytes(payload, "little")

    def identify(self) -> dict:
        ident = self.read_reg(REG["ID"])
        sizes = self.read_reg(REG["SIZES"])
        shape = self.read_reg(REG["SHAPE"])
        return {"id": ident, "input_size": sizes & 0xFFFF, "hidden_size": sizes >> 16,
                "rows": shape & 0xFFFF, "columns": (shape >> 16) & 0xF, "scan": shape >> 24}

    def check_core(self, bundle) -> dict:
        """Raise ``ValueError`` unless the board's core has the bundle's sizes."""
        info = self.identify()
        if info["id"] != CORE_ID:
            raise ValueError(f"board ID register reads 0x{info['id']:08X}, expected "
                             f"0x{CORE_ID:08X} (is the DRNN bitstream loaded?)")
        want = (bundle.input_size, bundle.hidden_size)
        got = (info["input_size"], info["hidden_size"])
        if want != got:
            raise ValueError(f"board core has I={got[0]} H={got[1]}, the model has "
                             f"I={want[0]} H={want[1]}")
        return info

    def counters(self) -> dict:
        return {name.lower(): self.read_reg(REG[name])
                for name in ("CYCLES_LAST", "NNZ_DX_LAST", "NNZ_DH_LAST", "STEPS", "STATUS")}

    def set_thresholds(self, theta_x: int, theta_h: int):
        self.write_reg(REG["THETA_X"], theta_x)
        self.write_reg(REG["THETA_H"], theta_h)

    def reset_state(self):
        """x̂, ĥ, h to 0 and the delta memories to the biases before the next step."""
        self.write_reg(REG["CTRL"], CTRL_RESET_STATE)

    # -- timesteps -----------------------------------------------------------------------------

    def encode_elements(self, codes) -> bytes:
        B, A = self.element_bytes, self.act_bits
        codes = np.asarray(codes, dtype=np.int64)
        if codes.size and (codes.min() < -(1 << (A - 1)) or codes.max() >= 1 << (A - 1)):
            raise ValueError(f"codes must fit {A} signed bits")
        return b"".join(int(v).to_bytes(B, "little", signed=True) for v in codes)

    def decode_elements(self, payload: bytes) -> np.ndarray:
        B = self.element_bytes
        return np.array([int.from_bytes(payload[i:i + B], "little", signed=True)
                         for i in range(0, len(payload), B)], dtype=np.int64)

    def step(self, x_codes) -> np.ndarray:
        """One timestep: x_t codes (I,) in, h_t codes (H,) out."""
        return self.decode_elements(self.request(P.CMD_STEP, self.encode_elements(x_codes)))

    def run(self, bundle, x_codes, lengths=None, stats: bool = True, progress=None):
        """Run (N, T, I) codes, every sequence from the initial state, like ``golden.run``.

        Thresholds are written from the bundle first. Returns a
        :class:`~drnn_hw.golden.GoldenResult` whose ``cycles`` are the board's measured
        CYCLES_LAST (0 when ``stats`` is false).
        """
        from drnn_hw.golden import GoldenResult, check_lengths

        x = np.asarray(x_codes, dtype=np.int64)
        N, T, _ = x.shape
        lengths = check_lengths(lengths, N, T)
        H = bundle.hidden_size
        out = np.zeros((N, T, H), np.int64)
        nnz_dx = np.zeros((N, T), np.int64)
        nnz_dh = np.zeros((N, T), np.int64)
        cycles = np.zeros((N, T), np.int64)
        self.set_thresholds(bundle.theta_x, bundle.theta_h)
        for n in range(N):
            self.reset_state()
            for t in range(int(lengths[n])):
                out[n, t] = self.step(x[n, t])
                if stats:
                    c = self.counters()
                    cycles[n, t], nnz_dx[n, t], nnz_dh[n, t] = (
                        c["cycles_last"], c["nnz_dx_last"], c["nnz_dh_last"])
                if progress:
                    progress(1)
        return GoldenResult(h=out, nnz_dx=nnz_dx, nnz_dh=nnz_dh, cycles=cycles, lengths=lengths)
