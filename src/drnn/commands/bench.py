"""``drnn bench``: accuracy, sparsity and speed of a model on the generated core, per threshold."""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path

import click
import numpy as np

from ..engines import get_engine
from drnn_hw.errors import UserError
from .common import (check_out_dir, core_options, load_bundle, require_core_shape,
                     shape_from_options)

DEFAULT_ENGINE = "verilator"


def register_threshold_runner(base_bundle, perf_log: list, dram_latency=None):
    """Verilator engine that builds *one* core (the bundle's reset thresholds) and applies each
    Θ by writing THETA_X/THETA_H over the register bus before every sequence, as a host would.

    (The plain engine would regenerate and rebuild the core for every Θ, because the thresholds'
    reset values are part of the generated design.)
    """
    get_engine("verilator")   # one-line error if the engine is not part of this build
    from drnn_sim.cosim import simulate
    from drnn_sim.runner import SimulationError

    from drnn_hw.golden import GoldenResult

    def run(bundle, x_codes, lengths=None, shape=None):
        thetas = [(ly.theta_x, ly.theta_h) for ly in bundle.layers]
        N = len(x_codes)
        stacked = bundle.num_layers > 1
        try:
            # Every layer's thresholds before each sequence; with a stacked bundle also each
            # layer's counters (read while the step's output waits).
            r = simulate(base_bundle, shape, x_codes, lengths,
                         layer_thetas=np.broadcast_to(np.asarray(thetas), (N, len(thetas), 2)),
                         layer_stats=stacked, dram_latency=dram_latency)
        except SimulationError as e:
            raise UserError(f"verilator engine: {str(e).splitlines()[0]}") from None
        perf_log.append({"theta_x_code": int(thetas[0][0]),
                         "theta_h_code": int(thetas[0][1]),
                         **({"layer_theta_codes": [list(map(int, t)) for t in thetas]}
                            if stacked else {}), **r.perf})
        return GoldenResult(h=r.h, nnz_dx=r.nnz_dx, nnz_dh=r.nnz_dh, cycles=r.cycles,
                            lengths=r.lengths, layer_nnz_dx=r.layer_nnz_dx,
                            layer_nnz_dh=r.layer_nnz_dh, layer_cycles=r.layer_cycles)

    return run


def _fmt(v, spec, none="-"):
    return none if v is None else format(v, spec)


