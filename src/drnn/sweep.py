"""Threshold and weight-precision sweep: ``python -m drnn.sweep [--out build/sweep]``.

Pre-trains one float GRU (the default configuration), then fine-tunes it with delta thresholds
and quantisation-aware training once per (Θ, weight format), and evaluates each result
hardware-exactly twice: with the trainer's exact mode and with the golden model + cycle model
(the two must agree; the sweep fails loudly if they do not). Writes ``results.json`` and
``results.md`` (the README table) to the output folder. ``--cell lstm`` sweeps a delta-LSTM
the same way (cycles from the LSTM core's cycle model).

``--gammas`` sweeps the column-balanced spatial sparsity γ instead (:func:`spatial_sweep`, at
one Θ): one float GRU, then for each γ the targeted-dropout phase and the delta + QAT
fine-tuning (:mod:`drnn_train.prune`), evaluated hardware-exactly (trainer exact mode and
golden model, which must agree), with the cycles per step of the dense core
(:mod:`drnn_hw.cycle_model`) and of a compressed-weight core (:mod:`drnn_hw.spatial`, whose
model the ``--weight-format compressed`` core meets on every step) and the speed-up over the
dense core at Θ = 0; each γ's bundle is kept in ``OUT/gamma<γ>``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run
from drnn_hw.spatial import bundle_spatial_cycles, delta_masks, layer_kept, weight_memory_bits

from drnn_train.datasets import load_dataset
from drnn_train.evaluate import evaluate_bundle
from drnn_train.export import bundle_from_checkpoint
from drnn_train.train import TrainConfig, train

#: (weight bits, weight fractional bits, Θx, Θh) of every fine-tuning run.
DEFAULT_RUNS = [(8, 6, th, th) for th in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)] + \
    [(16, 12, th, th) for th in (0.0, 0.1, 0.2, 0.3, 0.5)]


def sweep(out: Path, dataset: str = "japanese-vowels", runs=None, progress: bool = True,
          **cfg_options) -> dict:
    runs = DEFAULT_RUNS if runs is None else runs
    ds = load_dataset(dataset)
    base = replace(TrainConfig(), dataset=dataset, **cfg_options)
    # Phase 1 once: the float GRU every fine-tuning starts from.
    ckpt, _ = train(replace(base, finetune_epochs=0, theta_x=0.0, theta_h=0.0), ds,
                    progress=progress)
    float_state = ckpt["float_state"]
    rows = []
    for wb, wf, tx, th in runs:
        cfg = replace(base, theta_x=tx, theta_h=th, weight_bits=wb, weight_frac=wf)
        ck, m = train(cfg, ds, progress=progress, init_state=float_state)
        bundle, _ = bundle_from_checkpoint(ck)
        g = evaluate_bundle(bundle, ds, CoreShape())
        if abs(g["accuracy"] - m["exact_accuracy"]) > 0 or \
                abs(g["sparsity_dh"] - m["sparsity_dh"]) > 0:
            raise AssertionError(f"trainer exact mode and golden model disagree at "
                                 f"Θ={tx}/{th}, w={wb} bits: {m['exact_accuracy']} vs "
                                 f"{g['accuracy']}")
        row = {"theta_x": tx, "theta_h": th, "weight_bits": wb, "weight_frac": wf,
               "float_accuracy": m["float_accuracy"], "qat_accuracy": m["qat_accuracy"],
               "exact_accuracy": m["exact_accuracy"], "golden_accuracy": g["accuracy"],
               "sparsity_dx": m["sparsity_dx"], "sparsity_dh": m["sparsity_dh"],
               "mean_cycles": g["mean_cycles"], "mean_cycles_dense": g["mean_cycles_dense"],
               "saturated_on_export": m["saturated_on_export"], "seconds": m["seconds"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"dataset": ds.name, "config": asdict(base), "core": CoreShape().to_dict(),
              "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "results.md").write_text(markdown_table(rows))
    return result


def markdown_table(rows) -> str:
    lines = ["| weights | Θx | Θh | float acc. | hardware-exact acc. | Δx sparsity | "
             "Δh sparsity | mean cycles/step (dense) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cycles = "–" if r["mean_cycles"] is None else \
            f"{r['mean_cycles']:.1f} ({r['mean_cycles_dense']:.0f})"
        lines.append(f"| {r['weight_bits']}-bit Q{r['weight_bits'] - r['weight_frac']}."
                     f"{r['weight_frac']} | {r['theta_x']:g} | {r['theta_h']:g} | {100 * r['float_accuracy']:.2f} % "
                     f"| {100 * r['exact_accuracy']:.2f} % | {100 * r['sparsity_dx']:.1f} % | "
                     f"{100 * r['sparsity_dh']:.1f} % | {cycles} |")
    return "\n".join(lines) + "\n"


def _cycles(bundle, ds, shape):
    """Golden run on the test split -> (dense-core cycles, compressed-core cycles) per valid
    step; the dense ones are checked against the golden model's own cycle count."""
    x, L = ds.x_test, ds.len_test
    valid = np.arange(x.shape[1])[None, :] < L[:, None]
    codes = np.where(valid[..., None], bundle.quantize_input(x, where=ds.name), 0)
    res = run(bundle, codes, L, shape)
    masks = delta_masks(codes, res.layer_h, L, [(ly.theta_x, ly.theta_h) for ly in bundle.layers])
    dense = bundle_spatial_cycles(bundle, masks, shape, dense=True)[valid]
    if not np.array_equal(dense, res.cycles[valid]):
        raise AssertionError("delta-mask replay and the golden model disagree on the cycles")
    return dense, bundle_spatial_cycles(bundle, masks, shape)[valid]


