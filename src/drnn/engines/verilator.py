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


def run(bundle, x_codes, lengths=None, shape=None, waves=None, h0=None,
        state=None, core_dir=None) -> GoldenResult:
    """Run (N, T, I) codes through the Verilated core (``h0``: every layer's initial state,
    written over the H0 register). A stacked core's per-layer counters are read over the bus
    at every step. A carried ``state`` (x̂, ĥ, M) cannot be loaded into the core: UserError.
    ``core_dir``: a run-time core generated earlier (``drnn generate --weights runtime``),
    into which the bundle is loaded first."""
    if state is not None:
        raise UserError("a carried state (--state-in) needs the golden engine: the core can "
                        "load h0 but not x̂, ĥ and the delta memories")
    try:
        from drnn_sim.cosim import simulate
        from drnn_sim.runner import SimulationError
    except ImportError as e:  # pragma: no cover - drnn_sim ships with the package
        raise UserError(f"the verilator engine needs the drnn_sim package ({e})") from None
    try:
        r = simulate(bundle, shape or CoreShape(), x_codes, lengths, waves=waves, h0=h0,
                     layer_stats=bundle.num_layers > 1, core_dir=core_dir)
    except ValueError as e:
        raise UserError(f"h0: {e}") from None
    except SimulationError as e:
        first = str(e).splitlines()[0]
        raise UserError(f"verilator engine: {first}") from None
    last_perf.clear()
    last_perf.update(r.perf)
    return GoldenResult(h=r.h, nnz_dx=r.nnz_dx, nnz_dh=r.nnz_dh, cycles=r.cycles,
                        lengths=r.lengths, layer_nnz_dx=r.layer_nnz_dx,
                        layer_nnz_dh=r.layer_nnz_dh, layer_cycles=r.layer_cycles)
