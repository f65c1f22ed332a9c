"""Options and helpers shared by several commands."""

from __future__ import annotations

import click

from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import PRESETS, CoreShape
from drnn_hw.errors import UserError


def _deprecated(old, new):
    def callback(ctx, param, value):
        if value is not None:
            click.echo(f"drnn: warning: {old} is deprecated, use {new}", err=True)
        return value
    return callback


def core_options(f):
    """--preset, --rows, --columns, --scan: the core shape (explicit options override the
    preset). --pe and --lanes, the names before the rename, still work and warn."""
    f = click.option("--scan", "scan", type=int, default=None, metavar="E",
                     help="E: elements the delta encoder scans per cycle (and per stream beat).")(f)
    f = click.option("--lanes", "lanes", type=int, default=None, hidden=True,
                     expose_value=True, callback=_deprecated("--lanes", "--columns"))(f)
    f = click.option("--columns", "columns", type=int, default=None, metavar="K",
                     help="K: delta columns per cycle, 1 or 2 (the weight banks' read ports).")(f)
    f = click.option("--pe", "pe", type=int, default=None, hidden=True,
                     callback=_deprecated("--pe", "--rows"))(f)
    f = click.option("--rows", "rows", type=int, default=None, metavar="P",
                     help="P: weight rows each MxV channel multiplies per column per cycle "
                          "(P·K multipliers per channel).")(f)
    f = click.option("--preset", "preset", type=click.Choice(sorted(PRESETS)), default=None,
                     help="A named core shape (default: 'default').")(f)
    return f


def shape_from_options(preset=None, rows=None, columns=None, scan=None, pe=None,
                       lanes=None) -> CoreShape:
    """The CoreShape of the core options; a one-line UserError for a bad value."""
    for new, old, name in ((rows, pe, "--rows/--pe"), (columns, lanes, "--columns/--lanes")):
        if new is not None and old is not None and new != old:
            raise UserError(f"{name}: two different values given ({new} and {old})")
    rows = rows if rows is not None else pe
    columns = columns if columns is not None else lanes
    base = PRESETS[preset or "default"]
    try:
        return CoreShape(rows=base.rows if rows is None else rows,
                         columns=base.columns if columns is None else columns,
                         scan=base.scan if scan is None else scan)
    except ValueError as e:
        raise UserError(str(e)) from None


def load_bundle(path) -> ModelBundle:
    return ModelBundle.load(path)   # BundleError is reported by the CLI on one line
