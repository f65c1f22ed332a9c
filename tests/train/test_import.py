"""``drnn export --torch-gru``: finding the GRU people actually save, its head, its weight format
and its input normalisation; every refusal one line naming the file and the key or flag."""

import json

import numpy as np
import pytest
import torch
from drnn_cli import drnn as drnn_subprocess
from drnn_cli import drnn_in_process as drnn
from drnn_cli import one_line_error
from synthetic import synthetic_npz

from drnn_hw.bundle import ModelBundle
from drnn_hw.golden import run
from drnn_hw.numerics import Fixed, quantize
from drnn_train.datasets import input_statistics, load_dataset
from drnn_train.error_bound import gru_error_bound


def _ok(args, capsys):
    code, out, err = drnn(["export", *args], capsys)
    assert code == 0, err
    return out, err


def _error(args, capsys, *needles):
    code, _, err = drnn(["export", *args], capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drnn: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _plain(gru):
    """The nn.GRU's own parameters, float64 NumPy, by their state-dict names."""
    return {k: v.detach().double().numpy() for k, v in gru.state_dict().items()}


def _assert_bundle_is(b, sd, suffix="_l0"):
    """The bundle holds exactly these nn.GRU parameters, quantised in the bundle's format."""
    f = b.formats
    H, I = b.hidden_size, b.input_size
    np.testing.assert_array_equal(b.w_x, quantize(sd[f"weight_ih{suffix}"].reshape(3, H, I),
                                                  f.weight))
    np.testing.assert_array_equal(b.w_h, quantize(sd[f"weight_hh{suffix}"].reshape(3, H, H),
                                                  f.weight))
    bi, bh = sd[f"bias_ih{suffix}"], sd[f"bias_hh{suffix}"]
    want = np.stack([bi[:H] + bh[:H], bi[H:2 * H] + bh[H:2 * H], bi[2 * H:], bh[2 * H:]])
    np.testing.assert_array_equal(b.bias, quantize(want, f.acc))


class Net(torch.nn.Module):
    """A classifier as people write it: a GRU and a Linear head on its last hidden state."""

    def __init__(self, I=3, H=8, C=2, rnn_name="rnn", head_name="fc"):
        super().__init__()
        self.rnn_name, self.head_name = rnn_name, head_name
        setattr(self, rnn_name, torch.nn.GRU(I, H, batch_first=True))
        setattr(self, head_name, torch.nn.Linear(H, C))

    def forward(self, x, lengths):
        h, _ = getattr(self, self.rnn_name)(x)
        last = h[torch.arange(len(lengths)), torch.as_tensor(lengths) - 1]
        return getattr(self, self.head_name)(last)


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(3, 8, batch_first=True)


class Nested(torch.nn.Module):
    """model.encoder.gru and model.classifier: the head is beside the encoder, not the GRU."""

    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.classifier = torch.nn.Linear(8, 4)


# -- finding the GRU ---------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["module.", "rnn.", "encoder.gru."])
def test_prefixed_keys(tmp_path, capsys, prefix):
    torch.manual_seed(1)
    gru = torch.nn.GRU(3, 8)
    sd = {prefix + k: v for k, v in gru.state_dict().items()}
    torch.save(sd, tmp_path / "g.pt")
    out, _ = _ok(["--torch-gru", tmp_path / "g.pt", "--out", tmp_path / "b"], capsys)
    b = ModelBundle.load(tmp_path / "b")
    _assert_bundle_is(b, _plain(gru))
    assert not b.has_head and "head=no" in out
    assert prefix[:-1] in b.source


def test_checkpoint_dict_with_non_tensor_entries(tmp_path, capsys):
    torch.manual_seed(2)
    net = Net()
    opt = torch.optim.Adam(net.parameters())
    net(torch.zeros(1, 2, 3), [2]).sum().backward()
    opt.step()                                       # the optimizer state holds tensors too
    torch.save({"epoch": 3, "model_state_dict": net.state_dict(), "optimizer": opt.state_dict(),
                "note": "best", "losses": [0.5, 0.25]}, tmp_path / "ck.pt")
    out, _ = _ok(["--torch-gru", tmp_path / "ck.pt", "--out", tmp_path / "b"], capsys)
    b = ModelBundle.load(tmp_path / "b")
    _assert_bundle_is(b, _plain(net.rnn))
    np.testing.assert_array_equal(b.head_w, net.fc.weight.detach().double().numpy())
    np.testing.assert_array_equal(b.head_b, net.fc.bias.detach().double().numpy())
    assert b.classes == ["0", "1"] and "head=yes (2 classes)" in out
    # {"state_dict": ...} as Lightning writes it, keys under "model.".
    torch.save({"state_dict": {"model." + k: v for k, v in net.state_dict().items()},
                "global_step": 10}, tmp_path / "pl.ckpt")
    _ok(["--torch-gru", tmp_path / "pl.ckpt", "--out", tmp_path / "b2"], capsys)
    b2 = ModelBundle.load(tmp_path / "b2")
    np.testing.assert_array_equal(b2.w_h, b.w_h)
    np.testing.assert_array_equal(b2.head_w, b.head_w)


def test_gru_cell_is_the_gru_step(tmp_path, capsys):
    torch.manual_seed(3)
    cell = torch.nn.GRUCell(3, 8)
    torch.save(cell.state_dict(), tmp_path / "cell.pt")
    _ok(["--torch-gru", tmp_path / "cell.pt", "--out", tmp_path / "b"], capsys)
    b = ModelBundle.load(tmp_path / "b")
    _assert_bundle_is(b, _plain(cell), suffix="")
    assert "nn.GRUCell" in b.source
    # GRUCell without biases, under a prefix.
    cell = torch.nn.GRUCell(3, 8, bias=False)
    torch.save({"cell." + k: v for k, v in cell.state_dict().items()}, tmp_path / "c2.pt")
    _ok(["--torch-gru", tmp_path / "c2.pt", "--out", tmp_path / "b2"], capsys)
    assert np.all(ModelBundle.load(tmp_path / "b2").bias == 0)


def test_pickled_module_refused_with_state_dict_advice(tmp_path, capsys):
    torch.save(Net(), tmp_path / "whole.pt")
    _error(["--torch-gru", tmp_path / "whole.pt", "--out", tmp_path / "b"], capsys,
           "whole.pt", "torch.save(model)", "state_dict()")
    assert not (tmp_path / "b").exists()
    # The real entry point too: one line, no traceback, no torch warning text.
    proc = drnn_subprocess("export", "--torch-gru", tmp_path / "whole.pt", "--out", tmp_path / "b")
    assert "state_dict()" in one_line_error(proc)


def test_two_grus_need_prefix(tmp_path, capsys):
    torch.manual_seed(4)
    enc, dec = torch.nn.GRU(3, 8), torch.nn.GRU(8, 5)
    sd = {**{"encoder.gru." + k: v for k, v in enc.state_dict().items()},
          **{"decoder.gru." + k: v for k, v in dec.state_dict().items()},
          "lstm.weight_hh_l0": torch.zeros(16, 4), "lstm.weight_ih_l0": torch.zeros(16, 3)}
    torch.save({"model": sd}, tmp_path / "two.pt")
    line = _error(["--torch-gru", tmp_path / "two.pt", "--out", tmp_path / "b"], capsys,
                  "two.pt", "2 GRUs", "model.encoder.gru", "model.decoder.gru", "--prefix")
    assert "lstm" not in line                        # not a GRU: not a candidate
    for given, gru in (("decoder.gru", dec), ("model.encoder.gru.", enc)):
        _ok(["--torch-gru", tmp_path / "two.pt", "--prefix", given, "--out", tmp_path / given],
            capsys)
        _assert_bundle_is(ModelBundle.load(tmp_path / given), _plain(gru))
    _error(["--torch-gru", tmp_path / "two.pt", "--prefix", "gru", "--out", tmp_path / "b"],
           capsys, "two.pt", "2 GRUs", "--prefix")
    _error(["--torch-gru", tmp_path / "two.pt", "--prefix", "rnn", "--out", tmp_path / "b"],
           capsys, "two.pt", "--prefix rnn", "no GRU keys", "model.encoder.gru")
    _error(["--torch-gru", tmp_path / "two.pt", "--prefix", "lstm", "--out", tmp_path / "b"],
           capsys, "two.pt", "model.lstm.weight_hh_l0", "(3H, H)", "(16, 4)")


def test_bidirectional_refused_under_prefix(tmp_path, capsys):
    cases = (({"bidirectional": True}, ["bidirectional", "net.rnn.weight_ih_l0_reverse"]),
             ({"bidirectional": True, "num_layers": 2}, ["bidirectional",
                                                         "net.rnn.weight_ih_l0_reverse"]))
    for kw, needles in cases:
        sd = torch.nn.GRU(3, 4, **kw).state_dict()
        torch.save({"net": {"rnn." + k: v for k, v in sd.items()}}, tmp_path / "s.pt")
        _error(["--torch-gru", tmp_path / "s.pt", "--out", tmp_path / "b"], capsys, "s.pt",
               *needles)
    assert not (tmp_path / "b").exists()


def test_no_gru_lists_what_is_there(tmp_path, capsys):
    torch.save({"epoch": 1, "model": {"fc.weight": torch.zeros(2, 3)}}, tmp_path / "n.pt")
    _error(["--torch-gru", tmp_path / "n.pt", "--out", tmp_path / "b"], capsys,
           "n.pt", "no GRU found", "weight_ih_l0", "GRUCell", "model.fc.weight")
    torch.save(torch.zeros(3), tmp_path / "t.pt")
    _error(["--torch-gru", tmp_path / "t.pt", "--out", tmp_path / "b"], capsys,
           "t.pt", "expected a state dict", "Tensor")


# -- the head ----------------------------------------------------------------------------------

def test_head_beside_the_gru_and_explicit(tmp_path, capsys):
    torch.manual_seed(5)
    for rnn_name, head_name in (("gru", "head"), ("rnn", "classifier"), ("lstm_like", "linear")):
        net = Net(C=3, rnn_name=rnn_name, head_name=head_name)
        torch.save(net.state_dict(), tmp_path / "n.pt")
        _ok(["--torch-gru", tmp_path / "n.pt", "--out", tmp_path / head_name], capsys)
        b = ModelBundle.load(tmp_path / head_name)
        np.testing.assert_array_equal(b.head_w, getattr(net, head_name).weight.detach().numpy())
        assert b.classes == ["0", "1", "2"]
    # The head may sit higher up than the GRU's parent.
    nested = Nested()
    torch.save(nested.state_dict(), tmp_path / "nested.pt")
    _ok(["--torch-gru", tmp_path / "nested.pt", "--out", tmp_path / "nb"], capsys)
    np.testing.assert_array_equal(ModelBundle.load(tmp_path / "nb").head_w,
                                  nested.classifier.weight.detach().numpy())
    # Two candidate heads: refused, then picked with --head-prefix; a bias-free head gets zeros.
    sd = Net(C=3).state_dict()
    sd["aux.weight"] = torch.ones(5, 8)
    torch.save(sd, tmp_path / "two.pt")
    _error(["--torch-gru", tmp_path / "two.pt", "--out", tmp_path / "b"], capsys,
           "two.pt", "aux", "fc", "--head-prefix")
    _ok(["--torch-gru", tmp_path / "two.pt", "--head-prefix", "aux", "--out", tmp_path / "aux"],
        capsys)
    b = ModelBundle.load(tmp_path / "aux")
    assert b.head_w.shape == (5, 8) and np.all(b.head_b == 0) and len(b.classes) == 5
    _error(["--torch-gru", tmp_path / "two.pt", "--head-prefix", "nope", "--out", tmp_path / "b"],
           capsys, "two.pt", "--head-prefix nope", "aux", "fc")
    sd["bad.weight"] = torch.ones(5, 7)
    torch.save(sd, tmp_path / "bad.pt")
    _error(["--torch-gru", tmp_path / "bad.pt", "--head-prefix", "bad", "--out", tmp_path / "b"],
           capsys, "bad.pt", "bad.weight", "(C, 8)", "(5, 7)")


def test_deeper_head_is_not_taken_for_a_linear_one(tmp_path, capsys):
    sd = {**{"rnn." + k: v for k, v in torch.nn.GRU(3, 8).state_dict().items()},
          "fc1.weight": torch.zeros(6, 8), "fc1.bias": torch.zeros(6),
          "fc2.weight": torch.zeros(2, 6), "fc2.bias": torch.zeros(2)}
    torch.save(sd, tmp_path / "mlp.pt")
    _error(["--torch-gru", tmp_path / "mlp.pt", "--out", tmp_path / "b"], capsys,
           "mlp.pt", "fc1.weight", "fc2.weight", "single nn.Linear")


def _train(net, ds, steps=150):
    """A few full-batch Adam steps on the normalised training split: a confident classifier."""
    mean, scale = input_statistics(ds.x_train, ds.len_train)
    x = torch.tensor((ds.x_train - mean) / scale, dtype=torch.float32)
    y = torch.tensor(ds.y_train)
    opt = torch.optim.Adam(net.parameters(), lr=3e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x, ds.len_train), y).backward()
        opt.step()
    return mean, scale


