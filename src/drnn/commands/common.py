"""Options and helpers shared by several commands."""

from __future__ import annotations

import click

from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import PRESETS, CoreShape
from drnn_hw.errors import UserError


def core_options(f):
    """--preset, --pe, --lanes, --scan: the core shape (explicit options override the preset)."""
    f = click.option("--scan", "scan", type=int, default=None,
                     help="E: elements the encoder scans per cycle.")(f)
    f = click.option("--lanes", "lanes", type=int, default=None,
                     help="K: delta columns per cycle, 1 or 2.")(f)
    f = click.option("--pe", "pe", type=int, default=None,
                     help="P: multipliers per lane per channel.")(f)
    f = click.option("--preset", "preset", type=click.Choice(sorted(PRESETS)), default=None,
                     help="A named core shape (default: 'default').")(f)
    return f


def shape_from_options(preset=None, pe=None, lanes=None, scan=None) -> CoreShape:
    base = PRESETS[preset or "default"]
    try:
        return CoreShape(pe=base.pe if pe is None else pe,
                         lanes=base.lanes if lanes is None else lanes,
                         scan=base.scan if scan is None else scan)
    except ValueError as e:
        raise UserError(str(e)) from None


def load_bundle(path) -> ModelBundle:
    return ModelBundle.load(path)   # BundleError is reported by the CLI on one line
