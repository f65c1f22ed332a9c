"""Hardware-exact evaluation of a bundle on a data set: golden model + host head + cycle model.

Classification: accuracy of the argmax of the head on h at each sequence's last valid step.
Regression: the head's outputs (in the target's units, see :mod:`drnn_hw.bundle`) at every
valid step (per-step targets (N, T, O)) or at the last one ((N, O)), and their root mean
square error (:func:`regression_errors`).
"""

from __future__ import annotations

import numpy as np

from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import LAYER_GAP, CoreShape, step_cycles, streamed_prescan
from drnn_hw.errors import UserError
from drnn_hw.golden import run
from drnn_hw.numerics import dequantize
from drnn_hw.spatial import bundle_spatial_cycles, delta_masks

from .datasets import Dataset, load_dataset

__all__ = ["evaluate_bundle", "head_logits", "head_outputs", "regression_errors",
           "check_targets"]


def head_logits(bundle: ModelBundle, h_codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The host's linear head on h (codes) at each sequence's last valid step."""
    last = h_codes[np.arange(len(lengths)), np.asarray(lengths) - 1]
    return dequantize(last, bundle.formats.act) @ np.asarray(bundle.head_w, np.float64).T \
        + np.asarray(bundle.head_b, np.float64)


def head_outputs(bundle: ModelBundle, h_codes: np.ndarray, lengths: np.ndarray,
                 per_step: bool) -> np.ndarray:
    """The host's linear head on the dequantised h codes (N, T, H): (N, T, O) at every step
    (0 past each length) when ``per_step``, else (N, O) at each sequence's last valid step."""
    if not per_step:
        return head_logits(bundle, h_codes, lengths)
    h = dequantize(np.asarray(h_codes), bundle.formats.act)
    out = h @ np.asarray(bundle.head_w, np.float64).T + np.asarray(bundle.head_b, np.float64)
    valid = np.arange(h.shape[1])[None, :] < np.asarray(lengths)[:, None]
    return np.where(valid[..., None], out, 0.0)


def regression_errors(pred: np.ndarray, y: np.ndarray, lengths: np.ndarray) -> dict:
    """Root mean square error of predictions against targets, in the target's units.

    ``pred`` and ``y``: (N, T, O) per-step (only steps before each of ``lengths`` count) or
    (N, O) last-step. Returns ``rmse`` (over every counted value of every output),
    ``rmse_per_output`` (O), ``target_std`` (O: the targets' standard deviation over the same
    values, the RMSE of predicting their mean; 1 where it is 0) and ``nrmse``:
    ``sqrt(mean_o (rmse_o / target_std_o)²)``, unit-free: 0 is perfect, 1 no better than
    the mean. Raises ValueError when the shapes differ.
    """
    pred, y = np.asarray(pred, np.float64), np.asarray(y, np.float64)
    if pred.shape != y.shape:
        raise ValueError(f"predictions {pred.shape} and targets {y.shape} differ in shape")
    if y.ndim == 3:
        valid = np.arange(y.shape[1])[None, :] < np.asarray(lengths)[:, None]
        pred, y = pred[valid], y[valid]
    err = pred - y
    per = np.sqrt(np.mean(err ** 2, axis=0))
    std = y.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))),
            "rmse_per_output": [float(v) for v in per],
            "target_std": [float(v) for v in std],
            "nrmse": float(np.sqrt(np.mean((per / std) ** 2)))}


def check_targets(bundle: ModelBundle, dataset: Dataset):
    """UserError unless the data set's task and head size fit the bundle's."""
    if not bundle.has_head:
        raise UserError(f"bundle {bundle.name!r} has no head, and accuracy (or RMSE) needs one")
    if dataset.task != bundle.task:
        raise UserError(f"data set {dataset.name}: a {dataset.task} data set, the model "
                        f"{bundle.name!r} is a {bundle.task} model")
    if dataset.is_regression:
        if bundle.num_outputs != dataset.num_outputs:
            raise UserError(f"data set {dataset.name}: {dataset.num_outputs} target outputs, "
                            f"the model's head has {bundle.num_outputs}")
    elif bundle.num_outputs != dataset.num_classes:
        raise UserError(f"data set {dataset.name}: {dataset.num_classes} classes, the model's "
                        f"head has {bundle.num_outputs}")


def _compressed_cycles(bundle, codes, res, lengths, shape) -> float | None:
    """Mean cycles per step of a compressed-weight core (:func:`drnn_hw.spatial.
    spatial_step_cycles`, which ``--weight-format compressed`` cores meet on every step) for a
    column-balanced bundle, from the golden run's kept deltas; None when ``shape``'s P is not
    the pattern's."""
    masks = delta_masks(codes, res.layer_h, lengths,
                        [(ly.theta_x, ly.theta_h) for ly in bundle.layers])
    try:
        c = bundle_spatial_cycles(bundle, masks, shape)
    except ValueError:
        return None
    valid = np.arange(codes.shape[1])[None, :] < np.asarray(lengths)[:, None]
    return float(c[valid].mean())


