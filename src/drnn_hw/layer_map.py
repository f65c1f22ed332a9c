"""Where each layer of a stacked core lives in the shared memories (EdgeDRNN's time-multiplexed
layers: one set of multipliers, per-layer regions of every memory).

The core runs the layers one after the other within a timestep (a *layer pass* each, the
single-layer schedule of :mod:`drnn_hw.cycle_model` on the layer's own sizes). Every per-layer
store is the concatenation of the layers' stores, in layer order:

* **delta memories** (each MxV channel): layer l owns the ``NB_l = ceil(H_l/P)`` words from
  ``block_base``; the queue, the MxV and the AP count these *global* block numbers;
* **weight banks**: layer l's region holds its ``(I_l + H_l) · NB_l`` words from
  ``weight_base``, laid out as a single layer's (column ``c``, block ``b`` at
  ``c · NB_l + b``). A delta's weight address is ``weight_base − block_base + c · NB_l``
  (``column_base + c · NB_l``), so that address + global block = the word;
* **references** x̂ and ĥ (the encoder's distributed RAM, word g = window g): x windows and
  h windows of all layers, from ``x_window_base`` and ``h_window_base``; layer l > 0 reads
  its x, layer l−1's h, from the hidden state;
* **hidden state** h: layer l's units from ``h_base``.

With one layer every base is 0 and the core is the single-layer core.

A run-time core (:class:`Maxima`) is laid out by ``layer_map`` of its maxima; a model loaded
into it runs on that layout with its own sizes (:func:`descriptor_values`): layer l's weights
from the slot's ``weight_base`` with the loaded NB_l as stride, its blocks from the slot's
``block_base``, its units from the slot's ``h_base``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.lib import data

__all__ = ["LayerSlot", "layer_map", "total_blocks", "total_words", "MAX_LAYERS",
           "LayerDescriptor", "descriptor_values", "Maxima"]

#: Layers a core can hold: the register map has a block of 8 words per layer from word 32
#: (:mod:`drnn_hw.contract`).
MAX_LAYERS = 28


@dataclass(frozen=True)
class LayerSlot:
    """Sizes and memory offsets of one layer in a stacked core (see the module docstring)."""

    inputs: int          # I_l (layer 0: the model's input; layer l > 0: H_{l-1})
    hidden: int          # H_l
    blocks: int          # NB_l = ceil(H_l / P)
    x_windows: int       # WX_l = ceil(I_l / E)
    h_windows: int       # WH_l = ceil(H_l / E)
    block_base: int      # first global delta-memory word
    weight_base: int     # first weight-bank word of the region
    x_window_base: int   # first global x window (x̂ of the layer)
    h_window_base: int   # first global h window (ĥ and h of the layer)
    h_base: int          # first unit of the layer in the concatenated hidden state

    @property
    def column_base(self) -> int:
        """``weight_base − block_base``: a delta's weight address is this + ``c · NB_l``."""
        return self.weight_base - self.block_base

    @property
    def last_block(self) -> int:
        return self.block_base + self.blocks - 1


def layer_map(inputs: int, hidden, rows: int, scan: int, blocks=None) -> list[LayerSlot]:
    """The :class:`LayerSlot` of every layer.

    ``inputs``: I of layer 0; ``hidden``: H of every layer (a sequence, or an int for one
    layer); ``rows``: P; ``scan``: E. ``blocks`` (optional, one int ≥ 1 per layer): the words
    per weight column instead of ``ceil(H_l/P)``: a compressed core's issue-slot layout
    (``kept_l`` pairs per column, :mod:`drnn_hw.mxv_compressed`), whose ``blocks`` and
    ``block_base`` then count issue slots, not delta-memory words. Raises ValueError for
    fewer than 1 or more than :data:`MAX_LAYERS` layers, I < 1, any H < 1, P < 1 or E < 1,
    or ``blocks`` not one value ≥ 1 per layer.
    """
    hidden = [hidden] if isinstance(hidden, int) else [int(h) for h in hidden]
    if not 1 <= len(hidden) <= MAX_LAYERS:
        raise ValueError(f"a core holds 1 to {MAX_LAYERS} layers, got {len(hidden)}")
    if inputs < 1 or min(hidden) < 1 or rows < 1 or scan < 1:
        raise ValueError(f"sizes must be ≥ 1: inputs = {inputs}, hidden = {hidden}, "
                         f"rows = {rows}, scan = {scan}")
    if blocks is not None and (len(blocks) != len(hidden) or min(blocks) < 1):
        raise ValueError(f"blocks: expected {len(hidden)} values ≥ 1, got {list(blocks)}")
    slots, block, word, xw, hw, hb = [], 0, 0, 0, 0, 0
    i = inputs
    for l, h in enumerate(hidden):
        nb = math.ceil(h / rows) if blocks is None else int(blocks[l])
        s = LayerSlot(inputs=i, hidden=h, blocks=nb, x_windows=math.ceil(i / scan),
                      h_windows=math.ceil(h / scan), block_base=block, weight_base=word,
                      x_window_base=xw, h_window_base=hw, h_base=hb)
        slots.append(s)
        block, word = block + nb, word + (i + h) * nb
        xw, hw, hb = xw + s.x_windows, hw + s.h_windows, hb + h
        i = h
    return slots


