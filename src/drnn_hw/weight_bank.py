"""Weight banks: one ``lib.memory.Memory`` per gate channel (r, z, n), K synchronous read ports.

Layout: a word holds the P weights of one P-row block of one column of the stacked matrix
``[W_x | W_h]`` (I + H columns); the word of column ``col``, block ``b`` is at address
``col · NB + b``. Rows ≥ H hold 0. With K = 2 each bank is a true dual-port RAM: the two ports
serve the two delta columns of a group in the same cycle. Channel n holds ``W_in`` in its x
columns and ``W_hn`` in its h columns; the MxV splits the sums into M_nx and M_nh.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .bundle import ModelBundle

__all__ = ["WeightBank", "bank_words", "CHANNELS"]

CHANNELS = ("r", "z", "n")


def bank_words(bundle: ModelBundle, pe: int) -> list[list[int]]:
    """The init words of the three banks: ``[channel][col * NB + b]`` as packed unsigned ints."""
    I, H = bundle.input_size, bundle.hidden_size
    w_bits = bundle.formats.w_bits
    nb = math.ceil(H / pe)
    mask = (1 << w_bits) - 1
    out = []
    for c in range(3):
        cols = np.zeros((I + H, nb * pe), dtype=np.int64)    # [column, row]
        cols[:I, :H] = bundle.w_x[c].T
        cols[I:, :H] = bundle.w_h[c].T
        words = []
        for col in range(I + H):
            for b in range(nb):
                word = 0
                for p, w in enumerate(cols[col, b * pe:(b + 1) * pe]):
                    word |= (int(w) & mask) << (p * w_bits)
                words.append(word)
        out.append(words)
    return out


class WeightBank(wiring.Component):
    """Three weight memories sharing K read addresses.

    Ports
    -----
    addr : In(ArrayLayout(unsigned(addr_bits), K))
        Read address of each port (``col · NB + b``); data arrives the next cycle.
    data_r, data_z, data_n : Out(ArrayLayout(ArrayLayout(signed(w_bits), P), K))
        The P weights read by each port.
    """

    def __init__(self, bundle: ModelBundle, *, pe: int, lanes: int, addr_bits: int):
        self.bundle, self.P, self.K = bundle, pe, lanes
        self.NB = math.ceil(bundle.hidden_size / pe)
        self.depth = (bundle.input_size + bundle.hidden_size) * self.NB
        w = data.ArrayLayout(data.ArrayLayout(signed(bundle.formats.w_bits), pe), lanes)
        super().__init__({
            "addr": In(data.ArrayLayout(unsigned(addr_bits), lanes)),
            "data_r": Out(w),
            "data_z": Out(w),
            "data_n": Out(w),
        })

    def elaborate(self, platform):
        m = Module()
        width = self.P * self.bundle.formats.w_bits
        for name, words in zip(CHANNELS, bank_words(self.bundle, self.P)):
            mem = memory.Memory(shape=unsigned(width), depth=self.depth, init=words)
            m.submodules[f"bank_{name}"] = mem
            out = getattr(self, f"data_{name}")
            for k in range(self.K):
                port = mem.read_port()
                m.d.comb += [port.addr.eq(self.addr[k]), out[k].as_value().eq(port.data)]
        return m
