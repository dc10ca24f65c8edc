"""``hwsim bench intsim``: the simulator's speed against PyTorch, Brevitas and qonnx, in one run.

All four run the same denoiser forward on the same inputs in this process, so the ratios
(speed-ups > 1 mean the simulator is faster) hold on any machine, unlike absolute times.
Every backend gets torch's thread count: the simulator's Numba and BLAS pools are pinned to it
while it is timed. The ratios are only meaningful on an otherwise idle machine: with other jobs
on the cores, multi-threaded runs of every backend wait on descheduled threads.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from hwsim import config as cfgio
from hwsim.export.intgraph import to_integer_graph
from hwsim.intsim.executor import Simulator
from hwsim.provenance import provenance
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.plan import PrecisionPlan
from hwsim.quant.qmodel import quantize_dir
from hwsim.quant.quantize import quantize_layers_only


@dataclass(frozen=True)
class BenchConfig:
    batch_sizes: tuple[int, ...] = (1, 64)
    precisions: tuple[str, ...] = ("W8A8", "W4A8")
    repeats: int = 3  # timed calls per measurement (the minimum is kept), after one warm-up call
    qonnx_repeats: int = 1  # qonnx execute_onnx is slow: one timed call
    timestep: int = 500
    seed: int = 0
    calibration: CalibrationConfig = CalibrationConfig(samples=8, steps=20)


def parse_precision(text: str) -> tuple[int, int]:
    try:
        w, a = text.upper().removeprefix("W").split("A")
        return int(w), int(a)
    except ValueError:
        raise ValueError(f"precision {text!r} is not of the form W<bits>A<bits>, e.g. W4A8") from None


def best_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Each function's minimum time over ``repeats`` rounds that call them in turn, so that a drift of
    the host's speed (a shared VM's varies by 1.5x over minutes) reaches every backend alike."""
    for fn in fns.values():
        fn()  # warm-up: Numba compilation, allocator, caches
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def best_time(fn: Callable[[], object], repeats: int) -> float:
    return best_times({"fn": fn}, repeats)["fn"]


@contextlib.contextmanager
def pinned_threads(threads: int):
    """Numba's and the BLAS libraries' thread pools limited to ``threads`` (restored afterwards).
    Torch's count is restored too: with Numba's OpenMP threading layer, Numba's thread count is set
    on the OpenMP pool torch shares (at every parallel region), so simulator runs belong in here."""
    import numba
    from threadpoolctl import threadpool_limits

    before, torch_before = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        with threadpool_limits(threads):
            yield
    finally:
        numba.set_num_threads(before)
        torch.set_num_threads(torch_before)


def qonnx_runner(module: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, path: Path) -> Callable[[], object]:
    """execute_onnx on the unmodified Brevitas QONNX export (static batch, as exported)."""
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(module, args=(x, t), export_path=str(path), dynamo=False, opset_version=18)
    model = cleanup_model(ModelWrapper(str(path)))
    feed = {model.graph.input[0].name: x.numpy(), model.graph.input[1].name: t.numpy()}
    return lambda: execute_onnx(model, feed)


def bench_intsim(model_dir: str | Path, out_dir: str | Path, cfg: BenchConfig = BenchConfig(),
                 with_qonnx: bool = True) -> dict:
    """Time one denoiser forward per backend, precision and batch size; returns the report dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, threads = [], torch.get_num_threads()
    for precision in cfg.precisions:
        quantized = quantize_dir(model_dir, PrecisionPlan.uniform(*parse_precision(precision)), cfg.calibration)
        model, qnet = quantized.model, quantized.net()
        float_net = model.net.float().eval()
        sim = Simulator(to_integer_graph(qnet, quantized.example_input(), out / f"{precision}.onnx"))
        brevitas = quantize_layers_only(float_net, quantized.plan, quantized.ranges)
        for batch in cfg.batch_sizes:
            gen = torch.Generator().manual_seed(cfg.seed)
            x = torch.randn((batch, *model.spec.image_shape), generator=gen)
            t = torch.full((batch,), cfg.timestep, dtype=torch.long)
            xn, tn = x.numpy(), t.numpy()
            # torch shares the OpenMP pool the pin sets (threads, as torch's own count)
            with torch.no_grad(), pinned_threads(threads):
                times = best_times({"torch_fp32_s": lambda: float_net(x, t), "brevitas_fakequant_s": lambda: brevitas(x, t),
                                    "intsim_s": lambda: sim.run(xn, tn)}, cfg.repeats)
                row = {"precision": precision, "batch": batch, **times,
                       "bit_exact": bool(np.array_equal(sim.run(xn, tn), qnet(x.double(), t).numpy()))}
                if with_qonnx:
                    run = qonnx_runner(brevitas, x, t, out / f"brevitas-{precision}-b{batch}.onnx")
                    row["qonnx_exec_s"] = best_time(run, cfg.qonnx_repeats)
            row["intsim_vs_torch_fp32"] = row["torch_fp32_s"] / row["intsim_s"]
            row["intsim_vs_brevitas"] = row["brevitas_fakequant_s"] / row["intsim_s"]
            if with_qonnx:
                row["intsim_vs_qonnx_exec"] = row["qonnx_exec_s"] / row["intsim_s"]
            rows.append(row)
    from hwsim.intsim import amx, vnni

    kernels = "amx" if amx.available() else "vnni" if vnni.available() else "blas"  # what kernels.int_conv tries first
    return {"model": str(model_dir), "config": cfgio.to_dict(cfg), "threads": threads, "int8_kernels": kernels,
            "rows": rows, "bit_exact": all(r["bit_exact"] for r in rows), "provenance": provenance()}


def write_report(report: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
