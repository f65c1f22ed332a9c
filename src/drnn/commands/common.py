"""Options and helpers shared by several commands."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from drnn_hw.bundle import ModelBundle
from drnn_hw.cycle_model import PRESETS, WEIGHT_FORMATS, WEIGHT_SOURCES, CoreShape
from drnn_hw.errors import UserError


def _deprecated(old, new):
    def callback(ctx, param, value):
        if value is not None:
            click.echo(f"drnn: warning: {old} is deprecated, use {new}", err=True)
        return value
    return callback


def core_options(f):
    """--preset, --rows, --columns, --scan: the core shape (explicit options override the
    preset). --pe and --lanes, the names before the rename, still work and warn. --weights
    (a choice: more weight sources can join the list) and the AXI fetch's parameters."""
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
    f = click.option("--buffer", "buffer", type=int, default=None, metavar="C",
                     help="With --weights axi: weight columns the fetch buffer holds (a power "
                          "of two ≥ 2K) [default: 8].")(f)
    f = click.option("--burst", "burst", type=int, default=None, metavar="BEATS",
                     help="With --weights axi: longest AXI read burst in beats (16 for a "
                          "Zynq-7000 HP port, which is AXI3) [default: 16].")(f)
    f = click.option("--outstanding", "outstanding", type=int, default=None, metavar="N",
                     help="With --weights axi: read bursts in flight at most [default: 4].")(f)
    f = click.option("--bus-bits", "bus_bits", type=int, default=None, metavar="W",
                     help="With --weights axi: the AXI data bus width in bits "
                          "[default: 64].")(f)
    f = click.option("--weights", "weights", type=click.Choice(WEIGHT_SOURCES),
                     default="baked", show_default=True,
                     help="Where the core's weights live: baked: on-chip block RAM, "
                          "initialised in the bitstream (weights, biases, sizes constants); "
                          "runtime: on-chip, loaded over the register bus (`drnn load`, "
                          "`drnn simulate --core`) for any model of the bundle's cell and "
                          "formats within the --max-* sizes (generate, report, build); axi: "
                          "DRAM read over an AXI4 master, one column per kept delta (the "
                          "image: drnn dram-image).")(f)
    f = click.option("--weight-format", "weight_format",
                     type=click.Choice(("auto",) + WEIGHT_FORMATS), default="auto",
                     show_default=True,
                     help="How the weight banks hold the weights: dense: every row (a kept "
                          "delta column costs ceil(H/P) cycles); compressed: the column-"
                          "balanced (value, row) pairs of a pruned bundle (drnn train "
                          "--spatial-sparsity), a kept column costing the layer's pairs per "
                          "slice (with --weights baked or axi); auto: compressed for a "
                          "bundle with a "
                          "balance record and --weights baked, else dense (generate, simulate "
                          "and bench; the other commands take auto as dense).")(f)
    f = click.option("--out-layers", "out_layers", type=click.Choice(["last", "all"]),
                     default="last", show_default=True,
                     help="What the core's h stream carries for a stacked model: the last "
                          "layer's h, or every layer's concatenated (layer 0's first).")(f)
    # (No click default: None is "not given", which `drnn simulate --core` must tell apart.)
    f = click.option("--step-overlap/--no-step-overlap", "step_overlap", default=None,
                     help="A waiting x frame's scan starts while the AP finishes the step "
                          "before (issue #10; fewer cycles between frames sent back to back, "
                          "the same latency). On by default; --no-step-overlap builds the "
                          "core without it (each step's scan starts after the commit "
                          "before it).")(f)
    return f


def weights_options(f):
    """The maxima of a ``--weights runtime`` core (--max-inputs, --max-hidden, --max-layers,
    and for a compressed one --max-kept; each by default the bundle's own); --weights itself
    is a core option."""
    f = click.option("--max-kept", "max_kept", type=int, default=None, metavar="N",
                     help="--weights runtime --weight-format compressed: the most (value, "
                          "row) pairs per slice and column a loaded layer may keep (the "
                          "banks' depth per column; default: the bundle's largest kept).")(f)
    f = click.option("--max-layers", "max_layers", type=int, default=None, metavar="L",
                     help="--weights runtime: the most stacked layers a loaded model may have "
                          "(default: the bundle's).")(f)
    f = click.option("--max-hidden", "max_hidden", type=int, default=None, metavar="H",
                     help="--weights runtime: the largest H_l a loaded model may have "
                          "(default: the bundle's largest).")(f)
    f = click.option("--max-inputs", "max_inputs", type=int, default=None, metavar="I",
                     help="--weights runtime: the largest I a loaded model may have "
                          "(default: the bundle's).")(f)
    return f


