"""Resumable sweeps (``hwsim sweep EXPERIMENT.yaml --out DIR``): grid or random sampling over
model, PTQ method, precision plan, sparsity, device and folding target; each point quantizes,
measures FID through the integer simulator, maps and costs the design, and appends one row keyed
by a hash of its full config. Killed at any moment and rerun, it resumes. See docs/sweeps.md.

- :mod:`hwsim.sweep.experiment`: the experiment file, checked whole; points and their keys;
- :mod:`hwsim.sweep.point`: one point, end to end;
- :mod:`hwsim.sweep.store`: the crash-safe results file and atomic writes;
- :mod:`hwsim.sweep.runner`: estimate, progress, process pool or Ray, resume.
"""

from hwsim.sweep.experiment import Experiment, ExperimentError, Point, load_experiment
from hwsim.sweep.runner import main, run_sweep
from hwsim.sweep.store import ResultStore, SweepError, stable

__all__ = ["Experiment", "ExperimentError", "Point", "ResultStore", "SweepError", "load_experiment", "main",
           "run_sweep", "stable"]
