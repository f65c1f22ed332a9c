"""The run-time core (``--weights runtime``) in Amaranth's simulator: the register file's load
path (LOAD_ADDR / LOAD_DATA assembly, auto-increment, writable descriptors only in a run-time
core), and whole cores into which other models are loaded over the bus (drnn_hw.load, as a host
does), bit- and cycle-exact against the golden model on the loaded sizes. (The Verilator
benches of tests/sim/test_sim_runtime.py run the same with more steps.)

Register addresses and fields are written out from the documented map."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from drnn.engines.amaranth import simulate
from drnn_hw.bundle import random_bundle, random_stacked_bundle
from drnn_hw.core import DeltaRNNCore
from drnn_hw.cycle_model import CoreShape
from drnn_hw.golden import run as golden_run
from drnn_hw.layer_map import Maxima, descriptor_values, layer_map
from drnn_hw.registers import RegisterFile

SHAPE = CoreShape(rows=4, columns=2, scan=4)
LOAD_ADDR, LOAD_DATA, LAYERS = 16, 17, 11


def _regfile(runtime):
    desc = descriptor_values(8, [12, 12], 4, 4)
    return RegisterFile(inputs=8, hidden=[12, 12], rows=4, columns=2, scan=4, act_bits=16,
                        theta_x=[0, 0], theta_h=[0, 0], descriptors=desc, runtime=runtime,
                        load_bits={0x00: 32, 0x10: 128, 0x11: 16} if runtime else None)


def _run(dut, tb):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


def _bus(dut):
    async def write(ctx, addr, value):
        ctx.set(dut.csr.addr, addr)
        ctx.set(dut.csr.w_data, value)
        ctx.set(dut.csr.w_stb, 1)
        await ctx.tick()
        ctx.set(dut.csr.w_stb, 0)

    async def read(ctx, addr):
        ctx.set(dut.csr.addr, addr)
        ctx.set(dut.csr.r_stb, 1)
        await ctx.tick()
        ctx.set(dut.csr.r_stb, 0)
        return ctx.get(dut.csr.r_data)
    return write, read


def test_load_words_assembled_and_addresses_incremented():
    dut = _regfile(runtime=True)
    write, read = _bus(dut)
    seen = []

    async def watch(ctx):
        async for _, _, we, memory, addr, data in ctx.tick().sample(
                dut.load.we, dut.load.memory, dut.load.addr, dut.load.data):
            if we:
                # (The word is in the low bits; the rest of ``data`` is not part of it.)
                bits = {0x00: 32, 0x10: 128, 0x11: 16}[memory]
                seen.append((memory, addr, data & ((1 << bits) - 1)))

    async def tb(ctx):
        await write(ctx, LOAD_ADDR, 0x10 << 24 | 5)          # bias row 0, word 5
        for part in (0x11111111, 0x22222222, 0x33333333, 0x44444444,   # word 5
                     0x55555555, 0x66666666, 0x77777777, 0x88888888):  # word 6
            await write(ctx, LOAD_DATA, part)
        await write(ctx, LOAD_ADDR, 0x11 << 24 | 1023)       # a 16-bit memory, word 1023
        await write(ctx, LOAD_DATA, 0xABCD)
        await write(ctx, LOAD_ADDR, 0x00 << 24 | 7)          # weight bank 0, word 7
        await write(ctx, LOAD_DATA, 0xDEADBEEF)
        await write(ctx, LOAD_ADDR, 0x30 << 24)              # no such memory: ignored
        await write(ctx, LOAD_DATA, 1)
        await ctx.tick().repeat(2)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.add_process(watch)
    sim.run_until(1e-6)
    assert seen == [(0x10, 5, 0x44444444_33333333_22222222_11111111),
                    (0x10, 6, 0x88888888_77777777_66666666_55555555),
                    (0x11, 1023, 0xABCD), (0x00, 7, 0xDEADBEEF)]


@pytest.mark.parametrize("runtime", [False, True])
def test_descriptors_writable_only_in_a_runtime_core(runtime):
    dut = _regfile(runtime)
    write, read = _bus(dut)

    async def tb(ctx):
        assert await read(ctx, 13) == 8 | 12 << 12 | 2 << 24 | int(runtime) << 29  # MAXIMA
        assert await read(ctx, 40) == 12 | 12 << 16           # LAYER_SIZES of layer 1
        await write(ctx, 40, 3 | 11 << 16)
        await write(ctx, 46, 3 | 1 << 12 | 3 << 22)           # LAYER_COUNTS
        await write(ctx, 47, 99)                              # LAYER_H_COLUMN
        await write(ctx, LAYERS, 1)
        await write(ctx, LAYERS, 3)                           # more than the layout: ignored
        got = (await read(ctx, 40), await read(ctx, 46), await read(ctx, 47),
               await read(ctx, LAYERS), await read(ctx, 1))
        if runtime:
            assert got == (3 | 11 << 16, 3 | 1 << 12 | 3 << 22, 99, 1, 8 | 12 << 16)
            assert ctx.get(dut.desc[1].hidden) == 11 and ctx.get(dut.layers) == 1
        else:
            # Read-only: layer 1 of I = 12, H = 12 (NB = WX = WH = 3), its h columns at
            # (8 + 12)·3 − 3 + 12·3 = 93; L = 2.
            assert got == (12 | 12 << 16, 3 | 3 << 12 | 3 << 22, 93, 2, 8 | 12 << 16)
            assert ctx.get(dut.desc[1].hidden) == 12
    _run(dut, tb)


def test_descriptor_values_place_a_model_in_a_layout():
    layout = layer_map(8, [12, 12], 4, 4)
    d = descriptor_values(6, [3, 11], 4, 4, layout=layout)
    assert [(x["inputs"], x["hidden"], x["blocks"], x["x_windows"], x["h_windows"])
            for x in d] == [(6, 3, 1, 2, 1), (3, 11, 3, 1, 3)]
    # The h columns follow the layer's x columns in its slot: column base + I_l·NB_l.
    assert d[1]["h_column"] == layout[1].weight_base - layout[1].block_base + 3 * 3
    with pytest.raises(ValueError, match="does not fit a slot"):
        descriptor_values(9, [3], 4, 4, layout=layout)


def test_maxima_name_the_limit():
    m = Maxima(8, 12, 2)
    assert m.refuse(8, [12, 12]) is None
    assert m.refuse(8, [13]) == "layers[0].hidden_size = 13 exceeds the core's --max-hidden 12"
    assert m.refuse(9, [4]) == "layers[0].input_size = 9 exceeds the core's --max-inputs 8"
    assert m.refuse(4, [4, 4, 4]) == "3 layers exceed the core's --max-layers 2"
    with pytest.raises(ValueError, match="--max-hidden = 0"):
        Maxima(8, 0)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("overlap", [False, True], ids=["", "overlap"])
def test_models_loaded_into_one_core(cell, overlap):
    core_bundle = random_stacked_bundle(8, [12, 12], seed=1, theta_x=0.05, theta_h=0.05,
                                        cell=cell, weight_scale=1.5)
    models = [random_bundle(5, 7, seed=2, theta_x=0.05, theta_h=0.1, cell=cell,
                            weight_scale=1.5),
              random_stacked_bundle(6, [3, 11], seed=4, theta_x=[0.1, 0.05],
                                    theta_h=[0.05, 0.1], cell=cell, weight_scale=1.5)]
    for b in models:
        x = np.random.default_rng(0).integers(-300, 300, (2, 4, b.input_size))
        shape = CoreShape(rows=4, columns=2, scan=4, step_overlap=overlap)
        res = simulate(b, [x[0], x[1]], shape, maxima=Maxima(8, 12, 2),
                       core_bundle=core_bundle)
        g = golden_run(b, x, shape=shape)
        for n in range(2):
            assert np.array_equal(res[n]["prescan"], g.prescan[n])
            assert np.array_equal(res[n]["h"], g.h[n])
            assert np.array_equal(res[n]["cycles"], g.cycles[n])
            assert np.array_equal(res[n]["nnz_dx"], g.nnz_dx[n])
            assert np.array_equal(res[n]["nnz_dh"], g.nnz_dh[n])
            assert res[n]["frames_ok"]


def test_a_runtime_core_refuses_an_initial_bundle_beyond_its_maxima():
    with pytest.raises(ValueError, match="--max-hidden 12"):
        DeltaRNNCore(random_bundle(4, 13), SHAPE, maxima=Maxima(8, 12))


def test_h0_written_into_the_loaded_layers():
    """H0 writes on a run-time core go to the loaded layers' units (each slot's H_l of them,
    not the maxima's): a 2-layer model narrower than the slots, with a non-zero h0."""
    core_bundle = random_stacked_bundle(8, [12, 12], seed=1, cell="gru")
    b = random_stacked_bundle(6, [3, 11], seed=4, theta_x=[0.1, 0.05], theta_h=[0.05, 0.1])
    rng = np.random.default_rng(3)
    x = rng.integers(-300, 300, (1, 4, 6))
    h0 = [rng.integers(-200, 200, (1, 3)), rng.integers(-200, 200, (1, 11))]
    res = simulate(b, [x[0]], SHAPE, maxima=Maxima(8, 12, 2), core_bundle=core_bundle,
                   h0=[np.concatenate([h0[0][0], h0[1][0]])])
    g = golden_run(b, x, shape=SHAPE, h0=h0)
    assert np.array_equal(res[0]["h"], g.h[0]) and np.array_equal(res[0]["cycles"], g.cycles[0])
    assert not np.array_equal(g.h, golden_run(b, x, shape=SHAPE).h)


