"""PNG plots of a bench result (matplotlib, Agg backend, no display needed).

Each function takes the bench dict of :func:`drnn.bench.run.run_bench` and writes one PNG:
accuracy (a regression model: RMSE / target std per output, ``rmse_sparsity.png``) and
sparsity against Θ, cycles per step against Θ with the bound (and the peer model),
and the per-step cycle trace of one sequence.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402  (after selecting the backend)

__all__ = ["plot_accuracy_sparsity", "plot_cycles", "plot_trace", "write_plots"]


def _theta_labels(rows):
    return [f"{r['theta_x']:.3g}" if r["theta_x"] == r["theta_h"]
            else f"{r['theta_x']:.3g}/{r['theta_h']:.3g}" for r in rows]


def _subtitle(bench):
    c = bench["core"]
    return (f"{bench['model']['name']} I={bench['model']['input_size']} "
            f"H={bench['model']['hidden_size']} on {bench['dataset']['name']} "
            f"({bench['dataset']['sequences']} test seqs); core P={c['rows']} K={c['columns']} "
            f"E={c['scan']}; {bench['engine']}")


def _finish(fig, ax, bench, title, path) -> Path:
    """Title, subtitle naming model, data and core, then the PNG."""
    fig.suptitle(title, fontsize=11)
    ax.set_title(_subtitle(bench), fontsize=8)
    p = Path(path)
    fig.savefig(p, dpi=110)
    return p


def plot_accuracy_sparsity(bench: dict, path) -> Path:
    rows = bench["rows"]
    xs = range(len(rows))
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    regression = bench.get("task") == "regression"
    if regression:
        ax.plot(xs, [r["nrmse"] for r in rows], "o-", color="C0",
                label="nRMSE, all outputs (hardware-exact)")
        std = bench["target_std"]
        for k, name in enumerate(bench["outputs"]):
            ax.plot(xs, [r["rmse_per_output"][k] / std[k] for r in rows], ".:",
                    color=f"C{3 + k % 7}", label=f"{name}: RMSE / target std")
        ax.set_ylabel("RMSE / test-target std (hardware-exact)", color="C0")
        ax.set_ylim(bottom=0)
    acc = [None if r["accuracy"] is None else 100 * r["accuracy"] for r in rows]
    if not regression and any(a is not None for a in acc):
        ax.plot(xs, [float("nan") if a is None else a for a in acc], "o-", color="C0",
                label="accuracy (hardware-exact)")
    if not regression:
        ax.set_ylabel("accuracy (%)", color="C0")
    ax.set_xlabel("Θ (Θx/Θh if they differ), run-time threshold, same weights")
    ax.set_xticks(list(xs), _theta_labels(rows), rotation=45)
    ax2 = ax.twinx()
    ax2.plot(xs, [100 * r["sparsity_dx"] for r in rows], "s--", color="C1", label="Δx sparsity")
    ax2.plot(xs, [100 * r["sparsity_dh"] for r in rows], "^--", color="C2", label="Δh sparsity")
    ax2.set_ylabel("zero deltas (%)")
    ax2.set_ylim(0, 100)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="lower left", fontsize=8)
    title = "RMSE" if regression else "Accuracy"
    return _finish(fig, ax, bench, f"{title} and temporal sparsity vs threshold", path)



def plot_cycles(bench: dict, path) -> Path:
    rows = bench["rows"]
    xs = list(range(len(rows)))
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    mean = [r["cycles"]["mean"] for r in rows]
    p50 = [r["cycles"]["p50"] for r in rows]
    p99 = [r["cycles"]["p99"] for r in rows]
    src = "cycle model" if bench["engine"] == "golden" else f"measured, {bench['engine']}"
    ax.plot(xs, mean, "o-", color="C0", label=f"mean ({src})")
    ax.fill_between(xs, p50, p99, color="C0", alpha=0.2, label=f"p50–p99 ({src})")
    ax.plot(xs, [r["cycles"]["max"] for r in rows], "v:", color="C0", label=f"max ({src})")
    ax.plot(xs, [r["bound_cycles_mean"] for r in rows], "k--", label="bound (cycle_bound), mean")
    if rows[0].get("peer"):         # (none for an LSTM: the peer's schedule is a GRU's)
        ax.plot(xs, [r["peer"]["cycles_mean"] for r in rows], "s-.", color="C3",
                label=f"EdgeDRNN schedule model, PE={rows[0]['peer']['pe']} (same multipliers)")
    ax.set_yscale("log")
    ax.set_ylabel("cycles per step")
    ax.set_xlabel("Θ (run-time threshold, same weights)")
    ax.set_xticks(xs, _theta_labels(rows), rotation=45)
    ax.legend(fontsize=8)
    return _finish(fig, ax, bench, "Cycles per step vs threshold", path)


def plot_trace(bench: dict, path) -> Path:
    tr = bench["trace"]
    fig = Figure(figsize=(8, 6), layout="constrained")
    ax, axn = fig.subplots(2, 1, sharex=True)
    for k, s in enumerate(tr["series"]):
        steps = range(len(s["cycles"]))
        lab = f"Θ={s['theta_x']:.3g}" if s["theta_x"] == s["theta_h"] else \
            f"Θx={s['theta_x']:.3g} Θh={s['theta_h']:.3g}"
        color = f"C{k % 10}"
        ax.plot(steps, s["cycles"], "-", color=color, label=lab)
        ax.plot(steps, s["bound"], ":", color=color, linewidth=0.8)
        axn.plot(steps, [a + b for a, b in zip(s["nnz_dx"], s["nnz_dh"])], "-", color=color)
    ax.set_ylabel("cycles (solid: measured, dotted: bound)")
    axn.set_ylabel("kept deltas (Δx + Δh)")
    axn.set_xlabel(f"step of test sequence {tr['sequence']} (length {tr['length']})")
    ax.legend(fontsize=7, ncol=2)
    return _finish(fig, ax, bench, "Per-step cycle trace of one sequence", path)


def write_plots(bench: dict, out_dir) -> list[Path]:
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    first = "rmse_sparsity.png" if bench.get("task") == "regression" else \
        "accuracy_sparsity.png"
    return [plot_accuracy_sparsity(bench, d / first),
            plot_cycles(bench, d / "cycles.png"),
            plot_trace(bench, d / "trace.png")]
