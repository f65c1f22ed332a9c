"""``drnn dram-image``: the DRAM image a core generated with ``--weights axi`` reads.

A sub-command as well as ``export --dram-image`` (which writes it for the default core only):
the image depends on the core (P, the bus width), not only on the model, and is made from a
bundle, as ``generate`` is (which also writes it next to the Verilog)."""

from __future__ import annotations

from pathlib import Path

import click

from .common import core_options, load_bundle, require_core_shape, shape_from_options


@click.command("dram-image")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="FILE: the image (raw bytes, to be placed at WEIGHT_BASE).")
@core_options
def dram_image(model_dir, out, **core):
    """Write MODEL_DIR's weights in the layout the --weights axi core fetches (see
    drnn_hw.dram: block words of every gate's P weights, little-endian, column after column,
    layer after layer; with --weight-format compressed the pair words of the compressed core,
    kept (value, block) pairs per slice and column), for the core options given (the same as
    generate's; --weight-format auto gives the dense image)."""
    from drnn_hw.dram import column_bytes, dense_bytes
    from drnn_hw.dram import dram_image as make_image
    from drnn_hw.errors import UserError

    bundle = load_bundle(model_dir)
    core["weights"] = "axi"
    shape = shape_from_options(**core, hidden=max(ly.hidden_size for ly in bundle.layers))
    require_core_shape(bundle, model_dir, shape)
    if out.is_dir():
        raise UserError(f"{out}: --out is a directory, expected a file")
    image = make_image(bundle, shape)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(image)
    except OSError as e:
        raise UserError(f"{out}: cannot write the image ({e.strerror})") from None
    click.echo(f"{out}: {len(image)} bytes; {column_bytes(bundle, shape)} bytes per kept "
               f"column (per layer), {dense_bytes(bundle, shape)} per dense step")
