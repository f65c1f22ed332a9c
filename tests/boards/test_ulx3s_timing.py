"""Every endpoint's path from nextpnr's detailed arc delays (``drnn_boards.ulx3s_timing``).

The expected arrival times are summed by hand from the arcs below and the stated cell delays
(:data:`CELL_DELAY_NS`), not taken from the code.
"""

import json

import pytest

from drnn_boards import ulx3s_timing as t
from drnn_boards.ulx3s import slow_paths

D = t.CELL_DELAY_NS


def _net(driver, port, endpoints):
    return {"driver": driver, "port": port, "net": f"{driver}.{port}", "event": "posedge clk",
            "sources": [], "endpoints": [{"cell": c, "port": p, "event": "posedge clk",
                                          "delay": [x / 2, x]} for c, p, x in endpoints]}


# a (FF) -2.0-> lut1 -3.0-> lut2 -1.0-> b[2].CE; lut1 -0.0-> carry -0.5-> b[1].DI;
# a -1.0-> r.DI; a BRAM word -1.0-> b[7].DI.
REPORT = {
    "detailed_net_timings": [
        _net("a_TRELLIS_FF_Q", "Q", [("lut1", "A", 2.0), ("r_TRELLIS_FF_Q_3", "DI", 1.0)]),
        _net("lut1", "F", [("lut2", "B", 3.0), ("carry", "FCI", 0.0)]),
        _net("carry", "FCO", [("b_TRELLIS_FF_Q_1", "DI", 0.5)]),
        _net("lut2", "F", [("b_TRELLIS_FF_Q_2", "CE", 1.0)]),
        _net("mem.0.0", "DOA0", [("b_TRELLIS_FF_Q_7", "DI", 1.0)]),
    ],
    "critical_paths": [{"from": "posedge clk", "to": "posedge clk",
                        "path": [{"delay": 7.0}, {"delay": 0.5}]}],
}


def test_every_endpoint_gets_its_worst_arrival():
    r = t.analyse(REPORT)
    got = {(end, port): (a, start) for a, start, end, port in r["endpoints"]}
    assert got[("b_TRELLIS_FF_Q_2", "CE")] == (
        pytest.approx(D["ff_clk_to_q"] + 2.0 + D["lut"] + 3.0 + D["lut"] + 1.0 + D["setup"]),
        "a_TRELLIS_FF_Q")
    assert got[("b_TRELLIS_FF_Q_1", "DI")][0] == pytest.approx(
        D["ff_clk_to_q"] + 2.0 + D["lut"] + D["carry"] + 0.5 + D["setup"])
    assert got[("r_TRELLIS_FF_Q_3", "DI")][0] == pytest.approx(D["ff_clk_to_q"] + 1.0 + D["setup"])
    assert got[("b_TRELLIS_FF_Q_7", "DI")] == (
        pytest.approx(D["bram_clk_to_q"] + 1.0 + D["setup"]), "mem.0.0")
    assert ("lut1", "C") not in got and ("lut2", "B") not in got     # logic inputs
    assert [a for a, *_ in r["endpoints"]] == sorted((a for a, *_ in r["endpoints"]),
                                                     reverse=True)
    assert r["nextpnr_critical_ns"] == pytest.approx(7.5)
    assert r["agreement_ns"] == pytest.approx(r["endpoints"][0][0] - 7.5)


def test_a_combinational_loop_ends_the_walk():
    """nextpnr refuses combinational loops, but a report must not hang the analysis."""
    loop = {"detailed_net_timings": [
        _net("a_TRELLIS_FF_Q", "Q", [("x", "A", 1.0)]),
        _net("x", "F", [("y", "A", 1.0), ("b_TRELLIS_FF_Q", "DI", 1.0)]),
        _net("y", "F", [("x", "B", 1.0)])]}
    assert [e[2] for e in t.analyse(loop)["endpoints"]] == ["b_TRELLIS_FF_Q"]


def test_groups_name_registers_without_mapping_suffixes_or_indices():
    assert t.group_name("board.core.h37_TRELLIS_FF_Q_2") == "board.core.h#"
    slow = t.slow_groups(t.analyse(REPORT), over_ns=6.0)
    assert slow["endpoints"] == 2
    assert [g[:3] for g in slow["groups"]] == [["a", "b", 1], ["mem.#.#", "b", 1]]


def test_build_report_lists_slow_paths_and_tolerates_a_plain_report(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps(REPORT))
    slow = slow_paths(p)
    assert slow["endpoints"] == 0 and slow["over_ns"] == 10.0
    assert slow["worst_estimate_ns"] == pytest.approx(t.analyse(REPORT)["endpoints"][0][0])
    p.write_text(json.dumps({"critical_paths": []}))
    assert slow_paths(p) is None
    with pytest.raises(ValueError, match="detailed_net_timings"):
        t.analyse({"critical_paths": []})


def test_command_line_reports_a_missing_file_in_one_line(tmp_path, capsys):
    assert t.main([str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "none.json" in err and "\n" not in err
