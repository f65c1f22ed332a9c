"""Hardware-exact evaluation of a bundle on a data set: golden model + host head + cycle model."""

from __future__ import annotations

import numpy as np

from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import CoreShape, step_cycles
from drnn_hw.errors import UserError
from drnn_hw.golden import run
from drnn_hw.numerics import dequantize

from .datasets import Dataset, load_dataset

__all__ = ["evaluate_bundle", "head_logits"]


def head_logits(bundle: ModelBundle, h_codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The host's linear head on h (codes) at each sequence's last valid step."""
    last = h_codes[np.arange(len(lengths)), np.asarray(lengths) - 1]
    return dequantize(last, bundle.formats.act) @ np.asarray(bundle.head_w, np.float64).T \
        + np.asarray(bundle.head_b, np.float64)


def evaluate_bundle(bundle: ModelBundle, dataset: Dataset | str, shape: CoreShape | None = None,
                    split: str = "test") -> dict:
    """Accuracy of the bundle (golden model, bit-exact with the hardware) on a data split.

    Returns accuracy, sparsity_dx / sparsity_dh (fraction of zero deltas over valid steps),
    mean_cycles (cycle model for ``shape``), mean_cycles_dense (the same core with every delta
    kept), speedup (dense / mean cycles), steps, sequences, mean_nnz_dx / mean_nnz_dh, core;
    theta_x / theta_h for one layer. A stacked bundle: sparsity and nnz over all layers, cycles
    of the layers in sequence (:func:`drnn_hw.golden.run`), and ``layers``: per layer
    input_size, hidden_size, theta_x, theta_h, sparsity_dx, sparsity_dh.
    ``dataset`` is a loaded :class:`Dataset` or a name / .npz path.
    """
    if isinstance(dataset, (str, bytes)) or hasattr(dataset, "__fspath__"):
        dataset = load_dataset(str(dataset))
    if not bundle.has_head:
        raise UserError(f"bundle {bundle.name!r} has no classification head, and accuracy "
                        "needs one")
    x = getattr(dataset, f"x_{split}")
    lengths = getattr(dataset, f"len_{split}")
    y = getattr(dataset, f"y_{split}")
    if x.shape[2] != bundle.input_size:
        raise UserError(f"data set {dataset.name}: {x.shape[2]} input features, the model "
                        f"expects {bundle.input_size}")
    if bundle.head_w.shape[0] != dataset.num_classes:
        raise UserError(f"data set {dataset.name}: {dataset.num_classes} classes, the model's "
                        f"head has {bundle.head_w.shape[0]}")
    shape = shape or CoreShape()
    valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
    codes = np.where(valid[..., None], bundle.quantize_input(x, where=dataset.name), 0)
    res = run(bundle, codes, lengths, shape)
    pred = head_logits(bundle, res.h, lengths).argmax(-1)
    steps = int(lengths.sum())
    nnz_dx, nnz_dh, cycles = res.flat("nnz_dx"), res.flat("nnz_dh"), res.flat("cycles")
    # Stacked layers: sparsity over all layers' inputs (hidden states); the dense step runs
    # every layer with every delta kept, layers in sequence (the golden model's schedule).
    I = sum(ly.input_size for ly in bundle.layers)
    H = sum(ly.hidden_size for ly in bundle.layers)
    dense = sum(step_cycles(np.ones(ly.input_size, bool), np.ones(ly.hidden_size, bool), shape)
                for ly in bundle.layers)
    out = {
        "dataset": dataset.name, "split": split,
        "accuracy": float(np.mean(pred == y)),
        "sparsity_dx": float(1 - nnz_dx.sum() / (steps * I)),
        "sparsity_dh": float(1 - nnz_dh.sum() / (steps * H)),
        "mean_nnz_dx": float(nnz_dx.mean()), "mean_nnz_dh": float(nnz_dh.mean()),
        "mean_cycles": float(cycles.mean()), "mean_cycles_dense": float(dense),
        "speedup": float(dense / cycles.mean()),
        "steps": steps, "sequences": int(len(lengths)),
        "core": shape.to_dict(),
    }
    lsb = bundle.formats.act.lsb
    if bundle.num_layers == 1:
        out.update(theta_x=bundle.theta_x * lsb, theta_h=bundle.theta_h * lsb)
    else:
        out["layers"] = [
            {"input_size": ly.input_size, "hidden_size": ly.hidden_size,
             "theta_x": ly.theta_x * lsb, "theta_h": ly.theta_h * lsb,
             "sparsity_dx": float(1 - res.flat("layer_nnz_dx")[:, l].sum()
                                  / (steps * ly.input_size)),
             "sparsity_dh": float(1 - res.flat("layer_nnz_dh")[:, l].sum()
                                  / (steps * ly.hidden_size))}
            for l, ly in enumerate(bundle.layers)]
    return out
