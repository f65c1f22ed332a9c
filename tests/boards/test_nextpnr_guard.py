"""The watchdog on nextpnr's timing-driven rip-up (drnn_boards.nextpnr_guard)."""

import json
import sys
from pathlib import Path

from drnn_boards.nextpnr_guard import DIVERGED_EXIT, GUARD_FILE, RipupMonitor, run, write_wrapper


def _line(i, overused, failing):
    return f"Info:     iter={i} wires=480601 overused={overused} overuse={overused} " \
           f"tmgfail={failing} archfail=NA"


def test_monitor_lets_a_converging_rip_up_run():
    m = RipupMonitor(patience=5)
    # congestion first (never counted), then failing arcs that keep coming down, then none
    seq = [(40, 9)] * 20 + [(0, 30 - i // 3) for i in range(60)] + [(2, 0), (0, 0)]
    assert not any(m.feed(_line(i, o, f)) for i, (o, f) in enumerate(seq))
    assert m.iterations == len(seq) and m.best == 11


def test_monitor_stops_a_stalled_rip_up_after_patience_iterations():
    m = RipupMonitor(patience=5)
    feeds = [m.feed(_line(i, 0, f)) for i, f in enumerate([200, 198, 205, 199, 210, 201, 198])]
    # the best (198) at iteration 1; iterations 2..6 are no better: the fifth of them stops it
    assert feeds == [False] * 6 + [True]
    assert m.feed("Info: some other line") is False


def test_monitor_stops_a_rip_up_that_keeps_the_routing_congested():
    # the shape of make bitstream's random model against 75 MHz (eighth round): overused wires
    # fall to a low, then grow while the rip-up reroutes failing arcs, and never reach zero
    m = RipupMonitor(patience=100, congestion_patience=10)
    seq = [4000 - 300 * i for i in range(11)] + [1000 + 150 * i for i in range(1, 40)]
    fired = [m.feed(_line(i, o, 50)) for i, o in enumerate(seq)]
    # low 1000 at iteration 10; above 1.25·1000 + 100 from iteration 13 (1450); the tenth
    # iteration without a new low is 20 (2500), and so is the eighth above the line: it stops
    # there
    assert fired.index(True) == 20 and m.reason == "congestion" and m.lowest_overused == 1000
    assert m.best is None                      # routing was never legal


def test_monitor_stops_a_rip_up_that_hovers_well_above_its_low():
    # the shape of the 2-layer core against 70 MHz (tenth round): a low of 4,434 at iteration
    # 19, then between 6,000 and 7,100 overused wires, below twice the low (8,968), for ever
    seq = [50000 // (i + 1) + 4434 for i in range(19)] + [4434] + \
        [6000 + (i * 373) % 1100 for i in range(200)]
    m = RipupMonitor(patience=100, congestion_patience=30)
    fired = [m.feed(_line(i, o, 800)) for i, o in enumerate(seq)]
    # above 1.25·4434 + 100 = 5642.5 from iteration 20: the eighth iteration in a row there
    # is 27
    assert fired.index(True) == 27 and m.reason == "congestion" and m.lowest_overused == 4434
    # The thirty-iteration rule alone (a run that dips below the line now and then): 49.
    m = RipupMonitor(patience=100, congestion_patience=30, rise_patience=1000)
    fired = [m.feed(_line(i, o, 800)) for i, o in enumerate(seq)]
    assert fired.index(True) == 49 and m.reason == "congestion"


def test_monitor_lets_congestion_hover_near_its_low():
    # the eighth round's converging demo build: 1–3 overused wires for 30 iterations, then 0
    m = RipupMonitor(patience=100, congestion_patience=10)
    seq = [400 // (i + 1) for i in range(40)] + [1, 3, 2, 1, 2] * 8 + [0]
    assert not any(m.feed(_line(i, o, 0)) for i, o in enumerate(seq))
    assert m.reason is None


def test_monitor_stops_a_run_far_above_its_low_after_the_rise_patience():
    # the shape of the random model against 80 MHz (fourteenth round): a low of 2,886 at
    # iteration 15, back above 1.25·2886 + 100 = 3707.5 from iteration 26
    seq = [40000 // (i + 1) + 2886 for i in range(15)] + [2886, 3049, 3100, 3202, 3300,
                                                          3400, 3450, 3500, 3538, 3600, 3650]
    seq += [3800 + 150 * i for i in range(30)]
    m = RipupMonitor(patience=100, congestion_patience=30)
    fired = [m.feed(_line(i, o, 40)) for i, o in enumerate(seq)]
    assert fired.index(True) == 33 and m.reason == "congestion" and m.lowest_overused == 2886
    # A dip below the line starts the count again.
    m = RipupMonitor(patience=100, congestion_patience=30, rise_patience=3)
    feeds = [m.feed(_line(i, o, 5)) for i, o in enumerate([100, 5000, 5000, 200, 5000, 5000,
                                                           5000])]
    assert feeds == [False] * 6 + [True]


def test_monitor_stops_a_rip_up_that_never_makes_the_routing_legal():
    # the shape of the default core against 100 MHz (twentieth round,
    # docs/boards/ulx3s_demo100_r20_route.txt): 1 overused wire first at iteration 107, then
    # between 1 and 3 for ever with 37-192 arcs failing; neither other rule fires on it
    seq = [max(1, 20000 // (i + 1) - 180) for i in range(107)] + [1] + \
        [(1, 2, 1, 3, 1, 1)[i % 6] for i in range(600)]
    assert seq.index(1) == 107
    m = RipupMonitor()
    fired = [m.feed(_line(i, o, 37 + (i * 41) % 156)) for i, o in enumerate(seq)]
    # the hundredth iteration without a new low after 107: 207
    assert fired.index(True) == 207 and m.reason == "not legal" and m.lowest_overused == 1
    assert m.best is None
    # Before this rule (a patience beyond the run) nothing stopped it.
    m = RipupMonitor(legal_patience=10 ** 6)
    assert not any(m.feed(_line(i, o, 37 + (i * 41) % 156)) for i, o in enumerate(seq))


def test_monitor_lets_a_rip_up_reach_legal_routing_after_a_long_stretch():
    # the P = 8 core against 100 MHz (twentieth round): 48 iterations without a new low of
    # overused wires while arcs failed, then legal at iteration 141 and converged
    seq = [3000 // (i + 1) for i in range(40)] + [74] + [75 + i % 20 for i in range(48)] + \
        [73 - i for i in range(73)] + [0] * 5
    m = RipupMonitor()
    assert not any(m.feed(_line(i, o, 0 if o == 0 else 300)) for i, o in enumerate(seq))
    assert m.reason is None


def test_monitor_leaves_a_once_legal_rip_up_to_the_failing_arc_rule():
    # legal once (0 overused at iteration 10), then 0 and 1 in turn with arcs failing and
    # improving: no new low of overused wires is possible, but the run is not stopped for it
    seq = [10 - i for i in range(11)] + [i % 2 for i in range(300)]
    m = RipupMonitor(legal_patience=20)
    assert not any(m.feed(_line(i, o, 400 - i)) for i, o in enumerate(seq))
    assert m.reason is None and m.best == 400 - (len(seq) - 2)


FAKE = r'''
import os, sys, time
args = sys.argv[1:]
log = args[args.index("--log") + 1]
with open("calls.txt", "a") as f:
    f.write(" ".join(args) + "\n")
with open(log, "w") as f:
    if "--tmg-ripup" in args:
        mode = open("mode.txt").read() if os.path.exists("mode.txt") else ""
        for i in range(10000):
            overused = 500 + 40 * i if "congested" in mode else \
                max(1, 5 - i) if "never legal" in mode else 0
            f.write(f"Info:     iter={i} wires=1 overused={overused} overuse={overused} "
                    f"tmgfail={50 + i % 3} archfail=NA\n")
            f.flush()
            time.sleep(0.001)
        sys.exit(3)
    if os.path.exists("mode.txt") and "plain diverges" in open("mode.txt").read():
        for i in range(10000):            # plain router2's lines have no tmgfail
            overused = 300 - 20 * i if i < 10 else 100 + 60 * (i - 10)
            f.write(f"Info:     iter={i} wires=1 overused={overused} overuse={overused} "
                    f"archfail=NA\n")
            f.flush()
            time.sleep(0.001)
        sys.exit(3)
    f.write("Info:     iter=0 wires=1 overused=0 overuse=0 archfail=NA\n")
'''


def test_run_reroutes_without_the_rip_up_when_it_stalls(tmp_path, monkeypatch):
    fake = tmp_path / "fake_nextpnr.py"
    fake.write_text(FAKE)
    monkeypatch.chdir(tmp_path)
    msgs = []
    code = run([sys.executable, str(fake)], ["--tmg-ripup", "--log", "pnr.log", "--85k"],
               patience=20, poll_s=0.01, log=msgs.append)
    assert code == 0
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls == ["--tmg-ripup --log pnr.log --85k", "--log pnr.log --85k"]
    record = json.loads((tmp_path / GUARD_FILE).read_text())
    assert record["tmg_ripup"] == "abandoned" and record["failing_arcs"] == 50
    assert record["iterations"] >= 21
    assert "made no progress for 20 iterations" in msgs[0]
    assert (tmp_path / "pnr.log.tmg-ripup").is_file()          # the stalled run's log kept


def test_run_reroutes_without_the_rip_up_when_congestion_grows(tmp_path, monkeypatch):
    fake = tmp_path / "fake_nextpnr.py"
    fake.write_text(FAKE)
    (tmp_path / "mode.txt").write_text("congested")
    monkeypatch.chdir(tmp_path)
    msgs = []
    code = run([sys.executable, str(fake)], ["--tmg-ripup", "--log", "pnr.log", "--85k"],
               patience=1000, congestion_patience=15, poll_s=0.01, log=msgs.append)
    assert code == 0
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls == ["--tmg-ripup --log pnr.log --85k", "--log pnr.log --85k"]
    record = json.loads((tmp_path / GUARD_FILE).read_text())
    assert record["tmg_ripup"] == "abandoned" and record["reason"] == "congestion"
    # the low is iteration 0's 500; 500 + 40·i is above 1.25·500 + 100 from iteration 6 on,
    # and iteration 13 is the eighth there in a row: the guard stops it there (14 iterations
    # seen, before the fifteenth without a new low)
    assert record["overused_wires"] == 500 and record["failing_arcs"] is None
    assert record["iterations"] == 14
    assert "kept the routing congested (lowest 500 overused wires" in msgs[0]


def test_run_reroutes_without_the_rip_up_when_the_routing_never_becomes_legal(tmp_path,
                                                                             monkeypatch):
    fake = tmp_path / "fake_nextpnr.py"
    fake.write_text(FAKE)
    (tmp_path / "mode.txt").write_text("never legal")
    monkeypatch.chdir(tmp_path)
    msgs = []
    code = run([sys.executable, str(fake)], ["--tmg-ripup", "--log", "pnr.log", "--85k"],
               legal_patience=20, poll_s=0.01, log=msgs.append)
    assert code == 0
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls == ["--tmg-ripup --log pnr.log --85k", "--log pnr.log --85k"]
    record = json.loads((tmp_path / GUARD_FILE).read_text())
    assert record["tmg_ripup"] == "abandoned" and record["reason"] == "not legal"
    # 5, 4, 3, 2, then 1 overused wire from iteration 4 on: the twentieth iteration without a
    # new low is 24 (25 seen); the routing was never legal, so no failing-arc count is kept
    assert record["overused_wires"] == 1 and record["failing_arcs"] is None
    assert record["iterations"] == 25
    assert "kept the routing from becoming legal (lowest 1 overused wires" in msgs[0]
    assert record["route"] == "converged"


def test_run_passes_a_converging_run_through(tmp_path, monkeypatch):
    fake = tmp_path / "fake_nextpnr.py"
    fake.write_text(FAKE)
    monkeypatch.chdir(tmp_path)
    assert run([sys.executable, str(fake)], ["--log", "pnr.log"], poll_s=0.01) == 0
    assert json.loads((tmp_path / GUARD_FILE).read_text()) == {"tmg_ripup": "not used",
                                                                "route": "converged"}


def test_run_stops_a_plain_route_that_diverges(tmp_path, monkeypatch):
    """After an abandoned rip-up, the run without it is watched too: congestion growing away
    from its low stops it with DIVERGED_EXIT (it would otherwise never end)."""
    fake = tmp_path / "fake_nextpnr.py"
    fake.write_text(FAKE)
    (tmp_path / "mode.txt").write_text("congested, plain diverges")
    monkeypatch.chdir(tmp_path)
    msgs = []
    code = run([sys.executable, str(fake)], ["--tmg-ripup", "--log", "pnr.log", "--85k"],
               patience=1000, congestion_patience=15, poll_s=0.01, log=msgs.append)
    assert code == DIVERGED_EXIT
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls == ["--tmg-ripup --log pnr.log --85k", "--log pnr.log --85k"]
    record = json.loads((tmp_path / GUARD_FILE).read_text())
    assert record["tmg_ripup"] == "abandoned" and record["route"] == "diverged"
    # the low is iteration 10's 100; 100 + 60·(i − 10) is above 1.25·100 + 100 = 225 from
    # iteration 13 on (280), and iteration 20 is the eighth there in a row: 21 iterations seen
    assert record["route_overused_wires"] == 100 and record["route_iterations"] == 21
    assert "did not converge (lowest 100 overused wires" in msgs[1]


def test_run_watches_a_plain_run_too(tmp_path, monkeypatch):
    """A run that never had the rip-up is stopped the same way when it diverges."""
    fake = tmp_path / "fake_nextpnr.py"
    fake.write_text(FAKE)
    (tmp_path / "mode.txt").write_text("plain diverges")
    monkeypatch.chdir(tmp_path)
    msgs = []
    assert run([sys.executable, str(fake)], ["--log", "pnr.log"], poll_s=0.01,
               log=msgs.append) == DIVERGED_EXIT
    record = json.loads((tmp_path / GUARD_FILE).read_text())
    assert record == {"tmg_ripup": "not used", "route": "diverged",
                      "route_overused_wires": 100, "route_iterations": 21}


def test_wrapper_script_runs_the_guard(tmp_path):
    import subprocess

    fake = tmp_path / "fake_nextpnr.py"
    fake.write_text("#!" + sys.executable + "\n" + FAKE.lstrip())
    fake.chmod(0o755)
    wrapper = write_wrapper(tmp_path / "nextpnr_guard", str(fake))
    assert subprocess.call([str(wrapper), "--log", "pnr.log"], cwd=tmp_path) == 0
    assert (tmp_path / "calls.txt").read_text() == "--log pnr.log\n"


def test_wrapper_path_is_absolute_for_a_relative_build_directory(tmp_path, monkeypatch):
    """``make ulx3s`` builds into a relative ``--out``; the build script runs the wrapper from
    inside the build directory, so its path must not be relative to where drnn started."""
    import subprocess

    fake = tmp_path / "fake_nextpnr.py"
    fake.write_text("#!" + sys.executable + "\n" + FAKE.lstrip())
    fake.chmod(0o755)
    (tmp_path / "out" / "build").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    wrapper = write_wrapper(Path("out/build/nextpnr_guard"), str(fake))
    assert wrapper.is_absolute()
    build_dir = tmp_path / "out" / "build"
    assert subprocess.call([str(wrapper), "--log", "pnr.log"], cwd=build_dir) == 0
    assert (build_dir / "calls.txt").read_text() == "--log pnr.log\n"


def test_monitor_stops_the_plain_route_that_never_ended():
    """The real trajectory of the demo core against 80 MHz with --seed 2 (issue #10's sixteenth
    round, kept in docs/boards): the rule stops the rip-up where the guard did (its record: 59
    iterations), and the plain run at iteration 65, from its low of 144 overused wires at
    iteration 41 (it ran on to 80, 3,142 wires, until stopped by hand)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "boards" /
            "ulx3s_demo80_r15_seed2_route.txt").read_text()
    ripup, plain = text.split("## with --tmg-ripup\n")[1].split("## without\n")
    def stop(lines):
        """The monitor after the line it fires on (None if it never fires)."""
        m = RipupMonitor()
        return next((m for ln in lines.splitlines() if m.feed(ln)), None)

    # (``iterations``: the number of the line it fired on + 1)
    m = stop(ripup)
    assert m.iterations == 59 and m.reason == "congestion"           # the guard's record
    m = stop(plain)
    assert m.iterations - 1 == 65 and m.lowest_overused == 144
