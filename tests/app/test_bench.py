"""The bench's arithmetic on hand-made cases (expected numbers worked out by hand from the
definitions), the threshold sweep, bench.json's keys, and the CLI's one-line errors."""

import json

import numpy as np
import pytest

from drnn.bench import metrics as B
from drnn.bench import run as R
from drnn_hw.bundle import random_bundle
from drnn_hw.cycle_model import AP_LATENCY, SCAN_LATENCY, CoreShape, mxv_drain
from drnn_hw.errors import UserError
from drnn_hw.golden import GoldenResult
from drnn_hw.golden import run as golden_run
from drnn_cli import drnn

# The hand-made case: I=3, H=4, P=2, K=2 -> 12 multipliers, ceil(H/P) = 2 blocks.
SHAPE = CoreShape(rows=2, columns=2, scan=4)
NDX = np.array([3, 1, 0])
NDH = np.array([4, 1, 0])
CYC = np.array([20, 12, 10])


def test_useful_macs_and_utilisation():
    # 3H = 12 MACs per kept column, 9 kept columns in all.
    assert B.useful_macs(NDX, NDH, 4) == 108
    # 108 useful of 12 multipliers x 42 cycles.
    assert B.mxv_utilisation(108, SHAPE, CYC) == pytest.approx(108 / 504)


def test_bound_efficiency():
    # bound(nnz) = ceil(nnz/2)*2 + ceil(4/4): nnz 7 -> 9, nnz 2 -> 3, nnz 0 -> 1; 13 of 42.
    assert B.bound_efficiency(NDX + NDH, 4, SHAPE, CYC) == pytest.approx(13 / 42)


def test_throughput_and_normalisation():
    assert B.dense_ops_per_step(3, 4) == 168                    # 2 * 3*4 * (3+4)
    # mean 14 cycles at 100 MHz = 0.14 µs per step -> 168 op / 0.14 µs = 1.2 GOp/s
    assert B.effective_ops_per_s(3, 4, 14.0, 100.0) == pytest.approx(1.2e9)
    assert B.ops_per_multiplier_cycle(3, 4, 14.0, 12) == pytest.approx(1.0)   # 168 / (12*14)
    assert B.REFERENCE_DESIGN["ops_per_multiplier_cycle"] == pytest.approx(12.5)


def test_speedup_sparsity_stats():
    assert B.speedup([20, 20, 20], CYC) == pytest.approx(60 / 42)
    assert B.sparsity(NDX, 3) == pytest.approx(5 / 9)             # 4 kept of 9
    assert B.sparsity(NDH, 4) == pytest.approx(7 / 12)            # 5 kept of 12
    s = B.cycle_stats(CYC)
    assert (s["mean"], s["p50"], s["max"], s["total"]) == (14, 12, 20, 42)
    assert s["p99"] == pytest.approx(12 + 0.98 * 8)               # linear between 12 and 20


def test_breakdown():
    bd = B.cycle_breakdown(NDX + NDH, CYC, 4, SHAPE)
    fixed, drain = SCAN_LATENCY + 2 + AP_LATENCY, mxv_drain(2)
    assert bd["ap_fixed"] == fixed
    assert bd["mxv_issue"] == pytest.approx((8 + 2 + 0) / 3)     # ceil(nnz/2) * 2 blocks
    assert bd["mxv_drain"] == pytest.approx(2 * drain / 3)       # two steps kept a delta
    assert bd["scan_wait"] == pytest.approx(14 - fixed - 10 / 3 - 2 * drain / 3)


def _two_unit_bundle():
    b = random_bundle(3, 2, seed=1)
    b.head_w = np.array([[1.0, 0.0], [0.0, 1.0]])
    b.head_b = np.zeros(2)
    b.classes = ["a", "b"]
    return b


def test_head_accuracy_uses_last_valid_step():
    b = _two_unit_bundle()
    h = np.zeros((2, 3, 2), np.int64)
    h[0, 0], h[0, 1], h[0, 2] = (0, 200), (256, 0), (0, 999)    # length 2: step 1 says class 0
    h[1, 0], h[1, 1] = (0, 10), (300, 0)                         # length 1: step 0 says class 1
    assert B.head_accuracy(b, h, [2, 1], [0, 0]) == 0.5
    assert B.head_accuracy(b, h, [2, 1], [0, 1]) == 1.0


