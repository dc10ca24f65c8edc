"""``sparse-<fraction>``: unstructured magnitude pruning of any fraction 0 < f < 1, by name, as
``sparse-0.5`` does; a bad fraction is a clear error, in ``resolve`` and in a sweep's sparsity axis."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from hwsim.modeldir import load_model
from hwsim.quant.calibrate import CalibrationConfig
from hwsim.quant.methods import MethodContext, resolve, sparse_fraction
from hwsim.quant.plan import PrecisionPlan
from hwsim.quant.sparsity import prunable, prune
from hwsim.sweep import ExperimentError, load_experiment
from tests.sweep.test_experiment import GOOD  # the same minimal experiment file

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.mark.parametrize("name, fraction", [("sparse-0.25", 0.25), ("sparse-0.75", 0.75), ("sparse-0.1", 0.1),
                                            ("sparse-.5", 0.5), ("sparse-0.999", 0.999)])
def test_resolve_accepts_fractions(name, fraction):
    [(got, method)] = resolve([name])
    assert got == name and method.stage == "float" and sparse_fraction(name) == fraction
    assert "unstructured" in method.summary


@pytest.mark.parametrize("name", ["sparse-0", "sparse-0.0", "sparse-1", "sparse-1.0", "sparse-1.5", "sparse-75"])
def test_resolve_rejects_fractions_outside_0_1(name):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        resolve([name])


@pytest.mark.parametrize("name", ["sparse-half", "sparse--0.5", "sparse-1e-1", "sparse-0.5x", "sparse-", "sparse-3:4"])
def test_resolve_rejects_malformed_names(name):
    with pytest.raises(ValueError, match=r"unknown PTQ method.*sparse-<fraction>"):
        resolve([name])


def test_stage_order_and_repeats():
    assert [n for n, _ in resolve(["adaround", "sparse-0.25"])] == ["sparse-0.25", "adaround"]  # float stage first
    with pytest.raises(ValueError, match="repeated"):
        resolve(["sparse-0.25", "sparse-0.25"])


@pytest.mark.parametrize("fraction", ["0.25", "0.5", "0.75"])
def test_prunes_that_fraction_of_every_prunable_layer(fraction):
    model = load_model(MODELS / "unet-digits")
    net, ref = model.net, load_model(MODELS / "unet-digits").net
    [(_, method)] = resolve([f"sparse-{fraction}"])

    ctx = MethodContext(model, PrecisionPlan.uniform(8, 8), CalibrationConfig(), inputs=[])
    method.apply(ctx)
    layers = prunable(net)
    assert set(ctx.meta["weight_sparsity"]) == set(layers)
    modules, ref_modules = dict(net.named_modules()), dict(ref.named_modules())
    for name in layers:
        w, w0 = modules[name].weight, ref_modules[name].weight
        # each row may keep its largest weight beyond the fraction (an empty row has no scale)
        assert ctx.meta["weight_sparsity"][name] == pytest.approx(float(fraction), abs=(w.shape[0] + 3) / w.numel())
        blocks = 3 if name.endswith("qkv") else 1  # q, k and v pruned as three layers
        for part, part0 in zip(w.chunk(blocks), w0.chunk(blocks)):
            rows, rows0 = part.reshape(len(part), -1), part0.reshape(len(part0), -1)
            kept = rows != 0
            assert kept.any(dim=1).all()  # no row emptied
            assert torch.equal(rows[kept], rows0[kept])  # survivors unchanged
            row_max = torch.zeros_like(kept).scatter_(1, rows0.abs().argmax(dim=1, keepdim=True), True)
            ranked = kept & ~row_max
            if ranked.any() and (~kept).any():
                assert rows0[~kept].abs().max() <= rows0[ranked].abs().min()  # the smallest |w| of the block went
            assert float((~kept).double().mean()) == pytest.approx(float(fraction), abs=(len(rows) + 1) / rows.numel())
    for name, m in net.named_modules():  # first/last layers and tables untouched
        if name not in layers and hasattr(m, "weight") and isinstance(m.weight, torch.Tensor):
            assert torch.equal(m.weight, ref_modules[name].weight)


def test_a_row_is_never_pruned_empty():
    from hwsim.quant.sparsity import prune_magnitude

    w = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.01, -0.02, 0.03, 0.001]], dtype=torch.float64)
    assert prune_magnitude(w, 0.5).tolist() == [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.03, 0.0]]  # 0.03 kept as its row's largest


def test_registered_half_equals_generic_half():
    a, b = load_model(MODELS / "unet-digits").net, load_model(MODELS / "unet-digits").net
    prune(a, "0.5")
    prune(b, ".5")  # what sparse-.5 passes on
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _experiment(tmp_path, sparsity: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(GOOD) + f"sparsity: {sparsity}\n")
    return path


def test_sweep_sparsity_axis_takes_fractions(tmp_path):
    exp = load_experiment(_experiment(tmp_path, "[none, 0.25, '0.5', 0.75, '2:4']"))
    assert [p.config["sparsity"] for p in exp.points] == [None, "0.25", "0.5", "0.75", "2:4"]
    assert [p.config["methods"] for p in exp.points] == [[], ["sparse-0.25"], ["sparse-0.5"], ["sparse-0.75"],
                                                         ["sparse-2:4"]]


@pytest.mark.parametrize("value, phrase", [("[1.5]", "strictly between 0 and 1"), ("[1.0]", "strictly between 0 and 1"),
                                           ("['half']", "unknown")])
def test_sweep_sparsity_axis_rejects_bad_fractions(tmp_path, value, phrase):
    path = _experiment(tmp_path, value)
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: sparsity[0]: ") and phrase in msg, msg


def test_quantize_dir_with_a_fraction():
    from hwsim.quant.qmodel import quantize_dir

    q = quantize_dir(MODELS / "unet-digits", PrecisionPlan.uniform(8, 8), CalibrationConfig(samples=2, steps=4),
                     ("sparse-0.25",))
    sparsity = q.meta["weight_sparsity"]
    assert q.meta["methods"] == ["sparse-0.25"] and len(sparsity) > 10
    assert all(abs(v - 0.25) < 0.01 for v in sparsity.values())
