"""hwsim: co-design testbed for quantized diffusion models and FPGA dataflow accelerators."""

__version__ = "0.1.0"
