"""The files ``drnn simulate`` reads and writes for the recurrent state: ``--h0`` (an initial
hidden state in real units) and ``--state-in`` / ``--state-out`` (the whole state of every
layer, to continue sequences in chunks). Every malformed file is a one-line
:class:`~drnn_hw.errors.UserError` naming the file, the array and expected vs got.

**H0 file** (``--h0``): the initial h of every layer in real units (as torch's ``h0``), quantised
to the bundle's activation format (round half up); a value outside the format's range
[min, max] (±128 for Q8.8) is refused, naming the layer, rather than saturated: such an h0
cannot be what the user meant (a GRU's h stays within [−1, 1] from a start inside it).

* ``.npy`` float (L, H) (one h0 for every sequence) or (L, N, H) (one per sequence: the
  layout of ``torch.nn.GRU``'s ``h0``), when every layer has the same width H;
* ``.npz`` with arrays ``layer0`` .. ``layer{L-1}``, layer l's (H_l,) or (N, H_l): layers of
  different widths (any bundle).

**State file** (``--state-out`` writes it, ``--state-in`` reads it), an ``.npz``; for each layer
l, N the number of sequences (1 for a single (T, I) sequence), H_l, I_l its sizes:

=====================  ===========  =======  ===================================================
array                  shape        dtype    what
=====================  ===========  =======  ===================================================
``layer{l}_x_ref``     (N, I_l)     int64    x̂, the input reference (activation codes)
``layer{l}_h_ref``     (N, H_l)     int64    ĥ, the hidden reference (activation codes)
``layer{l}_h``         (N, H_l)     int64    h, the hidden state (activation codes)
``layer{l}_m``         (N, 4, H_l)  int64    M_r, M_z, M_nx, M_nh (accumulator codes)
``layer{l}_c``         (N, H_l)     int64    an LSTM bundle's cell state c (cell-format codes,
                                             :attr:`~drnn_hw.numerics.Formats.cell`); absent
                                             for a GRU
``layer{l}_h_real``    (N, H_l)     float64  h in real units (codes × LSB), for reading only
``meta``               ()           str      JSON: ``format`` "drnn-state", ``version`` 2,
                                             ``bundle`` (its name), ``layers`` [{input_size,
                                             hidden_size}], ``sequences`` N, ``formats``,
                                             ``fingerprint`` (below)
=====================  ===========  =======  ===================================================

Each sequence's state is the one after its last step (its length). ``fingerprint`` is the
SHA-256 of the bundle's formats, every layer's weights and biases and the input normalisation:
a state is refused for a bundle with other weights, formats or sizes (its M holds sums of that
bundle's weights) or another normalisation (its x̂ holds codes of inputs normalised by it), and
for an input with another number of sequences. (Version 1 files, whose fingerprint did not
cover the normalisation, are refused: run the sequence again to write version 2.) Thresholds are not part of it (a state
continues under any thresholds). ``layer{l}_h_real`` must agree with ``layer{l}_h`` (an edit
of one alone is refused: h is the state, h_real a copy to read).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from drnn_hw.bundle import ModelBundle
from drnn_hw.errors import UserError
from drnn_hw.golden import LayerState
from drnn_hw.numerics import dequantize, quantize

__all__ = ["STATE_FORMAT", "STATE_VERSION", "bundle_fingerprint", "read_h0", "read_state",
           "write_state"]

STATE_FORMAT = "drnn-state"
STATE_VERSION = 2

#: Per-layer arrays of a state file: suffix -> (shape builder (N, I, H) -> shape, what).
_STATE_ARRAYS = {
    "x_ref": (lambda n, i, h: (n, i), "activation"),
    "h_ref": (lambda n, i, h: (n, h), "activation"),
    "h": (lambda n, i, h: (n, h), "activation"),
    "m": (lambda n, i, h: (n, 4, h), "accumulator"),
}
#: An LSTM bundle's layers also carry c.
_LSTM_ARRAYS = {**_STATE_ARRAYS, "c": (lambda n, i, h: (n, h), "cell")}


def _state_arrays(bundle: ModelBundle) -> dict:
    return _LSTM_ARRAYS if bundle.cell == "lstm" else _STATE_ARRAYS


def bundle_fingerprint(bundle: ModelBundle) -> str:
    """SHA-256 (hex) of the formats, every layer's ``w_x``, ``w_h``, ``bias`` (int64, C order,
    with their shapes) and ``input_mean``, ``input_scale`` (float64): what a saved state's
    delta memories and x̂ depend on."""
    d = hashlib.sha256(json.dumps(asdict(bundle.formats), sort_keys=True).encode())
    arrays = [(a, np.int64) for ly in bundle.layers for a in (ly.w_x, ly.w_h, ly.bias)]
    arrays += [(bundle.input_mean, np.float64), (bundle.input_scale, np.float64)]
    for a, dtype in arrays:
        a = np.ascontiguousarray(a, dtype=dtype)
        d.update(repr(a.shape).encode())
        d.update(a.tobytes())
    return d.hexdigest()


def _load(path, suffix: str, flag: str):
    p = Path(path)
    if p.suffix not in suffix.split("|"):
        raise UserError(f"{flag} {p}: expected a {' or '.join(suffix.split('|'))} file, "
                        f"got {p.suffix or 'no extension'}")
    if not p.is_file():
        raise UserError(f"{flag} {p}: file not found")
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as e:  # OSError/ValueError/EOFError/BadZipFile: not a NumPy file
        raise UserError(f"{flag} {p}: not a readable {p.suffix} file "
                        f"({type(e).__name__})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        try:
            with data:
                return p, {k: data[k] for k in data.files}
        except Exception as e:  # a member that is not a plain array (object, corrupt)
            raise UserError(f"{flag} {p}: not a readable .npz archive "
                            f"({type(e).__name__}: {e})") from None
    return p, data


def _real_codes(where: str, a, fmts, layer: int) -> np.ndarray:
    """Real values -> activation codes; one line for non-numbers, NaN/inf and the range."""
    if a.dtype.kind not in "fiu":
        raise UserError(f"{where}: expected real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise UserError(f"{where}: NaN or infinity at index {idx}")
    act = fmts.act
    lo, hi = act.min * act.lsb, act.max * act.lsb
    if a.size and (a.min() < lo or a.max() > hi):
        bad = float(a.min()) if a.min() < lo else float(a.max())
        raise UserError(f"{where}: layer {layer}: values must lie in the activation range "
                        f"[{lo:g}, {hi:g}] ({act}), got {bad:g}")
    return quantize(a, act)


def read_h0(path, bundle: ModelBundle, n: int) -> list:
    """The ``--h0`` file (module doc) for ``n`` sequences -> a list of L activation-code arrays,
    layer l's (H_l,) or (n, H_l), for :func:`drnn_hw.golden.initial_state`. Raises a one-line
    UserError naming the file (and array) for a wrong extension, a missing or unreadable file,
    a wrong shape, missing or unknown arrays, NaN/inf, or a value outside the activation
    range."""
    widths = [ly.hidden_size for ly in bundle.layers]
    L, fmts = len(widths), bundle.formats
    p, data = _load(path, ".npy|.npz", "--h0")
    if isinstance(data, dict):
        names = [f"layer{l}" for l in range(L)]
        missing = [k for k in names if k not in data]
        unknown = sorted(set(data) - set(names))
        if missing or unknown:
            raise UserError(f"--h0 {p}: expected arrays {', '.join(names)} (one per layer), "
                            + (f"missing {', '.join(missing)}" if missing else
                               f"got unknown {', '.join(unknown)}"))
        out = []
        for l, (name, H) in enumerate(zip(names, widths)):
            a = np.asarray(data[name])
            if a.shape not in ((H,), (n, H)):
                raise UserError(f"--h0 {p}: {name}: expected shape ({H},) or ({n}, {H}), "
                                f"got {a.shape}")
            out.append(_real_codes(f"--h0 {p}: {name}", a, fmts, l))
        return out
    a = np.asarray(data)
    if len(set(widths)) != 1:
        raise UserError(f"--h0 {p}: the layers have different widths "
                        f"({', '.join(map(str, widths))}): give an .npz with arrays "
                        f"layer0..layer{L - 1}")
    H = widths[0]
    if a.shape not in ((L, H), (L, n, H)):
        raise UserError(f"--h0 {p}: expected shape ({L}, {H}) or ({L}, {n}, {H}) "
                        f"(layers, [sequences,] hidden units), got {a.shape}")
    return [_real_codes(f"--h0 {p}", a[l], fmts, l) for l in range(L)]


def write_state(path, bundle: ModelBundle, state) -> Path:
    """Write ``state`` (a list of L :class:`~drnn_hw.golden.LayerState`, e.g. a
    :class:`~drnn_hw.golden.GoldenResult`'s) as the state file of the module doc."""
    n = int(np.shape(state[0].h)[0])
    meta = {"format": STATE_FORMAT, "version": STATE_VERSION, "bundle": bundle.name,
            "layers": [{"input_size": ly.input_size, "hidden_size": ly.hidden_size}
                       for ly in bundle.layers],
            "sequences": n, "formats": asdict(bundle.formats),
            "fingerprint": bundle_fingerprint(bundle)}
    arrays = {"meta": np.array(json.dumps(meta))}
    for l, s in enumerate(state):
        for k in _state_arrays(bundle):
            arrays[f"layer{l}_{k}"] = np.asarray(getattr(s, k), dtype=np.int64)
        arrays[f"layer{l}_h_real"] = dequantize(s.h, bundle.formats.act)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as fh:     # a file object: np.savez would append .npz to a bare name
        np.savez(fh, **arrays)
    return p


def _meta(p: Path, data: dict) -> dict:
    if "meta" not in data:
        raise UserError(f"--state-in {p}: no 'meta' array: not a state file written by "
                        "drnn simulate --state-out")
    m = data["meta"]
    try:
        meta = json.loads(str(m[()])) if m.shape == () and m.dtype.kind == "U" else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise UserError(f"--state-in {p}: meta: expected the JSON of a {STATE_FORMAT} file "
                        "written by drnn simulate --state-out")
    if meta.get("version") != STATE_VERSION:
        old = " (written before the fingerprint covered the input normalisation: run the " \
            "sequence again to write it)" if meta.get("version") == 1 else ""
        raise UserError(f"--state-in {p}: meta.version: expected {STATE_VERSION}, got "
                        f"{meta.get('version')!r}{old}")
    return meta


def _show_sizes(layers) -> str:
    """Layer sizes as 'I->H, I->H' (a meta's, which may be malformed, shown as it is)."""
    if not isinstance(layers, list):
        return repr(layers)
    return ", ".join(f"{d.get('input_size')}->{d.get('hidden_size')}" if isinstance(d, dict)
                     else repr(d) for d in layers)


def read_state(path, bundle: ModelBundle, n: int) -> list:
    """The ``--state-in`` file (module doc) for ``bundle`` and ``n`` sequences -> a list of L
    :class:`~drnn_hw.golden.LayerState`. Raises a one-line UserError naming the file and the
    array or field for: a wrong extension, a missing or unreadable file, no or bad ``meta``, a
    state of another bundle (sizes, formats, weights), another number of sequences, missing or
    unknown arrays, a wrong shape or dtype, codes outside their format, and an ``h_real`` that
    disagrees with ``h``."""
    p, data = _load(path, ".npz", "--state-in")
    if not isinstance(data, dict):        # named .npz, but one .npy array inside
        raise UserError(f"--state-in {p}: expected an .npz archive, got one array "
                        f"{data.dtype} {data.shape}")
    meta = _meta(p, data)
    fmts = bundle.formats
    sizes = [{"input_size": ly.input_size, "hidden_size": ly.hidden_size}
             for ly in bundle.layers]
    if meta.get("layers") != sizes:
        raise UserError(f"--state-in {p}: a state of bundle {meta.get('bundle')!r} with layers "
                        f"(I->H) {_show_sizes(meta.get('layers'))}; {bundle.name!r} has "
                        f"{_show_sizes(sizes)}")
    if meta.get("formats") != asdict(fmts):
        raise UserError(f"--state-in {p}: a state of bundle {meta.get('bundle')!r} with formats "
                        f"{meta.get('formats')}; {bundle.name!r} has {asdict(fmts)}")
    if meta.get("fingerprint") != bundle_fingerprint(bundle):
        raise UserError(f"--state-in {p}: a state of bundle {meta.get('bundle')!r} with other "
                        f"weights or input normalisation (fingerprint {str(meta.get('fingerprint'))[:12]}..., "
                        f"{bundle.name!r} is {bundle_fingerprint(bundle)[:12]}...)")
    if meta.get("sequences") != n:
        raise UserError(f"--state-in {p}: a state of {meta.get('sequences')} sequence(s), the "
                        f"input has {n}")
    kinds = _state_arrays(bundle)
    names = {"meta"} | {f"layer{l}_{k}" for l in range(bundle.num_layers)
                        for k in (*kinds, "h_real")}
    missing = sorted(names - set(data))
    unknown = sorted(set(data) - names)
    if missing or unknown:
        raise UserError(f"--state-in {p}: " + (f"missing array {missing[0]}" if missing
                                                else f"unknown array {unknown[0]}"))
    state = []
    for l, ly in enumerate(bundle.layers):
        arrays = {}
        for k, (shape_of, fmt_name) in kinds.items():
            name, a = f"layer{l}_{k}", data[f"layer{l}_{k}"]
            shape = shape_of(n, ly.input_size, ly.hidden_size)
            if a.dtype.kind not in "iu":
                raise UserError(f"--state-in {p}: {name}: expected integer codes, got dtype "
                                f"{a.dtype}")
            if a.shape != shape:
                raise UserError(f"--state-in {p}: {name}: expected shape {shape}, got {a.shape}")
            fmt = {"activation": fmts.act, "accumulator": fmts.acc, "cell": fmts.cell}[fmt_name]
            if a.size and (a.min() < fmt.min or a.max() > fmt.max):
                bad = int(a.min()) if a.min() < fmt.min else int(a.max())
                raise UserError(f"--state-in {p}: {name}: codes must lie in [{fmt.min}, "
                                f"{fmt.max}] ({fmt_name} format {fmt}), got {bad}")
            arrays[k] = a.astype(np.int64)
        real = data[f"layer{l}_h_real"]
        if real.shape != arrays["h"].shape or real.dtype.kind != "f" or \
                not np.array_equal(real, dequantize(arrays["h"], fmts.act)):
            raise UserError(f"--state-in {p}: layer{l}_h_real: disagrees with layer{l}_h "
                            "(h is the state, in codes; h_real is its copy in real units: "
                            "edit h, and h_real to match, or neither)")
        state.append(LayerState(**arrays))
    return state
