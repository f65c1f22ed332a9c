"""The framed host protocol spoken over the board's serial link (both directions).

Byte level, shared by the gateware (:mod:`drnn_boards.link`) and the host driver
(:mod:`drnn_boards.host`). Strictly request/response: the host sends one request frame and
waits for exactly one response frame before sending the next.

Frame (both directions)::

    SYNC (0xA5) | CMD | LEN_LO | LEN_HI | PAYLOAD (LEN bytes) | CRC

``CRC`` is CRC-8 (polynomial 0x07, initial value 0, no reflection, no final XOR: the reveng
catalogue's CRC-8/SMBUS, :data:`CRC`) over ``CMD, LEN_LO, LEN_HI, PAYLOAD``. Multi-byte numbers
are little endian. The host computes it with :data:`CRC`'s ``compute()``, the gateware with its
``create()`` processor: one algorithm definition (:mod:`amaranth.lib.crc`) for both.

Requests and their responses (:class:`Command`; response CMD = request CMD | 0x80):

=========  ====  ==========================================  ===============================
request    CMD   payload                                     response payload
=========  ====  ==========================================  ===============================
WRITE_REG  0x01  ADDR (1 byte, 0..15), DATA (4 bytes)        empty (acknowledge after write)
READ_REG   0x02  ADDR (1 byte, 0..15)                        DATA (4 bytes, register word)
STEP       0x03  x_t: I elements of B bytes                  h_t: H elements of B bytes
=========  ====  ==========================================  ===============================

Registers are the core's register map (:class:`drnn_hw.contract.Register`: ID, SIZES, SHAPE,
CTRL, STATUS, THETA_X, THETA_H, CYCLES_LAST, NNZ_DX_LAST, NNZ_DH_LAST, STEPS); ADDR is the word
address on the core's 4-bit register bus. Elements are
activation codes in two's complement, ``B = ceil(act_bits / 8)`` bytes each; the link keeps the
low ``act_bits`` bits of an input element and sign-extends output elements to ``8 B`` bits.
A STEP frame is handed to the core only after its CRC checked out, so a corrupted x_t never
reaches the recurrent state.

Errors: the link answers a request it cannot execute with one ERROR frame (CMD 0xFF, payload
``CODE, CMD-as-received``) and then waits for the next SYNC. Codes (:class:`ErrorCode`):

* ``BAD_SYNC`` (1): a byte other than SYNC where a frame must start;
* ``UNKNOWN_COMMAND`` (2);
* ``BAD_LENGTH`` (3): LEN differs from what the command needs (5, 1 or I·B);
* ``BAD_CHECKSUM`` (4);
* ``BAD_ADDRESS`` (5): register address past the core's map (``32 + 8·L`` and above);
* ``TRUNCATED`` (6): the line went quiet for ``idle_timeout`` clocks inside a frame;
* ``UART_FRAMING`` (7): a character with a bad stop bit.

Recovery: after BAD_SYNC, UNKNOWN_COMMAND, BAD_LENGTH and UART_FRAMING the link *drains*: it
discards bytes until the line has been quiet for ``idle_timeout`` clocks, then sends the ERROR
frame, so the rest of the broken frame is never mistaken for a new one and the host receives
exactly one response per request. BAD_CHECKSUM and BAD_ADDRESS are answered at once (the frame
was complete), TRUNCATED after the quiet period that detected it. The link therefore never
hangs on a short frame and never drops a request without an answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.lib import enum
from amaranth.lib.crc import catalog

__all__ = ["SYNC", "RESPONSE_BIT", "Command", "ErrorCode", "ERROR_NAMES", "CRC", "crc8",
           "element_bytes", "encode_frame", "Frame", "FrameDecoder", "ProtocolError"]

#: The byte that starts every frame.
SYNC = 0xA5
#: Set in a response's CMD byte: the response to request ``c`` has CMD ``c | RESPONSE_BIT``.
RESPONSE_BIT = 0x80


# IntEnum rather than Enum: CMD and CODE are bytes on the wire, and a host must also send and
# receive values outside the enum (an unknown command, echoed back in an ERROR frame).
class Command(enum.IntEnum, shape=8):
    """The CMD byte of a request (an ERROR frame has CMD ``ERROR``)."""
    WRITE_REG = 0x01
    READ_REG = 0x02
    STEP = 0x03
    ERROR = 0xFF

    @property
    def response(self) -> int:
        """The CMD byte of this request's response."""
        return self | RESPONSE_BIT


