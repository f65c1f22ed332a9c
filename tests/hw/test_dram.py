"""The DRAM image of a core with its weights in DRAM (its documented layout, read back from the
bytes independently of how it is written), its traffic, and the cycle model's memory terms
(hand-worked schedules; the RTL's exactness is tests/sim/test_sim_axi.py's)."""

import math
from dataclasses import replace

import numpy as np
import pytest

from drnn_hw.balance import prune_bundle
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
    cycles = 3 + 18 + 1 + 12 = 34 (the on-chip core: D = 2, A0 = 5, 21)."""
    shape = CoreShape(rows=4, columns=1, scan=4, weights="axi")
    fetch = ColumnFetch(beats_per_block=2, first_word=0, latency=10)
    dx, dh = np.array([True]), np.zeros(4, bool)
    assert step_cycles(dx, dh, shape, fetch=fetch) == 34
    assert step_cycles(dx, dh, replace(shape, weights="baked")) == 21
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
    A0 = 26, cycles = 3 + 26 + 1 + 12 = 42."""
    shape = CoreShape(rows=4, columns=1, scan=8, weights="axi", outstanding=8, buffer=16)
    fetch = ColumnFetch(beats_per_block=2, latency=4)
    assert step_cycles(np.ones(8, bool), np.zeros(4, bool), shape, fetch=fetch) == 42
    # Two bursts in flight: burst j is loaded no earlier than one cycle after burst j − 2's
    # last beat. Loads (first beat, last beat): 1 (6, 7), 2 (8, 9), 8 (13, 14), 10 (15, 16),
    # 15 (20, 21), 17 (22, 23), 22 (27, 28), 24 (29, 30): D = 32, A0 = 35, 51 cycles.
    assert step_cycles(np.ones(8, bool), np.zeros(4, bool), replace(shape, outstanding=2),
                       fetch=fetch) == 51
    # A buffer of 2 columns: column n's load waits until column n − 2's group (K = 1) has
    # issued (m + NB). Groups issue at 8, 10, 16, 18, 24, 26, 32, 34 (loads 1, 2, 9, 11, 17,
    # 19, 25, 27): D = 35, A0 = 38, 54 cycles.
    assert step_cycles(np.ones(8, bool), np.zeros(4, bool), replace(shape, buffer=2),
                       fetch=fetch) == 54


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


# --- compressed weights in DRAM (pair words) -------------------------------------------------

