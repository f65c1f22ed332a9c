"""What each block of the core costs on the ECP5, from Yosys ``synth_ecp5`` without flattening.

Issue #10 asks what the delta memories, the references and the output buffer cost in LUTs and
flip-flops, before and after its clock work. They live in these blocks of the hierarchy:

* ``mxv_r``, ``mxv_z``, ``mxv_n``: an MxV channel each: its delta memory (M_r, M_z; M_nx and
  M_nh), the multipliers' operand muxes, the column sums and the saturation flags;
* ``encoder``: the delta encoder with the references x̂ and ĥ and the window muxes;
* the top (``drnn_core`` itself): the hidden state h, the output holding buffer and beat
  register, the step's control;
* ``ap``, ``queue``, ``weights``, ``regs``, ``x_fifo``: the rest.

Run from the repository (after ``make demo``), for the code on ``PYTHONPATH``::

    .venv/bin/python docs/analysis/block_utilisation.py OUT.json [MODEL_DIR]

It generates the default core for the demo model (or MODEL_DIR's bundle), synthesises it
for the ECP5 (the same LUT-mapping steps as ``drnn report --target ecp5-85k``, but
``-noflatten``, and the ``_dup`` registers kept as in the ULX3S flow, ``drnn_boards.ulx3s``)
and writes each module's LUT4, flip-flops (TRELLIS_FF), LUT-RAM (TRELLIS_DPR16X4), carry
cells (CCU2C), MULT18X18D and DP16KD, with the totals of its submodules included.
"""

import json
import sys
import tempfile
from pathlib import Path

from amaranth.back import verilog

from drnn_hw import yosys
from drnn_hw.bundle import ModelBundle
from drnn_hw.core import DeltaRNNCore

GROUPS = {"LUT4": ("LUT4",), "FF": ("TRELLIS_FF",), "LUT-RAM": ("TRELLIS_DPR16X4",),
          "CCU2C": ("CCU2C",), "MULT18X18D": ("MULT18X18D",), "DP16KD": ("DP16KD",)}

out = Path(sys.argv[1])
core = DeltaRNNCore(ModelBundle.load(sys.argv[2] if len(sys.argv) > 2 else "build/demo/model"))
text = verilog.convert(core, name="drnn_core")
with tempfile.TemporaryDirectory() as tmp:
    (Path(tmp) / "design.v").write_text(text)
    synth = "synth_ecp5 -noflatten -top drnn_core"
    # As the ULX3S flow: registers named *_dup (copies placed near their loads) are kept.
    yosys.run("\n".join(["read_verilog design.v", "proc",
                         "setattr -set keep 1 w:*_dup %a %ci1:+$dff[Q]",
                         f"{synth} -run begin:map_luts",
                         "techmap -map +/lattice/latches_map.v", "abc -lut 4 -dress", "clean",
                         f"{synth} -run map_cells:", "tee -q -o stat.json stat -json"]),
              tmp, what="yosys synth_ecp5 -noflatten")
    stat = json.loads((Path(tmp) / "stat.json").read_text())

# Module names carry Yosys's leading backslash; instance cell types do not.
modules = {k.lstrip("\\"): v for k, v in stat["modules"].items()}


def own(name):
    return {g: sum(modules[name]["num_cells_by_type"].get(c, 0) for c in cells)
            for g, cells in GROUPS.items()}


def total(name):
    # A module's cells plus its submodules' (instances of other modules of the design).
    t = own(name)
    for kind, n in modules[name]["num_cells_by_type"].items():
        if kind in modules:
            for g, v in total(kind).items():
                t[g] += n * v
    return t


top = "drnn_core"
result = {"top_own": own(top), "top_total": total(top), "blocks": {}}
for kind in modules[top]["num_cells_by_type"]:
    if kind in modules:
        result["blocks"][kind.split(".")[-1]] = total(kind)
out.write_text(json.dumps(result, indent=1) + "\n")
for name, v in [("(top, own cells)", result["top_own"]), *result["blocks"].items(),
                ("total", result["top_total"])]:
    print(f"{name:24s} " + "  ".join(f"{g} {v[g]}" for g in GROUPS))
