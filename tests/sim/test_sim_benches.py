"""The cocotb register/frame benches (drnn_sim.benches) on the Verilated verification cores:
ID/SIZES/SHAPE/THETA reset values and read-back, per-step CYCLES_LAST, NNZ_*_LAST and STEPS
against the golden model, CLEAR_STEPS, RESET_STATE (also while a step runs: RESET_PENDING),
FRAME_ERROR, BUSY."""

import numpy as np
import pytest

from drnn_sim.check import sparse_walk
from drnn_sim.cores import CORES, core
from drnn_sim.cosim import run_benches
from drnn_sim.runner import SimulationError

BENCHES = ("identity_registers", "step_registers", "frame_error", "busy_during_step",
           "reset_during_step")


def _x(bundle, steps):
    return sparse_walk(np.random.default_rng(4), 1, steps, bundle.input_size,
                       bundle.formats.act)[0]


@pytest.mark.parametrize("name", sorted(CORES))
def test_register_benches(name, tmp_path):
    bundle, shape = core(name)
    results = run_benches(bundle, shape, _x(bundle, 6), tmp_path)
    xml = results.read_text()
    for bench in BENCHES:
        assert f'name="{bench}"' in xml, f"bench {bench} did not run"


def test_benches_fail_on_wrong_expectations(tmp_path):
    """The step bench can fail: the core checked against the golden run at another θx."""
    bundle, shape = core("odd")
    with pytest.raises(SimulationError, match=r"AssertionError: step \d+"):
        run_benches(bundle, shape, _x(bundle, 6), tmp_path, testcase="step_registers",
                    golden_bundle=bundle.with_thresholds(theta_x=0x100))
