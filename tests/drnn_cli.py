"""Running the real ``drnn`` entry point from tests, and checking its one-line errors."""

import subprocess
import sys


def drnn(*args, cwd=None):
    """``drnn ARGS`` in a subprocess (the console entry point's module), output captured."""
    return subprocess.run([sys.executable, "-m", "drnn_hw.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def one_line_error(proc):
    """Assert a failed run printed exactly one ``drnn: error:`` line; return it."""
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drnn: error:"), proc.stderr
    return lines[0]
