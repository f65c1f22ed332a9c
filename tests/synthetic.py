"""Small synthetic data and a tiny training recipe shared by the trainer and CLI tests."""

import numpy as np

TINY = dict(hidden=8, epochs=12, finetune_epochs=4, batch_size=16, lr=2e-2, finetune_lr=5e-3,
            theta_x=0.1, theta_h=0.05, min_steps=0, finetune_min_steps=0)  # no step floor: fast


def synthetic_npz(path, seed=0, n_train=64, n_test=40, T=8, I=3):
    """Ragged sequences; the class is the sign of the mean of feature 0 (learnable by a GRU)."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, 2, n)
        lengths = rng.integers(3, T + 1, n)
        x = rng.normal(0, 1, (n, T, I))
        x[:, :, 0] += np.where(y == 1, 0.8, -0.8)[:, None]
        x[np.arange(T)[None, :] >= lengths[:, None]] = 0
        out.update({f"x_{split}": x, f"y_{split}": y * 5 + 2, f"len_{split}": lengths})
    np.savez(path, **out)
    return path


def regression_npz(path, seed=0, n_train=64, n_test=40, T=10, per_step=True, nan_pad=False):
    """Ragged 2-feature sequences with 2 real targets a small GRU learns: a leaky integrator of
    feature 0 (y0_t = 0.5·y0_{t-1} + x0_t) and twice feature 1; per step (N, T, 2) or at the
    last valid step (N, 2). ``nan_pad``: NaN in x and y past each length."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        lengths = rng.integers(4, T + 1, n)
        x = rng.uniform(-1, 1, (n, T, 2))
        y = np.zeros((n, T, 2))
        acc = np.zeros(n)
        for t in range(T):
            acc = 0.5 * acc + x[:, t, 0]
            y[:, t] = np.stack([acc, 2 * x[:, t, 1]], axis=1)
        pad = np.arange(T)[None, :] >= lengths[:, None]
        x[pad] = np.nan if nan_pad else 0.0
        y[pad] = np.nan if nan_pad else 0.0
        if not per_step:
            y = y[np.arange(n), lengths - 1]
        out.update({f"x_{split}": x, f"y_{split}": y, f"len_{split}": lengths})
    np.savez(path, **out)
    return path
