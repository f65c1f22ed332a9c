"""What an AP of P·K elements per cycle would save on the demo model (issue #10: "the bound
assumes P·K activations per cycle; the AP does P today. Use the K lanes' multipliers in the AP
if it pays (measure it)").

The AP reads the delta memories one P-row block per cycle, the block the MxV wrote one cycle
per block too (drnn_hw.cycle_model): the last group's slot for block b writes it at
``D - NB + b + MXV_WRITE`` and the AP reads it at ``A0 + 1 + b``, in the write's cycle at
the earliest (the read port is transparent to the write). An AP of ``a`` blocks per cycle
(a = K: P·K elements) reads block b at ``A0 + 1 + floor(b/a)``, so it must start later,
``A0 ≥ D - NB + MXV_WRITE - 1 + max_b(b - floor(b/a))``, and issues for ``ceil(NB/a)`` cycles
instead of NB:

    cycles_a = SCAN_LATENCY + max(S, D - NB + MXV_WRITE - 1 + max_b(b - floor(b/a)))
               + ceil(NB/a) + AP_LATENCY

When the MxV ends the step (D late), the wider AP's commit is no earlier: it only waits for the
same last write. It gains only where the scan ends the step (S late) or when nothing is kept.
For a = 1 the formula is the cycle model's, which the script checks on every step before it
uses it.

Run from the repository (after ``make demo``)::

    .venv/bin/python docs/analysis/ap_width.py

It runs the golden model on the demo model's test set at the trained Θ and prints the mean
cycles per step of today's AP (a = 1) and of an AP of P·K (a = K), and how many steps gain.
"""

import math

import numpy as np

from drnn_hw import golden
from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import (MXV_WRITE, SCAN_LATENCY, CoreShape, ap_latency, step_cycles,
                                 step_schedule)
from drnn_train.datasets import load_dataset

bundle = ModelBundle.load("build/demo/model")
data = load_dataset("japanese-vowels", task=bundle.task)
# The core without the step overlap (issue #10's thirty-third round made it the default):
# the baseline ("today") every figure here is stated against.
shape = CoreShape(step_overlap=False)
codes = bundle.quantize_input(data.x_test, where="japanese-vowels (test)")
(dx, dh), = golden.kept_masks(bundle, codes, data.len_test)
AP = ap_latency(bundle.cell)


def cycles(S, D, nb, a):
    issue = math.ceil(nb / a)
    if D is None:
        return SCAN_LATENCY + S + issue + AP
    wait = max(b - b // a for b in range(nb))
    return SCAN_LATENCY + max(S, D - nb + MXV_WRITE - 1 + wait) + issue + AP


today, wide = [], []
for x, h in zip(dx, dh):
    S, D, nb = step_schedule(x, h, shape)
    today.append(cycles(S, D, nb, 1))
    wide.append(cycles(S, D, nb, shape.columns))
    assert today[-1] == step_cycles(x, h, shape, bundle.cell), "a = 1 must be the cycle model"
today, wide = np.array(today), np.array(wide)
gain = today - wide
print(f"steps {len(today)}; NB = {nb}, K = {shape.columns}")
print(f"AP of P = {shape.rows} per cycle (today): {today.mean():.2f} cycles per step")
print(f"AP of P·K = {shape.rows * shape.columns} per cycle: {wide.mean():.2f} cycles per step "
      f"({gain.mean() / today.mean():.1%} fewer); {np.count_nonzero(gain)} of {len(gain)} "
      f"steps gain, by {gain.max() if len(gain) else 0} cycles at most")
