"""Training: float GRU pre-training, then delta-threshold + quantisation-aware fine-tuning.

Phase 1 trains the layer as a float GRU (thresholds 0, no quantisation). Phase 2 switches on the
thresholds Θx, Θh (forward pass, straight-through gradient) and fake quantisation to the
accelerator's formats, optionally with an L1 penalty on the kept Δh, and fine-tunes at a lower
learning rate. The result is evaluated in the hardware-exact mode (:func:`~drnn_train.model.
exact_run` on the exported integer bundle), whose accuracy is what the accelerator delivers.

Everything is seeded: the same configuration and seed give the same metrics.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from drnn_hw.numerics import Formats

from .datasets import DATASETS, Dataset, input_statistics, load_dataset
from .export import CHECKPOINT_KIND, bundle_from_checkpoint
from .model import DeltaGRUClassifier, exact_run, last_step

__all__ = ["TrainConfig", "train_model", "train", "checkpoint_metrics_path", "phase_epochs",
           "majority_baseline"]


@dataclass
class TrainConfig:
    """One training run's recipe; the defaults are ``drnn train``'s.

    Each phase runs ``epochs`` (``finetune_epochs``) epochs, raised to make at least
    ``min_steps`` (``finetune_min_steps``) optimiser steps (:func:`phase_epochs`; 0 epochs skips
    the phase). The schedule used to count epochs only, so a small data set got few updates:
    GunPoint's 50 sequences are 2 batches, and ``--epochs 20`` made 40 steps and stayed at
    chance (loss ln 2). The floors are JapaneseVowels' own step counts (270 sequences = 9
    batches: 40 epochs = 360 steps, 20 = 180), so the recipe the thresholds were chosen with is
    unchanged there, and every data set now gets at least as many updates as it had.

    Measured (H=64, Θx=Θh=0.5, seed 0, 1 thread; ``drnn train --dataset NAME``; seconds are
    wall clock on a shared, loaded 2-core machine and only indicative: the two JapaneseVowels
    rows are the same computation, the floors do not bind there)::

        recipe              data set            float %   exact %   steps    seconds
        epochs only         japanese-vowels      97.57     97.57   360+180     12.6
        floor 360/180       japanese-vowels      97.57     97.57   360+180     25.9
        epochs only         basic-motions        95.00     77.50    80+40      32.1
        floor 360/180       basic-motions       100.00     80.00   360+180    151.7
        epochs only         gun-point            60.67     55.33    80+40      26.3
        epochs only, -e 20  gun-point            50.67     48.00    40+40      22.1
        floor 360/180       gun-point            98.67     56.00   360+180    134.9
        epochs only         italy-power-demand   95.53     81.15   120+60       8.5
        floor 360/180       italy-power-demand   96.21     93.29   360+180     38.5

    Alternatives measured and not taken: a cosine learning-rate decay over each phase
    (GunPoint 98.00 / 51.33, JapaneseVowels 98.11 / 97.30: no better exact accuracy); a
    fine-tuning floor of 360 steps (JapaneseVowels 97.57 / 96.76: worse; GunPoint exact 69.33
    only with 720 fine-tuning steps). GunPoint's exact accuracy is limited by Θ = 0.5, not by
    training: its one smooth input (normalised) changes by 0.006 per step in the median and by
    0.5 or more on 0.05 % of steps, so Δx is rarely kept; at Θx = Θh = 0.1 the same recipe
    gives 98.67 / 88.00.
    """

    dataset: str = "japanese-vowels"
    hidden: int = 64
    # Θ = 0.5 is the largest equal threshold whose hardware-exact JapaneseVowels accuracy
    # stayed within 1.5 points of the float GRU for seeds 0, 1, 2 (0.6 lost 1.9 on seed 0;
    # python -m drnn_train.sweep).
    theta_x: float = 0.5
    theta_h: float = 0.5
    epochs: int = 40            # float GRU pre-training
    finetune_epochs: int = 20   # delta thresholds + quantisation-aware fine-tuning
    min_steps: int = 360        # fewest pre-training optimiser steps (see the table above)
    finetune_min_steps: int = 180
    lr: float = 5e-3
    finetune_lr: float = 1e-3
    batch_size: int = 32
    l1: float = 0.0             # weight of the L1 penalty on kept Δh (per element and step)
    weight_bits: int = 8
    weight_frac: int = 6
    seed: int = 0
    # Intra-op threads. The matrices are small (batch x 3H): one thread is fastest, and with
    # two on a shared, loaded machine OpenMP's spin-waiting made a batch ~15x slower.
    threads: int = 1

    def formats(self) -> Formats:
        return Formats(w_bits=self.weight_bits, w_frac=self.weight_frac)


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
    H = model.rnn.hidden_size
    step = 0
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
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
    return (float((logits.argmax(-1) == y).double().mean()),
            {"sparsity_dx": 1 - float(stats["nnz_dx"].sum()) / (steps * model.rnn.input_size),
             "sparsity_dh": 1 - float(stats["nnz_dh"].sum()) / (steps * model.rnn.hidden_size)})


def _checkpoint(model, cfg, ds, mean, scale, metrics) -> dict:
    return {
        "kind": CHECKPOINT_KIND, "version": 1, "config": asdict(cfg),
        "input_size": ds.input_size, "hidden_size": cfg.hidden, "num_classes": ds.num_classes,
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
    h, nnz_dx, nnz_dh = exact_run(bundle, codes, L)
    h_last = last_step(h, torch.as_tensor(L)).numpy() * bundle.formats.act.lsb
    logits = h_last @ bundle.head_w.T + bundle.head_b
    steps = float(L.sum())
    return {"accuracy": float(np.mean(logits.argmax(-1) == y)),
            "sparsity_dx": 1 - float(nnz_dx.sum()) / (steps * bundle.input_size),
            "sparsity_dh": 1 - float(nnz_dh.sum()) / (steps * bundle.hidden_size)}


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

    model = DeltaGRUClassifier(ds.input_size, cfg.hidden, ds.num_classes, fmts)
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

    model.rnn.theta_x, model.rnn.theta_h, model.rnn.quantize = cfg.theta_x, cfg.theta_h, True
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
