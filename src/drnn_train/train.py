"""Training: float GRU (or LSTM) pre-training, then delta-threshold + quantisation-aware
fine-tuning.

Phase 1 trains the layers (L ≥ 1, stacked) as a float GRU (thresholds 0, no quantisation);
with ``cell = "lstm"`` (:class:`~drnn_train.config.TrainConfig`) as a float LSTM, and every
later step is the same for the LSTM's layers (:class:`~drnn_train.model.DeltaLSTM`).
Phase 2 switches on the thresholds Θx, Θh (forward pass, straight-through gradient) and fake
quantisation to the accelerator's formats, optionally with an L1 penalty on the kept Δh, and
fine-tunes at a lower learning rate. The result is evaluated in the hardware-exact mode
(:func:`~drnn_train.model.exact_run` on the exported integer bundle), whose accuracy is what
the accelerator delivers.

The task is the data set's (:class:`~drnn_train.datasets.Dataset`): classification minimises
the cross-entropy of the head on the last valid step's h; regression the mean squared error
of a linear head on the last layer's h, at every valid step for per-step targets (N, T, O)
or at the last one for (N, O), in per-output normalised units (``(y − mean) / std`` over the
training split's counted targets, so every output weighs the same; the exported head undoes
it, :func:`~drnn_train.model.bundle_head`). Regression reports RMSE in the target's units
(:func:`~drnn_train.evaluate.regression_errors`) instead of accuracy.

With ``spatial_sparsity`` γ > 0 a phase of column-balanced targeted dropout (annealed γ, then
the mask fixed: :mod:`drnn_train.prune`) runs between the two, and the delta + QAT phase
fine-tunes with the mask fixed; the checkpoint then records ``balance`` and the exported
bundle the pattern of every layer (:mod:`drnn_hw.balance`).

Everything is seeded: the same configuration and seed give the same metrics.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from drnn_hw.spatial import weight_sparsity   # re-exported: train()'s metrics use it

from .config import TrainConfig
from .datasets import DATASETS, Dataset, input_statistics, load_dataset
from .evaluate import head_outputs, regression_errors
from .export import CHECKPOINT_KIND, bundle_from_checkpoint
from .model import DeltaGRUClassifier, exact_run, last_step
from .prune import ColumnBalancedDropout

__all__ = ["TrainConfig", "train_model", "train", "checkpoint_metrics_path", "phase_epochs",
           "majority_baseline", "mean_baseline", "target_statistics", "exact_metrics",
           "weight_sparsity"]


def checkpoint_metrics_path(ckpt: Path) -> Path:
    """CKPT.pt -> CKPT.metrics.json (same folder, same stem)."""
    ckpt = Path(ckpt)
    return ckpt.with_name(ckpt.stem + ".metrics.json")


def _normalise(x, lengths, mean, scale):
    valid = (np.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
    return np.where(valid, (x - mean) / scale, 0.0)


def _batches(n, batch_size, rng):
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def phase_epochs(epochs: int, min_steps: int, n: int, batch_size: int) -> int:
    """Epochs a phase runs: ``epochs``, raised until it makes at least ``min_steps`` optimiser
    steps over ``n`` sequences in batches of ``batch_size``; 0 stays 0 (the phase is skipped).
    """
    if epochs <= 0:
        return 0
    per_epoch = -(-n // batch_size)
    return max(epochs, -(-min_steps // per_epoch))


def target_statistics(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Regression: per-output mean and standard deviation (O,) of the training targets that
    count (valid steps of per-step targets; every row of last-step ones). A constant output
    gets scale 1."""
    y = ds.y_train
    if y.ndim == 3:
        y = y[np.arange(y.shape[1])[None, :] < ds.len_train[:, None]]
    std = y.std(axis=0)
    return y.mean(axis=0), np.where(std > 1e-12, std, 1.0)


def _mse(out, y, lengths):
    """Mean squared error over the valid steps (per-step (N, T, O)) or sequences ((N, O))."""
    if out.dim() == 2:
        return ((out - y) ** 2).mean()
    y = y[:, :out.shape[1]]
    valid = (torch.arange(out.shape[1])[None, :] < torch.as_tensor(lengths)[:, None])[..., None]
    return torch.where(valid, (out - y) ** 2, 0.0).sum() / (valid.sum() * out.shape[-1])