def _field(image: bytes, bit: int, bits: int) -> int:
    """The unsigned ``bits``-bit field at bit ``bit`` of ``image`` (little-endian bits)."""
    return sum(((image[(bit + i) // 8] >> ((bit + i) % 8)) & 1) << i for i in range(bits))


def _slice(w, c: int, p: int, P: int):
    """Slice p of column c of ``w`` (H, C): the (block, weight) of its non-zero weights in
    increasing row order, and the blocks of its real rows (row b·P + p < H)."""
    H = w.shape[0]
    real = [b for b in range(-(-H // P)) if b * P + p < H]
    return [(b, int(w[b * P + p, c])) for b in real if w[b * P + p, c] != 0], real


@pytest.mark.parametrize("cell,hidden,rows,gamma,bus", [
    ("gru", [13], 4, 0.5, 64),            # NB 4, kept 2; index 2 bits, pair 10, word 120 bits
    ("lstm", [10, 7], 4, 0.5, 32),        # NB 3 / 2, kept 2 / 1; ΣNB 5: index 3 bits
    ("gru", [11, 3], 4, 0.75, 128),       # NB 3 / 1, kept 1 / 1
])
def test_compressed_image_decodes_to_the_pruned_weights(cell, hidden, rows, gamma, bus):
    """Read back from the bytes by the documented layout (not with the packer): each pair
    word of column c holds, per gate and slice, the slice's next non-zero weight (rows in
    increasing order) with its global block, then padding pairs of value 0 on a real row of
    the slice; together the kept words give back every non-zero weight of the pruned bundle."""
    b = prune_bundle(random_stacked_bundle(6, hidden, seed=4, weight_scale=2.0, cell=cell),
                     rows, gamma)
    shape = CoreShape(rows=rows, columns=2, scan=4, weights="axi", bus_bits=bus,
                      weight_format="compressed")
    img = dram_image(b, shape)
    G, w = (4 if cell == "lstm" else 3), b.formats.w_bits
    nb = [-(-h // rows) for h in hidden]
    kept = [ly.balance.kept for ly in b.layers]
    index = max(1, math.ceil(math.log2(sum(nb))))        # the global block, ΣNB values
    pb = w + index
    sb = -(-G * rows * pb // bus)
    assert beats_per_block(b, shape) == sb
    word_bits = sb * bus
    ins = [6] + hidden[:-1]
    assert len(img) == sum((i + h) * k for i, h, k in zip(ins, hidden, kept)) * word_bits // 8
    first, block_base = 0, 0
    for ly, I, H, NB, kp in zip(b.layers, ins, hidden, nb, kept):
        for g in range(G):
            wm = np.concatenate([np.asarray(ly.w_x[g]), np.asarray(ly.w_h[g])], axis=1)
            for c in range(I + H):
                for p in range(rows):
                    nz, real = _slice(wm, c, p, rows)
                    assert len(nz) <= kp
                    got = []
                    for j in range(kp):
                        bit = (first + c * kp + j) * word_bits + g * rows * pb + p * pb
                        v = _field(img, bit, w)
                        v = v - (1 << w) if v >> (w - 1) else v
                        got.append((_field(img, bit + w, index) - block_base, v))
                    assert got[:len(nz)] == nz, (g, c, p)
                    for blk, v in got[len(nz):]:
                        assert v == 0 and (blk in real or not real), (g, c, p, blk)
        # The padding bits of every pair word are zero.
        for word in range(first, first + (I + H) * kp):
            for bit in range(word * word_bits + G * rows * pb, (word + 1) * word_bits):
                assert (img[bit // 8] >> (bit % 8)) & 1 == 0
        first += (I + H) * kp
        block_base += NB
    # The layers' first pair words: each region after the previous one, kept words a column.
    want = np.cumsum([0] + [(i + h) * k for i, h, k in zip(ins, hidden, kept)])[:-1]
    assert [f.first_word for f in column_fetch(b, shape)] == want.tolist()
    assert all(f.beats_per_block == sb for f in column_fetch(b, shape))


def test_compressed_traffic_falls_with_both_sparsities():
    """I = 16, H = 64, P = 16 (NB 4), γ = 0.75 (kept 1), a 64-bit bus: a pair word is 3 gates ·
    16 pairs · (8 + 2) bits = 480 bits, 8 beats (64 bytes); a dense block word 384 bits, 6
    beats. A kept column costs 1 pair word (64 bytes) against 4 block words (192 bytes)."""
    b = prune_bundle(random_bundle(16, 64, seed=1), 16, 0.75)
    shape = CoreShape(weights="axi", weight_format="compressed")
    dense = replace(shape, weight_format="dense")
    assert column_bytes(b, shape) == [64] and column_bytes(b, dense) == [192]
    assert dense_bytes(b, shape) == 80 * 64 == len(dram_image(b, shape))
    assert dram_bytes([[3], [0]], b, shape).tolist() == [192, 0]
    # The on-chip banks the compressed core would have (unchanged by where they live).
    assert weight_bits(b, shape) == weight_bits(b, replace(shape, weights="baked"))
    # A compressed shape on a P the pattern was not made for is refused.
    with pytest.raises(ValueError, match="balanced for P = 16"):
        dram_image(b, replace(shape, rows=8))


def test_compressed_one_column_by_hand():
    """I = 1, H = 8, P = 4 (NB = 2), kept = 1, K = 1, E = 4, a GRU, one pair word of 2 beats,
    latency 10. Only x[0] kept: S = 3 (three windows), the delta leaves at 0 (release 1). Its
    burst (kept · SB = 2 beats) is loaded at 1, taken at 2, beats at 12 and 13: the group
    issues at 14 for kept = 1 slot, D = 15; A0 = max(3, D + mxv_drain(1) = 18) = 18;
    cycles = 3 + 18 + NB + 12 = 35. The dense AXI core fetches NB = 2 block words (4 beats of
    the same SB): beats 12..15, issue 16..17, D = 18, A0 = 18 + mxv_drain(2) = 20, 37 cycles;
    the baked compressed core: D = 2, A0 = 5, 22 cycles."""
    from drnn_hw.spatial import spatial_step_cycles

    shape = CoreShape(rows=4, columns=1, scan=4, weights="axi", weight_format="compressed")
    fetch = ColumnFetch(beats_per_block=2, first_word=0, latency=10)
    dx, dh = np.array([True]), np.zeros(8, bool)
    assert spatial_step_cycles(dx, dh, shape, 1, fetch=fetch) == 35
    assert step_cycles(dx, dh, replace(shape, weight_format="dense"), fetch=fetch) == 37
    assert spatial_step_cycles(dx, dh, replace(shape, weights="baked"), 1) == 22
    # Two x columns kept (I = 2, K = 1): column 1's pair word starts at beat (0 + 1·kept)·SB
    # = 2. Loads at 1 and 2, beats 12..13 and 14..15: groups at 14 and 16 (after 15 + 1),
    # D = 17, A0 = 20, 37 cycles; with a burst of 2 beats the same (no column crosses one).
    dx2 = np.array([True, True])
    assert spatial_step_cycles(dx2, dh, shape, 1, fetch=fetch) == 37
    assert spatial_step_cycles(dx2, dh, replace(shape, burst=2), 1, fetch=fetch) == 37
    with pytest.raises(ValueError, match="fetch"):
        spatial_step_cycles(dx, dh, shape, 1)


def test_golden_cycles_of_a_compressed_axi_core():
    """golden.run on a compressed AXI shape returns, per layer, the spatial model with the
    memory terms of the pair-word image, recomputed here from the kept-delta masks."""
    from drnn_hw.golden import run
    from drnn_hw.spatial import delta_masks, layer_kept, spatial_cycles_for_masks

    b = prune_bundle(random_stacked_bundle(5, [9, 6], seed=2, theta_x=[0.05, 0.05],
                                           theta_h=[0.05, 0.05], weight_scale=2.0), 4, 0.75)
    shape = CoreShape(rows=4, columns=2, scan=3, weights="axi", weight_format="compressed",
                      bus_bits=32, burst=4)
    x = np.random.default_rng(0).integers(-3000, 3000, (2, 6, 5))
    g = run(b, x, shape=shape, dram_latency=7)
    masks = delta_masks(x, g.layer_h, [6, 6], [(ly.theta_x, ly.theta_h) for ly in b.layers])
    fetches = column_fetch(b, shape, 7)
    for l, (ly, (mx, mh)) in enumerate(zip(b.layers, masks)):
        # (Layer 0 with the prescan of frames back to back, the golden model's default.)
        want = spatial_cycles_for_masks(mx, mh, shape, layer_kept(ly, shape), b.cell,
                                        fetches[l], g.prescan if l == 0 else 0)
        assert np.array_equal(g.layer_cycles[..., l], want)
    assert np.array_equal(g.cycles, g.layer_cycles.sum(-1) + 1)
    # kept = 1 of NB = 3 and 2: a column is one pair word of 3·4·(8 + 3) = 132 bits (5 beats)
    # against 3 and 2 block words of 96 bits (3 beats each): less traffic, fewer cycles.
    dense = replace(shape, weight_format="dense")
    assert column_bytes(b, shape) == [20, 20] and column_bytes(b, dense) == [36, 24]
    d = run(b, x, shape=dense, dram_latency=7)
    assert g.cycles.sum() < d.cycles.sum()
    # At γ = 0.5 (kept 2 of 3) the pair words' block fields cost more than they save: 2 · 5
    # beats against 3 · 3 (the pairs pay off once kept/NB < w_bits / (w_bits + index bits),
    # rounded to whole beats).
    half = prune_bundle(random_stacked_bundle(5, [9, 6], seed=2), 4, 0.5)
    assert column_bytes(half, shape) == [40, 20] and column_bytes(half, dense) == [36, 24]



@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_weight_bits_of_a_compressed_runtime_core_is_its_banks(cell):
    """A compressed run-time core's on-chip check (the block-RAM test of ``drnn generate`` and
    ``drnn build``) counts what its elaborated weight banks hold, G memories of depth × width
    (maxima I 8, H 12, L 2, P 4: slots of 8 + 12 and 12 + 12 columns × kept_max 2 pair words; ΣNB = 6
    gives 3-bit block fields, 4 · (8 + 3) = 44-bit words); with --max-kept 3, 3 words a
    column. (The old count, the dense run-time banks, is another figure.)"""
    from amaranth.hdl import Fragment

    from drnn_hw.core import DeltaRNNCore
    from drnn_sim.cores import (COMPRESSED_RUNTIME_SHAPE, RUNTIME_MAXIMA,
                                compressed_runtime_models)

    b = compressed_runtime_models(cell)["A"]
    for maxima, kept_max in ((RUNTIME_MAXIMA, 2), (replace(RUNTIME_MAXIMA, kept=3), 3)):
        core = DeltaRNNCore(b, COMPRESSED_RUNTIME_SHAPE, maxima=maxima)
        top = core.elaborate(None)
        bank = top.submodules.weights
        Fragment.get(top, None)             # elaborates (uses) every block it made
        core._MustUse__silence = True       # its own elaborate was called directly
        gates = len(bank.channels)
        assert bank.depth == (8 + 12 + 12 + 12) * kept_max and bank.index_bits == 3
        held = gates * bank.depth * 4 * (b.formats.w_bits + bank.index_bits)
        assert weight_bits(b, COMPRESSED_RUNTIME_SHAPE, maxima) == held
        assert weight_bits(b, replace(COMPRESSED_RUNTIME_SHAPE, weight_format="dense"),
                           maxima) != held
