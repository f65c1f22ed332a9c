"""Sequence data sets (classification and regression) for the trainer, the evaluator, the demo
and the benchmarks.

``load_dataset(name_or_path, task=None)`` returns a :class:`Dataset` of zero-padded (N, T, I)
float64 arrays with per-sequence lengths and targets. Four UCR/UEA classification sets ship
inside the ``aeon`` wheel and load offline (japanese-vowels, basic-motions, gun-point,
italy-power-demand); the regression demo set ``pendulum`` is simulated on load
(:mod:`drnn_train.plants`, synthetic). Any other set comes as a ``.npz`` file with the keys

    x_train (N, T, I) float, y_train, x_test (M, T', I), y_test,
    optional len_train (N,) and len_test (M,) integers in [1, T],

where, for ``task="classification"`` (the default for a file), ``y_*`` are (N,) integer labels,
and for ``task="regression"`` float targets, either per step, (N, T, O), or one per sequence
at its last valid step, (N, O) (the same kind and O in both splits; an optional
``output_names`` (O,) array of strings names the outputs). A 2-D ``y`` whose second dimension
equals T is refused as ambiguous (per-step targets with one output are (N, T, 1)).
Per-step targets past a sequence's length are padding, like ``x``; before it they must be
finite.

Steps at or past a sequence's length are padding and never reach the result; they may hold
anything, NaN included (the UCR/UEA convention). Without ``len_*`` a sequence's length is
inferred from NaN padding: it ends before its trailing run of all-NaN steps (no such steps:
every step is valid). A NaN or Inf before a sequence's length is an error naming the file,
array, sequence, step and feature.

Labels may be any integers; they are mapped to class ids 0..C-1 in ascending order and the
original values kept as the class names. Every malformed file is a :class:`UserError` naming
the file, the key and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drnn_hw.errors import UserError

__all__ = ["Dataset", "load_dataset", "DATASETS", "DATASET_TASKS", "TASKS"]

#: The tasks a data set (and a model) can have.
TASKS = ("classification", "regression")


@dataclass
class Dataset:
    """A data set's two splits. ``task`` says what ``y_*`` hold:

    classification: (N,) int64 class ids, ``classes`` the labels (class id -> str);
    regression: float64 targets, (N, T, O) per step (zero past each length) or (N, O) at each
    sequence's last valid step, ``outputs`` the O output names and ``classes`` None.
    """

    name: str
    x_train: np.ndarray     # (N, T, I) float64, zero past each length
    len_train: np.ndarray   # (N,) int64 in [1, T]
    y_train: np.ndarray     # see the class docstring
    x_test: np.ndarray
    len_test: np.ndarray
    y_test: np.ndarray
    classes: list | None    # class id -> label (str); None for regression
    task: str = "classification"
    outputs: list | None = None     # regression: the O output names

    @property
    def input_size(self) -> int:
        return int(self.x_train.shape[2])

    @property
    def num_classes(self) -> int:
        """C for classification, 0 for regression."""
        return len(self.classes or [])

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"

    @property
    def per_step(self) -> bool:
        """Regression with a target at every step ((N, T, O)), not only at the last."""
        return self.is_regression and self.y_train.ndim == 3

    @property
    def num_outputs(self) -> int:
        """O for regression, C for classification (the head's rows)."""
        return int(self.y_train.shape[-1]) if self.is_regression else self.num_classes


def _pad(seqs) -> tuple[np.ndarray, np.ndarray]:
    """A list of (T_n, I) arrays to a zero-padded (N, T_max, I) array and lengths."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    out = np.zeros((len(seqs), int(lengths.max()), seqs[0].shape[1]), dtype=np.float64)
    for n, s in enumerate(seqs):
        out[n, :len(s)] = s
    return out, lengths


def _sort_key(label: str):
    """Numeric labels in numeric order ('2' before '10'), others alphabetically after them."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _encode_labels(y_train, y_test) -> tuple[np.ndarray, np.ndarray, list]:
    labels = sorted({str(v) for v in np.concatenate([y_train, y_test])}, key=_sort_key)
    index = {lab: k for k, lab in enumerate(labels)}
    enc = lambda y: np.array([index[str(v)] for v in y], dtype=np.int64)  # noqa: E731
    return enc(y_train), enc(y_test), labels


def _load_aeon(name: str) -> Dataset:
    from aeon.datasets import (load_basic_motions, load_gunpoint, load_italy_power_demand,
                               load_japanese_vowels)

    loader = {"japanese-vowels": load_japanese_vowels, "basic-motions": load_basic_motions,
              "gun-point": load_gunpoint, "italy-power-demand": load_italy_power_demand}[name]
    parts = {}
    for split in ("train", "test"):
        X, y = loader(split=split)
        # aeon gives (channels, T) per case: a list when lengths differ, else a 3-D array.
        seqs = [np.asarray(c, dtype=np.float64).T for c in X]
        parts[split] = (*_pad(seqs), np.asarray(y))
    (xtr, ltr, ytr), (xte, lte, yte) = parts["train"], parts["test"]
    ytr, yte, classes = _encode_labels(ytr, yte)
    return Dataset(name, xtr, ltr, ytr, xte, lte, yte, classes)


DATASETS = {
    "japanese-vowels": "UEA JapaneseVowels: 12 LPC cepstra, 7-29 frames, 9 speakers, 270/370",
    "basic-motions": "UEA BasicMotions: 6-axis IMU, 100 steps, 4 activities, 40/40",
    "gun-point": "UCR GunPoint: hand x-position, 150 steps, 2 classes (gun/point), 50/150",
    "italy-power-demand": "UCR ItalyPowerDemand: hourly demand, 24 steps, 2 seasons, 67/1029",
    "pendulum": "synthetic regression: PID-controlled damped pendulum, 20 Hz, 32-48 steps, "
                "in (reference, angle), out per step (torque, velocity), 256/128",
}

#: The task of each built-in data set (a .npz file is classification unless told otherwise).
DATASET_TASKS = {name: "regression" if name == "pendulum" else "classification"
                 for name in DATASETS}


def _load_plant(name: str) -> Dataset:
    from .plants import pendulum

    d = {"pendulum": pendulum}[name]()
    return Dataset(name, d["x_train"], d["len_train"], d["y_train"], d["x_test"],
                   d["len_test"], d["y_test"], None, "regression", list(d["output_names"]))


def _lengths_from_nan_padding(x: np.ndarray) -> np.ndarray:
    """(N, T, I) -> (N,) lengths: each sequence ends before its trailing run of all-NaN steps.

    The UCR/UEA convention for unequal-length sets stored in one array. 0 if every step is NaN.
    """
    step_all_nan = np.isnan(x).all(axis=2)                    # (N, T)
    t = x.shape[1]
    # index of the last step with any non-NaN value, + 1
    has_data = ~step_all_nan
    last = t - np.argmax(has_data[:, ::-1], axis=1)
    return np.where(has_data.any(axis=1), last, 0).astype(np.int64)


def _check_labels(where: str, yk: str, y: np.ndarray, n: int) -> np.ndarray:
    """Classification: (n,) integer labels (integer-valued floats accepted)."""
    if y.ndim != 1 or y.shape[0] != n:
        hint = " (regression targets? pass --task regression)" if y.ndim in (2, 3) else ""
        raise UserError(f"{where}: {yk}: expected shape ({n},), got {y.shape}{hint}")
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            hint = " (regression targets? pass --task regression)" \
                if y.dtype.kind == "f" else ""
            raise UserError(f"{where}: {yk}: expected integer class labels, "
                            f"got dtype {y.dtype}{hint}")
    return y.astype(np.int64)


def _check_targets(where: str, yk: str, y: np.ndarray, n: int, t: int, valid: np.ndarray,
                   want: tuple | None) -> np.ndarray:
    """Regression: (n, t, O) per-step or (n, O) last-step finite targets -> float64, zero
    past each length. ``want``: (ndim, O) of the other split, which this one must match."""
    if y.dtype.kind not in "fiu":
        raise UserError(f"{where}: {yk}: expected numeric regression targets, got dtype "
                        f"{y.dtype}")
    if y.ndim not in (2, 3) or y.shape[0] != n or (y.ndim == 3 and y.shape[1] != t) \
            or y.shape[-1] < 1:
        raise UserError(f"{where}: {yk}: expected ({n}, {t}, O) per-step or ({n}, O) "
                        f"last-step targets, got shape {y.shape}")
    if y.ndim == 2 and y.shape[1] == t and t > 1:
        raise UserError(f"{where}: {yk}: shape {y.shape} is ambiguous: per-step targets with "
                        f"one output are ({n}, {t}, 1), last-step targets (N, O) with O != T")
    if want is not None and (y.ndim, y.shape[-1]) != want:
        kind = lambda d: "per-step (N, T, O)" if d == 3 else "last-step (N, O)"  # noqa: E731
        raise UserError(f"{where}: {yk}: expected {kind(want[0])} targets with O = {want[1]} "
                        f"(as y_train), got shape {y.shape}")
    y = y.astype(np.float64)
    if y.ndim == 3:
        bad = valid[..., None] & ~np.isfinite(y)
        if bad.any():
            seq, step, out = (int(v[0]) for v in np.nonzero(bad))
            raise UserError(f"{where}: {yk}: expected finite targets before each sequence's "
                            f"length, got {int(bad.sum())} NaN/Inf, the first at sequence "
                            f"{seq}, step {step}, output {out}")
        return np.where(valid[..., None], y, 0.0)
    bad = ~np.isfinite(y)
    if bad.any():
        seq, out = (int(v[0]) for v in np.nonzero(bad))
        raise UserError(f"{where}: {yk}: expected finite targets, got {int(bad.sum())} "
                        f"NaN/Inf, the first at sequence {seq}, output {out}")
    return y


def _load_npz(path: Path, task: str = "classification") -> Dataset:
    where = str(path)
    if not path.is_file():
        raise UserError(f"{where}: data set file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile/OSError/ValueError (pickled object arrays): unreadable
        raise UserError(f"{where}: not a readable .npz archive ({type(e).__name__})") from None
    for key in ("x_train", "y_train", "x_test", "y_test"):
        if key not in arrays:
            raise UserError(f"{where}: missing key '{key}' (need x_train, y_train, x_test, "
                            f"y_test; optional len_train, len_test), got {sorted(arrays)}")
    out = {}
    input_size = None
    target_kind = None
    for split in ("train", "test"):
        xk, yk, lk = f"x_{split}", f"y_{split}", f"len_{split}"
        x, y = arrays[xk], arrays[yk]
        if x.dtype.kind not in "fiu":
            raise UserError(f"{where}: {xk}: expected a numeric array, got dtype {x.dtype}")
        if x.ndim != 3:
            raise UserError(f"{where}: {xk}: expected 3 dimensions (N, T, I), got shape {x.shape}")
        n, t, i = x.shape
        if n == 0 or t == 0 or i == 0:
            raise UserError(f"{where}: {xk}: expected N, T, I >= 1, got shape {x.shape}")
        if input_size is None:
            input_size = i
        elif i != input_size:
            raise UserError(f"{where}: {xk}: expected I = {input_size} features (as x_train), "
                            f"got {i}")
        x = x.astype(np.float64)
        if task == "classification":
            y = _check_labels(where, yk, y, n)
        if lk in arrays:
            lengths = arrays[lk]
            if lengths.shape != (n,):
                raise UserError(f"{where}: {lk}: expected shape ({n},), got {lengths.shape}")
            if lengths.dtype.kind not in "iu":
                raise UserError(f"{where}: {lk}: expected integers, got dtype {lengths.dtype}")
            lengths = lengths.astype(np.int64)
            if lengths.min() < 1 or lengths.max() > t:
                raise UserError(f"{where}: {lk}: expected lengths in [1, {t}], got "
                                f"[{lengths.min()}, {lengths.max()}]")
        else:
            lengths = _lengths_from_nan_padding(x)
            if lengths.min() < 1:
                bad = int(np.argmin(lengths))
                raise UserError(f"{where}: {xk}: sequence {bad} has no valid step (every step "
                                f"is NaN padding)")
        valid = np.arange(t)[None, :] < lengths[:, None]
        bad = valid[..., None] & ~np.isfinite(x)
        if bad.any():
            seq, step, feat = (int(v[0]) for v in np.nonzero(bad))
            L = int(lengths[seq])
            source = (f"{lk}[{seq}] = {L}" if lk in arrays else
                      f"length {L} inferred from trailing all-NaN steps" if L < t else
                      f"no {lk} and no trailing all-NaN steps: length {t}")
            raise UserError(
                f"{where}: {xk}: expected finite values before each sequence's length, got "
                f"{int(bad.sum())} NaN/Inf, the first at sequence {seq}, step {step}, feature "
                f"{feat} ({x[seq, step, feat]}; {source})")
        # Padding (NaN or anything else) never reaches the result.
        x = np.where(valid[..., None], x, 0.0)
        if task == "regression":
            y = _check_targets(where, yk, y, n, t, valid, target_kind)
            target_kind = (y.ndim, y.shape[-1])
        out[split] = (x, lengths, y)
    (xtr, ltr, ytr), (xte, lte, yte) = out["train"], out["test"]
    if task == "regression":
        O = ytr.shape[-1]
        names = [f"y{k}" for k in range(O)]
        if "output_names" in arrays:
            got = arrays["output_names"]
            if got.dtype.kind != "U" or got.shape != (O,):
                raise UserError(f"{where}: output_names: expected ({O},) strings (one per "
                                f"output), got shape {got.shape} dtype {got.dtype}")
            names = [str(v) for v in got]
        return Dataset(path.stem, xtr, ltr, ytr, xte, lte, yte, None, "regression", names)
    ytr, yte, classes = _encode_labels(ytr, yte)
    return Dataset(path.stem, xtr, ltr, ytr, xte, lte, yte, classes)


def load_dataset(name_or_path: str, task: str | None = None) -> Dataset:
    """A built-in data set by name (see :data:`DATASETS`) or a ``.npz`` file by path.

    ``task``: "classification" or "regression" (module docstring); None: the built-in set's
    own (:data:`DATASET_TASKS`), classification for a file. A built-in set asked for the
    other task is a :class:`UserError`.
    """
    name = str(name_or_path)
    if task is not None and task not in TASKS:
        raise UserError(f"--task: expected one of {', '.join(TASKS)}, got {task!r}")
    if name in DATASETS:
        own = DATASET_TASKS[name]
        if task is not None and task != own:
            raise UserError(f"data set {name} is a {own} data set, not {task} "
                            f"(--task {own}, or leave --task out)")
        return _load_plant(name) if own == "regression" else _load_aeon(name)
    if name.endswith(".npz") or Path(name).suffix or "/" in name:
        return _load_npz(Path(name), task or "classification")
    raise UserError(f"unknown data set {name!r}; use one of {', '.join(DATASETS)} "
                    "or a path to a .npz file")


def input_statistics(x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over the valid steps (padding excluded).

    A constant feature gets scale 1 so normalisation never divides by zero.
    """
    valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
    v = x[valid]
    mean = v.mean(axis=0)
    std = v.std(axis=0)
    return mean, np.where(std > 1e-12, std, 1.0)
