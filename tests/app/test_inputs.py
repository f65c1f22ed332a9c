"""drnn.inputs: the file layer of ``simulate`` and ``run`` (layouts, lengths, saturation text)."""

import numpy as np
import pytest

from drnn.inputs import read_inputs, saturation_warning
from drnn_hw.bundle import InputSaturation
from drnn_hw.errors import UserError


def test_read_inputs_tnc_and_back(tmp_path):
    x = np.arange(2 * 3 * 2, dtype=float).reshape(3, 2, 2)      # (T=3, N=2, I=2)
    x[2, 1] = np.nan                                            # sequence 1 has length 2
    np.save(tmp_path / "x.npy", x)
    inp = read_inputs(tmp_path / "x.npy", 2, layout="tnc")
    assert inp.x.shape == (2, 3, 2) and inp.lengths.tolist() == [3, 2]
    assert inp.x[1, :2].tolist() == [[2, 3], [6, 7]] and inp.x[1, 2].tolist() == [0, 0]
    h = np.ones((2, 3, 5))
    back = inp.to_file_layout(h)
    assert back.shape == (3, 2, 5)
    assert np.isnan(back[2, 1]).all() and not np.isnan(back[:2, 1]).any()
    assert not np.isnan(back[:, 0]).any()


def test_single_sequence_is_the_same_in_both_layouts(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 2)))
    for layout in ("ntc", "tnc"):
        inp = read_inputs(tmp_path / "x.npy", 2, layout=layout)
        assert inp.x.shape == (1, 4, 2) and inp.single
        assert inp.to_file_layout(np.zeros((1, 4, 3))).shape == (4, 3)


def test_unknown_layout_is_an_error(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 2)))
    with pytest.raises(UserError, match="--layout: expected one of ntc, tnc, got 'nct'"):
        read_inputs(tmp_path / "x.npy", 2, layout="nct")


def test_saturation_warning_text():
    assert saturation_warning("X.npy", InputSaturation(0, 10, 3.0, 128.0)) is None
    assert saturation_warning("X.npy", InputSaturation(2, 10, 1000.25, 128.0)) == (
        "drnn: warning: X.npy: 2 of 10 input values beyond the activation range ±128 after "
        "normalisation were saturated (largest magnitude 1000.25)")
