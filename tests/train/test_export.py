"""Export: checkpoint -> bundle round trip, and plain torch.nn.GRU import."""

import numpy as np
import pytest
import torch

from drnn_hw.bundle import ModelBundle
from drnn_hw.golden import run
from drnn_hw.numerics import Formats, dequantize, quantize
from drnn_train.datasets import load_dataset
from drnn_train.error_bound import gru_error_bound
from drnn_train.evaluate import evaluate_bundle, head_logits
from drnn_train.export import bundle_from_checkpoint, load_checkpoint
from drnn_train.model import DeltaGRUClassifier
from drnn_train.train import train_model
from drnn_cli import drnn_in_process as drnn
from synthetic import TINY, synthetic_npz


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("exp")
    ds = load_dataset(str(synthetic_npz(d / "syn.npz", seed=3)))
    path, m = train_model(d / "m.pt", ds, progress=False, **TINY)
    return ds, path, m


def test_export_round_trip_same_predictions(trained, tmp_path, capsys):
    ds, path, m = trained
    code, out, err = drnn(["export", path, "--out", tmp_path / "b"], capsys)
    assert code == 0, err
    loaded = ModelBundle.load(tmp_path / "b")
    ck = load_checkpoint(path)
    mem, _ = bundle_from_checkpoint(ck)
    for k in ("w_x", "w_h", "bias", "sigmoid_lut", "tanh_lut", "input_mean", "input_scale",
              "head_w", "head_b"):
        np.testing.assert_array_equal(getattr(loaded, k), getattr(mem, k), err_msg=k)
    assert (loaded.theta_x, loaded.theta_h) == (quantize(TINY["theta_x"], Formats().act),
                                                quantize(TINY["theta_h"], Formats().act))
    assert loaded.classes == ds.classes and loaded.extra["dataset"] == "syn"
    # b_hn is its own row, not folded away.
    H = loaded.hidden_size
    b_hh = ck["state"]["rnn.b_hh"].numpy()
    np.testing.assert_array_equal(loaded.bias[3], quantize(b_hh[2 * H:], Formats().acc))

    # The trained QAT model (float64) predicts exactly what the loaded bundle predicts.
    model = DeltaGRUClassifier(ds.input_size, H, ds.num_classes, Formats(),
                               TINY["theta_x"], TINY["theta_h"], quantize=True)
    model.load_state_dict(ck["state"])
    xn = (ds.x_test - loaded.input_mean) / loaded.input_scale
    xn = np.where((np.arange(xn.shape[1])[None, :] < ds.len_test[:, None])[..., None], xn, 0)
    with torch.no_grad():
        logits_qat, _ = model(torch.tensor(xn), ds.len_test)
    codes = np.where((np.arange(xn.shape[1])[None, :] < ds.len_test[:, None])[..., None],
                     loaded.quantize_input(ds.x_test), 0)
    g = run(loaded, codes, ds.len_test, with_cycles=False)
    logits_hw = head_logits(loaded, g.h, ds.len_test)
    np.testing.assert_array_equal(logits_qat.numpy().argmax(-1), logits_hw.argmax(-1))
    np.testing.assert_allclose(logits_qat.numpy(), logits_hw, rtol=0, atol=1e-9)
    assert evaluate_bundle(loaded, ds)["accuracy"] == m["exact_accuracy"]


def test_export_threshold_override(trained, tmp_path, capsys):
    _, path, _ = trained
    code, out, err = drnn(["export", path, "--out", tmp_path / "b", "--theta-x", "0.5",
                           "--theta-h", "0"], capsys)
    assert code == 0, err
    b = ModelBundle.load(tmp_path / "b")
    assert (b.theta_x, b.theta_h) == (128, 0)


def _save_gru(path, I, H, bias, seed=0, scale=None):
    torch.manual_seed(seed)
    gru = torch.nn.GRU(I, H, bias=bias, batch_first=True)
    if scale is not None:
        with torch.no_grad():
            for p in gru.parameters():
                p.mul_(scale)
    torch.save(gru.state_dict(), path)
    return gru


