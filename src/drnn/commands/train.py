"""``drnn train``: float pre-training, then delta + quantisation-aware fine-tuning.

torch is imported inside the commands so that ``drnn --help`` stays fast.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from drnn_hw.errors import UserError
from .common import check_out_file
from drnn_train.config import TrainConfig

#: The recipe's defaults, shown by --help (the dataclass is torch-free).
DEFAULTS = TrainConfig()
#: A hardware-exact accuracy this far below the float GRU's (a fraction) gets a warning: the
#: default recipe stays within 1.5 points on JapaneseVowels, GunPoint at Θ = 0.5 loses 43.
THRESHOLD_LOSS_WARNING = 0.05
#: Regression's counterpart: a hardware-exact nRMSE (RMSE / target std, unit-free) more than
#: this factor above the float GRU's, and by more than RMSE_GAP_WARNING, gets a warning. On the
#: pendulum set (L=2, H=64) Θ = 0.1 gives 1.37x (no warning), Θ = 0.25 2.3x, Θ = 0.5 6x.
RMSE_RATIO_WARNING = 1.5
RMSE_GAP_WARNING = 0.05


def _check_positive(name, value, minimum=1):
    if value < minimum:
        raise UserError(f"--{name}: expected an integer >= {minimum}, got {value}")


def _check_threshold(name, value):
    if not math.isfinite(value) or value < 0:
        raise UserError(f"--{name}: expected a finite threshold >= 0, got {value}")


def _per_layer(name: str, text: str, layers: int, kind):
    """'64' or '128,64' (``layers`` values) -> one value or a list of ``layers`` values."""
    try:
        vals = [kind(t) for t in str(text).split(",")]
    except ValueError:
        raise UserError(f"--{name}: expected one {kind.__name__} or {layers} comma-separated "
                        f"(one per layer), got {text!r}") from None
    if len(vals) not in (1, layers):
        raise UserError(f"--{name}: expected one value or {layers} comma-separated (one per "
                        f"layer, --layers {layers}), got {len(vals)}")
    return vals[0] if len(vals) == 1 else vals


def _each(v):
    return v if isinstance(v, list) else [v]


def _show(v):
    return ",".join(f"{e:g}" for e in _each(v))


@click.command()
@click.option("--dataset", default=DEFAULTS.dataset, show_default=True,
              help="japanese-vowels, basic-motions, gun-point, italy-power-demand, pendulum "
                   "(synthetic regression), or PATH.npz (x_train, y_train, x_test, y_test[, "
                   "len_train, len_test]; NaN padding past each length allowed).")
@click.option("--task", type=click.Choice(["classification", "regression"]), default=None,
              help="classification (y: (N,) labels; cross-entropy, accuracy) or regression "
                   "(y: (N, T, O) per-step or (N, O) last-step targets; MSE, RMSE). Default: "
                   "the data set's own (pendulum: regression), classification for a .npz.")
@click.option("--cell", type=click.Choice(["gru", "lstm"]), default=DEFAULTS.cell,
              show_default=True,
              help="The recurrent cell: gru (the delta-GRU) or lstm (a delta-LSTM in nn.LSTM's "
                   "convention); the generator builds a core for either.")
@click.option("--layers", type=int, default=DEFAULTS.layers, show_default=True,
              help="Stacked delta-GRU layers L (layer l > 0 takes layer l-1's h).")
@click.option("--hidden", default=str(DEFAULTS.hidden), show_default=True,
              help="Hidden units H: one size for every layer, or L comma-separated (128,64).")
@click.option("--theta-x", default=f"{DEFAULTS.theta_x:g}", show_default=True,
              help="Input delta threshold Θx (normalised input units; for layer l > 0, on "
                   "layer l-1's h): one for every layer, or L comma-separated.")
@click.option("--theta-h", default=f"{DEFAULTS.theta_h:g}", show_default=True,
              help="Hidden delta threshold Θh: one for every layer, or L comma-separated.")
@click.option("--epochs", type=int, default=DEFAULTS.epochs, show_default=True,
              help="Float pre-training epochs (at least; raised to make --min-steps; "
                   "0 skips the phase).")
@click.option("--finetune-epochs", type=int, default=DEFAULTS.finetune_epochs,
              show_default=True, help="Delta + quantisation-aware fine-tuning epochs (at least; "
                                      "raised to make --finetune-min-steps).")
@click.option("--min-steps", type=int, default=DEFAULTS.min_steps, show_default=True,
              help="Fewest optimiser steps of the pre-training (small data sets get more "
                   "epochs).")
@click.option("--finetune-min-steps", type=int, default=DEFAULTS.finetune_min_steps,
              show_default=True, help="Fewest optimiser steps of the fine-tuning.")
@click.option("--lr", type=float, default=DEFAULTS.lr, show_default=True)
@click.option("--finetune-lr", type=float, default=DEFAULTS.finetune_lr, show_default=True)
@click.option("--batch-size", type=int, default=DEFAULTS.batch_size, show_default=True)
@click.option("--l1", type=float, default=DEFAULTS.l1, show_default=True,
              help="L1 penalty on the kept Δh (pushes temporal sparsity).")
@click.option("--weight-bits", type=int, default=DEFAULTS.weight_bits, show_default=True)
@click.option("--weight-frac", type=int, default=DEFAULTS.weight_frac, show_default=True)
@click.option("--spatial-sparsity", "spatial_sparsity", type=float,
              default=DEFAULTS.spatial_sparsity, show_default=True, metavar="γ",
              help="Column-balanced weight sparsity γ in [0, 1) (Spartus's CBTD): in every "
                   "column of every W_x and W_h, each multiplier's slice of rows (r mod P) keeps "
                   "its NB − floor(γ·NB) largest weights (NB = ceil(H/P)); trained by annealed "
                   "targeted dropout, then fine-tuned with the mask fixed. 0: dense.")
@click.option("--balance-rows", "balance_rows", type=int, default=DEFAULTS.balance_rows,
              show_default=True, metavar="P",
              help="The balance unit: the core's rows P the pattern is made for (the default "
                   "core's 16); generate/build refuse another P.")
@click.option("--spatial-epochs", "spatial_epochs", type=int, default=DEFAULTS.spatial_epochs,
              show_default=True, help="Targeted-dropout epochs (at least; raised to make "
                                      "--spatial-min-steps), with --spatial-sparsity.")
@click.option("--spatial-min-steps", "spatial_min_steps", type=int,
              default=DEFAULTS.spatial_min_steps, show_default=True,
              help="Fewest optimiser steps of the targeted-dropout phase.")
@click.option("--targeted-dropout", "targeted_dropout", type=float,
              default=DEFAULTS.targeted_dropout, show_default=True, metavar="α",
              help="Probability a targeted (smallest) weight is dropped in a training step.")
@click.option("--anneal", type=float, default=DEFAULTS.anneal, show_default=True,
              help="Fraction of the targeted-dropout phase over which γ rises from 0.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--threads", type=int, default=DEFAULTS.threads, show_default=True,
              help="torch intra-op threads (the model is small: 1 is usually fastest).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Checkpoint to write (CKPT.pt); metrics go to CKPT.metrics.json.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train(dataset, task, cell, layers, hidden, theta_x, theta_h, epochs, finetune_epochs, min_steps,
          finetune_min_steps, lr, finetune_lr, batch_size, l1, weight_bits, weight_frac,
          spatial_sparsity, balance_rows, spatial_epochs, spatial_min_steps, targeted_dropout,
          anneal, seed, threads, out, quiet):
    """Train a delta-GRU (or --cell lstm: delta-LSTM) classifier or regression model (float
    pre-training, then delta + QAT fine-tuning)."""
    from drnn_hw.numerics import Formats

    check_out_file("--out", out)     # before the training, not after it
    _check_positive("layers", layers)
    hidden = _per_layer("hidden", hidden, layers, int)
    theta_x = _per_layer("theta-x", theta_x, layers, float)
    theta_h = _per_layer("theta-h", theta_h, layers, float)
    for h in _each(hidden):
        _check_positive("hidden", h)
    _check_positive("epochs", epochs, 0)
    _check_positive("finetune-epochs", finetune_epochs, 0)
    _check_positive("min-steps", min_steps, 0)
    _check_positive("finetune-min-steps", finetune_min_steps, 0)
    _check_positive("batch-size", batch_size)
    _check_positive("threads", threads)
    for name, v in (("theta-x", theta_x), ("theta-h", theta_h)):
        for e in _each(v):
            _check_threshold(name, e)
    for name, v in (("lr", lr), ("finetune-lr", finetune_lr), ("l1", l1)):
        if not math.isfinite(v) or v < 0:
            raise UserError(f"--{name}: expected a finite value >= 0, got {v}")
    if not (math.isfinite(spatial_sparsity) and 0 <= spatial_sparsity < 1):
        raise UserError(f"--spatial-sparsity: expected γ in [0, 1), got {spatial_sparsity}")
    _check_positive("balance-rows", balance_rows)
    _check_positive("spatial-epochs", spatial_epochs, 0)
    _check_positive("spatial-min-steps", spatial_min_steps, 0)
    for name, v in (("targeted-dropout", targeted_dropout), ("anneal", anneal)):
        if not (math.isfinite(v) and 0 <= v <= 1):
            raise UserError(f"--{name}: expected a value in [0, 1], got {v}")
    try:
        fmts = Formats(w_bits=weight_bits, w_frac=weight_frac)
    except ValueError as e:
        raise UserError(f"--weight-bits/--weight-frac: {e}") from None
    top = fmts.act.max * fmts.act.lsb
    for name, v in (("theta-x", theta_x), ("theta-h", theta_h)):
        for e in _each(v):
            if e > top:
                raise UserError(f"--{name}: expected a threshold in [0, {top:g}], got {e}")

    from drnn_train.train import checkpoint_metrics_path, train_model

    path, m = train_model(out, dataset, progress=not quiet, task=task, cell=cell, layers=layers,
                          hidden=hidden,
                          theta_x=theta_x,
                          theta_h=theta_h, epochs=epochs, finetune_epochs=finetune_epochs,
                          min_steps=min_steps, finetune_min_steps=finetune_min_steps, lr=lr,
                          finetune_lr=finetune_lr, batch_size=batch_size, l1=l1,
                          weight_bits=weight_bits, weight_frac=weight_frac, seed=seed,
                          threads=threads, spatial_sparsity=spatial_sparsity,
                          balance_rows=balance_rows, spatial_epochs=spatial_epochs,
                          spatial_min_steps=spatial_min_steps,
                          targeted_dropout=targeted_dropout, anneal=anneal)
    stack = ("LSTM " if cell == "lstm" else "") + (f"L={layers} " if layers > 1 else "")
    name = cell.upper()
    click.echo(f"{m['dataset']}: {stack}H={_show(hidden)} Θx={_show(theta_x)} "
               f"Θh={_show(theta_h)} weights "
               f"{fmts.weight} ({m['seconds']:.0f} s; {m['epochs_run']} + "
               f"{m['finetune_epochs_run']} epochs, {m['steps']} + {m['finetune_steps']} steps)")
    # The step floors exist so that small data sets train at all; say when they overrode the
    # epochs asked for, and how to train exactly that many.
    for phase, asked, ran, floor in (("--epochs", epochs, m["epochs_run"], "--min-steps 0"),
                                     ("--finetune-epochs", finetune_epochs,
                                      m["finetune_epochs_run"], "--finetune-min-steps 0")):
        if ran > asked:
            click.echo(f"note: {phase} {asked} raised to {ran} by the step floor "
                       f"({floor} trains exactly {asked})", err=True)
    if m.get("task") == "regression":
        click.echo(f"float {name} test RMSE{' ' * (13 - len(name))}{_rmse(m, 'float')}")
        click.echo(f"hardware-exact test RMSE     {_rmse(m, 'exact')}")
    else:
        click.echo(f"float {name} test accuracy{' ' * (8 - len(name))}"
                   f"{100 * m['float_accuracy']:.2f} %")
        click.echo(f"hardware-exact test accuracy {100 * m['exact_accuracy']:.2f} %")
    click.echo(f"temporal sparsity Δx {100 * m['sparsity_dx']:.1f} %, "
               f"Δh {100 * m['sparsity_dh']:.1f} %")
    for l, (sx, sh) in enumerate(zip(m.get("layer_sparsity_dx", []),
                                     m.get("layer_sparsity_dh", []))):
        click.echo(f"  layer {l}: Δx {100 * sx:.1f} %, Δh {100 * sh:.1f} %")
    if "spatial_sparsity" in m:
        kept = ", ".join(f"{k} of {nb}" for k, nb in zip(m["kept_per_slice"], m["blocks"]))
        pruned = (f"pruned float {100 * m['pruned_float_accuracy']:.2f} %; "
                  if "pruned_float_accuracy" in m else "")
        click.echo(f"spatial sparsity γ={m['spatial_sparsity']:g} over P={m['balance_rows']} "
                   f"slices: {kept} weights kept per slice ({'per layer; ' if layers > 1 else ''}"
                   f"{pruned}{m['spatial_steps']} targeted-dropout steps)")
    click.echo(f"weight sparsity {100 * m['weight_sparsity']:.1f} % (zero weights of W_x, W_h)")
    if m["saturated_on_export"]:
        click.echo(f"drnn: warning: {m['saturated_on_export']} weights/biases saturate on export",
                   err=True)
    click.echo(f"wrote {path} and {checkpoint_metrics_path(path)}")
    for l, (k, nb) in enumerate(zip(m.get("kept_per_slice", []), m.get("blocks", []))):
        if k == nb:
            click.echo(f"drnn: warning: --spatial-sparsity {spatial_sparsity:g} prunes nothing "
                       f"in layer {l}: its slices have NB = {nb} row(s) (H = "
                       f"{_each(hidden)[min(l, len(_each(hidden)) - 1)]}, P = {balance_rows}) "
                       f"and keep NB − floor(γ·NB) = {k}; a larger γ or a smaller "
                       f"--balance-rows prunes", err=True)
    for line in (rmse_warnings(m) if m.get("task") == "regression" else accuracy_warnings(m)):
        click.echo(line, err=True)


def _rmse(m: dict, which: str) -> str:
    """'0.512 (nRMSE 0.110; torque_Nm 0.698, omega_rad_s 0.175)': overall, unit-free, per
    output in its units."""
    per = ", ".join(f"{o} {v:.4g}" for o, v in zip(m["outputs"], m[f"{which}_rmse_per_output"]))
    return f"{m[f'{which}_rmse']:.4g} (nRMSE {m[f'{which}_nrmse']:.3f}; {per})"


def rmse_warnings(m: dict) -> list[str]:
    """A regression run's counterpart of :func:`accuracy_warnings`: a model no better than
    predicting the training targets' mean, or a hardware-exact nRMSE far above the float
    GRU's (more than RMSE_RATIO_WARNING times and by more than RMSE_GAP_WARNING)."""
    if m["no_better_than_mean"]:
        return [f"drnn: warning: hardware-exact test nRMSE {m['exact_nrmse']:.3f} is no better "
                f"than always predicting the training targets' mean "
                f"({m['mean_baseline_nrmse']:.3f}): the model has not learned; train longer "
                f"(--min-steps) or check the data"]
    fl, ex = m["float_nrmse"], m["exact_nrmse"]
    if ex > RMSE_RATIO_WARNING * fl and ex - fl > RMSE_GAP_WARNING:
        return [f"drnn: warning: hardware-exact test nRMSE {ex:.3f} is {ex / fl:.1f}x the float "
                f"GRU's {fl:.3f} (RMSE / target std; zero deltas Δx "
                f"{100 * m['sparsity_dx']:.1f} %, Δh {100 * m['sparsity_dh']:.1f} %): the "
                f"thresholds are likely too coarse for this data; try smaller --theta-x "
                f"--theta-h"]
    return []


def accuracy_warnings(m: dict) -> list[str]:
    """One-line warnings about a training run's metrics (``train_model``'s): a model no better
    than the majority class, or a hardware-exact accuracy far below the float GRU's."""
    if m["no_better_than_majority"]:
        return [f"drnn: warning: hardware-exact test accuracy {100 * m['exact_accuracy']:.2f} % "
                f"is no better than always answering the majority class "
                f"'{m['majority_class']}' ({100 * m['majority_accuracy']:.2f} % of the test "
                f"split): the model has not learned; train longer (--min-steps) or check the "
                f"data"]
    loss = m["float_accuracy"] - m["exact_accuracy"]
    if loss > THRESHOLD_LOSS_WARNING:
        return [f"drnn: warning: hardware-exact test accuracy {100 * m['exact_accuracy']:.2f} % "
                f"is {100 * loss:.1f} points below the float GRU's "
                f"{100 * m['float_accuracy']:.2f} % (zero deltas Δx {100 * m['sparsity_dx']:.1f} "
                f"%, Δh {100 * m['sparsity_dh']:.1f} %): the thresholds are likely too coarse "
                f"for this data; try smaller --theta-x --theta-h"]
    return []