def total_blocks(slots) -> int:
    return slots[-1].block_base + slots[-1].blocks


def total_words(slots) -> int:
    s = slots[-1]
    return s.weight_base + (s.inputs + s.hidden) * s.blocks


# --- layer descriptors -----------------------------------------------------------------------
#
# The memory layout of a core (the LayerSlot bases above) is fixed when it is generated: for a
# baked core from the bundle's sizes, for a run-time core (``--weights runtime``) from the
# maxima (every layer slot sized I_max + H_max columns, H_max rows). What a pass runs on is
# the layer's *descriptor*: its actual sizes and the counts derived from them, read by the
# encoder, the queue, the AP and the core as signals. A baked core drives them from constants
# (synthesis folds them away); a run-time core holds them in registers the host writes.

#: One layer's descriptor: I_l, H_l, NB_l = ceil(H_l/P), WX_l = ceil(I_l/E),
#: WH_l = ceil(H_l/E), and ``h_column``: the weight address of the layer's first h column
#: relative to its block base (``column_base + I_l · NB_l``).
LayerDescriptor = data.StructLayout({
    "inputs": 16, "hidden": 16, "blocks": 16, "x_windows": 16, "h_windows": 16,
    "h_column": 32,
})


def descriptor_values(inputs: int, hidden, rows: int, scan: int, layout=None,
                      blocks=None) -> list[dict]:
    """The descriptor field values (ints) of every layer of a model with these sizes, placed
    in ``layout`` (the core's :func:`layer_map`, by default the model's own; ``blocks`` as
    :func:`layer_map`'s, for a compressed core's issue-slot layout). Raises
    ValueError (as :func:`layer_map`) for bad sizes, or when the model does not fit
    ``layout`` (more layers, or a layer's I or H larger than its slot's)."""
    own = layer_map(inputs, hidden, rows, scan, blocks)
    layout = own if layout is None else layout
    if len(own) > len(layout):
        raise ValueError(f"{len(own)} layers do not fit a core of {len(layout)}")
    out = []
    for s, slot in zip(own, layout):
        if s.inputs > slot.inputs or s.hidden > slot.hidden:
            raise ValueError(f"a layer of I = {s.inputs}, H = {s.hidden} does not fit a slot "
                             f"of I = {slot.inputs}, H = {slot.hidden}")
        out.append({"inputs": s.inputs, "hidden": s.hidden, "blocks": s.blocks,
                    "x_windows": s.x_windows, "h_windows": s.h_windows,
                    "h_column": slot.column_base + s.inputs * s.blocks})
    return out


@dataclass(frozen=True)
class Maxima:
    """The sizes a run-time core (``--weights runtime``) is generated for: any model of at
    most ``layers`` layers, I ≤ ``inputs`` (layer 0) and every H_l ≤ ``hidden`` runs on it.
    Its layout is :meth:`layout`: every layer slot holds ``hidden`` units, layer 0's
    ``inputs`` inputs and layer l > 0's ``hidden``.

    ``kept`` (a compressed-weight run-time core only, ``--max-kept``): the (value, block)
    pairs per column every layer slot holds, kept_max; None (the default) takes the initial
    bundle's largest kept (:func:`drnn_hw.spatial.layer_kept`). A loaded layer may keep at
    most this many per slice."""

    inputs: int
    hidden: int
    layers: int = 1
    kept: int | None = None

    def __post_init__(self):
        for name, value, top in (("max_inputs", self.inputs, 4095),
                                 ("max_hidden", self.hidden, 4095),
                                 ("max_layers", self.layers, MAX_LAYERS)):
            if not 1 <= value <= top:
                raise ValueError(f"--{name.replace('_', '-')} = {value}: must be 1 to {top}")
        if self.kept is not None and not 1 <= self.kept <= 4095:
            raise ValueError(f"--max-kept = {self.kept}: must be 1 to 4095")

    def layout(self, rows: int, scan: int) -> list[LayerSlot]:
        return layer_map(self.inputs, [self.hidden] * self.layers, rows, scan)

    def refuse(self, inputs: int, hidden) -> str | None:
        """Why a model of these sizes (I of layer 0, every layer's H) does not fit, naming
        the field and the limit (``None`` when it fits)."""
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        if len(hidden) > self.layers:
            return f"{len(hidden)} layers exceed the core's --max-layers {self.layers}"
        if inputs > self.inputs:
            return (f"layers[0].input_size = {inputs} exceeds the core's --max-inputs "
                    f"{self.inputs}")
        for l, h in enumerate(hidden):
            if h > self.hidden:
                return (f"layers[{l}].hidden_size = {h} exceeds the core's --max-hidden "
                        f"{self.hidden}")
        return None
