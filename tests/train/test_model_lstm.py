"""The trainer's DeltaLSTM and its exact mode: bit-exact with the golden model, torch.nn.LSTM at
Θ = 0 in float, the thresholds in the forward pass, and a training run whose hardware-exact
accuracy is the golden model's."""

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from drnn_hw.bundle import ModelBundle, random_bundle, random_stacked_bundle
from drnn_hw.golden import float_delta_lstm, run
from drnn_hw.numerics import Formats, quantize
from drnn_train.datasets import load_dataset
from drnn_train.evaluate import evaluate_bundle
from drnn_train.export import bundle_from_checkpoint, bundle_from_layer_params
from drnn_train.model import DeltaGRUClassifier, DeltaLSTM, exact_run
from drnn_train.train import train_model
from synthetic import TINY, synthetic_npz


def _codes(rng, n, t, i, fmts, scale=1.5):
    return quantize(rng.normal(0, scale, (n, t, i)), fmts.act)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), I=st.integers(1, 8), H=st.integers(1, 16),
       T=st.integers(1, 12), N=st.integers(1, 4), theta_x=st.sampled_from([0, 1, 20, 64, 300]),
       theta_h=st.sampled_from([0, 1, 10, 64, 200]), wscale=st.sampled_from([0.5, 2.0, 8.0]),
       xscale=st.sampled_from([0.5, 4.0, 200.0]), acc_bits=st.sampled_from([24, 32]),
       layers=st.sampled_from([1, 2]))
def test_lstm_exact_mode_bit_exact_with_golden(seed, I, H, T, N, theta_x, theta_h, wscale,
                                               xscale, acc_bits, layers):
    """The contract: trainer exact mode == golden model, to the bit, including saturation of
    M (24-bit accumulator, ×8 weights, inputs at the format's limits) and stacked layers."""
    f = Formats(acc_bits=acc_bits)
    lsb = f.act.lsb
    if layers == 1:
        b = random_bundle(I, H, formats=f, seed=seed % 1000, weight_scale=wscale, cell="lstm")
        b = b.with_thresholds(theta_x, theta_h)
    else:
        b = random_stacked_bundle(I, [H, max(1, H // 2)], formats=f, seed=seed % 1000,
                                  weight_scale=wscale, theta_x=theta_x * lsb,
                                  theta_h=theta_h * lsb, cell="lstm")
    rng = np.random.default_rng(seed)
    x = _codes(rng, N, T, I, f, scale=xscale)
    lengths = rng.integers(0, T + 1, N)
    g = run(b, x, lengths, with_cycles=False)
    h, nnz_dx, nnz_dh = exact_run(b, x, lengths)
    np.testing.assert_array_equal(h.numpy(), g.h)
    np.testing.assert_array_equal(nnz_dx.numpy(), g.nnz_dx)
    np.testing.assert_array_equal(nnz_dh.numpy(), g.nnz_dh)


def test_lstm_exact_mode_h0_matches_golden():
    b = random_bundle(3, 6, seed=4, cell="lstm").with_thresholds(10, 5)
    rng = np.random.default_rng(3)
    x = _codes(rng, 3, 7, 3, b.formats)
    h0 = [rng.integers(-256, 257, (3, 6))]
    np.testing.assert_array_equal(exact_run(b, x, h0=h0)[0].numpy(), run(b, x, h0=h0).h)


@pytest.mark.parametrize("theta", [0.0, 0.1, 0.3])
def test_lstm_qat_forward_reproduces_exact_mode(theta):
    """In float64 the fake-quantised DeltaLSTM computes the hardware's numbers exactly (c on
    the Q8.10 grid, tanh(c) from c's format), and keeps the same deltas."""
    torch.manual_seed(0)
    f = Formats()
    model = DeltaLSTM(5, 10, f, theta_x=theta, theta_h=theta, quantize=True)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)                       # gates well away from 1/2
        model.b_ih[10:20] += 4.0              # f near 1: c accumulates beyond ±1
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (4, 20, 5))
    lengths = np.array([20, 9, 1, 12])
    h_qat, stats = model(torch.tensor(x), lengths)
    b, sat = bundle_from_layer_params(
        [tuple(p.detach().numpy() for p in (model.w_ih, model.w_hh, model.b_ih, model.b_hh))],
        f, theta, theta, cell="lstm")
    assert sat == 0 and b.cell == "lstm"
    codes = np.where((np.arange(20)[None, :] < lengths[:, None])[..., None],
                     quantize(x, f.act), 0)
    g = run(b, codes, lengths)
    np.testing.assert_array_equal(h_qat.detach().numpy() * f.one, g.h)
    np.testing.assert_array_equal(stats["nnz_dx"].numpy(), g.nnz_dx)
    np.testing.assert_array_equal(stats["nnz_dh"].numpy(), g.nnz_dh)
    assert np.abs(g.state[0].c).max() > 1.5 * (1 << f.cell.frac)   # c really left [−1, 1]


