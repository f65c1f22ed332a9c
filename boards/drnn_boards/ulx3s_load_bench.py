"""cocotb test module: models loaded into a run-time core on the ULX3S board logic, over the UART.

The board logic (:class:`~drnn_boards.ulx3s.DeltaRNNBoard` with ``maxima``: a
``--weights runtime`` core, the link sizing its frames from the loaded model) runs in
Verilator; the *unchanged* host driver loads each model with :meth:`DeltaRNNLink.load`
(the same register writes ``drnn load`` makes) and runs its inputs with
:meth:`DeltaRNNLink.run`, one model after the other in the same simulation, as a user does with
one bitstream. The UART pins are the ones :mod:`drnn_boards.ulx3s_bench` drives.

Input ``$DRNN_BOARD_IN`` (npz, written by :func:`drnn_boards.sim.run_board_loads`):
``divisor``, ``idle_timeout``, ``runs`` (the count), and per run k ``model_dir_k``, ``x_k``,
``lengths_k``; ``refuse_dir`` (optional) a model beyond the maxima, offered after the last run.
Output ``$DRNN_BOARD_OUT`` (npz): per run k ``h_k``, ``nnz_dx_k``, ``nnz_dh_k``, ``cycles_k``,
``writes_k`` (load writes), ``ident_k`` (I, H of SIZES after the load), ``long_step_k`` (the
error code of a STEP one element longer than the loaded I; 0 if it was answered);
``refused`` (the refusal's message, when ``refuse_dir`` was given), ``after_refusal`` (h of
the last run's first step, run again after the refusal).
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles

from .host import BoardError, DeltaRNNLink
from .protocol import Command
from .ulx3s_bench import CLOCK_NS, SimUARTTransport


@cocotb.test()
async def loads_over_uart(dut):
    from drnn_hw.bundle import ModelBundle
    from drnn_hw.load import LoadRefused

    cfg = dict(np.load(os.environ["DRNN_BOARD_IN"]))
    divisor, idle = int(cfg["divisor"]), int(cfg["idle_timeout"])
    runs = int(cfg["runs"])
    bundles = [ModelBundle.load(str(cfg[f"model_dir_{k}"])) for k in range(runs)]
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    transport = SimUARTTransport(dut, divisor, timeout_cycles=4 * idle + 200_000)
    cocotb.start_soon(transport.monitor())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)

    def host():
        link = DeltaRNNLink(transport, act_bits=bundles[0].formats.act_bits)
        out = {}
        for k, bundle in enumerate(bundles):
            summary = link.load(bundle, where=f"run {k}")
            info = link.identify()
            res = link.run(bundle, cfg[f"x_{k}"], cfg[f"lengths_{k}"])
            # A STEP sized for another model: the link must answer from the loaded sizes.
            try:
                link.request(Command.STEP, bytes((bundle.input_size + 1)
                                                 * link.element_bytes))
                long_step = 0
            except BoardError as e:
                long_step = int(e.code)
            out.update({f"h_{k}": res.h, f"nnz_dx_{k}": res.nnz_dx,
                        f"nnz_dh_{k}": res.nnz_dh, f"cycles_{k}": res.cycles,
                        f"writes_{k}": summary["writes"],
                        f"ident_{k}": np.array([info["input_size"], info["hidden_size"]]),
                        f"long_step_{k}": long_step})
        if "refuse_dir" in cfg:
            try:
                link.load(ModelBundle.load(str(cfg["refuse_dir"])), where="refused")
                out["refused"] = ""
            except LoadRefused as e:
                out["refused"] = str(e)
            link.reset_state()
            out["after_refusal"] = link.step(cfg[f"x_{runs - 1}"][0, 0])
        return out

    out = await bridge(host)()
    assert not transport.monitor_errors, transport.monitor_errors
    np.savez(os.environ["DRNN_BOARD_OUT"], **out)
