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
                             "core": {"rows": 16, "columns": 2, "scan": 16},
                             "model": {"input_size": 3, "hidden_size": 4}}))
    mhz, src = clock_from_build_report(p, CoreShape(rows=16, columns=2, scan=16),
                                         random_bundle(3, 4))
    assert mhz == 71.3 and "clock.achieved_fmax_mhz" in src and "50 MHz, timing met" in src
    assert "WARNING" not in src
    # a report written before the rename (pe/lanes) names the same core
    old = json.loads(p.read_text())
    old["core"] = {"pe": 16, "lanes": 2, "scan": 16}
    p_old = tmp_path / "old.json"
    p_old.write_text(json.dumps(old))
    _, src = clock_from_build_report(p_old, CoreShape(rows=16, columns=2, scan=16),
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
                             "core": {"rows": 16, "columns": 2, "scan": 16},
                             "model": {"input_size": 3, "hidden_size": 4,
                                       "layers": [[3, 5], [5, 4]]}}))
    shape = CoreShape(rows=16, columns=2, scan=16)
    _, src = clock_from_build_report(p, shape, random_bundle(3, 4))
    assert "WARNING: built for layers [[3, 5], [5, 4]], benchmarked [[3, 4]]" in src
    _, src = clock_from_build_report(p, shape, random_stacked_bundle(3, [5, 4]))
    assert "WARNING" not in src