def test_imported_classifier_evaluates(tmp_path, capsys):
    """Head + --dataset: `drnn evaluate` runs on the bundle and agrees with the torch model."""
    torch.manual_seed(6)
    npz = synthetic_npz(tmp_path / "syn.npz", seed=5)
    ds = load_dataset(str(npz))
    net = Net(I=3, H=8, C=2)
    mean, scale = _train(net, ds)
    torch.save({"epoch": 150, "model_state_dict": net.state_dict()}, tmp_path / "net.pt")
    out, _ = _ok(["--torch-gru", tmp_path / "net.pt", "--dataset", npz, "--out",
                  tmp_path / "b"], capsys)
    b = ModelBundle.load(tmp_path / "b")
    assert b.classes == ds.classes == ["2", "7"]
    assert b.extra["dataset"] == str(npz.resolve())
    np.testing.assert_array_equal(b.input_mean, mean)
    np.testing.assert_array_equal(b.input_scale, scale)
    code, out, err = drnn(["evaluate", tmp_path / "b", "--json", tmp_path / "m.json"], capsys)
    assert code == 0, err
    assert "hardware-exact accuracy" in out
    m = json.loads((tmp_path / "m.json").read_text())
    with torch.no_grad():
        xt = torch.tensor((ds.x_test - mean) / scale, dtype=torch.float32)
        torch_acc = float((net(xt, ds.len_test).argmax(-1).numpy() == ds.y_test).mean())
    assert torch_acc >= 0.85                     # the model learned something worth checking
    # 8-bit weights on a trained net: at most one test sequence in 20 changes its class.
    assert abs(m["accuracy"] - torch_acc) <= 0.05, (m["accuracy"], torch_acc)


