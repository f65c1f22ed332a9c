"""Verilator co-simulation of stacked cores (layers time-multiplexed on one set of
multipliers) against the golden model: h, nnz, the measured cycles and every layer's counters
(read over the bus at every step), bit- and cycle-exact, for L = 1, 2, 3 with layers of
different widths (one narrower than P), Θ > 0, random stalls, thresholds changed at run time,
sequences sent in chunks and a non-zero h0.
"""

import numpy as np
import pytest

from drnn_hw.bundle import random_stacked_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run as golden_run
from drnn_hw.numerics import Formats
from drnn_sim.check import assert_matches_golden, sparse_walk
from drnn_sim.cores import core as make_core
from drnn_sim.cosim import simulate

#: name -> (bundle, shape): L = 1 is the "odd" verification core; layer 1 of "two" (H = 3) and
#: layer 1 of "three" (H = 6) are narrower than P.
STACKS = {
    "one": lambda: make_core("odd"),
    "two": lambda: (random_stacked_bundle(7, [13, 3], formats=Formats(acc_bits=24), seed=5,
                                          theta_x=[0.05, 0.1], theta_h=[0.02, 0.05],
                                          weight_scale=2.0),
                    CoreShape(rows=4, columns=2, scan=3, step_overlap=False)),
    "three": lambda: (random_stacked_bundle(5, [9, 6, 11], seed=6, theta_x=[0.1, 0.0, 0.05],
                                            theta_h=[0.05, 0.1, 0.0]),
                      CoreShape(rows=8, columns=1, scan=4)),
    # "two" with issue #10's step overlap (the default; "one" and "two" are without it):
    # layer 0 scanned during the last layer's AP.
    "two-ov": lambda: (STACKS["two"]()[0], CoreShape(rows=4, columns=2, scan=3,
                                                     step_overlap=True)),
}


@pytest.fixture(scope="module", params=sorted(STACKS))
def stack(request):
    return STACKS[request.param]()


