"""Weights in DRAM: the memory image an AXI core (``CoreShape.weights == "axi"``,
:mod:`drnn_hw.axi_weight_fetch`) reads, and its traffic.

EdgeDRNN's scheme (Gao et al., "EdgeDRNN: Recurrent Neural Network Accelerator for Edge
Inference", IEEE JETCAS 2020): all weights stay in DRAM and, for each kept delta, the core
fetches that delta's column (every gate's rows) in AXI bursts, so the DRAM traffic falls with
temporal sparsity. The layout here is this project's own.

Layout (byte addresses from the WEIGHT_BASE register, which must be a multiple of 4096):

* The image is a sequence of **block words**, one per P-row block of one column: word ``w``
  at byte ``w · SB · W/8``, ``W`` = the bus width in bits (``CoreShape.bus_bits``), ``SB`` =
  ``ceil(G · P · w_bits / W)`` beats per block word (:func:`beats_per_block`), G = 3 gates for a
  GRU (r, z, n), 4 for an LSTM (i, f, g, o), P the core's effective rows (``min(P, max H)``).
* Word ``w`` is the on-chip banks' word ``w`` (:func:`drnn_hw.weight_bank.bank_words`) of every
  gate side by side: gate g's P weights at bits ``[g·P·w_bits, (g+1)·P·w_bits)``, weight p (row
  ``b·P + p`` of the column; 0 past H) at bits ``g·P·w_bits + p·w_bits`` upwards, two's
  complement ``w_bits`` codes; bits past ``G·P·w_bits`` up to ``SB·W`` are 0.
* Bit ``i`` of a block word is bit ``i % 8`` of its byte ``i // 8`` (little-endian, as AXI
  puts byte lane j of a beat at address + j).
* Layer l's region starts at word ``weight_base_l`` (:mod:`drnn_hw.layer_map`); column c of
  the stacked matrix ``[W_x | W_h]`` (c < I_l: input column c; else hidden column c − I_l) is
  the ``NB_l`` words from ``weight_base_l + c · NB_l`` (one block per word, block 0 first):
  the column stride is ``NB_l · SB · W/8`` bytes.

**Compressed weights** (``CoreShape.weight_format == "compressed"``, issue #13 with the
weights in DRAM: Spartus's column-balanced pairs fetched per kept delta as EdgeDRNN fetches
columns, so the traffic falls with both sparsities). The image is a sequence of **pair words**
instead of block words:

* Pair word ``w`` is the compressed on-chip banks' word ``w``
  (:func:`drnn_hw.weight_bank.compressed_bank_words`, the one packer of the format) of every
  gate side by side: gate g's P pairs at bits ``[g·P·pb, (g+1)·P·pb)``, ``pb = w_bits +
  index_bits`` (:func:`~drnn_hw.weight_bank.pair_index_bits`: ``max(1, ceil(log2 ΣNB_l))``);
  pair p at bits ``g·P·pb + p·pb`` upwards: the weight (``w_bits``, two's complement), then its
  row's global delta-memory block (``index_bits``, unsigned: the layer's block base plus b
  for row ``b·P + p``). ``SB = ceil(G · P · pb / W)`` beats per pair word, zero padded;
  little-endian as above.
* Layer l's region starts at word ``weight_base_l`` of the issue-slot layout
  (:func:`~drnn_hw.layer_map.layer_map` with ``blocks = kept``); column c is the ``kept_l``
  words from ``weight_base_l + c · kept_l`` (:func:`~drnn_hw.spatial.layer_kept`; pair word
  j holds every slice's j-th pair, in increasing row order, then padding pairs of value 0):
  the column stride is ``kept_l · SB · W/8`` bytes.

Why the on-chip banks' words, side by side, rather than a layout of its own: the fetch
hands each MxV channel exactly the slot the on-chip bank would (one pair word per issue
cycle), so the compressed channels, the queue's issue slots and the encoder's addresses are
the baked compressed core's unchanged, and one word per issue slot keeps a column's beats
contiguous (one burst sequence per kept delta). A column then costs ``kept_l`` words of
traffic and ``kept_l`` issue cycles instead of NB_l.

A column's ``words · SB`` beats (words = NB_l, or kept_l compressed) are read in INCR bursts
split at every multiple of ``CoreShape.burst`` beats from WEIGHT_BASE
(:func:`drnn_hw.cycle_model.column_bursts`), so no burst crosses a 4 KB boundary. Biases and
LUTs stay on chip (they are read every step).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .bundle import ModelBundle
from .cycle_model import ColumnFetch, CoreShape
from .layer_map import layer_map, total_words
from .spatial import layer_kept, weight_memory_bits

__all__ = ["WEIGHT_BASE_ALIGN", "DEFAULT_LATENCY", "effective_rows", "beats_per_block",
           "column_words", "image_word_bits", "dram_image", "column_fetch", "column_bytes", "weight_bits", "dram_bytes",
           "dense_bytes", "BLOCK_RAM_BITS"]

#: WEIGHT_BASE must be a multiple of this many bytes (the core ignores its low 12 bits).
WEIGHT_BASE_ALIGN = 4096
#: Read latency (cycles from the AR handshake to the first R beat) the cycle model and the
#: Verilator engine's memory assume when none is given: about a Zynq-7000 HP port's DRAM read
#: at 100 MHz.
DEFAULT_LATENCY = 32

#: Block RAM of the targets an on-chip core may be generated for, in bits: ULX3S-85F (ECP5
#: LFE5U-85F, 208 DP16KD of 18 kbit) and Arty Z7-20 (xc7z020, 140 RAMB36 of 36 kbit).
BLOCK_RAM_BITS = {"ulx3s-85f": 208 * 18 * 1024, "arty-z7-20": 140 * 36 * 1024}


def effective_rows(bundle: ModelBundle, shape: CoreShape) -> int:
    """P as the core builds it: ``min(shape.rows, max H)``."""
    return min(shape.rows, max(ly.hidden_size for ly in bundle.layers))


def _gates(bundle: ModelBundle) -> int:
    return 4 if bundle.cell == "lstm" else 3


def _compressed(shape: CoreShape) -> bool:
    return shape.weight_format == "compressed"


def _kept(bundle: ModelBundle, shape: CoreShape) -> list[int]:
    """Each layer's pairs per slice on the core of ``shape`` (the P it builds)."""
    shaped = replace(shape, rows=effective_rows(bundle, shape))
    return [layer_kept(ly, shaped) for ly in bundle.layers]


