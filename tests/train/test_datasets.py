"""Data set loading: the two built-in UEA sets and the user's .npz, with every malformed case."""

import numpy as np
import pytest

from drnn_hw.errors import UserError
from drnn_train.datasets import input_statistics, load_dataset


def test_japanese_vowels_ragged_to_padded():
    ds = load_dataset("japanese-vowels")
    assert ds.x_train.shape == (270, 26, 12) and ds.x_test.shape == (370, 29, 12)
    assert ds.classes == [str(k) for k in range(1, 10)]
    assert set(np.unique(ds.y_train)) == set(range(9))
    for x, L in ((ds.x_train, ds.len_train), (ds.x_test, ds.len_test)):
        assert L.min() == 7 and L.max() == x.shape[1]
        pad = np.arange(x.shape[1])[None, :] >= L[:, None]
        assert np.all(x[pad] == 0)
        # the last valid frame is real data (JapaneseVowels has no all-zero frames)
        assert np.all(np.abs(x[np.arange(len(L)), L - 1]).sum(-1) > 0)


def test_basic_motions():
    ds = load_dataset("basic-motions")
    assert ds.x_train.shape == (40, 100, 6) and ds.x_test.shape == (40, 100, 6)
    assert ds.classes == ["badminton", "running", "standing", "walking"]
    assert np.all(ds.len_train == 100)


def test_unknown_name_lists_valid_names():
    with pytest.raises(UserError, match="japanese-vowels, basic-motions"):
        load_dataset("mnist")


def _good(**over):
    rng = np.random.default_rng(0)
    d = dict(x_train=rng.normal(size=(6, 5, 3)), y_train=np.array([3, 7, 3, 7, 3, 7]),
             x_test=rng.normal(size=(4, 4, 3)), y_test=np.array([7, 3, 3, 7]),
             len_train=np.array([5, 1, 2, 3, 4, 5]))
    d.update(over)
    return {k: v for k, v in d.items() if v is not None}


def test_npz_loads_with_lengths_and_label_mapping(tmp_path):
    p = tmp_path / "mine.npz"
    d = _good()
    np.savez(p, **d)
    ds = load_dataset(str(p))
    assert ds.name == "mine" and ds.classes == ["3", "7"]
    assert ds.y_train.tolist() == [0, 1, 0, 1, 0, 1]
    assert ds.len_test.tolist() == [4, 4, 4, 4]            # default: every step valid
    assert np.all(ds.x_train[1, 1:] == 0)                  # zeroed past the length
    np.testing.assert_array_equal(ds.x_train[0], d["x_train"][0])


BAD = [
    (dict(y_test=None), "missing key 'y_test'"),
    (dict(x_train=np.zeros((6, 5))), "x_train: expected 3 dimensions"),
    (dict(x_test=np.zeros((4, 4, 2))), "x_test: expected I = 3 features (as x_train), got 2"),
    (dict(x_train=np.full((6, 5, 3), np.nan)), "x_train: expected finite values, got 90 NaN/Inf"),
    (dict(x_test=np.full((4, 4, 3), np.inf)), "x_test: expected finite values"),
    (dict(len_train=np.array([5, 0, 2, 3, 4, 5])), "len_train: expected lengths in [1, 5], got [0, 5]"),
    (dict(len_train=np.array([5, 6, 2, 3, 4, 5])), "len_train: expected lengths in [1, 5], got [2, 6]"),
    (dict(len_train=np.array([5, 1])), "len_train: expected shape (6,)"),
    (dict(len_test=np.array([1.5, 2, 3, 4])), "len_test: expected integers"),
    (dict(y_train=np.array([0.5, 1, 0, 1, 0, 1])), "y_train: expected integer class labels"),
    (dict(y_train=np.array(["a", "b", "a", "b", "a", "b"])), "y_train: expected integer class labels"),
    (dict(y_test=np.array([0, 1])), "y_test: expected shape (4,)"),
    (dict(x_train=np.zeros((0, 5, 3)), y_train=np.zeros(0, int), len_train=None),
     "x_train: expected N, T, I >= 1"),
]


@pytest.mark.parametrize("over,msg", BAD, ids=[m.split(":")[0].split("'")[-1] + str(i)
                                               for i, (_, m) in enumerate(BAD)])
def test_malformed_npz_is_a_one_line_user_error(tmp_path, over, msg):
    p = tmp_path / "bad.npz"
    np.savez(p, **_good(**over))
    with pytest.raises(UserError) as e:
        load_dataset(str(p))
    text = str(e.value)
    assert str(p) in text and msg in text and "\n" not in text


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_dataset(str(tmp_path / "nope.npz"))
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        load_dataset(str(junk))


def test_float_labels_with_integer_values_are_accepted(tmp_path):
    p = tmp_path / "f.npz"
    np.savez(p, **_good(y_train=np.array([3.0, 7, 3, 7, 3, 7])))
    assert load_dataset(str(p)).y_train.tolist() == [0, 1, 0, 1, 0, 1]


def test_statistics_exclude_padding():
    x = np.zeros((2, 4, 1))
    x[0, :2, 0] = [1.0, 3.0]
    x[1, :1, 0] = [5.0]
    mean, scale = input_statistics(x, np.array([2, 1]))
    assert mean.tolist() == [3.0]
    np.testing.assert_allclose(scale, [np.std([1.0, 3.0, 5.0])])
    mean, scale = input_statistics(np.ones((2, 3, 1)), np.array([3, 3]))
    assert scale.tolist() == [1.0]                         # constant feature: no division by 0
