"""`drnn simulate --h0 / --state-in / --state-out`: an initial state in real units, the state
of every layer saved and continued (chunks give the h of one run), and a one-line error for
every malformed file."""

import json

import numpy as np
import pytest
from drnn_cli import drnn, drnn_in_process, one_line_error

from drnn_hw.bundle import ModelBundle, random_stacked_bundle
from drnn_hw.golden import run
from drnn_hw.numerics import dequantize, quantize


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    """Layers of different widths (6, 4), Θ > 0, and a batch of 3 ragged sequences."""
    d = tmp_path_factory.mktemp("state")
    b = random_stacked_bundle(3, [6, 4], theta_x=[0.05, 0.1], theta_h=[0.05, 0.02], seed=2)
    b.save(d / "m")
    x = np.random.default_rng(0).normal(size=(3, 10, 3))
    np.save(d / "x.npy", x)
    np.save(d / "len.npy", np.array([10, 7, 9]))
    return d / "m", b, x


@pytest.fixture(scope="module")
def same_width(tmp_path_factory):
    d = tmp_path_factory.mktemp("same")
    b = random_stacked_bundle(2, [5, 5, 5], seed=3)
    b.save(d / "m")
    x = np.random.default_rng(1).normal(size=(2, 6, 2))
    np.save(d / "x.npy", x)
    return d / "m", b, x


def x_path(model):
    return model.parent / "x.npy"


def ok(args, capsys):
    code, out, err = drnn_in_process(args, capsys)
    assert code == 0, err
    return out, err


