"""An imported default-initialised nn.LSTM(12, 64) against float64 torch.nn.LSTM at Θ = 0
(README "DeltaLSTM"): measured |h_golden − h_torch| per step and the derived bound
(drnn_train.error_bound.lstm_error_bound). The reference has the bundle's dequantised weights,
as the bound states. Run from the repository: ``python docs/lstm/import_error.py`` (seconds).
Output of the run quoted in the README: docs/lstm/import_error.txt."""
import tempfile
from pathlib import Path

import numpy as np
import torch

from drnn_hw.golden import run
from drnn_hw.numerics import dequantize, quantize
from drnn_train.error_bound import lstm_error_bound
from drnn_train.export import bundle_from_torch_file

torch.manual_seed(0)
lstm = torch.nn.LSTM(12, 64, batch_first=True)
path = Path(tempfile.mkdtemp()) / "lstm.pt"
torch.save(lstm.state_dict(), path)
b, saturated, _ = bundle_from_torch_file(path, cell="lstm")      # = drnn export --torch-lstm
f = b.formats
ref = torch.nn.LSTM(12, 64, batch_first=True, dtype=torch.float64)
with torch.no_grad():
    ref.weight_ih_l0.copy_(torch.tensor(dequantize(b.w_x, f.weight).reshape(256, 12)))
    ref.weight_hh_l0.copy_(torch.tensor(dequantize(b.w_h, f.weight).reshape(256, 64)))
    ref.bias_ih_l0.copy_(torch.tensor(dequantize(b.bias, f.acc).ravel()))
    ref.bias_hh_l0.zero_()
x = quantize(np.random.default_rng(0).normal(0, 1, (8, 29, 12)), f.act)
with torch.no_grad():
    want, _ = ref(torch.tensor(dequantize(x, f.act)))
err = np.abs(dequantize(run(b, x).h, f.act) - want.numpy())
bound = lstm_error_bound(b, x)
print(f"weights {f.weight}, saturated {saturated}; 8 sequences x 29 steps of N(0, 1) inputs")
print("step          " + " ".join(f"{t:>7d}" for t in (1, 2, 3, 10, 29)))
print("max |error|   " + " ".join(f"{err[:, t - 1].max():7.4f}" for t in (1, 2, 3, 10, 29)))
print("derived bound " + " ".join(f"{bound[t - 1].max():7.4f}" for t in (1, 2, 3, 10, 29)))
print(f"largest error over all steps {err.max():.4f}, mean {err.mean():.5f}; "
      f"within the bound everywhere: {bool(np.all(err <= bound[None]))}")
