"""Training: it learns, it is reproducible by seed, and its exact mode is what the bundle does."""

import json

import numpy as np
import pytest
import torch

from drnn_hw.cycle_model import CoreShape
from drnn_train.datasets import Dataset, load_dataset
from drnn_train.evaluate import evaluate_bundle
from drnn_train.export import bundle_from_checkpoint, load_checkpoint
from drnn_train.train import (TrainConfig, checkpoint_metrics_path, majority_baseline,
                              phase_epochs, train, train_model)
from synthetic import TINY, synthetic_npz


@pytest.fixture(scope="module")
def tiny_ds(tmp_path_factory):
    return load_dataset(str(synthetic_npz(tmp_path_factory.mktemp("d") / "syn.npz")))


@pytest.fixture(scope="module")
def tiny_run(tiny_ds, tmp_path_factory):
    out = tmp_path_factory.mktemp("ck") / "tiny.pt"
    return train_model(out, tiny_ds, progress=False, **TINY)


def test_train_model_writes_checkpoint_and_metrics(tiny_run, tiny_ds):
    path, m = tiny_run
    assert path.is_file()
    meta = json.loads(checkpoint_metrics_path(path).read_text())
    assert checkpoint_metrics_path(path).name == "tiny.metrics.json"
    assert meta["exact_accuracy"] == m["exact_accuracy"]
    for key in ("float_accuracy", "exact_accuracy", "sparsity_dx", "sparsity_dh"):
        assert 0 <= m[key] <= 1
    ck = load_checkpoint(path)
    assert ck["classes"] == ["2", "7"] and ck["dataset"] == "syn"
    assert ck["config"]["hidden"] == 8
    # It learned: the task is easy, chance is 50 %.
    assert m["float_accuracy"] >= 0.8 and m["exact_accuracy"] >= 0.8
    assert meta["no_better_than_majority"] is False
    assert meta["majority_accuracy"] == np.bincount(tiny_ds.y_test).max() / len(tiny_ds.y_test)


def test_reported_exact_accuracy_is_the_golden_models(tiny_run, tiny_ds):
    path, m = tiny_run
    bundle, _ = bundle_from_checkpoint(load_checkpoint(path))
    g = evaluate_bundle(bundle, tiny_ds, CoreShape(rows=4, columns=2, scan=4))
    assert g["accuracy"] == m["exact_accuracy"]
    assert g["sparsity_dx"] == m["sparsity_dx"] and g["sparsity_dh"] == m["sparsity_dh"]
    assert 0 < g["mean_cycles"] <= g["mean_cycles_dense"]


def test_same_seed_same_result_different_seed_different(tiny_run, tiny_ds):
    path, m1 = tiny_run
    ck1 = load_checkpoint(path)
    ck2, m2 = train(TrainConfig(dataset="syn", **TINY), tiny_ds, progress=False)
    drop = lambda m: {k: v for k, v in m.items() if k != "seconds"}  # noqa: E731
    assert drop(m1) == drop(m2)
    for k in ck1["state"]:
        assert torch.equal(ck1["state"][k], ck2["state"][k]), k
    short = dict(TINY, epochs=1, finetune_epochs=1)
    a, _ = train(TrainConfig(dataset="syn", seed=0, **short), tiny_ds, progress=False)
    b, _ = train(TrainConfig(dataset="syn", seed=1, **short), tiny_ds, progress=False)
    assert not torch.equal(a["state"]["rnn.w_hh"], b["state"]["rnn.w_hh"])


def test_l1_penalty_on_delta_h_raises_sparsity(tiny_run, tiny_ds):
    """Fine-tune the same float model with and without the penalty (small Θh)."""
    float_state = load_checkpoint(tiny_run[0])["float_state"]
    base = dict(TINY, theta_h=0.02, finetune_lr=2e-2)
    _, m0 = train(TrainConfig(dataset="syn", **base), tiny_ds, progress=False,
                  init_state=float_state)
    _, m1 = train(TrainConfig(dataset="syn", l1=10.0, **base), tiny_ds, progress=False,
                  init_state=float_state)
    assert m1["sparsity_dh"] > m0["sparsity_dh"] + 0.02