def maxima_from_options(bundle: ModelBundle, weights="baked", max_inputs=None,
                        max_hidden=None, max_layers=None, max_kept=None):
    """The :class:`~drnn_hw.layer_map.Maxima` of ``--weights runtime`` (None for a baked
    core); a one-line UserError for --max-* without it, a bad value, or a bundle beyond them."""
    from drnn_hw.layer_map import Maxima

    given = {n: v for n, v in (("--max-inputs", max_inputs), ("--max-hidden", max_hidden),
                               ("--max-layers", max_layers), ("--max-kept", max_kept))
             if v is not None}
    if weights != "runtime":
        if given:
            raise UserError(f"{', '.join(given)}: only with --weights runtime")
        return None
    hidden = [ly.hidden_size for ly in bundle.layers]
    try:
        maxima = Maxima(inputs=bundle.input_size if max_inputs is None else max_inputs,
                        hidden=max(hidden) if max_hidden is None else max_hidden,
                        layers=len(hidden) if max_layers is None else max_layers,
                        kept=max_kept)
    except ValueError as e:
        raise UserError(str(e)) from None
    why = maxima.refuse(bundle.input_size, hidden)
    if why:
        raise UserError(f"the bundle (the core's initial contents) does not fit: {why}")
    return maxima


def shape_from_options(preset=None, rows=None, columns=None, scan=None, pe=None,
                       lanes=None, hidden: int | None = None,
                       out_layers: str = "last", weights: str = "baked", bus_bits=None,
                       outstanding=None, burst=None, buffer=None,
                       runtime_ok: bool = False, weight_format: str = "auto",
                       bundle: ModelBundle | None = None,
                       step_overlap: bool | None = None) -> CoreShape:
    """The CoreShape of the core options; a one-line UserError for a bad value.

    ``weight_format`` "auto" is "compressed" when ``bundle`` is given, has a column-balanced
    layer (``layers[l].balance``) and the weights are baked, else "dense": a run-time core is
    compressed only when asked (it then refuses dense models, and "auto" keeps the core that
    loads any model), and so is an AXI core of a pruned bundle (it trades DRAM traffic for the
    compressed MxV's logic). ``step_overlap`` None (not given) is CoreShape's default, on.

    With ``hidden`` (the model's largest H): a core never builds more rows than H (the rows
    past H would hold no weight; NB = 1 either way), so P is clamped to H, with a note when
    --rows asked for more, and every report and manifest states the P that is built."""
    for new, old, name in ((rows, pe, "--rows/--pe"), (columns, lanes, "--columns/--lanes")):
        if new is not None and old is not None and new != old:
            raise UserError(f"{name}: two different values given ({new} and {old})")
    rows = rows if rows is not None else pe
    rows_given = rows is not None
    columns = columns if columns is not None else lanes
    base = PRESETS[preset or "default"]
    fetch = {k: v for k, v in (("bus_bits", bus_bits), ("outstanding", outstanding),
                               ("burst", burst), ("buffer", buffer)) if v is not None}
    if weights == "runtime" and not runtime_ok:
        raise UserError("--weights runtime: only for drnn generate, report and build (run a "
                        "model on such a core with drnn simulate --core BUILD_DIR, or load it "
                        "into a board with drnn load)")
    if fetch and weights != "axi":
        raise UserError(f"--{next(iter(fetch)).replace('_', '-')} applies to --weights axi only")
    if weight_format == "auto":
        pruned = bundle is not None and any(getattr(ly, "balance", None) is not None
                                            for ly in bundle.layers)
        weight_format = "compressed" if pruned and weights == "baked" else "dense"
    try:
        shape = CoreShape(rows=base.rows if rows is None else rows,
                          columns=base.columns if columns is None else columns,
                          scan=base.scan if scan is None else scan, out_layers=out_layers,
                          weights=weights, weight_format=weight_format,
                          step_overlap=True if step_overlap is None else step_overlap,
                          **fetch)
    except ValueError as e:
        raise UserError(str(e)) from None
    if hidden is not None and shape.rows > hidden:
        if rows_given:      # a preset's P above a small H is clamped without a word
            click.echo(f"drnn: note: P = {shape.rows} rows > H = {hidden}: the core builds "
                       f"{hidden} rows (the rest would hold no weight)", err=True)
        shape = replace(shape, rows=hidden)
    return shape


def load_bundle(path) -> ModelBundle:
    return ModelBundle.load(path)   # BundleError is reported by the CLI on one line


def require_core_shape(bundle: ModelBundle, path, shape: CoreShape) -> None:
    """A one-line UserError (exit code 2) when ``shape`` is not the core the bundle's
    column-balanced pattern was made for (:func:`drnn_hw.balance.check_core_shape`: the
    record's P and the core's, naming both and ``path``/model.json). Dense bundles pass."""
    from drnn_hw.balance import ShapeMismatch, check_core_shape

    try:
        check_core_shape(bundle, shape, where=str(Path(path) / "model.json"))
    except ShapeMismatch as e:
        raise UserError(str(e)) from None


