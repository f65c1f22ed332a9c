"""Co-simulation of the generated core: cocotb drivers and the Verilator runner glue."""
