"""Column-balanced targeted dropout: the schedule, the masks in the forward pass, and a pruned
model trained, exported and run bit-exactly (trainer exact mode = golden model).

Pattern checks count non-zeros per slice with explicit row lists here (rows p, p + P, ... < H
of each gate block), independently of drnn_hw.balance.
"""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from drnn_hw.balance import BalanceUnit
from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run
from drnn_train.datasets import load_dataset
from drnn_train.evaluate import evaluate_bundle
from drnn_train.export import bundle_from_checkpoint
from drnn_train.model import DeltaRNNClassifier, exact_run
from drnn_train.prune import ColumnBalancedDropout, layer_masks
from drnn_train.train import TrainConfig, train
from synthetic import TINY, synthetic_npz


def slice_counts(w, H, P):
    """w (G·H, C) -> the most non-zeros of any slice of any column of any gate block."""
    w = np.asarray(w)
    G, C = w.shape[0] // H, w.shape[1]
    return max(sum(1 for r in range(p, H, P) if w[g * H + r, c] != 0)
               for g in range(G) for c in range(C) for p in range(P))


def kept_by_hand(w, H, P, kept):
    """The keep mask written out: per gate, column, slice, the `kept` largest (lower row on
    ties)."""
    w = np.asarray(w)
    m = np.zeros(w.shape, bool)
    for g in range(w.shape[0] // H):
        for c in range(w.shape[1]):
            for p in range(P):
                rows = sorted(range(p, H, P), key=lambda r: (-abs(w[g * H + r, c]), r))
                for r in rows[:kept]:
                    m[g * H + r, c] = True
    return m


@pytest.mark.parametrize("H, P, kept", [(10, 4, 2), (10, 4, 1), (8, 16, 1), (12, 3, 4)])
def test_layer_masks_per_gate_block(H, P, kept):
    w = torch.randn(3 * H, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(H))
    m = layer_masks(w, H, P, kept)
    assert m.dtype == torch.float64 and set(m.unique().tolist()) <= {0.0, 1.0}
    assert np.array_equal(m.numpy().astype(bool), kept_by_hand(w.numpy(), H, P, kept))


def test_schedule_anneals_then_holds():
    model = DeltaRNNClassifier(3, 8, 2)
    cb = ColumnBalancedDropout(model, 0.75, 2, total_steps=100, rate=1.0, anneal=0.5)
    assert [cb.gamma_at(s) for s in (0, 25, 50, 80)] == [0.0, 0.375, 0.75, 0.75]
    cb.before_step(0)                        # γ = 0: nothing targeted
    assert all(bool((m == 1).all()) for m in model.rnn.weight_mask)
    cb.before_step(60)                       # γ = 0.75, rate 1: exactly the balanced mask
    for w, m in zip((model.rnn.w_ih, model.rnn.w_hh), model.rnn.weight_mask):
        assert np.array_equal(m.numpy().astype(bool), kept_by_hand(w.detach().numpy(), 8, 2, 1))
    half = ColumnBalancedDropout(model, 0.75, 2, total_steps=100, rate=0.5, anneal=0.5, seed=1)
    half.before_step(60)
    dropped = sum(int((m == 0).sum()) for m in model.rnn.weight_mask)
    targeted = sum(int((~kept_by_hand(w.detach().numpy(), 8, 2, 1)).sum())
                   for w in (model.rnn.w_ih, model.rnn.w_hh))
    assert 0.35 * targeted < dropped < 0.65 * targeted     # about α of the targeted ones
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ColumnBalancedDropout(model, 1.0, 2, 10)
    with pytest.raises(ValueError, match="rate must lie in"):
        ColumnBalancedDropout(model, 0.5, 2, 10, rate=1.5)


def test_fix_prunes_and_masks_apply_before_fake_quant():
    model = DeltaRNNClassifier(3, 8, 2, cell="lstm")
    cb = ColumnBalancedDropout(model, 0.5, 4, total_steps=10)
    (unit,) = cb.fix()
    assert unit == BalanceUnit(4, 1, 0.5)
    g = model.rnn
    for w in (g.w_ih, g.w_hh):
        assert slice_counts(w.detach().numpy(), 8, 4) <= 1
    g.quantize = True
    w_ih, w_hh, _ = g.gate_params()
    assert slice_counts(w_ih.detach().numpy(), 8, 4) <= 1
    # a raw weight moved by the optimiser is put back to 0 by after_step, and masked anyway
    with torch.no_grad():
        g.w_hh.add_(1.0)
    assert slice_counts(g.gate_params()[1].detach().numpy(), 8, 4) <= 1
    cb.after_step()
    assert slice_counts(g.w_hh.detach().numpy(), 8, 4) <= 1


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    return load_dataset(str(synthetic_npz(tmp_path_factory.mktemp("p") / "syn.npz")))


@pytest.mark.parametrize("cell, layers, hidden", [("gru", 1, 8), ("lstm", 1, 8),
                                                  ("gru", 2, [8, 6])])
def test_pruned_model_trains_exports_and_is_bit_exact(syn, tmp_path, cell, layers, hidden):
    cfg = TrainConfig(dataset="syn", **dict(TINY, hidden=hidden), layers=layers, cell=cell,
                      spatial_sparsity=0.5, balance_rows=4, spatial_epochs=4,
                      spatial_min_steps=0)
    ckpt, m = train(cfg, syn, progress=False)
    assert ckpt["balance"] == {"rows": 4, "gamma": 0.5}
    hs = hidden if isinstance(hidden, list) else [hidden]
    # NB = 2 for H = 8 and H = 6: 1 kept of 2 per slice
    assert m["kept_per_slice"] == [1] * layers and m["blocks"] == [2] * layers
    bundle, _ = bundle_from_checkpoint(ckpt)
    for l, (ly, H) in enumerate(zip(bundle.layers, hs)):
        assert ly.balance == BalanceUnit(4, 1, 0.5)
        for w in (ly.w_x, ly.w_h):
            assert slice_counts(w.reshape(-1, w.shape[-1]), H, 4) <= 1
        # the raw trained weights are pruned too (the checkpoint's state)
        p = "rnn." if l == 0 else f"rnn{l}."
        for k in ("w_ih", "w_hh"):
            assert slice_counts(ckpt["state"][p + k].numpy(), H, 4) <= 1
    zeros = sum(int((ly.w_x == 0).sum() + (ly.w_h == 0).sum()) for ly in bundle.layers)
    total = sum(ly.w_x.size + ly.w_h.size for ly in bundle.layers)
    # at least every slice's rows beyond the kept one are zero (H = 6, P = 4: slices of 2, 2,
    # 1, 1 rows lose 1, 1, 0, 0: a partial block keeps its single rows)
    pruned = 0
    for ly, H in zip(bundle.layers, hs):
        per_column = sum(max(0, len(range(p, H, 4)) - 1) for p in range(4))
        pruned += per_column * ly.w_x.shape[0] * (ly.input_size + H)
    assert m["weight_sparsity"] == zeros / total and zeros >= pruned
    if hs == [8]:
        assert zeros / total >= 0.5
    # hardware-exact: the trainer's exact mode and the golden model agree bit for bit
    x, L = syn.x_test, syn.len_test
    valid = (np.arange(x.shape[1])[None, :] < L[:, None])[..., None]
    codes = np.where(valid, bundle.quantize_input(x), 0)
    h_t, dx_t, dh_t = exact_run(bundle, codes, L)
    g = run(bundle, codes, L, CoreShape(rows=4, columns=2, scan=4))
    assert np.array_equal(h_t.numpy(), g.h)
    assert np.array_equal(dx_t.numpy(), g.nnz_dx) and np.array_equal(dh_t.numpy(), g.nnz_dh)
    if cell == "gru":
        assert evaluate_bundle(bundle, syn, CoreShape(rows=4))["accuracy"] == m["exact_accuracy"]
    # save / load keeps the pattern
    b2 = ModelBundle.load(bundle.save(tmp_path / "b"))
    assert [ly.balance for ly in b2.layers] == [ly.balance for ly in bundle.layers]
    assert json.loads((tmp_path / "b" / "model.json").read_text())["format_version"] == 4


def test_dense_training_is_unchanged(syn):
    """γ = 0: no pruning phase, no record; the same metrics as a config without the fields."""
    ck, m = train(TrainConfig(dataset="syn", **TINY), syn, progress=False)
    assert "balance" not in ck and "spatial_sparsity" not in m
    assert bundle_from_checkpoint(ck)[0].layers[0].balance is None
    ck2, m2 = train(replace(TrainConfig(dataset="syn", **TINY), balance_rows=3), syn,
                    progress=False)
    assert m2["exact_accuracy"] == m["exact_accuracy"]
    assert torch.equal(ck2["state"]["rnn.w_hh"], ck["state"]["rnn.w_hh"])
