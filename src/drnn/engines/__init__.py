"""Simulation engines: each runs a bundle on (N, T, I) activation codes and returns a
:class:`~drnn_hw.golden.GoldenResult` (h, nnz_dx, nnz_dh, cycles, lengths).

``golden``: the NumPy model, cycles from the cycle model. ``verilator``: the generated Verilog
in Verilator through cocotb, cycles measured. ``amaranth``: the same core in Amaranth's
simulator (slow; for debugging).
"""

from __future__ import annotations

import importlib

from drnn_hw.errors import UserError

ENGINES = {
    "golden": "drnn.engines.golden",
    "verilator": "drnn.engines.verilator",
    "amaranth": "drnn.engines.amaranth",
}


def get_engine(name: str):
    """The ``run(bundle, x_codes, lengths=None, shape=None, waves=None, h0=None, state=None)``
    of an engine: ``h0`` a list of L code arrays (:func:`drnn_hw.golden.initial_state`),
    ``state`` a list of L :class:`~drnn_hw.golden.LayerState` to continue from."""
    if name not in ENGINES:
        raise UserError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
    try:
        mod = importlib.import_module(ENGINES[name])
    except ModuleNotFoundError as e:
        if e.name == ENGINES[name]:
            raise UserError(f"engine {name!r} is not available in this build") from None
        raise
    return mod.run