def test_parse_thetas():
    b = random_bundle(3, 4)                                      # Q8.8 activations
    # 0.05*256 = 12.8 -> 13; 0.1 -> 25.6 -> 26; 0.2 -> 51.2 -> 51 (round half up)
    assert B.parse_thetas("0, 0.05,0.1/0.2", b) == [(0, 0), (13, 13), (26, 51)]
    for bad in ("", "a", "-1", "0.1/0.2/0.3", "1000", "0,,1", "nan"):
        with pytest.raises(UserError, match="--thetas"):
            B.parse_thetas(bad, b)


class _Data:
    def __init__(self, x, lengths, y, name="tiny"):
        self.name, self.x_test, self.len_test, self.y_test = name, x, lengths, y


def test_sweep_stops_after_accuracy_drop():
    """A fake engine whose head output is right below Θ code 32 and wrong from it on: the sweep
    measures 0 first, then doubles, and stops after the first point 3 points below Θ=0."""
    b = _two_unit_bundle()
    asked = []

    def engine(bundle, codes, lengths, shape):
        asked.append((bundle.theta_x, bundle.theta_h))
        n, t = codes.shape[:2]
        h = np.zeros((n, t, 2), np.int64)
        h[:, :, 0 if bundle.theta_x < 32 else 1] = 256
        ones = np.ones((n, t), np.int64)
        return GoldenResult(h=h, nnz_dx=ones, nnz_dh=ones, cycles=10 * ones,
                            lengths=np.asarray(lengths))

    data = _Data(np.zeros((4, 3, 3)), np.array([3, 2, 3, 1]), np.zeros(4, np.int64))
    out = R.run_bench(b, data, SHAPE, engine, engine_name="fake", torch_repeats=1,
                      progress=False, log=lambda s: None)
    assert asked == [(0, 0), (4, 4), (8, 8), (16, 16), (32, 32)]
    assert [r["accuracy"] for r in out["rows"]] == [1.0, 1.0, 1.0, 1.0, 0.0]
    assert out["rows"][0]["speedup_vs_theta0"] == 1.0
    assert out["rows"][0]["trained"]                              # the bundle's Θ is 0/0


