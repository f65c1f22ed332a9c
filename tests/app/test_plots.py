"""The bench plots are written as PNG files from a bench dict (golden engine, tiny model)."""

import numpy as np

from drnn.bench.run import run_bench
from drnn_hw.bundle import random_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run as golden_run
from drnn.bench.plots import write_plots


class _Data:
    name = "tiny"

    def __init__(self):
        rng = np.random.default_rng(1)
        self.x_test = rng.normal(size=(4, 8, 3))
        self.len_test = np.array([8, 5, 8, 3])
        self.y_test = np.array([0, 1, 1, 0])


def _bench(head=True):
    b = random_bundle(3, 5, seed=4)
    if head:
        b.head_w, b.head_b, b.classes = np.ones((2, 5)), np.array([0.0, 0.1]), ["a", "b"]
    return run_bench(b, _Data(), CoreShape(rows=2, columns=1, scan=2), golden_run,
                     engine_name="golden", thetas=[(0, 0), (16, 32), (64, 64)], torch_repeats=1,
                     progress=False, log=lambda s: None)


def test_plots_are_pngs(tmp_path):
    paths = write_plots(_bench(), tmp_path / "plots")
    assert [p.name for p in paths] == ["accuracy_sparsity.png", "cycles.png", "trace.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_plots_without_head(tmp_path):
    bench = _bench(head=False)
    assert all(r["accuracy"] is None for r in bench["rows"])
    for p in write_plots(bench, tmp_path):
        assert p.stat().st_size > 5000