def column_words(bundle: ModelBundle, shape: CoreShape) -> list[int]:
    """Image words per column of every layer: NB_l block words, or for a compressed core
    ``kept_l`` pair words. Raises ValueError (from :func:`~drnn_hw.spatial.layer_kept`) for
    a compressed shape whose P is not the pattern's."""
    if _compressed(shape):
        return _kept(bundle, shape)
    P = effective_rows(bundle, shape)
    return [math.ceil(ly.hidden_size / P) for ly in bundle.layers]


def image_word_bits(bundle: ModelBundle, shape: CoreShape) -> int:
    """Bits of one image word before padding: a block word ``G · P · w_bits``, or a
    compressed core's pair word ``G · P · (w_bits + index_bits)``."""
    from .weight_bank import pair_index_bits

    P = effective_rows(bundle, shape)
    per = bundle.formats.w_bits + (pair_index_bits(bundle, P) if _compressed(shape) else 0)
    return _gates(bundle) * P * per


def beats_per_block(bundle: ModelBundle, shape: CoreShape) -> int:
    """SB: bus beats of one image word (a block word, or a compressed core's pair word),
    ``ceil(image_word_bits / bus_bits)``."""
    return math.ceil(image_word_bits(bundle, shape) / shape.bus_bits)


def _slots(bundle: ModelBundle, shape: CoreShape):
    """The image's word layout: the on-chip banks' (a compressed core's issue-slot layout)."""
    P = effective_rows(bundle, shape)
    return layer_map(bundle.input_size, [ly.hidden_size for ly in bundle.layers], P, 1,
                     _kept(bundle, shape) if _compressed(shape) else None)


def dram_image(bundle: ModelBundle, shape: CoreShape) -> bytes:
    """The DRAM image (the module docstring's layout: block words, or pair words for a
    compressed shape), to be placed at WEIGHT_BASE. Raises ValueError for a compressed shape
    whose P is not the pattern's, or a slice with more non-zeros than its ``kept``."""
    from .weight_bank import bank_words, compressed_bank_words, pair_index_bits

    P = effective_rows(bundle, shape)
    if _compressed(shape):
        index = pair_index_bits(bundle, P)
        gate_bits = P * (bundle.formats.w_bits + index)
        banks = compressed_bank_words(bundle, P, _kept(bundle, shape), index)
    else:
        gate_bits = P * bundle.formats.w_bits
        banks = bank_words(bundle, P)
    sb = beats_per_block(bundle, shape)
    nbytes = sb * shape.bus_bits // 8
    out = bytearray()
    for words in zip(*banks):
        value = 0
        for g, word in enumerate(words):
            value |= int(word) << (g * gate_bits)
        out += value.to_bytes(nbytes, "little")
    return bytes(out)


