"""Run-time loading in Verilator: one core generated per cell with ``--weights runtime``
maxima (I ≤ 8, H ≤ 12, L ≤ 2), then several models loaded into it over the register bus, as
a host does (registers read back, the bundle checked, the writes), each run against the golden
model: h, nnz, the measured cycles and every layer's counters bit- and cycle-exact, the
cycles those of the cycle model on the loaded sizes.

The models: the one the core was generated from (A, 2 layers of the maxima's I and H), a
smaller single-layer one (B: I = 5, H = 7, H not a multiple of P = 4, E = 4), and another
2-layer one (C: I = 6, H = 3, 11, the first narrower than P). Two Verilator builds in all.
"""

import numpy as np
import pytest

from drnn_hw.bundle import random_bundle
from drnn_hw.golden import run as golden_run
from drnn_sim.check import assert_matches_golden, sparse_walk
from drnn_sim.cores import RUNTIME_MAXIMA as MAXIMA
from drnn_sim.cores import RUNTIME_SHAPE as SHAPE
from drnn_sim.cores import runtime_models as _models
from drnn_sim.cosim import generate_cached, simulate


@pytest.fixture(scope="module", params=["gru", "lstm"])
def runtime_core(request):
    models = _models(request.param)
    core_dir, manifest = generate_cached(models["A"], SHAPE, maxima=MAXIMA)
    assert manifest["weights"] == "runtime"
    return core_dir, models


def test_models_loaded_one_after_the_other(runtime_core):
    core_dir, models = runtime_core
    for name in ("B", "A", "C", "B"):           # B twice: after A and C, no stale state
        bundle = models[name]
        rng = np.random.default_rng(len(name) + bundle.input_size)
        x = sparse_walk(rng, 2, 9, bundle.input_size, bundle.formats.act)
        r = simulate(bundle, SHAPE, x, [9, 6], core_dir=core_dir, layer_stats=True)
        g = golden_run(bundle, x, [9, 6], SHAPE, prescan=r.prescan)   # (layer registers read)
        assert_matches_golden(r, g)
        # (The golden model's cycles are the cycle model's on the loaded sizes: I_l, H_l.)
        assert r.perf["load_writes"] > 0 and r.perf["load_cycles"] >= r.perf["load_writes"]
        assert r.status_end & 2 == 0


def test_the_load_matters(runtime_core):
    """Negative control: model B's golden result is not what the core computes for B's inputs
    with another model's weights, so a load that wrote nothing would fail the test above."""
    _, models = runtime_core
    b, c = models["B"], models["C"]
    x = sparse_walk(np.random.default_rng(0), 1, 9, b.input_size, b.formats.act)
    other = random_bundle(5, 7, seed=9, theta_x=0.05, theta_h=0.1, cell=b.cell,
                          weight_scale=1.5)
    assert not np.array_equal(golden_run(b, x, None, SHAPE).h,
                              golden_run(other, x, None, SHAPE).h)
    assert c.num_layers == 2 and c.layers[0].hidden_size < SHAPE.rows

