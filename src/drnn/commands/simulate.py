"""``drnn simulate``: run a bundle on inputs with the golden model or the RTL."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from drnn_hw.errors import UserError
from drnn_hw.numerics import dequantize

from ..engines import ENGINES, get_engine
from ..inputs import write_stats
from ..state_io import read_h0, read_state, write_state
from .common import (check_output_paths, core_options, input_options, load_bundle,
                     read_codes, require_core_shape, shape_from_options)


@click.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@input_options
@click.option("--engine", type=click.Choice(list(ENGINES)), default="golden", show_default=True)
@click.option("--stats", "stats_path", type=click.Path(path_type=Path), default=None,
              help="STATS.json: per-step nnz_dx, nnz_dh, cycles of the steps that ran "
                   "(sequences in order), their totals, and the lengths.")
@click.option("--waves", type=click.Path(path_type=Path), default=None,
              help="Waveform file (RTL engines only).")
@click.option("--h0", "h0_path", type=click.Path(path_type=Path), default=None,
              help="H0.npy or H0.npz: the initial hidden state of every layer in real units "
                   "(as torch's h0), quantised to the activation format; values outside its "
                   "range are an error. .npy: (L, H) for every sequence or (L, N, H) one per "
                   "sequence (layers of one width); .npz: arrays layer0, layer1, ... of "
                   "(H_l,) or (N, H_l).")
@click.option("--state-in", "state_in", type=click.Path(path_type=Path), default=None,
              help="STATE.npz written by --state-out: continue each sequence from it (same "
                   "bundle, same number of sequences); not with --h0.")
@click.option("--state-out", "state_out", type=click.Path(path_type=Path), default=None,
              help="STATE.npz: the final state of every layer (each sequence's after its last "
                   "step): layer{l}_x_ref (N, I_l), _h_ref and _h (N, H_l) activation codes, "
                   "_m (N, 4, H_l) accumulator codes M_r, M_z, M_nx, M_nh, all int64; layer{l}_h_real, h in "
                   "real units; meta (JSON: bundle, sizes, formats, fingerprint).")
@click.option("--core", "core_dir", type=click.Path(path_type=Path), default=None,
              help="BUILD_DIR of a run-time core generated earlier (`drnn generate --weights "
                   "runtime`): run the model on it, loading it first over the register bus "
                   "(--engine verilator; the core's P, K, E apply).")
@core_options
def simulate(model_dir, input_path, layout, lengths_path, output_path, engine, stats_path,
             waves, h0_path, state_in, state_out, core_dir, **core):
    """Run MODEL_DIR on X.npy and write the hidden states.

    Each sequence starts from h = 0, from --h0, or from the state of an earlier run
    (--state-in); --state-out saves the state at the end, so a long sequence run in chunks
    (--state-out, then --state-in with the next chunk) gives the same h as in one piece.
    The options below give the file formats (in full: the drnn.state_io module).
    """
    if h0_path is not None and state_in is not None:
        raise UserError("--h0 and --state-in: give one (a state file holds h already)")
    if engine != "golden" and (state_in is not None or state_out is not None):
        # The core loads h0 (H0 writes) but has no port to load or read x̂, ĥ and the delta
        # memories, which a state file carries.
        raise UserError(f"--state-in/--state-out need --engine golden: the {engine} engine "
                        "runs the core, which loads h0 (--h0) but not a whole state")
    bundle = load_bundle(model_dir)
    options = {}
    if core_dir is not None:
        shape = _runtime_core(bundle, model_dir, core_dir, engine, core)
        options["core_dir"] = core_dir
    else:
        shape = shape_from_options(**core, bundle=bundle,
                                   hidden=max(layer.hidden_size for layer in bundle.layers))
        if shape.weight_format == "compressed":
            require_core_shape(bundle, model_dir, shape)
    check_output_paths(output_path, stats_path)
    if state_out is not None:
        if state_out.suffix != ".npz":
            raise UserError(f"--state-out {state_out}: expected a file name ending in .npz")
        if state_out.is_dir():
            raise UserError(f"--state-out {state_out}: is a directory, expected a file name")
    inputs, codes = read_codes(bundle, input_path, layout, lengths_path)
    n = codes.shape[0]
    h0 = read_h0(h0_path, bundle, n) if h0_path is not None else None
    state = read_state(state_in, bundle, n) if state_in is not None else None
    result = get_engine(engine)(bundle, codes, lengths=inputs.lengths, shape=shape, waves=waves,
                                h0=h0, state=state, **options)
    h = inputs.to_file_layout(dequantize(result.h, bundle.formats.act))
    output_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(output_path, h)
    if stats_path:
        write_stats(stats_path, result, extra={"engine": engine, "core": shape.to_dict()})
    if state_out is not None:
        write_state(state_out, bundle, result.state)
    cycles = result.flat("cycles")
    steps = int(result.flat("nnz_dx").size)
    click.echo(f"{engine}: {n} sequence(s), {steps} steps "
               f"(longest {codes.shape[1]}) -> {output_path}; "
               + (f"mean cycles/step {cycles.mean():.1f}" if cycles is not None else
                  "cycles: none")
               + (f"; state -> {state_out}" if state_out is not None else ""))


def _runtime_core(bundle, model_dir, core_dir, engine, core) -> "CoreShape":
    """The shape of the run-time core in ``core_dir`` once the bundle is known to fit it (a
    one-line UserError otherwise: the file and field, the core's limit)."""
    import json

    from drnn_hw.cycle_model import CoreShape
    from drnn_hw.load import LoadRefused, check_bundle, core_info_from_manifest

    if engine != "verilator":
        raise UserError(f"--core needs --engine verilator (got --engine {engine})")
    given = [f"--{k.replace('_', '-')}" for k, v in core.items()
             if v is not None and k != "out_layers" and not (k == "weights" and v == "baked")
             and not (k == "weight_format" and v == "auto")]
    if given:
        raise UserError(f"{', '.join(given)}: the core in {core_dir} has its own shape")
    path = Path(core_dir) / "manifest.json"
    if not path.is_file():
        raise UserError(f"{path}: not found (is {core_dir} a directory `drnn generate` wrote?)")
    manifest = json.loads(path.read_text())
    try:
        info = core_info_from_manifest(manifest)
        check_bundle(bundle, info, where=str(Path(model_dir) / "model.json"))
    except LoadRefused as e:
        raise UserError(f"{core_dir}: {e}" if "manifest" in str(e) else str(e)) from None
    # (A compressed core's steps take the spatial model's cycles on the loaded kept.)
    return CoreShape(rows=info.effective_rows, columns=info.columns, scan=info.scan,
                     weight_format="compressed" if info.compressed else "dense",
                     # (A manifest without the key is older than the overlap's default.)
                     step_overlap=bool(manifest.get("parameters", {}).get("step_overlap")))
