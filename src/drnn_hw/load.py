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

A compressed-weight run-time core (KEPT.max = kept_max > 0, ``drnn generate --weights runtime
--weight-format compressed``) takes only bundles pruned column-balanced for its P
(:mod:`drnn_hw.balance`) with every layer's kept_l ≤ kept_max: its banks hold kept_max
(value, block) pairs per column of each slot, which a dense layer (kept = NB) may not fit and
a pattern for another P would not match. Its weights are written as pair words
(:func:`~drnn_hw.weight_bank.compressed_layer_words`) from each slot's ``weight_base`` in the
issue-slot layout, column c's pair j at ``c · kept_l + j``; LAYER_H_COLUMN is that layout's h
column, and a KEPT write per layer sets kept_l. (A pruned bundle still loads into a dense
run-time core: its zeros are weights like any other.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .bundle import ModelBundle
from .contract import (CELL_NAMES, ID_VALUE, CountsLayout, Formats0Layout, Formats1Layout,
                       KeptLayout, LayerRegister, LoadAddrLayout, LoadMemory, MaximaLayout, Register,
                       ShapeLayout, SizesLayout, decode_word, encode_word, layer_register,
                       load_word_bits)
from .errors import UserError
from .layer_map import Maxima, descriptor_values, layer_map
from .numerics import Formats, make_sigmoid_lut, make_tanh_lut
from .weight_bank import CELL_CHANNELS, bank_words, compressed_layer_words

__all__ = ["CoreInfo", "LoadRefused", "check_bundle", "load_writes", "load_summary",
           "core_info_from_manifest", "loaded_kept", "INFO_REGISTERS"]

#: The registers :meth:`CoreInfo.read` reads (a transport that reads them ahead reads these).
INFO_REGISTERS = (Register.ID, Register.SHAPE, Register.MAXIMA, Register.FORMATS0,
                  Register.FORMATS1, Register.KEPT)

#: The format fields FORMATS0 and FORMATS1 show.
FORMAT_FIELDS = ("act_bits", "act_frac", "w_bits", "w_frac", "acc_bits", "lut_bits",
                 "sigmoid_range_log2", "tanh_range_log2")


class LoadRefused(UserError, ValueError):
    """A bundle the core cannot run: the message is one line naming the field and limit (a
    :class:`~drnn_hw.errors.UserError`, and a ValueError as before)."""


@dataclass(frozen=True)
class CoreInfo:
    """What a core is, as its registers say: ``cell`` ("gru"/"lstm"), ``rows`` P (SHAPE, as
    generated), ``columns`` K, ``scan`` E, ``formats``, ``maxima`` (the layout's I, H, L) and
    ``runtime`` (its weights, biases, tables and sizes can be loaded); ``kept_max`` (KEPT.max:
    a compressed-weight core's pairs per column and slot, 0 for a dense core)."""

    cell: str
    rows: int
    columns: int
    scan: int
    formats: Formats
    maxima: Maxima
    runtime: bool
    kept_max: int = 0

    @property
    def compressed(self) -> bool:
        """The banks hold column-balanced (value, block) pairs (KEPT.max > 0)."""
        return self.kept_max > 0

    @property
    def effective_rows(self) -> int:
        """The P the core was built with: ``min(P, max H)`` (the rows of a block)."""
        return min(self.rows, self.maxima.hidden)

    @classmethod
    def read(cls, read_reg: Callable[[int], int]) -> "CoreInfo":
        """From the registers (ID, SHAPE, MAXIMA, FORMATS0/1, KEPT: :data:`INFO_REGISTERS`),
        through ``read_reg(word address) -> int``. Raises
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
                   runtime=bool(maxima["runtime"]),
                   kept_max=decode_word(KeptLayout, read_reg(Register.KEPT))["max"])


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
                    maxima=Maxima(mx["inputs"], mx["hidden"], mx["layers"]), runtime=True,
                    kept_max=int(mx.get("kept") or 0)
                    if manifest.get("weight_format") == "compressed" else 0)


def check_bundle(bundle: ModelBundle, info: CoreInfo, where: str = "model.json") -> None:
    """Raise :class:`LoadRefused` (one line, ``where`` first) unless ``bundle`` can be loaded
    into the core ``info`` describes: a run-time core of the bundle's cell and formats, and
    the bundle within its maxima; a compressed core (``info.compressed``) also needs every
    layer pruned for its P with kept_l ≤ kept_max (:func:`loaded_kept`)."""
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
    if info.compressed:
        loaded_kept(bundle, info, where)
    # The core's tables are the formats' (ROMs): a bundle made in memory with others cannot
    # run on it (one read from disk never has others: the bundle loader checks them).
    for name, table in (("sigmoid_lut", make_sigmoid_lut(info.formats)),
                        ("tanh_lut", make_tanh_lut(info.formats))):
        if not np.array_equal(np.asarray(getattr(bundle, name)), table):
            raise LoadRefused(f"{where}: {name} differs from the table the formats specify "
                              "(the core's tables are fixed by its formats)")


def loaded_kept(bundle: ModelBundle, info: CoreInfo, where: str = "model.json") -> list[int]:
    """Every layer's kept_l on the compressed core ``info`` describes
    (:func:`drnn_hw.spatial.layer_kept` with the core's P); :class:`LoadRefused` (one line,
    ``where`` first, naming the field, the expected and the got) for a layer without a balance
    record (dense weights), a pattern for another P, or kept_l > KEPT.max."""
    from .balance import effective_rows
    from .cycle_model import CoreShape
    from .spatial import layer_kept

    P = info.effective_rows
    shape = CoreShape(rows=P, columns=info.columns, scan=info.scan)
    out = []
    for l, ly in enumerate(bundle.layers):
        unit = getattr(ly, "balance", None)
        if unit is None:
            raise LoadRefused(f"{where}: layers[{l}].balance: none (dense weights), but the "
                              f"core stores column-balanced weights pruned for P = {P} with at "
                              f"most {info.kept_max} kept per slice (prune the model, or load "
                              "it into a dense run-time core)")
        H = ly.hidden_size
        if effective_rows(unit.rows, H) != effective_rows(P, H):
            raise LoadRefused(f"{where}: layers[{l}].balance.rows = {unit.rows}, but the core's "
                              f"compressed weights are balanced for P = {P}")
        kept = layer_kept(ly, shape)
        if kept > info.kept_max:
            raise LoadRefused(f"{where}: layers[{l}].balance.kept = {kept} exceeds the core's "
                              f"capacity of {info.kept_max} kept per slice (KEPT.max, "
                              "--max-kept)")
        out.append(kept)
    return out


def _word_parts(word: int, bits: int) -> list[int]:
    word &= (1 << bits) - 1
    return [(word >> (32 * i)) & 0xFFFFFFFF for i in range(math.ceil(bits / 32))]


def _memory_writes(code: int, start: int, words, bits: int) -> list[tuple[int, int]]:
    out = [(Register.LOAD_ADDR, encode_word(LoadAddrLayout, word=start, memory=code))]
    for w in words:
        out += [(Register.LOAD_DATA, part) for part in _word_parts(int(w), bits)]
    return out


def load_writes(bundle: ModelBundle, info: CoreInfo,
                where: str = "model.json") -> list[tuple[int, int]]:
    """The register writes (word address, 32-bit value) that load ``bundle`` into the core,
    in order. Checks first (:func:`check_bundle`; :class:`LoadRefused` naming ``where``).
    A compressed core also gets each layer's KEPT, LAYER_H_COLUMN in its issue-slot layout
    and pair words (module docstring)."""
    check_bundle(bundle, info, where)
    fmts, P, E = bundle.formats, info.effective_rows, info.scan
    layout = info.maxima.layout(P, E)
    hidden = [ly.hidden_size for ly in bundle.layers]
    desc = descriptor_values(bundle.input_size, hidden, P, E, layout=layout)
    kept = None
    if info.compressed:
        kept = loaded_kept(bundle, info, where)
        pairs = layer_map(info.maxima.inputs, [info.maxima.hidden] * info.maxima.layers, P,
                          E, [info.kept_max] * info.maxima.layers)
        own = descriptor_values(bundle.input_size, hidden, P, E, layout=pairs, blocks=kept)
        for d, o in zip(desc, own):
            d["h_column"] = o["h_column"]
    writes = [(Register.LAYERS, len(hidden))]
    if kept is not None:
        writes += [(Register.KEPT, encode_word(KeptLayout, kept=k, layer=l))
                   for l, k in enumerate(kept)]
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
    gates = len(CELL_CHANNELS[bundle.cell])
    if info.compressed:
        # Pair words: column c's pair j of layer l at the slot's weight_base + c·kept_l + j
        # (the issue-slot layout of kept_max words per column), its block global.
        from .mxv_compressed import index_bits as pair_index_bits

        idx = pair_index_bits(layout[-1].block_base + layout[-1].blocks)
        w_bits = load_word_bits(LoadMemory.WEIGHTS, rows=P, fmts=fmts, index_bits=idx)
        pairs = layer_map(info.maxima.inputs, [info.maxima.hidden] * info.maxima.layers, P,
                          E, [info.kept_max] * info.maxima.layers)
        for c in range(gates):
            for l, (ly, s, ps) in enumerate(zip(bundle.layers, layout, pairs)):
                try:
                    words = compressed_layer_words(ly, c, P, kept[l], s.block_base,
                                                   fmts.w_bits, idx)
                except ValueError as e:
                    raise LoadRefused(f"{where}: layers[{l}] gate {c}: {e}") from None
                writes += _memory_writes(LoadMemory.WEIGHTS + c, ps.weight_base, words,
                                         w_bits)
    else:
        w_bits = load_word_bits(LoadMemory.WEIGHTS, rows=P, fmts=fmts)
        banks = bank_words(bundle, P, layout)
        for c in range(gates):
            for s, d in zip(layout, desc):
                n = (d["inputs"] + d["hidden"]) * d["blocks"]
                writes += _memory_writes(LoadMemory.WEIGHTS + c, s.weight_base,
                                         banks[c][s.weight_base:s.weight_base + n], w_bits)
    writes.append((Register.CTRL, 1))       # RESET_STATE: the delta memories take the biases
    return writes


def load_summary(writes) -> dict:
    """``writes`` (register writes), ``bytes`` (their data, 4 per write)."""
    return {"writes": len(writes), "bytes": 4 * len(writes)}
