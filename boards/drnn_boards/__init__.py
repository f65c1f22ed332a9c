"""Board top-levels, the host link and the build flows (ULX3S-85F, Arty Z7-20).

* :mod:`.protocol` — the framed host protocol (documented there), host and gateware share it.
* :mod:`.uart` — 8N1 UART transmitter/receiver, clocks per bit as a parameter.
* :mod:`.link` — :class:`~.link.HostLink`, the protocol engine in gateware.
* :mod:`.host` — :class:`~.host.DeltaRNNLink`, the host driver over any byte transport
  (pyserial for a real port, the simulated UART in :mod:`.ulx3s_bench`).
* :mod:`.ulx3s` — ULX3S-85F board logic, PLL top-level, open-tool build, programming.
* :mod:`.arty_z7` — AXI4-Lite + AXI4-Stream wrapper, Vivado plan, Yosys resource estimates.
* :mod:`.sim` — Verilator runs of the board logic and the AXI wrapper (on drnn_sim's runner);
  :mod:`.ulx3s_bench` and :mod:`.axi_bench` are the cocotb test modules.
"""
