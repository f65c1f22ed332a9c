"""Every endpoint's arrival from nextpnr's detailed timing report (``drnn_boards.ulx3s_timing``).

The report below is written by hand in nextpnr's format (``common/kernel/report.cc``: per net
feeding an endpoint, each endpoint's [min, max] arrival in ns).
"""

import json

import pytest

from drnn_boards import ulx3s_timing as t
from drnn_boards.ulx3s import slow_paths

CLK = "posedge clk"


def _net(driver, port, endpoints, event=CLK):
    return {"driver": driver, "port": port, "net": f"{driver}.{port}", "event": event,
            "sources": [], "endpoints": [{"cell": c, "port": p, "event": e,
                                          "delay": [x / 2, x]} for c, p, x, e in endpoints]}


REPORT = {
    "detailed_net_timings": [
        _net("a_TRELLIS_FF_Q", "Q", [("r_TRELLIS_FF_Q_3", "DI", 1.5, CLK)]),
        _net("board.core.h7_TRELLIS_FF_Q_2_DI_LUT4_Z", "F",
             [("board.core.h7_TRELLIS_FF_Q_2", "DI", 12.25, CLK),
              ("board.core.h12_TRELLIS_FF_Q_0", "CE", 11.0, CLK)]),
        _net("board.core.mxv_r.a$23_LUT4_Z", "F",
             [("board.core.mxv_r.mul0_9.dsp", "A15", 14.5, CLK)]),
        _net("uart_rx.buf.buf0", "O", [("rx_sync.stage0_TRELLIS_FF_Q", "M", 2.8, CLK)],
             event="<async>"),
        _net("pll_FF_Q", "Q", [("pll_stage1_FF_Q", "M", 0.9, "posedge pll_clk")],
             event="posedge pll_clk"),
    ],
    "critical_paths": [
        {"from": "posedge pll_clk", "to": "posedge pll_clk", "path": [{"delay": 0.9}]},
        {"from": CLK, "to": CLK, "path": [{"delay": 14.5}, {"delay": 0.08}]},
        {"from": "<async>", "to": CLK, "path": [{"delay": 2.8}]},
    ],
}


def test_endpoints_of_the_critical_clock_worst_first():
    r = t.analyse(REPORT)
    assert r["clock"] == CLK
    assert r["nextpnr_critical_ns"] == pytest.approx(14.58)
    assert r["endpoints"] == [
        (14.5, "board.core.mxv_r.a$23_LUT4_Z", "board.core.mxv_r.mul0_9.dsp", "A15"),
        (12.25, "board.core.h7_TRELLIS_FF_Q_2_DI_LUT4_Z", "board.core.h7_TRELLIS_FF_Q_2", "DI"),
        (11.0, "board.core.h7_TRELLIS_FF_Q_2_DI_LUT4_Z", "board.core.h12_TRELLIS_FF_Q_0", "CE"),
        (1.5, "a_TRELLIS_FF_Q", "r_TRELLIS_FF_Q_3", "DI")]     # not the async or PLL ones
    assert [e[2] for e in t.analyse(REPORT, clock="posedge pll_clk")["endpoints"]] == \
        ["pll_stage1_FF_Q"]


def test_groups_name_cells_without_mapping_suffixes_or_indices():
    assert t.group_name("board.core.h37_TRELLIS_FF_Q_2") == "board.core.h#"
    assert t.group_name("board.core.mxv_r.a$23_LUT4_Z") == "board.core.mxv_r.a"
    slow = t.slow_groups(t.analyse(REPORT), over_ns=10.0)
    assert slow["endpoints"] == 3
    assert slow["groups"] == [
        ["board.core.mxv_r.a", "board.core.mxv_r.mul#_#.dsp", 1, 14.5],
        ["board.core.h#", "board.core.h#", 2, 12.25]]
    text = t.format_groups(t.analyse(REPORT), 10.0)
    assert text.splitlines()[0].startswith("3 endpoints over 10 ns in 2 groups")


def test_build_report_lists_slow_paths_and_tolerates_a_plain_report(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps(REPORT))
    slow = slow_paths(p)
    assert (slow["endpoints"], slow["over_ns"], slow["worst_arrival_ns"]) == (3, 10.0, 14.5)
    p.write_text(json.dumps({"critical_paths": []}))
    assert slow_paths(p) is None
    with pytest.raises(ValueError, match="detailed_net_timings"):
        t.analyse({"critical_paths": []})


def test_command_line_reports_a_missing_file_in_one_line(tmp_path, capsys):
    assert t.main([str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "none.json" in err and "\n" not in err
