"""The package layers in pyproject's ``[tool.importlinter]`` hold, and breaking one fails."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd, src_dirs):
    env = {"PYTHONPATH": ":".join(str(d) for d in src_dirs), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True)


def test_layers_kept():
    proc = _lint(ROOT, [ROOT / "src", ROOT / "sim", ROOT / "boards"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_an_arrow_pointing_up_breaks_the_contract(tmp_path):
    for d in ("src", "sim", "boards"):
        shutil.copytree(ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("*.egg-info",
                                                                             "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    numerics = tmp_path / "src" / "drnn_hw" / "numerics.py"
    numerics.write_text(numerics.read_text() + "\nimport drnn_train.quant  # noqa\n")
    proc = _lint(tmp_path, [tmp_path / "src", tmp_path / "sim", tmp_path / "boards"])
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout and "drnn_hw.numerics -> drnn_train.quant" in proc.stdout
