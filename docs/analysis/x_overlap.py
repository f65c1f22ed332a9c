"""What the simplest exact step overlap would gain on the demo model: step t+1's Δx scanned and
multiplied while step t's AP finishes (issue #10: "while the AP finishes step t, the core
already scans and multiplies the Δx of step t+1 when its input frame is waiting").

Absolute cycles, the GRU core of drnn_hw.cycle_model (its notation), frames back to back:

* today step t+1 starts the cycle after step t's commit C_t; its windows enter the scheduler
  SCAN_LATENCY cycles after their fetch, so its first schedule cycle is ``C_t + 1 +
  SCAN_LATENCY``, and ``C = A0 + NB + AP_LATENCY - 1`` with A0 absolute (the commit is the last
  counted cycle of ``SCAN_LATENCY + A0 + NB + AP_LATENCY``);
* overlapped, step t+1's x windows are fetched from the cycle after step t's AP start A0_t
  (the encoder and the queue are idle then), its h windows no earlier than the cycle after
  C_t (they read h_t), so they enter the scheduler at ``≥ C_t + 1 + SCAN_LATENCY``;
* the AP borrows the r and z channels' column-0 multipliers (the GRU's r·mnh at c3, z·(h − n)
  at c8 of each block, AP_LATENCY's stages): an MxV slot m drives the multipliers from m + 2
  (the bank's read, the channel's t0 register) for NB cycles, so step t+1's first slot can
  come no earlier than ``A0_t + NB + 7`` (after the last block's z·(h − n)); every slot then writes the delta memories after the AP of step
  t has read them (the AP reads block b at A0_t + 1 + b), so no memory conflict remains, dense
  or compressed;
* the rest is the cycle model's: groups of K deltas in emission order, ``m_g = max(r_g,
  m_{g−1} + NB, free)``, ``A0 = max(S, D + mxv_drain(NB))``.

A deeper overlap (the issue's "Δh work of step t+1 starts as soon as the part of h_t it needs
is committed") fetches h window w the cycle after the AP writes block w of h_t (E = P, so
window w is block w), ``C_t + 1 - (NB - 1 - w)``, instead of after the last block.

The design the core builds with ``--step-overlap`` (``CoreShape.step_overlap``, issue #10's
thirty-second round, the *prescan*) is in the cycle model itself: ``drnn_hw.cycle_model.step_cycles(..., prescan=o)`` for a step whose
scan started o cycles before the cycle after the previous commit, its h windows fetched from
the cycle after that one and its MxV groups held until it (the AP has then done with the
multipliers and the delta memories; no borrowing to model). With the scan started the cycle
after the AP's start (the encoder and the queue cleared then), a waiting frame starts
``o = NB + AP_LATENCY - 1`` cycles ahead. The script prints it as the row "prescan (model)".

With no overlap (x fetched from C_t + 1) the formula is the cycle model's, which the script
checks on every step before it uses it. A sequence's first step has nothing to overlap (the
host resets the state between sequences, in idle).

Run from the repository (after ``make demo``)::

    .venv/bin/python docs/analysis/x_overlap.py

It prints the mean cycles between commits today, with the Δx overlap and with the deeper one
too, the bound efficiency and peer ratio of each (the EdgeDRNN model's 82.0 cycles per step at 96 multipliers, README).
"""

import math

import numpy as np

from drnn_hw import golden
from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import (AP_LATENCY, SCAN_LATENCY, CoreShape, cycle_bound, mxv_drain,
                                 step_cycles)
from drnn_train.datasets import load_dataset

PEER_CYCLES = 82.0      # README benchmark table, trained Θ, peer at 96 multipliers
Z_LAST_USE = 8          # the AP's z·(h − n) operands: stage c8 of a block (drnn_hw.activation)
SLOT_TO_MUL = 2         # a slot's operands reach the multipliers: bank read, t0 (drnn_hw.mxv)


