import os

# the default run: every block on Icarus, a few on Verilator; `make test-rtl` runs all on both
FULL = bool(os.environ.get("HWSIM_RTL_FULL"))
SIMS = ["icarus", "verilator"] if FULL else ["icarus"]
