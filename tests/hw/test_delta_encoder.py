"""DeltaEncoder (IEU): which deltas are emitted, in which cycle, in which column of the delta
stream, with which weight address; scan length (the cycle model's, after SCAN_LATENCY); reference
updates between steps; x beats popped in order, one per x window; the parameters it refuses."""

import math

import numpy as np
import pytest
from amaranth.sim import Simulator

from drnn_hw.cycle_model import SCAN_LATENCY, CoreShape, scan_schedule
from drnn_hw.delta_encoder import DeltaEncoder, DeltaStreamSignature, delta_entry_layout
from drnn_hw.numerics import Formats

FMTS = Formats()


def expected_schedule(x, h, x_ref, h_ref, theta_x, theta_h, E, K, NB):
    """Reference model of one scan: [(cycle, column, delta, addr, is_x)], S, new refs; cycles
    count from the step's start, so the first schedule cycle is SCAN_LATENCY."""
    I, H = len(x), len(h)
    events, cycle = [], SCAN_LATENCY
    x_ref, h_ref = x_ref.copy(), h_ref.copy()
    for is_x, cur, ref, theta, base_col in ((1, x, x_ref, theta_x, 0), (0, h, h_ref, theta_h, I)):
        n = len(cur)
        for w in range(math.ceil(n / E)):
            idx = [i for i in range(w * E, min(n, (w + 1) * E))]
            kept = [i for i in idx if cur[i] != ref[i] and abs(cur[i] - ref[i]) >= theta]
            for j, i in enumerate(kept):
                events.append((cycle + j // K, j % K, int(cur[i] - ref[i]),
                               (base_col + i) * NB, is_x))
            for i in kept:
                ref[i] = cur[i]
            cycle += max(1, math.ceil(len(kept) / K))
    return events, cycle, x_ref, h_ref


