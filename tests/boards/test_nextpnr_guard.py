"""The watchdog on nextpnr's timing-driven rip-up (drnn_boards.nextpnr_guard)."""

import json
import sys
from pathlib import Path

from drnn_boards.nextpnr_guard import GUARD_FILE, RipupMonitor, run, write_wrapper


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


FAKE = r'''
import sys, time
args = sys.argv[1:]
log = args[args.index("--log") + 1]
with open("calls.txt", "a") as f:
    f.write(" ".join(args) + "\n")
with open(log, "w") as f:
    if "--tmg-ripup" in args:
        for i in range(10000):
            f.write(f"Info:     iter={i} wires=1 overused=0 overuse=0 tmgfail={50 + i % 3} "
                    "archfail=NA\n")
            f.flush()
            time.sleep(0.001)
        sys.exit(3)
    f.write("Info:     iter=0 wires=1 overused=0 overuse=0 tmgfail=0 archfail=0\n")
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


def test_run_passes_a_converging_run_through(tmp_path, monkeypatch):
    fake = tmp_path / "fake_nextpnr.py"
    fake.write_text(FAKE)
    monkeypatch.chdir(tmp_path)
    assert run([sys.executable, str(fake)], ["--log", "pnr.log"], poll_s=0.01) == 0
    assert json.loads((tmp_path / GUARD_FILE).read_text()) == {"tmg_ripup": "not used"}


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