def test_dataset_flag_checks(tmp_path, capsys):
    npz = synthetic_npz(tmp_path / "syn.npz")             # I = 3, 2 classes
    torch.save(Net(I=4).state_dict(), tmp_path / "i4.pt")
    _error(["--torch-gru", tmp_path / "i4.pt", "--dataset", npz, "--out", tmp_path / "b"],
           capsys, "i4.pt", "--dataset", "3 input features", "rnn.weight_ih has 4")
    torch.save(Net(C=5).state_dict(), tmp_path / "c5.pt")
    _error(["--torch-gru", tmp_path / "c5.pt", "--dataset", npz, "--out", tmp_path / "b"],
           capsys, "c5.pt", "--dataset", "2 classes", "fc.weight has 5 rows")
    _error(["--torch-gru", tmp_path / "c5.pt", "--dataset", tmp_path / "none.npz", "--out",
            tmp_path / "b"], capsys, "none.npz", "not found")
    # Headless GRU + --dataset: normalisation and the record, no classes.
    torch.save(torch.nn.GRU(3, 4).state_dict(), tmp_path / "g.pt")
    _ok(["--torch-gru", tmp_path / "g.pt", "--dataset", npz, "--out", tmp_path / "h"], capsys)
    b = ModelBundle.load(tmp_path / "h")
    ds = load_dataset(str(npz))
    np.testing.assert_array_equal(b.input_mean, input_statistics(ds.x_train, ds.len_train)[0])
    assert b.classes is None and b.extra["dataset"] == str(npz.resolve())


