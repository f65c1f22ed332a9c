"""The fewest cycles per step any exact overlap of steps could reach on this design's pipeline.

Issue #10 asks the core to start step t+1's work while step t finishes. Step t+1's Δh needs
h_t, so however the steps overlap, the Δh work of consecutive steps is separated by a loop
through the pipeline (depths from drnn_hw.cycle_model, with E = P so h window 0 is AP block 0):
the last Δh group of step t starts at slot m and issues NB slots; the AP cannot start before
D = m + NB (nor read block 0 before its last write, m + MXV_WRITE, to which the read port
is transparent); it writes block 0 of h_t AP_LATENCY = AP_ISSUE + AP_STAGES cycles after its
start (10); the encoder reads that window one
cycle later and emits its first delta SCAN_LATENCY = 3 cycles after; a group issues the cycle
after that. So step t+1's first Δh slot comes at least NB + LOOP cycles after m (LOOP =
AP_LATENCY + SCAN_LATENCY + 2 = 15), and a step with any kept Δh costs at least
``ceil(nnz_dh/K)·NB + LOOP`` cycles, even with every Δx hidden (ignoring the Δx
groups' own MxV slots only lowers this floor); a step without Δh at least NB (the AP's issue).

Run from the repository (after ``make demo``)::

    .venv/bin/python docs/analysis/overlap_floor.py

It runs the golden model on the demo model's test set at the trained Θ and prints the mean
cycles today, the mean bound of issue #10, the floor, and the best bound efficiency and peer
ratio (the EdgeDRNN model's 82.0 cycles per step at 96 multipliers, README) the floor allows.
"""

import numpy as np

from drnn_hw import golden
from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import AP_LATENCY, SCAN_LATENCY, CoreShape, cycle_bound
from drnn_train.datasets import load_dataset

PEER_CYCLES = 82.0      # README benchmark table, trained Θ, peer at 96 multipliers

bundle = ModelBundle.load("build/demo/model")
data = load_dataset("japanese-vowels", task=bundle.task)
# The core without the step overlap (issue #10's thirty-third round made it the default):
# the baseline ("today") every figure here is stated against.
shape = CoreShape(step_overlap=False)
codes = bundle.quantize_input(data.x_test, where="japanese-vowels (test)")
run = golden.run(bundle, codes, data.len_test, shape=shape)
dx, dh, cycles = run.flat("nnz_dx"), run.flat("nnz_dh"), run.flat("cycles")
NB, K = shape.blocks(bundle.hidden_size), shape.columns
LOOP = AP_LATENCY + SCAN_LATENCY + 2
floor = np.where(dh > 0, -(-dh // K) * NB + LOOP, NB)
bound = cycle_bound(dx + dh, bundle.hidden_size, shape)
print(f"steps {len(dh)}; cycles today {cycles.mean():.2f}; bound {bound.mean():.2f} "
      f"({bound.mean() / cycles.mean():.1%} of today)")
print(f"floor {floor.mean():.2f} cycles per step: at best {bound.mean() / floor.mean():.1%} of "
      f"the bound, {PEER_CYCLES / floor.mean():.2f}x the peer model")
