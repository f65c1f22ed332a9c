"""Small verification cores with awkward sizes, shared by the co-simulation tests (their
Verilator builds are cached, so every test of a session reuses two builds).

``tiny``: I=1, H=5 < P=8, K=1, E=4, large weights (many at the weight format's limits).
``odd``: I=7, H=13, P=4, K=2, E=3 (no size a multiple of P or E), nonzero reset thresholds,
the narrowest accumulator the formats allow (24 bits) and large weights, so extreme inputs
saturate the delta memories.
``lstm-odd``: ``odd``'s sizes, formats and thresholds as a delta-LSTM (the LSTM core).
``lstm-tiny``: an LSTM with I=1, H=5 < P=8, K=1, E=4 whose cell states integrate ±1 per step
(i = f = 1, g = ±1 from their biases, :func:`saturating_lstm`): after 128 steps c saturates at
the cell format's limits.
``odd`` and ``lstm-odd`` are cores without issue #10's step overlap (``--no-step-overlap``);
``odd-ov``, ``lstm-odd-ov`` the same models on cores with it (``CoreShape.step_overlap``, the
default, which the other cores have).
"""

from __future__ import annotations

import math

import numpy as np

from drnn_hw.balance import BalanceUnit, prune_bundle
from drnn_hw.bundle import Layer, ModelBundle, random_bundle, random_stacked_bundle
from drnn_hw.layer_map import Maxima
from drnn_hw.cycle_model import CoreShape
from drnn_hw.numerics import Formats

__all__ = ["CORES", "core", "saturating_lstm", "RUNTIME_SHAPE", "RUNTIME_MAXIMA",
           "runtime_models", "COMPRESSED_RUNTIME_SHAPE",
           "compressed_runtime_models", "COMPRESSED", "compressed_core", "collision_bundle"]


def saturating_lstm(inputs: int = 1, hidden: int = 5, seed: int = 7) -> ModelBundle:
    """An LSTM whose cells integrate +1 (even units) or −1 (odd units) per step: the biases of
    i and f lie far beyond σ's table (i = f = 1.0), g's beyond tanh's (±1.0), so
    ``c' = c ± 1`` and c reaches the cell format's limits (±128) after 128 steps, where it
    saturates. Small random weights, so the deltas still move the memories."""
    b = random_bundle(inputs, hidden, seed=seed, weight_scale=0.2, cell="lstm")
    big = 12 << b.formats.acc.frac                 # 12.0: beyond σ's ±8 and tanh's ±4
    bias = np.array(b.layers[0].bias, np.int64)
    bias[0], bias[1] = big, big
    bias[2] = np.where(np.arange(hidden) % 2 == 0, big, -big)
    return ModelBundle(formats=b.formats, w_x=b.layers[0].w_x, w_h=b.layers[0].w_h,
                       bias=bias, cell="lstm", name="saturating-lstm")

CORES = {
    "tiny": (lambda: random_bundle(1, 5, seed=1, weight_scale=3.0),
             CoreShape(rows=8, columns=1, scan=4)),
    "odd": (lambda: random_bundle(7, 13, formats=Formats(acc_bits=24), seed=2, theta_x=0.05,
                                  theta_h=0.02, weight_scale=2.0),
            CoreShape(rows=4, columns=2, scan=3, step_overlap=False)),
    "lstm-odd": (lambda: random_bundle(7, 13, formats=Formats(acc_bits=24), seed=2,
                                       theta_x=0.05, theta_h=0.02, weight_scale=2.0,
                                       cell="lstm"),
                 CoreShape(rows=4, columns=2, scan=3, step_overlap=False)),
    "lstm-tiny": (lambda: saturating_lstm(), CoreShape(rows=8, columns=1, scan=4)),
    # The same with issue #10's step overlap (a waiting frame's scan during the AP), the
    # default; the two above are the cores without it.
    "odd-ov": (lambda: CORES["odd"][0](),
               CoreShape(rows=4, columns=2, scan=3, step_overlap=True)),
    "lstm-odd-ov": (lambda: CORES["lstm-odd"][0](),
                    CoreShape(rows=4, columns=2, scan=3, step_overlap=True)),
}


def core(name: str):
    """(bundle, shape) of a named verification core."""
    make, shape = CORES[name]
    return make(), shape


#: The run-time verification cores (``--weights runtime``): one per cell, generated from
#: ``runtime_models(cell)["A"]`` with these maxima and shape (one Verilator build each, shared
#: by every test that loads models into them).
RUNTIME_SHAPE = CoreShape(rows=4, columns=2, scan=4)
RUNTIME_MAXIMA = Maxima(inputs=8, hidden=12, layers=2)


def runtime_models(cell: str) -> dict[str, ModelBundle]:
    """Models for the run-time cores: ``A`` fills the maxima (2 layers of I = 8, H = 12; the
    core is generated from it), ``B`` is one smaller layer (I = 5, H = 7: H not a multiple of
    P = 4 or E = 4), ``C`` two other layers (I = 6, H = 3 < P, then 11)."""
    return {
        "A": random_stacked_bundle(8, [12, 12], seed=1, theta_x=0.05, theta_h=0.05, cell=cell,
                                   weight_scale=1.5, name="A"),
        "B": random_bundle(5, 7, seed=2, theta_x=0.05, theta_h=0.1, cell=cell,
                           weight_scale=1.5, name="B"),
        "C": random_stacked_bundle(6, [3, 11], seed=4, theta_x=[0.1, 0.05],
                                   theta_h=[0.05, 0.1], cell=cell, weight_scale=1.5, name="C"),
    }