@pytest.mark.parametrize("runtime", [False, True])
def test_kept_register(runtime):
    """KEPT (word 19) of a compressed core: a write selects a layer (bits [28:24]) and, in a
    run-time core only, sets its kept (bits [11:0]) within 1 .. kept_max; a read shows the
    selected layer's kept, kept_max in [23:12] and the layer. A dense core reads 0."""
    KEPT = 19
    desc = descriptor_values(8, [12, 12], 4, 4)
    dut = RegisterFile(inputs=8, hidden=[12, 12], rows=4, columns=2, scan=4, act_bits=16,
                       theta_x=[0, 0], theta_h=[0, 0], descriptors=desc, runtime=runtime,
                       load_bits={0x00: 44, 0x10: 128} if runtime else None, kept=[2, 1],
                       kept_max=3)
    write, read = _bus(dut)

    async def tb(ctx):
        assert await read(ctx, KEPT) == 2 | 3 << 12 | 0 << 24
        await write(ctx, KEPT, 0 | 1 << 24)                  # select layer 1 only
        assert await read(ctx, KEPT) == 1 | 3 << 12 | 1 << 24
        await write(ctx, KEPT, 3 | 1 << 24)
        await write(ctx, KEPT, 4 | 0 << 24)                  # beyond kept_max: selects only
        after = (await read(ctx, KEPT), ctx.get(dut.kept[0]), ctx.get(dut.kept[1]))
        await write(ctx, KEPT, 0 | 1 << 24)
        layer1 = await read(ctx, KEPT)
        await write(ctx, KEPT, 1 | 2 << 24)                  # no layer 2: ignored
        if runtime:
            assert after == (2 | 3 << 12 | 0 << 24, 2, 3) and layer1 == 3 | 3 << 12 | 1 << 24
        else:
            assert after == (2 | 3 << 12 | 0 << 24, 2, 1) and layer1 == 1 | 3 << 12 | 1 << 24
        assert await read(ctx, KEPT) == layer1
    _run(dut, tb)

    dense = _regfile(runtime)
    write, read = _bus(dense)

    async def tb_dense(ctx):
        assert await read(ctx, KEPT) == 0
    _run(dense, tb_dense)