def error(args, capsys, *needles):
    """The run failed with one line, no traceback, containing every needle."""
    code, _, err = drnn_in_process(args, capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drnn: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _golden(b, x, lengths=None, h0=None):
    """The golden model's h (real units) and final state, h0 in real units."""
    h0_codes = None if h0 is None else [quantize(h, b.formats.act) for h in h0]
    g = run(b, b.quantize_input(x), lengths, h0=h0_codes)
    return dequantize(g.h, b.formats.act), g


def _nan_past(h, lengths):
    h = h.copy()
    h[np.arange(h.shape[1])[None, :] >= np.asarray(lengths)[:, None]] = np.nan
    return h


# ---------------------------------------------------------------------------------------------
# --h0

def test_h0_npz_per_layer_widths(stacked, tmp_path, capsys):
    model, b, x = stacked
    rng = np.random.default_rng(5)
    h0 = [rng.uniform(-1, 1, 6), rng.uniform(-1, 1, (3, 4))]      # shared, and per sequence
    np.savez(tmp_path / "h0.npz", layer0=h0[0], layer1=h0[1])
    ok(["simulate", model, "--input", x_path(model), "--output", tmp_path / "h.npy", "--h0",
        tmp_path / "h0.npz"], capsys)
    want, _ = _golden(b, x, h0=h0)
    assert np.array_equal(np.load(tmp_path / "h.npy"), want)
    # h0 took effect: the run from 0 differs at the first step.
    zero, _ = _golden(b, x)
    assert np.abs(zero[:, 0] - want[:, 0]).max() > 0.05


@pytest.mark.parametrize("per_sequence", [False, True], ids=["L,H", "L,N,H"])
def test_h0_npy_torch_layout(same_width, tmp_path, capsys, per_sequence):
    model, b, x = same_width
    rng = np.random.default_rng(6)
    h0 = rng.uniform(-0.9, 0.9, (3, 2, 5) if per_sequence else (3, 5))
    np.save(tmp_path / "h0.npy", h0)
    ok(["simulate", model, "--input", x_path(model), "--output", tmp_path / "h.npy", "--h0",
        tmp_path / "h0.npy"], capsys)
    want, _ = _golden(b, x, h0=list(h0))
    assert np.array_equal(np.load(tmp_path / "h.npy"), want)


def test_h0_with_tnc_layout_and_a_single_sequence(same_width, tmp_path, capsys):
    """h0's N is the batch whatever the layout of X.npy; one (T, I) sequence is N = 1."""
    model, b, x = same_width
    h0 = np.random.default_rng(7).uniform(-0.5, 0.5, (3, 2, 5))
    np.save(tmp_path / "h0.npy", h0)
    np.save(tmp_path / "x_tnc.npy", x.transpose(1, 0, 2))
    ok(["simulate", model, "--input", tmp_path / "x_tnc.npy", "--layout", "tnc", "--output",
        tmp_path / "h.npy", "--h0", tmp_path / "h0.npy"], capsys)
    want, _ = _golden(b, x, h0=list(h0))
    assert np.array_equal(np.load(tmp_path / "h.npy"), want.transpose(1, 0, 2))
    np.save(tmp_path / "x1.npy", x[1])
    np.save(tmp_path / "h01.npy", h0[:, 1:2])
    ok(["simulate", model, "--input", tmp_path / "x1.npy", "--output", tmp_path / "h1.npy",
        "--h0", tmp_path / "h01.npy"], capsys)
    assert np.array_equal(np.load(tmp_path / "h1.npy"), want[1])


def test_h0_means_torch_h0(tmp_path, capsys):
    """An imported nn.GRU(num_layers=2) run by the CLI with torch's h0 file (L, N, H), Θ = 0:
    within the derived error bound (drnn_train.error_bound, h0 quantised) of torch in float64
    started from the same h0, and far from torch started from 0."""
    import torch

    from drnn_hw.bundle import ModelBundle
    from drnn_train.error_bound import gru_error_bound

    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 5, num_layers=2, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for l in range(2):          # small recurrent gain: the compounding bound stays useful
            getattr(gru, f"weight_hh_l{l}").mul_(0.2)
    torch.save(gru.state_dict(), tmp_path / "g.pt")
    ok(["export", "--torch-gru", tmp_path / "g.pt", "--out", tmp_path / "m"], capsys)
    b = ModelBundle.load(tmp_path / "m")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (4, 3, 3))
    h0 = rng.uniform(-1, 1, (2, 4, 5))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "h0.npy", h0)
    ok(["simulate", tmp_path / "m", "--input", tmp_path / "x.npy", "--output",
        tmp_path / "h.npy", "--h0", tmp_path / "h0.npy"], capsys)
    with torch.no_grad():
        ref, _ = gru(torch.tensor(x), torch.tensor(h0))
        from_zero, _ = gru(torch.tensor(x))
    err = np.abs(np.load(tmp_path / "h.npy") - ref.numpy())
    params = [{k: getattr(gru, f"{n}_l{l}").detach().numpy() for k, n in
               (("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"),
                ("b_hh", "bias_hh"))} for l in range(2)]
    bound = gru_error_bound(b, b.quantize_input(x), float_params=params, x_float=x,
                            h0=[quantize(h, b.formats.act) for h in h0], h0_float=list(h0))
    assert np.all(err <= bound[None]), (err.max(), bound.max())
    assert bound.max() < 0.5 and err.max() < 2 ** -6       # bound 0.12 .. 0.29, measured 0.007
    assert np.abs(np.load(tmp_path / "h.npy") - from_zero.numpy())[:, 0].max() > 0.1


H0_FAULTS = [
    ("h0.txt", None, ["h0.txt", "expected a .npy or .npz file, got .txt"]),
    ("missing.npy", "absent", ["missing.npy: file not found"]),
    ("junk.npy", "junk", ["junk.npy: not a readable .npy file"]),
    ("h0.npy", np.zeros((2, 6)), ["h0.npy", "different widths (6, 4)", "layer0..layer1"]),
    ("h0.npz", {"layer0": np.zeros(6)}, ["h0.npz", "expected arrays layer0, layer1",
                                         "missing layer1"]),
    ("h0.npz", {"layer0": np.zeros(6), "layer1": np.zeros(4), "h": np.zeros(4)},
     ["h0.npz", "unknown h"]),
    ("h0.npz", {"layer0": np.zeros(6), "layer1": np.zeros((2, 4))},
     ["h0.npz: layer1: expected shape (4,) or (3, 4), got (2, 4)"]),
    ("h0.npz", {"layer0": np.array([0, 0, np.nan, 0, 0, 0]), "layer1": np.zeros(4)},
     ["h0.npz: layer0: NaN or infinity at index (2,)"]),
    ("h0.npz", {"layer0": np.zeros(6), "layer1": np.array([0, 0, 200.0, 0])},
     ["h0.npz: layer1: layer 1: values must lie in the activation range [-128, 127.996] "
      "(Q8.8), got 200"]),
    ("h0.npz", {"layer0": np.array(list("abcdef")), "layer1": np.zeros(4)},
     ["h0.npz: layer0: expected real numbers, got dtype <U1"]),
]