def evaluate_bundle(bundle: ModelBundle, dataset: Dataset | str, shape: CoreShape | None = None,
                    split: str = "test") -> dict:
    """Accuracy of the bundle (golden model, bit-exact with the hardware) on a data split.

    Returns accuracy (classification) or, for a regression bundle, task ("regression"), rmse,
    rmse_per_output, target_std, nrmse (:func:`regression_errors`, target units), outputs and
    per_step;
    sparsity_dx / sparsity_dh (fraction of zero deltas over valid steps),
    mean_cycles (cycle model for ``shape``, frames back to back: with ``shape.step_overlap``
    each step after a sequence's first scanned during the AP of the one before),
    mean_cycles_dense (the same core with every delta kept, frames back to back), speedup (dense / mean cycles), steps,
    sequences, mean_nnz_dx / mean_nnz_dh, core;
    an LSTM bundle (``cell`` "lstm", also returned) gets the LSTM core's cycles;
    theta_x / theta_h for one layer; a column-balanced bundle (GRU) also
    ``mean_cycles_compressed``: the spatial model's cycles of a compressed-weight core
    (:mod:`drnn_hw.spatial`, which the core of ``--weight-format compressed`` meets), None
    when ``shape``'s P is not the pattern's. A stacked bundle: sparsity and nnz over all
    layers, cycles of the layers in sequence (:func:`drnn_hw.golden.run`), and ``layers``: per layer
    input_size, hidden_size, theta_x, theta_h, sparsity_dx, sparsity_dh.
    ``dataset`` is a loaded :class:`Dataset` or a name / .npz path.
    """
    if isinstance(dataset, (str, bytes)) or hasattr(dataset, "__fspath__"):
        dataset = load_dataset(str(dataset), task=bundle.task)
    if not bundle.has_head:
        raise UserError(f"bundle {bundle.name!r} has no classification head, and accuracy "
                        "needs one")
    x = getattr(dataset, f"x_{split}")
    lengths = getattr(dataset, f"len_{split}")
    y = getattr(dataset, f"y_{split}")
    if x.shape[2] != bundle.input_size:
        raise UserError(f"data set {dataset.name}: {x.shape[2]} input features, the model "
                        f"expects {bundle.input_size}")
    check_targets(bundle, dataset)
    shape = shape or CoreShape()
    valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
    codes = np.where(valid[..., None], bundle.quantize_input(x, where=dataset.name), 0)
    res = run(bundle, codes, lengths, shape)
    steps = int(lengths.sum())
    nnz_dx, nnz_dh, cycles = res.flat("nnz_dx"), res.flat("nnz_dh"), res.flat("cycles")
    # Stacked layers: sparsity over all layers' inputs (hidden states); the dense step runs
    # every layer with every delta kept, layers in sequence with the idle cycle between two
    # (the golden model's schedule).
    I = sum(ly.input_size for ly in bundle.layers)
    H = sum(ly.hidden_size for ly in bundle.layers)
    lstm = bundle.cell == "lstm"
    # (A core with its weights in DRAM at the golden model's default read latency, as ``run``.)
    fetches = [None] * bundle.num_layers
    if shape.weights == "axi":
        from drnn_hw.dram import column_fetch
        fetches = column_fetch(bundle, shape)
    # (Frames back to back, as the mean: layer 0's scan starts during the AP of the step
    # before, issue #10's step overlap.)
    pre = streamed_prescan(shape.blocks(bundle.layers[-1].hidden_size), bundle.cell) \
        if shape.step_overlap else 0
    dense = sum(step_cycles(np.ones(ly.input_size, bool), np.ones(ly.hidden_size, bool), shape,
                            bundle.cell, fetch, pre if l == 0 else 0)
                for l, (ly, fetch) in enumerate(zip(bundle.layers, fetches))) + \
        (bundle.num_layers - 1) * LAYER_GAP
    if dataset.is_regression:
        score = {"task": "regression",
                 **regression_errors(head_outputs(bundle, res.h, lengths, dataset.per_step),
                                     y, lengths),
                 "outputs": list(bundle.outputs), "per_step": dataset.per_step}
    else:
        score = {"accuracy": float(np.mean(head_logits(bundle, res.h, lengths).argmax(-1) == y))}
    out = {
        "dataset": dataset.name, "split": split, **score,
        "sparsity_dx": float(1 - nnz_dx.sum() / (steps * I)),
        "sparsity_dh": float(1 - nnz_dh.sum() / (steps * H)),
        "mean_nnz_dx": float(nnz_dx.mean()), "mean_nnz_dh": float(nnz_dh.mean()),
        "mean_cycles": float(cycles.mean()),
        "mean_cycles_dense": float(dense),
        "speedup": float(dense / cycles.mean()),
        "steps": steps, "sequences": int(len(lengths)),
        "core": shape.to_dict(),
        **({"cell": "lstm"} if lstm else {}),
    }
    if not lstm and any(ly.balance is not None for ly in bundle.layers):
        out["mean_cycles_compressed"] = _compressed_cycles(bundle, codes, res, lengths, shape)
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