def _run_epochs(model, x, lengths, y, epochs, lr, batch_size, l1, rng, desc, progress,
                regression: bool = False, before_step=None, after_step=None) -> int:
    """Adam at a constant ``lr`` over ``epochs`` shuffled epochs; returns the optimiser steps.
    ``regression``: mean squared error (:func:`_mse`) instead of the cross-entropy.
    ``before_step(step)`` runs before each step's forward pass, ``after_step()`` after each
    optimiser step (the column-balanced pruning's hooks, :mod:`drnn_train.prune`)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = _mse if regression else (lambda out, y_, _L, ce=nn.CrossEntropyLoss(): ce(out, y_))
    H = sum(g.hidden_size for g in model.grus)      # the L1 penalty is per Δh element
    step = 0
    # disable=None: no bar when stderr is not a terminal (a redirected log stays readable)
    bar = tqdm(range(epochs), desc=desc, disable=None if progress else True, leave=False)
    for _ in bar:
        model.train()
        total, count = 0.0, 0
        for idx in _batches(len(y), batch_size, rng):
            L = lengths[idx]
            T = int(L.max())                  # trim the batch's padding
            if before_step is not None:
                before_step(step)
            logits, stats = model(x[idx, :T], L)
            loss = loss_fn(logits, y[idx], L)
            if l1:
                loss = loss + l1 * stats["l1_dh"] / (float(L.sum()) * H)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if after_step is not None:
                after_step()
            step += 1
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        bar.set_postfix(loss=f"{total / count:.4f}")
    return step


def _accuracy(model, x, lengths, y) -> tuple[float, dict]:
    model.eval()
    with torch.no_grad():
        logits, stats = model(x, lengths)
    steps = float(lengths.sum())
    I = sum(g.input_size for g in model.grus)
    H = sum(g.hidden_size for g in model.grus)
    return (float((logits.argmax(-1) == y).double().mean()),
            {"sparsity_dx": 1 - float(stats["nnz_dx"].sum()) / (steps * I),
             "sparsity_dh": 1 - float(stats["nnz_dh"].sum()) / (steps * H)})


def _float_regression(model, x, lengths, ds: Dataset, t_mean, t_scale) -> tuple[dict, dict]:
    """Regression errors (target units) and sparsity of the trainer's model on the test split."""
    model.eval()
    with torch.no_grad():
        out, stats = model(x, lengths)
    pred = out.numpy() * t_scale + t_mean
    if ds.per_step:
        pred = np.where((np.arange(pred.shape[1])[None, :] < lengths[:, None])[..., None],
                        pred, 0.0)
    steps = float(lengths.sum())
    I = sum(g.input_size for g in model.grus)
    H = sum(g.hidden_size for g in model.grus)
    return (regression_errors(pred, ds.y_test, lengths),
            {"sparsity_dx": 1 - float(stats["nnz_dx"].sum()) / (steps * I),
             "sparsity_dh": 1 - float(stats["nnz_dh"].sum()) / (steps * H)})


def _checkpoint(model, cfg, ds, mean, scale, metrics, targets=None, balance=None) -> dict:
    """The checkpoint dict (:mod:`drnn_train.export`). ``targets``: regression's (mean, scale)
    of the targets; the regression keys are added only then, so a classifier's checkpoint is
    what it always was."""
    hs = cfg.hidden_sizes()
    regression = {} if targets is None else {
        "task": "regression", "outputs": list(ds.outputs), "per_step": ds.per_step,
        "target_mean": [float(v) for v in targets[0]],
        "target_scale": [float(v) for v in targets[1]]}
    return {
        **({"cell": cfg.cell} if cfg.cell != "gru" else {}),
        "kind": CHECKPOINT_KIND, "version": 1 if len(hs) == 1 else 2, "config": asdict(cfg),
        "input_size": ds.input_size, "hidden_size": hs[-1], "num_classes": ds.num_outputs,
        "num_layers": len(hs), "hidden_sizes": hs,
        "formats": cfg.formats().to_dict(),
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "input_mean": [float(v) for v in mean], "input_scale": [float(v) for v in scale],
        "classes": None if ds.classes is None else list(ds.classes), "dataset": cfg.dataset,
        "metrics": metrics, **regression,
        **({} if balance is None else {"balance": balance}),
    }


