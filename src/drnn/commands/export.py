"""``drnn export``: a checkpoint of ``drnn train``, a PyTorch GRU or a PyTorch LSTM to a model
bundle.

torch is imported inside the command so that ``drnn --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from drnn_hw.errors import UserError
from .common import check_out_dir, check_out_file

# Options that only make sense for --torch-gru: a drnn train checkpoint carries its trained
# weight format (QAT trained for it), normalisation, classes and data set.
_TORCH_ONLY = ("prefix", "head_prefix", "weight_bits", "weight_frac", "input_mean",
               "input_scale", "dataset")


@click.command()
@click.argument("checkpoint", required=False, type=click.Path(path_type=Path))
@click.option("--torch-gru", "torch_gru", type=click.Path(path_type=Path), default=None,
              metavar="FILE.pt",
              help="Import a single-layer PyTorch GRU instead: a torch.save() of an nn.GRU or "
                   "nn.GRUCell state dict, of a model's state dict holding one (keys under a "
                   "prefix such as rnn., module., encoder.gru.), or of a checkpoint dict holding "
                   "such a state dict. A whole pickled module (torch.save(model)) is refused: "
                   "save model.state_dict().")
@click.option("--torch-lstm", "torch_lstm", type=click.Path(path_type=Path), default=None,
              metavar="FILE.pt",
              help="Import a PyTorch LSTM instead, as --torch-gru does a GRU: an nn.LSTM (any "
                   "num_layers, either batch_first, with or without biases; no proj_size, "
                   "unidirectional) or nn.LSTMCell state dict. The bundle is a delta-LSTM "
                   "(model.json cell 'lstm'), for which the generator builds the LSTM core. "
                   "The --torch-gru options below apply to it as well.")
@click.option("--prefix", default=None, metavar="P",
              help="With --torch-gru: the GRU's key prefix, when the file holds several GRUs "
                   "(e.g. encoder.gru).")
@click.option("--head-prefix", "head_prefix", default=None, metavar="P",
              help="With --torch-gru: the nn.Linear classification head's key prefix (P.weight "
                   "(C, H), P.bias). Default: the one Linear(H, C) beside the GRU (fc, head, "
                   "classifier, ...); none found: no head.")
@click.option("--weight-bits", "weight_bits", type=int, default=None, metavar="B",
              help="With --torch-gru: weight width [default: 8].")
@click.option("--weight-frac", "weight_frac", type=int, default=None, metavar="F",
              help="With --torch-gru: weight fractional bits [default: the most that saturate "
                   "no weight at the width, up to B-1].")
@click.option("--input-mean", "input_mean", default=None, metavar="M[,M...]",
              help="With --torch-gru: the inputs' normalisation (x - mean) / scale the GRU was "
                   "trained with: I comma-separated numbers, or one for every feature "
                   "[default: 0, or --dataset's].")
@click.option("--input-scale", "input_scale", default=None, metavar="S[,S...]",
              help="With --torch-gru: as --input-mean [default: 1, or --dataset's].")
@click.option("--dataset", default=None, metavar="NAME|PATH.npz",
              help="With --torch-gru: the data set the GRU was trained on: the normalisation is "
                   "its training split's mean and standard deviation (as drnn train computes "
                   "them), its class labels name the head's outputs, and the bundle records it "
                   "for drnn evaluate / bench.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Bundle directory to write.")
@click.option("--theta-x", type=float, default=None,
              help="Θx for the bundle (default: the trained one; 0 for --torch-gru).")
@click.option("--theta-h", type=float, default=None,
              help="Θh for the bundle (default: the trained one; 0 for --torch-gru).")
@click.option("--name", default=None, help="Bundle name.")
@click.option("--dram-image", "dram_image", type=click.Path(path_type=Path), default=None,
              metavar="FILE",
              help="Also write the weight image a --weights axi core of the default shape "
                   "fetches from DRAM (P = 16, a 64-bit bus); other core options: drnn "
                   "dram-image.")
def export(checkpoint, torch_gru, torch_lstm, out, theta_x, theta_h, name, dram_image,
           **torch_opts):
    """Write the model bundle (integer weights, LUTs, head) of CHECKPOINT or a torch GRU.

    CHECKPOINT is a `drnn train` checkpoint: its weight format, normalisation, classes and data
    set are the trained ones. With --torch-gru the GRU's weights get the weight format with the
    most fractional bits that saturates none of them (unless --weight-frac), and its nn.Linear
    head, when found, makes the bundle usable by `drnn evaluate` and `drnn bench`.
    """
    from drnn_hw.numerics import Formats
    from drnn_train.export import (
        bundle_from_checkpoint,
        bundle_from_torch_file,
        load_checkpoint,
        threshold_code,
    )

    check_out_dir("--out", out)                             # before anything is written
    if dram_image is not None and dram_image.is_dir():
        raise UserError(f"{dram_image}: --dram-image is a directory, expected a file")
    check_out_file("--dram-image", dram_image)
    given = [v for v in (checkpoint, torch_gru, torch_lstm) if v is not None]
    if len(given) != 1:
        raise UserError("export: give either CHECKPOINT, --torch-gru STATE.pt or --torch-lstm "
                        "STATE.pt (exactly one)")
    notes = []
    if checkpoint is not None:
        given = [k for k in _TORCH_ONLY if torch_opts[k] is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise UserError(f"{checkpoint}: {flag}: only with --torch-gru or --torch-lstm (a "
                            "drnn train checkpoint keeps its trained format, normalisation and "
                            "data set)")
        ckpt = load_checkpoint(checkpoint)
        fmts = Formats.from_dict(ckpt["formats"])
        for n, v in (("theta_x", theta_x), ("theta_h", theta_h)):
            if v is not None:
                threshold_code(v, fmts, n)
        bundle, saturated = bundle_from_checkpoint(ckpt, theta_x, theta_h, name)
        source = str(checkpoint)
    else:
        path = torch_gru if torch_gru is not None else torch_lstm
        bundle, saturated, notes = bundle_from_torch_file(
            path, theta_x=0.0 if theta_x is None else theta_x,
            theta_h=0.0 if theta_h is None else theta_h, name=name,
            cell="gru" if torch_gru is not None else "lstm", **torch_opts)
        fmts = bundle.formats
        source = str(path)
    bundle.save(out)
    for note in notes:
        click.echo(note, err=True)
    if saturated:
        click.echo(f"drnn: warning: {saturated} weights/biases saturated on export "
                   f"(weights {fmts.weight}, biases {fmts.acc})", err=True)
    head = (f"yes ({bundle.num_outputs} {'outputs' if bundle.is_regression else 'classes'})"
            if bundle.has_head else "no")
    lsb = fmts.act.lsb
    cell = "LSTM " if bundle.cell == "lstm" else ""
    if bundle.num_layers == 1:
        sizes = f"{cell}I={bundle.input_size} H={bundle.hidden_size}"
        thetas = f"Θx={bundle.theta_x * lsb:g} Θh={bundle.theta_h * lsb:g}"
    else:
        sizes = (f"{cell}{bundle.num_layers} layers I={bundle.input_size} H="
                 + ",".join(str(ly.hidden_size) for ly in bundle.layers))
        thetas = (f"Θx={','.join(f'{ly.theta_x * lsb:g}' for ly in bundle.layers)} "
                  f"Θh={','.join(f'{ly.theta_h * lsb:g}' for ly in bundle.layers)}")
    click.echo(f"{source} -> {out}: {sizes} weights {fmts.weight} {thetas} head={head}")
    if dram_image is not None:
        _write_dram_image(bundle, dram_image)


def _write_dram_image(bundle, path: Path) -> None:
    """The DRAM image of ``bundle`` for the default core with weights in DRAM."""
    from dataclasses import replace

    from drnn_hw.cycle_model import PRESETS
    from drnn_hw.dram import dram_image

    shape = replace(PRESETS["default"], weights="axi")
    shape = replace(shape, rows=min(shape.rows, max(ly.hidden_size for ly in bundle.layers)))
    image = dram_image(bundle, shape)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)
    except OSError as e:
        raise UserError(f"{path}: cannot write the DRAM image ({e.strerror})") from None
    click.echo(f"{path}: DRAM image, {len(image)} bytes (default core P={shape.rows} "
               f"K={shape.columns}, {shape.bus_bits}-bit bus)")
