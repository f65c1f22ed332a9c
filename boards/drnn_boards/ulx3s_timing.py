"""Every endpoint's worst path, from nextpnr's ``--detailed-timing-report``, not only the one.

nextpnr prints one critical path per clock. Closing timing on a design-wide problem (issue #10:
thousands of endpoints over 10 ns) one path per 20-minute build is slow; the report's
``detailed_net_timings`` hold the routed delay of every arc (driver port → sink port), so a
forward walk over them gives every endpoint's arrival time, and the groups of endpoints that
stand between the build and a faster clock can all be seen after one build.

The routing delays are nextpnr's own; the cell delays are not in the report and are constants
here (:data:`CELL_DELAY_NS`, ECP5 speed grade 6, read off nextpnr's critical-path reports of
this core: LUT 0.24–0.45 ns, carry 0.06 ns per cell, flip-flop clock-to-out 0.52 ns, DP16KD
without its output register 5.6 ns). The arrival times are therefore estimates; the worst one
is checked against nextpnr's critical path by :func:`analyse` (``agreement_ns``).

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

__all__ = ["CELL_DELAY_NS", "analyse", "group_name", "slow_groups", "format_groups", "main"]

#: Cell delays (ns) by what the port is: a startpoint's clock-to-out, a logic cell's
#: input-to-output, an endpoint's setup.
CELL_DELAY_NS = {
    "ff_clk_to_q": 0.52,          # TRELLIS_FF Q
    "bram_clk_to_q": 5.6,         # DP16KD DO* (REGMODE NOREG: Yosys never sets OUTREG)
    "dsp_clk_to_q": 0.9,          # MULT18X18D P* (output register on: see multiplier.py)
    "lut": 0.4,                   # TRELLIS_COMB A/B/C/D/M → F/OFX
    "carry": 0.06,                # TRELLIS_COMB FCI → FCO
    "setup": 0.1,
}

_RAM_WRITE = re.compile(r"^(WAD\d|WD\d?|WRE|WCK)$")       # a LUT-RAM's write port: an endpoint


def _start_delay(port: str) -> float | None:
    """The clock-to-out of a startpoint port, or None for a logic output."""
    if port == "Q":
        return CELL_DELAY_NS["ff_clk_to_q"]
    if re.fullmatch(r"DO[AB]\d+", port):
        return CELL_DELAY_NS["bram_clk_to_q"]
    if re.fullmatch(r"P\d+", port):
        return CELL_DELAY_NS["dsp_clk_to_q"]
    if port in ("F", "F0", "F1", "OFX", "OFX0", "OFX1", "FCO") or re.fullmatch(r"WA?DO\d", port):
        return None                  # logic (LUT, mux, carry; a LUT-RAM's write-port feed)
    return 0.0                       # I/O, PLL, clock buffers: the clock's own start


def _is_through(port: str) -> bool:
    """A logic cell's input that reaches its outputs (the rest are endpoints)."""
    return bool(re.fullmatch(r"(A|B|C|D|M|FCI|FXA|FXB|SEL)\d?", port)) and not _RAM_WRITE.match(port)


def group_name(cell: str) -> str:
    """A register's group: its name up to Yosys's mapping suffix, digits as ``#``
    (``board.core.h37_TRELLIS_FF_Q_2`` → ``board.core.h#``)."""
    base = re.split(r"_TRELLIS_|_LUT4_|\$|_DP16KD|_MULT18X18D|_CCU2C", cell, maxsplit=1)[0]
    return re.sub(r"\d+", "#", base)


