"""The LSTM core in Amaranth's simulator against the golden model (issue #12).

Every step is checked: h (every element, to the last bit), nnz_dx, nnz_dh, and the core's cycle
counter against the cycle model with the LSTM's AP depth (computed by the golden model from the
kept-delta masks, independently of the RTL). Sizes as the GRU core's tests: I = 1, H < P, sizes
not multiples of P or E, K = 1 and 2; Θ > 0; random stalls with run-time thresholds and
RESET_STATE between sequences (which must clear c as well as h); state carried without it; a
cell state driven into saturation; a stacked LSTM with h0.
"""

import numpy as np
import pytest

from drnn_hw import golden
from drnn_hw.bundle import random_bundle, random_stacked_bundle
from drnn_hw.cycle_model import CoreShape
from drnn.engines.amaranth import run, simulate
from drnn_sim.cores import saturating_lstm


def _check(bundle, x, shape, lengths=None, **options):
    got = run(bundle, x, lengths=lengths, shape=shape, **options)
    want = golden.run(bundle, x, lengths=lengths, shape=shape, h0=options.get("h0"))
    for key in ("nnz_dx", "nnz_dh", "prescan", "cycles"):
        np.testing.assert_array_equal(getattr(got, key), getattr(want, key), err_msg=key)
    np.testing.assert_array_equal(got.h, want.h, err_msg="h")
    return got, want


# (I, H, P, K, E): I=1 and H < P, sizes not multiples of P or E, K=1 and K=2, E=1.
SHAPES = [
    (1, 3, 4, 1, 1),
    (5, 7, 4, 2, 3),
    (7, 9, 2, 1, 3),
    (13, 10, 3, 2, 5),
]


@pytest.mark.parametrize("I,H,P,K,E", SHAPES)
@pytest.mark.parametrize("theta", [0.0, 0.25])
@pytest.mark.parametrize("overlap", [False, True], ids=["", "overlap"])
def test_random_lstm_matches_golden(I, H, P, K, E, theta, overlap):
    bundle = random_bundle(I, H, seed=I * 100 + H, theta_x=theta, theta_h=theta / 2,
                           weight_scale=1.5, cell="lstm")
    rng = np.random.default_rng(H)
    x = np.cumsum(rng.integers(-90, 91, (2, 7, I)), axis=1)
    x = np.clip(x, bundle.formats.act.min, bundle.formats.act.max)
    _, want = _check(bundle, x, CoreShape(P, K, E, step_overlap=overlap), lengths=[7, 4])
    assert want.prescan[0, 1:].all() == overlap
    if theta == 0:
        assert want.nnz_dx.sum() > 0 and want.nnz_dh.sum() > 0
    else:   # the threshold really drops deltas
        assert want.nnz_dx[0, 1:].min() < I or want.nnz_dh[0, 2:].min() < H


def test_cell_state_saturates_bit_exact():
    """c runs into both limits of the cell format: the golden run really saturates (c at the
    format's max / min for the last steps, where an unsaturated c would have gone on), and the
    core follows it to the last bit and cycle."""
    bundle = saturating_lstm(2, 6)
    T = 140
    rng = np.random.default_rng(1)
    x = np.zeros((1, T, 2), np.int64)
    x[0, :10] = rng.integers(-200, 200, (10, 2))      # a few deltas, then a constant input
    shape = CoreShape(4, 2, 3)
    _, want = _check(bundle, x, shape)
    c = want.state[0].c[0]
    cell = bundle.formats.cell
    assert (c[0::2] == cell.max).all() and (c[1::2] == cell.min).all()
    # The same run without the limit would be past them: c moves by ±1.0 per step (2^C codes).
    assert T * (1 << cell.frac) > cell.max + (1 << cell.frac)