def test_float_delta_lstm_is_torch_lstm_and_the_float_reference():
    """quantize off, Θ = 0: nn.LSTM; Θ > 0: the float64 delta-LSTM reference of drnn_hw."""
    torch.manual_seed(2)
    m = DeltaLSTM(4, 7)
    ref = torch.nn.LSTM(4, 7, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(m.w_ih)
        ref.weight_hh_l0.copy_(m.w_hh)
        ref.bias_ih_l0.copy_(m.b_ih)
        ref.bias_hh_l0.copy_(m.b_hh)
    x = torch.randn(3, 9, 4, dtype=torch.float64)
    with torch.no_grad():
        h, _ = m(x, [9, 9, 9])
        want, _ = ref(x)
    np.testing.assert_allclose(h.numpy(), want.numpy(), rtol=0, atol=1e-12)
    m.theta_x, m.theta_h = 0.4, 0.1
    with torch.no_grad():
        h, stats = m(x, [9, 5, 9])
    fh, nx, nh = float_delta_lstm(*(p.detach().numpy() for p in (m.w_ih, m.w_hh, m.b_ih,
                                                               m.b_hh)),
                                  x.numpy(), 0.4, 0.1, lengths=[9, 5, 9])
    np.testing.assert_allclose(h.numpy(), fh, rtol=0, atol=1e-12)
    assert stats["nnz_dx"].tolist() == nx.tolist() and stats["nnz_dh"].tolist() == nh.tolist()
    assert nx.sum() < 9 * 3 * 4                                      # the threshold acted


def test_straight_through_gradients_reach_every_lstm_parameter():
    torch.manual_seed(3)
    m = DeltaGRUClassifier(3, 6, 2, Formats(), 0.2, 0.1, quantize=True, cell="lstm")
    assert isinstance(m.rnn, DeltaLSTM) and m.rnn.w_ih.shape == (24, 3)
    out, _ = m(torch.randn(4, 5, 3, dtype=torch.float64), [5, 4, 3, 5])
    out.sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match="cell: expected one of gru, lstm"):
        DeltaGRUClassifier(3, 6, 2, cell="rnn")


@pytest.fixture(scope="module")
def trained_lstm(tmp_path_factory):
    d = tmp_path_factory.mktemp("lstm")
    ds = load_dataset(str(synthetic_npz(d / "syn.npz", seed=3)))
    path, m = train_model(d / "m.pt", ds, progress=False, cell="lstm", **TINY)
    return ds, path, m


def test_train_lstm_exact_accuracy_is_the_golden_models(trained_lstm, tmp_path):
    """drnn train --cell lstm's metrics: float vs hardware-exact; the exact accuracy is what the
    golden model gives on the exported bundle, and the checkpoint says it holds an LSTM."""
    ds, path, m = trained_lstm
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["cell"] == "lstm" and m["cell"] == "lstm"
    assert ckpt["state"]["rnn.w_ih"].shape == (4 * TINY["hidden"], ds.input_size)
    b, sat = bundle_from_checkpoint(ckpt)
    assert b.cell == "lstm" and sat == m["saturated_on_export"]
    ev = evaluate_bundle(b, ds)
    assert ev["accuracy"] == m["exact_accuracy"] and ev["cell"] == "lstm"
    # The LSTM core exists: its cycles are the golden model's (the LSTM cycle model) on the
    # default core, an AP stage more than a GRU's with the same kept deltas.
    valid = np.arange(ds.x_test.shape[1])[None, :] < ds.len_test[:, None]
    codes = np.where(valid[..., None], b.quantize_input(ds.x_test), 0)
    want = run(b, codes, ds.len_test).flat("cycles").mean()
    assert ev["mean_cycles"] == pytest.approx(want) and ev["core"] is not None
    assert ev["sparsity_dx"] == pytest.approx(m["sparsity_dx"], abs=1e-12)
    assert m["float_accuracy"] > 0.75 and m["exact_accuracy"] > 0.75      # it learned
    assert 0 < m["sparsity_dx"] < 1 and 0 < m["sparsity_dh"] < 1          # Θ > 0 acted
    b.save(tmp_path / "b")
    assert ModelBundle.load(tmp_path / "b").cell == "lstm"
    assert json.loads((tmp_path / "b" / "model.json").read_text())["format_version"] == 3