# -- weight format and input normalisation -----------------------------------------------------

def _fits(weights, bits, frac):
    """Independent statement of 'no weight saturates in Q(bits-frac).frac' (round half up)."""
    top = 2 ** (bits - 1)
    return all(np.all((np.floor(w * 2.0 ** frac + 0.5) <= top - 1)
                      & (np.floor(w * 2.0 ** frac + 0.5) >= -top)) for w in weights)


def _max_frac(weights, bits):
    return max(f for f in range(40) if _fits(weights, bits, f))


def _torch_error(b, gru, x):
    """max |h_golden − h_torch| (float64 torch with the original weights), Θ = 0."""
    g = run(b, b.quantize_input(x), with_cycles=False)
    with torch.no_grad():
        ref, _ = gru.double()(torch.tensor((x - b.input_mean) / b.input_scale))
    return float(np.abs(g.h * b.formats.act.lsb - ref.numpy()).max())


def test_auto_format_default_initialised_gru(tmp_path, capsys):
    """nn.GRU(16, 512) weights lie within ±1/√512 ≈ 0.044: Q2.6 would zero many of them."""
    torch.manual_seed(7)
    gru = torch.nn.GRU(16, 512, batch_first=True)
    torch.save(gru.state_dict(), tmp_path / "g.pt")
    sd = _plain(gru)
    w = [sd["weight_ih_l0"], sd["weight_hh_l0"]]
    wanted = _max_frac(w, 8)
    assert wanted == 11                               # 0.044 · 2^11 ≈ 90 ≤ 127 < 0.044 · 2^12
    _, err = _ok(["--torch-gru", tmp_path / "g.pt", "--out", tmp_path / "b8"], capsys)
    b8 = ModelBundle.load(tmp_path / "b8")
    assert (b8.formats.w_bits, b8.formats.w_frac) == (8, 11)
    assert str(b8.formats.weight) == "Q-3.11" and "warning" not in err
    _assert_bundle_is(b8, sd)
    # Far fewer weights lost to zero than in the old fixed Q2.6.
    zero = lambda f: sum(int(np.count_nonzero(quantize(a, Fixed(8, f)) == 0)) for a in w)
    assert zero(11) < zero(6) / 10
    # At the default 8 bits the hardware stays within 2^-6 of the float64 torch GRU at Θ = 0.
    x = np.random.default_rng(0).normal(0, 1, (3, 5, 16))
    assert _torch_error(b8, gru, x) <= 2 ** -6
    # The old fixed format does not (the fault this import fixes): Q2.6 ends further away.
    _ok(["--torch-gru", tmp_path / "g.pt", "--weight-frac", "6", "--out", tmp_path / "b6"],
        capsys)
    assert _torch_error(ModelBundle.load(tmp_path / "b6"), gru, x) > 2 ** -6


