"""`drnn simulate` (golden engine) and `drnn info`, through the real console entry point."""

import json

import numpy as np
import pytest

from drnn_hw.bundle import random_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run
from drnn_hw.numerics import dequantize
from drnn_cli import drnn, one_line_error


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    b = random_bundle(4, 10, seed=7, theta_x=0.1, theta_h=0.05)
    b.save(d)
    return d, b


def test_simulate_batch_writes_h_and_stats(model, tmp_path):
    d, b = model
    x = np.random.default_rng(0).normal(size=(3, 6, 4))
    np.save(tmp_path / "x.npy", x)
    p = drnn("simulate", d, "--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy",
             "--stats", tmp_path / "s.json", "--rows", 4, "--columns", 1, "--scan", 3)
    assert p.returncode == 0, p.stderr
    h = np.load(tmp_path / "h.npy")
    ref = run(b, b.quantize_input(x), shape=CoreShape(rows=4, columns=1, scan=3))
    assert np.array_equal(h, dequantize(ref.h, b.formats.act))
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["steps"] == 18 and len(s["cycles"]) == 18
    assert s["cycles"] == ref.cycles.reshape(-1).tolist()
    assert s["nnz_dx_total"] == int(ref.nnz_dx.sum()) and s["cycles_total"] == sum(s["cycles"])


def test_simulate_single_sequence_keeps_2d(model, tmp_path):
    d, _ = model
    np.save(tmp_path / "x.npy", np.zeros((5, 4)))
    p = drnn("simulate", d, "--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy")
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "h.npy").shape == (5, 10)


@pytest.mark.parametrize("payload, match", [
    (np.zeros((5, 3)), "expected 4 input features"),
    (np.zeros((2, 2, 5, 4)), "expected shape (T, 4) or (N, T, 4)"),
    (np.array([[0.0, np.nan, 0.0, 0.0]]), "sequence 0, step 0, feature 1: NaN value"),
    (np.array([["a", "b", "c", "d"]]), "expected a numeric array"),
])
def test_simulate_bad_inputs_one_line(model, tmp_path, payload, match):
    d, _ = model
    np.save(tmp_path / "x.npy", payload)
    p = drnn("simulate", d, "--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy")
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], p.stderr
    assert "x.npy" in lines[0]


def test_simulate_missing_model_and_bad_core(model, tmp_path):
    d, _ = model
    np.save(tmp_path / "x.npy", np.zeros((2, 4)))
    p = drnn("simulate", tmp_path / "none", "--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy")
    assert p.returncode != 0 and "model bundle directory not found" in p.stderr
    p = drnn("simulate", d, "--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy", "--columns", 4)
    assert p.returncode != 0 and "--columns (K) must be 1 or 2 (the weight banks' read ports), got 4" in p.stderr
    p = drnn("simulate", d, "--input", tmp_path / "missing.npy", "--output", tmp_path / "h.npy")
    assert p.returncode != 0 and "missing.npy: input file not found" in p.stderr
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    p = drnn("simulate", d, "--input", tmp_path / "junk.npy", "--output", tmp_path / "h.npy")
    assert p.returncode != 0 and "junk.npy: not a readable .npy array" in p.stderr


def test_info_summarises(model):
    d, _ = model
    p = drnn("info", d)
    assert p.returncode == 0, p.stderr
    assert "I=4 H=10" in p.stdout and "Q8.8" in p.stdout and "head        none" in p.stdout
    assert "inputs      raw, then Q8.8; beyond ±128 saturates" in p.stdout


def test_info_shows_normalisation(tmp_path):
    b = random_bundle(2, 3)
    b.input_mean, b.input_scale = np.array([1.0, 2.0]), np.array([0.5, 4.0])
    b.save(tmp_path / "m")
    p = drnn("info", tmp_path / "m")
    assert p.returncode == 0, p.stderr
    assert "inputs      (x - mean) / scale per feature, then Q8.8; beyond ±128 saturates" \
        in p.stdout


# -- layout, lengths, NaN padding (each checked against single sequences run one at a time) ----

def _sim(model_dir, tmp_path, x, *args, name="x"):
    """Run simulate on ``x``; returns (H, STATS, process)."""
    xp, hp, sp = (tmp_path / f"{name}.npy", tmp_path / f"{name}_h.npy",
                  tmp_path / f"{name}_s.json")
    np.save(xp, x)
    p = drnn("simulate", model_dir, "--input", xp, "--output", hp, "--stats", sp, *args)
    assert p.returncode == 0, p.stderr
    return np.load(hp), json.loads(sp.read_text()), p


def _each_alone(model_dir, tmp_path, seqs):
    """Every sequence simulated as its own (T, I) file: the reference for batched runs."""
    out = [_sim(model_dir, tmp_path, s, name=f"alone{k}") for k, s in enumerate(seqs)]
    return [h for h, _, _ in out], [st["cycles"] for _, st, _ in out]


