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

A column's ``NB_l · SB`` beats are read in INCR bursts split at every multiple of
``CoreShape.burst`` beats from WEIGHT_BASE (:func:`drnn_hw.cycle_model.column_bursts`), so no
burst crosses a 4 KB boundary. Biases and LUTs stay on chip (they are read every step).
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
           "dram_image", "column_fetch", "column_bytes", "weight_bits", "dram_bytes",
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


def beats_per_block(bundle: ModelBundle, shape: CoreShape) -> int:
    """SB: bus beats of one block word, ``ceil(G · P · w_bits / bus_bits)``."""
    bits = _gates(bundle) * effective_rows(bundle, shape) * bundle.formats.w_bits
    return math.ceil(bits / shape.bus_bits)


def dram_image(bundle: ModelBundle, shape: CoreShape) -> bytes:
    """The DRAM image (the module docstring's layout), to be placed at WEIGHT_BASE."""
    from .weight_bank import bank_words

    P = effective_rows(bundle, shape)
    wb = P * bundle.formats.w_bits
    sb = beats_per_block(bundle, shape)
    nbytes = sb * shape.bus_bits // 8
    banks = bank_words(bundle, P)
    out = bytearray()
    for words in zip(*banks):
        value = 0
        for g, word in enumerate(words):
            value |= int(word) << (g * wb)
        out += value.to_bytes(nbytes, "little")
    return bytes(out)


def column_fetch(bundle: ModelBundle, shape: CoreShape,
                 latency: int = DEFAULT_LATENCY) -> list[ColumnFetch]:
    """Every layer's :class:`~drnn_hw.cycle_model.ColumnFetch` for the cycle model, at a fixed
    read ``latency`` (cycles, ≥ 1)."""
    P = effective_rows(bundle, shape)
    sb = beats_per_block(bundle, shape)
    slots = layer_map(bundle.input_size, [ly.hidden_size for ly in bundle.layers], P, 1)
    return [ColumnFetch(beats_per_block=sb, first_word=s.weight_base, latency=latency)
            for s in slots]


def column_bytes(bundle: ModelBundle, shape: CoreShape) -> list[int]:
    """Bytes one kept delta's column costs each layer (NB_l · SB beats of bus_bits)."""
    P = effective_rows(bundle, shape)
    sb = beats_per_block(bundle, shape)
    return [math.ceil(ly.hidden_size / P) * sb * shape.bus_bits // 8 for ly in bundle.layers]


def weight_bits(bundle: ModelBundle, shape: CoreShape, maxima=None) -> int:
    """Bits of the on-chip weight banks of the core: G banks of ``P · w_bits``-bit words,
    ``Σ (I_l + H_l) · NB_l`` words each; with ``maxima`` (a run-time core) the layout of the
    maxima (:meth:`~drnn_hw.layer_map.Maxima.layout`) instead of the bundle's sizes. A
    compressed-weight core (``shape.weight_format == "compressed"``): its (value, row) pairs,
    :func:`drnn_hw.spatial.weight_memory_bits` per layer."""
    if shape.weight_format == "compressed" and maxima is None:
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
    """DRAM bytes of a dense step (every column of every layer fetched once)."""
    return int(sum((ly.input_size + ly.hidden_size) * c
                   for ly, c in zip(bundle.layers, column_bytes(bundle, shape))))

