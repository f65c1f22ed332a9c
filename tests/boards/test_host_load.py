"""DeltaRNNLink.load: the host's load of a model into a run-time core, against a fake board
that answers the framed protocol from a register dict and records every write. The register
words the fake core shows are written out here from the documented layouts (not from
drnn_hw.contract). A refused bundle leaves the write log empty.

(The same load sequence runs against the real gateware in tests/sim/test_sim_runtime.py.)"""

import pytest

from drnn_boards import protocol as P
from drnn_boards.host import DeltaRNNLink
from drnn_boards.protocol import Command
from drnn_hw.bundle import random_bundle, random_stacked_bundle
from drnn_hw.load import LoadRefused, load_writes
from drnn_hw.numerics import Formats

# A GRU core with P = 4, K = 2, E = 4, maxima I = 8, H = 12, L = 2, default formats.
SHAPE = 4 | 2 << 16 | 0 << 20 | 4 << 24
MAXIMA = 8 | 12 << 12 | 2 << 24 | 1 << 29
FORMATS0 = 16 | 8 << 8 | 8 << 16 | 6 << 24           # act 16.8, weights 8.6
FORMATS1 = 32 | 10 << 8 | 3 << 16 | 2 << 24          # acc 32, 1024 entries, ±8, ±4


class FakeBoard:
    """Decodes request frames; READ_REG answers from ``regs``, WRITE_REG is recorded."""

    def __init__(self, regs):
        self.regs = dict(regs)
        self.writes = []
        self.decoder = P.FrameDecoder()
        self.out = bytearray()

    def write(self, data):
        for f in self.decoder.feed(bytes(data)):
            if f.cmd == Command.READ_REG:
                value = self.regs.get(f.payload[0], 0)
                self.out += P.encode_frame(Command.READ_REG.response, value.to_bytes(4, "little"))
            elif f.cmd == Command.WRITE_REG:
                self.writes.append((f.payload[0], int.from_bytes(f.payload[1:5], "little")))
                self.out += P.encode_frame(Command.WRITE_REG.response)
            else:
                raise AssertionError(f"unexpected command {f.cmd:#x}")

    def read(self, n):
        data = bytes(self.out[:n])
        del self.out[:n]
        return data


def _other_tables():
    """A bundle built in memory with a σ table its formats do not give (one read from disk
    cannot have one)."""
    b = random_bundle(5, 7, seed=1)
    b.sigmoid_lut = b.sigmoid_lut.copy()
    b.sigmoid_lut[0] += 1
    return b


def board():
    return FakeBoard({0: 0x44524E4E, 2: SHAPE, 13: MAXIMA, 14: FORMATS0, 15: FORMATS1})


def test_load_writes_the_sequence_and_ends_with_reset_state():
    b = random_stacked_bundle(6, [3, 11], seed=4, theta_x=[0.1, 0.05], theta_h=[0.05, 0.1])
    fake = board()
    link = DeltaRNNLink(fake)
    summary = link.load(b)
    assert fake.writes[0] == (11, 2)                              # LAYERS = 2
    assert fake.writes[-1] == (3, 1)                              # CTRL RESET_STATE
    # Layer 1's sizes (word 32 + 8 + 0): I = 3, H = 11; its counts (word 46): NB = 3,
    # WX = 1, WH = 3.
    assert (40, 3 | 11 << 16) in fake.writes
    assert (46, 3 | 1 << 12 | 3 << 22) in fake.writes
    assert fake.writes == [(int(a), v) for a, v in load_writes(b, link.core_info())]
    assert summary == {"writes": len(fake.writes), "bytes": 4 * len(fake.writes)}
    # Every LOAD_DATA word of a GRU with P = 4: weights 32 bits (1 write per word), biases
    # 4 × 32 bits (4 writes), counted from the model's sizes (no tables: they are the
    # formats').
    words = sum(3 * (ly.input_size + ly.hidden_size) * -(-ly.hidden_size // 4)
                for ly in b.layers) + 4 * 4 * sum(-(-ly.hidden_size // 4) for ly in b.layers)
    assert sum(1 for a, _ in fake.writes if a == 17) == words


@pytest.mark.parametrize("bundle, regs, message", [
    (random_bundle(5, 13, seed=1), {},
     "m/model.json: layers[0].hidden_size = 13 exceeds the core's --max-hidden 12"),
    (random_bundle(9, 4, seed=1), {},
     "m/model.json: layers[0].input_size = 9 exceeds the core's --max-inputs 8"),
    (random_stacked_bundle(4, [4, 4, 4], seed=1), {},
     "m/model.json: 3 layers exceed the core's --max-layers 2"),
    (random_bundle(5, 7, seed=1, cell="lstm"), {},
     "m/model.json: cell = 'lstm', but the core computes the 'gru' cell"),
    (random_bundle(5, 7, seed=1, formats=Formats(w_bits=16, w_frac=12)), {},
     "m/model.json: formats.w_bits = 16, but the core's is 8"),
    (random_bundle(5, 7, seed=1), {13: MAXIMA & ~(1 << 29)},
     "m/model.json: the core has its weights baked in"),
    (random_bundle(5, 7, seed=1), {0: 0x12345678},
     "ID register reads 0x12345678"),
    (_other_tables(), {}, "m/model.json: sigmoid_lut differs from the table the formats"),
])
def test_a_refused_bundle_writes_nothing(bundle, regs, message):
    fake = board()
    fake.regs.update(regs)
    with pytest.raises(LoadRefused) as e:
        DeltaRNNLink(fake).load(bundle, where="m/model.json")
    assert message in str(e.value) and "\n" not in str(e.value)
    assert fake.writes == []


def test_load_into_a_compressed_core():
    """A compressed run-time core (KEPT, word 19, shows kept_max = 2 in [23:12]): the host
    reads it, writes every layer's KEPT (kept in [11:0], layer in [28:24]) after LAYERS, and
    refuses a dense model before any write."""
    from drnn_hw.balance import prune_bundle

    fake = board()
    fake.regs[19] = 2 << 12
    b = prune_bundle(random_stacked_bundle(6, [3, 10], seed=4), 4, 0.67)
    DeltaRNNLink(fake).load(b)
    assert fake.writes[:3] == [(11, 2), (19, 1 | 0 << 24), (19, 1 | 1 << 24)]
    assert fake.writes[-1] == (3, 1)
    fake = board()
    fake.regs[19] = 2 << 12
    with pytest.raises(LoadRefused) as e:
        DeltaRNNLink(fake).load(random_bundle(5, 7, seed=1), where="m/model.json")
    assert "m/model.json: layers[0].balance: none (dense weights)" in str(e.value)
    assert fake.writes == []
    # The same pruned model into a dense core (KEPT reads 0): no KEPT write.
    fake = board()
    DeltaRNNLink(fake).load(b)
    assert all(a != 19 for a, _ in fake.writes)