def test_layout_tnc_reads_and_writes_time_first(model, tmp_path):
    d, _ = model
    x_ntc = np.random.default_rng(1).normal(size=(3, 5, 4))
    x_tnc = x_ntc.transpose(1, 0, 2).copy()        # what nn.GRU(batch_first=False) takes
    h, stats, _ = _sim(d, tmp_path, x_tnc, "--layout", "tnc")
    assert h.shape == (5, 3, 10)
    alone, cycles = _each_alone(d, tmp_path, list(x_ntc))
    for n in range(3):
        assert np.array_equal(h[:, n], alone[n])
    assert stats["cycles"] == sum(cycles, [])
    # The same file read batch-first is 5 sequences of 3 steps: different numbers, as documented.
    h_ntc, _, _ = _sim(d, tmp_path, x_tnc, name="as_ntc")
    assert h_ntc.shape == (5, 3, 10)


def _ragged(rng, lengths, t, fill):
    x = rng.normal(size=(len(lengths), t, 4))
    for n, L in enumerate(lengths):
        x[n, L:] = fill
    return x


@pytest.mark.parametrize("how", ["lengths-file", "nan-padding", "lengths-and-nan-padding"])
def test_ragged_batch_runs_only_valid_steps(model, tmp_path, how):
    d, _ = model
    lengths = [6, 2, 4]
    rng = np.random.default_rng(2)
    fill = 1e6 if how == "lengths-file" else np.nan    # ignored either way (no saturation)
    x = _ragged(rng, lengths, 6, fill)
    args = ()
    if how != "nan-padding":
        np.save(tmp_path / "len.npy", np.array(lengths))
        args = ("--lengths", tmp_path / "len.npy")
    h, stats, p = _sim(d, tmp_path, x, *args)
    assert p.stderr == ""                                # no saturation warning from padding
    alone, cycles = _each_alone(d, tmp_path, [x[n, :L] for n, L in enumerate(lengths)])
    for n, L in enumerate(lengths):
        assert np.array_equal(h[n, :L], alone[n])
        assert np.isnan(h[n, L:]).all()
    assert stats["steps"] == 12 and stats["lengths"] == lengths
    assert stats["cycles"] == sum(cycles, []) and stats["cycles_total"] == sum(sum(cycles, []))
    assert "3 sequence(s), 12 steps" in p.stdout


def test_ragged_batch_in_tnc_layout(model, tmp_path):
    d, _ = model
    lengths = [3, 5]
    x = _ragged(np.random.default_rng(3), lengths, 5, np.nan)
    h, stats, _ = _sim(d, tmp_path, x.transpose(1, 0, 2), "--layout", "tnc")
    alone, _ = _each_alone(d, tmp_path, [x[n, :L] for n, L in enumerate(lengths)])
    assert h.shape == (5, 2, 10)
    assert np.array_equal(h[:3, 0], alone[0]) and np.isnan(h[3:, 0]).all()
    assert np.array_equal(h[:, 1], alone[1])
    assert stats["steps"] == 8


@pytest.mark.parametrize("lengths, match", [
    (np.array([3, 3]), "len.npy: expected 3 lengths, shape (3,), got shape (2,)"),
    (np.array([[3, 3, 3]]), "len.npy: expected 3 lengths, shape (3,), got shape (1, 3)"),
    (np.array([3.0, 3.0, 3.0]), "len.npy: expected integer lengths, got dtype float64"),
    (np.array([3, 0, 3]), "len.npy: expected lengths in [1, 4], got 0 for sequence 1"),
    (np.array([3, 3, 5]), "len.npy: expected lengths in [1, 4], got 5 for sequence 2"),
    (np.array([3, -1, 3]), "len.npy: expected lengths in [1, 4], got -1 for sequence 1"),
])
def test_bad_lengths_file_one_line(model, tmp_path, lengths, match):
    d, _ = model
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 4)))
    np.save(tmp_path / "len.npy", lengths)
    p = drnn("simulate", d, "--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy",
             "--lengths", tmp_path / "len.npy")
    assert match in one_line_error(p)


def test_missing_lengths_file_one_line(model, tmp_path):
    d, _ = model
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 4)))
    p = drnn("simulate", d, "--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy",
             "--lengths", tmp_path / "nolen.npy")
    assert "nolen.npy: lengths file not found" in one_line_error(p)


def _nan_at(cases):
    x = np.zeros((2, 5, 4))
    for idx in cases:
        x[idx] = np.nan
    return x


