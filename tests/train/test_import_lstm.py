"""``drnn export --torch-lstm``: nn.LSTM / nn.LSTMCell state dicts (stacked layers, with and
without biases, either batch_first) to LSTM bundles; the refusals, one line naming file and key."""

import numpy as np
import pytest
import torch
from drnn_cli import drnn_in_process as drnn

from drnn_hw.bundle import ModelBundle
from drnn_hw.golden import float_delta_lstm, run
from drnn_hw.numerics import dequantize, quantize
from drnn_train.error_bound import lstm_error_bound


def _ok(args, capsys):
    code, out, err = drnn(["export", *args], capsys)
    assert code == 0, err
    return out, err


def _error(args, capsys, *needles):
    code, _, err = drnn(["export", *args], capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drnn: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _assert_layer_is(b, l, sd, suffix):
    """Layer l of the bundle holds exactly these nn.LSTM parameters, quantised."""
    f, ly = b.formats, b.layers[l]
    H, I = ly.hidden_size, ly.input_size
    np.testing.assert_array_equal(ly.w_x, quantize(sd[f"weight_ih{suffix}"].reshape(4, H, I),
                                                   f.weight))
    np.testing.assert_array_equal(ly.w_h, quantize(sd[f"weight_hh{suffix}"].reshape(4, H, H),
                                                   f.weight))
    if f"bias_ih{suffix}" in sd:
        want = (sd[f"bias_ih{suffix}"] + sd[f"bias_hh{suffix}"]).reshape(4, H)
        np.testing.assert_array_equal(ly.bias, quantize(want, f.acc))
    else:
        assert np.all(ly.bias == 0)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
def test_torch_lstm_import(tmp_path, capsys, layers, bias, batch_first):
    torch.manual_seed(layers * 10 + bias)
    lstm = torch.nn.LSTM(5, 9, num_layers=layers, bias=bias, batch_first=batch_first)
    torch.save(lstm.state_dict(), tmp_path / "l.pt")
    out, err = _ok(["--torch-lstm", tmp_path / "l.pt", "--out", tmp_path / "b"], capsys)
    assert err == "" and "LSTM" in out and "head=no" in out
    b = ModelBundle.load(tmp_path / "b")
    assert b.cell == "lstm" and b.num_layers == layers and (b.input_size, b.hidden_size) == (5, 9)
    sd = {k: v.double().numpy() for k, v in lstm.state_dict().items()}
    for l in range(layers):
        _assert_layer_is(b, l, sd, f"_l{l}")
    # The bundle computes the LSTM: the golden model against the original torch module (the
    # weights' rounding included) at Θ = 0, in the module's own layout.
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (3, 7, 5))
    g = run(b, b.quantize_input(x))
    xt = torch.tensor(dequantize(b.quantize_input(x), b.formats.act))
    with torch.no_grad():
        ref, _ = lstm.double()(xt if batch_first else xt.transpose(0, 1))
    ref = ref.numpy() if batch_first else ref.transpose(0, 1).numpy()
    assert np.abs(dequantize(g.h, b.formats.act) - ref).max() < 0.03


def test_lstm_with_head_dataset_classes_and_thresholds(tmp_path, capsys):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.LSTM(3, 6, batch_first=True)
            self.fc = torch.nn.Linear(6, 4)

    torch.manual_seed(1)
    net = Net()
    torch.save({"epoch": 2, "model": net.state_dict()}, tmp_path / "ck.pt")
    out, _ = _ok(["--torch-lstm", tmp_path / "ck.pt", "--out", tmp_path / "b",
                  "--theta-x", "0.25", "--theta-h", "0.125", "--input-mean", "1",
                  "--input-scale", "2"], capsys)
    b = ModelBundle.load(tmp_path / "b")
    assert "head=yes (4 classes)" in out and b.classes == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(b.head_w, net.fc.weight.detach().double().numpy())
    assert (b.theta_x, b.theta_h) == (64, 32)
    assert np.all(b.input_mean == 1) and np.all(b.input_scale == 2)
    assert "nn.LSTM" in b.source and "encoder" in b.source


def test_lstm_cell_import_is_the_one_step_lstm(tmp_path, capsys):
    torch.manual_seed(4)
    cell = torch.nn.LSTMCell(4, 6)
    torch.save(cell.state_dict(), tmp_path / "c.pt")
    _ok(["--torch-lstm", tmp_path / "c.pt", "--out", tmp_path / "b"], capsys)
    b = ModelBundle.load(tmp_path / "b")
    assert b.cell == "lstm" and "nn.LSTMCell" in b.source
    sd = {k: v.double().numpy() for k, v in cell.state_dict().items()}
    _assert_layer_is(b, 0, sd, "")
    x = quantize(np.random.default_rng(1).normal(0, 1, (2, 5, 4)), b.formats.act)
    h, _, _ = float_delta_lstm(dequantize(b.w_x, b.formats.weight).reshape(24, 4),
                               dequantize(b.w_h, b.formats.weight).reshape(24, 6),
                               dequantize(b.bias, b.formats.acc).ravel(), None,
                               dequantize(x, b.formats.act))
    err = np.abs(dequantize(run(b, x).h, b.formats.act) - h)
    assert np.all(err <= lstm_error_bound(b, x)[None])


def test_lstm_import_refusals(tmp_path, capsys):
    gru = tmp_path / "gru.pt"
    torch.save(torch.nn.GRU(3, 4).state_dict(), gru)
    lstm = tmp_path / "lstm.pt"
    torch.save(torch.nn.LSTM(3, 4).state_dict(), lstm)
    proj = tmp_path / "proj.pt"
    torch.save(torch.nn.LSTM(3, 4, proj_size=2).state_dict(), proj)
    bi = tmp_path / "bi.pt"
    torch.save(torch.nn.LSTM(3, 4, bidirectional=True).state_dict(), bi)
    half = tmp_path / "half.pt"
    sd = torch.nn.LSTM(3, 4).state_dict()
    del sd["bias_hh_l0"]
    torch.save(sd, half)
    unchained = tmp_path / "unchained.pt"
    sd = torch.nn.LSTM(3, 4, num_layers=2).state_dict()
    sd["weight_ih_l1"] = torch.zeros(16, 5)
    torch.save(sd, unchained)
    out = tmp_path / "b"
    _error(["--torch-lstm", gru, "--out", out], capsys, "gru.pt", "weight_hh_l0",
           "expected shape (4H, H)", "(12, 4)", "--torch-gru")
    _error(["--torch-gru", lstm, "--out", out], capsys, "lstm.pt", "(3H, H)", "(16, 4)",
           "--torch-lstm")
    _error(["--torch-lstm", proj, "--out", out], capsys, "proj.pt", "weight_hr_l0",
           "proj_size")
    _error(["--torch-lstm", bi, "--out", out], capsys, "bidirectional LSTM", "_reverse")
    _error(["--torch-lstm", half, "--out", out], capsys, "both bias_ih_l0 and bias_hh_l0")
    _error(["--torch-lstm", unchained, "--out", out], capsys, "weight_ih_l1", "(16, 4)",
           "(16, 5)", "previous layer's h")
    _error(["--torch-lstm", lstm, "--torch-gru", gru, "--out", out], capsys, "exactly one")
    _error(["--torch-lstm", tmp_path / "none.pt", "--out", out], capsys, "none.pt",
           "not found")
    _error(["--torch-lstm", lstm, "--theta-h", "-1", "--out", out], capsys, "--theta-h")
    assert not out.exists()
