"""Cell-format measurement for the LSTM numerics (README "DeltaLSTM"; drnn_hw.numerics).

Error of the golden LSTM against float64 torch.nn.LSTM (dequantised weights, Θ=0) for
cell formats with 0, 2, 4 extra fractional bits; imported default nn.LSTM(12, 64), and the same
with forget-gate bias +3 (a remembering cell); 3 seeds, 16 sequences of 100 N(0,1) steps.

Run from the repository: ``python docs/lstm/cell_format.py`` (about a minute; it writes m*.pt
in the current directory). Output of the run quoted in the README: docs/lstm/cell_format.txt.
"""
import numpy as np, torch
import drnn_hw.numerics as N
from drnn_hw.golden import run
from drnn_hw.numerics import dequantize, quantize
from drnn_train.export import bundle_from_torch_file

def ref_lstm(b):
    f = b.formats; H, I = b.hidden_size, b.input_size
    m = torch.nn.LSTM(I, H, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        m.weight_ih_l0.copy_(torch.tensor(dequantize(b.w_x, f.weight).reshape(4*H, I)))
        m.weight_hh_l0.copy_(torch.tensor(dequantize(b.w_h, f.weight).reshape(4*H, H)))
        m.bias_ih_l0.copy_(torch.tensor(dequantize(b.bias, f.acc).reshape(-1)))
        m.bias_hh_l0.zero_()
    return m

res = {}
for fb in (0.0, 3.0):
    for seed in range(3):
        torch.manual_seed(seed)
        m = torch.nn.LSTM(12, 64, batch_first=True)
        with torch.no_grad():
            m.bias_ih_l0[64:128] += fb
        torch.save(m.state_dict(), f"m{seed}.pt")       # imported as drnn export --torch-lstm does
        x = np.random.default_rng(seed).normal(0, 1, (16, 100, 12))
        for extra in (0, 2, 4):
            N.CELL_EXTRA_FRAC = extra
            b, _, _ = bundle_from_torch_file(f"m{seed}.pt", cell="lstm")
            xq = quantize(x, b.formats.act)
            g = run(b, xq)
            with torch.no_grad():
                r, _ = ref_lstm(b)(torch.tensor(dequantize(xq, b.formats.act)))
            e = np.abs(dequantize(g.h, b.formats.act) - r.numpy())
            res.setdefault((fb, extra), []).append((e.mean(), e[:, :29].max(), e.max()))
for (fb, extra), v in sorted(res.items()):
    v = np.array(v)
    print(f"forget bias +{fb:g}, cell Q8.{8+extra}: mean |err| {v[:,0].mean():.5f}, max over 29 steps {v[:,1].mean():.4f} (mean of 3 seeds), max over 100 steps {v[:,2].max():.4f}")
