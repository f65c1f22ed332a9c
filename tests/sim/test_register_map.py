"""The testbenches' register map (drnn_sim.bus) and the core's contract (drnn_hw.contract) are
two statements of one documented map: each is pinned here to the literal numbers of the
documentation (README, contract docstring), and to each other, so a swapped address, bit or
field in either one fails."""

import pytest

from drnn_hw import contract
from drnn_hw.contract import (CtrlLayout, Register, ShapeLayout, SizesLayout, StatusLayout,
                              decode_word, encode_word)
from drnn_sim import bus

#: The documented map: word addresses.
ADDRESSES = {"ID": 0, "SIZES": 1, "SHAPE": 2, "CTRL": 3, "STATUS": 4, "THETA_X": 5,
             "THETA_H": 6, "CYCLES_LAST": 7, "NNZ_DX_LAST": 8, "NNZ_DH_LAST": 9, "STEPS": 10,
             "LAYERS": 11, "H0": 12, "MAXIMA": 13, "FORMATS0": 14, "FORMATS1": 15,
             "LOAD_ADDR": 16, "LOAD_DATA": 17, "WEIGHT_BASE": 18, "KEPT": 19,
             "PRESCAN_LAST": 20}
ACCESS = {"ID": "R", "SIZES": "R", "SHAPE": "R", "CTRL": "W", "STATUS": "R", "THETA_X": "RW",
          "THETA_H": "RW", "CYCLES_LAST": "R", "NNZ_DX_LAST": "R", "NNZ_DH_LAST": "R",
          "STEPS": "R", "LAYERS": "R", "H0": "W", "MAXIMA": "R", "FORMATS0": "R",
          "FORMATS1": "R", "LOAD_ADDR": "W", "LOAD_DATA": "W", "WEIGHT_BASE": "RW",
          "KEPT": "RW", "PRESCAN_LAST": "R"}
#: Per-layer block: word 32 + 8·l + offset.
LAYER_OFFSETS = {"LAYER_SIZES": 0, "LAYER_THETA_X": 1, "LAYER_THETA_H": 2, "LAYER_CYCLES": 3,
                 "LAYER_NNZ_DX": 4, "LAYER_NNZ_DH": 5, "LAYER_COUNTS": 6, "LAYER_H_COLUMN": 7}
LAYER_ACCESS = {"LAYER_SIZES": "R", "LAYER_THETA_X": "RW", "LAYER_THETA_H": "RW",
                "LAYER_CYCLES": "R", "LAYER_NNZ_DX": "R", "LAYER_NNZ_DH": "R",
                "LAYER_COUNTS": "R", "LAYER_H_COLUMN": "R"}
#: Writable in a run-time core (``--weights runtime``): L and the layer descriptors.
RUNTIME_ACCESS = {"LAYERS": "RW", "LAYER_SIZES": "RW", "LAYER_COUNTS": "RW",
                  "LAYER_H_COLUMN": "RW"}
#: MAXIMA, LAYER_COUNTS, LOAD_ADDR, FORMATS0/1: (lowest bit, width) of each field.
MAXIMA_FIELDS = {"inputs": (0, 12), "hidden": (12, 12), "layers": (24, 5), "runtime": (29, 1)}
COUNTS_FIELDS = {"blocks": (0, 12), "x_windows": (12, 10), "h_windows": (22, 10)}
LOAD_ADDR_FIELDS = {"word": (0, 24), "memory": (24, 8)}
#: KEPT (a compressed core): the selected layer's kept, the capacity, the layer.
KEPT_FIELDS = {"kept": (0, 12), "max": (12, 12), "layer": (24, 5)}
FORMATS0_FIELDS = {"act_bits": (0, 8), "act_frac": (8, 8), "w_bits": (16, 8), "w_frac": (24, 8)}
FORMATS1_FIELDS = {"acc_bits": (0, 8), "lut_bits": (8, 8), "sigmoid_range_log2": (16, 8),
                   "tanh_range_log2": (24, 8)}
#: LOAD_ADDR.memory codes: weight bank c at 0x00 + c, bias row r at 0x10 + r.
LOAD_MEMORIES = {"WEIGHTS": 0x00, "BIAS": 0x10}
#: CTRL and STATUS: bit numbers.
CTRL_BITS = {"RESET_STATE": 0, "CLEAR_STEPS": 1, "CLEAR_ERROR": 2}
STATUS_BITS = {"BUSY": 0, "FRAME_ERROR": 1, "RESET_PENDING": 2}
#: SIZES and SHAPE: (lowest bit, width) of each field.
SIZES_FIELDS = {"inputs": (0, 16), "hidden": (16, 16)}
SHAPE_FIELDS = {"rows": (0, 16), "columns": (16, 4), "cell": (20, 4), "scan": (24, 8)}
#: SHAPE's cell codes.
CELLS = {"gru": 0, "lstm": 1}
ID = 0x44524E4E      # "DRNN"


def test_id():
    assert ID.to_bytes(4, "big") == b"DRNN"
    assert bus.ID_VALUE == ID
    assert contract.ID_VALUE == ID


def test_addresses_of_the_testbenches():
    assert {name: getattr(bus, name) for name in ADDRESSES} == ADDRESSES


def test_addresses_and_access_of_the_contract():
    assert {r.name: int(r) for r in Register} == ADDRESSES
    assert contract.REGISTERS == {n: (a, ACCESS[n]) for n, a in ADDRESSES.items()}
    assert contract.ADDR_BITS == 8
    assert max(ADDRESSES.values()) < 32
    assert contract.RUNTIME_ACCESS == RUNTIME_ACCESS


