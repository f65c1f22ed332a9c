"""cocotb test module: models loaded into a run-time core through the Arty Z7 AXI wrapper.

The wrapper (:class:`~drnn_boards.arty_z7.DeltaRNNAXI` with ``maxima``) runs in Verilator. For
each model the bench reads the core's ID, SHAPE, MAXIMA and FORMATS over AXI4-Lite, checks the
bundle and makes the host's register writes (:func:`drnn_hw.load.check_bundle`,
:func:`~drnn_hw.load.load_writes`: the sequence ``drnn load`` sends over the UART), writes them
over AXI4-Lite, then streams one sequence through AXI4-Stream with gaps and back-pressure
(:func:`drnn_boards.axi_bench.stream_frames`), one model after the other in one simulation.

Input ``$DRNN_AXI_IN`` (npz, written by :func:`drnn_boards.sim.run_axi_loads`): ``runs`` and
per run k ``model_dir_k``, ``x_k`` (T, I_k) codes; ``tdata_bits``. Output ``$DRNN_AXI_OUT``:
per run ``h_k`` (T, H_k), ``writes_k`` (the load's register writes), ``prescan_k``
(PRESCAN_LAST of the last step), ``cycles_k`` (CYCLES_LAST
after the sequence: the last step's), ``sizes_k`` (SIZES after the load).
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np

from .axi_bench import AXILiteMaster, _start, stream_frames


@cocotb.test()
async def axi_loads(dut):
    from drnn_hw.bundle import ModelBundle
    from drnn_hw.load import CoreInfo, check_bundle, load_writes
    # The testbenches' own register map (not the contract the wrapper is built from).
    from drnn_sim.bus import CYCLES_LAST, PRESCAN_LAST, SIZES

    cfg = dict(np.load(os.environ["DRNN_AXI_IN"]))
    await _start(dut)
    rng = random.Random(int(os.environ.get("COCOTB_RANDOM_SEED", "1")))
    bus = AXILiteMaster(dut, rng)
    out = {}
    for k in range(int(cfg["runs"])):
        bundle = ModelBundle.load(str(cfg[f"model_dir_{k}"]))
        regs = {a: await bus.read(a) for a in range(20)}
        info = CoreInfo.read(lambda a: regs[int(a)])
        check_bundle(bundle, info, where=f"run {k}")
        writes = load_writes(bundle, info)
        for addr, value in writes:
            assert await bus.write(addr, value) == 0, f"write of register {addr} refused"
        x = cfg[f"x_{k}"]
        h = await stream_frames(dut, x, I=bundle.input_size,
                                H=bundle.layers[-1].hidden_size, E=info.scan,
                                A=bundle.formats.act_bits, tdata_bits=int(cfg["tdata_bits"]),
                                rng=rng)
        out.update({f"h_{k}": h, f"writes_{k}": len(writes),
                    f"cycles_{k}": await bus.read(CYCLES_LAST),
                    f"prescan_{k}": await bus.read(PRESCAN_LAST),
                    f"sizes_{k}": await bus.read(SIZES)})
    np.savez(os.environ["DRNN_AXI_OUT"], **out)
