"""drnn train --spatial-sparsity, export, info, and the core-shape refusal of generate / build /
report, through the real CLI entry point."""

import json

import numpy as np
import pytest

from drnn_hw.bundle import ModelBundle, random_bundle
from drnn_cli import drnn_in_process as drnn
from synthetic import synthetic_npz

FAST = ["--hidden", "8", "--epochs", "2", "--finetune-epochs", "1", "--spatial-epochs", "2",
        "--min-steps", "0", "--finetune-min-steps", "0", "--spatial-min-steps", "0", "--quiet"]


def one_line_error(code, err, *needles):
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drnn: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """train --spatial-sparsity 0.5 --balance-rows 4, then export: (ckpt, bundle dir, stdout)."""
    d = tmp_path_factory.mktemp("cbtd")
    data = synthetic_npz(d / "syn.npz")
    from drnn.cli import main
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["train", "--dataset", str(data), *FAST, "--spatial-sparsity", "0.5",
              "--balance-rows", "4", "--out", str(d / "ck.pt")])
        main(["export", str(d / "ck.pt"), "--out", str(d / "b")])
    return d / "ck.pt", d / "b", out.getvalue()


def test_train_reports_the_pattern_and_export_keeps_it(pruned):
    ckpt, bundle_dir, text = pruned
    assert "spatial sparsity γ=0.5 over P=4 slices: 1 of 2 weights kept per slice" in text
    assert "weight sparsity" in text
    m = json.loads(ckpt.with_name("ck.metrics.json").read_text())
    assert m["config"]["spatial_sparsity"] == 0.5 and m["config"]["balance_rows"] == 4
    meta = json.loads((bundle_dir / "model.json").read_text())
    assert meta["format_version"] == 4
    assert meta["layers"][0]["balance"] == {"rows": 4, "kept": 1, "gamma": 0.5}
    b = ModelBundle.load(bundle_dir)
    for w in list(b.w_x) + list(b.w_h):            # H = 8, P = 4: slices {p, p + 4}
        for c in range(w.shape[1]):
            for p in range(4):
                assert (w[p, c] != 0) + (w[p + 4, c] != 0) <= 1


def test_export_with_other_thresholds_keeps_the_pattern(pruned, tmp_path, capsys):
    ckpt, _, _ = pruned
    code, out, err = drnn(["export", ckpt, "--theta-x", "0.25", "--out", tmp_path / "t"], capsys)
    assert code == 0, err
    b = ModelBundle.load(tmp_path / "t")
    assert b.layers[0].balance.kept == 1 and b.theta_x == 64


def test_info_shows_sparsity_per_matrix(pruned, tmp_path, capsys):
    _, bundle_dir, _ = pruned
    code, out, err = drnn(["info", bundle_dir], capsys)
    assert code == 0, err
    b = ModelBundle.load(bundle_dir)
    assert "column-balanced: P=4 slices (rows r mod 4), at most 1 of 2 weights per slice " \
           "per column (γ=0.5)" in out
    names = ["W_ir", "W_iz", "W_in", "W_hr", "W_hz", "W_hn"]
    for name, w in zip(names, list(b.w_x) + list(b.w_h)):
        line = next(ln for ln in out.splitlines() if f" {name} " in ln)
        zeros = sum(1 for v in w.ravel() if v == 0)
        assert f"sparsity {100 * zeros / w.size:5.1f} %" in line
        assert "largest slice" in line
    random_bundle(3, 5).save(tmp_path / "dense")
    code, out, err = drnn(["info", tmp_path / "dense"], capsys)
    assert code == 0 and "dense (no column-balanced pattern)" in out
    assert "W_hn  (5x5)" in out and "largest slice" not in out


def test_generate_build_report_refuse_another_p(pruned, tmp_path, capsys):
    _, bundle_dir, _ = pruned
    mj = str(bundle_dir / "model.json")
    for args in (["generate", bundle_dir, "--out", tmp_path / "g", "--rows", "2"],
                 ["build", "--board", "arty-z7-20", bundle_dir, "--out", tmp_path / "a",
                  "--rows", "2", "--no-estimate"],
                 ["report", bundle_dir, "--target", "xc7z020", "--rows", "2"]):
        code, out, err = drnn(args, capsys)
        one_line_error(code, err, mj, "layers[0].balance.rows", "P = 4 rows",
                       "the core has P = 2")
    assert not (tmp_path / "g").exists() and not (tmp_path / "a").exists()
    # --rows 16 > H = 8: the core builds 8 rows, and P = 4 is still not the pattern's
    code, out, err = drnn(["generate", bundle_dir, "--out", tmp_path / "g", "--rows", "16"],
                          capsys)
    assert code == 2 and "the core has P = 8" in err


