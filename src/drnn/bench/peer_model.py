"""The open peer's schedule (EdgeDRNN, SensorsINI) on our workload, from its published design.

This is a *model* of the peer, not a measurement: we cannot run its SystemVerilog here (Vivado
only, no licence to copy). It takes the kept-delta counts our core measured on each step and
asks how many cycles EdgeDRNN's published schedule would need for the same work with the same
number of multipliers. Every assumption below favours the peer, so the ratio it gives is a
lower bound on our advantage (the peer can only be slower than this model).

Published facts used (BRIEF §3, the EdgeDRNN paper, JETCAS 2020):

* **Encoder**: the delta unit looks at one element per cycle, x first then h, plus one cycle of
  control, so a step costs at least ``I + H + 1`` cycles even when no delta is kept.
* **MxV**: every processing element (PE) has one multiplier, shared between the MxV and the
  element-wise gate math. A kept delta fetches its weight column, 3·H weights (rows r, z, n),
  and the PE array consumes it ``PE`` weights per cycle: ``ceil(3H / PE)`` cycles per kept delta.
* **Activation**: the gate math runs on the same PEs, 5 cycles per group of ``PE`` neurons:
  ``5 · ceil(H / PE)`` cycles per step, after the last MxV column.

Mapping to our core (:class:`~drnn_hw.cycle_model.CoreShape`): our core has exactly
``3 · P · K`` multipliers, EdgeDRNN has one per PE, so the peer gets ``PE = 3 · P · K``.
(The published instance has PE = 8; :data:`PUBLISHED_PE` lets the bench show that one too.)

Assumptions (each one favourable to the peer):

1. The encoder and the MxV overlap perfectly through the peer's delta FIFO: the MxV part of a
   step costs ``max(I + H + 1, nnz · ceil(3H/PE))``, as if every kept delta were available the
   moment the PEs are free (in reality a delta found late in the scan starts late).
2. Weights arrive as fast as the PEs consume them. The published design fetches weight columns
   from DRAM over a 64-bit AXI port (8 int8 weights per cycle, enough for PE = 8); we assume the
   memory bandwidth scales with PE and DRAM latency is hidden.
3. No pipeline fill, drain or commit cycles beyond the 5 per activation group; no cycles for
   the AXI-Lite control, no time between steps.
4. The same deltas are kept as on our core (same thresholds, same sequences). The peer's own
   numerics (no saturation, 1/16-resolution activation ROMs, lost b_hn) would change which
   deltas it keeps; we ignore that and give it our workload.

So, per step::

    peer_cycles = max(I + H + 1, (nnz_dx + nnz_dh) · ceil(3H / PE)) + 5 · ceil(H / PE)
"""

from __future__ import annotations

import math

import numpy as np

from drnn_hw.cycle_model import CoreShape

__all__ = ["PUBLISHED_PE", "ACTIVATION_CYCLES_PER_GROUP", "peer_pe_for", "peer_step_cycles",
           "FORMULA", "ASSUMPTIONS"]

#: Processing elements (one multiplier each) of the published EdgeDRNN instance.
PUBLISHED_PE = 8
#: Cycles the published activation phase spends on each group of PE neurons.
ACTIVATION_CYCLES_PER_GROUP = 5

FORMULA = ("peer_cycles = max(I + H + 1, (nnz_dx + nnz_dh) * ceil(3H/PE)) "
           f"+ {ACTIVATION_CYCLES_PER_GROUP} * ceil(H/PE); PE = 3*P*K (same multipliers)")

ASSUMPTIONS = [
    "encoder scans one element per cycle: at least I + H + 1 cycles per step",
    "each kept delta costs ceil(3H/PE) cycles (a 3H-weight column over PE single-multiplier PEs)",
    f"activation: {ACTIVATION_CYCLES_PER_GROUP} cycles per group of PE neurons",
    "PE = 3*P*K so the peer has as many multipliers as our core",
    "favourable to the peer: encoder and MxV overlap perfectly; weight bandwidth scales with PE "
    "and DRAM latency is hidden; no fill/drain or control cycles; same kept deltas as our core",
]


def peer_pe_for(shape: CoreShape) -> int:
    """The peer's PE count with as many multipliers as our core: ``3 · P · K``."""
    return shape.multipliers


def peer_step_cycles(nnz_dx, nnz_dh, input_size: int, hidden_size: int, pe: int) -> np.ndarray:
    """Per-step cycles of the peer's schedule for the given kept-delta counts (arrays, any shape)."""
    if pe < 1:
        raise ValueError(f"peer PE count must be ≥ 1, got {pe}")
    nnz = np.asarray(nnz_dx, dtype=np.int64) + np.asarray(nnz_dh, dtype=np.int64)
    per_delta = math.ceil(3 * hidden_size / pe)
    scan = input_size + hidden_size + 1
    activation = ACTIVATION_CYCLES_PER_GROUP * math.ceil(hidden_size / pe)
    return np.maximum(scan, nnz * per_delta) + activation
