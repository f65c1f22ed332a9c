"""A run-time core on the ULX3S board logic (Verilator): the host driver loads models over the
UART, one after the other into the same core (no rebuild), and runs each: h, nnz and measured
cycles bit- and cycle-exact against the golden model on the loaded sizes; the link answers
STEP frames with the loaded model's sizes; a model beyond the maxima is refused before any
write. One board build per cell (GRU and LSTM)."""

import numpy as np
import pytest

from drnn_boards.protocol import ErrorCode
from drnn_boards.sim import run_board_loads
from drnn_hw.bundle import random_bundle
from drnn_hw.golden import run as golden_run
from drnn_sim.check import sparse_walk
from drnn_sim.cores import RUNTIME_MAXIMA as MAXIMA
from drnn_sim.cores import RUNTIME_SHAPE as SHAPE
from drnn_sim.cores import runtime_models


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_models_loaded_over_uart(cell):
    models = runtime_models(cell)
    order = ["B", "A", "C"] if cell == "gru" else ["C", "B"]
    runs = []
    for k, name in enumerate(order):
        bundle = models[name]
        x = sparse_walk(np.random.default_rng(10 + k), 2, 5, bundle.input_size,
                        bundle.formats.act)
        runs.append((bundle, x, [5, 3]))
    too_big = random_bundle(5, MAXIMA.hidden + 1, seed=3, cell=cell)
    out = run_board_loads(models["A"], SHAPE, MAXIMA, runs, refuse=too_big)

    for k, (bundle, x, lengths) in enumerate(runs):
        g = golden_run(bundle, x, lengths, SHAPE, prescan=0)   # the host: one step at a time
        assert out[f"writes_{k}"] > 0
        assert list(out[f"ident_{k}"]) == [bundle.input_size, bundle.layers[-1].hidden_size]
        np.testing.assert_array_equal(out[f"h_{k}"], g.h, err_msg=f"run {k}: h")
        np.testing.assert_array_equal(out[f"nnz_dx_{k}"], g.nnz_dx, err_msg=f"run {k}: nnz_dx")
        np.testing.assert_array_equal(out[f"nnz_dh_{k}"], g.nnz_dh, err_msg=f"run {k}: nnz_dh")
        np.testing.assert_array_equal(out[f"cycles_{k}"], g.cycles, err_msg=f"run {k}: cycles")
        assert int(out[f"long_step_{k}"]) == ErrorCode.BAD_LENGTH

    # Refused before anything was written: the last model still runs as loaded.
    assert str(out["refused"]).startswith("refused: ") and "--max-hidden" in str(out["refused"])
    bundle, x, _ = runs[-1]
    first = golden_run(bundle, x[:1, :1], None, SHAPE).h[0, 0]
    np.testing.assert_array_equal(out["after_refusal"], first)


def test_models_loaded_through_the_axi_wrapper():
    """The Arty Z7 wrapper around a run-time core: the host's load writes over AXI4-Lite, then
    a sequence over AXI4-Stream with gaps and back-pressure, for a one-layer and a two-layer
    model loaded one after the other: h of every step and the last step's cycles equal the
    golden model's."""
    from drnn_boards.sim import run_axi_loads
    from drnn_sim.bus import SIZES_HIDDEN, SIZES_INPUTS

    models = runtime_models("gru")
    runs = []
    for k, name in enumerate(["B", "C"]):
        bundle = models[name]
        x = sparse_walk(np.random.default_rng(20 + k), 1, 6, bundle.input_size,
                        bundle.formats.act)[0]
        runs.append((bundle, x))
    out = run_axi_loads(models["A"], SHAPE, MAXIMA, runs)
    for k, (bundle, x) in enumerate(runs):
        # (Gaps and back-pressure on the streams: the last step's cycles are the model's for
        # the prescan the core reported.)
        pre = np.zeros((1, len(x)), np.int64)
        pre[0, -1] = int(out[f"prescan_{k}"])
        g = golden_run(bundle, x[None], None, SHAPE, prescan=pre)
        np.testing.assert_array_equal(out[f"h_{k}"], g.h[0], err_msg=f"run {k}: h")
        assert int(out[f"cycles_{k}"]) == g.cycles[0, -1]
        sizes = int(out[f"sizes_{k}"])
        assert (sizes >> SIZES_INPUTS[0]) & 0xFFFF == bundle.input_size
        assert (sizes >> SIZES_HIDDEN[0]) & 0xFFFF == bundle.layers[-1].hidden_size
        assert out[f"writes_{k}"] > 0
