"""Stacked layers in the trainer: exact mode vs golden model, QAT forward vs exact mode, h0 and
nn.GRU(num_layers=2) import against torch, and training / export of a 2-layer model."""

import json

import numpy as np
import pytest
import torch
from drnn_cli import drnn_in_process as drnn
from synthetic import TINY, synthetic_npz

from drnn_hw.bundle import ModelBundle, random_stacked_bundle
from drnn_hw.golden import run
from drnn_hw.numerics import Formats, dequantize, quantize
from drnn_train.evaluate import evaluate_bundle
from drnn_train.export import (bundle_from_checkpoint, bundle_from_layer_params,
                                choose_weight_format)
from drnn_train.model import DeltaGRUClassifier, exact_run
from drnn_train.train import train
from drnn_train.config import TrainConfig
from drnn_train.datasets import load_dataset


@pytest.mark.parametrize("seed", range(6))
def test_stacked_exact_mode_bit_exact_with_golden(seed):
    rng = np.random.default_rng(seed)
    f = Formats(acc_bits=int(rng.choice([24, 32])))
    L = int(rng.integers(2, 4))
    hs = [int(h) for h in rng.integers(1, 14, L)]
    I, N, T = int(rng.integers(1, 7)), int(rng.integers(1, 5)), int(rng.integers(1, 12))
    b = random_stacked_bundle(I, hs, formats=f, seed=seed, weight_scale=float(rng.choice([0.5, 4.0])))
    b = b.with_layer_thresholds([(int(rng.choice([0, 1, 20, 64])), int(rng.choice([0, 10, 64])))
                                 for _ in range(L)])
    x = quantize(rng.normal(0, 2.0, (N, T, I)), f.act)
    lengths = rng.integers(0, T + 1, N)
    h0 = [None if rng.random() < 0.3 else quantize(rng.normal(0, 0.5, (N, H)), f.act)
          for H in hs]
    g = run(b, x, lengths, with_cycles=False, h0=h0)
    h, ndx, ndh, ldx, ldh = exact_run(b, x, lengths, h0=h0, per_layer=True)
    np.testing.assert_array_equal(h.numpy(), g.h)
    np.testing.assert_array_equal(ndx.numpy(), g.nnz_dx)
    np.testing.assert_array_equal(ndh.numpy(), g.nnz_dh)
    np.testing.assert_array_equal(ldx.numpy(), g.layer_nnz_dx)
    np.testing.assert_array_equal(ldh.numpy(), g.layer_nnz_dh)


@pytest.mark.parametrize("theta", [0.0, 0.1, 0.3])
def test_stacked_qat_forward_reproduces_exact_mode(theta):
    torch.manual_seed(0)
    f = Formats()
    model = DeltaGRUClassifier(5, [10, 7], 3, f, theta_x=[theta, theta / 2],
                               theta_h=[theta / 2, theta], quantize=True)
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (4, 15, 5))
    lengths = np.array([15, 9, 1, 12])
    logits, stats = model(torch.tensor(x), lengths)
    b, sat = bundle_from_layer_params(
        [tuple(p.detach().numpy() for p in (g.w_ih, g.w_hh, g.b_ih, g.b_hh)) for g in model.grus],
        f, [theta, theta / 2], [theta / 2, theta])
    assert sat == 0 and b.num_layers == 2
    codes = np.where((np.arange(15)[None, :] < lengths[:, None])[..., None],
                     quantize(x, f.act), 0)
    h, ndx, ndh, ldx, ldh = exact_run(b, codes, lengths, per_layer=True)
    for l in range(2):
        np.testing.assert_array_equal(stats["layer_nnz_dx"][l].numpy(), ldx[..., l].numpy())
        np.testing.assert_array_equal(stats["layer_nnz_dh"][l].numpy(), ldh[..., l].numpy())
    assert ldh.sum() > 0
    last = h.numpy()[np.arange(4), lengths - 1] / f.one
    head = last @ model.head.weight.detach().numpy().T + model.head.bias.detach().numpy()
    np.testing.assert_allclose(logits.detach().numpy(), head, rtol=0, atol=1e-12)


def _torch_vs_golden(gru, b, x, h0=None):
    """max |golden − torch| over (N, T, H) in float64, golden on b.quantize_input(x)."""
    with torch.no_grad():
        ref, _ = gru(torch.tensor(x), None if h0 is None else torch.tensor(h0))
    h0_codes = None if h0 is None else [quantize(h, b.formats.act) for h in h0]
    g = run(b, b.quantize_input(x), with_cycles=False, h0=h0_codes)
    return float(np.abs(dequantize(g.h, b.formats.act) - ref.numpy()).max())


def _gru_bundle(gru):
    """The bundle of an nn.GRU, in the weight format the import would choose."""
    params = [tuple(getattr(gru, f"{k}_l{l}").detach().numpy() for k in
                    ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
              for l in range(gru.num_layers)]
    fmts, _ = choose_weight_format([w for p in params for w in p[:2]],
                                   [b for p in params for b in p[2:]])
    return bundle_from_layer_params(params, fmts)[0]


def test_h0_matches_torch_gru_with_that_h0():
    torch.manual_seed(0)
    gru = torch.nn.GRU(4, 16, num_layers=2, batch_first=True, dtype=torch.float64)
    b = _gru_bundle(gru)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (5, 20, 4))
    h0 = rng.uniform(-0.9, 0.9, (2, 5, 16))
    err = _torch_vs_golden(gru, b, x, h0)
    assert err < 2 ** -6, err
    # h0 matters: started from 0, the same model is far from torch's run from h0.
    with torch.no_grad():
        ref, _ = gru(torch.tensor(x), torch.tensor(h0))
    zero = dequantize(run(b, b.quantize_input(x), with_cycles=False).h, b.formats.act)
    assert np.abs(zero[:, 0] - ref.numpy()[:, 0]).max() > 0.1


