"""Data set loading: the built-in UEA/UCR sets and the user's .npz, with every malformed case."""

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


def test_gun_point_offline(monkeypatch):
    """UCR GunPoint ships in the aeon wheel: no network (a socket attempt would fail)."""
    import socket

    def no_network(*a, **k):
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    ds = load_dataset("gun-point")
    # UCR archive: 50 train / 150 test, univariate, 150 steps, classes 1 (gun) and 2 (point)
    assert ds.x_train.shape == (50, 150, 1) and ds.x_test.shape == (150, 150, 1)
    assert ds.classes == ["1", "2"] and ds.num_classes == 2
    assert np.all(ds.len_train == 150) and np.all(ds.len_test == 150)
    assert np.bincount(ds.y_train).tolist() == [24, 26]
    assert np.bincount(ds.y_test).tolist() == [76, 74]
    assert np.all(np.isfinite(ds.x_train)) and np.ptp(ds.x_train) > 1


def test_italy_power_demand():
    ds = load_dataset("italy-power-demand")
    assert ds.x_train.shape == (67, 24, 1) and ds.x_test.shape == (1029, 24, 1)
    assert ds.classes == ["1", "2"]


def test_unknown_name_lists_valid_names():
    with pytest.raises(UserError,
                       match="japanese-vowels, basic-motions, gun-point, italy-power-demand"):
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
    # len_train = [5, 1, 2, 3, 4, 5]: 20 valid steps of 3 features are NaN
    (dict(x_train=np.full((6, 5, 3), np.nan)),
     "x_train: expected finite values before each sequence's length, got 60 NaN/Inf, the first "
     "at sequence 0, step 0, feature 0 (nan; len_train[0] = 5)"),
    (dict(x_test=np.full((4, 4, 3), np.inf)),
     "x_test: expected finite values before each sequence's length, got 48 NaN/Inf, the first "
     "at sequence 0, step 0, feature 0 (inf; no len_test and no trailing all-NaN steps: "
     "length 4)"),
    (dict(x_test=np.ones((4, 4, 3)) * np.array([1, 1, np.nan, 1])[:, None, None]),
     "x_test: sequence 2 has no valid step (every step is NaN padding)"),
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


def _nan_padded(x, lengths):
    x = x.copy()
    x[np.arange(x.shape[1])[None, :] >= np.asarray(lengths)[:, None]] = np.nan
    return x


def test_nan_padding_past_the_given_lengths_is_accepted(tmp_path):
    """UCR/aeon convention: NaN past len_*; it is zeroed and never reaches the result."""
    d = _good()
    padded = _nan_padded(d["x_train"], d["len_train"])
    clean = tmp_path / "clean.npz"
    np.savez(clean, **d)
    p = tmp_path / "nanpad.npz"
    np.savez(p, **dict(d, x_train=padded))
    ds, ref = load_dataset(str(p)), load_dataset(str(clean))
    assert np.array_equal(ds.x_train, ref.x_train) and np.all(np.isfinite(ds.x_train))
    assert ds.len_train.tolist() == [5, 1, 2, 3, 4, 5]
    mean, scale = input_statistics(ds.x_train, ds.len_train)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))


def test_nan_inside_a_sequence_names_file_array_sequence_and_step(tmp_path):
    d = _good()
    x = _nan_padded(d["x_train"], d["len_train"])
    x[3, 1, 2] = np.nan                  # sequence 3 has length 3: step 1 is real data
    p = tmp_path / "hole.npz"
    np.savez(p, **dict(d, x_train=x))
    with pytest.raises(UserError) as e:
        load_dataset(str(p))
    text = str(e.value)
    assert "\n" not in text
    assert text == (f"{p}: x_train: expected finite values before each sequence's length, got "
                    "1 NaN/Inf, the first at sequence 3, step 1, feature 2 (nan; "
                    "len_train[3] = 3)")


def test_lengths_inferred_from_trailing_all_nan_steps(tmp_path):
    rng = np.random.default_rng(1)
    lengths = np.array([4, 2, 6, 1])
    x = _nan_padded(rng.normal(size=(4, 6, 3)), lengths)
    p = tmp_path / "ragged.npz"
    np.savez(p, **_good(x_test=x, y_test=np.array([3, 7, 7, 3]), len_train=None))
    ds = load_dataset(str(p))
    assert ds.len_test.tolist() == [4, 2, 6, 1]
    assert ds.len_train.tolist() == [5] * 6                # no NaN: every step valid
    valid = np.arange(6)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(ds.x_test[valid], x[valid])
    assert np.all(ds.x_test[~valid] == 0)
    # A NaN in a step that is not all NaN, before the inferred length, is an error.
    x[0, 1, 0] = np.nan
    x[2, 5, 1] = np.nan                  # last step half NaN: still part of sequence 2
    np.savez(p, **_good(x_test=x, y_test=np.array([3, 7, 7, 3]), len_train=None))
    with pytest.raises(UserError, match=r"x_test: .* got 2 NaN/Inf, the first at sequence 0, "
                                        r"step 1, feature 0 \(nan; length 4 inferred from "
                                        r"trailing all-NaN steps\)"):
        load_dataset(str(p))


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