@pytest.mark.parametrize("name, payload, needles", H0_FAULTS,
                         ids=[" ".join(n[:2]) for _, _, n in H0_FAULTS])
def test_bad_h0_file_one_line(stacked, tmp_path, capsys, name, payload, needles):
    model, _, _ = stacked
    p = tmp_path / name
    if isinstance(payload, dict):
        np.savez(p, **payload)
    elif isinstance(payload, np.ndarray):
        np.save(p, payload)
    elif payload == "junk":
        p.write_bytes(b"not an array")
    elif payload is None:
        p.write_text("0 0 0\n")
    error(["simulate", model, "--input", x_path(model), "--output", tmp_path / "h.npy",
           "--h0", p], capsys, "--h0", *needles)
    assert not (tmp_path / "h.npy").exists()


@pytest.mark.parametrize("shape, got", [((3, 5), None), ((2, 5), "(2, 5)"),
                                        ((3, 4, 5), "(3, 4, 5)")])
def test_h0_npy_shape_names_expected_and_got(same_width, tmp_path, capsys, shape, got):
    model, _, _ = same_width
    np.save(tmp_path / "h0.npy", np.zeros(shape))
    args = ["simulate", model, "--input", x_path(model), "--output", tmp_path / "h.npy",
            "--h0", tmp_path / "h0.npy"]
    if got is None:
        ok(args, capsys)
    else:
        error(args, capsys, "h0.npy: expected shape (3, 5) or (3, 2, 5)", f"got {got}")


def test_h0_out_of_range_below(same_width, tmp_path, capsys):
    model, _, _ = same_width
    h0 = np.zeros((3, 5))
    h0[2, 1] = -128.5
    np.save(tmp_path / "h0.npy", h0)
    error(["simulate", model, "--input", x_path(model), "--output", tmp_path / "h.npy",
           "--h0", tmp_path / "h0.npy"], capsys, "h0.npy: layer 2", "[-128, 127.996]",
          "got -128.5")


# ---------------------------------------------------------------------------------------------
# --state-out / --state-in

