"""The DRAM image of a core with its weights in DRAM (its documented layout, read back from the
bytes independently of how it is written), its traffic, and the cycle model's memory terms
(hand-worked schedules; the RTL's exactness is tests/sim/test_sim_axi.py's)."""

from dataclasses import replace

import numpy as np
import pytest

from drnn_hw.bundle import random_bundle, random_stacked_bundle
from drnn_hw.cycle_model import ColumnFetch, CoreShape, column_bursts, step_cycles
from drnn_hw.dram import (beats_per_block, column_bytes, column_fetch, dense_bytes, dram_bytes,
                          dram_image, weight_bits)
from drnn_hw.layer_map import layer_map


def _weight(image: bytes, bit: int, w_bits: int) -> int:
    """The two's complement ``w_bits`` code at bit ``bit`` of ``image`` (bit i in byte i // 8,
    bit i % 8: the documented little-endian order)."""
    v = 0
    for i in range(w_bits):
        b = bit + i
        v |= ((image[b // 8] >> (b % 8)) & 1) << i
    return v - (1 << w_bits) if v >> (w_bits - 1) else v


@pytest.mark.parametrize("cell,hidden,rows,bus", [("gru", [13], 4, 64), ("lstm", [9, 6], 8, 32),
                                                   ("gru", [5, 11], 4, 128)])
def test_image_layout(cell, hidden, rows, bus):
    b = random_stacked_bundle(7, hidden, seed=3, weight_scale=2.0, cell=cell)
    shape = CoreShape(rows=rows, columns=2, scan=4, weights="axi", bus_bits=bus)
    img = dram_image(b, shape)
    G, w = (4 if cell == "lstm" else 3), b.formats.w_bits
    sb = -(-G * rows * w // bus)
    assert beats_per_block(b, shape) == sb
    word_bits = sb * bus
    nb = [-(-h // rows) for h in hidden]
    ins = [7] + hidden[:-1]
    assert len(img) == sum((i + h) * n for i, h, n in zip(ins, hidden, nb)) * word_bits // 8
    first = 0
    for ly, I, H, NB in zip(b.layers, ins, hidden, nb):
        for c in range(I + H):
            for g in range(G):
                col = np.asarray(ly.w_x[g])[:, c] if c < I else np.asarray(ly.w_h[g])[:, c - I]
                for j in range(NB * rows):
                    word = first + c * NB + j // rows
                    bit = word * word_bits + g * rows * w + (j % rows) * w
                    want = int(col[j]) if j < H else 0
                    assert _weight(img, bit, w) == want, (c, g, j)
            # The padding bits of each block word are zero.
            for blk in range(NB):
                word = first + c * NB + blk
                for bit in range(word * word_bits + G * rows * w, (word + 1) * word_bits):
                    assert (img[bit // 8] >> (bit % 8)) & 1 == 0
        first += (I + H) * NB
    slots = layer_map(7, hidden, rows, 1)
    assert [f.first_word for f in column_fetch(b, shape)] == [s.weight_base for s in slots]


def test_traffic():
    b = random_bundle(16, 64)
    shape = CoreShape(weights="axi")          # P = 16, 64-bit bus
    # A column: 4 blocks of 3 gates x 16 rows x 8 bits = 4 x 48 bytes.
    assert column_bytes(b, shape) == [192]
    assert dense_bytes(b, shape) == 80 * 192
    assert dram_bytes([[3], [0]], b, shape).tolist() == [576, 0]
    assert weight_bits(b, shape) == 3 * 80 * 4 * 16 * 8


def test_bursts_split_at_multiples_of_the_burst():
    assert column_bursts(0, 24, 16) == [16, 8]
    assert column_bursts(10, 24, 16) == [6, 16, 2]
    assert column_bursts(32, 16, 16) == [16]
    assert column_bursts(3, 2, 4) == [1, 1]


def test_one_column_by_hand():
    """I = 1, H = 4 = P (NB = 1), K = 1, E = 4, a GRU: a block word is 3·4·8 = 96 bits, two
    64-bit beats. Only x[0] kept: the scan takes S = 2 (two windows), the delta leaves at 0.
    Its burst (2 beats) is loaded at 1, its address taken at 2, its beats arrive at 2 + 10 and
    13, so the group issues at 14: D = 15, A0 = max(2, 15 + 3) = 18,
    cycles = 3 + 18 + 1 + 8 = 30 (the on-chip core: D = 2, A0 = 5, 17)."""
    shape = CoreShape(rows=4, columns=1, scan=4, weights="axi")
    fetch = ColumnFetch(beats_per_block=2, first_word=0, latency=10)
    dx, dh = np.array([True]), np.zeros(4, bool)
    assert step_cycles(dx, dh, shape, fetch=fetch) == 30
    assert step_cycles(dx, dh, replace(shape, weights="baked")) == 17
    # Nothing kept: nothing fetched, the on-chip schedule.
    assert step_cycles(np.zeros(1, bool), dh, shape, fetch=fetch) == \
        step_cycles(np.zeros(1, bool), dh, replace(shape, weights="baked"))
    with pytest.raises(ValueError, match="fetch"):
        step_cycles(dx, dh, shape)


def test_streaming_by_hand():
    """Eight kept columns of 2 beats (one burst each), latency 4, enough bursts in flight: the
    R channel is busy back to back after the first burst, so the last column's last beat
    arrives 2·8 − 1 cycles after the first beat. H = 4 (NB = 1), K = 1, E = 8, x = 8 inputs
    all kept: they leave the scheduler at 0..7 and their loads go out at 1..8 (one a cycle),
    first beat at 1 + 1 + 4 = 6, last at 6 + 15 = 21; the last group issues at 22, D = 23,
    A0 = 26, cycles = 3 + 26 + 1 + 8 = 38."""
    shape = CoreShape(rows=4, columns=1, scan=8, weights="axi", outstanding=8, buffer=16)
    fetch = ColumnFetch(beats_per_block=2, latency=4)
    assert step_cycles(np.ones(8, bool), np.zeros(4, bool), shape, fetch=fetch) == 38
    # Two bursts in flight: burst j is loaded no earlier than one cycle after burst j − 2's
    # last beat. Loads (first beat, last beat): 1 (6, 7), 2 (8, 9), 8 (13, 14), 10 (15, 16),
    # 15 (20, 21), 17 (22, 23), 22 (27, 28), 24 (29, 30): D = 32, A0 = 35, 47 cycles.
    assert step_cycles(np.ones(8, bool), np.zeros(4, bool), replace(shape, outstanding=2),
                       fetch=fetch) == 47
    # A buffer of 2 columns: column n's load waits until column n − 2's group (K = 1) has
    # issued (m + NB). Groups issue at 8, 10, 16, 18, 24, 26, 32, 34 (loads 1, 2, 9, 11, 17,
    # 19, 25, 27): D = 35, A0 = 38, 50 cycles.
    assert step_cycles(np.ones(8, bool), np.zeros(4, bool), replace(shape, buffer=2),
                       fetch=fetch) == 50


def test_memory_terms_grow_with_latency_and_bytes():
    rng = np.random.default_rng(1)
    shape = CoreShape(rows=16, columns=2, scan=16, weights="axi")
    dx, dh = rng.random(40) < 0.3, rng.random(64) < 0.2
    cyc = [step_cycles(dx, dh, shape, fetch=ColumnFetch(beats_per_block=6, latency=lat))
           for lat in (1, 8, 32, 100)]
    assert cyc == sorted(cyc) and cyc[0] < cyc[-1]
    # Memory-bound: at least every kept column's beats on the one R channel.
    nnz = int(dx.sum() + dh.sum())
    assert cyc[0] >= nnz * 4 * 6