def input_options(f):
    """--input, --layout, --lengths, --output: the X.npy a command runs and the H.npy it writes
    (``drnn simulate``, ``drnn run``)."""
    from ..inputs import LAYOUTS

    f = click.option("--output", "output_path", required=True, type=click.Path(path_type=Path),
                     help="H.npy: the hidden state after every step, float, in the layout of "
                          "X.npy ((T, H), (N, T, H) or, with --layout tnc, (T, N, H)); NaN at "
                          "the steps past a sequence's length.")(f)
    f = click.option("--lengths", "lengths_path", type=click.Path(path_type=Path), default=None,
                     help="LENGTHS.npy: N integers in [1, T], each sequence's length; steps "
                          "past it are not run and their X values are ignored.")(f)
    f = click.option("--layout", type=click.Choice(list(LAYOUTS)), default="ntc",
                     show_default=True,
                     help="Order of a 3-D X.npy: ntc = (N, T, I), batch first; tnc = (T, N, I), "
                          "the layout of torch.nn.GRU with batch_first=False. H.npy is written "
                          "in the same layout.")(f)
    f = click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
                     help="X.npy: float inputs in raw units (the bundle's normalisation is "
                          "applied), one sequence (T, I) or a batch in the --layout; each "
                          "sequence starts from the initial state. Values beyond the activation "
                          "format after normalisation saturate (a warning counts them). Shorter "
                          "sequences may be padded at their end with timesteps that are NaN in "
                          "every feature (the UCR/UEA and aeon convention): without --lengths, "
                          "those trailing all-NaN timesteps set each sequence's length. Any "
                          "other NaN or infinity is an error.")(f)
    return f


def read_codes(bundle: ModelBundle, input_path, layout="ntc", lengths_path=None):
    """X.npy as the options of :func:`input_options` describe it -> (Inputs, activation codes
    (N, T, I)); prints the one-line warning when inputs saturate."""
    from ..inputs import read_inputs, saturation_warning

    inputs = read_inputs(input_path, bundle.input_size, layout=layout,
                         lengths_path=lengths_path)
    codes, saturation = bundle.quantize_input_counted(inputs.x, where=str(input_path),
                                                      valid=inputs.valid)
    warning = saturation_warning(input_path, saturation)
    if warning:
        click.echo(warning, err=True)
    return inputs, codes


def _file_on_the_way(flag: str, path: Path, folder: Path) -> None:
    """A UserError naming ``flag`` and ``path`` when ``folder`` (or one above it), which
    writing ``path`` needs, is an existing file."""
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                raise UserError(f"{flag} {path}: {p} is a file, expected a directory")
            return


def check_out_file(flag: str, path: Path | None) -> None:
    """Refuse, before any work, an output file name that is a directory or lies under a file."""
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory, expected a file name")
    _file_on_the_way(flag, path, path.parent)


def check_out_dir(flag: str, path: Path) -> None:
    """Refuse, before any work, an output directory that is a file or lies under one."""
    _file_on_the_way(flag, path, path)


def check_output_paths(output_path: Path, stats_path: Path | None = None) -> None:
    """Refuse, before any work, an H.npy path NumPy would rename (it appends ``.npy``) and an
    output or STATS path that is a directory or lies under a file."""
    if output_path.suffix != ".npy":
        raise UserError(f"--output {output_path}: expected a file name ending in .npy "
                        "(H is written with numpy.save)")
    for flag, path in (("--output", output_path), ("--stats", stats_path)):
        check_out_file(flag, path)


#: Targets whose block RAM an on-chip core's weights must fit (``--target``).
TARGETS = ("ulx3s-85f", "arty-z7-20")
_TARGET_NAMES = {"ulx3s-85f": "the ULX3S-85F's ECP5 (208 DP16KD)",
                 "arty-z7-20": "the Arty Z7-20's xc7z020 (140 RAMB36)"}


def require_fits_on_chip(bundle: ModelBundle, path, shape: CoreShape, target: str,
                         maxima=None) -> None:
    """A one-line UserError when ``shape`` keeps the weights on chip and they need more block
    RAM than ``target`` has (:data:`drnn_hw.dram.BLOCK_RAM_BITS`; only the weight banks are
    counted, so a model just below the limit may still not fit); ``maxima``: a run-time
    core's banks, laid out for them."""
    from drnn_hw.dram import BLOCK_RAM_BITS, weight_bits

    if shape.weights == "axi":
        return
    need, have = weight_bits(bundle, shape, maxima), BLOCK_RAM_BITS[target]
    if need > have:
        if maxima is not None:
            raise UserError(f"--max-inputs {maxima.inputs} --max-hidden {maxima.hidden} "
                            f"--max-layers {maxima.layers}: the run-time core's weight banks "
                            f"need {need / 2**20:.2f} Mbit of block RAM, "
                            f"{_TARGET_NAMES[target]} has {have / 2**20:.2f} Mbit")
        raise UserError(f"{path}: on-chip weights need {need / 2**20:.2f} Mbit of block RAM, "
                        f"{_TARGET_NAMES[target]} has {have / 2**20:.2f} Mbit: use --weights "
                        f"axi (weights in DRAM)")