class ErrorCode(enum.IntEnum, shape=8):
    """The CODE byte of an ERROR frame (see the module docstring for when each is sent)."""
    BAD_SYNC = 1
    UNKNOWN_COMMAND = 2
    BAD_LENGTH = 3
    BAD_CHECKSUM = 4
    BAD_ADDRESS = 5
    TRUNCATED = 6
    UART_FRAMING = 7


#: Human-readable name of each error code (used in host error messages).
ERROR_NAMES = {
    ErrorCode.BAD_SYNC: "bad sync byte",
    ErrorCode.UNKNOWN_COMMAND: "unknown command",
    ErrorCode.BAD_LENGTH: "bad length",
    ErrorCode.BAD_CHECKSUM: "bad checksum",
    ErrorCode.BAD_ADDRESS: "bad register address",
    ErrorCode.TRUNCATED: "truncated frame",
    ErrorCode.UART_FRAMING: "UART framing error",
}

#: The frame check: CRC-8/SMBUS (poly 0x07, init 0, no reflection, no xorout), one byte per word.
CRC = catalog.CRC8_SMBUS(data_width=8)


class ProtocolError(Exception):
    """A response that violates the protocol, or an ERROR frame from the board."""


def crc8(data: bytes) -> int:
    """The frame check (:data:`CRC`) of ``data``, 0..255."""
    return CRC.compute(data)


def element_bytes(act_bits: int) -> int:
    """Bytes per element on the wire, ``ceil(act_bits / 8)``."""
    return math.ceil(act_bits / 8)


def encode_frame(cmd: int, payload: bytes = b"") -> bytes:
    """One frame: SYNC, ``cmd`` (a :class:`Command` or any byte), LEN, payload, CRC.

    Raises ``ValueError`` for a payload longer than 65535 bytes or a ``cmd`` outside 0..255.
    """
    if not 0 <= int(cmd) <= 0xFF:
        raise ValueError(f"command byte {cmd!r} is not in 0..255")
    if not 0 <= len(payload) <= 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a frame")
    body = bytes([cmd, len(payload) & 0xFF, len(payload) >> 8]) + bytes(payload)
    return bytes([SYNC]) + body + bytes([crc8(body)])


@dataclass(frozen=True)
class Frame:
    """A decoded frame: its CMD byte and payload."""
    cmd: int
    payload: bytes


class FrameDecoder:
    """Sans-IO frame parser: feed bytes, collect complete frames.

    Raises :class:`ProtocolError` on a byte that cannot start a frame or on a CRC mismatch
    (the host never receives garbage from a working board, so this is a hard error).
    """

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while self._buf:
            if self._buf[0] != SYNC:
                bad = self._buf[0]
                self._buf.clear()
                raise ProtocolError(f"response does not start with SYNC 0x{SYNC:02X} "
                                    f"(got 0x{bad:02X})")
            if len(self._buf) < 4:
                break
            length = self._buf[2] | (self._buf[3] << 8)
            if len(self._buf) < 5 + length:
                break
            body = bytes(self._buf[1:4 + length])
            crc = self._buf[4 + length]
            del self._buf[:5 + length]
            if crc8(body) != crc:
                raise ProtocolError(f"response CRC mismatch (command 0x{body[0]:02X})")
            frames.append(Frame(body[0], body[3:]))
        return frames

    def needed(self) -> int:
        """Bytes still missing for the frame being parsed (at least 1)."""
        if len(self._buf) < 4:
            return max(1, 4 - len(self._buf) + 1)
        length = self._buf[2] | (self._buf[3] << 8)
        return max(1, 5 + length - len(self._buf))