def test_generate_accepts_the_pattern_core(pruned, tmp_path, capsys):
    _, bundle_dir, _ = pruned
    code, out, err = drnn(["generate", bundle_dir, "--out", tmp_path / "g", "--rows", "4",
                           "--no-mul-count"], capsys)
    assert code == 0, err
    assert (tmp_path / "g" / "drnn_core.v").is_file()


@pytest.mark.parametrize("flag, value, needle", [
    ("--spatial-sparsity", "1", "--spatial-sparsity: expected γ in [0, 1), got 1.0"),
    ("--spatial-sparsity", "-0.1", "--spatial-sparsity: expected γ in [0, 1)"),
    ("--balance-rows", "0", "--balance-rows: expected an integer >= 1, got 0"),
    ("--targeted-dropout", "1.5", "--targeted-dropout: expected a value in [0, 1], got 1.5"),
    ("--anneal", "nan", "--anneal: expected a value in [0, 1]"),
])
def test_bad_spatial_options(tmp_path, capsys, flag, value, needle):
    code, out, err = drnn(["train", "--dataset", "japanese-vowels", flag, value, "--out",
                           tmp_path / "x.pt"], capsys)
    one_line_error(code, err, needle)
    assert not (tmp_path / "x.pt").exists()


def test_evaluate_reports_the_compressed_core_model(pruned, tmp_path, capsys):
    from drnn_hw.cycle_model import CoreShape, streamed_prescan
    from drnn_hw.golden import run
    from drnn_hw.spatial import spatial_step_cycles
    from drnn_train.datasets import load_dataset

    _, bundle_dir, _ = pruned
    code, out, err = drnn(["evaluate", bundle_dir, "--rows", "4", "--json", tmp_path / "e.json"],
                          capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "e.json").read_text())
    assert f"compressed-weight core (spatial model, --weight-format compressed): " \
           f"{m['mean_cycles_compressed']:.1f} cycles/step" in out
    # step by step here: the kept deltas of the golden run, one pair per slice (kept = 1),
    # each step after a sequence's first scanned during the AP of the one before (issue #10's
    # step overlap, the default core's)
    b = ModelBundle.load(bundle_dir)
    ds = load_dataset(b.extra["dataset"])
    x, L = ds.x_test, ds.len_test
    codes = np.where((np.arange(x.shape[1])[None, :] < L[:, None])[..., None],
                     b.quantize_input(x), 0)
    shape = CoreShape(rows=4)
    g = run(b, codes, L, shape)
    ly, total = b.layers[0], []
    for n in range(len(L)):
        xr, hr, h = (np.zeros(ly.input_size, np.int64), np.zeros(ly.hidden_size, np.int64),
                     np.zeros(ly.hidden_size, np.int64))
        for t in range(L[n]):
            kx = (codes[n, t] != xr) & (abs(codes[n, t] - xr) >= ly.theta_x)
            kh = (h != hr) & (abs(h - hr) >= ly.theta_h)
            xr, hr = np.where(kx, codes[n, t], xr), np.where(kh, h, hr)
            pre = streamed_prescan(shape.blocks(ly.hidden_size), "gru") if t else 0
            total.append(spatial_step_cycles(kx, kh, shape, 1, prescan=pre))
            h = g.h[n, t]
    assert m["mean_cycles_compressed"] == pytest.approx(np.mean(total))
    assert m["mean_cycles_compressed"] < m["mean_cycles"]
    code, out, err = drnn(["evaluate", bundle_dir, "--rows", "2"], capsys)
    assert code == 0 and "the core's P is not the pattern's" in out


def test_a_pattern_that_prunes_nothing_is_warned_about(tmp_path, capsys):
    data = synthetic_npz(tmp_path / "syn.npz", n_train=16, n_test=8)
    # H = 8, P = 16: one row per slice (NB = 1), γ = 0.5 keeps 1 - floor(0.5) = 1 of 1
    code, out, err = drnn(["train", "--dataset", data, *FAST, "--spatial-sparsity", "0.5",
                           "--out", tmp_path / "n.pt"], capsys)
    assert code == 0, err
    assert "1 of 1 weights kept per slice" in out
    assert "drnn: warning: --spatial-sparsity 0.5 prunes nothing in layer 0: its slices have " \
           "NB = 1 row(s) (H = 8, P = 16)" in err
    code, out, err = drnn(["train", "--dataset", data, *FAST, "--spatial-sparsity", "0.5",
                           "--balance-rows", "4", "--out", tmp_path / "p.pt"], capsys)
    assert code == 0 and "prunes nothing" not in err