def analyse(report: dict) -> dict:
    """Arrival time (ns) of every endpoint of the core's clock, its path's start and end
    groups, and how well the worst agrees with nextpnr's critical path.

    ``report``: nextpnr's ``--report`` JSON written with ``--detailed-timing-report``.
    Raises ValueError when the report has no ``detailed_net_timings``.
    Returns {"endpoints": [(arrival_ns, start_cell, end_cell, end_port)], sorted worst first,
    "nextpnr_critical_ns", "agreement_ns"}.
    """
    nets = report.get("detailed_net_timings")
    if not nets:
        raise ValueError("the report has no detailed_net_timings (nextpnr "
                         "--detailed-timing-report)")
    # Arcs: driver (cell, port) → [(sink cell, sink port, delay)]; a cell's outputs.
    fanout = defaultdict(list)
    outputs = defaultdict(set)
    inputs = defaultdict(list)       # logic cell → [(driver cell, driver port, delay)]
    for n in nets:
        drv = (n["driver"], n["port"])
        outputs[n["driver"]].add(n["port"])
        for e in n["endpoints"]:
            fanout[drv].append((e["cell"], e["port"], e["delay"][1]))
            if _is_through(e["port"]):
                inputs[e["cell"]].append((n["driver"], n["port"], e["delay"][1], e["port"]))
    # Forward walk with memoised arrival per logic cell (iterative: carry chains are deep).
    arrival: dict[str, tuple[float, str]] = {}        # logic cell → (arrival at its output, start)

    def out_arrival(cell: str, port: str) -> tuple[float, str]:
        d = _start_delay(port)
        if d is not None:
            return d, cell
        return arrival_of(cell, port)

    def arrival_of(cell: str, port: str) -> tuple[float, str]:
        if cell in arrival:
            a, s = arrival[cell]
            return a, s
        stack = [cell]
        visiting = set()
        while stack:
            c = stack[-1]
            if c in arrival:
                stack.pop()
                continue
            visiting.add(c)
            pending = [d for d, p, _, _ in inputs[c]
                       if _start_delay(p) is None and d not in arrival and d not in visiting]
            if pending:
                stack.extend(pending)
                continue
            best = (0.0, c)
            for d, p, delay, sink_port in inputs[c]:
                start = _start_delay(p)
                if start is not None:
                    a, s = start, d
                elif d in arrival:
                    a, s = arrival[d]
                else:                                   # a combinational loop: cut here
                    continue
                a += delay + (CELL_DELAY_NS["carry"] if sink_port == "FCI"
                              else CELL_DELAY_NS["lut"])
                if a > best[0]:
                    best = (a, s)
            arrival[c] = best
            visiting.discard(c)
            stack.pop()
        return arrival[cell]

    endpoints = []
    for (cell, port), sinks in fanout.items():
        a0, start = out_arrival(cell, port)
        for sink, sink_port, delay in sinks:
            if _is_through(sink_port) and _start_delay_of_cell(outputs, sink) is None:
                continue                                # a logic input: not an endpoint
            endpoints.append((round(a0 + delay + CELL_DELAY_NS["setup"], 3), start, sink,
                              sink_port))
    endpoints.sort(reverse=True)
    critical = None
    for c in report.get("critical_paths", []):
        if c.get("from", "").startswith("posedge") and c.get("from") == c.get("to"):
            t = sum(s["delay"] for s in c["path"])
            critical = t if critical is None else max(critical, t)
    worst = endpoints[0][0] if endpoints else None
    return {"endpoints": endpoints, "nextpnr_critical_ns": critical,
            "agreement_ns": None if critical is None or worst is None
            else round(worst - critical, 3)}


def _start_delay_of_cell(outputs, cell: str) -> float | None:
    """None when ``cell`` is a logic cell (any of its outputs is a logic output)."""
    ports = outputs.get(cell)
    if not ports:
        return 0.0                                     # drives nothing: a register or a sink
    if any(_start_delay(p) is None for p in ports):
        return None
    return 0.0


def slow_groups(result: dict, over_ns: float) -> dict:
    """The endpoints slower than ``over_ns`` grouped by (start group, end group).

    Returns {"over_ns", "endpoints": count, "groups": [[start, end, count, worst_ns], ...]}
    worst group first."""
    groups = defaultdict(list)
    for a, start, end, _ in result["endpoints"]:
        if a > over_ns:
            groups[(group_name(start), group_name(end))].append(a)
    ranked = sorted(groups.items(), key=lambda kv: (-max(kv[1]), kv[0]))
    return {"over_ns": over_ns, "endpoints": sum(len(v) for v in groups.values()),
            "groups": [[s, e, len(v), max(v)] for (s, e), v in ranked]}


def format_groups(result: dict, over_ns: float, top: int = 25) -> str:
    """:func:`slow_groups` as text, ``top`` groups."""
    slow = slow_groups(result, over_ns)
    lines = [f"{slow['endpoints']} endpoints over {over_ns:g} ns in {len(slow['groups'])} "
             f"groups (worst ns, endpoints, start -> end)"]
    if result["nextpnr_critical_ns"] is not None:
        lines.append(f"(worst estimate {result['endpoints'][0][0]:.2f} ns; nextpnr's critical "
                     f"path {result['nextpnr_critical_ns']:.2f} ns)")
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
