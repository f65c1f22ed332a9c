"""Stacked bundles in the CLI: info, simulate, evaluate and bench on the golden engine; every
command that runs the generated core refuses them with one line naming MODEL_DIR."""

import json

import numpy as np
import pytest
from drnn_cli import drnn_in_process as drnn
from synthetic import synthetic_npz

from drnn_hw.bundle import ModelBundle, random_stacked_bundle
from drnn_hw.golden import run
from drnn_hw.numerics import dequantize


@pytest.fixture(scope="module")
def stacked(tmp_path_factory):
    d = tmp_path_factory.mktemp("stacked")
    syn = synthetic_npz(d / "syn.npz")
    b = random_stacked_bundle(3, [6, 4], theta_x=[0.05, 0.1], theta_h=[0.05, 0.2], seed=1)
    rng = np.random.default_rng(0)
    b.head_w, b.head_b, b.classes = rng.normal(size=(2, 4)), np.zeros(2), ["2", "7"]
    b.extra = {"dataset": str(syn)}
    b.save(d / "m")
    x = rng.normal(size=(2, 7, 3))
    np.save(d / "x.npy", x)
    return d / "m", d / "x.npy", syn


def test_info_shows_each_layer(stacked, capsys):
    model, _, _ = stacked
    code, out, err = drnn(["info", model], capsys)
    assert code == 0, err
    assert "2 layers, I=3 H=4" in out
    assert "layer 0     I=3 H=6  theta_x=0.0507812 (code 13), theta_h=0.0507812 (code 13)" in out
    assert "layer 1     I=6 H=4  theta_x=0.101562 (code 26), theta_h=0.199219 (code 51)" in out


def test_simulate_golden_writes_the_last_layer_and_per_layer_stats(stacked, tmp_path, capsys):
    model, x_path, _ = stacked
    code, _, err = drnn(["simulate", model, "--input", x_path, "--output", tmp_path / "h.npy",
                         "--stats", tmp_path / "s.json"], capsys)
    assert code == 0, err
    b = ModelBundle.load(model)
    ref = run(b, b.quantize_input(np.load(x_path)))
    assert np.array_equal(np.load(tmp_path / "h.npy"), dequantize(ref.h, b.formats.act))
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["layer_nnz_dh"] == ref.flat("layer_nnz_dh").tolist()
    assert s["nnz_dh"] == [sum(v) for v in s["layer_nnz_dh"]]
    assert s["cycles"] == ref.flat("cycles").tolist()


def test_evaluate_and_bench_golden_report_per_layer_sparsity(stacked, tmp_path, capsys):
    model, _, syn = stacked
    code, out, err = drnn(["evaluate", model, "--json", tmp_path / "e.json"], capsys)
    assert code == 0, err
    e = json.loads((tmp_path / "e.json").read_text())
    assert "layer 1 (I=6 H=4)" in out and "layers in sequence" in out
    code, out, err = drnn(["bench", model, "--engine", "golden", "--thetas", "0,0.1,0.05078125",
                           "--torch-repeats", "1", "--quiet", "--out", tmp_path / "bench"],
                          capsys)
    assert code == 0, err
    bench = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert [ly["hidden_size"] for ly in bench["model"]["layers"]] == [6, 4]
    assert bench["model"]["weights"] == 3 * 6 * 9 + 3 * 4 * 10
    rows = {(r["theta_x_code"], r["theta_h_code"]): r for r in bench["rows"]}
    trained = rows[(13, 13)]                       # the bundle as trained: per-layer Θ
    assert trained["trained"] and [ly["theta_h"] for ly in trained["layers"]] == \
        pytest.approx([13 / 256, 51 / 256])
    assert trained["accuracy"] == e["accuracy"]
    assert [ly["sparsity_dh"] for ly in trained["layers"]] == \
        pytest.approx([ly["sparsity_dh"] for ly in e["layers"]])
    assert trained["cycles"]["mean"] == pytest.approx(e["mean_cycles"])
    assert rows[(0, 0)]["sparsity_dh"] <= rows[(26, 26)]["sparsity_dh"]
    # The EdgeDRNN model for L layers: each layer's schedule, in sequence.
    assert trained["peer"]["cycles_mean"] > 0


REFUSED = [
    (["generate", "{m}", "--out", "{t}/g"], "drnn simulate/bench --engine golden"),
    (["simulate", "{m}", "--input", "{x}", "--output", "{t}/h.npy", "--engine", "verilator"],
     "use --engine golden"),
    (["simulate", "{m}", "--input", "{x}", "--output", "{t}/h.npy", "--engine", "amaranth"],
     "use --engine golden"),
    (["bench", "{m}", "--engine", "verilator", "--out", "{t}/b"], "use --engine golden"),
    (["build", "{m}", "--board", "ulx3s-85f", "--out", "{t}/b"], ""),
    (["build", "{m}", "--board", "arty-z7-20", "--out", "{t}/b"], ""),
    (["run", "{m}", "--board", "ulx3s-85f", "--port", "/dev/null", "--input", "{x}",
      "--output", "{t}/h.npy"], "drnn simulate --engine golden"),
    (["report", "{m}", "--target", "ecp5-85k"], ""),
]


@pytest.mark.parametrize("args, hint", REFUSED, ids=[" ".join(a[:1] + a[-2:]) for a, _ in REFUSED])
def test_commands_running_the_core_refuse_a_stacked_bundle(stacked, tmp_path, capsys, args,
                                                            hint):
    model, x_path, _ = stacked
    args = [a.format(m=model, x=x_path, t=tmp_path) for a in args]
    code, _, err = drnn(args, capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"drnn: error: {model}: 2 stacked layers: the generated core "
                               "runs one layer so far"), lines[0]
    assert hint in lines[0]
    assert not (tmp_path / "g").exists() and not (tmp_path / "b").exists()


def test_engines_and_the_core_refuse_a_stacked_bundle():
    from drnn.engines import get_engine
    from drnn_hw.core import DeltaGRUCore
    from drnn_hw.errors import UserError

    b = random_stacked_bundle(2, [3, 3])
    x = np.zeros((1, 2, 2), np.int64)
    for name in ("verilator", "amaranth"):
        with pytest.raises(UserError, match="2 stacked layers: the generated core runs one "
                                            "layer so far; use the golden engine"):
            get_engine(name)(b, x)
    with pytest.raises(ValueError, match="2 stacked layers"):
        DeltaGRUCore(b)
