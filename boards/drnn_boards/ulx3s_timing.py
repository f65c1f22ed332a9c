"""Every endpoint's arrival time from nextpnr's ``--detailed-timing-report``, not only the worst.

nextpnr prints one critical path per clock. Closing timing on a design-wide problem (issue #10:
thousands of endpoints over 10 ns) one path per 15-minute build is slow. With
``--detailed-timing-report`` the report's ``detailed_net_timings`` list, for every net that
feeds a timing endpoint (a flip-flop's, block RAM's or DSP's registered input), each such sink
with its arrival time: nextpnr's own figure, clock-to-out, logic and routing from the launching
register included (``common/kernel/report.cc``: ``delay`` = [min, max] arrival, ns), before the
sink's setup time (0–0.3 ns here). The net's driver is the last cell before the endpoint (a
LUT, or the launching register itself), so each endpoint is named by (driver, endpoint);
grouped by register name, they show every path group that stands between the build and a
faster clock after one build.

Run on a build (``drnn build --board ulx3s-85f ... --out DIR``)::

    python -m drnn_boards.ulx3s_timing DIR/build/drnn_ulx3s.report.json [--over NS]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

__all__ = ["analyse", "group_name", "slow_groups", "format_groups", "main"]


def group_name(cell: str) -> str:
    """A cell's group: its name up to Yosys's mapping suffix, digits as ``#``
    (``board.core.h37_TRELLIS_FF_Q_2`` → ``board.core.h#``)."""
    base = re.split(r"_TRELLIS_|_LUT4_|\$|_DP16KD|_MULT18X18D|_CCU2C|_PFUMX|_L6MUX", cell,
                    maxsplit=1)[0]
    return re.sub(r"\d+", "#", base)


def analyse(report: dict, clock: str | None = None) -> dict:
    """Every endpoint of one clock (default: the clock of nextpnr's worst same-clock critical
    path) with its arrival time, worst first.

    ``report``: nextpnr's ``--report`` JSON written with ``--detailed-timing-report``.
    Raises ValueError when the report has no ``detailed_net_timings``.
    Returns {"clock", "endpoints": [(arrival_ns, driver_cell, endpoint_cell, endpoint_port)],
    "nextpnr_critical_ns"} (the critical path's total, setup included).
    """
    nets = report.get("detailed_net_timings")
    if not nets:
        raise ValueError("the report has no detailed_net_timings (nextpnr "
                         "--detailed-timing-report)")
    critical = None
    for c in report.get("critical_paths", []):
        if c.get("from") == c.get("to") and c.get("from", "").startswith("posedge"):
            t = sum(float(s["delay"]) for s in c["path"])
            if critical is None or t > critical[0]:
                critical = (t, c["from"])
    if clock is None and critical is not None:
        clock = critical[1]
    endpoints = []
    for n in nets:
        if clock is not None and n.get("event") != clock:
            continue
        for e in n["endpoints"]:
            if clock is not None and e.get("event") != clock:
                continue
            endpoints.append((round(float(e["delay"][1]), 3), n["driver"], e["cell"], e["port"]))
    endpoints.sort(reverse=True)
    return {"clock": clock, "endpoints": endpoints,
            "nextpnr_critical_ns": None if critical is None else round(critical[0], 3)}


def slow_groups(result: dict, over_ns: float) -> dict:
    """The endpoints slower than ``over_ns`` grouped by (start group, end group).

    Returns {"over_ns", "endpoints": count, "groups": [[driver, end, count, worst_ns], ...]}
    worst group first."""
    groups = defaultdict(list)
    for a, driver, end, _ in result["endpoints"]:
        if a > over_ns:
            groups[(group_name(driver), group_name(end))].append(a)
    ranked = sorted(groups.items(), key=lambda kv: (-max(kv[1]), kv[0]))
    return {"over_ns": over_ns, "endpoints": sum(len(v) for v in groups.values()),
            "groups": [[s, e, len(v), max(v)] for (s, e), v in ranked]}


def format_groups(result: dict, over_ns: float, top: int = 25) -> str:
    """:func:`slow_groups` as text, ``top`` groups."""
    slow = slow_groups(result, over_ns)
    lines = [f"{slow['endpoints']} endpoints over {over_ns:g} ns in {len(slow['groups'])} "
             f"groups (worst arrival ns, endpoints, last driver -> endpoint)"]
    if result["nextpnr_critical_ns"] is not None:
        lines.append(f"(clock {result['clock']}; worst arrival {result['endpoints'][0][0]:.2f} "
                     f"ns; nextpnr's critical path with setup {result['nextpnr_critical_ns']:.2f} "
                     f"ns)")
    for s, e, n, worst in slow["groups"][:top]:
        lines.append(f"  {worst:6.2f}  {n:5d}  {s} -> {e}")
    if len(slow["groups"]) > top:
        lines.append(f"  ... {len(slow['groups']) - top} more groups")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m drnn_boards.ulx3s_timing",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path, help="nextpnr --report JSON (--detailed-timing-report)")
    ap.add_argument("--over", type=float, default=10.0,
                    help="list endpoints slower than this, ns (default 10: 100 MHz)")
    ap.add_argument("--top", type=int, default=25, help="groups to list (default 25)")
    args = ap.parse_args(argv)
    try:
        report = json.loads(args.report.read_text())
        result = analyse(report)
    except (OSError, ValueError) as e:
        print(f"error: {args.report}: {e}", file=sys.stderr)
        return 2
    print(format_groups(result, args.over, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