@pytest.mark.parametrize("layout,fields", [
    (contract.MaximaLayout, MAXIMA_FIELDS), (contract.CountsLayout, COUNTS_FIELDS),
    (contract.LoadAddrLayout, LOAD_ADDR_FIELDS), (contract.Formats0Layout, FORMATS0_FIELDS),
    (contract.KeptLayout, KEPT_FIELDS),
    (contract.Formats1Layout, FORMATS1_FIELDS)])
def test_runtime_fields(layout, fields):
    assert {name: (f.offset, f.width) for name, f in layout} == fields


def test_load_memory_codes():
    assert {m.name: int(m) for m in contract.LoadMemory} == LOAD_MEMORIES


@pytest.mark.parametrize("layer", [0, 1, 3, 27])
def test_layer_blocks_agree(layer):
    for name, offset in LAYER_OFFSETS.items():
        address = 32 + 8 * layer + offset
        assert contract.layer_register(layer, contract.LayerRegister[name]) == address, name
        assert bus.layer_register(layer, name) == address, name
        assert contract.LAYER_ACCESS[contract.LayerRegister[name]] == LAYER_ACCESS[name]
    assert 32 + 8 * 27 + 7 < 1 << contract.ADDR_BITS


def test_a_layer_without_a_block_is_refused():
    with pytest.raises(ValueError, match="layer 28 has no register block"):
        contract.layer_register(28, contract.LayerRegister.LAYER_SIZES)


@pytest.mark.parametrize("name", list(ADDRESSES))
def test_each_address_agrees(name):
    assert getattr(bus, name) == int(Register[name]) == ADDRESSES[name]


@pytest.mark.parametrize("layout,prefix,bits", [(CtrlLayout, "CTRL", CTRL_BITS),
                                                (StatusLayout, "STATUS", STATUS_BITS)])
def test_ctrl_and_status_bits(layout, prefix, bits):
    assert {name: (field.offset, field.width) for name, field in layout} == \
        {name.lower(): (bit, 1) for name, bit in bits.items()}
    for name, bit in bits.items():
        assert getattr(bus, f"{prefix}_{name}") == 1 << bit, name
        assert encode_word(layout, **{name.lower(): 1}) == 1 << bit, name
        assert decode_word(layout, 1 << bit) == {n.lower(): int(n == name) for n in bits}


@pytest.mark.parametrize("layout,prefix,fields", [(SizesLayout, "SIZES", SIZES_FIELDS),
                                                  (ShapeLayout, "SHAPE", SHAPE_FIELDS)])
def test_sizes_and_shape_fields(layout, prefix, fields):
    named = {name: (f.offset, f.width) for name, f in layout if not name.startswith("_")}
    assert named == fields
    for name, place in fields.items():
        assert getattr(bus, f"{prefix}_{name.upper()}") == place, name


def test_words_agree():
    """The same values give the same SIZES / SHAPE words on both sides, and decode back."""
    assert bus.sizes_word(39, 256) == encode_word(SizesLayout, inputs=39, hidden=256) == \
        39 | 256 << 16
    assert bus.shape_word(128, 2, 32) == encode_word(ShapeLayout, rows=128, columns=2, scan=32) \
        == 128 | 2 << 16 | 32 << 24
    assert decode_word(ShapeLayout, 0x1F0F_FFFF) == {"rows": 0xFFFF, "columns": 0xF,
                                                     "cell": 0, "scan": 0x1F}
    assert bus.shape_word(16, 2, 16, bus.CELL_LSTM) == \
        encode_word(ShapeLayout, rows=16, columns=2, cell=contract.CELL_CODES["lstm"], scan=16) \
        == 16 | 2 << 16 | 1 << 20 | 16 << 24
    assert decode_word(ShapeLayout, 0x1010_0002)["cell"] == 1


def test_cell_codes_agree():
    assert contract.CELL_CODES == CELLS
    assert (bus.CELL_GRU, bus.CELL_LSTM) == (CELLS["gru"], CELLS["lstm"])
    assert contract.CELL_NAMES == {0: "gru", 1: "lstm"}


def test_encode_word_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="columns = 16 does not fit its 4-bit field"):
        encode_word(ShapeLayout, columns=16)
    with pytest.raises(ValueError, match="cell = 16 does not fit its 4-bit field"):
        encode_word(ShapeLayout, cell=16)
    with pytest.raises(ValueError, match="'_reserved' is not a field"):
        encode_word(CtrlLayout, _reserved=1)
    with pytest.raises(ValueError, match="32 bits"):
        decode_word(SizesLayout, 1 << 32)


def test_beat_packing_agrees_with_the_frame_layout():
    """bus.pack_beat and the contract's frame_layout put element e and ``last`` at the same
    bits (element e at [A e + A - 1 : A e], last at A E)."""
    A, E = 16, 3
    layout = contract.frame_layout(A, E)
    assert layout["last"].offset == A * E and layout["data"].offset == 0
    word = layout.const({"data": [-1, 2, -32768], "last": 1}).as_bits()
    assert word == bus.pack_beat([-1, 2, -32768], A, E, True) == \
        0xFFFF | 2 << 16 | 0x8000 << 32 | 1 << 48
    assert bus.unpack_beat(word, A, E) == ([-1, 2, -32768], 1)
