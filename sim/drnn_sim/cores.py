"""Small verification cores with awkward sizes, shared by the co-simulation tests (their
Verilator builds are cached, so every test of a session reuses two builds).

``tiny``: I=1, H=5 < P=8, K=1, E=4, large weights (many at the weight format's limits).
``odd``: I=7, H=13, P=4, K=2, E=3 (no size a multiple of P or E), nonzero reset thresholds,
the narrowest accumulator the formats allow (24 bits) and large weights, so extreme inputs
saturate the delta memories.
"""

from __future__ import annotations

from drnn_hw.bundle import random_bundle
from drnn_hw.cycle_model import CoreShape
from drnn_hw.numerics import Formats

__all__ = ["CORES", "core"]

CORES = {
    "tiny": (lambda: random_bundle(1, 5, seed=1, weight_scale=3.0),
             CoreShape(rows=8, columns=1, scan=4)),
    "odd": (lambda: random_bundle(7, 13, formats=Formats(acc_bits=24), seed=2, theta_x=0.05,
                                  theta_h=0.02, weight_scale=2.0),
            CoreShape(rows=4, columns=2, scan=3)),
}


def core(name: str):
    """(bundle, shape) of a named verification core."""
    make, shape = CORES[name]
    return make(), shape