def spatial_sweep(out: Path, gammas, dataset: str = "japanese-vowels", theta: float = 0.5,
                  rows: int = 16, progress: bool = True, **cfg_options) -> dict:
    """Column-balanced sparsity γ at one Θ on the default core (P = ``rows``; module doc).

    Each row: ``gamma``, ``kept``/``blocks`` per slice, ``weight_sparsity`` (zero weight
    codes), ``float_accuracy`` (the dense float GRU), ``pruned_float_accuracy``,
    ``exact_accuracy`` (= the golden model's, checked), ``sparsity_dx``/``_dh``,
    ``dense_cycles`` (cycle model, dense core, at Θ), ``compressed_cycles`` (spatial model),
    ``baseline_cycles`` (the γ = 0 model at Θ = 0 on the dense core: the dense-weight core
    without temporal sparsity), ``speedup_temporal`` = baseline / dense, ``speedup_spatial`` =
    dense / compressed, ``speedup`` = baseline / compressed (their product),
    ``compressed_cycles_theta0`` and ``speedup_spatial_theta0`` (the same bundle at Θ = 0 on
    the compressed core: the spatial sparsity alone), and the weight memory of both cores
    (bits). Model figures, not Verilator measurements; each γ's bundle is written to
    ``out/gamma<γ>`` (``gamma0.75``) for ``drnn bench --engine verilator`` to measure.
    """
    if cfg_options.get("cell", "gru") != "gru":
        raise ValueError("spatial_sweep: the cycle figures need a GRU (no LSTM core or cycle "
                         "model yet); train an LSTM with drnn train --cell lstm "
                         "--spatial-sparsity")
    gammas = list(gammas)
    if not gammas or gammas[0] != 0:
        raise ValueError("spatial_sweep: the first γ must be 0 (the dense baseline)")
    ds = load_dataset(dataset)
    base = replace(TrainConfig(), dataset=dataset, theta_x=theta, theta_h=theta,
                   balance_rows=rows, **cfg_options)
    shape = CoreShape(rows=rows)
    ckpt, _ = train(replace(base, finetune_epochs=0, theta_x=0.0, theta_h=0.0), ds,
                    progress=progress)
    float_state = ckpt["float_state"]
    rows_out, baseline = [], None
    for gamma in gammas:
        ck, m = train(replace(base, spatial_sparsity=gamma), ds, progress=progress,
                      init_state=float_state)
        bundle, _ = bundle_from_checkpoint(ck)
        # Each γ's bundle is kept, so that its cores can be measured (drnn bench --engine
        # verilator, README) and built.
        bundle.save(out / f"gamma{gamma:g}")
        g = evaluate_bundle(bundle, ds, shape)
        if g["accuracy"] != m["exact_accuracy"] or g["sparsity_dh"] != m["sparsity_dh"]:
            raise AssertionError(f"trainer exact mode and golden model disagree at γ={gamma}")
        if baseline is None:       # the first row is γ = 0: dense weights, at Θ = 0
            baseline = float(_cycles(bundle.with_thresholds(0, 0), ds, shape)[0].mean())
        dense, comp = _cycles(bundle, ds, shape)
        comp0 = _cycles(bundle.with_thresholds(0, 0), ds, shape)[1]   # spatial sparsity only
        ly = bundle.layers[0]
        kept = [layer_kept(lay, shape) for lay in bundle.layers]
        gates = ly.w_x.shape[0]
        mem_dense = sum(weight_memory_bits(lay, shape, bundle.formats.w_bits, gates)
                        for lay in bundle.layers)
        mem_comp = sum(weight_memory_bits(lay, shape, bundle.formats.w_bits, gates, kept=k)
                       for lay, k in zip(bundle.layers, kept))
        row = {"gamma": gamma, "kept": kept,
               "blocks": [shape.blocks(lay.hidden_size) for lay in bundle.layers],
               "weight_sparsity": m["weight_sparsity"],
               "float_accuracy": m["float_accuracy"],
               "pruned_float_accuracy": m.get("pruned_float_accuracy", m["float_accuracy"]),
               "qat_accuracy": m["qat_accuracy"], "exact_accuracy": m["exact_accuracy"],
               "golden_accuracy": g["accuracy"],
               "sparsity_dx": m["sparsity_dx"], "sparsity_dh": m["sparsity_dh"],
               "dense_cycles": float(dense.mean()), "compressed_cycles": float(comp.mean()),
               "baseline_cycles": baseline,
               "speedup_temporal": baseline / float(dense.mean()),
               "speedup_spatial": float(dense.mean() / comp.mean()),
               "speedup": baseline / float(comp.mean()),
               "compressed_cycles_theta0": float(comp0.mean()),
               "speedup_spatial_theta0": baseline / float(comp0.mean()),
               "weight_memory_dense_bits": mem_dense,
               "weight_memory_compressed_bits": mem_comp, "seconds": m["seconds"]}
        rows_out.append(row)
        print(json.dumps(row), flush=True)
    result = {"dataset": ds.name, "theta": theta, "config": asdict(base),
              "core": shape.to_dict(), "rows": rows_out,
              "note": "cycles from the cycle model (dense core) and the spatial model "
                      "(compressed core, which meets it exactly): model figures, not Verilator"}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "results.md").write_text(spatial_table(rows_out))
    return result


