"""The ``drnn`` command line: one click group, one module per command under ``commands/``.

Every command turns bad input into a one-line ``drnn: error: ...`` and a non-zero exit. Set
``DRNN_DEBUG=1`` to see the traceback of an unexpected internal error.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from drnn_hw.bundle import BundleError
from drnn_hw.errors import UserError

# (module, attribute) of every command; modules are imported when the CLI starts (a missing one
# is a packaging bug and fails loudly), but each command imports its heavy dependencies (torch,
# amaranth, cocotb) only when it runs.
COMMANDS = [
    ("drnn.commands.train", "train"),
    ("drnn.commands.export", "export"),
    ("drnn.commands.evaluate", "evaluate"),
    ("drnn.commands.info", "info"),
    ("drnn.commands.simulate", "simulate"),
    ("drnn.commands.generate", "generate"),
    ("drnn.commands.dram_image", "dram_image"),
    ("drnn.commands.build", "build"),
    ("drnn.commands.build", "flash"),
    ("drnn.commands.build", "run"),
    ("drnn.commands.build", "load"),
    ("drnn.commands.report", "report"),
    ("drnn.commands.bench", "bench"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="drnn")
def cli():
    """Delta-RNN (GRU, LSTM) accelerator generator: train, export, generate, simulate, build,
    flash."""


for _module, _attr in COMMANDS:
    cli.add_command(getattr(importlib.import_module(_module), _attr))


def main(argv=None):
    try:
        cli.main(args=argv, prog_name="drnn", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:   # plain `drnn`: the help, not an error
        click.echo(e.ctx.get_help())
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("drnn: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"drnn: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code if e.exit_code else 2)
    except (UserError, BundleError) as e:
        click.echo(f"drnn: error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("drnn: interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # an internal bug: still one line unless debugging
        if os.environ.get("DRNN_DEBUG"):
            raise
        click.echo(f"drnn: internal error: {type(e).__name__}: {e} "
                   "(set DRNN_DEBUG=1 for a traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
