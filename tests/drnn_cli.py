"""Running the real ``drnn`` entry point from tests, and checking its one-line errors."""

import subprocess
import sys


def drnn(*args, cwd=None):
    """``drnn ARGS`` in a subprocess (the console entry point's module), output captured."""
    return subprocess.run([sys.executable, "-m", "drnn", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def one_line_error(proc):
    """Assert a failed run printed exactly one ``drnn: error:`` line; return it."""
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drnn: error:"), proc.stderr
    return lines[0]


def drnn_in_process(args, capsys):
    """Run the CLI in this process: (exit code, stdout, stderr), captured with ``capsys``."""
    from drnn.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
