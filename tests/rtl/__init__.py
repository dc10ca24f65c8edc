import os

# the default run: every block on Icarus, a few on Verilator; `make test-rtl` runs all on both
SIMS = ["icarus", "verilator"] if os.environ.get("HWSIM_RTL_FULL") else ["icarus"]