#: The compressed run-time verification core (``--weights runtime --weight-format
#: compressed``): the run-time maxima and shape, compressed weights; generated from
#: ``compressed_runtime_models(cell)["A"]`` (kept 2 of 3: the core's kept_max).
COMPRESSED_RUNTIME_SHAPE = CoreShape(rows=4, columns=2, scan=4, weight_format="compressed")


def compressed_runtime_models(cell: str) -> dict[str, ModelBundle]:
    """Pruned models for the compressed run-time core: ``A`` fills the maxima (2 layers of
    I = 8, H = 12, kept 2 of 3 per slice; the core is generated from it), ``B`` one smaller
    layer (I = 5, H = 11, kept 1), ``C`` two other layers (I = 6, H = 3 < P, then 10; kept 1),
    each with other weights."""
    return {
        "A": prune_bundle(random_stacked_bundle(8, [12, 12], seed=1, theta_x=0.05,
                                                theta_h=0.05, cell=cell, weight_scale=1.5,
                                                name="A"), 4, 0.34),
        "B": prune_bundle(random_bundle(5, 11, seed=2, theta_x=0.05, theta_h=0.1, cell=cell,
                                        weight_scale=1.5, name="B"), 4, 0.67),
        "C": prune_bundle(random_stacked_bundle(6, [3, 10], seed=4, theta_x=[0.1, 0.05],
                                                theta_h=[0.05, 0.1], cell=cell,
                                                weight_scale=1.5, name="C"), 4, 0.67),
    }


def collision_bundle(inputs: int, hidden: int, rows: int, cell: str = "gru",
                     seed: int = 0) -> ModelBundle:
    """The worst case of docs/cbtd/core_design.md for a compressed core of P = ``rows``: every
    slice of every column keeps one non-zero weight (kept = 1), all in block 0 (slice p's
    pair names row p in every column), so the K lanes of multiplier p accumulate into row p
    in the same cycle and the next group into the same row in the next cycle. Θ = 0."""
    rng = np.random.default_rng(seed)
    G = 4 if cell == "lstm" else 3
    rows_used = min(rows, hidden)
    w_x = np.zeros((G, hidden, inputs), np.int64)
    w_h = np.zeros((G, hidden, hidden), np.int64)
    for w in (w_x, w_h):
        w[:, :rows_used, :] = rng.integers(20, 120, (G, rows_used, w.shape[2])) * \
            rng.choice([-1, 1], (G, rows_used, w.shape[2]))
    b = random_bundle(inputs, hidden, seed=seed, cell=cell)
    nb = math.ceil(hidden / rows)
    unit = BalanceUnit(rows=rows, kept=nb - math.floor(round(0.99 * nb, 9)), gamma=0.99)
    return ModelBundle(formats=b.formats, layers=[Layer(w_x, w_h, b.layers[0].bias, 0, 0,
                                                        unit)], cell=cell,
                       name=f"collision-{cell}")


def _compressed(P, K, E):
    return CoreShape(rows=P, columns=K, scan=E, weight_format="compressed")


#: The compressed-weight verification cores (``--weight-format compressed``), one Verilator
#: build each: GRU and LSTM, one layer and two, sizes not multiples of P or E, I = 1, H < P,
#: K = 1 and 2, Θ > 0; and the worst-case collision pattern.
COMPRESSED = {
    # I=7, H=13 (NB = 4, kept 2), a 24-bit accumulator and large weights (saturation)
    "gru": (lambda: prune_bundle(random_bundle(7, 13, formats=Formats(acc_bits=24), seed=2,
                                               theta_x=0.05, theta_h=0.02, weight_scale=2.0),
                                 4, 0.5), _compressed(4, 2, 3)),
    # I=1, H = 11 (NB 3, kept 1) then 3 < P (NB 1, kept 1), K = 1
    "gru-l2": (lambda: prune_bundle(random_stacked_bundle(1, [11, 3], seed=5,
                                                          theta_x=[0.05, 0.1],
                                                          theta_h=[0.02, 0.05],
                                                          weight_scale=1.5), 4, 0.75),
               _compressed(4, 1, 4)),
    "lstm": (lambda: prune_bundle(random_bundle(5, 9, seed=3, theta_x=0.05, theta_h=0.02,
                                                weight_scale=1.5, cell="lstm"), 4, 0.5),
             _compressed(4, 2, 3)),
    # H = 10 (NB 3, kept 2), then 7 (NB 2, kept 1)
    "lstm-l2": (lambda: prune_bundle(random_stacked_bundle(6, [10, 7], seed=6,
                                                           theta_x=[0.05, 0.1],
                                                           theta_h=[0.05, 0.0],
                                                           weight_scale=1.5, cell="lstm"),
                                     4, 0.5), _compressed(4, 2, 4)),
    "collision": (lambda: collision_bundle(6, 8, 4), _compressed(4, 2, 3)),
}


def compressed_core(name: str):
    """(bundle, shape) of a named compressed verification core."""
    make, shape = COMPRESSED[name]
    return make(), shape
