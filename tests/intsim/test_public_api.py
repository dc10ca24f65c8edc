"""The issue's public names: hwsim.intsim.Simulator and hwsim.export.to_integer_graph, and the
simulator's promise of no torch (importing it must not load torch, Brevitas or onnxruntime)."""

from __future__ import annotations

import subprocess
import sys

from hwsim.export.intgraph import to_integer_graph as exporter
from hwsim.intsim.executor import Simulator as executor_simulator


def test_public_names():
    from hwsim.export import to_integer_graph
    from hwsim.intsim import Simulator

    assert Simulator is executor_simulator and to_integer_graph is exporter


def test_simulator_imports_without_torch():
    code = ("import sys; from hwsim.intsim import Simulator; import hwsim.intsim.kernels; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'brevitas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
