"""python -m drnn.sweep --gammas: the spatial-sparsity sweep's figures, checked against the
golden model's own cycle count and the spatial model evaluated step by step here."""

import json

import numpy as np
import pytest

from drnn.sweep import spatial_sweep, main
from synthetic import synthetic_npz

TINY = dict(hidden=8, epochs=2, finetune_epochs=1, spatial_epochs=2, min_steps=0,
            finetune_min_steps=0, spatial_min_steps=0)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    d = tmp_path_factory.mktemp("sw")
    data = synthetic_npz(d / "s.npz", n_train=24, n_test=16)
    res = spatial_sweep(d / "out", [0.0, 0.5], str(data), theta=0.1, rows=4, progress=False,
                        **TINY)
    return d, data, res


def test_rows_and_files(swept):
    d, _, res = swept
    assert json.loads((d / "out" / "results.json").read_text())["rows"] == res["rows"]
    dense_row, pruned_row = res["rows"]
    # H = 8, P = 4: NB = 2; γ = 0 keeps 2 of 2, γ = 0.5 keeps 1 of 2
    assert dense_row["kept"] == [2] and pruned_row["kept"] == [1]
    assert pruned_row["weight_sparsity"] >= 0.5
    for r in res["rows"]:
        assert r["golden_accuracy"] == r["exact_accuracy"]
        assert r["speedup"] == pytest.approx(r["speedup_temporal"] * r["speedup_spatial"])
    # dense weights stored as pairs cost at least the dense core; pruned ones at most
    assert dense_row["speedup_spatial"] <= 1 <= pruned_row["speedup_spatial"]
    table = (d / "out" / "results.md").read_text().splitlines()
    assert len(table) == 4 and table[3].startswith("| 0.5 | 1 of 2 |")
    # each γ's bundle is kept for the Verilator bench, with the pattern the row reports
    from drnn_hw.bundle import ModelBundle
    from drnn_train.train import weight_sparsity
    for r in res["rows"]:
        b = ModelBundle.load(d / "out" / f"gamma{r['gamma']:g}")
        assert weight_sparsity(b) == r["weight_sparsity"]


def test_cycles_are_the_golden_models_and_the_spatial_models(swept):
    from drnn_hw.cycle_model import CoreShape, streamed_prescan
    from drnn_hw.golden import run
    from drnn_hw.spatial import spatial_step_cycles
    from drnn_train.datasets import load_dataset
    from drnn_train.evaluate import evaluate_bundle
    from drnn_train.export import bundle_from_checkpoint
    from drnn_train.train import TrainConfig, train
    from dataclasses import replace

    d, data, res = swept
    ds = load_dataset(str(data))
    shape = CoreShape(rows=4)
    base = replace(TrainConfig(), dataset=str(data), theta_x=0.1, theta_h=0.1, balance_rows=4,
                   **TINY)
    ck, _ = train(replace(base, finetune_epochs=0, theta_x=0.0, theta_h=0.0), ds,
                  progress=False)
    ck, _ = train(replace(base, spatial_sparsity=0.5), ds, progress=False,
                  init_state=ck["float_state"])
    bundle, _ = bundle_from_checkpoint(ck)
    row = res["rows"][1]
    assert row["dense_cycles"] == pytest.approx(evaluate_bundle(bundle, ds, shape)["mean_cycles"])
    # the compressed core, step by step from the golden run's kept deltas (written out here),
    # frames back to back on the default core (issue #10's step overlap: a sequence's later
    # steps scanned during the AP of the step before)
    x, L = ds.x_test, ds.len_test
    valid = np.arange(x.shape[1])[None, :] < L[:, None]
    codes = np.where(valid[..., None], bundle.quantize_input(x), 0)
    g = run(bundle, codes, L, shape)
    ly = bundle.layers[0]
    total = []
    for n in range(len(L)):
        xr = np.zeros(ly.input_size, np.int64)
        hr = np.zeros(ly.hidden_size, np.int64)
        h = np.zeros(ly.hidden_size, np.int64)
        for t in range(L[n]):
            dx, dh = codes[n, t] - xr, h - hr
            kx = (dx != 0) & (abs(dx) >= ly.theta_x)
            kh = (dh != 0) & (abs(dh) >= ly.theta_h)
            xr, hr = np.where(kx, codes[n, t], xr), np.where(kh, h, hr)
            pre = streamed_prescan(shape.blocks(ly.hidden_size), "gru") if t else 0
            total.append(spatial_step_cycles(kx, kh, shape, 1, prescan=pre))
            h = g.h[n, t]
    assert row["compressed_cycles"] == pytest.approx(np.mean(total))


def test_command_line_refuses_a_first_gamma_other_than_zero(tmp_path):
    data = synthetic_npz(tmp_path / "s.npz", n_train=24, n_test=16)
    with pytest.raises(ValueError, match="the first γ must be 0"):
        main(["--gammas", "0.5", "--dataset", str(data), "--hidden", "8", "--epochs", "1",
              "--finetune-epochs", "1", "--out", str(tmp_path / "o"), "--quiet"])
