"""Host driver: request encoding and response handling against scripted byte transports.

(The driver against the real gateware runs in tests/test_ulx3s.py, over the simulated UART.)
"""

import numpy as np
import pytest

from drnn_boards import protocol as P
from drnn_boards.host import BoardError, DeltaRNNLink, LinkTimeout
from drnn_boards.protocol import Command, ErrorCode


class Scripted:
    """Replies to each written request with the next canned response (bytes)."""

    def __init__(self, *responses, chunk=3):
        self.responses = list(responses)
        self.written = []
        self.pending = bytearray()
        self.chunk = chunk

    def write(self, data):
        self.written.append(bytes(data))
        if self.responses:
            self.pending += self.responses.pop(0)

    def read(self, n):
        n = min(n, self.chunk)           # a serial port may return bytes in small pieces
        out = bytes(self.pending[:n])
        del self.pending[:n]
        return out


def test_register_requests_and_responses():
    t = Scripted(P.encode_frame(0x81), P.encode_frame(0x82, (0xDEADBEEF).to_bytes(4, "little")))
    link = DeltaRNNLink(t)
    link.write_reg(5, 0x01020304)
    assert link.read_reg(9) == 0xDEADBEEF
    assert t.written == [P.encode_frame(Command.WRITE_REG, bytes([5, 4, 3, 2, 1])),
                         P.encode_frame(Command.READ_REG, bytes([9]))]


def test_step_encodes_and_decodes_signed_elements():
    h = [-32768, 32767, -1, 0, 5]
    resp = P.encode_frame(0x83, b"".join(v.to_bytes(2, "little", signed=True) for v in h))
    t = Scripted(resp)
    out = DeltaRNNLink(t).step(np.array([-2, 300]))
    assert out.tolist() == h
    assert t.written == [P.encode_frame(Command.STEP, bytes([0xFE, 0xFF, 0x2C, 0x01]))]
    with pytest.raises(ValueError):
        DeltaRNNLink(Scripted()).step([40000])


def test_error_frame_raises_board_error():
    t = Scripted(P.encode_frame(Command.ERROR, bytes([ErrorCode.BAD_CHECKSUM, Command.STEP])))
    with pytest.raises(BoardError, match="bad checksum") as e:
        DeltaRNNLink(t).step([1, 2])
    assert e.value.code == ErrorCode.BAD_CHECKSUM


def test_silence_and_garbage():
    with pytest.raises(LinkTimeout):
        DeltaRNNLink(Scripted()).read_reg(0)
    truncated = P.encode_frame(0x82, bytes(4))[:-2]
    with pytest.raises(LinkTimeout):
        DeltaRNNLink(Scripted(truncated)).read_reg(0)
    with pytest.raises(P.ProtocolError):
        DeltaRNNLink(Scripted(b"\x00" * 8)).read_reg(0)
    with pytest.raises(P.ProtocolError, match="expected response 0x82"):
        DeltaRNNLink(Scripted(P.encode_frame(0x81))).read_reg(0)


