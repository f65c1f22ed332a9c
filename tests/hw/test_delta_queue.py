"""DeltaQueue: groups of K in emission order, issue times m_g = max(r_g, m_{g-1} + NB),
partial last group at scan end, column valid bits, the registered weight words (every
copy), ``pending``, steps after a ``clear``, with and without ``registered_writes``;
the parameters it refuses."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from drnn_hw.delta_encoder import delta_entry_layout
from drnn_hw.delta_queue import DeltaQueue, IssueSignature
from drnn_hw.numerics import Formats


#: Copies of the weight words the queue keeps (one per weight memory of a GRU bank).
COPIES = 3


#: Both write designs (``registered_writes``: a stacked core's).
REGISTERED = pytest.mark.parametrize("registered", [False, True],
                                     ids=["direct", "registered_writes"])


def run_queue(K, NB, emissions, scan_end, registered=False):
    """emissions: per cycle, a list of up to K (delta, addr) pairs. Scan done from ``scan_end``."""
    layout = delta_entry_layout(Formats(), 10)
    dut = DeltaQueue(layout, columns=K, blocks=NB, capacity=64, copies=COPIES,
                     registered_writes=registered)
    slots = []

    async def tb(ctx):
        cycle = 0
        while True:
            em = emissions[cycle] if cycle < len(emissions) else []
            ctx.set(dut.deltas.valid, (1 << len(em)) - 1)
            for k, (d, a) in enumerate(em):
                ctx.set(dut.deltas.entry[k].delta, d)
                ctx.set(dut.deltas.entry[k].addr, a)
            ctx.set(dut.deltas.done, cycle >= scan_end)
            _, _, valid, block, entry, columns, pending, word = await ctx.tick().sample(
                dut.issue.valid, dut.issue.block, dut.issue.entry, dut.issue.column_valid,
                dut.pending, dut.issue.word)
            if valid:
                # The registered weight words are the slot's (entry's column + block).
                for k in range(K):
                    if columns & (1 << k):
                        for c in range(COPIES):
                            assert word[c][k] == entry[k].addr + block, (cycle, c, k)
                slots.append((cycle, block, [(entry[k].delta, entry[k].addr) for k in range(K)
                                             if columns & (1 << k)]))
            if not pending and cycle >= scan_end:
                return_cycle = cycle
                break
            cycle += 1
        slots.append(("idle", return_cycle))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return slots


def expected(K, NB, emissions, scan_end):
    flat = [(c, d) for c, em in enumerate(emissions) for d in em]
    groups = [flat[i:i + K] for i in range(0, len(flat), K)]
    out, free = [], 0
    for g, grp in enumerate(groups):
        release = grp[-1][0] + 1 if len(grp) == K else scan_end
        start = max(release, free)
        for b in range(NB):
            out.append((start + b, b, [d for _, d in grp]))
        free = start + NB
    out.append(("idle", max(scan_end, free)))
    return out


@REGISTERED
@pytest.mark.parametrize("K,NB", [(1, 1), (1, 3), (2, 1), (2, 2), (2, 4)])
@pytest.mark.parametrize("seed", range(3))
def test_issue_schedule(K, NB, seed, registered):
    rng = np.random.default_rng(seed * 10 + K * 3 + NB)
    emissions, n = [], 0
    for c in range(12):
        cnt = int(rng.integers(0, K + 1))
        emissions.append([(int(rng.integers(-65536, 65536)), n + i) for i in range(cnt)])
        n += cnt
    scan_end = len(emissions)
    assert run_queue(K, NB, emissions, scan_end, registered) == \
        expected(K, NB, emissions, scan_end)


@REGISTERED
def test_odd_count_partial_group_waits_for_scan_end(registered):
    emissions = [[(5, 1), (6, 2)], [(7, 3)], [], []]
    got = run_queue(2, 2, emissions, 4, registered)
    assert got == [(1, 0, [(5, 1), (6, 2)]), (2, 1, [(5, 1), (6, 2)]),
                   (4, 0, [(7, 3)]), (5, 1, [(7, 3)]), ("idle", 6)]


@pytest.mark.parametrize("kwargs,name", [
    (dict(columns=0), "columns"), (dict(columns=3), "columns"), (dict(blocks=0), "blocks"),
    (dict(capacity=0), "capacity"), (dict(copies=0), "copies"),
])
def test_refuses_what_it_cannot_build(kwargs, name):
    layout = delta_entry_layout(Formats(), 10)
    with pytest.raises(ValueError, match=name):
        DeltaQueue(layout, **{**dict(columns=2, blocks=2, capacity=8), **kwargs})
    with pytest.raises(ValueError, match="blocks"):
        IssueSignature(layout, 2, 0)
    with pytest.raises(ValueError, match="copies"):
        IssueSignature(layout, 2, 2, copies=0)


@REGISTERED
@pytest.mark.parametrize("lookahead,hold", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("K", [1, 2])
def test_lookahead_and_hold(K, registered, lookahead, hold):
    """With ``lookahead``: ``written`` counts the entries from the cycle after their write,
    ``ahead_entry`` is entry ``ahead_index`` of the step, and ``hold`` keeps a group from
    starting; with ``hold``, ``hold_next`` does the same a cycle ahead (the step overlap's).
    Neither stops a group mid-way: its NB slots go on back to back. With both, each of the
    two holds is the later one for one K."""
    NB = 3
    layout = delta_entry_layout(Formats(), 10)
    dut = DeltaQueue(layout, columns=K, blocks=NB, capacity=16, lookahead=lookahead,
                     registered_writes=registered, hold=hold)
    # The cycle up to which each hold holds (the last one decides).
    until = {"hold": 20 if not hold or K == 1 else 10,
             "hold_next": 20 if not lookahead or K == 2 else 10}
    entries = [(10 * n + 1, n + 100) for n in range(5)]
    log = []

    async def tb(ctx):
        for cycle in range(40):
            em = entries[K * cycle:K * cycle + K]
            ctx.set(dut.deltas.valid, (1 << len(em)) - 1)
            for k, (d, a) in enumerate(em):
                ctx.set(dut.deltas.entry[k].delta, d)
                ctx.set(dut.deltas.entry[k].addr, a)
            ctx.set(dut.deltas.done, K * cycle >= 5)
            # Held until cycle 20, except for a group already started.
            if lookahead:
                ctx.set(dut.hold, cycle < until["hold"])
            if hold:
                ctx.set(dut.hold_next, cycle + 1 < until["hold_next"])
            n = cycle % 7
            if lookahead:
                ctx.set(dut.ahead_index, n)
                written = ctx.get(dut.written)
                assert written == min(K * cycle, 5)
                if n < written:
                    e = ctx.get(dut.ahead_entry)
                    assert (e.delta, e.addr) == entries[n]
            if ctx.get(dut.issue.valid):
                log.append((cycle, ctx.get(dut.issue.block)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    groups = -(-5 // K)
    assert log == [(20 + NB * g + b, b) for g in range(groups) for b in range(NB)]


@REGISTERED
@pytest.mark.parametrize("K,NB", [(1, 2), (2, 1), (2, 3)])
def test_steps_after_clear(K, NB, registered):
    """Step after step with a ``clear`` between them: every slot of a step carries that
    step's entries, never a bank word or a register left from the step before (a queue that
    registers its entries outside the banks must reload or bypass them after the clear)."""
    layout = delta_entry_layout(Formats(), 10)
    dut = DeltaQueue(layout, columns=K, blocks=NB, capacity=64, copies=COPIES,
                     registered_writes=registered)
    rng = np.random.default_rng(K * 7 + NB)
    steps = []
    for s in range(4):
        emissions, n = [], 0
        for c in range(int(rng.integers(3, 9))):
            cnt = int(rng.integers(0, K + 1))
            emissions.append([(int(rng.integers(-65536, 65536)), 100 * s + n + i)
                              for i in range(cnt)])
            n += cnt
        steps.append(emissions)
    got = []

    async def tb(ctx):
        for emissions in steps:
            slots, cycle = [], 0
            while True:
                em = emissions[cycle] if cycle < len(emissions) else []
                ctx.set(dut.deltas.valid, (1 << len(em)) - 1)
                for k, (d, a) in enumerate(em):
                    ctx.set(dut.deltas.entry[k].delta, d)
                    ctx.set(dut.deltas.entry[k].addr, a)
                ctx.set(dut.deltas.done, cycle >= len(emissions))
                _, _, valid, block, entry, columns, pending = await ctx.tick().sample(
                    dut.issue.valid, dut.issue.block, dut.issue.entry, dut.issue.column_valid,
                    dut.pending)
                if valid:
                    slots.append((cycle, block, [(entry[k].delta, entry[k].addr)
                                                 for k in range(K) if columns & (1 << k)]))
                if not pending and cycle >= len(emissions):
                    slots.append(("idle", cycle))
                    break
                cycle += 1
            got.append(slots)
            # The end of the step: one cycle of clear, nothing written.
            ctx.set(dut.deltas.valid, 0)
            ctx.set(dut.deltas.done, 0)
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert got == [expected(K, NB, em, len(em)) for em in steps]
