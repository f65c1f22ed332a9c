"""Training: float GRU pre-training, then delta-threshold + quantisation-aware fine-tuning.

Phase 1 trains the layers (L ≥ 1, stacked) as a float GRU (thresholds 0, no quantisation). Phase 2 switches on the
thresholds Θx, Θh (forward pass, straight-through gradient) and fake quantisation to the
accelerator's formats, optionally with an L1 penalty on the kept Δh, and fine-tunes at a lower
learning rate. The result is evaluated in the hardware-exact mode (:func:`~drnn_train.model.
exact_run` on the exported integer bundle), whose accuracy is what the accelerator delivers.

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


from .config import TrainConfig
from .datasets import DATASETS, Dataset, input_statistics, load_dataset
from .export import CHECKPOINT_KIND, bundle_from_checkpoint
from .model import DeltaGRUClassifier, exact_run, last_step

__all__ = ["TrainConfig", "train_model", "train", "checkpoint_metrics_path", "phase_epochs",
           "majority_baseline"]


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


def _run_epochs(model, x, lengths, y, epochs, lr, batch_size, l1, rng, desc, progress) -> int:
    """Adam at a constant ``lr`` over ``epochs`` shuffled epochs; returns the optimiser steps."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
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
            logits, stats = model(x[idx, :T], L)
            loss = loss_fn(logits, y[idx])
            if l1:
                loss = loss + l1 * stats["l1_dh"] / (float(L.sum()) * H)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
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


