"""Verilator co-simulation of the LSTM core (issue #12) against the golden model, bit- and
cycle-exact on every step: the cell state driven into saturation, accumulator saturation, and
stacked LSTMs (L = 2 and 3, layers of different widths, one narrower than P) with h0, random
stalls, every layer's thresholds written at run time, sequences sent in chunks, and every
layer's h on the stream (the 3-layer core). (The single-layer LSTM verification cores of :mod:`drnn_sim.cores`
also run every test of ``test_sim_cosim.py``, ``test_sim_benches.py`` and ``test_lint.py``.)
"""

from dataclasses import replace

import numpy as np
import pytest

from drnn_hw.bundle import random_stacked_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run as golden_run
from drnn_hw.numerics import Formats
from drnn_sim.check import assert_matches_golden, sparse_walk
from drnn_sim.cores import core as make_core
from drnn_sim.cosim import simulate

#: name -> (bundle, shape): layer 1 of "two" (H = 3) and layer 1 of "three" (H = 6) are
#: narrower than P; "three" puts every layer's h on the output stream (one build less than a
#: separate core for that).
STACKS = {
    "two": lambda: (random_stacked_bundle(7, [13, 3], formats=Formats(acc_bits=24), seed=5,
                                          theta_x=[0.05, 0.1], theta_h=[0.02, 0.05],
                                          weight_scale=2.0, cell="lstm"),
                    CoreShape(rows=4, columns=2, scan=3)),
    "three": lambda: (random_stacked_bundle(5, [9, 6, 11], seed=6, theta_x=[0.1, 0.0, 0.05],
                                            theta_h=[0.05, 0.1, 0.0], cell="lstm"),
                      CoreShape(rows=8, columns=1, scan=4, out_layers="all")),
}


def test_cell_state_saturates():
    """lstm-tiny (I = 1, H = 5 < P = 8): c runs into both limits of the cell format over 150
    steps with random stalls; the golden run really saturates c, and the RTL follows it."""
    bundle, shape = make_core("lstm-tiny")
    T = 150
    x = np.zeros((1, T, 1), np.int64)
    x[0, :12, 0] = np.random.default_rng(2).integers(-300, 300, 12)
    r = simulate(bundle, shape, x, x_valid_prob=0.7, h_ready_prob=0.6, stall_seed=3)
    # (Stalls: the model's cycles for the core's prescans.)
    g = golden_run(bundle, x, shape=shape, prescan=r.prescan)
    assert_matches_golden(r, g)
    cell = bundle.formats.cell
    c = g.state[0].c[0]
    assert (c[0::2] == cell.max).all() and (c[1::2] == cell.min).all()


def test_accumulator_saturates_on_the_lstm_core():
    """lstm-odd (24-bit accumulator, large weights): inputs at the code limits saturate the
    delta memories (the golden result differs from a 32-bit accumulator's), bit-exact."""
    bundle, shape = make_core("lstm-odd")
    a = bundle.formats.act
    T = 16
    # Per gate k: a cycle (+max aligned with the signs of W_x[k] row 0, 0, −max aligned, 0)
    # that drives M_k[0] past the accumulator range and back.
    phase = np.select([np.arange(T) % 4 == 0, np.arange(T) % 4 == 2], [1, -1], 0)[:, None]
    x = np.stack([np.where(phase == 0, 0, np.where(
        phase * np.where(bundle.w_x[k, 0] < 0, -1, 1) > 0, a.max, a.min)) for k in range(4)])
    r = simulate(bundle, shape, x, h_ready_prob=0.5, stall_seed=2)
    # (Stalls: the model's cycles for the core's prescans.)
    g = golden_run(bundle, x, shape=shape, prescan=r.prescan)
    assert_matches_golden(r, g)
    wide = replace(bundle, formats=replace(bundle.formats, acc_bits=32))
    assert not np.array_equal(g.h, golden_run(wide, x, shape=shape).h)


@pytest.fixture(scope="module", params=sorted(STACKS))
def stack(request):
    return STACKS[request.param]()


