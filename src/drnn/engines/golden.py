"""The golden engine: the NumPy model; ``cycles`` are the cycle model's prediction."""

from __future__ import annotations

from drnn_hw.errors import UserError
from drnn_hw.golden import run as _golden_run


def run(bundle, x_codes, lengths=None, shape=None, waves=None, h0=None, state=None,
        dram_latency=None):
    """``dram_latency``: a core with its weights in DRAM, the memory's fixed read latency in
    cycles (default :data:`drnn_hw.dram.DEFAULT_LATENCY`)."""
    if waves:
        raise UserError("--waves needs an RTL engine (verilator or amaranth)")
    return _golden_run(bundle, x_codes, lengths=lengths, shape=shape, h0=h0, state=state,
                       dram_latency=dram_latency)