@pytest.mark.parametrize("with_h0", [False, True], ids=["from 0", "from h0"])
def test_two_chunks_give_the_h_of_one_run(stacked, tmp_path, capsys, with_h0):
    """Ragged batch, Θ > 0, stacked layers of different widths: H and the final state of
    chunk 1 (steps 0..3) + chunk 2 (steps 4..9) equal those of one run over steps 0..9."""
    model, b, x = stacked
    lengths = np.array([10, 7, 9])
    h0_args = []
    h0 = None
    if with_h0:
        h0 = [np.full(6, 0.25), np.linspace(-0.8, 0.8, 12).reshape(3, 4)]
        np.savez(tmp_path / "h0.npz", layer0=h0[0], layer1=h0[1])
        h0_args = ["--h0", tmp_path / "h0.npz"]
    np.save(tmp_path / "x1.npy", x[:, :4])
    np.save(tmp_path / "x2.npy", x[:, 4:])
    np.save(tmp_path / "len2.npy", lengths - 4)
    ok(["simulate", model, "--input", x_path(model), "--lengths", model.parent / "len.npy",
        "--output", tmp_path / "h.npy", "--state-out", tmp_path / "s.npz", *h0_args], capsys)
    ok(["simulate", model, "--input", tmp_path / "x1.npy", "--output", tmp_path / "h1.npy",
        "--state-out", tmp_path / "s1.npz", *h0_args], capsys)
    out, _ = ok(["simulate", model, "--input", tmp_path / "x2.npy", "--lengths",
                 tmp_path / "len2.npy", "--output", tmp_path / "h2.npy", "--state-in",
                 tmp_path / "s1.npz", "--state-out", tmp_path / "s2.npz"], capsys)
    assert "state -> " in out and "s2.npz" in out
    whole = np.load(tmp_path / "h.npy")
    chunks = np.concatenate([np.load(tmp_path / "h1.npy"), np.load(tmp_path / "h2.npy")], 1)
    assert np.array_equal(whole, chunks, equal_nan=True)
    # ... and both are the golden model's run in one piece.
    want, g = _golden(b, x, lengths, h0)
    assert np.array_equal(whole, _nan_past(want, lengths), equal_nan=True)
    s, s2 = np.load(tmp_path / "s.npz"), np.load(tmp_path / "s2.npz")
    assert sorted(s.files) == sorted(s2.files)
    for k in s.files:
        assert np.array_equal(s[k], s2[k]), k
    for l, st in enumerate(g.state):
        for k in ("x_ref", "h_ref", "h", "m"):
            assert s[f"layer{l}_{k}"].dtype == np.int64
            assert np.array_equal(s[f"layer{l}_{k}"], getattr(st, k)), (l, k)


def test_state_file_is_readable(stacked, tmp_path, capsys):
    """h_real is each sequence's last h (the H.npy row at its length − 1) in real units; meta
    names the bundle and its sizes."""
    model, b, _ = stacked
    ok(["simulate", model, "--input", x_path(model), "--lengths", model.parent / "len.npy",
        "--output", tmp_path / "h.npy", "--state-out", tmp_path / "s.npz"], capsys)
    s = np.load(tmp_path / "s.npz")
    h = np.load(tmp_path / "h.npy")
    assert np.array_equal(s["layer1_h_real"], h[np.arange(3), [9, 6, 8]])
    assert s["layer1_h_real"].dtype == np.float64
    assert [s[f"layer{l}_{k}"].shape for l in range(2) for k in ("x_ref", "h_ref", "h", "m")] \
        == [(3, 3), (3, 6), (3, 6), (3, 4, 6), (3, 6), (3, 4), (3, 4), (3, 4, 4)]
    meta = json.loads(str(s["meta"]))
    assert meta["bundle"] == b.name and meta["sequences"] == 3
    assert meta["layers"] == [{"input_size": 3, "hidden_size": 6},
                              {"input_size": 6, "hidden_size": 4}]


def _state(stacked, tmp_path, capsys):
    model, _, _ = stacked
    ok(["simulate", model, "--input", x_path(model), "--output", tmp_path / "h.npy",
        "--state-out", tmp_path / "s.npz"], capsys)
    with np.load(tmp_path / "s.npz") as s:
        return {k: s[k] for k in s.files}


def _edited(arrays, **changes):
    out = dict(arrays)
    for k, v in changes.items():
        if v is None:
            out.pop(k)
        else:
            out[k] = v
    return out


