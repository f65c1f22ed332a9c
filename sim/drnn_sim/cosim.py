"""Host side of the co-simulation: generate (cached), build (cached), stream, collect.

:func:`simulate` runs the core generated for (bundle, shape) in Verilator on activation codes and
returns what the RTL produced, with the cycle counts it measured and the simulation speed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import bus, runner

__all__ = ["CosimResult", "generate_cached", "build_core", "simulate"]

TOP = "drnn_core"


@dataclass
class CosimResult:
    h: np.ndarray           # (N, T, H) codes; 0 past each sequence's length
    nnz_dx: np.ndarray      # (N, T) status.nnz_dx_last at each output frame's last beat
    nnz_dh: np.ndarray
    cycles: np.ndarray      # (N, T) status.cycles_last: cycles measured by the core
    steps: np.ndarray       # (N, T) status.steps at each frame end
    steps_reg: np.ndarray   # (N,) STEPS register read after each sequence
    status_end: int         # STATUS register after the run
    lengths: np.ndarray
    perf: dict = field(default_factory=dict)   # sim_cycles, wall_seconds, cycles_per_second, ...
    # (N, T, L) LAYER_CYCLES / LAYER_NNZ_DX / LAYER_NNZ_DH read over the bus while each step's
    # output frame waits (only with layer_stats=True, else None).
    layer_cycles: np.ndarray | None = None
    layer_nnz_dx: np.ndarray | None = None
    layer_nnz_dh: np.ndarray | None = None
    # (N, T) the clock edge at which the last beat of x frame t went in, and of h frame t came
    # out (cycles since the simulation's start): latency and throughput as the host sees them.
    x_done: np.ndarray | None = None
    h_done: np.ndarray | None = None
    # (N, T) status.prescan_last: cycles each step's scan started before its cycle 0 (the
    # cycle after the previous commit; issue #10's step overlap), 0 for a step started idle.
    prescan: np.ndarray | None = None


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """Hash of the generator's sources: a changed core invalidates generated Verilog.

    Taken once per process, right after the generator is imported, so the key describes the
    code this process actually runs (an edit after the import does not change that code).
    """
    import drnn_hw
    import drnn_hw.core  # noqa: F401  (import the generator before hashing its files)
    import drnn_hw.generate  # noqa: F401

    return _hash_sources(drnn_hw)


def _hash_sources(drnn_hw) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(drnn_hw.__file__).parent.rglob("*.py")):
        h.update(str(p.relative_to(Path(drnn_hw.__file__).parent)).encode() + p.read_bytes())
    return h.hexdigest()


def _bundle_digest(bundle, shape) -> str:
    h = hashlib.sha256()
    arrays = [("sigmoid_lut", bundle.sigmoid_lut), ("tanh_lut", bundle.tanh_lut)]
    for l, layer in enumerate(bundle.layers):
        arrays += [(f"{name}{l}", getattr(layer, name)) for name in ("w_x", "w_h", "bias")]
    for name, value in arrays:
        a = np.ascontiguousarray(value, dtype=np.int64)
        h.update(name.encode() + str(a.shape).encode() + a.tobytes())
    h.update(json.dumps([bundle.formats.to_dict(),
                         [[int(ly.theta_x), int(ly.theta_h)] for ly in bundle.layers],
                         shape.to_dict()], sort_keys=True).encode())
    return h.hexdigest()


def generate_cached(bundle, shape, name: str = TOP, maxima=None) -> tuple[Path, dict]:
    """``drnn_hw.generate.generate`` into the cache (key: bundle, shape, generator sources,
    and the maxima of a run-time core).

    Returns (directory, manifest).
    """
    from drnn_hw.generate import generate

    extra = "" if maxima is None else \
        f"runtime{maxima.inputs},{maxima.hidden},{maxima.layers},{maxima.kept}"
    key = hashlib.sha256((_bundle_digest(bundle, shape) + _source_digest() + name + extra)
                         .encode())
    out = runner.cache_dir() / "generated" / f"{name}-{key.hexdigest()[:20]}"
    manifest_path = out / "manifest.json"
    if (hit := _cached_manifest(manifest_path)) is not None:
        return out, hit
    with runner._locked(out.with_suffix(".lock")):
        if (hit := _cached_manifest(manifest_path)) is not None:
            return out, hit
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        manifest = generate(bundle, shape, tmp, name=name, maxima=maxima)
        import drnn_hw
        if _hash_sources(drnn_hw) != _source_digest():
            # The sources changed on disk since this process imported them: the Verilog is
            # right for this process but must not be cached under either key.
            private = Path(tempfile.mkdtemp(prefix="drnn-gen-"))
            shutil.rmtree(private)
            tmp.rename(private)
            return private, manifest
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    runner.evict(out.parent, keep=out, stamp="manifest.json")   # least recently used
    return out, manifest


def _cached_manifest(path: Path) -> dict | None:
    """A generated core's manifest, its use recorded for :func:`runner.evict`; None when the
    core is not in the cache, or another process evicted it meanwhile (then it is made again)."""
    if not runner._touch(path):
        return None
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def verilog_sources(directory: Path, name: str = TOP) -> list[Path]:
    """The Verilog of a generated core: ``name``.v and any other .v the generator wrote."""
    directory = Path(directory)
    top = directory / f"{name}.v"
    if not top.is_file():
        raise runner.SimulationError(f"{top}: generated Verilog not found")
    return [top] + sorted(p for p in directory.glob("*.v") if p != top)


def build_core(bundle, shape, waves: bool = False, name: str = TOP, core_dir=None) -> Path:
    """Generate (cached) and build (cached) the core; returns the build directory.
    ``core_dir``: build the core generated there instead (its manifest names the top)."""
    if core_dir is not None:
        name = core_manifest(core_dir)["top"]
        return runner.build(verilog_sources(core_dir, name), name, waves=waves)
    directory, _ = generate_cached(bundle, shape, name)
    return runner.build(verilog_sources(directory, name), name, waves=waves)


def core_manifest(core_dir) -> dict:
    """The manifest of a core generated into ``core_dir``; SimulationError when it has none."""
    path = Path(core_dir) / "manifest.json"
    if not path.is_file():
        raise runner.SimulationError(f"{path}: not found (is {core_dir} a directory "
                                     "`drnn generate` wrote?)")
    return json.loads(path.read_text())


def _step_limit(bundle, shape, x_valid_prob: float, h_ready_prob: float) -> int:
    """Cycles per step after which the core counts as hung: 4x a dense step plus the frames'
    beats, stretched by the expected stall factor."""
    from drnn_hw.cycle_model import step_cycles

    onchip = replace(shape, weights="baked")
    dense = sum(step_cycles(np.ones(ly.input_size, bool), np.ones(ly.hidden_size, bool), onchip)
                + ly.input_size + ly.hidden_size for ly in bundle.layers)
    if shape.weights == "axi":
        # Every column's beats, then a latency per burst (the slowest memory the tests use).
        from drnn_hw.dram import dense_bytes
        dense += dense_bytes(bundle, shape) // (shape.bus_bits // 8) * 4 + 200 * sum(
            ly.input_size + ly.hidden_size for ly in bundle.layers)
    stall = 1.0 / max(min(x_valid_prob, h_ready_prob), 0.01)
    return int(4 * dense * stall) + 1000


#: Where the simulations place the weight image (not 0, so WEIGHT_BASE is exercised).
WEIGHT_BASE = 0x10000


def _dram_config(bundle, shape, latency, ar_pause, r_pause, weight_base) -> dict:
    """The driver's inputs for a core with its weights in DRAM ({} for an on-chip core)."""
    if shape.weights != "axi":
        return {}
    from drnn_hw.dram import DEFAULT_LATENCY, WEIGHT_BASE_ALIGN, dram_image

    if weight_base % WEIGHT_BASE_ALIGN or not 0 <= weight_base < 1 << 32:
        raise ValueError(f"weight_base must be a 32-bit multiple of {WEIGHT_BASE_ALIGN}, got "
                         f"0x{weight_base:x}")
    if not (0 <= ar_pause < 1 and 0 <= r_pause < 1):
        raise ValueError(f"ar_pause and r_pause must lie in [0, 1), got {ar_pause}, {r_pause}")
    image = np.frombuffer(dram_image(bundle, shape), np.uint8)
    return {"dram": image, "weight_base": weight_base, "bus_bytes": shape.bus_bits // 8,
            "latency": DEFAULT_LATENCY if latency is None else int(latency),
            "ar_pause": float(ar_pause), "r_pause": float(r_pause)}


