"""``drnn evaluate``: hardware-exact accuracy (RMSE for a regression model), sparsity and cycles
of a bundle on a data set."""

from __future__ import annotations

import json
from pathlib import Path

import click

from drnn_hw.errors import UserError

from .common import core_options, load_bundle, shape_from_options


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--dataset", default=None,
              help="japanese-vowels, basic-motions, gun-point, italy-power-demand, pendulum, "
                   "or PATH.npz (read as the bundle's task, classification or regression) "
                   "(default: the data set the "
                   "bundle was trained on, from its model.json extra.dataset).")
@core_options
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Write the metrics as JSON here.")
def evaluate(model_dir, dataset, json_out, **core):
    """Hardware-exact test accuracy (regression: RMSE), Δx/Δh sparsity and mean cycles per step
    of MODEL_DIR."""
    from drnn_train.datasets import load_dataset
    from drnn_train.evaluate import evaluate_bundle

    bundle = load_bundle(model_dir)
    shape = shape_from_options(**core, hidden=max(layer.hidden_size for layer in bundle.layers))
    if not bundle.has_head:
        raise UserError(f"{model_dir}: the bundle has no classification head, and accuracy "
                        "needs one (drnn export --torch-gru takes the nn.Linear beside the GRU, "
                        "or --head-prefix)")
    if dataset is None:
        dataset = (bundle.extra or {}).get("dataset")
        if not dataset:
            raise UserError(f"{model_dir}: the bundle does not name its data set; "
                            "pass --dataset NAME|PATH.npz")
    ds = load_dataset(dataset, task=bundle.task)
    m = evaluate_bundle(bundle, ds, shape)
    lstm = bundle.cell == "lstm"
    click.echo(f"{ds.name} test ({m['sequences']} sequences, {m['steps']} steps), "
               + ("LSTM " if lstm else "")
               + f"core P={shape.rows} K={shape.columns} E={shape.scan}")
    if bundle.is_regression:
        where = "every valid step" if m["per_step"] else "the last valid step"
        click.echo(f"hardware-exact RMSE {m['rmse']:.4g} (nRMSE {m['nrmse']:.3f} = RMSE / "
                   f"target std; head at {where})")
        for o, r, sd in zip(m["outputs"], m["rmse_per_output"], m["target_std"]):
            click.echo(f"  {o}: RMSE {r:.4g} (target std {sd:.4g})")
    else:
        click.echo(f"hardware-exact accuracy {100 * m['accuracy']:.2f} %")
    click.echo(f"temporal sparsity Δx {100 * m['sparsity_dx']:.1f} %, "
               f"Δh {100 * m['sparsity_dh']:.1f} %")
    for l, ly in enumerate(m.get("layers", [])):
        click.echo(f"  layer {l} (I={ly['input_size']} H={ly['hidden_size']}): "
                   f"Δx {100 * ly['sparsity_dx']:.1f} %, Δh {100 * ly['sparsity_dh']:.1f} %")
    if bundle.num_layers > 1:
        click.echo(f"cycles: {bundle.num_layers} layers in sequence on one core (the "
                   "time-multiplexed core's cycle model: the layers' passes plus one idle "
                   "cycle between two" + ("; a step's layer 0 scanned during the AP of the "
                                          "step before, the step overlap)"
                                          if shape.step_overlap else ")"))
    click.echo(f"mean cycles/step {m['mean_cycles']:.1f} "
               f"(dense {m['mean_cycles_dense']:.0f})")
    if "mean_cycles_compressed" in m:
        click.echo("compressed-weight core (spatial model, --weight-format compressed): " +
                   ("the core's P is not the pattern's" if m["mean_cycles_compressed"] is None
                    else f"{m['mean_cycles_compressed']:.1f} cycles/step"))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(m, indent=1) + "\n")