def _checkpoint(model, cfg, ds, mean, scale, metrics) -> dict:
    hs = cfg.hidden_sizes()
    return {
        "kind": CHECKPOINT_KIND, "version": 1 if len(hs) == 1 else 2, "config": asdict(cfg),
        "input_size": ds.input_size, "hidden_size": hs[-1], "num_classes": ds.num_classes,
        "num_layers": len(hs), "hidden_sizes": hs,
        "formats": cfg.formats().to_dict(),
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "input_mean": [float(v) for v in mean], "input_scale": [float(v) for v in scale],
        "classes": list(ds.classes), "dataset": cfg.dataset, "metrics": metrics,
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


def exact_accuracy(bundle, ds: Dataset, split: str = "test") -> dict:
    """Hardware-exact accuracy and sparsity of a bundle (trainer exact mode, no cycle model)."""
    x, L, y = (getattr(ds, f"{k}_{split}") for k in ("x", "len", "y"))
    valid = (np.arange(x.shape[1])[None, :] < L[:, None])[..., None]
    codes = np.where(valid, bundle.quantize_input(x, where=ds.name), 0)
    h, nnz_dx, nnz_dh, layer_dx, layer_dh = exact_run(bundle, codes, L, per_layer=True)
    h_last = last_step(h, torch.as_tensor(L)).numpy() * bundle.formats.act.lsb
    logits = h_last @ bundle.head_w.T + bundle.head_b
    steps = float(L.sum())
    # Stacked layers: the share of zero deltas over all layers' inputs (hidden states).
    I = sum(ly.input_size for ly in bundle.layers)
    H = sum(ly.hidden_size for ly in bundle.layers)
    out = {"accuracy": float(np.mean(logits.argmax(-1) == y)),
           "sparsity_dx": 1 - float(nnz_dx.sum()) / (steps * I),
           "sparsity_dh": 1 - float(nnz_dh.sum()) / (steps * H)}
    if bundle.num_layers > 1:
        out["layer_sparsity_dx"] = [1 - float(layer_dx[..., l].sum()) / (steps * ly.input_size)
                                    for l, ly in enumerate(bundle.layers)]
        out["layer_sparsity_dh"] = [1 - float(layer_dh[..., l].sum()) / (steps * ly.hidden_size)
                                    for l, ly in enumerate(bundle.layers)]
    return out


def train(cfg: TrainConfig, dataset: Dataset | None = None, progress: bool = True,
          init_state: dict | None = None) -> tuple[dict, dict]:
    """Train per ``cfg``; returns (checkpoint dict, metrics). Nothing is written.

    ``init_state``: start the fine-tuning from this float model state (skips phase 1; used by
    the threshold sweep so every threshold fine-tunes the same float model).
    """
    t0 = time.monotonic()
    torch.set_num_threads(cfg.threads)
    ds = dataset if dataset is not None else load_dataset(cfg.dataset)
    fmts = cfg.formats()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    mean, scale = input_statistics(ds.x_train, ds.len_train)
    xtr = torch.as_tensor(_normalise(ds.x_train, ds.len_train, mean, scale))
    xte = torch.as_tensor(_normalise(ds.x_test, ds.len_test, mean, scale))
    ltr, lte = ds.len_train, ds.len_test
    ytr, yte = torch.as_tensor(ds.y_train), torch.as_tensor(ds.y_test)

    model = DeltaGRUClassifier(ds.input_size, cfg.hidden_sizes(), ds.num_classes, fmts)
    n = len(ytr)
    epochs = phase_epochs(cfg.epochs, cfg.min_steps, n, cfg.batch_size)
    ft_epochs = phase_epochs(cfg.finetune_epochs, cfg.finetune_min_steps, n, cfg.batch_size)
    steps = ft_steps = 0
    if init_state is None:
        steps = _run_epochs(model, xtr, ltr, ytr, epochs, cfg.lr, cfg.batch_size, 0.0, rng,
                            "float GRU", progress)
    else:
        model.load_state_dict(init_state)
        epochs = 0
    float_acc, _ = _accuracy(model, xte, lte, yte)
    float_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    model.set_delta(*cfg.thetas(), quantize=True)
    ft_steps = _run_epochs(model, xtr, ltr, ytr, ft_epochs, cfg.finetune_lr, cfg.batch_size,
                           cfg.l1, rng, "delta+QAT", progress)
    qat_acc, qat_sparsity = _accuracy(model, xte, lte, yte)

    metrics = {"dataset": ds.name, "float_accuracy": float_acc, "qat_accuracy": qat_acc,
               "qat_sparsity_dx": qat_sparsity["sparsity_dx"],
               "qat_sparsity_dh": qat_sparsity["sparsity_dh"]}
    ckpt = _checkpoint(model, cfg, ds, mean, scale, metrics)
    bundle, saturated = bundle_from_checkpoint(ckpt)
    ex = exact_accuracy(bundle, ds, "test")
    ex_train = exact_accuracy(bundle, ds, "train")
    metrics.update({
        "exact_accuracy": ex["accuracy"], "sparsity_dx": ex["sparsity_dx"],
        "sparsity_dh": ex["sparsity_dh"], "exact_train_accuracy": ex_train["accuracy"],
        **{k: ex[k] for k in ("layer_sparsity_dx", "layer_sparsity_dh") if k in ex},
        "saturated_on_export": saturated, "config": asdict(cfg), "formats": fmts.to_dict(),
        "train_sequences": int(len(ds.y_train)), "test_sequences": int(len(ds.y_test)),
        "epochs_run": epochs, "steps": steps, "finetune_epochs_run": ft_epochs,
        "finetune_steps": ft_steps,
        "seconds": round(time.monotonic() - t0, 1),
    })
    metrics.update(majority_baseline(ds.y_test, ds.classes, ex["accuracy"]))
    ckpt["metrics"] = metrics
    ckpt["float_state"] = float_state
    return ckpt, metrics


def train_model(out, dataset: str | Dataset = "japanese-vowels", progress: bool = True,
                **options) -> tuple[Path, dict]:
    """Train and write ``out`` (checkpoint) and ``out``.metrics.json; returns (path, metrics).

    ``dataset``: a name or .npz path (recorded in the checkpoint and the bundle's
    ``extra["dataset"]`` so that evaluate/bench can load it again: the name, or the absolute
    path), or a loaded :class:`Dataset` (recorded by its name).
    ``options`` are :class:`TrainConfig` fields (hidden, theta_x, theta_h, epochs, ...).
    """
    if isinstance(dataset, Dataset):
        ds, ref = dataset, dataset.name
    else:
        ds = load_dataset(dataset)
        # What load_dataset needs to find the data again: the name, or the absolute path.
        ref = dataset if dataset in DATASETS else str(Path(dataset).resolve())
    cfg = replace(TrainConfig(), dataset=ref, **options)
    ckpt, metrics = train(cfg, ds, progress=progress)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, out)
    checkpoint_metrics_path(out).write_text(json.dumps(metrics, indent=1) + "\n")
    return out, metrics
