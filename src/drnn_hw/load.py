"""Loading a model into a run-time core (``--weights runtime``) over its register bus.

The host's side of the contract's *Loading* section (:mod:`drnn_hw.contract`), as plain data:
:meth:`CoreInfo.read` learns what a core is from its registers (ID, SHAPE, MAXIMA, FORMATS0/1),
:func:`check_bundle` refuses a bundle the core cannot run (before anything is written, one
line naming the field and the limit), and :func:`load_writes` lists the register writes that
load it: L and the layer descriptors, the thresholds, the biases, the weights, then
RESET_STATE. (The σ and tanh tables are the formats', which the core shares with the model.) Every transport (the Amaranth testbench, the cocotb bus driver, the
UART host link) replays the same list.

Words are written where the core's layout (:class:`~drnn_hw.layer_map.Maxima`.layout) puts
them: layer l's weights from its slot's ``weight_base`` (column c, block b at
``c · NB_l + b``, NB_l the loaded layer's), its biases from its slot's ``block_base``. Only the
loaded layers' words are written; the rest of each memory is never read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .bundle import ModelBundle
from .contract import (CELL_NAMES, ID_VALUE, CountsLayout, Formats0Layout, Formats1Layout,
                       LayerRegister, LoadAddrLayout, LoadMemory, MaximaLayout, Register,
                       ShapeLayout, SizesLayout, decode_word, encode_word, layer_register,
                       load_word_bits)
from .layer_map import Maxima, descriptor_values
from .numerics import Formats, make_sigmoid_lut, make_tanh_lut
from .weight_bank import CELL_CHANNELS, bank_words

__all__ = ["CoreInfo", "LoadRefused", "check_bundle", "load_writes", "load_summary",
           "core_info_from_manifest"]

#: The format fields FORMATS0 and FORMATS1 show.
FORMAT_FIELDS = ("act_bits", "act_frac", "w_bits", "w_frac", "acc_bits", "lut_bits",
                 "sigmoid_range_log2", "tanh_range_log2")


class LoadRefused(ValueError):
    """A bundle the core cannot run: the message is one line naming the field and limit."""


@dataclass(frozen=True)
class CoreInfo:
    """What a core is, as its registers say: ``cell`` ("gru"/"lstm"), ``rows`` P (SHAPE, as
    generated), ``columns`` K, ``scan`` E, ``formats``, ``maxima`` (the layout's I, H, L) and
    ``runtime`` (its weights, biases, tables and sizes can be loaded)."""

    cell: str
    rows: int
    columns: int
    scan: int
    formats: Formats
    maxima: Maxima
    runtime: bool

    @property
    def effective_rows(self) -> int:
        """The P the core was built with: ``min(P, max H)`` (the rows of a block)."""
        return min(self.rows, self.maxima.hidden)

    @classmethod
    def read(cls, read_reg: Callable[[int], int]) -> "CoreInfo":
        """From the registers, through ``read_reg(word address) -> int``. Raises
        :class:`LoadRefused` when ID is not the DRNN core's."""
        ident = read_reg(Register.ID)
        if ident != ID_VALUE:
            raise LoadRefused(f"ID register reads 0x{ident:08X}, expected 0x{ID_VALUE:08X} "
                              "(is the DRNN core there?)")
        shape = decode_word(ShapeLayout, read_reg(Register.SHAPE))
        maxima = decode_word(MaximaLayout, read_reg(Register.MAXIMA))
        fmts = {**decode_word(Formats0Layout, read_reg(Register.FORMATS0)),
                **decode_word(Formats1Layout, read_reg(Register.FORMATS1))}
        return cls(cell=CELL_NAMES.get(shape["cell"], f"unknown ({shape['cell']})"),
                   rows=shape["rows"], columns=shape["columns"], scan=shape["scan"],
                   formats=Formats(**fmts),
                   maxima=Maxima(maxima["inputs"], maxima["hidden"], maxima["layers"]),
                   runtime=bool(maxima["runtime"]))


def core_info_from_manifest(manifest: dict) -> CoreInfo:
    """The :class:`CoreInfo` of a core from its generated ``manifest.json`` (as a dict): what
    its registers will say. Raises :class:`LoadRefused` for a baked core's manifest."""
    p = manifest["parameters"]
    mx = manifest.get("maxima")
    if manifest.get("weights") != "runtime" or mx is None:
        raise LoadRefused("the core has its weights baked in (manifest weights: "
                          f"{manifest.get('weights', 'baked')!r}); generate it with --weights "
                          "runtime to load models")
    return CoreInfo(cell=p["cell"], rows=p["P"], columns=p["K"], scan=p["E"],
                    formats=Formats(**{k: p["formats"][k] for k in FORMAT_FIELDS}),
                    maxima=Maxima(mx["inputs"], mx["hidden"], mx["layers"]), runtime=True)


def check_bundle(bundle: ModelBundle, info: CoreInfo, where: str = "model.json") -> None:
    """Raise :class:`LoadRefused` (one line, ``where`` first) unless ``bundle`` can be loaded
    into the core ``info`` describes: a run-time core of the bundle's cell and formats, and
    the bundle within its maxima."""
    if not info.runtime:
        raise LoadRefused(f"{where}: the core has its weights baked in (MAXIMA.runtime = 0); "
                          "generate it with --weights runtime to load models")
    if bundle.cell != info.cell:
        raise LoadRefused(f"{where}: cell = {bundle.cell!r}, but the core computes the "
                          f"{info.cell!r} cell")
    for name in FORMAT_FIELDS:
        want, got = getattr(bundle.formats, name), getattr(info.formats, name)
        if want != got:
            raise LoadRefused(f"{where}: formats.{name} = {want}, but the core's is {got} "
                              "(formats are fixed when the core is generated)")
    why = info.maxima.refuse(bundle.input_size, [ly.hidden_size for ly in bundle.layers])
    if why:
        raise LoadRefused(f"{where}: {why}")
    # The core's tables are the formats' (ROMs): a bundle made in memory with others cannot
    # run on it (one read from disk never has others: the bundle loader checks them).
    for name, table in (("sigmoid_lut", make_sigmoid_lut(info.formats)),
                        ("tanh_lut", make_tanh_lut(info.formats))):
        if not np.array_equal(np.asarray(getattr(bundle, name)), table):
            raise LoadRefused(f"{where}: {name} differs from the table the formats specify "
                              "(the core's tables are fixed by its formats)")


def _word_parts(word: int, bits: int) -> list[int]:
    word &= (1 << bits) - 1
    return [(word >> (32 * i)) & 0xFFFFFFFF for i in range(math.ceil(bits / 32))]


def _memory_writes(code: int, start: int, words, bits: int) -> list[tuple[int, int]]:
    out = [(Register.LOAD_ADDR, encode_word(LoadAddrLayout, word=start, memory=code))]
    for w in words:
        out += [(Register.LOAD_DATA, part) for part in _word_parts(int(w), bits)]
    return out


def load_writes(bundle: ModelBundle, info: CoreInfo) -> list[tuple[int, int]]:
    """The register writes (word address, 32-bit value) that load ``bundle`` into the core,
    in order. Checks first (:func:`check_bundle`)."""
    check_bundle(bundle, info)
    fmts, P, E = bundle.formats, info.effective_rows, info.scan
    layout = info.maxima.layout(P, E)
    hidden = [ly.hidden_size for ly in bundle.layers]
    desc = descriptor_values(bundle.input_size, hidden, P, E, layout=layout)
    writes = [(Register.LAYERS, len(hidden))]
    for l, (d, ly) in enumerate(zip(desc, bundle.layers)):
        writes += [
            (layer_register(l, LayerRegister.LAYER_SIZES),
             encode_word(SizesLayout, inputs=d["inputs"], hidden=d["hidden"])),
            (layer_register(l, LayerRegister.LAYER_COUNTS),
             encode_word(CountsLayout, blocks=d["blocks"], x_windows=d["x_windows"],
                         h_windows=d["h_windows"])),
            (layer_register(l, LayerRegister.LAYER_H_COLUMN), d["h_column"]),
            (layer_register(l, LayerRegister.LAYER_THETA_X), int(ly.theta_x)),
            (layer_register(l, LayerRegister.LAYER_THETA_H), int(ly.theta_h)),
        ]
    # Biases: word b of row r holds the P biases of global block b.
    acc_mask = (1 << fmts.acc_bits) - 1
    bias_bits = load_word_bits(LoadMemory.BIAS, rows=P, fmts=fmts)
    for r in range(4):
        for l, (s, d, ly) in enumerate(zip(layout, desc, bundle.layers)):
            words = []
            for bb in range(d["blocks"]):
                word = 0
                for p in range(P):
                    j = bb * P + p
                    if j < d["hidden"]:
                        word |= (int(ly.bias[r][j]) & acc_mask) << (p * fmts.acc_bits)
                words.append(word)
            writes += _memory_writes(LoadMemory.BIAS + r, s.block_base, words, bias_bits)
    # Weights: each layer's region of each bank.
    w_bits = load_word_bits(LoadMemory.WEIGHTS, rows=P, fmts=fmts)
    banks = bank_words(bundle, P, layout)
    for c in range(len(CELL_CHANNELS[bundle.cell])):
        for s, d in zip(layout, desc):
            n = (d["inputs"] + d["hidden"]) * d["blocks"]
            writes += _memory_writes(LoadMemory.WEIGHTS + c, s.weight_base,
                                     banks[c][s.weight_base:s.weight_base + n], w_bits)
    writes.append((Register.CTRL, 1))       # RESET_STATE: the delta memories take the biases
    return writes


def load_summary(writes) -> dict:
    """``writes`` (register writes), ``bytes`` (their data, 4 per write)."""
    return {"writes": len(writes), "bytes": 4 * len(writes)}
