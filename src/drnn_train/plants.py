"""Simulated plants: synthetic regression data sets made offline, deterministically.

``pendulum`` (:func:`pendulum`) is the regression demo data set. It is **synthetic**: no
measurement of a real system; a damped nonlinear pendulum under a sampled PID controller,
simulated in float64 NumPy. The set is a function of its seed only (same arrays on every
machine), so it ships as code, not as a file.

The plant (SI units): a point mass m = 1 kg on a massless rod l = 1 m, viscous damping
b = 0.5 N·m·s at the pivot, gravity g = 9.81 m/s², driven by a torque u::

    m l² θ'' = u − b θ' − m g l sin θ

integrated with classical fourth-order Runge–Kutta, 10 substeps per sample, u held constant
over the sample (zero-order hold).

The controller, sampled at 20 Hz (dt = 0.05 s), tracks a reference angle r:

    e_k = r_k − θm_k                       θm_k: the angle as a 12-bit encoder reads it
    I_k = clamp(I_{k−1} + e_k·dt, ±I_MAX)   (the integral is clamped: anti-windup)
    D_k = −(θm_k − θm_{k−1}) / dt           (derivative on the measurement: no kick on a
                                             reference step; D_0 = 0)
    u_k = clamp(KP e_k + KI I_k + KD D_k, ±U_MAX)

with KP = 20, KI = 10, KD = 5, I_MAX = 1 rad·s, U_MAX = 15 N·m. The reference is piecewise
constant: a new value, uniform in ±1.5 rad, at step 0 and then at each step with probability
1/20 (mean hold 1 s). The pendulum starts at θ uniform in ±0.5 rad and θ' uniform in
±1 rad/s.

Per step k, the data set's input is x_k = (r_k, θm_k) (rad, rad) and its targets are
y_k = (u_k, θ'_k): the controller's torque command (N·m) and the true angular velocity (rad/s),
which no sensor measures. A recurrent model has to integrate and differentiate its input
history to produce them (the integral term, the derivative term, the saturation and the
velocity). Sequences are 32 to 48 steps long (1.6 to 2.4 s); 256 train and 128 test sequences.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pendulum", "PENDULUM_OUTPUTS"]

#: The pendulum set's target names (units in the name).
PENDULUM_OUTPUTS = ["torque_Nm", "omega_rad_s"]

DT = 0.05           # s, controller sample period (20 Hz)
SUBSTEPS = 10       # RK4 substeps per sample
MASS, LENGTH, DAMPING, GRAVITY = 1.0, 1.0, 0.5, 9.81
KP, KI, KD = 20.0, 10.0, 5.0
I_MAX, U_MAX = 1.0, 15.0
ENCODER_LSB = 2 * np.pi / 4096      # a 12-bit absolute encoder
REF_RANGE, REF_SWITCH = 1.5, 1 / 20


def _accel(theta, omega, u):
    inertia = MASS * LENGTH ** 2
    return (u - DAMPING * omega - MASS * GRAVITY * LENGTH * np.sin(theta)) / inertia


def _rk4(theta, omega, u):
    """One sample period (DT) of the plant under a constant torque ``u``; vectorised."""
    h = DT / SUBSTEPS
    for _ in range(SUBSTEPS):
        k1t, k1w = omega, _accel(theta, omega, u)
        k2t, k2w = omega + h / 2 * k1w, _accel(theta + h / 2 * k1t, omega + h / 2 * k1w, u)
        k3t, k3w = omega + h / 2 * k2w, _accel(theta + h / 2 * k2t, omega + h / 2 * k2w, u)
        k4t, k4w = omega + h * k3w, _accel(theta + h * k3t, omega + h * k3w, u)
        theta = theta + h / 6 * (k1t + 2 * k2t + 2 * k3t + k4t)
        omega = omega + h / 6 * (k1w + 2 * k2w + 2 * k3w + k4w)
    return theta, omega


def _closed_loop(rng, n: int, steps: int):
    """(x (n, steps, 2), y (n, steps, 2)) of ``n`` closed-loop runs (module docstring)."""
    switch = rng.random((n, steps)) < REF_SWITCH
    switch[:, 0] = True
    values = rng.uniform(-REF_RANGE, REF_RANGE, (n, steps))
    # The reference holds the value drawn at the last switch.
    last = np.maximum.accumulate(np.where(switch, np.arange(steps), 0), axis=1)
    ref = np.take_along_axis(values, last, axis=1)
    theta = rng.uniform(-0.5, 0.5, n)
    omega = rng.uniform(-1.0, 1.0, n)
    integral = np.zeros(n)
    x = np.zeros((n, steps, 2))
    y = np.zeros((n, steps, 2))
    prev = None
    for k in range(steps):
        meas = np.floor(theta / ENCODER_LSB + 0.5) * ENCODER_LSB
        e = ref[:, k] - meas
        integral = np.clip(integral + e * DT, -I_MAX, I_MAX)
        deriv = np.zeros(n) if prev is None else -(meas - prev) / DT
        u = np.clip(KP * e + KI * integral + KD * deriv, -U_MAX, U_MAX)
        x[:, k] = np.stack([ref[:, k], meas], axis=1)
        y[:, k] = np.stack([u, omega], axis=1)
        prev = meas
        theta, omega = _rk4(theta, omega, u)
    return x, y


def pendulum(seed: int = 0, n_train: int = 256, n_test: int = 128, steps: int = 48,
             min_steps: int = 32) -> dict:
    """The pendulum data set as arrays (module docstring: what it simulates).

    Returns ``x_train`` (n_train, steps, 2) float64 (reference, measured angle; rad),
    ``y_train`` (n_train, steps, 2) float64 per-step targets (torque N·m, angular velocity
    rad/s), ``len_train`` (n_train,) int64 in [min_steps, steps], the same for ``*_test``, and
    ``output_names`` (:data:`PENDULUM_OUTPUTS`). Steps past a sequence's length are 0.
    Deterministic: a function of the arguments only (NumPy's PCG64 generator).
    """
    rng = np.random.default_rng(seed)
    out = {"output_names": list(PENDULUM_OUTPUTS)}
    for split, n in (("train", n_train), ("test", n_test)):
        x, y = _closed_loop(rng, n, steps)
        lengths = rng.integers(min_steps, steps + 1, n).astype(np.int64)
        pad = np.arange(steps)[None, :] >= lengths[:, None]
        x[pad] = 0.0
        y[pad] = 0.0
        out.update({f"x_{split}": x, f"y_{split}": y, f"len_{split}": lengths})
    return out
