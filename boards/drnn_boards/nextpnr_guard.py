"""nextpnr with a watchdog on router2's timing-driven rip-up (``--tmg-ripup``).

With ``--tmg-ripup`` router2 rips up and reroutes the arcs of failing paths, not only congested
ones, until none fails. Against a clock the placement cannot reach that never happens, and
this nextpnr (yowasp 0.11) has no limit on it: the P = 8 core against 85 MHz (placement
estimate 69.5 MHz) ran 1,417 router iterations in 55 minutes with 195–222 arcs failing
throughout, and would have gone on. A plain ``drnn build`` of a core that misses the default
clock by that much would never finish.

:func:`run` runs nextpnr, follows its ``--log`` file and, once the routing is legal (no wire
overused) and the number of failing arcs has not improved for :data:`PATIENCE` iterations in a
row, stops it and runs it again without ``--tmg-ripup`` (the same placement: the placer is
deterministic), which routes in a few dozen iterations. What happened goes to
:data:`GUARD_FILE` in the working directory, which :func:`drnn_boards.ulx3s.build` puts in its
report (``clock.router``).

The ULX3S flow points Amaranth's ``NEXTPNR_ECP5`` at a small script that calls :func:`main`
(:func:`write_wrapper`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["PATIENCE", "GUARD_FILE", "RipupMonitor", "run", "main", "write_wrapper"]

#: Iterations of legal routing without fewer failing arcs after which the rip-up is stopped.
#: Converging runs improve far more often: the P = 24 core against 65 MHz reached no failing
#: arc after 128 iterations in all, the demo core against 80 MHz after 56.
PATIENCE = 100
#: Written in the working directory: {"tmg_ripup": "converged" | "abandoned" | "not used",
#: "iterations": router iterations of the run with it, "failing_arcs": the best count}.
GUARD_FILE = "nextpnr_guard.json"
_ITER = re.compile(r"iter=(\d+) wires=\d+ overused=(\d+) overuse=\d+ tmgfail=(\d+)")
_FLAG = "--tmg-ripup"


class RipupMonitor:
    """Reads router2's iteration lines; :meth:`feed` returns True once the rip-up has stalled
    (legal routing, failing arcs not below their best for ``patience`` iterations)."""

    def __init__(self, patience: int = PATIENCE):
        self.patience = patience
        self.best: int | None = None
        self.stale = 0
        self.iterations = 0

    def feed(self, line: str) -> bool:
        m = _ITER.search(line)
        if m is None:
            return False
        self.iterations = int(m[1]) + 1
        overused, failing = int(m[2]), int(m[3])
        if overused or failing == 0:
            return False
        if self.best is None or failing < self.best:
            self.best, self.stale = failing, 0
            return False
        self.stale += 1
        return self.stale >= self.patience


def _log_path(args: list[str]) -> Path | None:
    for i, a in enumerate(args[:-1]):
        if a == "--log":
            return Path(args[i + 1])
    return None


def run(real: list[str], args: list[str], *, patience: int = PATIENCE,
        poll_s: float = 1.0, log=None) -> int:
    """Run ``real + args`` (nextpnr and its arguments); returns its exit code. With
    ``--tmg-ripup`` and ``--log FILE`` among ``args``, watch FILE and rerun without the flag
    when the rip-up stalls (see the module docstring). Writes :data:`GUARD_FILE`."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    logfile = _log_path(args)
    if _FLAG not in args or logfile is None:
        Path(GUARD_FILE).write_text(json.dumps({"tmg_ripup": "not used"}) + "\n")
        return subprocess.call(real + args)
    monitor = RipupMonitor(patience)
    logfile.unlink(missing_ok=True)
    proc = subprocess.Popen(real + args)
    seen = 0            # bytes of the log read, up to its last complete line
    stalled = False
    while True:
        code = proc.poll()
        if logfile.exists():
            with logfile.open("rb") as f:
                f.seek(seen)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1
            for line in chunk[:end].decode(errors="replace").splitlines():
                if monitor.feed(line):
                    stalled = True
                    break
            seen += end
        if stalled or code is not None:
            break
        time.sleep(poll_s)
    record = {"iterations": monitor.iterations, "failing_arcs": monitor.best}
    if not stalled:
        record["tmg_ripup"] = "converged" if code == 0 else "failed"
        Path(GUARD_FILE).write_text(json.dumps(record) + "\n")
        return code
    proc.kill()
    proc.wait()
    log(f"nextpnr: the timing-driven rip-up made no progress for {patience} iterations "
        f"({monitor.best} arcs still failing after {monitor.iterations}); placing and routing "
        f"again without {_FLAG}")
    stalled_log = logfile.with_suffix(logfile.suffix + ".tmg-ripup")
    logfile.replace(stalled_log)
    record["tmg_ripup"] = "abandoned"
    Path(GUARD_FILE).write_text(json.dumps(record) + "\n")
    return subprocess.call(real + [a for a in args if a != _FLAG])


def main(argv=None, *, real: str) -> int:
    """Entry point of the wrapper script: nextpnr's own arguments in ``argv``."""
    return run([real], list(sys.argv[1:] if argv is None else argv))


def write_wrapper(path: Path, real: str) -> Path:
    """Write an executable script at ``path`` that runs :func:`main` around the nextpnr at
    ``real`` with this Python and this copy of ``drnn_boards``; returns ``path`` made absolute
    (the build script that runs it changes into the build directory: a relative ``--out``
    such as ``make ulx3s``'s must still find it)."""
    boards = Path(__file__).resolve().parent.parent
    path.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(boards)!r})\n"
        "from drnn_boards.nextpnr_guard import main\n"
        f"sys.exit(main(real={real!r}))\n")
    path.chmod(0o755)
    return path.resolve()
