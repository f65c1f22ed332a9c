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
deterministic), which routes in a few dozen iterations.

The rip-up can also keep the routing from ever becoming legal: the arcs it reroutes for timing
take wires others need, and congestion grows instead of falling. ``make bitstream``'s random
model against 75 MHz (issue #10's eighth round) fell to 983 overused wires at iteration 27
and rose to 3,437 at 61, the demo core against 75 MHz went from 43 (iteration 83) to 1,465
(iteration 152), and the same random model against 70 MHz (ninth round) from 785 (34) to
3,639 (54); the failing-arc rule above never fires there, because it waits for legal
routing. So the guard also stops the rip-up when the overused-wire count has not reached a
new low for :data:`CONGESTION_PATIENCE` iterations and stands above
``CONGESTION_FACTOR · lowest + CONGESTION_MARGIN``. Converging runs stay near their low
while they finish: the demo core's eighth-round build held 1–3 overused wires for 30
iterations before its last, and the DeltaLSTM core's never rose more than 4 above it; over
the six converging ULX3S builds of rounds 8–10 (demo, random model, P = 8, LSTM) no
iteration stood more than 11 wires above the run's low. Diverging ones leave it by thousands
within 10–15 iterations, and then need not climb far to go on for ever: the 2-layer core
against 70 MHz (tenth round) went from 4,434 (iteration 19) to 7,067 (26), the P = 24 core
against 65 MHz from 2,495 (19) to 5,597 (32), both still below twice their low, which was
the factor until the eleventh round (it would have let them run on): hence 1.25.

Since no converging run has stood above that line at all, a run that stays above it for
:data:`CONGESTION_RISE_PATIENCE` iterations in a row is stopped then, without waiting for the
thirty: a diverging router2's iterations slow down as its congestion grows (the random model
against 80 MHz in issue #10's fourteenth round: 20 s an iteration near its low of 2,886 at
iteration 15, four minutes by iteration 32 at 5,729), so the thirty-iteration rule alone would
have kept that build in its rip-up until iteration 45, about another hour at that pace (it was
stopped by hand at iteration 32, 37 minutes into routing).