def test_stalls_thresholds_and_reset_between_sequences():
    """Random valid/ready stalls on both streams; each sequence starts with RESET_STATE and
    new thresholds written over the bus. RESET_STATE clears c too: every sequence equals a
    fresh golden run (a c left over would change h)."""
    I, H = 6, 5
    bundle = random_bundle(I, H, seed=11, weight_scale=1.2, cell="lstm")
    rng = np.random.default_rng(5)
    seqs = [np.clip(np.cumsum(rng.integers(-120, 121, (T, I)), axis=0), -32768, 32767)
            for T in (5, 3, 6)]
    thetas = [(0, 0), (40, 10), (150, 60)]
    shape = CoreShape(2, 2, 4)
    results = simulate(bundle, seqs, shape, stall_seed=1, x_valid_prob=0.6, h_ready_prob=0.5,
                       thetas=thetas)
    for seq, th, r in zip(seqs, thetas, results):
        want = golden.run(bundle.with_thresholds(*th), seq[None], shape=shape,
                          prescan=r["prescan"][None])
        np.testing.assert_array_equal(r["h"], want.h[0])
        np.testing.assert_array_equal(r["nnz_dx"], want.nnz_dx[0])
        np.testing.assert_array_equal(r["nnz_dh"], want.nnz_dh[0])
        np.testing.assert_array_equal(r["cycles"], want.cycles[0])
        assert r["frames_ok"]


def test_without_reset_state_c_carries_over():
    """Without RESET_STATE the second sequence continues from the first one's h and c (and a
    run that resets differs: the test can fail)."""
    bundle = random_bundle(3, 4, seed=2, cell="lstm")
    rng = np.random.default_rng(9)
    a, b = rng.integers(-400, 400, (4, 3)), rng.integers(-400, 400, (3, 3))
    shape = CoreShape(4, 1, 2, step_overlap=True)      # (issue #10's step overlap)
    r = simulate(bundle, [a, b], shape, reset_between=False)
    # (The second sequence's first frame is sent after the first's last output: idle.)
    want = golden.run(bundle, np.concatenate([a, b])[None], shape=shape,
                      prescan=np.concatenate([r[0]["prescan"], r[1]["prescan"]])[None])
    assert r[1]["prescan"][0] == 0 and (r[1]["prescan"][1:] > 0).all()
    np.testing.assert_array_equal(np.concatenate([r[0]["h"], r[1]["h"]]), want.h[0])
    np.testing.assert_array_equal(np.concatenate([r[0]["cycles"], r[1]["cycles"]]),
                                  want.cycles[0])
    fresh = golden.run(bundle, b[None], shape=shape)
    assert not np.array_equal(fresh.h[0], want.h[0, 4:])


def test_stacked_lstm_with_h0_and_stalls():
    """Two LSTM layers of different widths (the second narrower than P) on one core, with a
    non-zero h0 (c0 = 0) and stalls: bit- and cycle-exact."""
    bundle = random_stacked_bundle(4, [7, 3], seed=3, theta_x=[0.05, 0.1],
                                   theta_h=[0.02, 0.0], weight_scale=1.5, cell="lstm")
    rng = np.random.default_rng(4)
    x = np.clip(np.cumsum(rng.integers(-100, 101, (2, 6, 4)), axis=1), -32768, 32767)
    a = bundle.formats.act
    h0 = [rng.integers(a.min // 4, a.max // 4, (2, ly.hidden_size)) for ly in bundle.layers]
    _, want = _check(bundle, x, CoreShape(4, 2, 3), lengths=[6, 5], h0=h0, stall_seed=2,
                     x_valid_prob=0.7, h_ready_prob=0.6)
    assert not np.array_equal(want.h, golden.run(bundle, x, [6, 5], CoreShape(4, 2, 3)).h)


def test_shape_register_says_lstm():
    """SHAPE carries the cell: 1 (LSTM) in bits [23:20], beside P, K and E."""
    from amaranth.sim import Simulator

    from drnn_hw.core import DeltaGRUCore

    dut = DeltaGRUCore(random_bundle(3, 5, seed=1, cell="lstm"), CoreShape(2, 2, 4))
    seen = {}

    async def bench(ctx):
        ctx.set(dut.csr.addr, 2)
        ctx.set(dut.csr.r_stb, 1)
        await ctx.tick()
        seen["shape"] = ctx.get(dut.csr.r_data)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen["shape"] == 2 | (2 << 16) | (1 << 20) | (4 << 24)