def simulate(bundle, shape, x_codes, lengths=None, *, waves=None, theta_x=None, theta_h=None,
             x_valid_prob: float = 1.0, h_ready_prob: float = 1.0, stall_seed: int = 0,
             name: str = TOP, workdir=None, step_limit: int | None = None, h0=None,
             layer_thetas=None, reset=None, layer_stats: bool = False,
             lockstep: bool = False, core_dir=None, dram_latency: int | None = None,
             ar_pause: float = 0.0, r_pause: float = 0.0,
             weight_base: int = WEIGHT_BASE) -> CosimResult:
    """Run ``x_codes`` (N, T, I) through the Verilated core, one sequence after the other.

    ``theta_x``/``theta_h``: per-sequence threshold codes of layer 0 (THETA_X/THETA_H) written
    before each sequence (-1 or None: unchanged); ``layer_thetas`` (N, L, 2): every layer's
    (LAYER_THETA_X, LAYER_THETA_H) per sequence (-1: unchanged). ``h0``: every layer's initial
    state (a list of L code arrays, see :func:`drnn_hw.golden.initial_state`), written over
    H0 after each sequence's RESET_STATE. ``reset`` (N,) bools: False continues sequence n
    from the state sequence n-1 left (no RESET_STATE, no h0: a chunk of a longer sequence);
    default all True. ``layer_stats``: read every layer's counters while each output frame
    waits. ``x_valid_prob``/``h_ready_prob`` < 1 insert random stalls on the input and output
    streams. ``lockstep``: send each x frame only after the previous h frame has left (so
    ``h_done − x_done`` is a frame's latency); otherwise frames go back to back. ``waves``:
    write a VCD of the whole run to this path. ``step_limit``: cycles per step after which the
    run fails as hung (default: generous, from the model). ``core_dir``: run on the run-time
    core generated there (``drnn generate --weights runtime``) instead of one generated for the
    bundle: the bundle is first loaded into it over the register bus (``perf`` then has
    ``load_writes`` and ``load_cycles``).

    A core with its weights in DRAM (``shape.weights == "axi"``) reads
    :func:`drnn_hw.dram.dram_image` at ``weight_base`` (a multiple of 4096) from a memory
    with the fixed read latency ``dram_latency`` (cycles, default
    :data:`drnn_hw.dram.DEFAULT_LATENCY`; the cycle model's memory), or, with ``ar_pause`` or
    ``r_pause`` > 0, from cocotbext-axi's RAM model pausing AR and R with these probabilities
    per cycle (random latency and back-pressure).
    """
    from drnn_hw.golden import check_lengths, initial_state

    x = np.asarray(x_codes, dtype=np.int64)
    if x.ndim != 3 or x.shape[2] != bundle.input_size:
        raise ValueError(f"x must be (N, T, {bundle.input_size}), got {x.shape}")
    act = bundle.formats.act
    if x.size and (x.min() < act.min or x.max() > act.max):
        raise ValueError(f"x codes must lie in [{act.min}, {act.max}]")
    N, T, _ = x.shape
    lengths = check_lengths(lengths, N, T)

    def per_seq(v):
        return np.full(N, -1, np.int64) if v is None else \
            np.broadcast_to(np.asarray(v, np.int64), (N,)).copy()

    L = bundle.num_layers
    h0_flat = np.zeros((N, sum(ly.hidden_size for ly in bundle.layers)), np.int64)
    if h0 is not None:
        state = initial_state(bundle, N, h0)
        h0_flat = np.concatenate([s.h for s in state], axis=1)
    thetas = np.full((N, L, 2), -1, np.int64) if layer_thetas is None else \
        np.asarray(layer_thetas, np.int64).reshape(N, L, 2)
    resets = np.ones(N, bool) if reset is None else np.asarray(reset, bool).reshape(N)

    t0 = time.monotonic()
    build_dir = build_core(bundle, shape, waves=bool(waves), name=name, core_dir=core_dir)
    if core_dir is not None:
        name = core_manifest(core_dir)["top"]
    prepare_seconds = time.monotonic() - t0
    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="drnn-sim-")) if own_dir else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    ok = False
    try:
        load_model = ""
        if core_dir is not None:
            load_model = str(bundle.save(work / "model"))
        np.savez(work / "in.npz", load_model=load_model, x=x, lengths=lengths, act_bits=bundle.formats.act_bits,
                 scan=shape.scan,
                 hidden=shape.output_units([ly.hidden_size for ly in bundle.layers]),
                 step_limit=step_limit or _step_limit(bundle, shape, x_valid_prob, h_ready_prob),
                 theta_x=per_seq(theta_x),
                 theta_h=per_seq(theta_h), x_valid_prob=float(x_valid_prob),
                 h_ready_prob=float(h_ready_prob), stall_seed=int(stall_seed), layers=L,
                 h0=h0_flat, h0_given=h0 is not None, layer_thetas=thetas, reset=resets,
                 layer_stats=bool(layer_stats), lockstep=bool(lockstep),
                 **_dram_config(bundle, shape, dram_latency, ar_pause, r_pause, weight_base))
        t1 = time.monotonic()
        runner.run_test(build_dir, name, "drnn_sim.driver", work, waves=bool(waves),
                        env={"DRNN_SIM_IN": str(work / "in.npz"),
                             "DRNN_SIM_OUT": str(work / "out.npz")})
        run_seconds = time.monotonic() - t1
        with np.load(work / "out.npz") as z:
            out = {k: z[k] for k in z.files}
        if waves:
            dump = work / "dump.vcd"
            if not dump.is_file():
                raise runner.SimulationError(f"{dump}: the simulation wrote no waveform")
            Path(waves).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(dump, waves)
        ok = True
    finally:
        if own_dir and ok:           # on failure the directory stays, for its sim.log
            shutil.rmtree(work, ignore_errors=True)
    sim_cycles, wall = int(out["sim_cycles"]), float(out["wall_seconds"])
    cpu = float(out["cpu_seconds"])
    perf = {"sim_cycles": sim_cycles, "wall_seconds": round(wall, 4),
            "cycles_per_second": round(sim_cycles / wall) if wall > 0 else None,
            "cpu_seconds": round(cpu, 4),
            "cycles_per_cpu_second": round(sim_cycles / cpu) if cpu > 0 else None,
            "run_seconds": round(run_seconds, 3), "prepare_seconds": round(prepare_seconds, 3),
            "build_seconds": runner.build_info(build_dir).get("build_seconds"),
            "build_cpu_seconds": runner.build_info(build_dir).get("build_cpu_seconds"),
            "build_dir": str(build_dir),
            "load_writes": int(out["load_writes"]), "load_cycles": int(out["load_cycles"])}
    per_layer = {k: out[k] for k in ("layer_cycles", "layer_nnz_dx", "layer_nnz_dh")} \
        if layer_stats else {}
    return CosimResult(h=out["h"], nnz_dx=out["nnz_dx"], nnz_dh=out["nnz_dh"],
                       cycles=out["cycles"], steps=out["steps"], steps_reg=out["steps_reg"],
                       status_end=int(out["status_end"]), lengths=lengths, perf=perf,
                       x_done=out["x_done"], h_done=out["h_done"], prescan=out["prescan"],
                       **per_layer)