def majority_baseline(y_test: np.ndarray, classes: list, exact_acc: float) -> dict:
    """The best constant classifier on the test split, and whether ``exact_acc`` beats it.

    Returns ``majority_class`` (label), ``majority_accuracy`` (its share of the test split,
    the accuracy of always answering it) and ``no_better_than_majority`` (exact_acc <= that):
    a model that does not beat it has learned nothing usable, whatever its accuracy looks like.
    """
    counts = np.bincount(np.asarray(y_test), minlength=len(classes))
    top = int(np.argmax(counts))
    share = float(counts[top] / counts.sum())
    return {"majority_class": str(classes[top]), "majority_accuracy": share,
            "no_better_than_majority": bool(exact_acc <= share)}


def exact_metrics(bundle, ds: Dataset, split: str = "test") -> dict:
    """Hardware-exact accuracy (classification) or regression errors (``rmse``,
    ``rmse_per_output``, ``target_std``, ``nrmse``: :func:`~drnn_train.evaluate.
    regression_errors`, target units) and sparsity of a bundle on a split (trainer exact
    mode, no cycle model); ``layer_sparsity_dx``/``_dh`` for a stacked bundle."""
    x, L, y = (getattr(ds, f"{k}_{split}") for k in ("x", "len", "y"))
    valid = (np.arange(x.shape[1])[None, :] < L[:, None])[..., None]
    codes = np.where(valid, bundle.quantize_input(x, where=ds.name), 0)
    h, nnz_dx, nnz_dh, layer_dx, layer_dh = exact_run(bundle, codes, L, per_layer=True)
    if ds.is_regression:
        score = regression_errors(head_outputs(bundle, h.numpy(), L, ds.per_step), y, L)
    else:
        h_last = last_step(h, torch.as_tensor(L)).numpy() * bundle.formats.act.lsb
        logits = h_last @ bundle.head_w.T + bundle.head_b
        score = {"accuracy": float(np.mean(logits.argmax(-1) == y))}
    steps = float(L.sum())
    # Stacked layers: the share of zero deltas over all layers' inputs (hidden states).
    I = sum(ly.input_size for ly in bundle.layers)
    H = sum(ly.hidden_size for ly in bundle.layers)
    out = {**score,
           "sparsity_dx": 1 - float(nnz_dx.sum()) / (steps * I),
           "sparsity_dh": 1 - float(nnz_dh.sum()) / (steps * H)}
    if bundle.num_layers > 1:
        out["layer_sparsity_dx"] = [1 - float(layer_dx[..., l].sum()) / (steps * ly.input_size)
                                    for l, ly in enumerate(bundle.layers)]
        out["layer_sparsity_dh"] = [1 - float(layer_dh[..., l].sum()) / (steps * ly.hidden_size)
                                    for l, ly in enumerate(bundle.layers)]
    return out