@pytest.mark.parametrize("bias", [True, False])
def test_torch_gru_import(tmp_path, capsys, bias):
    gru = _save_gru(tmp_path / "g.pt", 4, 10, bias, scale=0.4)
    code, out, err = drnn(["export", "--torch-gru", tmp_path / "g.pt", "--out", tmp_path / "b"],
                          capsys)
    assert code == 0, err
    assert "head=no" in out and "warning" not in err
    b = ModelBundle.load(tmp_path / "b")
    f = b.formats
    assert not b.has_head and b.theta_x == 0 and b.theta_h == 0
    H = 10
    sd = {k: v.double().numpy() for k, v in gru.state_dict().items()}
    np.testing.assert_array_equal(b.w_x, quantize(sd["weight_ih_l0"].reshape(3, H, 4), f.weight))
    np.testing.assert_array_equal(b.w_h, quantize(sd["weight_hh_l0"].reshape(3, H, H), f.weight))
    if bias:
        bi, bh = sd["bias_ih_l0"], sd["bias_hh_l0"]
        want = np.stack([bi[:H] + bh[:H], bi[H:2 * H] + bh[H:2 * H], bi[2 * H:], bh[2 * H:]])
        np.testing.assert_array_equal(b.bias, quantize(want, f.acc))
        assert np.any(b.bias[3] != 0)
    else:
        assert np.all(b.bias == 0)
    # The imported bundle computes the GRU: within the derived bound of the dequantised GRU.
    rng = np.random.default_rng(0)
    x = quantize(rng.normal(0, 1, (3, 6, 4)), f.act)
    g = run(b, x, with_cycles=False)
    deq = torch.nn.GRU(4, H, bias=bias, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        deq.weight_ih_l0.copy_(torch.tensor(dequantize(b.w_x, f.weight).reshape(3 * H, 4)))
        deq.weight_hh_l0.copy_(torch.tensor(dequantize(b.w_h, f.weight).reshape(3 * H, H)))
        if bias:
            bb = dequantize(b.bias, f.acc)
            deq.bias_ih_l0.copy_(torch.tensor(np.concatenate([bb[0], bb[1], bb[2]])))
            deq.bias_hh_l0.copy_(torch.tensor(np.concatenate([np.zeros(2 * H), bb[3]])))
        ref, _ = deq(torch.tensor(dequantize(x, f.act)))
    err_h = np.abs(dequantize(g.h, f.act) - ref.numpy())
    assert np.all(err_h <= gru_error_bound(b, x)[None])


def test_torch_gru_import_with_thresholds_and_saturation_warning(tmp_path, capsys):
    gru = _save_gru(tmp_path / "g.pt", 3, 5, True)
    sd = gru.state_dict()
    sd["weight_hh_l0"][0, 0] = 5.0            # beyond Q2.6's ±2
    sd["weight_ih_l0"][1, 1] = -7.0
    torch.save(sd, tmp_path / "g.pt")
    # An explicit Q2.6 saturates them, with a warning.
    code, out, err = drnn(["export", "--torch-gru", tmp_path / "g.pt", "--out", tmp_path / "b",
                           "--theta-x", "0.25", "--theta-h", "0.125", "--weight-frac", "6"],
                          capsys)
    assert code == 0
    assert err.strip().splitlines() == ["drnn: warning: 2 weights/biases saturated on export "
                                        "(weights Q2.6, biases Q18.14)"]
    b = ModelBundle.load(tmp_path / "b")
    assert (b.theta_x, b.theta_h) == (64, 32)
    assert b.w_h[0, 0, 0] == 127 and b.w_x[0, 1, 1] == -128    # row 1 of (3H, I) = gate r, unit 1
    # The automatic format makes room for them: Q4.4 (−7·2^4 = −112 fits 8 bits, −7·2^5 not).
    code, out, err = drnn(["export", "--torch-gru", tmp_path / "g.pt", "--out", tmp_path / "a"],
                          capsys)
    assert code == 0 and err == "" and "weights Q4.4" in out
    a = ModelBundle.load(tmp_path / "a")
    assert a.w_h[0, 0, 0] == 5 * 16 and a.w_x[0, 1, 1] == -7 * 16