def test_sweep_writes_results_and_table(tmp_path):
    from drnn.sweep import sweep

    data = synthetic_npz(tmp_path / "s.npz", n_train=24, n_test=16)
    res = sweep(tmp_path / "out", str(data), runs=[(8, 6, 0.0, 0.0), (16, 12, 0.1, 0.2)],
                progress=False, hidden=4, epochs=1, finetune_epochs=1, min_steps=0,
                finetune_min_steps=0)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["rows"] == res["rows"] and len(res["rows"]) == 2
    r = res["rows"][1]
    assert (r["weight_bits"], r["theta_x"], r["theta_h"]) == (16, 0.1, 0.2)
    assert r["golden_accuracy"] == r["exact_accuracy"]
    table = (tmp_path / "out" / "results.md").read_text().splitlines()
    assert len(table) == 4 and table[3].startswith("| 16-bit Q4.12 | 0.1 | 0.2 |")


def pulse_dataset(n_train=50, n_test=200, T=16, amp=1.5):
    """Two classes told apart only by the sign of a pulse on the first 3 of T noisy steps.

    The GRU must carry it to the last step, as in GunPoint (50 training sequences) where the
    class is in the middle of 150 steps; 2 batches of 32 per epoch.
    """
    parts = []
    for seed, n in ((0, n_train), (1, n_test)):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, n)
        x = rng.normal(0, 1, (n, T, 1))
        x[:, :3, 0] += np.where(y == 1, amp, -amp)[:, None]
        parts += [x, np.full(n, T), y]
    return Dataset("pulse", *parts, ["0", "1"])


def test_phase_epochs_reach_the_minimum_number_of_steps():
    # JapaneseVowels: 270 sequences = 9 batches of 32; 40 epochs are already 360 steps.
    assert phase_epochs(40, 360, 270, 32) == 40
    # GunPoint: 50 sequences = 2 batches; 20 epochs would be 40 steps.
    assert phase_epochs(20, 360, 50, 32) == 180
    assert phase_epochs(20, 361, 50, 32) == 181          # rounded up, never fewer steps
    assert phase_epochs(20, 0, 50, 32) == 20             # 0: the epoch count alone
    assert phase_epochs(0, 360, 50, 32) == 0             # 0 epochs: the phase is skipped


def test_small_data_set_learns_with_the_default_step_floor():
    """50 sequences, --epochs 20: the old epoch count made 40 updates and stayed at chance."""
    ds = pulse_dataset()
    kw = dict(dataset="pulse", hidden=8, epochs=20, finetune_epochs=10, theta_x=0.1,
              theta_h=0.05)
    defaults = TrainConfig()
    _, old = train(TrainConfig(min_steps=0, finetune_min_steps=0, **kw), ds, progress=False)
    _, new = train(TrainConfig(**kw), ds, progress=False)
    assert (old["steps"], old["finetune_steps"]) == (40, 20)
    assert new["steps"] >= defaults.min_steps and new["steps"] > 5 * old["steps"]
    assert new["finetune_steps"] >= defaults.finetune_min_steps
    chance = new["majority_accuracy"]
    assert old["float_accuracy"] < chance + 0.1 and old["no_better_than_majority"]
    assert new["float_accuracy"] > 0.9 and new["exact_accuracy"] > 0.9
    assert not new["no_better_than_majority"]


def test_majority_baseline():
    y = np.array([2, 0, 2, 1, 2, 0])                     # class 2 is half of the test split
    m = majority_baseline(y, ["a", "b", "c"], 0.5)
    assert m == {"majority_class": "c", "majority_accuracy": 0.5,
                 "no_better_than_majority": True}
    assert majority_baseline(y, ["a", "b", "c"], 4 / 6)["no_better_than_majority"] is False
    # a class absent from the test split still counts (bincount over all classes)
    assert majority_baseline(np.array([1, 1, 0]), ["x", "y", "z"], 0.7)["majority_class"] == "y"
