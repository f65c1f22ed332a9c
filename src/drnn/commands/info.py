"""``drnn info``: summarise a model bundle."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from drnn_hw.balance import matrix_sparsity
from drnn_hw.cycle_model import PRESETS
from .common import load_bundle


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
def info(model_dir):
    """Summarise the bundle in MODEL_DIR: sizes, formats, input range, thresholds, task, head,
    and the weight sparsity per matrix (with the column-balanced pattern, when there is one)."""
    b = load_bundle(model_dir)
    f = b.formats
    I, H = b.input_size, b.hidden_size
    gates = int(np.shape(b.layers[0].w_x)[0])          # 3 (GRU r, z, n) or 4 (LSTM i, f, g, o)
    weights = sum(gates * ly.hidden_size * (ly.input_size + ly.hidden_size) for ly in b.layers)
    click.echo(f"bundle      {model_dir}  ({b.name}; {b.source or 'no source recorded'})")
    if b.cell == "lstm":
        click.echo(f"cell        LSTM (gates i, f, g, o; cell state c in {f.cell})")
    else:
        click.echo("cell        GRU (gates r, z, n)")
    stack = f"{b.num_layers} layers, " if b.num_layers > 1 else ""
    click.echo(f"sizes       {stack}I={I} H={H}  weights={weights} "
               f"({weights * f.w_bits / 8 / 1024:.1f} KiB at {f.w_bits} bits)")
    click.echo(f"formats     act {f.act}, delta {f.delta}, weight {f.weight}, acc {f.acc}")
    click.echo(f"LUTs        {f.lut_entries} entries; sigmoid ±{2 ** f.sigmoid_range_log2}, "
               f"tanh ±{2 ** f.tanh_range_log2}; output LSB {f.act.lsb}")
    act = f.act
    normalised = bool(np.any(b.input_mean != 0) or np.any(b.input_scale != 1))
    click.echo(f"inputs      {'(x - mean) / scale per feature' if normalised else 'raw'}, "
               f"then {act}; beyond ±{2 ** (act.bits - 1 - act.frac):g} saturates")
    if b.num_layers == 1:
        click.echo(f"thresholds  theta_x={b.theta_x * f.act.lsb:g} (code {b.theta_x}), "
                   f"theta_h={b.theta_h * f.act.lsb:g} (code {b.theta_h})")
    for l, ly in enumerate(b.layers if b.num_layers > 1 else []):
        click.echo(f"layer {l}     I={ly.input_size} H={ly.hidden_size}  "
                   f"theta_x={ly.theta_x * f.act.lsb:g} (code {ly.theta_x}), "
                   f"theta_h={ly.theta_h * f.act.lsb:g} (code {ly.theta_h})"
                   + ("  (input: layer %d's h)" % (l - 1) if l else ""))
    if b.is_regression:
        click.echo(f"task        regression, O={b.num_outputs} outputs: {', '.join(b.outputs)}")
        click.echo(f"head        linear on the last layer's h, in the targets' units "
                   f"({b.num_outputs}x{b.hidden_size})")
    elif b.has_head:
        click.echo(f"task        classification, {b.num_outputs} classes")
        click.echo(f"head        {b.head_w.shape[0]} classes: "
                   f"{', '.join(map(str, b.classes or []))}")
    else:
        click.echo("head        none")
    _weights(b)
    shape = PRESETS["default"]
    click.echo(f"default core P={shape.rows} K={shape.columns} E={shape.scan}: "
               f"{shape.multipliers_for(b.cell)} multipliers"
               + (f", shared by the {b.num_layers} layers (time-multiplexed)"
                  if b.num_layers > 1 else ""))


def _weights(b) -> None:
    """Per matrix (layer, PyTorch's name W_i* / W_h*): zero weights; for a layer pruned
    column-balanced, its balance unit and the most non-zeros found in any slice."""
    total = sum(ly.w_x.size + ly.w_h.size for ly in b.layers)
    zeros = sum(int(np.count_nonzero(ly.w_x == 0) + np.count_nonzero(ly.w_h == 0))
                for ly in b.layers)
    click.echo(f"weights     sparsity {100 * zeros / total:.1f} % (zero weights of every W_x, "
               f"W_h)" + ("" if any(ly.balance for ly in b.layers) else "; dense (no "
                                                                      "column-balanced pattern)"))
    for l, ly in enumerate(b.layers):
        u = ly.balance
        if u is not None:
            nb = -(-ly.hidden_size // u.rows)
            click.echo(f"  layer {l}   column-balanced: P={u.rows} slices (rows r mod {u.rows}), "
                       f"at most {u.kept} of {nb} weights per slice per column (γ={u.gamma:g})")
        for m in matrix_sparsity(ly, b.cell):
            name = f"W_{'i' if m['part'] == 'x' else 'h'}{m['gate']}"
            extra = f"  largest slice {m['max_slice_nonzero']}" if u is not None else ""
            click.echo(f"  layer {l}   {name:5} ({m['rows']}x{m['columns']})  sparsity "
                       f"{100 * m['sparsity']:5.1f} %{extra}")
