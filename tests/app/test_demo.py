"""The demo's model: trained with the default recipe on JapaneseVowels, exported, then run on
real test sequences in Verilator, bit-exact and cycle-exact against the golden model."""

import pytest

from drnn_hw.bundle import ModelBundle
from drnn.demo import rtl_check

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    from drnn_train.export import bundle_from_checkpoint, load_checkpoint
    from drnn_train.train import train_model

    d = tmp_path_factory.mktemp("demo")
    ckpt, metrics = train_model(d / "model.pt", "japanese-vowels", progress=False)
    bundle, saturated = bundle_from_checkpoint(load_checkpoint(ckpt))
    bundle.save(d / "model")
    return d / "model", metrics


def test_trained_model_on_real_sequences_in_verilator(trained_model):
    model_dir, metrics = trained_model
    b = ModelBundle.load(model_dir)
    assert b.theta_x > 0 and b.theta_h > 0          # the demo runs at its trained thresholds
    r = rtl_check(model_dir, limit=40)
    assert r["mismatches"] == {"h": 0, "nnz_dx": 0, "nnz_dh": 0, "cycles": 0}
    assert r["rtl_accuracy"] == r["golden_accuracy"]
    # the gateware's performance target on real data: every step within 10 % + 16 cycles
    assert r["steps_within_target"] == r["steps"]
    # the quality bar of the foundation issue, on the full test set
    assert metrics["float_accuracy"] - metrics["exact_accuracy"] <= 0.015
