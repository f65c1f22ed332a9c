"""Real data through the Verilated default-size core (I=12, H=64, default shape): all 370
JapaneseVowels test sequences, bit-exact against the golden model (h, nnz, cycles).

The model is ``random_bundle(12, 64)`` with the data set's input normalisation (no trained
bundle is part of the test suite); thresholds are written at run time: Θ = 0 for the first
sequences, Θx = 0.1, Θh = 0.05 for the rest.
"""

from dataclasses import replace

import numpy as np
import pytest

from drnn_hw.bundle import random_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run as golden_run
from drnn_hw.numerics import quantize
from drnn_sim.check import mismatches
from drnn_sim.cosim import simulate

pytestmark = pytest.mark.slow

DENSE = 40   # sequences run at Θ = 0


def test_japanese_vowels_bit_exact():
    from drnn_train.datasets import input_statistics, load_dataset

    ds = load_dataset("japanese-vowels")
    mean, scale = input_statistics(ds.x_train, ds.len_train)
    bundle = replace(random_bundle(12, 64, seed=0), input_mean=mean, input_scale=scale)
    shape = CoreShape()
    x = bundle.quantize_input(ds.x_test)
    lengths = ds.len_test
    act = bundle.formats.act
    tx, th = int(quantize(0.1, act)), int(quantize(0.05, act))
    n = len(lengths)
    theta_x = np.where(np.arange(n) < DENSE, 0, tx)
    theta_h = np.where(np.arange(n) < DENSE, 0, th)
    r = simulate(bundle, shape, x, lengths, theta_x=theta_x, theta_h=theta_h)
    for lo, hi, b in ((0, DENSE, bundle), (DENSE, n, bundle.with_thresholds(tx, th))):
        g = golden_run(b, x[lo:hi], lengths[lo:hi], shape)
        part = type(g)(h=r.h[lo:hi], nnz_dx=r.nnz_dx[lo:hi], nnz_dh=r.nnz_dh[lo:hi],
                       cycles=r.cycles[lo:hi], lengths=r.lengths[lo:hi])
        assert not mismatches(part, g), f"sequences {lo}..{hi - 1}: {mismatches(part, g)}"
    assert r.steps_reg[-1] == lengths.sum()
    # Θ > 0 made the steps sparser than Θ = 0 (the run covers both regimes).
    dense = (r.nnz_dx[:DENSE].sum() + r.nnz_dh[:DENSE].sum()) / lengths[:DENSE].sum()
    sparse = (r.nnz_dx[DENSE:].sum() + r.nnz_dh[DENSE:].sum()) / lengths[DENSE:].sum()
    assert sparse < dense