STATE_FAULTS = [
    (lambda a: _edited(a, meta=None), ["no 'meta' array", "--state-out"]),
    (lambda a: _edited(a, meta=np.array("{}")), ["meta: expected the JSON of a drnn-state"]),
    (lambda a: _edited(a, meta=np.array(str(a["meta"]).replace('"version": 2',
                                                               '"version": 7'))),
     ["meta.version: expected 2, got 7"]),
    (lambda a: _edited(a, meta=np.array(str(a["meta"]).replace('"version": 2',
                                                               '"version": 1'))),
     ["meta.version: expected 2, got 1 (written before the fingerprint covered the input "
      "normalisation"]),
    (lambda a: _edited(a, layer1_m=None), ["missing array layer1_m"]),
    (lambda a: _edited(a, extra=np.zeros(2)), ["unknown array extra"]),
    (lambda a: _edited(a, layer0_h=a["layer0_h"].astype(float)),
     ["layer0_h: expected integer codes, got dtype float64"]),
    (lambda a: _edited(a, layer1_x_ref=a["layer1_x_ref"][:, :5]),
     ["layer1_x_ref: expected shape (3, 6), got (3, 5)"]),
    (lambda a: _edited(a, layer0_h_ref=a["layer0_h_ref"] + 40000),
     ["layer0_h_ref: codes must lie in [-32768, 32767] (activation format Q8.8)"]),
    (lambda a: _edited(a, layer0_m=a["layer0_m"] - 2 ** 32),
     ["layer0_m: codes must lie in [-2147483648, 2147483647] (accumulator format Q18.14)"]),
    (lambda a: _edited(a, layer1_h_real=a["layer1_h_real"] + 0.5),
     ["layer1_h_real: disagrees with layer1_h"]),
    (lambda a: _edited(a, layer1_h=a["layer1_h"] + 1), ["layer1_h_real: disagrees with layer1_h"]),
]


@pytest.mark.parametrize("edit, needles", STATE_FAULTS,
                         ids=[n[0][:30] for _, n in STATE_FAULTS])
def test_bad_state_file_one_line(stacked, tmp_path, capsys, edit, needles):
    model, _, _ = stacked
    np.savez(tmp_path / "bad.npz", **edit(_state(stacked, tmp_path, capsys)))
    error(["simulate", model, "--input", x_path(model), "--output", tmp_path / "h2.npy",
           "--state-in", tmp_path / "bad.npz"], capsys, "--state-in", "bad.npz", *needles)
    assert not (tmp_path / "h2.npy").exists()


def test_state_of_another_bundle_or_batch_refused(stacked, tmp_path, capsys):
    model, b, x = stacked
    _state(stacked, tmp_path, capsys)
    s = tmp_path / "s.npz"
    # Same sizes and formats, other weights.
    random_stacked_bundle(3, [6, 4], seed=9, name="other").save(tmp_path / "other")
    error(["simulate", tmp_path / "other", "--input", x_path(model), "--output",
           tmp_path / "h.npy", "--state-in", s], capsys,
          f"a state of bundle '{b.name}' with other weights or input normalisation",
          "'other' is")
    # The same weights, another input normalisation (its x̂ are codes of other inputs).
    renorm = ModelBundle.load(model)
    renorm.input_scale = -renorm.input_scale
    renorm.save(tmp_path / "renorm")
    error(["simulate", tmp_path / "renorm", "--input", x_path(model), "--output",
           tmp_path / "h.npy", "--state-in", s], capsys, "other weights or input normalisation")
    # Other sizes.
    random_stacked_bundle(3, [6, 5], seed=2).save(tmp_path / "wider")
    error(["simulate", tmp_path / "wider", "--input", x_path(model), "--output",
           tmp_path / "h.npy", "--state-in", s], capsys,
          "layers (I->H) 3->6, 6->4", "has 3->6, 6->5")
    # Another number of sequences.
    np.save(tmp_path / "x2.npy", x[:2])
    error(["simulate", model, "--input", tmp_path / "x2.npy", "--output", tmp_path / "h.npy",
           "--state-in", s], capsys, "a state of 3 sequence(s), the input has 2")


