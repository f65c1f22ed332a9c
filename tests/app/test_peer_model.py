"""The EdgeDRNN schedule model against cycle counts worked out by hand from its stated rules:
scan I + H + 1, ceil(3H/PE) per kept delta (overlapped with the scan), 5 per group of PE neurons."""

import numpy as np
import pytest

from drnn_hw.cycle_model import CoreShape
from drnn.bench.peer_model import PUBLISHED_PE, peer_pe_for, peer_step_cycles


def test_same_multipliers_mapping():
    assert peer_pe_for(CoreShape(rows=16, columns=2, scan=16)) == 96     # 3 * 16 * 2
    assert peer_pe_for(CoreShape(rows=2, columns=1, scan=4)) == 6
    assert PUBLISHED_PE == 8


def test_scan_floor_dominates_when_sparse():
    # I=3, H=4, PE=12: scan 3+4+1 = 8, 12/12 = 1 cycle per delta, activation 5*ceil(4/12) = 5.
    got = peer_step_cycles([0, 3, 3, 0], [0, 4, 5, 2], 3, 4, 12)
    # nnz 0 -> 8+5; nnz 7 -> max(8, 7)+5; nnz 8 -> max(8, 8)+5; nnz 2 -> 8+5
    assert got.tolist() == [13, 13, 13, 13]


def test_mxv_dominates_when_dense():
    # I=6, H=10, PE=4: scan 17, ceil(30/4) = 8 cycles per delta, activation 5*ceil(10/4) = 15.
    got = peer_step_cycles(np.array([[1, 2], [0, 16]]), np.array([[1, 1], [0, 0]]), 6, 10, 4)
    # nnz 2 -> max(17, 16)+15 = 32; nnz 3 -> 24+15 = 39; nnz 0 -> 17+15 = 32; nnz 16 -> 128+15
    assert got.tolist() == [[32, 39], [32, 143]]


def test_published_pe_on_small_layer():
    # I=3, H=4, PE=8: ceil(12/8) = 2 per delta, activation 5*ceil(4/8) = 5.
    assert peer_step_cycles([3], [4], 3, 4, PUBLISHED_PE).tolist() == [7 * 2 + 5]
    assert peer_step_cycles([0], [0], 3, 4, PUBLISHED_PE).tolist() == [8 + 5]


def test_bad_pe():
    with pytest.raises(ValueError, match="PE count"):
        peer_step_cycles([1], [1], 3, 4, 0)
