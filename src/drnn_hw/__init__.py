"""The hardware and its specification: the bottom layer, importing nothing of the project above
it (nor torch, cocotb or click).

Specification
    :mod:`.numerics` (the arithmetic: formats, rounding, saturation, LUTs), :mod:`.golden`
    (the bit-exact model every engine is compared with), :mod:`.cycle_model` (cycles per step,
    :class:`~.cycle_model.CoreShape`), :mod:`.bundle` (the model bundle format),
    :mod:`.contract` (the core's register map, bit layouts and stream beats).
Gateware, one file per block
    :mod:`.delta_encoder` (IEU), :mod:`.delta_queue`, :mod:`.weight_bank`, :mod:`.mxv`,
    :mod:`.multiplier`, :mod:`.activation` (AP), :mod:`.registers`, :mod:`.core` (top level);
    :mod:`.hdl_arith` holds the shared gateware arithmetic.
Generation
    :mod:`.generate` (Verilog + manifest), :mod:`.yosys` (the one Yosys runner).
Support
    :mod:`.io` (user files: JSON, sequence lengths), :mod:`.errors` (one-line user errors).
"""