@pytest.mark.parametrize("args, needles", [
    (["--h0", "{t}/h0.npz", "--state-in", "{t}/s.npz"], ["--h0 and --state-in: give one"]),
    (["--state-in", "{t}/s.npy"], ["--state-in", "s.npy: expected a .npz file, got .npy"]),
    (["--state-in", "{t}/none.npz"], ["--state-in", "none.npz: file not found"]),
    (["--state-in", "{t}/one.npz"], ["--state-in", "one.npz: expected an .npz archive, got "
                                     "one array float64 (3,)"]),
    (["--state-out", "{t}/s.npy"], ["--state-out", "s.npy: expected a file name ending in .npz"]),
    (["--state-out", "{t}/dir.npz"], ["--state-out", "dir.npz: is a directory"]),
])
def test_state_options_checked_before_the_work(stacked, tmp_path, capsys, args, needles):
    model, _, _ = stacked
    (tmp_path / "dir.npz").mkdir()
    np.save(tmp_path / "s.npy", np.zeros(3))
    with open(tmp_path / "one.npz", "wb") as f:      # an .npy under an .npz name
        np.save(f, np.zeros(3))
    args = [a.format(t=tmp_path) for a in args]
    error(["simulate", model, "--input", x_path(model), "--output", tmp_path / "h.npy", *args],
          capsys, *needles)
    assert not (tmp_path / "h.npy").exists()


def test_help_documents_the_state_files():
    p = drnn("simulate", "--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    for needle in ("--h0", "(L, H)", "(L, N, H)", "layer0, layer1", "--state-in",
                   "--state-out", "layer{l}_x_ref", "(N, 4, H_l)", "int64", "layer{l}_h_real",
                   "real units", "fingerprint"):
        assert needle in text, needle


# ---------------------------------------------------------------------------------------------
# The RTL engines: h0 through the H0 register; a whole carried state only on the golden engine.

@pytest.mark.parametrize("engine", ["verilator", "amaranth"])
@pytest.mark.parametrize("stacked", [False, True])
def test_rtl_engine_with_h0_matches_golden(tmp_path, engine, stacked):
    """--h0 on the RTL engines: written over H0 after each sequence's reset; H equals the
    golden model's to the last bit (a single layer, and two layers of different widths)."""
    from drnn_hw.bundle import random_stacked_bundle
    from drnn_sim.cores import core

    b, shape = core("tiny")
    if stacked:
        b = random_stacked_bundle(1, [5, 3], seed=7, theta_x=[0.05, 0.1], theta_h=[0.02, 0.0])
    b.save(tmp_path / "m")
    x = np.random.default_rng(3).normal(size=(2, 5, 1))
    np.save(tmp_path / "x.npy", x)
    rng = np.random.default_rng(4)
    h0 = {f"layer{l}": rng.uniform(-0.5, 0.5, (2, ly.hidden_size))
          for l, ly in enumerate(b.layers)}
    np.savez(tmp_path / "h0.npz", **h0)
    p = drnn("simulate", tmp_path / "m", "--input", tmp_path / "x.npy", "--output",
             tmp_path / "h.npy", "--h0", tmp_path / "h0.npz", "--engine", engine, "--rows",
             min(shape.rows, b.hidden_size), "--columns", shape.columns, "--scan",
             shape.scan, "--stats", tmp_path / "s.json")
    assert p.returncode == 0, p.stderr
    want, g = _golden(b, x, h0=[h0[f"layer{l}"] for l in range(b.num_layers)])
    assert np.array_equal(np.load(tmp_path / "h.npy"), want)
    without, _ = _golden(b, x)
    assert not np.array_equal(want, without)          # h0 mattered


@pytest.mark.parametrize("option", ["--state-out", "--state-in"])
@pytest.mark.parametrize("engine", ["verilator", "amaranth"])
def test_rtl_engines_refuse_a_state_file_in_one_line(tmp_path, option, engine):
    from drnn_sim.cores import core

    b, _ = core("tiny")
    b.save(tmp_path / "m")
    np.save(tmp_path / "x.npy", np.zeros((2, 5, 1)))
    p = drnn("simulate", tmp_path / "m", "--input", tmp_path / "x.npy", "--output",
             tmp_path / "h.npy", option, tmp_path / "s.npz", "--engine", engine)
    line = one_line_error(p)
    assert "--state-in/--state-out need --engine golden" in line and "--h0" in line
    assert not (tmp_path / "h.npy").exists() and not (tmp_path / "s.npz").exists()