@pytest.mark.parametrize("x, args, match", [
    # a whole NaN row in the middle (real data follows): not padding
    (_nan_at([(1, 2)]), (), "sequence 1, step 2, feature 0: NaN value before the sequence's end "
                            "at length 5"),
    # a partially NaN last row: not padding
    (_nan_at([(0, 4, 3)]), (), "sequence 0, step 4, feature 3: NaN value"),
    # padding that starts with a partial row: the partial row is inside the sequence
    (_nan_at([(0, slice(3, 5)), (0, 2, 1)]), (), "sequence 0, step 2, feature 1: NaN value "
                                                 "before the sequence's end at length 3"),
    # a sequence that is padding only
    (_nan_at([(1, slice(None))]), (), "sequence 1 is NaN at every step"),
    # infinity is never padding
    (np.where(np.arange(5)[None, :, None] == 4, np.inf, np.zeros((2, 5, 4))), (),
     "sequence 0, step 4, feature 0: infinite value"),
    # NaN before a length given in a file
    (_nan_at([(0, slice(3, 5))]), ("--lengths", "LEN"),
     "sequence 0, step 3, feature 0: NaN value before the sequence's end at length 4 "
     "(values past the given lengths are ignored"),
])
def test_nan_inside_a_sequence_names_file_sequence_step(model, tmp_path, x, args, match):
    d, _ = model
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "len.npy", np.array([4, 5]))
    args = tuple(tmp_path / "len.npy" if a == "LEN" else a for a in args)
    p = drnn("simulate", d, "--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy", *args)
    line = one_line_error(p)
    assert "x.npy" in line and match in line, line
    assert not (tmp_path / "h.npy").exists()


@pytest.mark.parametrize("shape, layout", [((0, 5, 4), "ntc"), ((5, 0, 4), "tnc")])
def test_zero_sequences_is_an_error(model, tmp_path, shape, layout):
    d, _ = model
    np.save(tmp_path / "x.npy", np.zeros(shape))
    p = drnn("simulate", d, "--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy",
             "--layout", layout)
    line = one_line_error(p)
    assert f"x.npy: no sequences (shape {shape}, layout {layout})" in line


def test_saturated_inputs_warn_once_with_count_and_largest(model, tmp_path):
    d, _ = model
    x = np.zeros((2, 3, 4))
    x[0, 1, 2], x[1, 2, 0], x[1, 0, 3] = 200.0, -300.5, 127.5   # ±128 is the Q8.8 range
    h, _, p = _sim(d, tmp_path, x)
    assert p.stderr.splitlines() == [
        f"drnn: warning: {tmp_path / 'x.npy'}: 2 of 24 input values beyond the activation "
        "range ±128 after normalisation were saturated (largest magnitude 300.5)"]
    # The saturated run equals a run on the clipped values (what the format can hold).
    clipped = np.clip(x, -128, 32767 / 256)
    h_clip, _, p2 = _sim(d, tmp_path, clipped, name="clipped")
    assert p2.stderr == "" and np.array_equal(h, h_clip)


def test_saturation_counts_normalised_values_of_valid_steps_only(tmp_path):
    b = random_bundle(4, 6, seed=3)
    b.input_mean = np.full(4, 500.0)       # raw 0 normalises to -500: beyond the range
    b.save(tmp_path / "m")
    x = np.full((2, 3, 4), 500.0)
    x[0, 2] = np.nan                       # padding: never counted
    x[1, 1, 1] = 0.0                       # -500 after normalisation
    _, _, p = _sim(tmp_path / "m", tmp_path, x)
    assert "1 of 20 input values beyond the activation range ±128 after normalisation were " \
           "saturated (largest magnitude 500)" in p.stderr


def test_simulate_help_documents_layout_lengths_and_nan(model):
    p = drnn("simulate", "--help")
    text = " ".join(p.stdout.split())
    for phrase in ("--layout [ntc|tnc]", "batch_first=False", "H.npy is written in the same layout",
                   "--lengths", "NaN at the steps past a sequence's length",
                   "trailing all-NaN timesteps"):
        assert phrase in text, phrase


@pytest.mark.parametrize("command", ["info", "simulate"])
def test_model_json_wrong_type_is_one_line_through_the_cli(tmp_path, command):
    d = random_bundle(4, 3).save(tmp_path / "m")
    meta = json.loads((d / "model.json").read_text())
    meta["formats"]["act_bits"] = "16"                  # was: '<=' not supported between ...
    (d / "model.json").write_text(json.dumps(meta))
    np.save(tmp_path / "x.npy", np.zeros((2, 4)))
    args = ("--input", tmp_path / "x.npy", "--output", tmp_path / "h.npy") \
        if command == "simulate" else ()
    line = one_line_error(drnn(command, d, *args))
    assert line == f'drnn: error: {d / "model.json"}: formats.act_bits: expected an integer, ' \
                   'got "16"'


def test_output_paths_checked_before_the_work(model, tmp_path):
    d, _ = model
    np.save(tmp_path / "x.npy", np.zeros((2, 4)))
    msg = one_line_error(drnn("simulate", d, "--input", tmp_path / "x.npy",
                              "--output", tmp_path / "h.txt"))
    assert "h.txt" in msg and "ending in .npy" in msg
    msg = one_line_error(drnn("simulate", d, "--input", tmp_path / "x.npy", "--output",
                              tmp_path / "h.npy", "--stats", tmp_path))
    assert "--stats" in msg and "is a directory" in msg
    assert not (tmp_path / "h.npy").exists()
