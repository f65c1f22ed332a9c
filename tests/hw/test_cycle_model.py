"""The closed-form cycle model against a cycle-by-cycle simulation of the schedule it describes."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from drnn_hw.cycle_model import (
    AP_LATENCY, FRAME_IO, LAYER_GAP, PRESETS, SCAN_LATENCY, CoreShape, beat_lags, cycle_bound,
    ColumnFetch, cycles_for_masks, frame_latency, mxv_drain, output_tail, scan_schedule,
    step_cycles, step_schedule,
)


def simulate_schedule(dx, dh, shape):
    """Cycle by cycle: scheduler emits ≤ K per cycle per window, a queue, an in-order MxV."""
    E, K = shape.scan, shape.columns
    nb = math.ceil(len(dh) / shape.rows)
    windows = [list(dx[i:i + E]) for i in range(0, len(dx), E)] + \
              [list(dh[i:i + E]) for i in range(0, len(dh), E)]
    pending = [sum(w) for w in windows]   # deltas left in each window
    w = 0
    queue_visible = 0      # deltas visible to the MxV
    emitted_last_cycle = 0
    scan_done_at = None
    mxv_busy_until = 0     # first free cycle of the MxV
    mxv_last_issue_end = None
    cycle = 0
    while True:
        # deltas emitted in the previous cycle become visible now
        queue_visible += emitted_last_cycle
        emitted_last_cycle = 0
        scan_done = scan_done_at is not None and cycle >= scan_done_at
        # MxV takes a group when free
        if cycle >= mxv_busy_until and (queue_visible >= K or (scan_done and queue_visible > 0)):
            take = min(K, queue_visible)
            queue_visible -= take
            mxv_busy_until = cycle + nb
            mxv_last_issue_end = cycle + nb
        # scheduler
        if w < len(windows):
            n = min(K, pending[w])
            pending[w] -= n
            emitted_last_cycle = n
            if pending[w] == 0:
                w += 1
                if w == len(windows):
                    scan_done_at = cycle + 1
        cycle += 1
        if scan_done_at is not None and cycle >= scan_done_at and queue_visible == 0 \
                and emitted_last_cycle == 0 and cycle >= mxv_busy_until:
            break
    S = scan_done_at
    ap_start = S if mxv_last_issue_end is None else max(S, mxv_last_issue_end + mxv_drain(nb))
    return SCAN_LATENCY + ap_start + nb + AP_LATENCY


masks = st.integers(1, 20).flatmap(
    lambda i: st.integers(1, 40).flatmap(
        lambda h: st.tuples(st.lists(st.booleans(), min_size=i, max_size=i),
                            st.lists(st.booleans(), min_size=h, max_size=h))))
shapes = st.builds(CoreShape, rows=st.integers(1, 20), columns=st.sampled_from([1, 2]),
                   scan=st.integers(1, 17))


@settings(max_examples=300, deadline=None)
@given(masks, shapes)
def test_closed_form_matches_cycle_by_cycle_schedule(m, shape):
    dx, dh = m
    assert step_cycles(dx, dh, shape) == simulate_schedule(dx, dh, shape)


def test_hand_worked_example():
    # I=3, H=4, P=2 (NB=2), K=2, E=2: windows x0={0,1} x1={2} h0 h1.
    shape = CoreShape(rows=2, columns=2, scan=2)
    L, drain = SCAN_LATENCY, mxv_drain(2)
    # MXV_WRITE = 5 cycles from a slot to its write, NB = 2, the AP's first read one cycle
    # after its start and in the write's cycle at the earliest (a transparent read port)
    assert drain == 2
    # no delta: 4 one-cycle windows, then the AP
    assert step_cycles([0, 0, 0], [0, 0, 0, 0], shape) == L + 4 + 2 + AP_LATENCY
    # all three x deltas: x0 emits 2 at cycle 0, x1 emits 1 at cycle 1, S = 4.
    # group 0 released at 1, runs 1..2; group 1 (partial) released at S=4, runs 4..5; D = 6.
    assert step_cycles([1, 1, 1], [0, 0, 0, 0], shape) == L + (6 + drain) + 2 + AP_LATENCY
    # a dense window of h: h0 has 2 deltas (1 cycle), h1 has 2 (1 cycle): S = 4, groups
    # released at 3 and 4 -> D = max(3 + 4, 4 + 2) = 7
    assert step_cycles([0, 0, 0], [1, 1, 1, 1], shape) == L + (7 + drain) + 2 + AP_LATENCY
    # The schedule's times themselves: (S, D, NB).
    assert step_schedule([0, 0, 0], [0, 0, 0, 0], shape) == (4, None, 2)
    assert step_schedule([1, 1, 1], [0, 0, 0, 0], shape) == (4, 6, 2)
    assert step_schedule([0, 0, 0], [1, 1, 1, 1], shape) == (4, 7, 2)


def test_prescan_hand_worked_examples():
    # Issue #10's step overlap: the scan starts `prescan` (o) cycles before the step's cycle 0,
    # fetches h windows from cycle 1 and its groups issue from cycle 0 (schedule cycle −3).
    # Worked by hand on the stage model (F fetches when B is empty or in its window's last
    # cycle; fetched at f, a window enters B at f + 3 when the stages move on), in scan
    # cycles s (the step's cycle = s − o, schedule cycle u = s − o − 3).
    L = SCAN_LATENCY
    # (a) The demo core's shape, I = 12 (one x window), H = 64 (four h windows, NB = 4),
    # o = 10; three Δx (the window takes 2 cycles), one Δh in h0. x0 fetched at s = 0 enters
    # B at 3 (u = −10) and emits at u −10, −10, −9; h0..h3 fetched at s = 11..14 (step cycle
    # ≥ 1) enter B at 14..17 (u = 1..4), S = 5. Group 0 released at −9, held to −3; group 1
    # (x2, h0) at 2: D = max(−3 + 8, 2 + 4) = 6, A0 = max(5, 6 + 0) = 6.
    shape = CoreShape(rows=16, columns=2, scan=16)
    dx, dh = [1, 1, 1] + [0] * 9, [1] + [0] * 63
    emit, release, S = scan_schedule(dx, dh, shape, prescan=10)
    assert (list(emit), list(release), S) == ([-10, -10, -9, 1], [-3, 2], 5)
    assert step_schedule(dx, dh, shape, prescan=10) == (5, 6, 4)
    assert step_cycles(dx, dh, shape, prescan=10) == L + 6 + 4 + AP_LATENCY == 25
    # ... against 28 without the overlap (u: x0 0 and 1, h0..h3 2..5; emits 0, 0, 1, 2;
    # releases 1, 3; D = max(1 + 8, 3 + 4) = 9).
    assert step_cycles(dx, dh, shape) == L + 9 + 4 + AP_LATENCY == 28
    # (b) The hold passes as empty windows: E = 4, K = 1, I = 8, H = 8, P = 4 (NB = 2),
    # o = 3, no Δx, two Δh in h0, one in h1. x0, x1 fetched at s = 0, 1 enter B at 3, 4;
    # h0 may be fetched from s = 4 (step cycle 1): B is empty, so it enters at 7 (u = 1),
    # takes 2 cycles, h1 (fetched at 5) enters at 9 (u = 3): S = 4; emits 1, 2, 3, releases
    # 2, 3, 4: D = max(2 + 6, 3 + 4, 4 + 2) = 8; drain 2, A0 = 10.
    shape = CoreShape(rows=4, columns=1, scan=4)
    dx, dh = [0] * 8, [1, 1, 0, 0, 1, 0, 0, 0]
    emit, release, S = scan_schedule(dx, dh, shape, prescan=3)
    assert (list(emit), list(release), S) == ([1, 2, 3], [2, 3, 4], 4)
    assert step_cycles(dx, dh, shape, prescan=3) == L + 10 + 2 + AP_LATENCY
    # (c) A hold that does not bind is the closed form, earlier by o: E = 4, K = 1, I = 12
    # (three x windows of 3, 0, 2 Δx), H = 4 (one Δh), o = 2. x0 in B at s = 3..5, x1 at 6,
    # x2 at 7..8, h0 (fetched at s = 5 ≥ o + 1) at 9: u = −2, 1, 2, 4, as the closed form's
    # 0, 3, 4, 6 less 2.
    shape = CoreShape(rows=4, columns=1, scan=4)
    dx, dh = [1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0], [0, 1, 0, 0]
    emit, _, S = scan_schedule(dx, dh, shape, prescan=2)
    emit0, _, S0 = scan_schedule(dx, dh, shape)
    assert list(emit) == [-2, -1, 0, 2, 3, 4] and list(emit0) == [0, 1, 2, 4, 5, 6]
    assert (S, S0) == (5, 7)
    # (d) Weights in DRAM: the column fetch starts as the delta is queued, before the hold
    # ends. One Δx (I = 4, E = 4, K = 1, H = 4, P = 4: NB = 1, SB = 1, latency 5), o = 10:
    # emitted at u = −10, the burst's address loaded at −9, its handshake at −8, its beat at
    # −8 + 5 = −3: the group issues at max(release −9 held to −3, beat + 1 = −2) = −2,
    # D = −1. h0, fetched at s = 11, enters B at s = 14 (u = 1): S = 2; A0 = max(2, −1 +
    # mxv_drain(1) = 3) = 2.
    shape = CoreShape(rows=4, columns=1, scan=4, weights="axi", bus_bits=32, burst=16)
    fetch = ColumnFetch(beats_per_block=1, latency=5)
    dx, dh = [1, 0, 0, 0], [0, 0, 0, 0]
    assert step_schedule(dx, dh, shape, fetch, prescan=10) == (2, -1, 1)
    assert step_cycles(dx, dh, shape, "gru", fetch, prescan=10) == L + 2 + 1 + AP_LATENCY
    with pytest.raises(ValueError, match="prescan"):
        step_cycles(dx, dh, CoreShape(), prescan=-1)


@settings(max_examples=200, deadline=None)
@given(masks, shapes, st.integers(0, 40))
def test_prescan_never_ends_later_than_the_step_without_it(m, shape, prescan):
    # Starting the scan earlier moves no window later (h windows are fetched from cycle 1 at
    # the earliest, which a scan started at cycle 0 never beats), so no step may be slower.
    dx, dh = m
    assert step_cycles(dx, dh, shape, prescan=prescan) <= step_cycles(dx, dh, shape)


def test_vectorised_form_and_bound():
    rng = np.random.default_rng(0)
    dx = rng.random((3, 5, 12)) < 0.3
    dh = rng.random((3, 5, 64)) < 0.3
    shape = PRESETS["default"]
    c = cycles_for_masks(dx, dh, shape)
    assert c.shape == (3, 5)
    assert c[1, 2] == step_cycles(dx[1, 2], dh[1, 2], shape)
    nnz = dx.sum(-1) + dh.sum(-1)
    bound = cycle_bound(nnz, 64, shape)
    assert np.all(bound <= c)
    # the design target of the default core: within 10 % + 22 cycles of the bound (16 until
    # the encoder's pick stage and the AP's registered issue were added for the clock, 18
    # until the AP's table reads were registered, 20 until tanh's address and h′ were, #10)
    assert np.all(c <= 1.1 * bound + 22)


def test_default_core_meets_target_at_the_extremes():
    shape = PRESETS["default"]
    for dx, dh in [(np.zeros(12), np.zeros(64)), (np.ones(12), np.ones(64))]:
        c = step_cycles(dx, dh, shape)
        b = int(cycle_bound(int(dx.sum() + dh.sum()), 64, shape))
        assert b <= c <= 1.1 * b + 22
    # a step where nothing changed costs about ceil((I+H)/E) plus a small constant
    assert step_cycles(np.zeros(12), np.zeros(64), shape) <= \
        SCAN_LATENCY + math.ceil(76 / 16) + 1 + 4 + AP_LATENCY


def test_mxv_drain():
    # The AP reads block b (at A0 + 1 + b) no earlier than the last slot's write of it,
    # MXV_WRITE = 5 cycles after that slot (the read port is transparent to the write); the
    # last group's slot of block b is NB - b cycles before D.
    assert [mxv_drain(nb) for nb in (1, 2, 3, 4, 5, 16)] == [3, 2, 1, 0, 0, 0]


@pytest.mark.parametrize("kw, match", [(dict(columns=3), "--columns"), (dict(rows=0), "--rows"),
                                       (dict(scan=0), "--scan"), (dict(scan=256), "--scan"),
                                       (dict(rows=65536), "--rows")])
def test_core_shape_rejects_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        CoreShape(**kw)


def test_shape_limits_are_the_shape_registers_fields():
    from drnn_hw.contract import ShapeLayout
    from drnn_hw.cycle_model import MAX_ROWS, MAX_SCAN
    assert (MAX_ROWS, MAX_SCAN) == (2 ** ShapeLayout["rows"].width - 1,
                                    2 ** ShapeLayout["scan"].width - 1)
    CoreShape(rows=MAX_ROWS, scan=MAX_SCAN)          # the largest are accepted


def test_presets():
    assert PRESETS["default"].multipliers == 96
    assert PRESETS["deltarnn"].multipliers == 768


@settings(max_examples=100, deadline=None)
@given(masks, shapes)
def test_the_lstm_core_is_the_same_schedule_with_its_ap_depth(m, shape):
    """The LSTM core: four channels work in parallel (the MxV time is the GRU's); the AP is as
    deep as the GRU's (its stage of c' = fc + ig where the GRU registers tanh's address: 12
    cycles, the RTL's checked at import)."""
    dx, dh = m
    from drnn_hw.cycle_model import AP_LATENCY_LSTM, ap_latency
    assert (AP_LATENCY, AP_LATENCY_LSTM) == (12, 12) == (ap_latency("gru"), ap_latency("lstm"))
    assert step_cycles(dx, dh, shape, "lstm") == simulate_schedule(dx, dh, shape)
    assert cycles_for_masks([dx], [dh], shape, "lstm")[0] == step_cycles(dx, dh, shape)


def test_multipliers_per_cell():
    shape = PRESETS["default"]
    assert (shape.multipliers_for("gru"), shape.multipliers_for("lstm")) == (96, 128)
    assert shape.multipliers == 96
    with pytest.raises(ValueError, match="cell must be 'gru' or 'lstm'"):
        shape.multipliers_for("rnn")
    from drnn_hw.cycle_model import ap_latency
    with pytest.raises(ValueError, match="cell must be"):
        ap_latency("rnn")


@pytest.mark.parametrize("hidden, rows, scan, lags, tail", [
    # The default core on H = 64: beat w is block w, written 3 - w cycles before the commit;
    # the first beat leaves two edges after its block, the last two after the commit.
    (64, 16, 16, [3, 2, 1, 0], 2),
    # Two beats per block: they leave back to back behind the AP's writes.
    (64, 16, 8, [3, 3, 2, 2, 1, 1, 0, 0], 6),
    # Beat 1 needs the last block: a beat two edges after it, as before the streaming.
    (64, 16, 32, [2, 0], 2),
    # One block (P = H = 12): every beat follows the commit, the first taken from the AP.
    (12, 16, 4, [0, 0, 0], 3),
    (4, 16, 16, [0], 1),
])
def test_output_beats_follow_the_ap_writes(hidden, rows, scan, lags, tail):
    got = beat_lags(hidden, rows, scan)
    assert got.tolist() == lags
    assert output_tail(got) == tail
    assert frame_latency([30, 31], got).tolist() == [30 + FRAME_IO + tail, 31 + FRAME_IO + tail]


def test_every_layers_frame_counts_the_later_passes():
    # Layer 0 (4 units, one block of P = 4) is written a whole pass of layer 1 before the
    # commit; layer 1's two blocks 1 and 0 cycles before it.
    lags = beat_lags([4, 8], 4, 4, "all", [[20, 30], [25, 22]])
    assert lags.tolist() == [[30 + LAYER_GAP, 1, 0], [22 + LAYER_GAP, 1, 0]]
    assert output_tail(lags).tolist() == [2, 2]
    assert beat_lags([4, 8], 4, 4).tolist() == [1, 0]          # "last": layer 1 only
    with pytest.raises(ValueError, match="pass_cycles"):
        beat_lags([4, 8], 4, 4, "all")
    with pytest.raises(ValueError, match="out_layers"):
        beat_lags([4, 8], 4, 4, "every")


def test_the_step_overlap_is_the_default_and_every_record_states_it():
    """Since issue #10's thirty-third round the default core has the step overlap; a shape's
    record always says whether it has it, and a record written before (without the key,
    which was then written only when on) reads as a core without it."""
    assert CoreShape().step_overlap
    for on in (True, False):
        shape = CoreShape(rows=4, columns=1, scan=3, step_overlap=on)
        assert shape.to_dict()["step_overlap"] is on
        assert CoreShape.from_dict(shape.to_dict()) == shape
    assert not CoreShape.from_dict({"rows": 4, "columns": 1, "scan": 3}).step_overlap
    with pytest.raises(ValueError, match="step_overlap"):
        CoreShape(step_overlap=1)
