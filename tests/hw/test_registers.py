"""RegisterFile: constant registers, threshold read/write (reset values from the bundle), CTRL
strobes, status read-back, read latency of one cycle, unknown addresses, parameter checks.

Addresses and bit positions are written out here (the documented map), not taken from
drnn_hw.contract, so a swap in the contract fails this test."""

import pytest
from amaranth.sim import Simulator

from drnn_hw.registers import RegisterFile

#: The documented register map (README / contract docstring), word addresses.
MAP = {"ID": 0, "SIZES": 1, "SHAPE": 2, "CTRL": 3, "STATUS": 4, "THETA_X": 5, "THETA_H": 6,
       "CYCLES_LAST": 7, "NNZ_DX_LAST": 8, "NNZ_DH_LAST": 9, "STEPS": 10}
ID = 0x44524E4E


def test_read_write():
    dut = RegisterFile(inputs=39, hidden=256, rows=128, columns=2, scan=32, act_bits=16,
                       theta_x=77, theta_h=5)
    A = MAP

    async def read(ctx, name_or_addr):
        addr = A[name_or_addr] if isinstance(name_or_addr, str) else name_or_addr
        ctx.set(dut.csr.addr, addr)
        ctx.set(dut.csr.r_stb, 1)
        await ctx.tick()
        ctx.set(dut.csr.r_stb, 0)
        return ctx.get(dut.csr.r_data)

    async def write(ctx, name, value):
        ctx.set(dut.csr.addr, A[name])
        ctx.set(dut.csr.w_data, value)
        ctx.set(dut.csr.w_stb, 1)
        strobes = (ctx.get(dut.reset_state), ctx.get(dut.clear_steps), ctx.get(dut.clear_error))
        await ctx.tick()
        ctx.set(dut.csr.w_stb, 0)
        return strobes

    async def tb(ctx):
        assert await read(ctx, "ID") == ID
        assert await read(ctx, "SIZES") == 39 | (256 << 16)
        assert await read(ctx, "SHAPE") == 128 | (2 << 16) | (32 << 24)
        assert await read(ctx, "THETA_X") == 77
        assert await read(ctx, "THETA_H") == 5
        await write(ctx, "THETA_X", 300)
        await write(ctx, "THETA_H", 0xFFFF)
        assert (ctx.get(dut.theta_x[0]), ctx.get(dut.theta_h[0])) == (300, 0xFFFF)
        assert await read(ctx, "THETA_X") == 300
        assert await read(ctx, "THETA_H") == 0xFFFF
        assert await write(ctx, "CTRL", 0b001) == (1, 0, 0)
        assert await write(ctx, "CTRL", 0b110) == (0, 1, 1)
        assert (ctx.get(dut.reset_state), ctx.get(dut.clear_steps)) == (0, 0)  # strobes only
        assert await write(ctx, "ID", 0b111) == (0, 0, 0)                      # read-only
        assert await read(ctx, "ID") == ID
        ctx.set(dut.busy, 1)
        ctx.set(dut.frame_error, 1)
        ctx.set(dut.cycles_last, 123456)
        ctx.set(dut.nnz_dx_last, 17)
        ctx.set(dut.nnz_dh_last, 250)
        ctx.set(dut.steps, 0xDEADBEEF)
        assert await read(ctx, "STATUS") == 0b011
        ctx.set(dut.reset_pending, 1)
        ctx.set(dut.busy, 0)
        assert await read(ctx, "STATUS") == 0b110
        assert await read(ctx, "CYCLES_LAST") == 123456
        assert await read(ctx, "NNZ_DX_LAST") == 17
        assert await read(ctx, "NNZ_DH_LAST") == 250
        assert await read(ctx, "STEPS") == 0xDEADBEEF
        assert await read(ctx, 15) == 0
        # r_data is registered: an address change without r_stb does not disturb it.
        ctx.set(dut.csr.addr, A["ID"])
        await ctx.tick()
        assert ctx.get(dut.csr.r_data) == 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("name,value", [("inputs", 1 << 16), ("hidden", -1), ("rows", 1 << 16),
                                        ("columns", 16), ("scan", 256), ("theta_x", 1 << 16),
                                        ("theta_h", -1), ("act_bits", 0)])
def test_refuses_what_does_not_fit(name, value):
    params = dict(inputs=3, hidden=4, rows=2, columns=1, scan=2, act_bits=16, theta_x=0,
                  theta_h=0)
    params[name] = value
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        RegisterFile(**params)


def test_shape_shows_the_cell():
    """SHAPE's bits [23:20] hold the cell's code (1: LSTM); the other fields are unchanged."""
    from amaranth.sim import Simulator

    dut = RegisterFile(inputs=3, hidden=5, rows=4, columns=1, scan=2, act_bits=16,
                       theta_x=0, theta_h=0, cell=1)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.csr.addr, MAP["SHAPE"])
        ctx.set(dut.csr.r_stb, 1)
        await ctx.tick()
        seen["shape"] = ctx.get(dut.csr.r_data)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen["shape"] == 4 | (1 << 16) | (1 << 20) | (2 << 24)
