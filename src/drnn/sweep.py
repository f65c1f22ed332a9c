"""Threshold and weight-precision sweep: ``python -m drnn.sweep [--out build/sweep]``.

Pre-trains one float GRU (the default configuration), then fine-tunes it with delta thresholds
and quantisation-aware training once per (Θ, weight format), and evaluates each result
hardware-exactly twice: with the trainer's exact mode and with the golden model + cycle model
(the two must agree; the sweep fails loudly if they do not). Writes ``results.json`` and
``results.md`` (the README table) to the output folder. ``--cell lstm`` sweeps a delta-LSTM
the same way (no cycles: there is no LSTM core or cycle model yet).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from drnn_hw.cycle_model import CoreShape

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
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
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