The rip-up can also hold the routing a few wires short of legal for ever, neither rule
firing: the default core against 100 MHz (issue #10's twentieth round) reached 1 overused
wire at iteration 107 and stood between 1 and 3 for the 540 iterations after it, 37–192 arcs
failing, until it was stopped by hand (``docs/boards/ulx3s_demo100_r20_route.txt``). So a
rip-up whose routing has not yet been legal, with arcs failing and no new low of overused
wires for :data:`LEGAL_PATIENCE` iterations, is stopped too (``reason`` "not legal"), and
the placement is routed without it. The converging builds kept since the seventeenth round
went at most 48 iterations without a new low while arcs failed (the P = 8 core against
100 MHz, legal at iteration 141).

The run without the rip-up is watched by the same congestion rule: plain router2 has no
iteration limit either, and on a placement it cannot route it runs on for ever. The demo core
against 80 MHz with ``--seed 2`` (issue #10's sixteenth round) abandoned the rip-up at 188
overused wires; plain router2 then fell to 144 (iteration 41) and rose to 3,142 (iteration 80)
before it was stopped by hand (``docs/boards/ulx3s_demo80_r15_seed2_route.txt``; the rule
below stops it at iteration 65). The guard stops such a run and exits with
:data:`DIVERGED_EXIT`: the build fails with an error naming the congestion instead of never
ending, and a default-clock build is retried at a lower clock
(:func:`drnn_boards.ulx3s.build_at_default_clock`).

What happened goes to
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

__all__ = ["PATIENCE", "LEGAL_PATIENCE", "CONGESTION_PATIENCE", "CONGESTION_FACTOR",
           "CONGESTION_MARGIN",
           "CONGESTION_RISE_PATIENCE", "DIVERGED_EXIT", "GUARD_FILE", "RipupMonitor", "run",
           "main", "write_wrapper"]

#: Iterations of legal routing without fewer failing arcs after which the rip-up is stopped.
#: Converging runs improve far more often: the P = 24 core against 65 MHz reached no failing
#: arc after 128 iterations in all, the demo core against 80 MHz after 56.
PATIENCE = 100
#: Iterations with arcs failing and no new low of overused wires after which a rip-up whose
#: routing has never been legal is stopped (twice the longest such stretch of a converging
#: build, 48).
LEGAL_PATIENCE = 100
#: Iterations without a new lowest overused-wire count after which a rip-up whose congestion
#: stands above ``CONGESTION_FACTOR · lowest + CONGESTION_MARGIN`` is stopped.
CONGESTION_PATIENCE = 30
CONGESTION_FACTOR = 1.25
CONGESTION_MARGIN = 100
#: Iterations in a row above ``CONGESTION_FACTOR · lowest + CONGESTION_MARGIN`` after which the
#: rip-up is stopped whatever the congestion patience.
CONGESTION_RISE_PATIENCE = 8
#: Written in the working directory: {"tmg_ripup": "converged" | "abandoned" | "not used",
#: "iterations": router iterations of the run with it, "failing_arcs": the best count of legal
#: routing (None if it never was), and when abandoned "reason": "failing arcs" | "congestion" |
#: "not legal",
#: "overused_wires": the lowest overused-wire count; for a run without the rip-up, "route":
#: "converged" | "failed" | "diverged", and when diverged "route_overused_wires" (its lowest
#: overused-wire count) and "route_iterations"}.
GUARD_FILE = "nextpnr_guard.json"
# router2's iteration line; ``tmgfail`` only with --tmg-ripup.
_ITER = re.compile(r"iter=(\d+) wires=\d+ overused=(\d+) overuse=\d+(?: tmgfail=(\d+))?")
_FLAG = "--tmg-ripup"
#: :func:`run`'s exit code when it stopped a run without the rip-up whose routing diverged.
DIVERGED_EXIT = 75


class RipupMonitor:
    """Reads router2's iteration lines; :meth:`feed` returns True once the rip-up has stalled:
    legal routing with failing arcs not below their best for ``patience`` iterations
    (``reason`` "failing arcs"), or congestion without a new low for ``congestion_patience``
    iterations and above ``CONGESTION_FACTOR`` times that low plus ``CONGESTION_MARGIN``, or
    above that line for ``rise_patience`` iterations in a row (``reason`` "congestion"), or
    routing never legal yet, arcs failing and no new low of overused wires for
    ``legal_patience`` iterations (``reason`` "not legal").
    A run without the rip-up (no ``tmgfail`` in its lines) is judged on congestion only."""

    def __init__(self, patience: int = PATIENCE,
                 congestion_patience: int = CONGESTION_PATIENCE,
                 rise_patience: int = CONGESTION_RISE_PATIENCE,
                 legal_patience: int = LEGAL_PATIENCE):
        self.patience = patience
        self.legal_patience = legal_patience
        self.congestion_patience = congestion_patience
        self.rise_patience = rise_patience
        self.above = 0          # iterations in a row above the congestion line
        self.best: int | None = None
        self.stale = 0
        self.lowest_overused: int | None = None
        self.congestion_stale = 0
        self.iterations = 0
        self.reason: str | None = None

    def feed(self, line: str) -> bool:
        m = _ITER.search(line)
        if m is None:
            return False
        self.iterations = int(m[1]) + 1
        overused, failing = int(m[2]), None if m[3] is None else int(m[3])
        if self.lowest_overused is None or overused < self.lowest_overused:
            self.lowest_overused, self.congestion_stale, self.above = overused, 0, 0
        else:
            self.congestion_stale += 1
            high = overused > CONGESTION_FACTOR * self.lowest_overused + CONGESTION_MARGIN
            self.above = self.above + 1 if high else 0
            if high and (self.congestion_stale >= self.congestion_patience
                         or self.above >= self.rise_patience):
                self.reason = "congestion"
                return True
        if not failing:                   # (None: a run without the rip-up)
            return False
        if overused:
            # Never legal yet: the failing arcs are not compared (a rerouted arc moves the
            # count either way), only whether the congestion still finds new lows. Once the
            # routing has been legal (a low of 0), the failing-arc rule below judges the run.
            if self.lowest_overused and self.congestion_stale >= self.legal_patience:
                self.reason = "not legal"
                return True
            return False
        if self.best is None or failing < self.best:
            self.best, self.stale = failing, 0
            return False
        self.stale += 1
        if self.stale >= self.patience:
            self.reason = "failing arcs"
            return True
        return False


def _log_path(args: list[str]) -> Path | None:
    for i, a in enumerate(args[:-1]):
        if a == "--log":
            return Path(args[i + 1])
    return None


def _watch(cmd: list[str], logfile: Path, monitor: RipupMonitor, poll_s: float):
    """Run ``cmd``, feeding ``monitor`` every complete line of ``logfile`` as it grows; kill
    the process when the monitor fires. Returns (exit code or None if killed, fired)."""
    logfile.unlink(missing_ok=True)
    proc = subprocess.Popen(cmd)
    seen = 0            # bytes of the log read, up to its last complete line
    while True:
        code = proc.poll()
        if logfile.exists():
            with logfile.open("rb") as f:
                f.seek(seen)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1
            for line in chunk[:end].decode(errors="replace").splitlines():
                if monitor.feed(line):
                    proc.kill()
                    proc.wait()
                    return None, True
            seen += end
        if code is not None:
            return code, False
        time.sleep(poll_s)


def _route_plain(real, args, logfile, record, *, congestion_patience, rise_patience, poll_s,
                 log) -> int:
    """Run nextpnr without the rip-up (``args`` without it), stopping it if its congestion
    grows away from its low (the monitor's congestion rule: plain router2 has no iteration
    limit either, and a placement it cannot route ran on for ever, issue #10's sixteenth
    round). Adds ``route`` ("converged", "failed" or "diverged") and, when diverged,
    ``route_overused_wires`` and ``route_iterations`` to ``record``, writes
    :data:`GUARD_FILE`; returns nextpnr's exit code, :data:`DIVERGED_EXIT` when stopped."""
    monitor = RipupMonitor(congestion_patience=congestion_patience,
                           rise_patience=rise_patience)
    code, fired = _watch(real + args, logfile, monitor, poll_s)
    if fired:
        record.update(route="diverged", route_overused_wires=monitor.lowest_overused,
                      route_iterations=monitor.iterations)
        log(f"nextpnr: the routing did not converge (lowest {monitor.lowest_overused} "
            f"overused wires, growing again after {monitor.iterations} iterations); stopped")
        code = DIVERGED_EXIT
    else:
        record["route"] = "converged" if code == 0 else "failed"
    Path(GUARD_FILE).write_text(json.dumps(record) + "\n")
    return code


def run(real: list[str], args: list[str], *, patience: int = PATIENCE,
        congestion_patience: int = CONGESTION_PATIENCE,
        rise_patience: int = CONGESTION_RISE_PATIENCE, legal_patience: int = LEGAL_PATIENCE,
        poll_s: float = 1.0, log=None) -> int:
    """Run ``real + args`` (nextpnr and its arguments); returns its exit code. With
    ``--log FILE`` among ``args``, watch FILE: with ``--tmg-ripup``, rerun without the flag
    when the rip-up stalls; and stop a run without it whose routing diverges (exit code
    :data:`DIVERGED_EXIT`). See the module docstring. Writes :data:`GUARD_FILE`."""
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    logfile = _log_path(args)
    if logfile is None:
        Path(GUARD_FILE).write_text(json.dumps({"tmg_ripup": "not used"}) + "\n")
        return subprocess.call(real + args)
    if _FLAG not in args:
        return _route_plain(real, args, logfile, {"tmg_ripup": "not used"},
                            congestion_patience=congestion_patience,
                            rise_patience=rise_patience, poll_s=poll_s, log=log)
    monitor = RipupMonitor(patience, congestion_patience, rise_patience, legal_patience)
    code, stalled = _watch(real + args, logfile, monitor, poll_s)
    record = {"iterations": monitor.iterations, "failing_arcs": monitor.best}
    if not stalled:
        record["tmg_ripup"] = "converged" if code == 0 else "failed"
        Path(GUARD_FILE).write_text(json.dumps(record) + "\n")
        return code
    if monitor.reason == "not legal":
        log(f"nextpnr: the timing-driven rip-up kept the routing from becoming legal (lowest "
            f"{monitor.lowest_overused} overused wires, none lower for "
            f"{monitor.congestion_stale} iterations, {monitor.iterations} in all); placing "
            f"and routing again without {_FLAG}")
    elif monitor.reason == "congestion":
        log(f"nextpnr: the timing-driven rip-up kept the routing congested (lowest "
            f"{monitor.lowest_overused} overused wires, none lower for "
            f"{monitor.congestion_stale} iterations, {monitor.iterations} in all); placing "
            f"and routing again without {_FLAG}")
    else:
        log(f"nextpnr: the timing-driven rip-up made no progress for {patience} iterations "
            f"({monitor.best} arcs still failing after {monitor.iterations}); placing and "
            f"routing again without {_FLAG}")
    stalled_log = logfile.with_suffix(logfile.suffix + ".tmg-ripup")
    logfile.replace(stalled_log)
    record.update(tmg_ripup="abandoned", reason=monitor.reason,
                  overused_wires=monitor.lowest_overused)
    return _route_plain(real, [a for a in args if a != _FLAG], logfile, record,
                        congestion_patience=congestion_patience, rise_patience=rise_patience,
                        poll_s=poll_s, log=log)


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
