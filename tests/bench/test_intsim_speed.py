"""pytest-benchmark suite of the issue-3 benchmark: one denoiser forward of the default U-Net
per backend, precision and batch size, in one run (``make bench``). Compare within a group:
``hwsim bench intsim`` computes the same ratios into JSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hwsim.bench import BenchConfig, parse_precision, pinned_threads, qonnx_runner
from hwsim.export.intgraph import to_integer_graph
from hwsim.intsim.executor import Simulator
from hwsim.quant.plan import PrecisionPlan
from hwsim.quant.qmodel import quantize_dir
from hwsim.quant.quantize import quantize_layers_only

pytestmark = pytest.mark.bench
MODEL = Path(__file__).resolve().parents[2] / "models" / "unet-fashion"
BACKENDS = ["torch_fp32", "brevitas_fakequant", "intsim", "qonnx_exec"]


@pytest.fixture(scope="module", params=BenchConfig().precisions)
def setup(request, tmp_path_factory):
    torch.set_num_threads(2)
    quantized = quantize_dir(MODEL, PrecisionPlan.uniform(*parse_precision(request.param)), BenchConfig().calibration)
    out = tmp_path_factory.mktemp(request.param)
    sim = Simulator(to_integer_graph(quantized.net(), quantized.example_input(), out / "g.onnx"))
    fakequant = quantize_layers_only(quantized.model.net.float(), quantized.plan, quantized.ranges)
    return request.param, quantized.model.net.float().eval(), fakequant, sim, out


@pytest.mark.parametrize("batch", BenchConfig().batch_sizes)
@pytest.mark.parametrize("backend", BACKENDS)
def test_forward(benchmark, setup, backend, batch):
    precision, float_net, fakequant, sim, out = setup
    benchmark.group = f"{precision} batch {batch}"
    x = torch.randn((batch, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    t = torch.full((batch,), 500, dtype=torch.long)
    if backend == "qonnx_exec":
        run = qonnx_runner(fakequant, x, t, out / f"brevitas-b{batch}.onnx")
        benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
        return
    fns = {"torch_fp32": lambda: float_net(x, t), "brevitas_fakequant": lambda: fakequant(x, t),
           "intsim": lambda: sim.run(x.numpy(), t.numpy())}
    with torch.no_grad(), pinned_threads(torch.get_num_threads()):  # the simulator's pools get torch's threads
        result = benchmark.pedantic(fns[backend], rounds=3, iterations=1, warmup_rounds=1)
    assert np.all(np.isfinite(np.asarray(result)))
