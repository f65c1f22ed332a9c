"""The ULX3S build report: written by :func:`drnn_boards.ulx3s.build` (report.json and
report.txt), and read back by the bench (:func:`clock_from_build_report`), side by side so the
writer and the reader agree on one layout.

report.json keys: ``board``, ``device``, ``tools``, ``model`` (``input_size``, ``hidden_size``,
``formats``), ``core`` (the core shape), ``multipliers``, ``clock`` (``target_mhz``,
``pll_mhz``, ``pnr_constraint_mhz``, the clock nextpnr was constrained to, ``achieved_fmax_mhz``,
``timing_met``, against the PLL's clock, ``per_clock``, ``router``, the guard's record,
``nextpnr_seed``, and after a default-clock build that missed: ``first_attempt`` and, when a
second placement at the default missed too, ``seed_retry``: :func:`drnn_boards.ulx3s.
build_at_default_clock`), ``uart``, ``synth_cells``,
``utilization``, ``critical_path``, ``build_seconds``, ``bitstream``.
"""

from __future__ import annotations

import json
from pathlib import Path

from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.errors import UserError
from drnn_hw.io import read_json_object

__all__ = ["critical_path_summary", "parse_nextpnr_report", "yosys_cells", "format_report",
           "clock_from_build_report"]


def critical_path_summary(path: dict) -> dict:
    """One nextpnr critical path (``--report`` JSON) as start, end, and where the time goes."""
    segs = path.get("path", [])
    kinds = {}
    for s in segs:
        kinds[s.get("type", "?")] = kinds.get(s.get("type", "?"), 0.0) + float(s.get("delay", 0))
    cells = [s["to"]["cell"] for s in segs if s.get("type") == "logic" and "to" in s]
    return {
        "from": segs[0]["from"]["cell"] if segs else None,
        "to": segs[-1]["to"]["cell"] if segs else None,
        "delay_ns": round(sum(kinds.values()), 3),
        "logic_ns": round(kinds.get("logic", 0.0) + kinds.get("clk-to-q", 0.0)
                          + kinds.get("setup", 0.0), 3),
        "routing_ns": round(kinds.get("routing", 0.0), 3),
        "logic_cells": len(cells),
    }


def parse_nextpnr_report(report_path: Path, target_hz: float) -> dict:
    """Utilisation, per-clock Fmax and the worst same-clock critical path of nextpnr's
    ``--report`` JSON."""
    rep = json.loads(report_path.read_text())
    util = {k: {"used": v["used"], "available": v["available"]}
            for k, v in rep.get("utilization", {}).items()}
    fmax = {}
    for clk, v in rep.get("fmax", {}).items():
        fmax[clk] = {"achieved_mhz": round(v["achieved"], 2),
                     "constraint_mhz": round(v["constraint"], 2)}
    paths = [critical_path_summary(p) for p in rep.get("critical_paths", [])
             if p.get("from") == p.get("to")]
    worst = max(paths, key=lambda p: p["delay_ns"], default=None)
    return {"utilization": util, "fmax": fmax, "critical_path": worst}


def yosys_cells(rpt: Path) -> dict:
    """Cell counts of the synthesised design from the Yosys log (the last ``stat``)."""
    cells = {}
    text = rpt.read_text(errors="replace")
    start = text.rfind("Printing statistics.")
    for line in text[start:].splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and not parts[1].startswith("$"):
            cells[parts[1]] = int(parts[0])
        elif len(parts) == 2 and parts[1].isdigit():
            cells[parts[0]] = int(parts[1])
    return cells


def format_report(r: dict) -> str:
    c, u = r["clock"], r["utilization"]
    lines = [
        f"ULX3S-85F build ({r['device']}), core P={r['core']['rows']} K={r['core']['columns']} "
        f"E={r['core']['scan']} ({r['multipliers']} multipliers"
        f"{', compressed weights' if r['core'].get('weight_format') == 'compressed' else ''}), "
        f"I={r['model']['input_size']} H={r['model']['hidden_size']}"
        + (f" ({len(r['model']['layers'])} layers, H per layer "
           f"{', '.join(str(h) for _, h in r['model']['layers'])})"
           if len(r["model"].get("layers", [])) > 1 else ""),
        f"clock: target {c['target_mhz']:g} MHz, PLL {c['pll_mhz']:g} MHz, achieved Fmax "
        f"{c['achieved_fmax_mhz']} MHz -> timing {'met' if c['timing_met'] else 'NOT met'}"
        + (f" (nextpnr constrained to {c['pnr_constraint_mhz']:g} MHz)"
           if c.get("pnr_constraint_mhz", c["pll_mhz"]) != c["pll_mhz"] else "")
        + (f" (nextpnr --seed {c['nextpnr_seed']})" if c.get("nextpnr_seed") else ""),
        "synthesis cells: " + ", ".join(f"{k} {v}" for k, v in r["synth_cells"].items()),
        "placed: " + ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in u.items()
                               if v["used"]),
    ]
    first = c.get("first_attempt")
    if first:
        def how(attempt):
            return (f"Fmax {attempt['achieved_fmax_mhz']} MHz, not met"
                    if attempt.get("routed", True) else "did not route (congestion)")

        seed = first.get("nextpnr_seed")
        text = (f"first attempt at the default {first['target_mhz']:g} MHz"
                + (f" (--seed {seed})" if seed else "") + f": {how(first)}")
        again = c.get("seed_retry")
        if again:
            text += f"; placed again with --seed {again['nextpnr_seed']}: {how(again)}"
        if c["target_mhz"] == first["target_mhz"]:      # the second placement met it
            text += f"; placed again with --seed {c['nextpnr_seed']}"
        else:
            text += f"; rebuilt at {c['target_mhz']:g} MHz"
        lines.append(text)
    router = c.get("router") or {}
    if router.get("tmg_ripup") == "abandoned":
        why = (f"the routing stayed congested, lowest {router['overused_wires']} overused wires"
               if router.get("reason") == "congestion"
               else f"{router['failing_arcs']} arcs still failing")
        lines.append(f"router: timing-driven rip-up stopped after {router['iterations']} "
                     f"iterations ({why}), routed without it")
    cp = r.get("critical_path")
    if cp:
        lines.append(f"critical path: {cp['delay_ns']} ns ({cp['logic_ns']} logic, "
                     f"{cp['routing_ns']} routing, {cp['logic_cells']} cells) from {cp['from']} "
                     f"to {cp['to']}")
    slow = r.get("slow_paths")
    if slow:
        lines.append(f"endpoints over {slow['over_ns']:g} ns: {slow['endpoints']} (nextpnr's "
                     f"arrival times, before setup; worst {slow['worst_arrival_ns']} ns); "
                     f"slowest groups (ns, endpoints, last driver -> endpoint):")
        lines += [f"  {w:6.2f} {n:5d}  {s} -> {e}" for s, e, n, w in slow["groups"]]
    lines += [
        f"UART {r['uart']['baud']} baud (divisor {r['uart']['divisor']}); "
        f"build {r['build_seconds']} s; bitstream {r['bitstream']}",
    ]
    return "\n".join(lines) + "\n"


