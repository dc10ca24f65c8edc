"""Verilog generation and verification for the dataflow nodes (``rtl/``): memory files, stream
benches driven by cocotb, and simulator runs on Icarus and Verilator."""