def format_table(bench: dict) -> str:
    """The terminal table: one line per threshold, then the notes that make it honest."""
    rows = bench["rows"]
    clk = bench["clock"]
    regression = bench.get("task") == "regression"
    score = "nRMSE" if regression else "acc%"
    head = (f"{'Θx':>7} {'Θh':>7} {score:>6} {'Δx0%':>5} {'Δh0%':>5} {'cyc mean':>8} "
            f"{'p50':>5} {'p99':>6} {'max':>5} {'thru':>6} {'µs/step':>8} {'lat µs':>7} "
            f"{'speedup':>7} {'MxV%':>5} "
            f"{'bound%':>6} {'GOp/s':>6} {'op/m·c':>6} {'peer×':>6} {'torch×':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        mark = "*" if r["trained"] else " "
        value = _fmt(r["nrmse"], "5.3f") if regression else \
            _fmt(None if r["accuracy"] is None else 100 * r["accuracy"], "5.1f")
        lines.append(
            f"{r['theta_x']:>7.4g} {r['theta_h']:>7.4g}{mark}"
            f"{value:>6} "
            f"{100 * r['sparsity_dx']:>5.1f} {100 * r['sparsity_dh']:>5.1f} "
            f"{r['cycles']['mean']:>8.1f} {r['cycles']['p50']:>5.0f} {r['cycles']['p99']:>6.1f} "
            f"{r['cycles']['max']:>5.0f} {r['throughput_cycles']:>6.1f} "
            f"{r['latency_us']['mean']:>8.3f} {r['frame_latency_us']:>7.3f} "
            f"{r['speedup_vs_theta0']:>7.2f} {100 * r['mxv_utilisation']:>5.1f} "
            f"{100 * r['bound_efficiency']:>6.1f} {r['effective_gops']:>6.2f} "
            f"{r['ops_per_multiplier_cycle']:>6.2f} "
            f"{_fmt(r['peer'] and r['peer']['ratio_to_ours'], '6.2f', 'n/a'):>6} "
            f"{_fmt(r['torch_ratio'], '7.1f'):>7}")
    t = bench["torch"]
    m = bench["model"]
    c = bench["core"]
    bd = rows[0]["breakdown"], rows[-1]["breakdown"]
    lines += [
        "",
        f"model {m['name']}: I={m['input_size']} H={m['hidden_size']}, {m['weights']} weights, "
        f"{m['dense_ops_per_step']} dense ops/step; data set {bench['dataset']['name']} test, "
        f"{bench['dataset']['sequences']} sequences, {bench['dataset']['steps']} steps",
        f"core P={c['rows']} K={c['columns']} E={c['scan']}: {c['multipliers']} multipliers; "
        f"engine {bench['engine']}: cycles {bench['cycles_source']}",
        f"clock {clk['mhz']:g} MHz ({clk['source']})",
        *([f"weights in DRAM over AXI: {bench['dram']['bus_bits']}-bit bus = "
           f"{bench['dram']['bandwidth_bytes_per_cycle']} bytes/cycle "
           f"({bench['dram']['bandwidth_gb_per_s']:.2f} GB/s at {clk['mhz']:g} MHz), read "
           f"latency {bench['dram']['latency_cycles']} cycles; DRAM bytes/step "
           + "; ".join(f"Θ={r['theta_x']:g}: {r['dram']['bytes_per_step_mean']:.0f} "
                       f"({100 * r['dram']['fraction_of_dense']:.1f} % of a dense step's "
                       f"{r['dram']['dense_bytes_per_step']})" for r in (rows[0], rows[-1]))]
          if "dram" in bench else []),
        f"thresholds: {bench['thresholds_note']}; * = the bundle's trained thresholds",
        (f"nRMSE = RMSE / test-target std of the head (target units) on the engine's h at "
         f"{'every valid step' if bench.get('per_step_targets') else 'the last step'} "
         f"(0 perfect, 1 = predicting the mean); Δx0%/Δh0% = zero deltas; "
         if regression else
         "acc% = head on the engine's h at each sequence's last step; Δx0%/Δh0% = zero deltas; ")
        + ("MxV% = useful MACs (4H per kept delta) / (4PK · cycles)" if m.get("cell") == "lstm"
           else "MxV% = useful MACs (3H per kept delta) / (3PK · cycles)")
        + "; thru = cycles between output frames, inputs back to back; lat µs = last x beat in "
          "to last h beat out, one frame at a time; bound% = cycle_bound / thru",
        f"op/m·c = dense-equivalent ops per multiplier per cycle (DeltaRNN 2018: "
        f"{bench['reference_design']['ops_per_multiplier_cycle']:.1f})",
        (f"peer× = EdgeDRNN schedule model with PE={rows[0]['peer']['pe']} (same multipliers) "
         "/ our cycles (a model favourable to the peer, not a measurement; "
         f"published PE=8: {rows[0]['peer_published']['ratio_to_ours']:.1f}× at Θ=0)"
         if rows[0]["peer"] else f"peer× {rows[0]['peer_na']}"),
        f"torch× = PyTorch {t.get('module', 'nn.GRU')} on this CPU, batch 1, {t['threads']} thread(s): "
        f"{t['per_step_us']:.1f} µs/step (median of {t['repeats']}; load average "
        f"{t['load_average_1min']:.1f} on {t['cpu_count']} CPUs while timing), divided by the "
        f"core's µs/step at {clk['mhz']:g} MHz ({clk['source']})",
        "mean cycles/step = AP fixed + MxV issue + MxV drain + scan wait: " + "; ".join(
            f"Θ={r['theta_x']:g}: {b['ap_fixed']:.0f} + {b['mxv_issue']:.1f} + "
            f"{b['mxv_drain']:.1f} + {b['scan_wait']:.1f}" for r, b in
            ((rows[0], bd[0]), (rows[-1], bd[1]))),
    ]
    if "spatial" in rows[0]:
        # A compressed-weight core: the two sparsities' separate contributions.
        lines.append(
            f"compressed weights ({100 * rows[0]['spatial']['weight_sparsity']:.1f} % zero, "
            f"kept pairs per slice {c.get('kept')}); MxV% counts P·kept products per gate "
            "and kept delta, bound% the bound with kept cycles per group; speed-up over the "
            "dense core at Θ=0 = temporal (dense core, cycle model) × spatial (this core): "
            + "; ".join(f"Θ={r['theta_x']:g}: {r['spatial']['temporal_speedup']:.2f} × "
                        f"{r['spatial']['spatial_speedup']:.2f} = "
                        f"{r['spatial']['speedup_vs_dense_theta0']:.2f}" for r in rows))
    trained = [r for r in rows if r["trained"] and r.get("layers")]
    if trained:
        # Stacked layers, at the trained thresholds: where the deltas and cycles go.
        lines.append(f"per layer at Θ*, {len(trained[0]['layers'])} layers time-multiplexed on "
                     "the same multipliers (+1 idle cycle between two): " + "; ".join(
                         f"layer {l}: Δx0% {100 * ly['sparsity_dx']:.1f}, Δh0% "
                         f"{100 * ly['sparsity_dh']:.1f}, cycles {_fmt(ly.get('cycles_mean'), '.1f')}"
                         for l, ly in enumerate(trained[0]["layers"])))
    if regression:
        lines.append("RMSE per output (target units), hardware-exact: " + "; ".join(
            f"Θ={r['theta_x']:g}{'*' if r['trained'] else ''}: " + ", ".join(
                f"{o} {v:.4g}" for o, v in zip(bench["outputs"], r["rmse_per_output"]))
            for r in rows))
        d = t.get("dense_float_rmse")
        if d is not None:
            lines.append(f"float64 {t.get('module', 'nn.GRU')} with the same quantised "
                         f"weights, Θ=0: RMSE {d['rmse']:.4g}, nRMSE {d['nrmse']:.3f}")
    if t.get("dense_float_accuracy") is not None:
        lines.append(f"float64 {t.get('module', 'nn.GRU')} with the same quantised weights, "
                     f"Θ=0: accuracy {100 * t['dense_float_accuracy']:.1f}%")
    cc = bench.get("cross_check")
    if cc:
        bad = [x for x in cc if x["h_mismatch_steps"] or x["nnz_mismatch_steps"]
               or x["cycles_vs_model_mismatch_steps"]]
        lines.append("cross-check against the golden model: " +
                     ("bit-exact h and nnz, cycles equal to the cycle model on every step of "
                      "every row" if not bad else f"MISMATCH in {len(bad)} row(s): {bad}"))
    return "\n".join(lines)


@click.command()
# (Not required for click, so that a missing MODEL_DIR gets the CLI's one-line error.)
@click.argument("model_dir", required=False, metavar="MODEL_DIR", type=click.Path(path_type=Path))
@click.option("--dataset", "dataset_name", default=None,
              help="Data set (japanese-vowels, basic-motions, gun-point, italy-power-demand, "
                   "pendulum or a .npz, read as the bundle's task); default: the one the "
                   "model was trained on (bundle extra 'dataset').")
@click.option("--thetas", default=None,
              help="Comma-separated thresholds in real units, same for x and h (or TX/TH pairs), "
                   "e.g. 0,0.05,0.1. Default: 0, then 1/64, 1/32, ... 1 until accuracy "
                   "falls 3 points below Θ=0 (regression: until RMSE / target std rises 0.1 "
                   "above Θ=0's), plus the bundle's trained thresholds. Θ=0 is always "
                   "benched, first: it is the speed-up's reference.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("build/bench"),
              show_default=True, help="Directory for bench.json and the PNG plots.")
@click.option("--engine", type=click.Choice(["verilator", "golden"]), default=DEFAULT_ENGINE,
              show_default=True, help="verilator: cycles measured on the generated core; "
                                      "golden: the NumPy model, cycles from the cycle model.")
@click.option("--clock-mhz", type=float, default=None,
              help="Stated clock for latencies (default: the clock `drnn build --board "
                   "ulx3s-85f` builds the core at, 90 MHz, 80 for a DeltaLSTM; labelled as "
                   "stated).")
@click.option("--build-report", type=click.Path(path_type=Path), default=None,
              help="report.json of `drnn build --board ulx3s-85f`: latencies at its Fmax.")
@click.option("--limit", type=int, default=None, help="Only the first N test sequences.")
@click.option("--torch-threads", type=int, default=1, show_default=True,
              help="torch.set_num_threads for the nn.GRU timing.")
@click.option("--torch-repeats", type=int, default=20, show_default=True,
              help="Timed repeats of the nn.GRU run (median reported).")
@click.option("--no-cross-check", is_flag=True,
              help="Skip re-running the golden model to check the RTL engine step by step.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--dram-latency", "dram_latency", type=int, default=None, metavar="CYCLES",
              help="With --weights axi: the DRAM's read latency (AR to first R beat, fixed; "
                   "one beat per cycle) the cycles are taken at [default: 32].")
@core_options
def bench(model_dir, dataset_name, thetas, out_dir, engine, clock_mhz, build_report, limit,
          torch_threads, torch_repeats, no_cross_check, quiet, dram_latency, **core):
    """Accuracy (regression: RMSE), sparsity, cycles and speed of MODEL_DIR on its data set's
    test set, per Θ."""
    from drnn_boards.ulx3s import default_freq_mhz
    from drnn_boards.ulx3s_report import clock_from_build_report

    from ..bench import metrics as M
    from ..bench import run as B
    from ..bench.plots import write_plots

    if model_dir is None:
        raise UserError("no model: give MODEL_DIR, a bundle written by `drnn export`")
    bundle = load_bundle(model_dir)
    shape = shape_from_options(**core, bundle=bundle,
                               hidden=max(layer.hidden_size for layer in bundle.layers))
    if shape.weight_format == "compressed":
        require_core_shape(bundle, model_dir, shape)
    check_out_dir("--out", out_dir)      # before the bench, not after it
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be ≥ 1, got {limit}")
    if torch_threads < 1 or torch_repeats < 1:
        raise UserError("--torch-threads and --torch-repeats must be ≥ 1")
    theta_list = None if thetas is None else M.parse_thetas(thetas, bundle)
    if build_report is not None and clock_mhz is not None:
        raise UserError("give either --build-report or --clock-mhz, not both")
    if build_report is not None:
        clock, clock_source = clock_from_build_report(build_report, shape, bundle)
    else:
        clock = default_freq_mhz(bundle.cell) if clock_mhz is None else clock_mhz
        clock_source = "stated" + (" (default)" if clock_mhz is None else "") + \
            ", not measured by a build"
    if not (clock > 0 and math.isfinite(clock)):
        raise UserError(f"--clock-mhz must be a finite number > 0, got {clock}")

    name = dataset_name or bundle.extra.get("dataset")
    if not name:
        raise UserError(f"{model_dir}: the bundle does not say which data set it was trained "
                        "on (extra.dataset); give --dataset NAME")
    from drnn_train.datasets import load_dataset
    dataset = load_dataset(name, task=bundle.task)

    from functools import partial

    from drnn_hw.dram import DEFAULT_LATENCY
    if dram_latency is not None and shape.weights != "axi":
        raise UserError("--dram-latency applies to --weights axi only")
    if dram_latency is not None and dram_latency < 1:
        raise UserError(f"--dram-latency must be ≥ 1 cycle, got {dram_latency}")
    if shape.weights == "axi":
        dram_latency = DEFAULT_LATENCY if dram_latency is None else dram_latency
        if engine == "amaranth":
            raise UserError("--weights axi: the amaranth engine has no DRAM model; use "
                            "--engine verilator or golden")
    perf_log = []
    run = register_threshold_runner(bundle, perf_log, dram_latency) if engine == "verilator" \
        else partial(get_engine(engine), dram_latency=dram_latency) if engine == "golden" \
        else get_engine(engine)
    golden = None if (engine == "golden" or no_cross_check) else \
        partial(get_engine("golden"), dram_latency=dram_latency)
    if engine == "verilator" and not quiet:
        click.echo("the first threshold generates and Verilates the core (cached afterwards)",
                   err=True)
    result = B.run_bench(bundle, dataset, shape, run, engine_name=engine, thetas=theta_list,
                         clock_mhz=clock, clock_source=clock_source, limit=limit,
                         golden_run=golden, torch_threads=torch_threads,
                         torch_repeats=torch_repeats, progress=not quiet,
                         log=lambda s: None if quiet else click.echo(s, err=True),
                         dram_latency=dram_latency)
    if sys.argv and Path(sys.argv[0]).name == "drnn":
        result["command"] = shlex.join(["drnn", *sys.argv[1:]])
    result["model"]["path"] = str(model_dir)
    if engine == "verilator":
        result["thresholds_note"] = (
            "same weights and the same built core at every row; each Θ is written to the "
            "THETA_X/THETA_H registers before every sequence (run time, not retrained)")
        result["engine_perf"] = perf_log
    out_dir.mkdir(parents=True, exist_ok=True)
    result["plots"] = [str(p) for p in write_plots(result, out_dir)]
    B.write_json(out_dir / "bench.json", result)
    click.echo(format_table(result))
    click.echo(f"wrote {out_dir / 'bench.json'} and {len(result['plots'])} plots in {out_dir}")
