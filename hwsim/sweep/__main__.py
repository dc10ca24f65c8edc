"""``python -m hwsim.sweep EXPERIMENT.yaml --out DIR [--ray] [--workers N]``."""

import sys

from hwsim.sweep.runner import main

if __name__ == "__main__":
    sys.exit(main())
