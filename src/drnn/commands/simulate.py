"""``drnn simulate``: run a bundle on inputs with the golden model or the RTL."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from drnn_hw.numerics import dequantize

from ..engines import ENGINES, get_engine
from ..inputs import write_stats
from .common import (check_output_paths, core_options, input_options, load_bundle,
                     read_codes, require_single_layer, shape_from_options)


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@input_options
@click.option("--engine", type=click.Choice(list(ENGINES)), default="golden", show_default=True)
@click.option("--stats", "stats_path", type=click.Path(path_type=Path), default=None,
              help="STATS.json: per-step nnz_dx, nnz_dh, cycles of the steps that ran "
                   "(sequences in order), their totals, and the lengths.")
@click.option("--waves", type=click.Path(path_type=Path), default=None,
              help="Waveform file (RTL engines only).")
@core_options
def simulate(model_dir, input_path, layout, lengths_path, output_path, engine, stats_path,
             waves, **core):
    """Run MODEL_DIR on X.npy and write the hidden states."""
    bundle = load_bundle(model_dir)
    if engine != "golden":
        require_single_layer(bundle, model_dir)
    shape = shape_from_options(**core, hidden=max(layer.hidden_size for layer in bundle.layers))
    check_output_paths(output_path, stats_path)
    inputs, codes = read_codes(bundle, input_path, layout, lengths_path)
    result = get_engine(engine)(bundle, codes, lengths=inputs.lengths, shape=shape, waves=waves)
    h = inputs.to_file_layout(dequantize(result.h, bundle.formats.act))
    output_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(output_path, h)
    if stats_path:
        write_stats(stats_path, result, extra={"engine": engine, "core": shape.to_dict()})
    cycles = result.flat("cycles")
    click.echo(f"{engine}: {codes.shape[0]} sequence(s), {cycles.size} steps "
               f"(longest {codes.shape[1]}) -> {output_path}; "
               f"mean cycles/step {cycles.mean():.1f}")

