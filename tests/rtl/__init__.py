import os

# the default run: every block on Icarus, a few on Verilator; `make test-rtl` runs all on both
FULL = bool(os.environ.get("HWSIM_RTL_FULL"))
SIMS = ["icarus", "verilator"] if FULL else ["icarus"]
# stitched designs through the Verilog-only bench: Verilator builds and runs them in about a minute where
# Icarus takes up to 15 minutes (the tiny U-Net's grouped tail: 42 s against 884 s), so the default run
# uses Verilator for them and `make test-rtl` both
STITCHED_SIMS = ["verilator", "icarus"] if FULL else ["verilator"]
