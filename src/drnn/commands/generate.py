"""``drnn generate``: a bundle to synthesizable Verilog and a manifest."""

from __future__ import annotations

from pathlib import Path

import click

from .common import (TARGETS, core_options, load_bundle, maxima_from_options, require_core_shape,
                     require_fits_on_chip, shape_from_options, weights_options)


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="BUILD_DIR: receives NAME.v and manifest.json.")
@click.option("--name", default="drnn_core", show_default=True,
              help="Top module name (and Verilog file name).")
@click.option("--no-mul-count", "no_mul_count", is_flag=True,
              help="Skip the Yosys $mul count (slow on large cores; manifest gets null).")
@click.option("--target", type=click.Choice(TARGETS), default="ulx3s-85f", show_default=True,
              help="The FPGA whose block RAM on-chip weights must fit (a larger model needs "
                   "--weights axi).")
@core_options
@weights_options
def generate(model_dir, out_dir, name, no_mul_count, target, weights, max_inputs, max_hidden,
             max_layers, max_kept, **core):
    """Generate the core for MODEL_DIR (delta-GRU or delta-LSTM, the bundle's cell) as one
    Verilog file in BUILD_DIR. With --weights runtime the core runs any model of the bundle's
    cell and formats up to the --max-* sizes, loaded at run time; with --weights axi also the
    DRAM image NAME_weights.bin."""
    from drnn_hw.errors import UserError
    from drnn_hw.generate import generate as _generate
    from drnn_hw.yosys import YosysError

    bundle = load_bundle(model_dir)
    maxima = maxima_from_options(bundle, weights, max_inputs, max_hidden, max_layers,
                                 max_kept)
    shape = shape_from_options(**core, weights=weights, runtime_ok=True, bundle=bundle,
                               hidden=maxima.hidden if maxima else
                               max(ly.hidden_size for ly in bundle.layers))
    require_core_shape(bundle, model_dir, shape)
    require_fits_on_chip(bundle, model_dir, shape, target, maxima)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: --out exists and is not a directory")
    try:
        manifest = _generate(bundle, shape, out_dir, name=name, count_muls=not no_mul_count,
                             maxima=maxima)
    except YosysError as e:
        raise UserError(str(e)) from None
    p = manifest["parameters"]
    kept = "/".join(str(e.get("kept")) for e in p["layers"])
    click.echo(f"{out_dir / manifest['verilog']}: {p['cell'].upper()} I={p['I']} H={p['H']} "
               f"P={p['P']} K={p['K']} E={p['E']}; {manifest['multipliers']} multipliers " +
               ("(not counted by Yosys: --no-mul-count)" if manifest["multipliers_yosys"] is None
                else f"(yosys counts {manifest['multipliers_yosys']})") +
               ("" if p.get("weight_format") != "compressed" else
                f"; compressed weights, {kept} (value, row) pair(s) per slice and column") +
               ("" if maxima is None else
                f"; run-time weights for I ≤ {maxima.inputs}, H ≤ {maxima.hidden}, "
                f"L ≤ {maxima.layers}"))
    if shape.weights == "axi":
        w = manifest["weights"]
        click.echo(f"{out_dir / w['image']}: weights in DRAM, {w['image_bytes']} bytes, "
                   f"{w['column_bytes']} bytes per kept delta's column (load it at WEIGHT_BASE, "
                   f"a multiple of 4096)")