def run_benches(bundle, shape, x_codes, workdir, testcase: str | None = None,
                name: str = TOP, golden_bundle=None) -> Path:
    """Run the cocotb benches of :mod:`drnn_sim.benches` on the core for (bundle, shape).

    ``x_codes`` (T, I): one sequence; the expected values come from the bundle, the shape and
    the golden model (run on ``golden_bundle``, default ``bundle``; another bundle is how a
    test shows the benches can fail). Raises :class:`~drnn_sim.runner.SimulationError` when a
    bench fails.
    """
    from drnn_hw.golden import run as golden_run

    x = np.asarray(x_codes, dtype=np.int64)
    # One frame at a time (every step finds the core idle) and back to back (each step after
    # the first scanned during the AP of the one before, issue #10's step overlap).
    g = golden_run(golden_bundle or bundle, x[None], shape=shape, prescan=0)
    gs = golden_run(golden_bundle or bundle, x[None], shape=shape)
    g1 = golden_run(golden_bundle or bundle, x[None, 1:], shape=shape)   # restarted at x[1]
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    np.savez(work / "bench_in.npz", sizes=[bundle.input_size, bundle.hidden_size],
             cell=bus.CELL_LSTM if bundle.cell == "lstm" else bus.CELL_GRU,
             shape=[shape.rows, shape.columns, shape.scan], act_bits=bundle.formats.act_bits,
             theta=[bundle.theta_x, bundle.theta_h], x=x, h=g.h[0], nnz_dx=g.nnz_dx[0],
             nnz_dh=g.nnz_dh[0], cycles=g.cycles[0], cycles_streamed=gs.cycles[0],
             prescan_streamed=gs.prescan[0], h_from1=g1.h[0], cycles_from1=g1.cycles[0])
    build_dir = build_core(bundle, shape, name=name)
    return runner.run_test(build_dir, name, "drnn_sim.benches", work, testcase=testcase,
                           env={"DRNN_BENCH_IN": str(work / "bench_in.npz")})