def test_auto_format_weights_beyond_two(tmp_path, capsys):
    """Input weights and biases ×10 (beyond ±2, where Q2.6 saturates); the recurrent weights
    keep their default scale so that the float GRU is not chaotic (else no format tracks it)."""
    torch.manual_seed(8)
    gru = torch.nn.GRU(4, 16, batch_first=True)
    with torch.no_grad():
        gru.weight_ih_l0.mul_(10)
        gru.bias_ih_l0.mul_(10)
    torch.save(gru.state_dict(), tmp_path / "g.pt")
    sd = _plain(gru)
    w = [sd["weight_ih_l0"], sd["weight_hh_l0"]]
    assert np.abs(w[0]).max() > 2 and not _fits(w, 8, 6)
    _, err = _ok(["--torch-gru", tmp_path / "g.pt", "--out", tmp_path / "b8"], capsys)
    b8 = ModelBundle.load(tmp_path / "b8")
    assert b8.formats.w_frac == _max_frac(w, 8) == 5 and err == ""
    _assert_bundle_is(b8, sd)
    # Against the original float weights, within the derived bound (short: it compounds).
    x = np.random.default_rng(1).normal(0, 1, (3, 2, 4))
    g = run(b8, b8.quantize_input(x), with_cycles=False)
    with torch.no_grad():
        ref, _ = gru.double()(torch.tensor(x))
    bound = gru_error_bound(b8, b8.quantize_input(x), float_params={
        "w_ih": sd["weight_ih_l0"], "w_hh": sd["weight_hh_l0"], "b_ih": sd["bias_ih_l0"],
        "b_hh": sd["bias_hh_l0"]}, x_float=x)
    assert np.all(np.abs(g.h * b8.formats.act.lsb - ref.numpy()) <= bound[None])
    # Twelve bits: Q3.9, within 2^-6 of torch.
    _ok(["--torch-gru", tmp_path / "g.pt", "--weight-bits", "12", "--out", tmp_path / "b12"],
        capsys)
    b12 = ModelBundle.load(tmp_path / "b12")
    assert b12.formats.w_frac == _max_frac(w, 12) == 9
    x = np.random.default_rng(2).normal(0, 1, (4, 6, 4))
    assert _torch_error(b12, gru, x) <= 2 ** -6


