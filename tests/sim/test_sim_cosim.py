"""Verilator co-simulation of the generated core against the golden model, bit-exact: h of every
step, nnz counters, and the cycles the core measured equal the cycle model, in every test.

The two small cores of :mod:`drnn_sim.cores` (awkward sizes) share their cached builds.
"""

from dataclasses import replace

import numpy as np
import pytest

from drnn_hw.golden import run as golden_run
from drnn_sim.check import assert_matches_golden, mismatches, sparse_walk
from drnn_sim.cores import CORES, core as make_core
from drnn_sim.cosim import simulate
from drnn_sim.runner import SimulationError

@pytest.fixture(scope="module", params=sorted(CORES))
def core(request):
    return make_core(request.param)


def _check(bundle, shape, x, lengths=None, **kw):
    """The run against the golden model. Its prescans (issue #10's step overlap): frames back
    to back, those of the golden model's default; one frame at a time (``lockstep``), 0;
    with stalls, the core's own (the cycles are then the model's for them)."""
    r = simulate(bundle, shape, x, lengths, **kw)
    if kw.get("lockstep"):
        g = golden_run(bundle, x, lengths, shape, prescan=0)
    elif any(kw.get(k, 1.0) < 1.0 for k in ("x_valid_prob", "h_ready_prob")):
        g = golden_run(bundle, x, lengths, shape, prescan=r.prescan)
    else:
        g = golden_run(bundle, x, lengths, shape)
    assert_matches_golden(r, g)
    assert np.array_equal(r.steps_reg, np.cumsum(g.lengths)), \
        f"STEPS register after each sequence {r.steps_reg}, expected {np.cumsum(g.lengths)}"
    assert r.status_end & 2 == 0, f"FRAME_ERROR set after well-formed frames: {r.status_end:#x}"
    return r, g


def test_random_sequences_ragged(core):
    bundle, shape = core
    rng = np.random.default_rng(10)
    x = sparse_walk(rng, 4, 24, bundle.input_size, bundle.formats.act)
    r, g = _check(bundle, shape, x, lengths=[24, 9, 0, 17])
    # The run exercised both sparse and dense steps (the test means something).
    nnz = g.flat("nnz_dx") + g.flat("nnz_dh")
    assert nnz.min() < nnz.max()
    # Each status.steps sample counts up by one per frame.
    assert list(r.steps[0, :24]) == list(range(1, 25))


def test_zero_deltas_repeated_input(core):
    """Identical frames: after the first steps Δx is 0, and once h settles nothing is kept."""
    bundle, shape = core
    x = np.tile(sparse_walk(np.random.default_rng(3), 1, 1, bundle.input_size,
                            bundle.formats.act), (2, 30, 1))
    _, g = _check(bundle, shape, x)
    assert g.nnz_dx[0, 1:].sum() == 0


def _extreme_inputs(bundle, T=16):
    """Inputs at both ends of the code range: alternating every step, held, mixed, and a
    cycle (+max aligned with the signs of W_ir row 0, 0, -max aligned, 0) that drives M_r[0]
    past the accumulator range and back."""
    a = bundle.formats.act
    alt = np.where(np.arange(T) % 2 == 0, a.max, a.min)
    x = np.empty((4, T, bundle.input_size), np.int64)
    x[0] = alt[:, None]
    x[1] = a.min
    x[2] = np.where((np.arange(T)[:, None] + np.arange(bundle.input_size)) % 2, a.min, a.max)
    sign = np.where(bundle.w_x[0, 0] < 0, -1, 1)
    phase = np.select([np.arange(T) % 4 == 0, np.arange(T) % 4 == 2], [1, -1], 0)[:, None]
    x[3] = np.where(phase == 0, 0, np.where(phase * sign > 0, a.max, a.min))
    return x


def test_saturation_limits(core):
    bundle, shape = core
    _check(bundle, shape, _extreme_inputs(bundle))


def test_saturation_reaches_accumulator():
    """On the odd core (24-bit accumulator) the extreme inputs do saturate the delta memories:
    the golden result differs from the same model with a 32-bit accumulator, so the previous
    test covers accumulator saturation, not only activation narrowing."""
    bundle, shape = make_core("odd")
    wide = replace(bundle, formats=replace(bundle.formats, acc_bits=32))
    x = _extreme_inputs(bundle)
    assert not np.array_equal(golden_run(bundle, x, shape=shape).h,
                              golden_run(wide, x, shape=shape).h)


