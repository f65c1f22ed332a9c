"""The model bundle: what the trainer exports and everything downstream consumes.

A bundle holds L ≥ 1 stacked delta-GRU layers (:class:`Layer`); layer l > 0 takes layer l-1's
hidden state as its input, so ``I_l = H_{l-1}``. Number formats, LUTs, input normalisation and
the head (on the last layer's h) are shared. It is a directory with two files, in one of two
format versions:

**Version 1** (one layer; what :meth:`ModelBundle.save` writes for a single-layer bundle, so
those stay readable by every older release):

``model.json``
    ``format_version``, ``name``, ``input_size``, ``hidden_size``, ``formats`` (see
    :class:`~drnn_hw.numerics.Formats`), ``thresholds`` (``theta_x``/``theta_h`` as float and as
    integer code in the activation format), ``lut`` (entries and ranges, informational),
    ``classes`` (head labels, or null when there is no head), ``source`` (free text),
    ``extra`` (an object, free-form); for a regression model only (absent means
    classification, so a classifier's model.json is what it always was): ``task``
    (``"regression"``) and ``outputs`` (the O output names; ``classes`` is then null).
    :meth:`ModelBundle.load` checks the type of every field (:data:`MODEL_JSON_FIELDS`),
    rejects unknown ones, and rejects the informational copies (float thresholds, ``lut``,
    sizes) when they disagree with what they copy.
``tensors.npz``
    ``w_x`` int (3, H, I) and ``w_h`` int (3, H, H): weight codes, gate order r, z, n;
    ``bias`` int (4, H): initial delta memories M_r, M_z, M_nx, M_nh in the accumulator format
    (b_ir+b_hr, b_iz+b_hz, b_in, b_hn); ``sigmoid_lut``, ``tanh_lut`` int (2**lut_bits,);
    ``input_mean``, ``input_scale`` float (I,): the host normalises raw inputs as
    ``(x - mean) / scale`` before quantising; ``head_w`` float (C, H), ``head_b`` float (C,)
    when there is a head. The head is applied on the host, in float, to the dequantised h:
    argmax over C classes, or for a regression model (``task``) the O outputs
    ``head_w · h + head_b`` themselves, in the target's units (the trainer folds its target
    normalisation into the head), at every step or at the last one.

**Version 2** (L layers; written for L > 1, read for any L ≥ 1):

``model.json``
    as version 1 without the top-level ``thresholds``, plus ``layers``: a list of L objects
    ``{input_size, hidden_size, thresholds}`` (``thresholds`` as in version 1, that layer's Θx
    applying to its input, Θh to its own h). The top-level ``input_size`` is the first layer's
    I, ``hidden_size`` the last layer's H (the width of the output h); both informational
    (:data:`MODEL_JSON_FIELDS_V2`).
``tensors.npz``
    per layer l = 0 .. L-1: ``layer{l}.w_x`` (3, H_l, I_l), ``layer{l}.w_h`` (3, H_l, H_l),
    ``layer{l}.bias`` (4, H_l) (meanings as in version 1); the shared arrays as in version 1,
    ``input_mean``/``input_scale`` of shape (I_0,), ``head_w`` (C, H_{L-1}). The version-1
    names ``w_x``/``w_h``/``bias`` and layer arrays beyond L are refused.

**Version 3** (the cell type; written for an LSTM bundle, read for any cell): version 2's
``model.json`` plus ``cell``, ``"gru"`` or ``"lstm"`` (:data:`~drnn_hw.numerics.CELLS`,
:data:`MODEL_JSON_FIELDS_V3`), and the same per-layer ``tensors.npz`` (also for one layer). An
LSTM layer (PyTorch's ``nn.LSTM`` gate order i, f, g, o) has ``layer{l}.w_x`` (4, H_l, I_l),
``layer{l}.w_h`` (4, H_l, H_l) and ``layer{l}.bias`` (4, H_l): the initial delta memories M_i,
M_f, M_g, M_o = b_i* + b_h* per gate, in the accumulator format; its cell state has the cell
format of :mod:`drnn_hw.numerics`, derived from ``formats`` (nothing more to store). GRU bundles
are still written as version 1 or 2 (byte for byte what they were), so every older reader
reads them; a bundle without ``cell`` (versions 1 and 2) is a GRU.

**Version 4** (column-balanced sparse weights, written only when a layer has a pattern):
version 3's ``model.json`` (``cell`` required) where an entry of ``layers`` may also hold
``balance``: ``{rows, kept, gamma}`` (:class:`~drnn_hw.balance.BalanceUnit`): that layer's
weights are pruned column-balanced over P = ``rows`` multiplier slices, at most ``kept``
non-zero weights in every slice of every column of every ``w_x``/``w_h`` gate matrix, made for
the target sparsity ``gamma`` (``kept`` must be :func:`~drnn_hw.balance.kept_per_slice` of it).
A layer without ``balance`` is dense; dense bundles are written as before (versions 1 to 3),
so older readers read them, and every version loads. :meth:`ModelBundle.load` checks that the
weights follow the record (``tensors.npz: layer0.w_h: gate n column 17 slice p=3 (rows 3, 19,
...): 2 non-zero weights, layers[0].balance.kept allows at most 1``). The tensors are the
dense arrays as in version 3 (pruned weights are 0); a compressed (value, row) layout is the
compressed core's business, not the bundle's.

Every malformed case raises :class:`BundleError` with a one-line message naming the file and
the field (``tensors.npz: layer1.w_x: expected shape (3, 64, 128), got (3, 64, 100)``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from .balance import GATE_NAMES, BalanceUnit, first_violation, kept_per_slice
from .io import read_json_object
from .numerics import CELLS, Formats, make_sigmoid_lut, make_tanh_lut, quantize, quantize_count

__all__ = ["ModelBundle", "Layer", "BundleError", "FORMAT_VERSION", "FORMAT_VERSIONS", "TASKS",
           "InputSaturation", "MODEL_JSON_FIELDS", "MODEL_JSON_FIELDS_V2", "MODEL_JSON_FIELDS_V3",
           "MODEL_JSON_FIELDS_V4", "LAYER_JSON_FIELDS", "LAYER_JSON_FIELDS_V4",
           "BALANCE_JSON_FIELDS", "GATES", "random_bundle", "random_stacked_bundle"]

#: The newest bundle format (column-balanced sparse weights); :data:`FORMAT_VERSIONS` are all
#: that load.
FORMAT_VERSION = 4
FORMAT_VERSIONS = (1, 2, 3, 4)

#: Weight matrices per layer (rows of w_x / w_h) of each cell: GRU r, z, n; LSTM i, f, g, o.
GATES = {"gru": 3, "lstm": 4}


class BundleError(ValueError):
    """A bundle on disk is missing, malformed or inconsistent. The message names file and field."""

# -- model.json schema ------------------------------------------------------------------------
# Each field: (type name for messages, test, required). Objects nest. Booleans are not integers
# here (JSON true is not 1), and numbers must be finite (Python's json accepts NaN/Infinity).

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _is_pair(v):
    return isinstance(v, list) and len(v) == 2 and all(_is_num(e) for e in v)


def _is_classes(v):
    return v is None or (isinstance(v, list) and all(isinstance(e, str) for e in v))


def _is_outputs(v):
    return isinstance(v, list) and bool(v) and all(isinstance(e, str) for e in v)


#: What a model's head does: the values of model.json's ``task``.
TASKS = ("classification", "regression")


class _ListOf:
    """A model.json field holding a non-empty list of objects, each checked against ``spec``."""

    def __init__(self, spec: dict):
        self.spec = spec


_INT, _NUM, _STR = ("an integer", _is_int), ("a finite number", _is_num), \
    ("a string", lambda v: isinstance(v, str))
_PAIR = ("a list of 2 numbers", _is_pair)

_THRESHOLDS = {"theta_x": (_NUM, False), "theta_h": (_NUM, False),
               "theta_x_code": (_INT, True), "theta_h_code": (_INT, True)}

#: Version-1 model.json fields: name -> ((type name, test), required) or a nested dict for an
#: object.
MODEL_JSON_FIELDS = {
    "format_version": (_INT, True),
    "name": (_STR, False),
    "input_size": (_INT, False),
    "hidden_size": (_INT, False),
    "formats": ({f.name: (_INT, True) for f in fields(Formats)}, True),
    "thresholds": (_THRESHOLDS, True),
    "lut": ({"entries": (_INT, False), "sigmoid_range": (_PAIR, False),
             "tanh_range": (_PAIR, False), "output_lsb": (_NUM, False)}, False),
    "classes": (("a list of strings or null", _is_classes), False),
    "task": (("'classification' or 'regression'", lambda v: v in TASKS), False),
    "outputs": (("a non-empty list of strings", _is_outputs), False),
    "source": (_STR, False),
    "extra": (("an object", lambda v: isinstance(v, dict)), False),
}

#: One entry of version 2's ``layers`` list.
LAYER_JSON_FIELDS = {
    "input_size": (_INT, True),
    "hidden_size": (_INT, True),
    "thresholds": (_THRESHOLDS, True),
}

#: Version-2 model.json fields: version 1's without ``thresholds``, plus ``layers``.
MODEL_JSON_FIELDS_V2 = {
    **{k: v for k, v in MODEL_JSON_FIELDS.items() if k != "thresholds"},
    "layers": (_ListOf(LAYER_JSON_FIELDS), True),
}

#: Version-3 model.json fields: version 2's plus the required ``cell``.
MODEL_JSON_FIELDS_V3 = {
    **MODEL_JSON_FIELDS_V2,
    "cell": ((f"one of {', '.join(repr(c) for c in CELLS)}", lambda v: v in CELLS), True),
}

#: A layer's column-balanced pattern (version 4): :class:`~drnn_hw.balance.BalanceUnit`.
BALANCE_JSON_FIELDS = {"rows": (_INT, True), "kept": (_INT, True), "gamma": (_NUM, True)}

#: One entry of version 4's ``layers`` list: version 2's plus the optional ``balance``.
LAYER_JSON_FIELDS_V4 = {**LAYER_JSON_FIELDS, "balance": (BALANCE_JSON_FIELDS, False)}

#: Version-4 model.json fields: version 3's with ``layers`` entries that may hold ``balance``.
MODEL_JSON_FIELDS_V4 = {**MODEL_JSON_FIELDS_V3,
                        "layers": (_ListOf(LAYER_JSON_FIELDS_V4), True)}


def _shown(v) -> str:
    text = json.dumps(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_fields(obj: dict, spec: dict, where: str, prefix: str = ""):
    """Raise BundleError ``WHERE: FIELD: expected TYPE, got VALUE`` for the first bad field."""
    for key in obj:
        if key not in spec:
            raise BundleError(f"{where}: {prefix}{key}: unknown field (expected one of "
                              f"{', '.join(spec)})")
    for key, (kind, required) in spec.items():
        name = prefix + key
        if key not in obj:
            if required:
                raise BundleError(f"{where}: {name}: missing")
            continue
        v = obj[key]
        if isinstance(kind, _ListOf):
            if not isinstance(v, list) or not v:
                raise BundleError(f"{where}: {name}: expected a non-empty list of objects, "
                                  f"got {_shown(v)}")
            for i, item in enumerate(v):
                if not isinstance(item, dict):
                    raise BundleError(f"{where}: {name}[{i}]: expected an object, "
                                      f"got {_shown(item)}")
                _check_fields(item, kind.spec, where, f"{name}[{i}].")
        elif isinstance(kind, dict):
            if not isinstance(v, dict):
                raise BundleError(f"{where}: {name}: expected an object, got {_shown(v)}")
            _check_fields(v, kind, where, name + ".")
        elif not kind[1](v):
            raise BundleError(f"{where}: {name}: expected {kind[0]}, got {_shown(v)}")


def _check_thresholds(th: dict, formats: Formats, where: str, prefix: str):
    """Codes in range, and the float copies (if any) agree with the codes."""
    act = formats.act
    for name in ("theta_x", "theta_h"):
        if not 0 <= th[name + "_code"] <= act.max:
            raise BundleError(f"{where}: {prefix}{name}_code: expected a code in "
                              f"[0, {act.max}], got {th[name + '_code']}")
        if name in th:
            code = int(quantize(th[name], act))
            if code != th[name + "_code"]:
                raise BundleError(
                    f"{where}: {prefix}{name}: {th[name]!r} is code {code} in {act}, but "
                    f"{prefix}{name}_code is {th[name + '_code']} (edit both, or drop "
                    f"{prefix}{name})")


def _check_copies(meta: dict, formats: Formats, where: str):
    """The informational fields must agree with what they copy (codes, formats)."""
    if "layers" in meta:
        for i, layer in enumerate(meta["layers"]):
            _check_thresholds(layer["thresholds"], formats, where, f"layers[{i}].thresholds.")
    else:
        _check_thresholds(meta["thresholds"], formats, where, "thresholds.")
    act = formats.act
    lut = meta.get("lut", {})
    want = {"entries": formats.lut_entries,
            "sigmoid_range": [-2 ** formats.sigmoid_range_log2, 2 ** formats.sigmoid_range_log2],
            "tanh_range": [-2 ** formats.tanh_range_log2, 2 ** formats.tanh_range_log2],
            "output_lsb": act.lsb}
    for key, value in want.items():
        if key in lut and lut[key] != value:
            raise BundleError(f"{where}: lut.{key}: says {_shown(lut[key])}, the formats give "
                              f"{_shown(value)}")


@dataclass(frozen=True)
class InputSaturation:
    """Normalised inputs that lay outside the activation format and were saturated.

    ``count`` of ``total`` values saturated; ``largest`` is the largest magnitude among the
    normalised values counted (0.0 when ``total`` is 0); ``limit`` is the format's range
    ±2**(bits-1-frac) in the same units (128 for Q8.8).
    """

    count: int
    total: int
    largest: float
    limit: float


@dataclass
class Layer:
    """One delta-GRU or delta-LSTM layer of a bundle.

    ``w_x`` int (3, H, I) and ``w_h`` int (3, H, H): weight codes in the weight format, gate
    order r, z, n; ``bias`` int (4, H): the initial delta memories M_r, M_z, M_nx, M_nh in the
    accumulator format. An LSTM layer (the bundle's ``cell``): ``w_x`` (4, H, I), ``w_h``
    (4, H, H), gate order i, f, g, o, and ``bias`` (4, H) the initial M_i, M_f, M_g, M_o; ``theta_x`` (on this layer's input: the model input for layer 0, the
    previous layer's h otherwise) and ``theta_h`` (on its own h): activation-format codes.
    ``balance``: the layer's column-balanced pattern (:class:`~drnn_hw.balance.BalanceUnit`),
    None for dense weights; the bundle's validation checks that the weights follow it.
    """

    w_x: np.ndarray
    w_h: np.ndarray
    bias: np.ndarray
    theta_x: int = 0
    theta_h: int = 0
    balance: BalanceUnit | None = None

    @property
    def input_size(self) -> int:
        return int(np.shape(self.w_x)[2])

    @property
    def hidden_size(self) -> int:
        return int(np.shape(self.w_x)[1])


def _single(name: str):
    """A property for a single-layer bundle's layer field; a stacked bundle has one per layer,
    and taking layer 0's silently would compute the wrong model, so that raises."""

    def get(self):
        if len(self.layers) != 1:
            raise BundleError(f"bundle {self.name}: {len(self.layers)} stacked layers have one "
                              f"{name} each (bundle.layers[l].{name}); this use takes a "
                              "single-layer bundle")
        return getattr(self.layers[0], name)

    def set_(self, value):
        if len(self.layers) != 1:
            raise BundleError(f"bundle {self.name}: {len(self.layers)} stacked layers: set "
                              f"bundle.layers[l].{name}")
        setattr(self.layers[0], name, value)

    return property(get, set_, doc=f"The single layer's ``{name}`` (see :class:`Layer`); "
                                   "raises BundleError on a stacked bundle.")


@dataclass(init=False)
class ModelBundle:
    """L ≥ 1 delta-GRU (or delta-LSTM) layers with their shared formats, LUTs, input
    normalisation and head.

    ``cell`` (keyword): ``"gru"`` (default) or ``"lstm"`` (:data:`GATES` weight matrices per
    layer; the numerics of :mod:`drnn_hw.numerics`); the core of
    :mod:`drnn_hw.core` is generated for either.

    Built either from one layer's ``w_x``, ``w_h``, ``bias``, ``theta_x``, ``theta_h`` (the
    single-layer form every existing caller uses), or from ``layers``, a list of
    :class:`Layer` (layer l > 0 takes layer l-1's h: ``I_l = H_{l-1}``). ``input_size`` is the
    first layer's I, ``hidden_size`` the last layer's H (the width of the output h and of the
    head's input). ``w_x`` .. ``theta_h`` read and write the single layer of a one-layer bundle
    and raise :class:`BundleError` on a stacked one. Construction validates (BundleError naming
    the field, ``layer{l}.FIELD`` when stacked).
    """

    formats: Formats
    layers: list
    sigmoid_lut: np.ndarray | None = None
    tanh_lut: np.ndarray | None = None
    input_mean: np.ndarray | None = None
    input_scale: np.ndarray | None = None
    head_w: np.ndarray | None = None
    head_b: np.ndarray | None = None
    classes: list | None = None
    name: str = "delta-gru"
    source: str = ""
    extra: dict = field(default_factory=dict)
    task: str = "classification"
    outputs: list | None = None
    cell: str = "gru"

    w_x = _single("w_x")
    w_h = _single("w_h")
    bias = _single("bias")
    theta_x = _single("theta_x")
    theta_h = _single("theta_h")

    def __init__(self, formats: Formats, w_x=None, w_h=None, bias=None, theta_x: int = 0,
                 theta_h: int = 0, sigmoid_lut=None, tanh_lut=None, input_mean=None,
                 input_scale=None, head_w=None, head_b=None, classes=None,
                 name: str = "delta-gru", source: str = "", extra: dict | None = None, *,
                 layers=None, task: str = "classification", outputs=None, cell: str = "gru"):
        if layers is None:
            if w_x is None or w_h is None or bias is None:
                raise TypeError("ModelBundle needs w_x, w_h and bias, or layers")
            layers = [Layer(w_x, w_h, bias, theta_x, theta_h)]
        elif w_x is not None or w_h is not None or bias is not None or theta_x or theta_h:
            raise TypeError("ModelBundle takes layers or w_x/w_h/bias/theta_x/theta_h, not both")
        # Copies: a bundle made with dataclasses.replace must not share mutable layers.
        self.layers = [Layer(ly.w_x, ly.w_h, ly.bias, ly.theta_x, ly.theta_h,
                             getattr(ly, "balance", None)) for ly in layers]
        self.formats = formats
        self.sigmoid_lut, self.tanh_lut = sigmoid_lut, tanh_lut
        self.input_mean, self.input_scale = input_mean, input_scale
        self.head_w, self.head_b, self.classes = head_w, head_b, classes
        self.name, self.source = name, source
        self.extra = {} if extra is None else extra
        self.task, self.outputs = task, None if outputs is None else list(outputs)
        self.cell = cell
        self.__post_init__()

    def __post_init__(self):
        if not self.layers:
            raise BundleError("bundle: layers: expected at least 1 layer, got 0")
        if self.sigmoid_lut is None:
            self.sigmoid_lut = make_sigmoid_lut(self.formats)
        if self.tanh_lut is None:
            self.tanh_lut = make_tanh_lut(self.formats)
        if self.input_mean is None and np.ndim(self.layers[0].w_x) == 3:
            self.input_mean = np.zeros(self.input_size)
        if self.input_scale is None and np.ndim(self.layers[0].w_x) == 3:
            self.input_scale = np.ones(self.input_size)
        self.validate("bundle")

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def input_size(self) -> int:
        return self.layers[0].input_size

    @property
    def hidden_size(self) -> int:
        return self.layers[-1].hidden_size

    @property
    def has_head(self) -> bool:
        return self.head_w is not None

    @property
    def is_regression(self) -> bool:
        """The head outputs O real values (``outputs``), not C class scores."""
        return self.task == "regression"

    @property
    def num_outputs(self) -> int:
        """The head's rows: C classes or O regression outputs (0 without a head)."""
        return 0 if self.head_w is None else int(np.shape(self.head_w)[0])

    def with_thresholds(self, theta_x: int | None = None, theta_h: int | None = None):
        """A copy with these threshold codes (None keeps the current); on a stacked bundle
        they apply to every layer (one value for all, as the CLI's single ``--theta-x``)."""
        return replace(self, layers=[
            replace(ly, theta_x=ly.theta_x if theta_x is None else int(theta_x),
                    theta_h=ly.theta_h if theta_h is None else int(theta_h))
            for ly in self.layers])

    def with_layer_thresholds(self, thetas):
        """A copy with per-layer threshold codes ``thetas``: L pairs (theta_x, theta_h)."""
        thetas = list(thetas)
        if len(thetas) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} (theta_x, theta_h) pairs, "
                             f"got {len(thetas)}")
        return replace(self, layers=[replace(ly, theta_x=int(tx), theta_h=int(th))
                                     for ly, (tx, th) in zip(self.layers, thetas)])

    def require_single_layer(self, where: str, what: str):
        """Raise BundleError ``WHERE: L stacked layers: WHAT`` unless the bundle has one layer:
        the consumers that handle one layer only (the generated core, its simulators, the
        boards) call this instead of silently running layer 0."""
        if self.num_layers != 1:
            raise BundleError(f"{where}: {self.num_layers} stacked layers: {what}")

    # -- validation ----------------------------------------------------------------------------

    def validate(self, where: str):
        f = self.formats
        stacked = len(self.layers) > 1

        def fail(field_, msg):
            raise BundleError(f"{where}: {field_}: {msg}")

        if self.cell not in CELLS:
            fail("cell", f"expected one of {', '.join(CELLS)}, got {self.cell!r}")
        G = GATES[self.cell]
        gates = (f"{G} gates (i, f, g, o) of an LSTM" if self.cell == "lstm" else
                 f"{G} gates (r, z, n) of a GRU")

        def check_int(name, arr, shape, lo, hi):
            arr = np.asarray(arr)
            if arr.dtype.kind not in "iu":
                fail(name, f"expected integer codes, got dtype {arr.dtype}")
            if arr.shape != shape:
                fail(name, f"expected shape {shape}, got {arr.shape}")
            if arr.size and (arr.min() < lo or arr.max() > hi):
                fail(name, f"values must lie in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]")

        wf = f.weight
        prev_h = None
        for l, ly in enumerate(self.layers):
            p = f"layer{l}." if stacked else ""
            wx = np.asarray(ly.w_x)
            want_i = "I" if prev_h is None else prev_h
            if wx.ndim != 3 or wx.shape[0] != G:
                fail(p + "w_x", f"expected shape ({G}, H, {want_i}): the {gates}, "
                                f"got {wx.shape}")
            H, I = int(wx.shape[1]), int(wx.shape[2])
            if H < 1 or I < 1:
                fail(p + "w_x", f"input and hidden size must be ≥ 1, got I={I}, H={H}")
            if prev_h is not None and I != prev_h:
                fail(p + "w_x", f"expected shape {(G, H, prev_h)} (its input is layer{l - 1}'s "
                                f"h), got {wx.shape}")
            check_int(p + "w_x", wx, (G, H, I), wf.min, wf.max)
            wh_shape = np.shape(ly.w_h)
            if wh_shape != (G, H, H):
                # H is read from w_x: say so, or a cut w_x reads as a wrong w_h.
                fail(p + "w_h", f"expected shape {(G, H, H)} (H = {H} from {p}w_x's shape "
                                f"{wx.shape}), got {wh_shape}")
            check_int(p + "w_h", ly.w_h, (G, H, H), wf.min, wf.max)
            check_int(p + "bias", ly.bias, (4, H), f.acc.min, f.acc.max)
            for name in ("theta_x", "theta_h"):
                v = getattr(ly, name)
                if not _is_int(v) and not (isinstance(v, np.integer)):
                    fail(p + name, f"expected an integer threshold code, got {v!r}")
                if not (0 <= int(v) <= f.act.max):
                    fail(p + name, f"threshold code must lie in [0, {f.act.max}], got {v}")
            unit = getattr(ly, "balance", None)
            if unit is not None:
                if not isinstance(unit, BalanceUnit):
                    fail(p + "balance", f"expected a BalanceUnit or None, got {unit!r}")
                want = kept_per_slice(unit.gamma, H, unit.rows)
                if unit.kept != want:
                    fail(p + "balance", f"kept {unit.kept} per slice is not the count for "
                                        f"γ = {unit.gamma:g} over P = {unit.rows} (H = {H}: "
                                        f"expected {want})")
                for part in ("w_x", "w_h"):
                    for g, gname in enumerate(GATE_NAMES[self.cell]):
                        bad = first_violation(np.asarray(getattr(ly, part))[g], unit.rows,
                                              unit.kept)
                        if bad is not None:
                            c, q, nz = bad
                            rows = ", ".join(str(r) for r in range(q, H, unit.rows)[:4])
                            more = ", ..." if len(range(q, H, unit.rows)) > 4 else ""
                            fail(p + part, f"gate {gname} column {c} slice p={q} (rows "
                                           f"{rows}{more}): {nz} non-zero weights, "
                                           f"layers[{l}].balance.kept allows at most "
                                           f"{unit.kept} (P = {unit.rows}, γ = "
                                           f"{unit.gamma:g})")
            prev_h = H
        H, I = self.hidden_size, self.input_size
        n = f.lut_entries
        check_int("sigmoid_lut", self.sigmoid_lut, (n,), 0, f.one)
        check_int("tanh_lut", self.tanh_lut, (n,), -f.one, f.one)
        for name in ("input_mean", "input_scale"):
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.shape != (I,):
                fail(name, f"expected shape ({I},), got {a.shape}")
            if not np.all(np.isfinite(a)):
                fail(name, "contains NaN or infinity")
        if np.any(np.asarray(self.input_scale) == 0):
            fail("input_scale", "must be non-zero")
        if self.head_w is not None:
            hw = np.asarray(self.head_w)
            if hw.ndim != 2 or hw.shape[1] != H:
                fail("head_w", f"expected shape (C, {H}), got {hw.shape}")
            if self.head_b is None:
                fail("head_b", f"missing: head_w ({hw.shape[0]} × {H}) needs its "
                               f"{hw.shape[0]} biases")
            if np.asarray(self.head_b).shape != (hw.shape[0],):
                fail("head_b", f"expected shape ({hw.shape[0]},) to match head_w's "
                               f"{hw.shape[0]} rows (one per output), got "
                               f"{np.asarray(self.head_b).shape}")
            if self.classes is not None and len(self.classes) != hw.shape[0]:
                fail("classes", f"expected {hw.shape[0]} labels, got {len(self.classes)}")
        if self.task not in TASKS:
            fail("task", f"expected one of {', '.join(TASKS)}, got {self.task!r}")
        if self.is_regression:
            if self.head_w is None:
                fail("head_w", "missing: a regression model needs its head (O, H)")
            if self.classes is not None:
                fail("classes", "expected null for a regression model (its outputs are named "
                                "in outputs)")
            if self.outputs is None or len(self.outputs) != self.num_outputs:
                fail("outputs", f"expected {self.num_outputs} names (one per row of head_w), "
                                f"got {None if self.outputs is None else len(self.outputs)}")
        elif self.outputs is not None:
            fail("outputs", "only a regression model (task 'regression') names outputs")
        for ly in self.layers:
            ly.w_x = np.asarray(ly.w_x, dtype=np.int64)
            ly.w_h = np.asarray(ly.w_h, dtype=np.int64)
            ly.bias = np.asarray(ly.bias, dtype=np.int64)
            ly.theta_x, ly.theta_h = int(ly.theta_x), int(ly.theta_h)
        self.sigmoid_lut = np.asarray(self.sigmoid_lut, dtype=np.int64)
        self.tanh_lut = np.asarray(self.tanh_lut, dtype=np.int64)

    # -- host-side input handling --------------------------------------------------------------

    def quantize_input(self, x, where: str = "input") -> np.ndarray:
        """Raw float inputs (..., I) to activation codes (int64, same shape), after the
        bundle's normalisation ``(x - input_mean) / input_scale``; values beyond the activation
        format saturate (see :meth:`quantize_input_counted` to learn how many). Raises
        :class:`BundleError` naming ``where`` for a wrong last dimension or NaN/infinity."""
        return self.quantize_input_counted(x, where)[0]

    def quantize_input_counted(self, x, where: str = "input", valid=None
                               ) -> tuple[np.ndarray, InputSaturation]:
        """:meth:`quantize_input`, and how many values saturated.

        ``valid`` (bool, ``x.shape[:-1]``, e.g. (N, T) steps within each sequence's length)
        restricts the count to those positions; the codes elsewhere are still returned.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != self.input_size:
            raise BundleError(f"{where}: expected {self.input_size} features in the last "
                              f"dimension, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise BundleError(f"{where}: contains NaN or infinity")
        fmt = self.formats.act
        v = (x - self.input_mean) / self.input_scale
        counted = v if valid is None else \
            v[np.broadcast_to(np.asarray(valid, dtype=bool)[..., None], x.shape)]
        return quantize(v, fmt), InputSaturation(
            count=quantize_count(counted, fmt), total=int(counted.size),
            largest=float(np.abs(counted).max()) if counted.size else 0.0,
            limit=float(2 ** (fmt.bits - 1 - fmt.frac)))

    # -- disk ----------------------------------------------------------------------------------

    def save(self, directory) -> Path:
        """Write model.json and tensors.npz into ``directory`` (created if needed): format
        version 1 for a single-layer GRU bundle (readable by older releases), 2 for a stacked
        GRU, 3 for an LSTM (module docstring). Returns the directory."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        f = self.formats

        def thresholds(ly):
            return {"theta_x": ly.theta_x * f.act.lsb, "theta_h": ly.theta_h * f.act.lsb,
                    "theta_x_code": int(ly.theta_x), "theta_h_code": int(ly.theta_h)}

        lstm = self.cell != "gru"
        balanced = any(ly.balance is not None for ly in self.layers)
        stacked = self.num_layers > 1 or lstm or balanced   # versions 3, 4: per-layer arrays
        meta = {
            "format_version": 4 if balanced else 3 if lstm else (2 if stacked else 1),
            **({"cell": self.cell} if lstm or balanced else {}),
            "name": self.name,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "formats": f.to_dict(),
        }
        if stacked:
            meta["layers"] = [{"input_size": ly.input_size, "hidden_size": ly.hidden_size,
                               "thresholds": thresholds(ly),
                               **({"balance": ly.balance.to_dict()}
                                  if ly.balance is not None else {})}
                              for ly in self.layers]
        else:
            meta["thresholds"] = thresholds(self.layers[0])
        meta.update({
            "lut": {
                "entries": f.lut_entries,
                "sigmoid_range": [-2 ** f.sigmoid_range_log2, 2 ** f.sigmoid_range_log2],
                "tanh_range": [-2 ** f.tanh_range_log2, 2 ** f.tanh_range_log2],
                "output_lsb": f.act.lsb,
            },
            "classes": None if self.classes is None else [str(c) for c in self.classes],
            # Written for a regression model only: a classifier's model.json is unchanged.
            **({"task": self.task, "outputs": [str(o) for o in self.outputs]}
               if self.is_regression else {}),
            "source": self.source,
            "extra": self.extra,
        })
        arrays = {}
        for l, ly in enumerate(self.layers):
            p = f"layer{l}." if stacked else ""
            arrays.update({p + "w_x": ly.w_x, p + "w_h": ly.w_h, p + "bias": ly.bias})
        arrays.update(sigmoid_lut=self.sigmoid_lut, tanh_lut=self.tanh_lut,
                      input_mean=self.input_mean, input_scale=self.input_scale)
        if self.head_w is not None:
            arrays.update(head_w=np.asarray(self.head_w, dtype=np.float64),
                          head_b=np.asarray(self.head_b, dtype=np.float64))
        np.savez(d / "tensors.npz", **arrays)
        (d / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
        return d

    @classmethod
    def load(cls, directory) -> "ModelBundle":
        """Read a bundle of format version 1 to 4; BundleError naming file and field."""
        d = Path(directory)
        mj, tz = d / "model.json", d / "tensors.npz"
        if d.exists() and not d.is_dir():
            raise BundleError(f"{d}: is a file, expected a model bundle directory (model.json "
                              "and tensors.npz, written by drnn export)")
        if not d.is_dir():
            raise BundleError(f"{d}: model bundle directory not found")
        for p in (mj, tz):
            if not p.is_file():
                raise BundleError(f"{p}: missing (a bundle needs model.json and tensors.npz)")
        meta = read_json_object(mj, BundleError)
        version = meta.get("format_version")
        if _is_int(version) and version not in FORMAT_VERSIONS:
            raise BundleError(f"{mj}: format_version: expected "
                              f"{', '.join(map(str, FORMAT_VERSIONS[:-1]))} or "
                              f"{FORMAT_VERSIONS[-1]}, got {version!r}")
        v2 = version in (2, 3, 4)           # per-layer arrays and a layers list
        _check_fields(meta, MODEL_JSON_FIELDS_V4 if version == 4 else
                      MODEL_JSON_FIELDS_V3 if version == 3 else
                      MODEL_JSON_FIELDS_V2 if v2 else MODEL_JSON_FIELDS, str(mj))
        try:
            formats = Formats.from_dict(meta["formats"])
        except ValueError as e:
            raise BundleError(f"{mj}: formats: {e}") from None
        _check_copies(meta, formats, str(mj))
        try:
            with np.load(tz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as e:  # zipfile/OSError/ValueError: the file is not a readable npz
            raise BundleError(f"{tz}: not a readable .npz archive ({type(e).__name__})") from None
        # Everything save() writes must be there and nothing else: a table the loader would
        # silently rebuild, or an array it would ignore, is a bundle that is not what it says.
        shared = {"sigmoid_lut", "tanh_lut", "input_mean", "input_scale"}
        for k in sorted(shared - set(arrays)):
            raise BundleError(f"{tz}: missing array '{k}'")
        layer_re = r"layer\d+\.(w_x|w_h|bias)" if v2 else r"(w_x|w_h|bias)"
        for k in arrays:
            if k not in shared | {"head_w", "head_b"} and not re.fullmatch(layer_re, k) \
                    and not (v2 and k in ("w_x", "w_h", "bias")):
                raise BundleError(f"{tz}: unknown array '{k}'")
        for k, table in (("sigmoid_lut", make_sigmoid_lut(formats)),
                         ("tanh_lut", make_tanh_lut(formats))):
            got = np.asarray(arrays[k])
            if got.shape != table.shape or not np.array_equal(got, table):
                where = "" if got.shape != table.shape else \
                    f" at entry {int(np.flatnonzero(got != table)[0])}"
                raise BundleError(f"{tz}: {k}: differs from the table the formats specify"
                                  f"{where} (drnn_hw.numerics; entries round(f(centre)))")
        units = []
        if v2:
            entries = meta["layers"]
            names = [(f"layer{l}.", e["thresholds"]) for l, e in enumerate(entries)]
            for l, e in enumerate(entries):
                units.append(_balance_from_json(e.get("balance"), e["hidden_size"], str(mj),
                                                f"layers[{l}].balance"))
            for k in arrays:
                m = re.fullmatch(r"layer(\d+)\.(w_x|w_h|bias)", k)
                if k in ("w_x", "w_h", "bias"):
                    raise BundleError(f"{tz}: {k}: a version-{version} bundle holds per-layer arrays "
                                      f"(layer0.{k}, ...), not {k}")
                if m and int(m.group(1)) >= len(entries):
                    raise BundleError(f"{tz}: {k}: model.json lists {len(entries)} layer(s)")
        else:
            names = [("", meta["thresholds"])]
        layers = []
        for l, (p, th) in enumerate(names):
            for k in ("w_x", "w_h", "bias"):
                if p + k not in arrays:
                    raise BundleError(f"{tz}: missing array '{p}{k}'")
            layers.append(Layer(arrays[p + "w_x"], arrays[p + "w_h"], arrays[p + "bias"],
                                th["theta_x_code"], th["theta_h_code"],
                                units[l] if units else None))
        try:
            bundle = cls(
                formats=formats, layers=layers,
                sigmoid_lut=arrays.get("sigmoid_lut"), tanh_lut=arrays.get("tanh_lut"),
                input_mean=arrays.get("input_mean"), input_scale=arrays.get("input_scale"),
                head_w=arrays.get("head_w"), head_b=arrays.get("head_b"),
                classes=meta.get("classes"), name=meta.get("name", d.name),
                source=meta.get("source", ""), extra=meta.get("extra", {}),
                task=meta.get("task", "classification"), outputs=meta.get("outputs"),
                cell=meta.get("cell", "gru"),
            )
        except BundleError as e:
            # A one-layer version-2 bundle names its arrays layer0.*; validation says w_x.
            msg = str(e).removeprefix("bundle: ")
            if v2 and len(layers) == 1 and not msg.startswith("layer0."):
                msg = re.sub(r"^(w_x|w_h|bias|theta_x|theta_h):", r"layer0.\1:", msg)
            # classes, task and outputs live in model.json; everything else is a tensor
            in_json = msg.startswith(("classes", "task", "outputs", "cell"))
            raise BundleError(f"{mj if in_json else tz}: {msg}") from None
        for key in ("input_size", "hidden_size"):
            want = meta.get(key)
            got = getattr(bundle, key)
            if want is not None and want != got:
                raise BundleError(f"{mj}: {key}: says {want}, tensors have {got}")
        if v2:
            for l, (e, ly) in enumerate(zip(meta["layers"], bundle.layers)):
                for key in ("input_size", "hidden_size"):
                    if e[key] != getattr(ly, key):
                        raise BundleError(f"{mj}: layers[{l}].{key}: says {e[key]}, "
                                          f"tensors have {getattr(ly, key)}")
        return bundle


def _balance_from_json(d, hidden, where: str, name: str) -> BalanceUnit | None:
    """model.json's ``layers[l].balance`` (fields already type-checked) -> BalanceUnit; a
    BundleError naming ``where`` and the field for a value out of range or a ``kept`` that is
    not the count its ``gamma`` gives (expected vs got)."""
    if d is None:
        return None
    if d["rows"] < 1:
        raise BundleError(f"{where}: {name}.rows: expected an integer ≥ 1, got {d['rows']}")
    if not 0 <= d["gamma"] < 1:
        raise BundleError(f"{where}: {name}.gamma: expected a number in [0, 1), "
                          f"got {d['gamma']!r}")
    if _is_int(hidden) and hidden >= 1:
        want = kept_per_slice(d["gamma"], hidden, d["rows"])
        if d["kept"] != want:
            raise BundleError(f"{where}: {name}.kept: expected {want} (γ = {d['gamma']:g} over "
                              f"P = {d['rows']} slices of H = {hidden} rows: NB − floor(γ·NB)), "
                              f"got {d['kept']}")
    return BalanceUnit(rows=d["rows"], kept=d["kept"], gamma=float(d["gamma"]))


def random_bundle(input_size: int, hidden_size: int, *, formats: Formats | None = None,
                  seed: int = 0, weight_scale: float = 0.5, theta_x: float = 0.0,
                  theta_h: float = 0.0, name: str = "random", cell: str = "gru") -> ModelBundle:
    """A bundle with random weights, for tests and for sizing presets without a trained model.
    ``cell`` "lstm": 4 gate matrices per layer (the GRU's random numbers are unchanged)."""
    formats = formats or Formats()
    rng = np.random.default_rng(seed)
    I, H = input_size, hidden_size
    G = GATES[cell]
    w_ih = rng.normal(0, weight_scale / np.sqrt(I), (G, H, I))
    w_hh = rng.normal(0, weight_scale / np.sqrt(H), (G, H, H))
    b = rng.normal(0, 0.2, (4, H))
    return ModelBundle(
        formats=formats, w_x=quantize(w_ih, formats.weight), w_h=quantize(w_hh, formats.weight),
        bias=quantize(b, formats.acc), theta_x=int(quantize(theta_x, formats.act)),
        theta_h=int(quantize(theta_h, formats.act)), name=name, source=f"random seed={seed}",
        cell=cell)


def random_stacked_bundle(input_size: int, hidden_sizes, *, formats: Formats | None = None,
                          seed: int = 0, weight_scale: float = 0.5, theta_x=0.0, theta_h=0.0,
                          name: str = "random-stacked", cell: str = "gru") -> ModelBundle:
    """A bundle of ``len(hidden_sizes)`` random layers (layer l: I_l = H_{l-1}), for tests.

    ``theta_x``/``theta_h``: one threshold (real units) for every layer, or one per layer.
    """
    formats = formats or Formats()
    hs = [int(h) for h in hidden_sizes]
    per = lambda v: list(v) if np.ndim(v) else [v] * len(hs)  # noqa: E731
    txs, ths = per(theta_x), per(theta_h)
    layers, I = [], input_size
    for l, H in enumerate(hs):
        b = random_bundle(I, H, formats=formats, seed=seed + 1000 * l,
                          weight_scale=weight_scale, theta_x=txs[l], theta_h=ths[l], cell=cell)
        layers.append(b.layers[0])
        I = H
    return ModelBundle(formats=formats, layers=layers, name=name,
                       source=f"random seed={seed}, {len(hs)} layers", cell=cell)