def step(dx, dh, shape, x_fetch, h_fetch, free, per_block=False):
    """One step's A0 and commit (absolute) for x windows fetched from ``x_fetch``, h windows
    from ``h_fetch`` (≥ x's end), the MxV free from slot ``free``. ``per_block``: h window w
    from ``h_fetch - (NB - 1 - w)`` instead (the cycle after its block's write, E = P)."""
    E, K = shape.scan, shape.columns
    nb = shape.blocks(dh.size)

    def windows(mask):                 # E elements each, the last padded with "not kept"
        return list(np.pad(mask, (0, -mask.size % E)).reshape(-1, E))

    t = x_fetch + SCAN_LATENCY          # the scheduler's cycle for the next window
    emit, end = [], t
    for i, win in enumerate(windows(dx) + windows(dh)):
        wx = math.ceil(dx.size / E)
        if i >= wx:
            early = nb - 1 - (i - wx) if per_block else 0
            t = max(t, h_fetch - max(early, 0) + SCAN_LATENCY)
        d = int(win.sum())
        emit += [t + j // K for j in range(d)]
        t += max(1, -(-d // K))
        end = t
    S = end
    if not emit:
        A0 = S
    else:
        G = -(-len(emit) // K)
        m = None
        for g in range(G):
            r = emit[min(g * K + K - 1, len(emit) - 1)] + 1
            if g == G - 1 and len(emit) % K:
                r = S
            m = max(r, free) if m is None else max(r, m + nb, free)
        A0 = max(S, m + nb + mxv_drain(nb))
    return A0, A0 + nb + AP_LATENCY - 1


bundle = ModelBundle.load("build/demo/model")
data = load_dataset("japanese-vowels", task=bundle.task)
# The core without the step overlap (issue #10's thirty-third round made it the default):
# the baseline ("today") every figure here is stated against.
shape = CoreShape(step_overlap=False)
codes = bundle.quantize_input(data.x_test, where="japanese-vowels (test)")
(dx, dh), = golden.kept_masks(bundle, codes, data.len_test)
nb = shape.blocks(bundle.hidden_size)
assert shape.scan == shape.rows        # h window w is AP block w (the per-block variant)

today, overlap, deep, k = [], [], [], 0
for n in data.len_test:
    C_today = C_over = A0_over = C_deep = A0_deep = None
    for _ in range(int(n)):
        x, h = dx[k], dh[k]
        k += 1
        # today: the step starts the cycle after the previous commit (or at 0)
        start = 0 if C_today is None else C_today + 1
        _, c = step(x, h, shape, start, start, start)
        assert c - start + 1 == step_cycles(x, h, shape), "no overlap must be the cycle model"
        if C_today is not None:
            today.append(c - C_today)
        C_today = c
        if C_over is None:
            A0_over, C_over = step(x, h, shape, 0, 0, 0)
            A0_deep, C_deep = A0_over, C_over
            continue
        # step t+1's first slot reaches the multipliers after the AP's last use of them
        free = nb + Z_LAST_USE + 1 - SLOT_TO_MUL
        a0, c = step(x, h, shape, A0_over + 1, C_over + 1, A0_over + free)
        overlap.append(c - C_over)
        A0_over, C_over = a0, c
        a0, c = step(x, h, shape, A0_deep + 1, C_deep + 1, A0_deep + free, True)
        deep.append(c - C_deep)
        A0_deep, C_deep = a0, c
today, overlap, deep = np.array(today), np.array(overlap), np.array(deep)
# The cycle model's prescan, on the same steps (each sequence's first has nothing to overlap).
o = nb + AP_LATENCY - 1
prescan, k = [], 0
for n in data.len_test:
    prescan += [step_cycles(dx[k + i], dh[k + i], shape, prescan=o) for i in range(1, int(n))]
    k += int(n)
prescan = np.array(prescan)
# The bound of the same steps (every step but each sequence's first).
first = np.concatenate([[0], np.cumsum(data.len_test)[:-1]]).astype(int)
keep = np.ones(len(dx), bool)
keep[first] = False
bound = cycle_bound(dx[keep].sum(1) + dh[keep].sum(1), bundle.hidden_size, shape)
for name, c in (("today", today), ("prescan (model)", prescan), ("Δx overlap", overlap),
                ("+ Δh/block", deep)):
    print(f"{name:15s} {c.mean():6.2f} cycles between commits, {bound.mean() / c.mean():5.1%} "
          f"of the bound ({bound.mean():.2f}), {PEER_CYCLES / c.mean():.2f}x the peer model")
print(f"steps {len(today)}; faster {np.sum(overlap < today)}, slower {np.sum(overlap > today)}")