def test_check_core_compares_sizes():
    from drnn_hw.bundle import random_bundle, random_stacked_bundle

    def regs(ident, sizes, shape, *layers):
        """Responses to ID, SIZES, SHAPE, LAYERS and each LAYER_SIZES read, in that order."""
        words = [ident, sizes, shape, len(layers), *(i | h << 16 for i, h in layers)]
        return [P.encode_frame(0x82, v.to_bytes(4, "little")) for v in words]

    b = random_bundle(3, 5)
    ok = DeltaRNNLink(Scripted(*regs(0x44524E4E, 3 | 5 << 16, 16 | 2 << 16 | 16 << 24,
                                     (3, 5))))
    assert ok.check_core(b) == {"id": 0x44524E4E, "input_size": 3, "hidden_size": 5,
                                "rows": 16, "columns": 2, "scan": 16, "cell": "gru",
                                "layers": [(3, 5)]}
    # The cell from SHAPE's bits [23:20]: an LSTM bitstream for an LSTM model, not a GRU one.
    lstm_shape = 16 | 2 << 16 | 1 << 20 | 16 << 24
    lstm = random_bundle(3, 5, cell="lstm")
    assert DeltaRNNLink(Scripted(*regs(0x44524E4E, 3 | 5 << 16, lstm_shape, (3, 5)))) \
        .check_core(lstm)["cell"] == "lstm"
    with pytest.raises(ValueError, match="board core computes the lstm cell .SHAPE., the "
                                         "model is a gru"):
        DeltaRNNLink(Scripted(*regs(0x44524E4E, 3 | 5 << 16, lstm_shape, (3, 5)))).check_core(b)
    with pytest.raises(ValueError, match="board core computes the gru cell"):
        DeltaRNNLink(Scripted(*regs(0x44524E4E, 3 | 5 << 16, 16, (3, 5)))).check_core(lstm)
    with pytest.raises(ValueError, match=r"board core has 1 layer\(s\) I=4 H=5, the model has "
                                         r"1 layer\(s\) I=3 H=5"):
        DeltaRNNLink(Scripted(*regs(0x44524E4E, 4 | 5 << 16, 0, (4, 5)))).check_core(b)
    with pytest.raises(ValueError, match="ID register"):
        DeltaRNNLink(Scripted(*regs(0, 0, 0))).check_core(b)
    # A stacked model needs the same layers on the board, in order.
    two = random_stacked_bundle(3, [6, 5])
    assert DeltaRNNLink(Scripted(*regs(0x44524E4E, 3 | 5 << 16, 0, (3, 6), (6, 5)))) \
        .check_core(two)["layers"] == [(3, 6), (6, 5)]
    with pytest.raises(ValueError, match=r"1 layer\(s\) I=3 H=5, the model has 2 layer\(s\) "
                                         r"I=3 H=6, I=6 H=5"):
        DeltaRNNLink(Scripted(*regs(0x44524E4E, 3 | 5 << 16, 0, (3, 5)))).check_core(two)


def test_register_addresses_and_bits_on_the_wire():
    """The driver's register requests carry the documented word addresses and CTRL/STATUS bits
    (written out here, not taken from drnn_hw.contract)."""
    ack = P.encode_frame(0x81)

    def word(v):
        return P.encode_frame(0x82, v.to_bytes(4, "little"))

    t = Scripted(ack, ack, ack, ack, word(0b110), word(11), word(12), word(13), word(15),
                 word(14), word(0b001))
    link = DeltaRNNLink(t)
    link.reset_state()
    link.control(clear_steps=1, clear_error=1)
    link.set_thresholds(0x80, 0x40)
    assert link.status() == {"busy": 0, "frame_error": 1, "reset_pending": 1}
    assert link.counters() == {"cycles_last": 11, "nnz_dx_last": 12, "nnz_dh_last": 13,
                               "prescan_last": 15, "steps": 14, "status": 1}

    def wr(addr, value):
        return P.encode_frame(0x01, bytes([addr]) + value.to_bytes(4, "little"))

    assert t.written == [wr(3, 0b001), wr(3, 0b110), wr(5, 0x80), wr(6, 0x40),
                         *(P.encode_frame(0x02, bytes([a])) for a in (4, 7, 8, 9, 20, 10, 4))]
    with pytest.raises(ValueError, match="bogus"):
        link.control(bogus=1)


def test_unknown_error_code_is_kept_as_a_number():
    t = Scripted(P.encode_frame(0xFF, bytes([0x63, 0x03])))
    with pytest.raises(BoardError, match="error code 99") as e:
        DeltaRNNLink(t).step([1])
    assert e.value.code == 99 and e.value.cmd == 3


def test_act_bits_checked():
    with pytest.raises(ValueError, match="act_bits"):
        DeltaRNNLink(Scripted(), act_bits=1)