def test_explicit_format(tmp_path, capsys):
    torch.manual_seed(9)
    gru = torch.nn.GRU(3, 6)
    torch.save(gru.state_dict(), tmp_path / "g.pt")
    _ok(["--torch-gru", tmp_path / "g.pt", "--weight-bits", "6", "--weight-frac", "3", "--out",
         tmp_path / "b"], capsys)
    b = ModelBundle.load(tmp_path / "b")
    assert (b.formats.w_bits, b.formats.w_frac) == (6, 3)
    _assert_bundle_is(b, _plain(gru))
    # --weight-frac alone: 8 bits.
    _ok(["--torch-gru", tmp_path / "g.pt", "--weight-frac", "4", "--out", tmp_path / "b4"],
        capsys)
    assert ModelBundle.load(tmp_path / "b4").formats.weight == Fixed(8, 4)
    for args, needles in ((["--weight-bits", "8", "--weight-frac", "17"], ["--weight-frac"]),
                          (["--weight-bits", "30"], ["--weight-bits", "30"]),
                          (["--weight-bits", "1", "--weight-frac", "0"], ["--weight-bits"]),
                          (["--weight-frac", "-1"], ["--weight-frac"])):
        _error(["--torch-gru", tmp_path / "g.pt", *args, "--out", tmp_path / "x"], capsys,
               "g.pt", *needles)
    assert not (tmp_path / "x").exists()


