"""``drnn simulate``: run a bundle on inputs with the golden model or the RTL."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..engines import ENGINES, get_engine
from ..inputs import load_inputs, write_stats
from drnn_hw.numerics import dequantize
from .common import core_options, load_bundle, shape_from_options


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="X.npy: float (T, I) or (N, T, I); each sequence starts from the initial state.")
@click.option("--output", "output_path", required=True, type=click.Path(path_type=Path),
              help="H.npy: the hidden state after every step (float, same leading dims).")
@click.option("--engine", type=click.Choice(list(ENGINES)), default="golden", show_default=True)
@click.option("--stats", "stats_path", type=click.Path(path_type=Path), default=None,
              help="STATS.json: per-step nnz_dx, nnz_dh, cycles and totals.")
@click.option("--waves", type=click.Path(path_type=Path), default=None,
              help="Waveform file (RTL engines only).")
@core_options
def simulate(model_dir, input_path, output_path, engine, stats_path, waves, **core):
    """Run MODEL_DIR on X.npy and write the hidden states."""
    bundle = load_bundle(model_dir)
    shape = shape_from_options(**core)
    x, single = load_inputs(input_path, bundle.input_size)
    codes = bundle.quantize_input(x, where=str(input_path))
    result = get_engine(engine)(bundle, codes, shape=shape, waves=waves)
    h = dequantize(result.h, bundle.formats.act)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(output_path, h[0] if single else h)
    if stats_path:
        write_stats(stats_path, result, extra={"engine": engine, "core": shape.to_dict()})
    n, t = codes.shape[:2]
    click.echo(f"{engine}: {n} sequence(s) x {t} steps -> {output_path}; "
               f"mean cycles/step {result.flat('cycles').mean():.1f}")