def train(cfg: TrainConfig, dataset: Dataset | None = None, progress: bool = True,
          init_state: dict | None = None, task: str | None = None) -> tuple[dict, dict]:
    """Train per ``cfg``; returns (checkpoint dict, metrics). Nothing is written.

    ``init_state``: start the fine-tuning from this float model state (skips phase 1; used by
    the threshold sweep so every threshold fine-tunes the same float model). The task is the
    data set's; ``task`` is passed to :func:`~drnn_train.datasets.load_dataset` when
    ``dataset`` is None.

    Metrics of a classifier: ``float_accuracy``, ``qat_accuracy``, ``exact_accuracy``,
    ``exact_train_accuracy`` and :func:`majority_baseline`'s. Of a regression model (``task``
    "regression", ``outputs``, ``per_step``): ``float_rmse``/``float_nrmse``/
    ``float_rmse_per_output``, ``qat_rmse``/``qat_nrmse``, ``exact_rmse``/``exact_nrmse``/
    ``exact_rmse_per_output``, ``target_std``, ``exact_train_rmse`` (RMSE in the targets'
    units, nrmse unit-free: :func:`~drnn_train.evaluate.regression_errors`), and
    ``mean_baseline_nrmse`` (predicting the training targets' mean on the test split) with
    ``no_better_than_mean`` (exact_nrmse ≥ it). Both: sparsity (float/QAT/exact), steps,
    epochs, seconds, config, ``weight_sparsity`` (zero weight codes of the bundle's W_x, W_h).
    With ``cfg.spatial_sparsity`` > 0 also ``spatial_sparsity``, ``balance_rows``,
    ``kept_per_slice`` and ``blocks`` (per layer), ``spatial_epochs_run``, ``spatial_steps``
    and ``pruned_float_accuracy`` (regression: ``pruned_float_rmse``/``_nrmse``): the float
    model with the fixed mask, before the fine-tuning; the checkpoint then holds ``balance``.
    """
    t0 = time.monotonic()
    torch.set_num_threads(cfg.threads)
    ds = dataset if dataset is not None else load_dataset(cfg.dataset, task)
    regression = ds.is_regression
    fmts = cfg.formats()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    mean, scale = input_statistics(ds.x_train, ds.len_train)
    xtr = torch.as_tensor(_normalise(ds.x_train, ds.len_train, mean, scale))
    xte = torch.as_tensor(_normalise(ds.x_test, ds.len_test, mean, scale))
    ltr, lte = ds.len_train, ds.len_test
    targets = None
    if regression:
        targets = t_mean, t_scale = target_statistics(ds)
        ytr = torch.as_tensor((ds.y_train - t_mean) / t_scale)
        if ds.per_step:     # padding stays 0 (it is masked out of the loss anyway)
            ytr = torch.where(torch.as_tensor(ltr)[:, None, None] >
                              torch.arange(ytr.shape[1])[None, :, None], ytr, 0.0)
        yte = None
    else:
        ytr, yte = torch.as_tensor(ds.y_train), torch.as_tensor(ds.y_test)

    model = DeltaGRUClassifier(ds.input_size, cfg.hidden_sizes(), ds.num_outputs, fmts,
                               per_step=ds.per_step, cell=cfg.cell)
    n = len(ytr)
    epochs = phase_epochs(cfg.epochs, cfg.min_steps, n, cfg.batch_size)
    ft_epochs = phase_epochs(cfg.finetune_epochs, cfg.finetune_min_steps, n, cfg.batch_size)
    steps = ft_steps = 0
    if init_state is None:
        steps = _run_epochs(model, xtr, ltr, ytr, epochs, cfg.lr, cfg.batch_size, 0.0, rng,
                            f"float {cfg.cell.upper()}", progress, regression)
    else:
        model.load_state_dict(init_state)
        epochs = 0

    def score(m):
        return _float_regression(m, xte, lte, ds, t_mean, t_scale) if regression \
            else _accuracy(m, xte, lte, yte)

    float_score, _ = score(model)
    float_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    # Column-balanced targeted dropout (drnn_train.prune): annealed, then the mask fixed.
    cbtd = balance = pruned_score = None
    sp_epochs = sp_steps = 0
    if cfg.spatial_sparsity > 0:
        sp_epochs = phase_epochs(cfg.spatial_epochs, cfg.spatial_min_steps, n, cfg.batch_size)
        cbtd = ColumnBalancedDropout(model, cfg.spatial_sparsity, cfg.balance_rows,
                                     sp_epochs * -(-n // cfg.batch_size),
                                     rate=cfg.targeted_dropout, anneal=cfg.anneal,
                                     seed=cfg.seed)
        sp_steps = _run_epochs(model, xtr, ltr, ytr, sp_epochs, cfg.lr, cfg.batch_size, 0.0,
                               rng, "CBTD", progress, regression, before_step=cbtd.before_step)
        cbtd.fix()
        pruned_score, _ = score(model)
        balance = {"rows": cfg.balance_rows, "gamma": cfg.spatial_sparsity}

    model.set_delta(*cfg.thetas(), quantize=True)
    ft_steps = _run_epochs(model, xtr, ltr, ytr, ft_epochs, cfg.finetune_lr, cfg.batch_size,
                           cfg.l1, rng, "delta+QAT", progress, regression,
                           after_step=None if cbtd is None else cbtd.after_step)
    qat_score, qat_sparsity = score(model)

    if regression:
        metrics = {"dataset": ds.name, "task": "regression", "outputs": list(ds.outputs),
                   "per_step": ds.per_step,
                   "float_rmse": float_score["rmse"], "float_nrmse": float_score["nrmse"],
                   "float_rmse_per_output": float_score["rmse_per_output"],
                   "qat_rmse": qat_score["rmse"], "qat_nrmse": qat_score["nrmse"]}
    else:
        metrics = {"dataset": ds.name, "float_accuracy": float_score,
                   "qat_accuracy": qat_score}
    if cfg.cell != "gru":
        metrics["cell"] = cfg.cell
    metrics.update({"qat_sparsity_dx": qat_sparsity["sparsity_dx"],
                    "qat_sparsity_dh": qat_sparsity["sparsity_dh"]})
    ckpt = _checkpoint(model, cfg, ds, mean, scale, metrics, targets, balance)
    bundle, saturated = bundle_from_checkpoint(ckpt)
    if cbtd is not None:
        if regression:
            metrics.update(pruned_float_rmse=pruned_score["rmse"],
                           pruned_float_nrmse=pruned_score["nrmse"])
        else:
            metrics["pruned_float_accuracy"] = pruned_score
        metrics.update(spatial_sparsity=cfg.spatial_sparsity, balance_rows=cfg.balance_rows,
                       kept_per_slice=[ly.balance.kept for ly in bundle.layers],
                       blocks=[-(-ly.hidden_size // cfg.balance_rows) for ly in bundle.layers],
                       spatial_epochs_run=sp_epochs, spatial_steps=sp_steps)
    metrics["weight_sparsity"] = weight_sparsity(bundle)
    ex = exact_metrics(bundle, ds, "test")
    ex_train = exact_metrics(bundle, ds, "train")
    if regression:
        metrics.update({"exact_rmse": ex["rmse"], "exact_nrmse": ex["nrmse"],
                        "exact_rmse_per_output": ex["rmse_per_output"],
                        "target_std": ex["target_std"], "exact_train_rmse": ex_train["rmse"]})
    else:
        metrics["exact_accuracy"] = ex["accuracy"]
    metrics.update({
        "sparsity_dx": ex["sparsity_dx"], "sparsity_dh": ex["sparsity_dh"],
        **({} if regression else {"exact_train_accuracy": ex_train["accuracy"]}),
        **{k: ex[k] for k in ("layer_sparsity_dx", "layer_sparsity_dh") if k in ex},
        "saturated_on_export": saturated, "config": asdict(cfg), "formats": fmts.to_dict(),
        "train_sequences": int(len(ds.y_train)), "test_sequences": int(len(ds.y_test)),
        "epochs_run": epochs, "steps": steps, "finetune_epochs_run": ft_epochs,
        "finetune_steps": ft_steps,
        "seconds": round(time.monotonic() - t0, 1),
    })
    if regression:
        metrics.update(mean_baseline(ds, t_mean, ex["nrmse"]))
    else:
        metrics.update(majority_baseline(ds.y_test, ds.classes, ex["accuracy"]))
    ckpt["metrics"] = metrics
    ckpt["float_state"] = float_state
    return ckpt, metrics


def mean_baseline(ds: Dataset, train_mean: np.ndarray, exact_nrmse: float) -> dict:
    """Regression's counterpart of :func:`majority_baseline`: the nrmse on the test split of
    always predicting the training targets' mean (``mean_baseline_nrmse``, about 1), and
    ``no_better_than_mean`` (``exact_nrmse`` ≥ it): such a model has learned nothing usable."""
    y = ds.y_test
    pred = np.broadcast_to(np.asarray(train_mean, np.float64), y.shape)
    base = regression_errors(pred, y, ds.len_test)["nrmse"]
    return {"mean_baseline_nrmse": base, "no_better_than_mean": bool(exact_nrmse >= base)}


def train_model(out, dataset: str | Dataset = "japanese-vowels", progress: bool = True,
                task: str | None = None, **options) -> tuple[Path, dict]:
    """Train and write ``out`` (checkpoint) and ``out``.metrics.json; returns (path, metrics).

    ``dataset``: a name or .npz path (recorded in the checkpoint and the bundle's
    ``extra["dataset"]`` so that evaluate/bench can load it again: the name, or the absolute
    path), or a loaded :class:`Dataset` (recorded by its name). ``task``: classification or
    regression, for :func:`~drnn_train.datasets.load_dataset` (None: the data set's own).
    ``options`` are :class:`TrainConfig` fields (hidden, theta_x, theta_h, epochs, ...).
    """
    if isinstance(dataset, Dataset):
        ds, ref = dataset, dataset.name
    else:
        ds = load_dataset(dataset, task)
        # What load_dataset needs to find the data again: the name, or the absolute path.
        ref = dataset if dataset in DATASETS else str(Path(dataset).resolve())
    cfg = replace(TrainConfig(), dataset=ref, **options)
    ckpt, metrics = train(cfg, ds, progress=progress)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    checkpoint_metrics_path(out).write_text(json.dumps(metrics, indent=1) + "\n")
    return out, metrics
