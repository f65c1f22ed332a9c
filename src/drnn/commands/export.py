"""``drnn export``: a checkpoint of ``drnn train`` or a PyTorch GRU to a model bundle.

torch is imported inside the command so that ``drnn --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from drnn_hw.errors import UserError


@click.command()
@click.argument("checkpoint", required=False, type=click.Path(path_type=Path))
@click.option("--torch-gru", "torch_gru", type=click.Path(path_type=Path), default=None,
              help="Import a plain single-layer torch.nn.GRU state dict instead "
                   "(torch.save(gru.state_dict())); the bundle has no head.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Bundle directory to write.")
@click.option("--theta-x", type=float, default=None,
              help="Θx for the bundle (default: the trained one; 0 for --torch-gru).")
@click.option("--theta-h", type=float, default=None,
              help="Θh for the bundle (default: the trained one; 0 for --torch-gru).")
@click.option("--name", default=None, help="Bundle name.")
def export(checkpoint, torch_gru, out, theta_x, theta_h, name):
    """Write the model bundle (integer weights, LUTs, head) of CHECKPOINT or a torch GRU."""
    from drnn_hw.numerics import Formats

    from drnn_train.export import (bundle_from_checkpoint, bundle_from_gru_params, load_checkpoint,
                         load_torch_gru_state, threshold_code)

    if (checkpoint is None) == (torch_gru is None):
        raise UserError("export: give either CHECKPOINT or --torch-gru STATE.pt (exactly one)")
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        fmts = Formats.from_dict(ckpt["formats"])
        for n, v in (("theta_x", theta_x), ("theta_h", theta_h)):
            if v is not None:
                threshold_code(v, fmts, n)
        bundle, saturated = bundle_from_checkpoint(ckpt, theta_x, theta_h, name)
        source = str(checkpoint)
    else:
        fmts = Formats()
        tx = 0.0 if theta_x is None else theta_x
        th = 0.0 if theta_h is None else theta_h
        threshold_code(tx, fmts, "theta_x")
        threshold_code(th, fmts, "theta_h")
        p = load_torch_gru_state(torch_gru)
        bundle, saturated = bundle_from_gru_params(
            p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], fmts, tx, th,
            name=name or Path(torch_gru).stem, source=f"torch.nn.GRU state dict {torch_gru}",
            extra={"dataset": None})
        source = str(torch_gru)
    bundle.save(out)
    if saturated:
        click.echo(f"warning: {saturated} weights/biases saturated on export "
                   f"(weights {fmts.weight}, biases {fmts.acc})", err=True)
    click.echo(f"{source} -> {out}: I={bundle.input_size} H={bundle.hidden_size} "
               f"Θx={bundle.theta_x * fmts.act.lsb:g} Θh={bundle.theta_h * fmts.act.lsb:g} "
               f"head={'yes' if bundle.has_head else 'no'}")