@pytest.mark.parametrize("bias", [True, False])
def test_imported_two_layer_gru_stays_within_2_to_minus_6_of_torch(tmp_path, capsys, bias):
    torch.manual_seed(0)
    gru = torch.nn.GRU(12, 64, num_layers=2, bias=bias, batch_first=True, dtype=torch.float64)
    torch.save({"model": {"gru." + k: v for k, v in gru.state_dict().items()}},
               tmp_path / "g.pt")
    code, out, err = drnn(["export", "--torch-gru", tmp_path / "g.pt", "--out",
                           tmp_path / "b"], capsys)
    assert code == 0, err
    assert "2 layers I=12 H=64,64" in out
    b = ModelBundle.load(tmp_path / "b")
    assert b.num_layers == 2 and [ly.hidden_size for ly in b.layers] == [64, 64]
    assert json.loads((tmp_path / "b" / "model.json").read_text())["format_version"] == 2
    x = np.random.default_rng(3).normal(0, 1, (8, 40, 12))
    err = _torch_vs_golden(gru, b, x)
    assert err < 2 ** -6, err


def test_weight_format_is_chosen_from_every_layer(tmp_path, capsys):
    gru = torch.nn.GRU(3, 4, num_layers=2)
    with torch.no_grad():
        gru.weight_hh_l1[0, 0] = 3.0          # only layer 1 needs two integer bits
    torch.save(gru.state_dict(), tmp_path / "g.pt")
    code, _, err = drnn(["export", "--torch-gru", tmp_path / "g.pt", "--out",
                         tmp_path / "b"], capsys)
    assert code == 0, err
    b = ModelBundle.load(tmp_path / "b")
    assert b.formats.w_frac == 5              # 8 bits: ±4 range holds 3.0, ±2 would not
    assert int(b.layers[1].w_h[0, 0, 0]) == 3 * 32 and "saturated" not in err


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    return synthetic_npz(tmp_path_factory.mktemp("stacked") / "syn.npz")


def test_two_layer_training_exact_mode_equals_golden_evaluation(syn):
    cfg = TrainConfig(**{**TINY, "hidden": [8, 6], "theta_x": [0.1, 0.05],
                         "theta_h": [0.05, 0.1]}, layers=2, dataset=str(syn))
    ds = load_dataset(str(syn))
    ckpt, m = train(cfg, ds, progress=False)
    assert ckpt["num_layers"] == 2 and ckpt["hidden_sizes"] == [8, 6]
    assert ckpt["version"] == 2 and "rnn1.w_ih" in ckpt["state"]
    b, _ = bundle_from_checkpoint(ckpt)
    assert [(ly.input_size, ly.hidden_size) for ly in b.layers] == [(3, 8), (8, 6)]
    assert [(ly.theta_x, ly.theta_h) for ly in b.layers] == [(26, 13), (13, 26)]
    g = evaluate_bundle(b, ds)
    assert g["accuracy"] == m["exact_accuracy"] and g["sparsity_dh"] == m["sparsity_dh"]
    assert [ly["sparsity_dh"] for ly in g["layers"]] == pytest.approx(m["layer_sparsity_dh"])
    assert m["exact_accuracy"] > 0.75     # it learned (chance is 0.5)


def test_cli_train_layers_flags(tmp_path, capsys, syn):
    fast = ["--epochs", "1", "--finetune-epochs", "1", "--min-steps", "0",
            "--finetune-min-steps", "0", "--quiet", "--dataset", syn]
    code, out, err = drnn(["train", "--layers", "2", "--hidden", "6,5", "--theta-h", "0.1,0.2",
                           "--theta-x", "0.05", *fast, "--out", tmp_path / "c.pt"], capsys)
    assert code == 0, err
    assert "L=2 H=6,5 Θx=0.05 Θh=0.1,0.2" in out and "layer 1: Δx" in out
    code, out, err = drnn(["export", tmp_path / "c.pt", "--out", tmp_path / "b"], capsys)
    assert code == 0, err
    b = ModelBundle.load(tmp_path / "b")
    assert [ly.hidden_size for ly in b.layers] == [6, 5]
    assert [ly.theta_h for ly in b.layers] == [26, 51]
    for args, needle in ((["--layers", "2", "--hidden", "6,5,4"], "--hidden: expected one "
                                                                  "value or 2"),
                         (["--layers", "0"], "--layers: expected an integer >= 1"),
                         (["--layers", "2", "--theta-h", "0.1,x"], "--theta-h: expected one"),
                         (["--layers", "2", "--hidden", "6,0"], "--hidden"),
                         (["--hidden", "6,5"], "--hidden: expected one value or 1")):
        code, _, err = drnn(["train", *args, *fast, "--out", tmp_path / "x.pt"], capsys)
        assert code != 0 and err.count("\n") == 1 and needle in err, (args, err)
