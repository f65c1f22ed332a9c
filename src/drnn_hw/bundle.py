"""The model bundle: what the trainer exports and everything downstream consumes.

A bundle is a directory with two files:

``model.json``
    ``format_version``, ``name``, ``input_size``, ``hidden_size``, ``formats`` (see
    :class:`~drnn_hw.numerics.Formats`), ``thresholds`` (``theta_x``/``theta_h`` as float and as
    integer code in the activation format), ``lut`` (entries and ranges, informational),
    ``classes`` (head labels, or null when there is no head), ``source`` (free text),
    ``extra`` (an object, free-form). :meth:`ModelBundle.load` checks the type of every field
    (:data:`MODEL_JSON_FIELDS`), rejects unknown ones, and rejects the informational copies
    (float thresholds, ``lut``, sizes) when they disagree with what they copy.
``tensors.npz``
    ``w_x`` int (3, H, I) and ``w_h`` int (3, H, H): weight codes, gate order r, z, n;
    ``bias`` int (4, H): initial delta memories M_r, M_z, M_nx, M_nh in the accumulator format
    (b_ir+b_hr, b_iz+b_hz, b_in, b_hn); ``sigmoid_lut``, ``tanh_lut`` int (2**lut_bits,);
    ``input_mean``, ``input_scale`` float (I,): the host normalises raw inputs as
    ``(x - mean) / scale`` before quantising; ``head_w`` float (C, H), ``head_b`` float (C,)
    when there is a head.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from .io import read_json_object
from .numerics import Formats, make_sigmoid_lut, make_tanh_lut, quantize, quantize_count

__all__ = ["ModelBundle", "BundleError", "FORMAT_VERSION", "InputSaturation",
           "MODEL_JSON_FIELDS", "random_bundle"]

FORMAT_VERSION = 1


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


_INT, _NUM, _STR = ("an integer", _is_int), ("a finite number", _is_num), \
    ("a string", lambda v: isinstance(v, str))
_PAIR = ("a list of 2 numbers", _is_pair)

#: model.json fields: name -> ((type name, test), required) or a nested dict for an object.
MODEL_JSON_FIELDS = {
    "format_version": (_INT, True),
    "name": (_STR, False),
    "input_size": (_INT, False),
    "hidden_size": (_INT, False),
    "formats": ({f.name: (_INT, True) for f in fields(Formats)}, True),
    "thresholds": ({"theta_x": (_NUM, False), "theta_h": (_NUM, False),
                    "theta_x_code": (_INT, True), "theta_h_code": (_INT, True)}, True),
    "lut": ({"entries": (_INT, False), "sigmoid_range": (_PAIR, False),
             "tanh_range": (_PAIR, False), "output_lsb": (_NUM, False)}, False),
    "classes": (("a list of strings or null", _is_classes), False),
    "source": (_STR, False),
    "extra": (("an object", lambda v: isinstance(v, dict)), False),
}


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
        if isinstance(kind, dict):
            if not isinstance(v, dict):
                raise BundleError(f"{where}: {name}: expected an object, got {_shown(v)}")
            _check_fields(v, kind, where, name + ".")
        elif not kind[1](v):
            raise BundleError(f"{where}: {name}: expected {kind[0]}, got {_shown(v)}")


def _check_copies(meta: dict, formats: Formats, where: str):
    """The informational fields must agree with what they copy (codes, formats)."""
    act, th = formats.act, meta["thresholds"]
    for name in ("theta_x", "theta_h"):
        if not 0 <= th[name + "_code"] <= act.max:
            raise BundleError(f"{where}: thresholds.{name}_code: expected a code in "
                              f"[0, {act.max}], got {th[name + '_code']}")
        if name in th:
            code = int(quantize(th[name], act))
            if code != th[name + "_code"]:
                raise BundleError(
                    f"{where}: thresholds.{name}: {th[name]!r} is code {code} in {act}, but "
                    f"thresholds.{name}_code is {th[name + '_code']} (edit both, or drop "
                    f"thresholds.{name})")
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
class ModelBundle:
    formats: Formats
    w_x: np.ndarray            # (3, H, I) int64
    w_h: np.ndarray            # (3, H, H) int64
    bias: np.ndarray           # (4, H) int64
    theta_x: int = 0           # activation-format codes
    theta_h: int = 0
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

    def __post_init__(self):
        if self.sigmoid_lut is None:
            self.sigmoid_lut = make_sigmoid_lut(self.formats)
        if self.tanh_lut is None:
            self.tanh_lut = make_tanh_lut(self.formats)
        if self.input_mean is None:
            self.input_mean = np.zeros(self.input_size)
        if self.input_scale is None:
            self.input_scale = np.ones(self.input_size)
        self.validate("bundle")

    @property
    def input_size(self) -> int:
        return int(self.w_x.shape[2])

    @property
    def hidden_size(self) -> int:
        return int(self.w_x.shape[1])

    @property
    def has_head(self) -> bool:
        return self.head_w is not None

    def with_thresholds(self, theta_x: int | None = None, theta_h: int | None = None):
        return replace(self, theta_x=self.theta_x if theta_x is None else int(theta_x),
                       theta_h=self.theta_h if theta_h is None else int(theta_h))

    # -- validation ----------------------------------------------------------------------------

    def validate(self, where: str):
        f = self.formats

        def fail(field_, msg):
            raise BundleError(f"{where}: {field_}: {msg}")

        def check_int(name, arr, shape, lo, hi):
            arr = np.asarray(arr)
            if arr.dtype.kind not in "iu":
                fail(name, f"expected integer codes, got dtype {arr.dtype}")
            if arr.shape != shape:
                fail(name, f"expected shape {shape}, got {arr.shape}")
            if arr.size and (arr.min() < lo or arr.max() > hi):
                fail(name, f"values must lie in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]")

        if np.asarray(self.w_x).ndim != 3 or np.asarray(self.w_x).shape[0] != 3:
            fail("w_x", f"expected shape (3, H, I), got {np.asarray(self.w_x).shape}")
        H, I = self.hidden_size, self.input_size
        if H < 1 or I < 1:
            fail("w_x", f"input and hidden size must be ≥ 1, got I={I}, H={H}")
        wf = f.weight
        check_int("w_x", self.w_x, (3, H, I), wf.min, wf.max)
        check_int("w_h", self.w_h, (3, H, H), wf.min, wf.max)
        check_int("bias", self.bias, (4, H), f.acc.min, f.acc.max)
        n = f.lut_entries
        check_int("sigmoid_lut", self.sigmoid_lut, (n,), 0, f.one)
        check_int("tanh_lut", self.tanh_lut, (n,), -f.one, f.one)
        for name in ("theta_x", "theta_h"):
            v = getattr(self, name)
            if not (0 <= int(v) <= f.act.max):
                fail(name, f"threshold code must lie in [0, {f.act.max}], got {v}")
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
            if self.head_b is None or np.asarray(self.head_b).shape != (hw.shape[0],):
                fail("head_b", f"expected shape ({hw.shape[0]},)")
            if self.classes is not None and len(self.classes) != hw.shape[0]:
                fail("classes", f"expected {hw.shape[0]} labels, got {len(self.classes)}")
        self.w_x = np.asarray(self.w_x, dtype=np.int64)
        self.w_h = np.asarray(self.w_h, dtype=np.int64)
        self.bias = np.asarray(self.bias, dtype=np.int64)
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
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        f = self.formats
        meta = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "formats": f.to_dict(),
            "thresholds": {
                "theta_x": self.theta_x * f.act.lsb, "theta_h": self.theta_h * f.act.lsb,
                "theta_x_code": int(self.theta_x), "theta_h_code": int(self.theta_h),
            },
            "lut": {
                "entries": f.lut_entries,
                "sigmoid_range": [-2 ** f.sigmoid_range_log2, 2 ** f.sigmoid_range_log2],
                "tanh_range": [-2 ** f.tanh_range_log2, 2 ** f.tanh_range_log2],
                "output_lsb": f.act.lsb,
            },
            "classes": None if self.classes is None else [str(c) for c in self.classes],
            "source": self.source,
            "extra": self.extra,
        }
        arrays = dict(w_x=self.w_x, w_h=self.w_h, bias=self.bias, sigmoid_lut=self.sigmoid_lut,
                      tanh_lut=self.tanh_lut, input_mean=self.input_mean,
                      input_scale=self.input_scale)
        if self.head_w is not None:
            arrays.update(head_w=np.asarray(self.head_w, dtype=np.float64),
                          head_b=np.asarray(self.head_b, dtype=np.float64))
        np.savez(d / "tensors.npz", **arrays)
        (d / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
        return d

    @classmethod
    def load(cls, directory) -> "ModelBundle":
        d = Path(directory)
        mj, tz = d / "model.json", d / "tensors.npz"
        if not d.is_dir():
            raise BundleError(f"{d}: model bundle directory not found")
        for p in (mj, tz):
            if not p.is_file():
                raise BundleError(f"{p}: missing (a bundle needs model.json and tensors.npz)")
        meta = read_json_object(mj, BundleError)
        version = meta.get("format_version")
        if _is_int(version) and version != FORMAT_VERSION:
            raise BundleError(f"{mj}: format_version: expected {FORMAT_VERSION}, got {version!r}")
        _check_fields(meta, MODEL_JSON_FIELDS, str(mj))
        try:
            formats = Formats.from_dict(meta["formats"])
        except ValueError as e:
            raise BundleError(f"{mj}: formats: {e}") from None
        _check_copies(meta, formats, str(mj))
        th = meta["thresholds"]
        theta_x, theta_h = th["theta_x_code"], th["theta_h_code"]
        try:
            with np.load(tz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as e:  # zipfile/OSError/ValueError: the file is not a readable npz
            raise BundleError(f"{tz}: not a readable .npz archive ({type(e).__name__})") from None
        for k in ("w_x", "w_h", "bias"):
            if k not in arrays:
                raise BundleError(f"{tz}: missing array '{k}'")
        try:
            bundle = cls(
                formats=formats, w_x=arrays["w_x"], w_h=arrays["w_h"], bias=arrays["bias"],
                theta_x=theta_x, theta_h=theta_h,
                sigmoid_lut=arrays.get("sigmoid_lut"), tanh_lut=arrays.get("tanh_lut"),
                input_mean=arrays.get("input_mean"), input_scale=arrays.get("input_scale"),
                head_w=arrays.get("head_w"), head_b=arrays.get("head_b"),
                classes=meta.get("classes"), name=meta.get("name", d.name),
                source=meta.get("source", ""), extra=meta.get("extra", {}),
            )
        except BundleError as e:
            raise BundleError(f"{tz}: {str(e).removeprefix('bundle: ')}") from None
        for key in ("input_size", "hidden_size"):
            want = meta.get(key)
            got = getattr(bundle, key)
            if want is not None and want != got:
                raise BundleError(f"{mj}: {key}: says {want}, tensors have {got}")
        return bundle


def random_bundle(input_size: int, hidden_size: int, *, formats: Formats | None = None,
                  seed: int = 0, weight_scale: float = 0.5, theta_x: float = 0.0,
                  theta_h: float = 0.0, name: str = "random") -> ModelBundle:
    """A bundle with random weights, for tests and for sizing presets without a trained model."""
    formats = formats or Formats()
    rng = np.random.default_rng(seed)
    I, H = input_size, hidden_size
    w_ih = rng.normal(0, weight_scale / np.sqrt(I), (3, H, I))
    w_hh = rng.normal(0, weight_scale / np.sqrt(H), (3, H, H))
    b = rng.normal(0, 0.2, (4, H))
    return ModelBundle(
        formats=formats, w_x=quantize(w_ih, formats.weight), w_h=quantize(w_hh, formats.weight),
        bias=quantize(b, formats.acc), theta_x=int(quantize(theta_x, formats.act)),
        theta_h=int(quantize(theta_h, formats.act)), name=name, source=f"random seed={seed}")
