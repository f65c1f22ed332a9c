"""The ULX3S build report read back by the bench: Fmax, and notes when it was built for
another core or model."""

import json

import pytest

from drnn_boards.ulx3s_report import clock_from_build_report
from drnn_hw.bundle import random_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.errors import UserError

SHAPE = CoreShape(rows=2, columns=2, scan=4)


def test_clock_from_build_report(tmp_path):
    p = tmp_path / "report.json"
    p.write_text(json.dumps({"board": "ulx3s-85f", "timing": {"fmax_mhz": {"sync": 62.5,
                                                                          "uart": 80.0}}}))
    mhz, src = clock_from_build_report(p)
    assert mhz == 62.5 and "timing.fmax_mhz" in src
    # the layout `drnn build --board ulx3s-85f` writes
    p.write_text(json.dumps({"clock": {"target_mhz": 50, "pll_mhz": 50.0, "timing_met": True,
                                       "achieved_fmax_mhz": 71.3,
                                       "per_clock": {"sync": {"achieved_mhz": 71.3}}},
                             "core": {"rows": 16, "columns": 2, "scan": 16,
                                      "step_overlap": True},
                             "model": {"input_size": 3, "hidden_size": 4}}))
    mhz, src = clock_from_build_report(p, CoreShape(rows=16, columns=2, scan=16),
                                         random_bundle(3, 4))
    assert mhz == 71.3 and "clock.achieved_fmax_mhz" in src and "50 MHz, timing met" in src
    assert "WARNING" not in src
    # a report written before the step overlap was the default (no key) built a core without
    # it: another netlist than the default core's
    before = json.loads(p.read_text())
    del before["core"]["step_overlap"]
    p_before = tmp_path / "before.json"
    p_before.write_text(json.dumps(before))
    _, src = clock_from_build_report(p_before, CoreShape(rows=16, columns=2, scan=16),
                                     random_bundle(3, 4))
    assert "WARNING: built for core" in src
    _, src = clock_from_build_report(p_before, CoreShape(rows=16, columns=2, scan=16,
                                                         step_overlap=False),
                                     random_bundle(3, 4))
    assert "WARNING" not in src
    # a report written before the rename (pe/lanes) names the same core (one without the step
    # overlap, which came later)
    old = json.loads(p.read_text())
    old["core"] = {"pe": 16, "lanes": 2, "scan": 16}
    p_old = tmp_path / "old.json"
    p_old.write_text(json.dumps(old))
    _, src = clock_from_build_report(p_old, CoreShape(rows=16, columns=2, scan=16,
                                                      step_overlap=False),
                                     random_bundle(3, 4))
    assert "WARNING" not in src
    _, src = clock_from_build_report(p_old, CoreShape(rows=8, columns=2, scan=16),
                                     random_bundle(3, 4))
    assert "WARNING: built for core" in src
    _, src = clock_from_build_report(p, SHAPE, random_bundle(3, 5))
    assert "WARNING: built for core" in src and "H=4, benchmarked I=3 H=5" in src
    p.write_text(json.dumps({"fmax": 48.2}))
    assert clock_from_build_report(p)[0] == 48.2
    p.write_text(json.dumps({"nothing": 1}))
    with pytest.raises(UserError, match="no Fmax"):
        clock_from_build_report(p)
    p.write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        clock_from_build_report(p)
    with pytest.raises(UserError, match="not found"):
        clock_from_build_report(tmp_path / "none.json")


def test_a_build_of_other_layers_is_named(tmp_path):
    from drnn_hw.bundle import random_stacked_bundle

    p = tmp_path / "report.json"
    p.write_text(json.dumps({"clock": {"target_mhz": 40, "pll_mhz": 40.0, "timing_met": True,
                                       "achieved_fmax_mhz": 41.8},
                             "core": {"rows": 16, "columns": 2, "scan": 16,
                                      "step_overlap": True},
                             "model": {"input_size": 3, "hidden_size": 4,
                                       "layers": [[3, 5], [5, 4]]}}))
    shape = CoreShape(rows=16, columns=2, scan=16)
    _, src = clock_from_build_report(p, shape, random_bundle(3, 4))
    assert "WARNING: built for layers [[3, 5], [5, 4]], benchmarked [[3, 4]]" in src
    _, src = clock_from_build_report(p, shape, random_stacked_bundle(3, [5, 4]))
    assert "WARNING" not in src


@pytest.mark.parametrize("router, says", [
    ({"tmg_ripup": "converged", "iterations": 58, "failing_arcs": None}, None),
    ({"tmg_ripup": "abandoned", "iterations": 208, "failing_arcs": 89,
      "reason": "failing arcs", "overused_wires": 0},
     "stopped after 208 iterations (89 arcs still failing), routed without it"),
    ({"tmg_ripup": "abandoned", "iterations": 67, "failing_arcs": None,
      "reason": "congestion", "overused_wires": 785},
     "stopped after 67 iterations (the routing stayed congested, lowest 785 overused wires), "
     "routed without it"),
    # a report of a build before the congestion rule (no reason)
    ({"tmg_ripup": "abandoned", "iterations": 208, "failing_arcs": 89},
     "stopped after 208 iterations (89 arcs still failing), routed without it"),
])
def test_report_text_says_why_the_rip_up_was_stopped(router, says):
    from drnn_boards.ulx3s_report import format_report

    rep = {"clock": {"target_mhz": 70, "pll_mhz": 70.0, "achieved_fmax_mhz": 66.0,
                     "timing_met": False, "router": router},
           "critical_path": None, "build_seconds": 1.0, "device": "d", "board": "b",
           "core": {"rows": 4, "columns": 2, "scan": 4}, "multipliers": 24,
           "model": {"input_size": 3, "hidden_size": 5}, "synth_cells": {},
           "utilization": {}, "uart": {"baud": 1, "divisor": 1}, "bitstream": "x.bit"}
    lines = [ln for ln in format_report(rep).splitlines() if ln.startswith("router:")]
    assert lines == ([] if says is None else [f"router: timing-driven rip-up {says}"])


@pytest.mark.parametrize("seed", [None, 3])
def test_report_text_names_the_placement_seed(seed):
    """A build with ``drnn build --seed`` says so on its clock line (another seed is another
    placement: its Fmax is not the default build's)."""
    from drnn_boards.ulx3s_report import format_report

    rep = {"clock": {"target_mhz": 80, "pll_mhz": 80.0, "achieved_fmax_mhz": 81.0,
                     "timing_met": True, "nextpnr_seed": seed},
           "critical_path": None, "build_seconds": 1.0, "device": "d", "board": "b",
           "core": {"rows": 4, "columns": 2, "scan": 4}, "multipliers": 24,
           "model": {"input_size": 3, "hidden_size": 5}, "synth_cells": {},
           "utilization": {}, "uart": {"baud": 1, "divisor": 1}, "bitstream": "x.bit"}
    clock = [ln for ln in format_report(rep).splitlines() if ln.startswith("clock:")]
    assert clock == ["clock: target 80 MHz, PLL 80 MHz, achieved Fmax 81.0 MHz -> timing met"
                     + ("" if seed is None else " (nextpnr --seed 3)")]