def column_fetch(bundle: ModelBundle, shape: CoreShape,
                 latency: int = DEFAULT_LATENCY) -> list[ColumnFetch]:
    """Every layer's :class:`~drnn_hw.cycle_model.ColumnFetch` for the cycle model, at a fixed
    read ``latency`` (cycles, ≥ 1): SB and the layer's first word (of the issue-slot layout
    for a compressed shape)."""
    sb = beats_per_block(bundle, shape)
    return [ColumnFetch(beats_per_block=sb, first_word=s.weight_base, latency=latency)
            for s in _slots(bundle, shape)]


def column_bytes(bundle: ModelBundle, shape: CoreShape) -> list[int]:
    """Bytes one kept delta's column costs each layer (``words_l · SB`` beats of bus_bits;
    words = NB_l, or kept_l for a compressed shape: :func:`column_words`)."""
    sb = beats_per_block(bundle, shape)
    return [n * sb * shape.bus_bits // 8 for n in column_words(bundle, shape)]


def weight_bits(bundle: ModelBundle, shape: CoreShape, maxima=None) -> int:
    """Bits of the on-chip weight banks of the core: G banks of ``P · w_bits``-bit words,
    ``Σ (I_l + H_l) · NB_l`` words each; with ``maxima`` (a run-time core) the layout of the
    maxima (:meth:`~drnn_hw.layer_map.Maxima.layout`) instead of the bundle's sizes. A
    compressed-weight core (``shape.weight_format == "compressed"``): its (value, row) pairs,
    :func:`drnn_hw.spatial.weight_memory_bits` per layer; a compressed run-time core: every
    slot's I_max + H_max columns of ``kept_max`` pair words (``maxima.kept``, by default the
    bundle's largest kept), each pair ``w_bits`` + the block index of the maxima's ΣNB, as
    :class:`~drnn_hw.weight_bank.WeightBank` lays them out. Raises ValueError (from
    :func:`~drnn_hw.spatial.layer_kept`) for a compressed shape whose P is not the pattern's."""
    if shape.weight_format == "compressed" and maxima is not None:
        from .layer_map import total_blocks
        from .mxv_compressed import index_bits

        P = min(shape.rows, maxima.hidden)
        shaped = replace(shape, rows=P)
        kept_max = maxima.kept or max(layer_kept(ly, shaped) for ly in bundle.layers)
        dense_slots = maxima.layout(P, 1)
        slots = layer_map(maxima.inputs, [maxima.hidden] * maxima.layers, P, 1,
                          [kept_max] * maxima.layers)
        pair = bundle.formats.w_bits + index_bits(total_blocks(dense_slots))
        return _gates(bundle) * total_words(slots) * P * pair
    if shape.weight_format == "compressed":
        P = effective_rows(bundle, shape)
        shaped = replace(shape, rows=P)
        return sum(weight_memory_bits(ly, shaped, bundle.formats.w_bits, _gates(bundle),
                                      kept=layer_kept(ly, shaped)) for ly in bundle.layers)
    if maxima is None:
        P = effective_rows(bundle, shape)
        slots = layer_map(bundle.input_size, [ly.hidden_size for ly in bundle.layers], P, 1)
    else:
        P = min(shape.rows, maxima.hidden)
        slots = maxima.layout(P, 1)
    return _gates(bundle) * total_words(slots) * P * bundle.formats.w_bits


def dram_bytes(nnz_per_layer, bundle: ModelBundle, shape: CoreShape) -> np.ndarray:
    """DRAM bytes read per step: Σ_l nnz_l · column_bytes_l; ``nnz_per_layer`` (..., L) kept
    deltas (Δx + Δh) of each layer."""
    nnz = np.asarray(nnz_per_layer, np.int64)
    return nnz @ np.asarray(column_bytes(bundle, shape), np.int64)


def dense_bytes(bundle: ModelBundle, shape: CoreShape) -> int:
    """DRAM bytes of a dense step (every column of every layer fetched once; a compressed
    shape's columns at their ``kept_l`` pair words: the whole image)."""
    return int(sum((ly.input_size + ly.hidden_size) * c
                   for ly, c in zip(bundle.layers, column_bytes(bundle, shape))))