def clock_from_build_report(path, shape: CoreShape | None = None,
                            bundle: ModelBundle | None = None) -> tuple[float, str]:
    """The achieved Fmax (MHz) from a ``drnn build`` report.json, and a label saying where from.

    ``drnn build --board ulx3s-85f`` writes ``clock.achieved_fmax_mhz`` (nextpnr's Fmax of the
    core clock), ``clock.pll_mhz`` and ``clock.timing_met``; other reports may carry the Fmax
    under any key containing ``fmax`` (a number, or a mapping of clock domain -> number, of which
    the slowest counts), searched breadth-first. The label notes when the report was built for
    a different core shape or model size than the one benchmarked."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: build report not found")
    data = read_json_object(p)
    found = None
    clock = data.get("clock")
    if isinstance(clock, dict) and isinstance(clock.get("achieved_fmax_mhz"), (int, float)) \
            and clock["achieved_fmax_mhz"] > 0:
        found = float(clock["achieved_fmax_mhz"]), "clock.achieved_fmax_mhz"
    queue = [("", data)]
    while queue and found is None:
        prefix, node = queue.pop(0)
        if isinstance(node, dict):
            for k, v in node.items():
                key = f"{prefix}.{k}" if prefix else str(k)
                if "fmax" in str(k).lower():
                    vals = list(v.values()) if isinstance(v, dict) else [v]
                    vals = [x for x in vals if isinstance(x, (int, float)) and not
                            isinstance(x, bool) and x > 0]
                    if vals:
                        found = float(min(vals)), key
                        break
                queue.append((key, v))
        elif isinstance(node, list):
            queue.extend((f"{prefix}[{i}]", v) for i, v in enumerate(node))
    if found is None:
        raise UserError(f"{p}: no Fmax found (expected clock.achieved_fmax_mhz or a key "
                        "containing 'fmax' with a value in MHz)")
    mhz, key = found
    notes = []
    if isinstance(clock, dict) and "pll_mhz" in clock:
        notes.append(f"the board build clocks the core at {clock['pll_mhz']:g} MHz, timing "
                     f"{'met' if clock.get('timing_met') else 'NOT met'}")
    core = data.get("core")
    if shape is not None and isinstance(core, dict):
        try:            # reports written before the rename say pe/lanes for rows/columns
            built = CoreShape.from_dict(core)
        except (KeyError, TypeError, ValueError):
            built = None
        if built != shape:
            notes.append(f"WARNING: built for core {core}, benchmarked {shape.to_dict()}")
    model = data.get("model")
    if bundle is not None and isinstance(model, dict) and \
            (model.get("input_size"), model.get("hidden_size")) != \
            (bundle.input_size, bundle.hidden_size):
        notes.append(f"WARNING: built for I={model.get('input_size')} "
                     f"H={model.get('hidden_size')}, benchmarked I={bundle.input_size} "
                     f"H={bundle.hidden_size}")
    elif bundle is not None and isinstance(model, dict) and "layers" in model and \
            [list(v) for v in model["layers"]] != \
            [[ly.input_size, ly.hidden_size] for ly in bundle.layers]:
        notes.append(f"WARNING: built for layers {model['layers']}, benchmarked "
                     f"{[[ly.input_size, ly.hidden_size] for ly in bundle.layers]}")
    if bundle is not None and isinstance(model, dict) and \
            model.get("cell", "gru") != bundle.cell:
        notes.append(f"WARNING: built for the {model.get('cell', 'gru')} core, benchmarked "
                     f"the {bundle.cell} core")
    label = f"Fmax of the ECP5 build {p} ({key})" + (f"; {'; '.join(notes)}" if notes else "")
    return mhz, label
