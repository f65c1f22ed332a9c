"""The verilator engine: the generated Verilog in Verilator through cocotb; cycles measured.

A thin adapter to :func:`drnn_sim.cosim.simulate` (generate and build are cached). The speed of
the last run (simulated cycles per second of wall time, build time) is kept in
:data:`last_perf`.
"""

from __future__ import annotations

from drnn_hw.cycle_model import CoreShape
from drnn_hw.errors import UserError
from drnn_hw.golden import GoldenResult

#: Performance of the last :func:`run`: sim_cycles, wall_seconds, cycles_per_second, ...
last_perf: dict = {}


def _one_layer(bundle):
    if bundle.num_layers != 1:
        raise UserError(f"bundle {bundle.name}: {bundle.num_layers} stacked layers: the "
                        "generated core runs one layer so far; use the golden engine")


def run(bundle, x_codes, lengths=None, shape=None, waves=None, h0=None,
        state=None) -> GoldenResult:
    _one_layer(bundle)
    if h0 is not None or state is not None:
        raise UserError("h0 and a carried state need the golden engine so far")
    try:
        from drnn_sim.cosim import simulate
        from drnn_sim.runner import SimulationError
    except ImportError as e:  # pragma: no cover - drnn_sim ships with the package
        raise UserError(f"the verilator engine needs the drnn_sim package ({e})") from None
    try:
        r = simulate(bundle, shape or CoreShape(), x_codes, lengths, waves=waves)
    except SimulationError as e:
        first = str(e).splitlines()[0]
        raise UserError(f"verilator engine: {first}") from None
    last_perf.clear()
    last_perf.update(r.perf)
    return GoldenResult(h=r.h, nnz_dx=r.nnz_dx, nnz_dh=r.nnz_dh, cycles=r.cycles,
                        lengths=r.lengths)