def test_input_normalisation_flags(tmp_path, capsys):
    torch.manual_seed(10)
    gru = torch.nn.GRU(3, 6, batch_first=True)
    torch.save(gru.state_dict(), tmp_path / "g.pt")
    _ok(["--torch-gru", tmp_path / "g.pt", "--input-mean", "1,-2,0.5", "--input-scale", "4",
         "--out", tmp_path / "b"], capsys)
    b = ModelBundle.load(tmp_path / "b")
    np.testing.assert_array_equal(b.input_mean, [1, -2, 0.5])
    np.testing.assert_array_equal(b.input_scale, [4, 4, 4])
    # The bundle feeds the GRU (x − mean) / scale: raw inputs far from 0 stay within 2^-6.
    x = np.random.default_rng(3).normal(0, 1, (3, 5, 3)) * 4 + np.array([1, -2, 0.5])
    assert _torch_error(b, gru, x) <= 2 ** -6
    # Flags override --dataset's statistics.
    npz = synthetic_npz(tmp_path / "syn.npz")
    _ok(["--torch-gru", tmp_path / "g.pt", "--dataset", npz, "--input-scale", "2", "--out",
         tmp_path / "b2"], capsys)
    b2 = ModelBundle.load(tmp_path / "b2")
    ds = load_dataset(str(npz))
    np.testing.assert_array_equal(b2.input_mean, input_statistics(ds.x_train, ds.len_train)[0])
    np.testing.assert_array_equal(b2.input_scale, [2, 2, 2])
    for args, needles in ((["--input-mean", "1,2"], ["--input-mean", "3 comma-separated", "2"]),
                          (["--input-mean", "a,b,c"], ["--input-mean", "'a,b,c'"]),
                          (["--input-scale", "1,0,1"], ["--input-scale", "non-zero"]),
                          (["--input-scale", "nan"], ["--input-scale", "finite"])):
        _error(["--torch-gru", tmp_path / "g.pt", *args, "--out", tmp_path / "x"], capsys,
               "g.pt", *needles)


def test_torch_only_flags_refused_with_a_checkpoint(tmp_path, capsys):
    (tmp_path / "c.pt").write_bytes(b"")
    for flag, value in (("--prefix", "rnn"), ("--weight-bits", "8"), ("--dataset", "x.npz"),
                        ("--input-mean", "0")):
        _error([tmp_path / "c.pt", flag, value, "--out", tmp_path / "b"], capsys,
               "c.pt", flag, "only with --torch-gru")


def test_files_that_are_not_state_dicts(tmp_path, capsys):
    """A missing file, a directory and a text file each get their own one-line reason."""
    (tmp_path / "script.py").write_text("print('not a torch file')\n")
    _error(["--torch-gru", tmp_path / "none.pt", "--out", tmp_path / "b"], capsys,
           "none.pt", "file not found")
    _error(["--torch-gru", tmp_path, "--out", tmp_path / "b"], capsys, "is a directory")
    _error(["--torch-gru", tmp_path / "script.py", "--out", tmp_path / "b"], capsys,
           "script.py", "not a torch file")


def test_notes_for_mixed_normalisation_and_zero_weights(tmp_path, capsys):
    torch.manual_seed(11)
    gru = torch.nn.GRU(3, 5, batch_first=True)
    torch.save(gru.state_dict(), tmp_path / "g.pt")
    d = {"x_train": np.random.default_rng(0).normal(2.0, 3.0, (8, 4, 3)),
         "y_train": np.arange(8) % 2, "x_test": np.zeros((2, 4, 3)), "y_test": np.arange(2)}
    np.savez(tmp_path / "d.npz", **d)
    _, err = _ok(["--torch-gru", tmp_path / "g.pt", "--dataset", tmp_path / "d.npz",
                  "--input-mean", "0.5", "--out", tmp_path / "b"], capsys)
    assert err.strip() == ("drnn: note: the normalisation takes --input-mean from the flags and "
                           "the rest from --dataset's training split")
    b = ModelBundle.load(tmp_path / "b")
    assert b.input_mean.tolist() == [0.5] * 3 and abs(b.input_scale.mean() - 3.0) < 1.0
    with torch.no_grad():
        for p in gru.parameters():
            p.zero_()
    torch.save(gru.state_dict(), tmp_path / "z.pt")
    _, err = _ok(["--torch-gru", tmp_path / "z.pt", "--out", tmp_path / "bz"], capsys)
    assert err.strip().startswith("drnn: note: every weight is zero")