def test_run_bench_golden_rows_consistent():
    """On the golden engine, the rows agree with totals computed here from the engine output."""
    b = random_bundle(3, 4, seed=3)
    b.head_w, b.head_b, b.classes = np.eye(4)[:3], np.zeros(3), ["0", "1", "2"]
    rng = np.random.default_rng(5)
    data = _Data(rng.normal(size=(6, 9, 3)), np.array([9, 4, 7, 9, 2, 5]), rng.integers(0, 3, 6))
    out = R.run_bench(b, data, SHAPE, golden_run, engine_name="golden", thetas=[(0, 0), (64, 64)],
                      clock_mhz=50.0, torch_repeats=1, progress=False, log=lambda s: None,
                      golden_run=golden_run)
    codes = b.quantize_input(data.x_test)
    r0 = golden_run(b, codes, data.len_test, SHAPE)
    r1 = golden_run(b.with_thresholds(64, 64), codes, data.len_test, SHAPE)
    c0, c1 = r0.cycles.sum(), r1.cycles.sum()
    steps = data.len_test.sum()
    row = out["rows"][1]
    assert row["steps"] == steps == 36
    assert row["speedup_vs_theta0"] == pytest.approx(c0 / c1)
    assert row["cycles"]["mean"] == pytest.approx(c1 / steps)
    assert row["latency_us"]["mean"] == pytest.approx(c1 / steps / 50.0)
    # One layer: frames back to back are a step apart, each step after a sequence's first
    # scanned during the AP of the one before (issue #10's step overlap, the default); a
    # frame's latency is its step as one that found the core idle (prescan 0) plus one cycle
    # and its one beat (H = E = 4), which holds the AP's last block, so leaves an edge after
    # the commit (cycle_model.output_tail; verified in Verilator, tests/sim).
    assert SHAPE.step_overlap and (r1.prescan[:, 1:] > 0).any()
    idle = golden_run(b.with_thresholds(64, 64), codes, data.len_test, SHAPE, prescan=0)
    assert idle.cycles.sum() > c1
    beats = -(-4 // SHAPE.scan)
    assert row["throughput_cycles"] == pytest.approx(c1 / steps)
    latency = idle.cycles.sum() / steps + beats + 1
    assert row["frame_latency_cycles"] == pytest.approx(latency)
    assert row["frame_latency_us"] == pytest.approx(latency / 50.0)
    kept = r1.nnz_dx.sum() + r1.nnz_dh.sum()
    assert row["mxv_utilisation"] == pytest.approx(12 * kept / (12 * c1))
    assert row["sparsity_dh"] == pytest.approx(1 - r1.nnz_dh.sum() / (4 * steps))
    assert all(c["h_mismatch_steps"] == 0 and c["cycles_vs_model_mismatch_steps"] == 0
               for c in out["cross_check"])
    assert out["trace"]["sequence"] == 0 and out["trace"]["length"] == 9


def test_run_bench_of_an_lstm():
    """An LSTM bundle: 4·H useful MACs per kept delta on 4·P·K multipliers, the LSTM's cycles,
    torch's nn.LSTM as the float reference, and no peer figure (n/a, with the reason)."""
    b = random_bundle(3, 4, seed=3, cell="lstm")
    b.head_w, b.head_b, b.classes = np.eye(4)[:3], np.zeros(3), ["0", "1", "2"]
    rng = np.random.default_rng(5)
    data = _Data(rng.normal(size=(5, 8, 3)), np.array([8, 4, 7, 2, 5]), rng.integers(0, 3, 5))
    out = R.run_bench(b, data, SHAPE, golden_run, engine_name="golden", thetas=[(0, 0), (64, 64)],
                      clock_mhz=50.0, torch_repeats=1, progress=False, log=lambda s: None)
    r1 = golden_run(b.with_thresholds(64, 64), b.quantize_input(data.x_test), data.len_test,
                    SHAPE)
    row = out["rows"][1]
    kept = r1.nnz_dx.sum() + r1.nnz_dh.sum()
    assert row["useful_macs"] == 4 * 4 * kept
    assert row["mxv_utilisation"] == pytest.approx(16 * kept / (16 * r1.cycles.sum()))
    assert out["core"]["multipliers"] == 16 and out["model"]["cell"] == "lstm"
    assert out["model"]["weights"] == 4 * 4 * (3 + 4)
    assert row["peer"] is None and row["peer_na"].startswith("n/a: EdgeDRNN")
    assert out["torch"]["module"] == "nn.LSTM"
    assert out["torch"]["dense_float_accuracy"] is not None
    assert row["breakdown"]["ap_fixed"] == 3 + 2 + 12         # SCAN + NB + the LSTM's AP


def test_run_bench_of_a_compressed_core_splits_the_two_sparsities():
    """A column-balanced bundle on a compressed-weight core (issue #13): MxV% and bound%
    count the stored pairs (P·kept per gate and kept delta, kept cycles per group), and the
    speed-up over the dense core at Θ = 0 is temporal × spatial, each from golden runs of the
    two cores made here."""
    from drnn_hw.balance import prune_bundle

    P, gamma = 4, 0.75                       # H = 12: NB = 3 blocks, 1 pair kept per slice
    b = prune_bundle(random_bundle(5, 12, seed=7, weight_scale=1.5), P, gamma)
    b.head_w, b.head_b, b.classes = np.eye(12)[:3], np.zeros(3), ["0", "1", "2"]
    comp = CoreShape(rows=P, columns=2, scan=4, weight_format="compressed")
    dense = CoreShape(rows=P, columns=2, scan=4)
    rng = np.random.default_rng(2)
    data = _Data(rng.normal(size=(4, 7, 5)), np.array([7, 3, 6, 5]), rng.integers(0, 3, 4))
    out = R.run_bench(b, data, comp, golden_run, engine_name="golden",
                      thetas=[(0, 0), (40, 40)], clock_mhz=50.0, torch_repeats=1,
                      progress=False, log=lambda s: None)
    codes = b.quantize_input(data.x_test)
    assert out["core"]["kept"] == [1]
    d0 = golden_run(b, codes, data.len_test, dense).cycles.sum()
    for (tx, th), row in zip([(0, 0), (40, 40)], out["rows"]):
        bt = b.with_thresholds(tx, th)
        c = golden_run(bt, codes, data.len_test, comp)
        d = golden_run(bt, codes, data.len_test, dense).cycles.sum()
        nnz = c.nnz_dx + c.nnz_dh
        valid = np.arange(7)[None, :] < data.len_test[:, None]
        assert row["useful_macs"] == 3 * P * 1 * nnz.sum()
        assert row["mxv_utilisation"] == pytest.approx(3 * P * nnz.sum() / (24 * c.cycles.sum()))
        bound = (-(-nnz[valid] // 2) * 1 + 2).sum()          # kept = 1; ceil(12 / 8) = 2
        assert row["bound_cycles_mean"] == pytest.approx(bound / valid.sum())
        sp = row["spatial"]
        assert sp["weight_sparsity"] == pytest.approx(float(np.mean(
            np.concatenate([b.layers[0].w_x.ravel(), b.layers[0].w_h.ravel()]) == 0)))
        assert sp["temporal_speedup"] == pytest.approx(d0 / d)
        assert sp["spatial_speedup"] == pytest.approx(d / c.cycles.sum())
        assert sp["speedup_vs_dense_theta0"] == pytest.approx(d0 / c.cycles.sum())
    assert out["rows"][1]["spatial"]["temporal_speedup"] > 1          # Θ dropped deltas
    assert out["rows"][0]["spatial"]["spatial_speedup"] > 1           # kept 1 of 3 blocks
    assert "temporal" in FORMAT(out) and "× " in FORMAT(out)


def FORMAT(bench):
    from drnn.commands.bench import format_table
    return format_table(bench)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    rng = np.random.default_rng(0)
    np.savez(d / "tiny.npz", x_train=rng.normal(size=(4, 6, 3)), y_train=np.array([0, 1, 2, 0]),
             x_test=rng.normal(size=(5, 6, 3)), y_test=np.array([0, 1, 2, 1, 0]),
             len_test=np.array([6, 3, 5, 6, 2]))
    b = random_bundle(3, 4, seed=2, theta_x=0.125, theta_h=0.125)
    b.head_w, b.head_b, b.classes = rng.normal(size=(3, 4)), np.zeros(3), ["0", "1", "2"]
    b.extra = {"dataset": str(d / "tiny.npz")}
    b.save(d / "model")
    return d


def test_cli_writes_json_and_plots(tiny, tmp_path):
    out = tmp_path / "out"
    p = drnn("bench", tiny / "model", "--engine", "golden", "--thetas", "0,0.25", "--out", out,
             "--rows", 2, "--columns", 2, "--scan", 4, "--torch-repeats", 2, "--quiet",
             "--clock-mhz", 40)
    assert p.returncode == 0, p.stderr
    assert "Θx" in p.stdout and "40 MHz (stated" in p.stdout
    bench = json.loads((out / "bench.json").read_text())
    # The bench.json schema users read (README "Benchmarks"), stated here independently.
    assert set(bench) == {"schema", "command", "model", "dataset", "core", "engine",
                          "cycles_source", "thresholds_note", "clock", "definitions",
                          "reference_design", "peer_model", "torch", "rows", "trace",
                          "cross_check", "plots"}
    # 0 and 0.25 given, the trained 0.125/0.125 is not added when the list is explicit
    assert [(r["theta_x_code"], r["theta_h_code"]) for r in bench["rows"]] == [(0, 0), (64, 64)]
    for r in bench["rows"]:
        assert set(r) == {"theta_x", "theta_h", "theta_x_code", "theta_h_code", "trained",
                          "accuracy", "sparsity_dx", "sparsity_dh", "nnz_dx_mean",
                          "nnz_dh_mean", "steps", "cycles", "latency_us", "throughput_cycles",
                          "frame_latency_cycles", "frame_latency_us", "speedup_vs_theta0",
                          "useful_macs", "mxv_utilisation", "bound_cycles_mean",
                          "bound_efficiency", "effective_gops", "ops_per_multiplier_cycle",
                          "breakdown", "peer", "peer_published", "torch_ratio"}
    assert bench["clock"] == {"mhz": 40.0, "source": "stated, not measured by a build"}
    assert bench["cycles_source"].startswith("cycle model")
    assert bench["dataset"]["steps"] == 22
    assert len(bench["plots"]) == 3
    for name in ("accuracy_sparsity.png", "cycles.png", "trace.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


@pytest.mark.parametrize("args, match", [
    (["{none}"], "model bundle directory not found"),
    ([], "no model"),
    (["{model}", "--dataset", "no-such-set"], "unknown data set 'no-such-set'"),
    (["{model}", "--thetas", "0,x"], "--thetas: 'x' is not a number"),
    (["{model}", "--limit", "0"], "--limit must be ≥ 1"),
    (["{model}", "--build-report", "{none}"], "build report not found"),
    (["{model}", "--columns", "3"], "--columns (K) must be 1 or 2"),
])
def test_cli_bad_input_one_line(tiny, tmp_path, args, match):
    args = [a.format(model=tiny / "model", none=tmp_path / "none") for a in args]
    p = drnn("bench", *args, "--engine", "golden", "--out", tmp_path / "o", "--quiet")
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], p.stderr


def test_compare_counts_mismatched_steps():
    b = random_bundle(3, 4, seed=3)
    x = np.random.default_rng(1).integers(-400, 400, (2, 5, 3))
    a = golden_run(b, x, [5, 3], SHAPE)
    c = golden_run(b, x, [5, 3], SHAPE)
    c.h[0, 1, 2] += 1          # one step's h differs
    c.h[1, 4, 0] += 1          # past the end of sequence 1: not a valid step
    c.cycles[1, 2] += 1
    c.nnz_dh[0, 0] += 1
    cmp = R._compare(a, c)
    assert cmp == {"steps": 8, "h_mismatch_steps": 1, "nnz_mismatch_steps": 1,
                   "cycles_vs_model_mismatch_steps": 1}


@pytest.mark.slow
def test_cli_verilator_engine(tiny, tmp_path):
    """The real RTL engine: one built core, Θ written to the registers, checked against golden."""
    out = tmp_path / "out"
    p = drnn("bench", tiny / "model", "--engine", "verilator", "--thetas", "0,0.25",
             "--out", out, "--rows", 2, "--columns", 2, "--scan", 4, "--torch-repeats", 1, "--quiet")
    assert p.returncode == 0, p.stderr
    bench = json.loads((out / "bench.json").read_text())
    assert bench["cycles_source"].startswith("measured")
    assert len(bench["cross_check"]) == 2
    for c in bench["cross_check"]:
        assert c["steps"] == 22
        assert c["h_mismatch_steps"] == c["nnz_mismatch_steps"] == 0
        assert c["cycles_vs_model_mismatch_steps"] == 0
    assert [e["theta_x_code"] for e in bench["engine_perf"]] == [0, 64]
    assert len({e["build_dir"] for e in bench["engine_perf"]}) == 1     # one core for both Θ


def test_dram_traffic_of_a_core_with_weights_in_dram():
    """I=3, H=4, P=2: NB = 2 blocks; a block word is 3 gates x 2 rows x 8 bits = 48 bits, one
    64-bit beat, so a kept column costs 2 x 8 = 16 bytes and a dense step 7 x 16 = 112. The
    hand-made steps keep 7, 2, 0 columns: 112, 32, 0 bytes (mean 48) over 42 cycles."""
    from dataclasses import replace

    b = random_bundle(3, 4, seed=2)
    res = GoldenResult(h=np.zeros((3, 1, 4), np.int64), nnz_dx=NDX[:, None],
                       nnz_dh=NDH[:, None], cycles=CYC[:, None], lengths=np.ones(3, np.int64))
    row = R.summarise(res, b, np.zeros(3, np.int64), replace(SHAPE, weights="axi"), 100.0)
    assert row["dram"] == {"bytes_per_step_mean": 48.0, "dense_bytes_per_step": 112,
                           "fraction_of_dense": pytest.approx(48 / 112),
                           "bytes_per_cycle_mean": pytest.approx(144 / 42)}
    assert "dram" not in R.summarise(res, b, np.zeros(3, np.int64), SHAPE, 100.0)
