"""The framed host protocol spoken over the board's serial link (both directions).

Byte level, shared by the gateware (:mod:`drnn_boards.link`) and the host driver
(:mod:`drnn_boards.host`). Strictly request/response: the host sends one request frame and
waits for exactly one response frame before sending the next.

Frame (both directions)::

    SYNC (0xA5) | CMD | LEN_LO | LEN_HI | PAYLOAD (LEN bytes) | CRC

``CRC`` is CRC-8 (polynomial 0x07, initial value 0, no reflection, no final XOR) over
``CMD, LEN_LO, LEN_HI, PAYLOAD``. Multi-byte numbers are little endian.

Requests and their responses (response CMD = request CMD | 0x80):

=========  ====  ==========================================  ===============================
request    CMD   payload                                     response payload
=========  ====  ==========================================  ===============================
WRITE_REG  0x01  ADDR (1 byte, 0..15), DATA (4 bytes)        empty (acknowledge after write)
READ_REG   0x02  ADDR (1 byte, 0..15)                        DATA (4 bytes)
STEP       0x03  x_t: I elements of B bytes                  h_t: H elements of B bytes
=========  ====  ==========================================  ===============================

Registers are the core's register map (``shared_spec_core_interface.md``: ID, SIZES, SHAPE,
CTRL, STATUS, THETA_X, THETA_H, CYCLES_LAST, NNZ_DX_LAST, NNZ_DH_LAST, STEPS). Elements are
activation codes in two's complement, ``B = ceil(act_bits / 8)`` bytes each; the link keeps the
low ``act_bits`` bits of an input element and sign-extends output elements to ``8 B`` bits.
A STEP frame is handed to the core only after its CRC checked out, so a corrupted x_t never
reaches the recurrent state.

Errors: the link answers a request it cannot execute with one ERROR frame (CMD 0xFF, payload
``CODE, CMD-as-received``) and then waits for the next SYNC. Codes:

* ``BAD_SYNC`` (1): a byte other than SYNC where a frame must start;
* ``UNKNOWN_COMMAND`` (2);
* ``BAD_LENGTH`` (3): LEN differs from what the command needs (5, 1 or I·B);
* ``BAD_CHECKSUM`` (4);
* ``BAD_ADDRESS`` (5): register address above 15;
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

__all__ = [
    "SYNC", "CMD_WRITE_REG", "CMD_READ_REG", "CMD_STEP", "CMD_ERROR", "RESPONSE_BIT",
    "ERR_BAD_SYNC", "ERR_UNKNOWN_COMMAND", "ERR_BAD_LENGTH", "ERR_BAD_CHECKSUM",
    "ERR_BAD_ADDRESS", "ERR_TRUNCATED", "ERR_UART_FRAMING", "ERROR_NAMES",
    "crc8", "crc8_update", "element_bytes", "encode_frame", "Frame", "FrameDecoder",
    "ProtocolError",
]

SYNC = 0xA5
CMD_WRITE_REG = 0x01
CMD_READ_REG = 0x02
CMD_STEP = 0x03
CMD_ERROR = 0xFF
RESPONSE_BIT = 0x80

ERR_BAD_SYNC = 1
ERR_UNKNOWN_COMMAND = 2
ERR_BAD_LENGTH = 3
ERR_BAD_CHECKSUM = 4
ERR_BAD_ADDRESS = 5
ERR_TRUNCATED = 6
ERR_UART_FRAMING = 7

ERROR_NAMES = {
    ERR_BAD_SYNC: "bad sync byte",
    ERR_UNKNOWN_COMMAND: "unknown command",
    ERR_BAD_LENGTH: "bad length",
    ERR_BAD_CHECKSUM: "bad checksum",
    ERR_BAD_ADDRESS: "bad register address",
    ERR_TRUNCATED: "truncated frame",
    ERR_UART_FRAMING: "UART framing error",
}

CRC_POLY = 0x07


class ProtocolError(Exception):
    """A response that violates the protocol, or an ERROR frame from the board."""


def crc8_update(crc: int, byte: int) -> int:
    crc ^= byte
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = crc8_update(crc, b)
    return crc


def element_bytes(act_bits: int) -> int:
    return math.ceil(act_bits / 8)


def encode_frame(cmd: int, payload: bytes = b"") -> bytes:
    if not 0 <= len(payload) <= 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a frame")
    body = bytes([cmd, len(payload) & 0xFF, len(payload) >> 8]) + bytes(payload)
    return bytes([SYNC]) + body + bytes([crc8(body)])


@dataclass(frozen=True)
class Frame:
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