@pytest.mark.parametrize("x_prob,h_prob", [(0.35, 1.0), (1.0, 0.25), (0.4, 0.3)])
def test_stalls_on_both_streams(core, x_prob, h_prob):
    """Random valid gaps on x and ready gaps on h: nothing lost, duplicated or reordered (every
    step's h matches), and stall cycles are not counted (cycles still equal the model)."""
    bundle, shape = core
    x = sparse_walk(np.random.default_rng(5), 2, 14, bundle.input_size, bundle.formats.act)
    _check(bundle, shape, x, lengths=[14, 6], x_valid_prob=x_prob, h_ready_prob=h_prob,
           stall_seed=int(x_prob * 100 + h_prob * 10))


def test_threshold_change_between_sequences(core):
    """THETA_X/THETA_H written between sequences apply from the next sequence on."""
    bundle, shape = core
    a = bundle.formats.act
    x = sparse_walk(np.random.default_rng(8), 4, 12, bundle.input_size, a, step=0.4)
    thetas = [(0, 0), (int(0.3 * 2 ** a.frac), 0), (0, int(0.1 * 2 ** a.frac)),
              (int(0.2 * 2 ** a.frac), int(0.05 * 2 ** a.frac))]
    r = simulate(bundle, shape, x, theta_x=[t[0] for t in thetas],
                 theta_h=[t[1] for t in thetas])
    kept = []
    for n, (tx, th) in enumerate(thetas):
        g = golden_run(bundle.with_thresholds(tx, th), x[n:n + 1], shape=shape)
        one = type(g)(h=r.h[n:n + 1], nnz_dx=r.nnz_dx[n:n + 1], nnz_dh=r.nnz_dh[n:n + 1],
                      cycles=r.cycles[n:n + 1], lengths=r.lengths[n:n + 1])
        assert not mismatches(one, g), f"sequence {n} (θ={tx},{th}): {mismatches(one, g)}"
        kept.append(int(g.nnz_dx.sum() + g.nnz_dh.sum()))
    assert kept[0] > min(kept[1:]), "the thresholds did not change the sparsity"


def test_hung_core_fails_instead_of_running_forever(tmp_path):
    """An output stream that never becomes ready stops the run with a timeout error."""
    bundle, shape = make_core("tiny")
    x = sparse_walk(np.random.default_rng(1), 1, 3, bundle.input_size, bundle.formats.act)
    with pytest.raises(SimulationError, match="SimTimeoutError"):
        simulate(bundle, shape, x, h_ready_prob=0.0, step_limit=300, workdir=tmp_path)


@pytest.mark.parametrize("lockstep", [True, False])
def test_frame_latency_and_interval_as_the_host_sees_them(core, lockstep):
    # Timestamps of the last x beat in and the last h beat out, per frame. One frame at a
    # time (lockstep): the latency is the step's cycles plus the frame I/O of the cycle model;
    # back to back: consecutive h frames are the step's cycles apart (its scan started during
    # the AP of the step before, issue #10's step overlap, and its cycles count from the
    # cycle after that step's commit). Every step after the first (the first waits for
    # RESET_STATE's bias refill).
    from drnn_hw.cycle_model import beat_lags, frame_interval, frame_latency

    bundle, shape = core
    x = sparse_walk(np.random.default_rng(21), 2, 12, bundle.input_size, bundle.formats.act)
    r, g = _check(bundle, shape, x, lockstep=lockstep)
    lags = beat_lags(bundle.hidden_size, shape.rows, shape.scan)
    if lockstep:
        np.testing.assert_array_equal((r.h_done - r.x_done)[:, 1:],
                                      frame_latency(g.cycles[:, 1:], lags))
    else:
        np.testing.assert_array_equal(np.diff(r.h_done, axis=1),
                                      frame_interval(g.cycles[:, 1:], 1, shape.step_overlap))
    assert g.cycles.min() < g.cycles.max()       # steps of different lengths
