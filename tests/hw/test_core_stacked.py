"""The stacked core in Amaranth's simulator against the golden model (the Verilator benches
in tests/sim/test_sim_stacked.py cover more): two layers time-multiplexed on one set of
multipliers, the second narrower than P, with h0, stalls, per-layer thresholds written at run
time, and a sequence continued without RESET_STATE."""

from dataclasses import replace

import numpy as np
import pytest

from drnn.engines.amaranth import run as amaranth_run
from drnn.engines.amaranth import simulate
from drnn_hw.bundle import random_stacked_bundle
from drnn_hw.core import DeltaGRUCore
from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run as golden_run

BUNDLE = random_stacked_bundle(5, [9, 3], theta_x=[0.1, 0.05], theta_h=[0.05, 0.1], seed=3)
SHAPE = CoreShape(rows=4, columns=2, scan=4)


def _x(seed, n, t):
    return np.random.default_rng(seed).integers(-300, 300, (n, t, 5))


def test_two_layers_share_the_multipliers():
    core = DeltaGRUCore(BUNDLE, SHAPE)
    core._MustUse__silence = True      # only its layer map is looked at
    assert core.P == 4 and [s.blocks for s in core.map] == [3, 1]
    assert core.map[1].block_base == 3 and core.map[1].weight_base == (5 + 9) * 3


@pytest.mark.parametrize("overlap", [False, True], ids=["", "overlap"])
def test_h0_and_stalls_bit_and_cycle_exact(overlap):
    shape = replace(SHAPE, step_overlap=overlap)
    x = _x(1, 2, 4)
    rng = np.random.default_rng(2)
    h0 = [rng.integers(-200, 200, (2, 9)), rng.integers(-200, 200, (2, 3))]
    a = amaranth_run(BUNDLE, x, shape=shape, h0=h0, stall_seed=3, x_valid_prob=0.6,
                     h_ready_prob=0.5)
    # (Stalls: the model's cycles for the core's prescans, 0 without the step overlap.)
    g = golden_run(BUNDLE, x, shape=shape, h0=h0, prescan=a.prescan)
    assert a.prescan.any() == overlap
    assert np.array_equal(a.h, g.h) and np.array_equal(a.cycles, g.cycles)
    assert np.array_equal(a.nnz_dx, g.nnz_dx) and np.array_equal(a.nnz_dh, g.nnz_dh)
    assert not np.array_equal(g.h, golden_run(BUNDLE, x, shape=SHAPE).h)


def test_per_layer_thresholds_written_at_run_time():
    x = _x(4, 2, 4)
    thetas = [[(30, 10), (0, 90)], [(0, 0), (50, 40)]]
    res = simulate(BUNDLE, [x[0], x[1]], SHAPE, thetas=thetas)
    for n in range(2):
        g = golden_run(BUNDLE.with_layer_thresholds(thetas[n]), x[n:n + 1], shape=SHAPE)
        assert np.array_equal(res[n]["h"], g.h[0]) and np.array_equal(res[n]["cycles"],
                                                                      g.cycles[0])
        assert np.array_equal(res[n]["nnz_dh"], g.nnz_dh[0])


def test_a_sequence_continued_without_reset_equals_one_piece():
    shape = replace(SHAPE, step_overlap=True)       # (issue #10's step overlap)
    x = _x(5, 1, 6)
    res = simulate(BUNDLE, [x[0, :4], x[0, 4:]], shape, reset_between=False)
    g = golden_run(BUNDLE, x, shape=shape,
                   prescan=np.concatenate([res[0]["prescan"], res[1]["prescan"]])[None])
    assert res[1]["prescan"][0] == 0 and (res[1]["prescan"][1:] > 0).all()
    assert np.array_equal(np.concatenate([res[0]["h"], res[1]["h"]]), g.h[0])
    assert np.array_equal(np.concatenate([res[0]["cycles"], res[1]["cycles"]]), g.cycles[0])