def _h0(bundle, rng, n):
    a = bundle.formats.act
    return [rng.integers(a.min // 2, a.max // 2, (n, ly.hidden_size)) for ly in bundle.layers]


def test_ragged_sequences_with_h0_and_stalls(stack):
    bundle, shape = stack
    rng = np.random.default_rng(20)
    x = sparse_walk(rng, 3, 14, bundle.input_size, bundle.formats.act)
    lengths = [14, 5, 9]
    h0 = _h0(bundle, rng, 3)
    r = simulate(bundle, shape, x, lengths, h0=h0, layer_stats=True, x_valid_prob=0.6,
                 h_ready_prob=0.5, stall_seed=4)
    g = golden_run(bundle, x, lengths, shape, h0=h0, prescan=r.prescan)   # (stalls)
    assert_matches_golden(r, g)
    assert r.status_end & 2 == 0
    # The run means something: h0 changed the result, and the layers kept different deltas.
    assert not np.array_equal(g.h, golden_run(bundle, x, lengths, shape).h)
    assert g.layer_nnz_dh.min() < g.layer_nnz_dh.max()


def test_thresholds_written_per_layer_at_run_time(stack):
    bundle, shape = stack
    L = bundle.num_layers
    rng = np.random.default_rng(21)
    x = sparse_walk(rng, 3, 10, bundle.input_size, bundle.formats.act)
    thetas = np.array([[(0, 0)] * L,
                       [(40 + 10 * l, 200 + 20 * l) for l in range(L)],
                       [(0, 60)] + [(30, 0)] * (L - 1)])
    r = simulate(bundle, shape, x, layer_thetas=thetas, layer_stats=True)
    for n in range(3):
        # (Reading the layer registers holds each output frame back, and with it the next
        # commit: the cycles are the model's for the prescans the core reported.)
        g = golden_run(bundle.with_layer_thresholds(thetas[n]) if L > 1 else
                       bundle.with_thresholds(*thetas[n][0]), x[n:n + 1], shape=shape,
                       prescan=r.prescan[n:n + 1])
        one = type(r)(**{**r.__dict__, **{k: getattr(r, k)[n:n + 1] for k in (
            "h", "nnz_dx", "nnz_dh", "cycles", "lengths", "layer_cycles", "layer_nnz_dx",
            "layer_nnz_dh", "prescan")}})
        assert_matches_golden(one, g)
    assert r.nnz_dh[0].sum() > r.nnz_dh[1].sum()      # Θ = 0 keeps more than a large Θ


def test_a_sequence_sent_in_chunks_equals_one_piece(stack):
    """The state survives between frames until RESET_STATE: chunks 2 and 3 are sent without
    it (after idle gaps), and the h of every step equals the whole sequence's."""
    bundle, shape = stack
    rng = np.random.default_rng(22)
    whole = sparse_walk(rng, 1, 18, bundle.input_size, bundle.formats.act)
    h0 = _h0(bundle, rng, 1)
    chunks = np.zeros((3, 8, bundle.input_size), np.int64)
    lengths = [8, 3, 7]
    for n, (a, b) in enumerate([(0, 8), (8, 11), (11, 18)]):
        chunks[n, :b - a] = whole[0, a:b]
    r = simulate(bundle, shape, chunks, lengths, h0=[h[[0, 0, 0]] for h in h0],
                 reset=[True, False, False], layer_stats=True, x_valid_prob=0.8, stall_seed=1)
    # (Stalls and the layer registers' reads: the model's cycles for the core's prescans; a
    # chunk's first step, sent after idle gaps, finds the core idle.)
    pre = np.concatenate([r.prescan[n, :lengths[n]] for n in range(3)])[None]
    assert pre[0, 8] == 0 and pre[0, 11] == 0
    g = golden_run(bundle, whole, shape=shape, h0=h0, prescan=pre)
    got = np.concatenate([r.h[n, :lengths[n]] for n in range(3)])
    assert np.array_equal(got, g.h[0])
    cycles = np.concatenate([r.cycles[n, :lengths[n]] for n in range(3)])
    assert np.array_equal(cycles, g.cycles[0])
    assert np.array_equal(np.concatenate([r.nnz_dx[n, :lengths[n]] for n in range(3)]),
                          g.nnz_dx[0])
    # A run that resets between chunks differs (the test can fail): its x̂ restarts at 0.
    reset = simulate(bundle, shape, chunks, lengths, h0=[h[[0, 0, 0]] for h in h0])
    assert not np.array_equal(reset.nnz_dx[1, :3], g.nnz_dx[0, 8:11])


def test_every_layers_h_on_the_output_stream_when_chosen():
    """--out-layers all: each output frame carries every layer's h (layer 0's first), under
    output stalls; the schedule and every counter are unchanged."""
    from dataclasses import replace

    bundle, shape = STACKS["three"]()
    shape = replace(shape, out_layers="all")
    x = sparse_walk(np.random.default_rng(23), 2, 9, bundle.input_size, bundle.formats.act)
    r = simulate(bundle, shape, x, [9, 4], layer_stats=True, h_ready_prob=0.4)
    g = golden_run(bundle, x, [9, 4], shape, prescan=r.prescan)   # (stalls)
    assert g.h.shape[-1] == 9 + 6 + 11
    assert_matches_golden(r, g)
    last = golden_run(bundle, x, [9, 4], replace(shape, out_layers="last"), prescan=r.prescan)
    assert np.array_equal(r.h[..., 15:], last.h) and np.array_equal(r.cycles, last.cycles)


def test_frames_back_to_back_and_one_at_a_time():
    # The host's view of a stacked core (the "two" stack; cycle model frame_interval and
    # frame_latency): back to back, h frames are the step's cycles apart (layer 0 of each
    # step after the first scanned during the last layer's AP of the one before, issue #10's
    # step overlap, and counted from the cycle after its commit); one at a time, the latency
    # is the step's cycles, started idle, plus the frame I/O.
    from drnn_hw.cycle_model import beat_lags, frame_interval, frame_latency

    bundle, shape = STACKS["two"]()
    x = sparse_walk(np.random.default_rng(22), 1, 10, bundle.input_size, bundle.formats.act)
    g = golden_run(bundle, x, shape=shape)
    lags = beat_lags([ly.hidden_size for ly in bundle.layers], shape.rows, shape.scan)
    b2b = simulate(bundle, shape, x)
    assert_matches_golden(b2b, g)
    np.testing.assert_array_equal(np.diff(b2b.h_done, axis=1),
                                  frame_interval(g.cycles[:, 1:], 2, shape.step_overlap))
    g = golden_run(bundle, x, shape=shape, prescan=0)
    one = simulate(bundle, shape, x, lockstep=True)
    assert_matches_golden(one, g)
    np.testing.assert_array_equal((one.h_done - one.x_done)[:, 1:],
                                  frame_latency(g.cycles[:, 1:], lags))


def test_every_layers_frame_streams_its_earlier_layers_first():
    # out_layers "all": the beats of layers 0 .. L-2 were written passes before the commit,
    # so they leave while the later layers run (cycle_model.beat_lags with the passes'
    # cycles); one frame at a time, the latency is the cycle model's to the cycle.
    from dataclasses import replace

    from drnn_hw.cycle_model import beat_lags, frame_latency, output_tail

    bundle, shape = STACKS["three"]()
    shape = replace(shape, out_layers="all")
    x = sparse_walk(np.random.default_rng(24), 1, 8, bundle.input_size, bundle.formats.act)
    g = golden_run(bundle, x, shape=shape, prescan=0)     # one frame at a time
    one = simulate(bundle, shape, x, lockstep=True)
    assert_matches_golden(one, g)
    hidden = [ly.hidden_size for ly in bundle.layers]
    lags = beat_lags(hidden, shape.rows, shape.scan, "all", g.layer_cycles[:, 1:])
    assert lags.shape == (1, 7, -(-sum(hidden) // shape.scan))
    np.testing.assert_array_equal((one.h_done - one.x_done)[:, 1:],
                                  frame_latency(g.cycles[:, 1:], lags))
    # Only the beats of the last pass's blocks are still to go at the commit: fewer than the
    # frame's WH beats, which all followed the commit before the output streamed.
    assert (output_tail(lags) < lags.shape[-1]).all()
