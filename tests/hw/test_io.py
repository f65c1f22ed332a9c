"""Reading the user's sequences: lengths, NaN padding (the UCR/UEA and aeon convention) and the
one-line errors for everything else."""

import numpy as np
import pytest

from drnn_hw.errors import UserError
from drnn_hw.io import check_sequence_lengths, strip_padding, trailing_nan_lengths

nan = np.nan


def _batch(rows):
    """Sequences written as lists of rows (2 features each), all of the same length."""
    return np.array(rows, dtype=np.float64)


def test_trailing_all_nan_rows_set_the_length():
    x = _batch([
        [[1, 2], [3, 4], [5, 6]],                # full length
        [[1, 2], [nan, nan], [nan, nan]],        # length 1
        [[nan, nan], [1, 2], [nan, nan]],        # NaN row inside, then padding: length 2
        [[1, 2], [3, nan], [nan, nan]],          # partial row is data: length 2
        [[nan, nan], [nan, nan], [nan, nan]],    # nothing: length 0
    ])
    assert trailing_nan_lengths(x).tolist() == [3, 1, 2, 2, 0]


def test_strip_padding_zeroes_past_the_lengths():
    x = _batch([[[1, 2], [3, 4], [5, 6]], [[7, 8], [nan, nan], [nan, nan]]])
    out, lengths = strip_padding(x, where="X.npy")
    assert lengths.tolist() == [3, 1] and lengths.dtype == np.int64
    assert out.tolist() == [[[1, 2], [3, 4], [5, 6]], [[7, 8], [0, 0], [0, 0]]]


def test_given_lengths_ignore_whatever_lies_past_them():
    x = _batch([[[1, 2], [nan, 5], [np.inf, 0]], [[7, 8], [9, 10], [11, 12]]])
    out, lengths = strip_padding(x, np.array([1, 3]), where="X.npy")
    assert lengths.tolist() == [1, 3]
    assert out.tolist() == [[[1, 2], [0, 0], [0, 0]], [[7, 8], [9, 10], [11, 12]]]


@pytest.mark.parametrize("x, lengths, match", [
    (_batch([[[1, 2], [nan, nan], [3, 4]]]), None,
     "X.npy: sequence 0, step 1, feature 0: NaN value before the sequence's end at length 3 "
     "(only trailing all-NaN timesteps are padding; indices from 0)"),
    (_batch([[[1, 2], [3, 4]], [[1, 2], [3, nan]]]), None,
     "X.npy: sequence 1, step 1, feature 1: NaN value"),
    (_batch([[[1, 2], [3, 4]], [[1, np.inf], [nan, nan]]]), None,
     "X.npy: sequence 1, step 0, feature 1: infinite value"),
    (_batch([[[1, 2], [3, 4]], [[nan, nan], [nan, nan]]]), None,
     "X.npy: sequence 1 is NaN at every step"),
    (_batch([[[1, 2], [nan, nan]]]), np.array([2]),
     "X.npy: sequence 0, step 1, feature 0: NaN value before the sequence's end at length 2 "
     "(values past the given lengths are ignored"),
    (_batch([[[1, 2], [3, 4]]]), np.array([3]),
     "X.npy: lengths: expected lengths in [1, 2], got 3 for sequence 0"),
])
def test_strip_padding_errors_name_sequence_and_step(x, lengths, match):
    with pytest.raises(UserError) as e:
        strip_padding(x, lengths, where="X.npy")
    assert match in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("lengths, match", [
    ([1, 2], "L: expected 3 lengths, shape (3,), got shape (2,)"),
    (np.ones((3, 1), np.int64), "L: expected 3 lengths, shape (3,), got shape (3, 1)"),
    (np.array([1.0, 2.0, 3.0]), "L: expected integer lengths, got dtype float64"),
    (np.array([True, True, True]), "L: expected integer lengths, got dtype bool"),
    (np.array([1, 0, 9]), "L: expected lengths in [1, 4], got 0 for sequence 1 (2 out of range)"),
])
def test_check_sequence_lengths(lengths, match):
    with pytest.raises(UserError) as e:
        check_sequence_lengths(lengths, 3, 4, "L")
    assert str(e.value) == match


def test_check_sequence_lengths_accepts_any_integer_dtype():
    got = check_sequence_lengths(np.array([1, 4, 2], np.uint8), 3, 4, "L")
    assert got.tolist() == [1, 4, 2] and got.dtype == np.int64