def _h0(bundle, rng, n):
    a = bundle.formats.act
    return [rng.integers(a.min // 2, a.max // 2, (n, ly.hidden_size)) for ly in bundle.layers]


def test_ragged_sequences_with_h0_and_stalls(stack):
    bundle, shape = stack
    rng = np.random.default_rng(20)
    x = sparse_walk(rng, 3, 12, bundle.input_size, bundle.formats.act)
    lengths = [12, 5, 9]
    h0 = _h0(bundle, rng, 3)
    r = simulate(bundle, shape, x, lengths, h0=h0, layer_stats=True, x_valid_prob=0.6,
                 h_ready_prob=0.5, stall_seed=4)
    # (Stalls: the model's cycles for the core's prescans.)
    g = golden_run(bundle, x, lengths, shape, h0=h0, prescan=r.prescan)
    assert_matches_golden(r, g)
    assert r.status_end & 2 == 0
    assert not np.array_equal(g.h, golden_run(bundle, x, lengths, shape).h)
    assert g.layer_nnz_dh.min() < g.layer_nnz_dh.max()
    if shape.out_layers == "all":
        assert g.h.shape[-1] == sum(ly.hidden_size for ly in bundle.layers)


def test_thresholds_written_per_layer_at_run_time(stack):
    bundle, shape = stack
    L = bundle.num_layers
    rng = np.random.default_rng(21)
    x = sparse_walk(rng, 3, 8, bundle.input_size, bundle.formats.act)
    thetas = np.array([[(0, 0)] * L,
                       [(40 + 10 * l, 200 + 20 * l) for l in range(L)],
                       [(0, 60)] + [(30, 0)] * (L - 1)])
    r = simulate(bundle, shape, x, layer_thetas=thetas, layer_stats=True)
    for n in range(3):
        g = golden_run(bundle.with_layer_thresholds(thetas[n]), x[n:n + 1], shape=shape,
                       prescan=r.prescan[n:n + 1])    # (the layer registers' reads)
        one = type(r)(**{**r.__dict__, **{k: getattr(r, k)[n:n + 1] for k in (
            "h", "nnz_dx", "nnz_dh", "cycles", "lengths", "layer_cycles", "layer_nnz_dx",
            "layer_nnz_dh", "prescan")}})
        assert_matches_golden(one, g)
    assert r.nnz_dh[0].sum() > r.nnz_dh[1].sum()


def test_a_sequence_sent_in_chunks_equals_one_piece(stack):
    """h and c survive between frames until RESET_STATE: chunks 2 and 3 are sent without it,
    and every step's h equals the whole sequence's; a run that resets between chunks differs."""
    bundle, shape = stack
    rng = np.random.default_rng(22)
    whole = sparse_walk(rng, 1, 16, bundle.input_size, bundle.formats.act)
    h0 = _h0(bundle, rng, 1)
    chunks = np.zeros((3, 7, bundle.input_size), np.int64)
    lengths = [7, 3, 6]
    for n, (a, b) in enumerate([(0, 7), (7, 10), (10, 16)]):
        chunks[n, :b - a] = whole[0, a:b]
    r = simulate(bundle, shape, chunks, lengths, h0=[h[[0, 0, 0]] for h in h0],
                 reset=[True, False, False], layer_stats=True, x_valid_prob=0.8, stall_seed=1)
    pre = np.concatenate([r.prescan[n, :lengths[n]] for n in range(3)])[None]   # (stalls)
    g = golden_run(bundle, whole, shape=shape, h0=h0, prescan=pre)
    assert np.array_equal(np.concatenate([r.h[n, :lengths[n]] for n in range(3)]), g.h[0])
    assert np.array_equal(np.concatenate([r.cycles[n, :lengths[n]] for n in range(3)]),
                          g.cycles[0])
    reset = simulate(bundle, shape, chunks, lengths, h0=[h[[0, 0, 0]] for h in h0])
    assert not np.array_equal(reset.h[1, :3], g.h[0, 7:10])