def spatial_table(rows) -> str:
    lines = ["| γ | kept / slice | weight sparsity | float GRU | pruned float | hardware-exact | "
             "Δx zero | Δh zero | cycles/step dense core | cycles/step compressed (model) | "
             "speed-up temporal × spatial = total | compressed at Θ = 0 (speed-up) | "
             "weight memory dense / compressed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kept = ",".join(f"{k} of {nb}" for k, nb in zip(r["kept"], r["blocks"]))
        lines.append(
            f"| {r['gamma']:g} | {kept} | {100 * r['weight_sparsity']:.1f} % | "
            f"{100 * r['float_accuracy']:.2f} % | {100 * r['pruned_float_accuracy']:.2f} % | "
            f"{100 * r['exact_accuracy']:.2f} % | {100 * r['sparsity_dx']:.1f} % | "
            f"{100 * r['sparsity_dh']:.1f} % | {r['dense_cycles']:.1f} | "
            f"{r['compressed_cycles']:.1f} | {r['speedup_temporal']:.2f} × "
            f"{r['speedup_spatial']:.2f} = **{r['speedup']:.2f}×** | "
            f"{r['compressed_cycles_theta0']:.1f} ({r['speedup_spatial_theta0']:.2f}×) | "
            f"{r['weight_memory_dense_bits'] / 1000:.1f} / "
            f"{r['weight_memory_compressed_bits'] / 1000:.1f} kbit |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m drnn.sweep", description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("build/sweep"))
    ap.add_argument("--dataset", default="japanese-vowels")
    ap.add_argument("--thetas", type=float, nargs="+", default=None,
                    help="Θ values (default: the built-in list of runs)")
    ap.add_argument("--pairs", nargs="+", default=None,
                    help="Θx:Θh pairs (instead of --thetas), e.g. 0.5:0.75")
    ap.add_argument("--weight-formats", nargs="+", default=["8:6"],
                    help="BITS:FRAC pairs used with --thetas, e.g. 8:6 16:12")
    ap.add_argument("--cell", choices=["gru", "lstm"], default=None,
                    help="the recurrent cell (default gru)")
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--finetune-epochs", type=int, default=None)
    ap.add_argument("--l1", type=float, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--gammas", type=float, nargs="+", default=None,
                    help="column-balanced spatial sparsities γ (the first must be 0), swept at "
                         "one Θ (--thetas, default 0.5) instead of the threshold sweep")
    ap.add_argument("--balance-rows", type=int, default=16,
                    help="with --gammas: the balance unit P (the core's rows)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.gammas is not None:
        opts = {k: v for k, v in (("hidden", a.hidden), ("epochs", a.epochs),
                                  ("finetune_epochs", a.finetune_epochs), ("l1", a.l1),
                                  ("seed", a.seed), ("cell", a.cell)) if v is not None}
        theta = a.thetas[0] if a.thetas else 0.5
        res = spatial_sweep(a.out, a.gammas, a.dataset, theta, a.balance_rows,
                            progress=not a.quiet, **opts)
        print(spatial_table(res["rows"]))
        return
    wfs = [tuple(int(v) for v in s.split(":")) for s in a.weight_formats]
    pairs = [(th, th) for th in a.thetas or []] + \
        [tuple(float(v) for v in p.split(":")) for p in a.pairs or []]
    runs = [(wb, wf, tx, th) for wb, wf in wfs for tx, th in pairs] or None
    opts = {k: v for k, v in (("hidden", a.hidden), ("epochs", a.epochs),
                              ("finetune_epochs", a.finetune_epochs), ("l1", a.l1),
                              ("seed", a.seed), ("cell", a.cell)) if v is not None}
    res = sweep(a.out, a.dataset, runs, progress=not a.quiet, **opts)
    print(markdown_table(res["rows"]))


if __name__ == "__main__":
    main()