def held_schedule(x, h, x_ref, h_ref, theta_x, theta_h, E, K, NB, release):
    """:func:`expected_schedule` of a pass whose h windows may be fetched from cycle
    ``release`` on (``h_hold`` low from ``release - 1``), from a model of the stages written
    here: F fetches the next window in a cycle in which B is empty or in its window's last
    cycle (x windows any time, h windows from ``release``); fetched in cycle c, a window is in
    the F register in c + 1, in T in c + 2, and enters B (its first schedule cycle) in c + 3
    when it moves on then; it stays in B for max(1, ceil(kept/K)) cycles."""
    I, H = len(x), len(h)
    x_ref, h_ref = x_ref.copy(), h_ref.copy()
    wins = []                           # (is_x, kept indices, base column)
    for is_x, cur, ref, theta, base_col in ((1, x, x_ref, theta_x, 0), (0, h, h_ref, theta_h, I)):
        for w in range(math.ceil(len(cur) / E)):
            idx = range(w * E, min(len(cur), (w + 1) * E))
            kept = [i for i in idx if cur[i] != ref[i] and abs(cur[i] - ref[i]) >= theta]
            wins.append((is_x, [(i, int(cur[i] - ref[i])) for i in kept], base_col))
            for i in kept:
                ref[i] = cur[i]
    wx = math.ceil(I / E)
    entry, f, t, b, left, nxt, c = [], None, None, None, 0, 0, 0
    while len(entry) < len(wins) or left > 1:
        advance = b is None or left == 1
        if advance:
            b, left = t, (max(1, math.ceil(len(wins[t][1]) / K)) if t is not None else 0)
            if t is not None:
                entry.append(c + 1)
            t = f
            f = None
            if nxt < len(wins) and (nxt < wx or c >= release):
                f, nxt = nxt, nxt + 1
        else:
            left -= 1
        c += 1
    events = []
    for (is_x, kept, base_col), s in zip(wins, entry):
        events += [(s + j // K, j % K, d, (base_col + i) * NB, is_x)
                   for j, (i, d) in enumerate(kept)]
    S = entry[-1] + max(1, math.ceil(len(wins[-1][1]) / K))
    return events, S, x_ref, h_ref


def run_steps(I, H, P, K, E, steps, theta_x, theta_h, resets=(), holds=None, rng=None):
    """Scan ``steps`` back to back (each starts in the cycle after the previous one's clear,
    ``start_next`` asserted with the clear); before step i in ``resets``, ``clear_refs`` and
    then the earliest start it allows (the second cycle after it), the step's h set in its
    start cycle. ``holds`` {step: T}: ``h_hold`` high from the cycle before that step's start
    to cycle T − 1 of it, its h random codes (``rng``) until then and the step's own from
    cycle T."""
    holds = holds or {}
    dut = DeltaEncoder(FMTS, I, H, rows=P, columns=K, scan=E, hold=bool(holds))
    WX = math.ceil(I / E)
    log = []

    async def tb(ctx):
        ctx.set(dut.theta_x, theta_x)
        ctx.set(dut.theta_h, theta_h)
        await ctx.tick()      # the encoder copies the thresholds in a cycle without a scan
        announced = False     # start_next was asserted in the previous cycle
        for n, (x, h) in enumerate(steps):
            if n in resets:
                ctx.set(dut.clear_refs, 1)
                await ctx.tick()
                ctx.set(dut.clear_refs, 0)
                # (This is the cycle the references are cleared in: the start follows it.)
            T = holds.get(n)

            def set_h(values):
                for j in range(H):
                    ctx.set(dut.h[j], int(values[j]))
            if T is not None:
                # (The cycle before the start: a step announced with the clear is held from
                # its start on, which is all the hold acts on.)
                ctx.set(dut.h_hold, 1)
                set_h(rng.integers(-300, 300, H))
            if not announced:
                ctx.set(dut.start_next, 1)
                await ctx.tick()
                ctx.set(dut.start_next, 0)
            if T is None:
                set_h(h)
            elif T == 0:
                ctx.set(dut.h_hold, 0)
                set_h(h)
            beat = 0

            def load(b):
                for e in range(E):
                    i = b * E + e
                    ctx.set(dut.x_data[e], int(x[i]) if i < I else 12345 % 32768)
            load(0)
            events, cycle, pops = [], 0, []
            while True:
                sampled = await ctx.tick().sample(dut.deltas.valid, dut.deltas.entry, dut.x_pop,
                                                  dut.x_pop_last, dut.deltas.done)
                _, _, valid, emit, pop, pop_last, done = sampled
                if done:
                    break
                for k in range(K):
                    if valid & (1 << k):
                        events.append((cycle, k, emit[k].delta, emit[k].addr, emit[k].is_x))
                if pop:
                    pops.append((beat, pop_last))
                    beat += 1
                    if beat < WX:
                        load(beat)
                cycle += 1
                if T is not None and cycle < T:
                    set_h(rng.integers(-300, 300, H))      # h changes while held
                elif T is not None and cycle == T:
                    ctx.set(dut.h_hold, 0)
                    set_h(h)
            nnz = (ctx.get(dut.nnz_dx), ctx.get(dut.nnz_dh))
            ctx.set(dut.clear, 1)
            announced = n + 1 < len(steps) and n + 1 not in resets
            ctx.set(dut.start_next, announced)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            ctx.set(dut.start_next, 0)
            log.append((events, cycle, pops, nnz))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return log


@pytest.mark.parametrize("I,H,P,K,E", [(5, 7, 4, 2, 3), (1, 4, 2, 1, 1), (9, 6, 4, 2, 4),
                                       (3, 10, 3, 1, 16)])
@pytest.mark.parametrize("theta", [0, 60])
def test_emission_order_timing_and_refs(I, H, P, K, E, theta):
    rng = np.random.default_rng(I * 7 + H)
    NB = math.ceil(H / P)
    steps = []
    for _ in range(3):
        x = rng.integers(-200, 200, I)
        x[rng.random(I) < 0.3] = 0
        h = rng.integers(-200, 200, H)
        h[rng.random(H) < 0.3] = 0
        steps.append((x, h))
    steps.append((np.full(I, 32767), np.full(H, -32768)))   # extreme deltas need 17 bits
    steps.append(steps[-1])                                  # nothing changes: all windows empty
    log = run_steps(I, H, P, K, E, steps, theta, theta // 2)
    x_ref, h_ref = np.zeros(I, np.int64), np.zeros(H, np.int64)
    WX = math.ceil(I / E)
    for (x, h), (events, S, pops, nnz) in zip(steps, log):
        want, want_S, x_ref, h_ref = expected_schedule(x, h, x_ref, h_ref, theta, theta // 2,
                                                       E, K, NB)
        assert events == want
        assert S == want_S
        assert pops == [(b, int(b == WX - 1)) for b in range(WX)]
        assert nnz == (sum(e[4] for e in want), sum(1 - e[4] for e in want))
    assert log[-1][0] == [] and log[-1][1] == SCAN_LATENCY + WX + math.ceil(H / E)


@pytest.mark.parametrize("I,H,P,K,E", [(5, 7, 4, 2, 3), (1, 4, 2, 1, 1), (30, 6, 4, 2, 4),
                                       (3, 10, 3, 1, 16)])
def test_held_pass_waits_and_reads_h_after_the_hold(I, H, P, K, E):
    # h_hold (issue #10's step overlap): the x windows scan while h is still being written,
    # the h windows wait for the hold to drop and see h as it is from then (a step whose h
    # changed while held gets the deltas of its final h), and the schedule is the stage
    # model's above: for short holds the x windows are still in flight, for long ones the
    # pipeline runs dry. The references and nnz are those of an unheld scan.
    rng = np.random.default_rng(I * 11 + H)
    NB = math.ceil(H / P)
    steps, holds = [], {}
    for n, T in enumerate([0, 1, 3, None, 9, 25, 2]):
        x = rng.integers(-200, 200, I)
        x[rng.random(I) < 0.4] = 0
        h = rng.integers(-200, 200, H)
        h[rng.random(H) < 0.3] = 0
        steps.append((x, h))
        if T is not None:
            holds[n] = T
    log = run_steps(I, H, P, K, E, steps, 40, 20, holds=holds, rng=rng)
    x_ref, h_ref = np.zeros(I, np.int64), np.zeros(H, np.int64)
    for n, ((x, h), (events, S, _, nnz)) in enumerate(zip(steps, log)):
        release = holds[n] + 1 if n in holds else 0
        before = (x_ref, h_ref)
        want, want_S, x_ref, h_ref = held_schedule(x, h, *before, 40, 20, E, K, NB, release)
        if n not in holds:      # unheld, the stage model is the scan's closed form
            assert (want, want_S) == expected_schedule(x, h, *before, 40, 20, E, K, NB)[:2]
        assert (events, S) == (want, want_S), n
        assert nnz == (sum(e[4] for e in want), sum(1 - e[4] for e in want))
        # The cycle model's scan (drnn_hw.cycle_model.scan_schedule) is this RTL's: a hold
        # to cycle T is a scan started T cycles before the step's cycle 0.
        cols = [e[3] // NB for e in events]
        dx_mask, dh_mask = np.zeros(I, bool), np.zeros(H, bool)
        dx_mask[[c for c in cols if c < I]] = True
        dh_mask[[c - I for c in cols if c >= I]] = True
        o = holds.get(n, 0)
        emit, _, S_model = scan_schedule(dx_mask, dh_mask, CoreShape(rows=P, columns=K, scan=E),
                                         prescan=o)
        assert [e[0] for e in events] == list(emit + SCAN_LATENCY + o), n
        assert S == S_model + SCAN_LATENCY + o, n
    # The long hold did wait: its h windows entered B only after the release.
    WH = math.ceil(H / E)
    assert log[5][1] >= holds[5] + 1 + SCAN_LATENCY + WH


@pytest.mark.parametrize("I,H,E", [(5, 7, 3), (3, 10, 16), (20, 5, 4)])
def test_clear_refs_then_earliest_start(I, H, E):
    # RESET_STATE between steps: the next scan, started as early as allowed, sees x̂ = ĥ = 0
    # (each element's reference is read a cycle before its fetch, so the clear must reach
    # that copy too), whatever the references were.
    rng = np.random.default_rng(I + 31 * H)
    steps = [(rng.integers(-300, 300, I), rng.integers(-300, 300, H)) for _ in range(4)]
    log = run_steps(I, H, 3, 2, E, steps, 20, 10, resets={1, 3})
    x_ref, h_ref = np.zeros(I, np.int64), np.zeros(H, np.int64)
    for n, ((x, h), (events, S, _, _)) in enumerate(zip(steps, log)):
        if n in (1, 3):
            x_ref, h_ref = np.zeros(I, np.int64), np.zeros(H, np.int64)
        want, want_S, x_ref, h_ref = expected_schedule(x, h, x_ref, h_ref, 20, 10, E, 2,
                                                       math.ceil(H / 3))
        assert (events, S) == (want, want_S), n


@pytest.mark.parametrize("kwargs,name", [
    (dict(inputs=0), "inputs"), (dict(hidden=0), "hidden"), (dict(rows=0), "rows"),
    (dict(scan=0), "scan"), (dict(columns=0), "columns"), (dict(columns=3), "columns"),
])
def test_refuses_what_it_cannot_build(kwargs, name):
    args = {**dict(inputs=3, hidden=4, rows=2, columns=2, scan=2), **kwargs}
    with pytest.raises(ValueError, match=name):
        DeltaEncoder(FMTS, args.pop("inputs"), args.pop("hidden"), **args)
    with pytest.raises(ValueError, match="columns"):
        DeltaStreamSignature(delta_entry_layout(FMTS, 4), 0)


@pytest.mark.parametrize("width", [1, 5, 6])
def test_pick_helpers_on_every_vector(width):
    # lowest_set's k-th vector is the k-th lowest set bit; more_than(bits, k) says whether it
    # exists (the encoder's registered ``pick_any`` stands for ``pick.any()`` by this).
    from amaranth.hdl import Module, Signal

    from drnn_hw.delta_encoder import lowest_set, more_than

    bits = Signal(width)
    picks, more = lowest_set(bits, 2), [more_than(bits, k) for k in range(3)]
    sim = Simulator(Module())

    async def bench(ctx):
        for v in range(1 << width):
            ctx.set(bits, v)
            ones = [e for e in range(width) if v >> e & 1]
            for k in range(2):
                assert ctx.get(picks[k]) == (1 << ones[k] if k < len(ones) else 0), (v, k)
            assert [ctx.get(x) for x in more] == [len(ones) > k for k in range(3)], v

    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("width", [3, 9, 12])
def test_count_tests_on_every_vector(width):
    # more_than / at_most for every k the encoder uses (the window's one-cycle and two-cycle
    # tests, k up to 2K = 4, and beyond), on every vector: against the number of set bits.
    from amaranth.hdl import Module, Signal

    from drnn_hw.delta_encoder import at_most, more_than

    bits = Signal(width)
    ks = range(1, 7)
    more, most = [more_than(bits, k) for k in ks], [at_most(bits, k) for k in ks]
    sim = Simulator(Module())

    async def bench(ctx):
        for v in range(1 << width):
            ctx.set(bits, v)
            n = bin(v).count("1")
            assert [ctx.get(x) for x in more] == [n > k for k in ks], v
            assert [ctx.get(x) for x in most] == [n <= k for k in ks], v

    sim.add_testbench(bench)
    sim.run()
