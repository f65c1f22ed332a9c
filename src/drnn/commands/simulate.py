"""``drnn simulate``: run a bundle on inputs with the golden model or the RTL."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..engines import ENGINES, get_engine
from ..inputs import LAYOUTS, read_inputs, saturation_warning, write_stats
from drnn_hw.numerics import dequantize
from .common import core_options, load_bundle, shape_from_options


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="X.npy: float inputs in raw units (the bundle's normalisation is applied), "
                   "one sequence (T, I) or a batch in the --layout; each sequence starts from "
                   "the initial state. Values beyond the activation format after normalisation "
                   "saturate (a warning counts them). Shorter sequences may be padded at their "
                   "end with timesteps that are NaN in every feature (the UCR/UEA and aeon "
                   "convention): without --lengths, those trailing all-NaN timesteps set each "
                   "sequence's length. Any other NaN or infinity is an error.")
@click.option("--layout", type=click.Choice(list(LAYOUTS)), default="ntc", show_default=True,
              help="Order of a 3-D X.npy: ntc = (N, T, I), batch first; tnc = (T, N, I), the "
                   "layout of torch.nn.GRU with batch_first=False. H.npy is written in the same "
                   "layout.")
@click.option("--lengths", "lengths_path", type=click.Path(path_type=Path), default=None,
              help="LENGTHS.npy: N integers in [1, T], each sequence's length; steps past it "
                   "are not run and their X values are ignored.")
@click.option("--output", "output_path", required=True, type=click.Path(path_type=Path),
              help="H.npy: the hidden state after every step, float, in the layout of X.npy "
                   "((T, H), (N, T, H) or, with --layout tnc, (T, N, H)); NaN at the steps past "
                   "a sequence's length.")
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
    shape = shape_from_options(**core)
    inputs = read_inputs(input_path, bundle.input_size, layout=layout,
                         lengths_path=lengths_path)
    codes, saturation = bundle.quantize_input_counted(inputs.x, where=str(input_path),
                                                      valid=inputs.valid)
    warning = saturation_warning(input_path, saturation)
    if warning:
        click.echo(warning, err=True)
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

