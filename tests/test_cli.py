import json

import pytest
from typer.testing import CliRunner

from hwsim.cli import app

runner = CliRunner()
COMMANDS = ["train", "train-classifier", "sample", "fid", "demo", "card", "quantize", "diagnose", "export", "sim", "map", "cost", "rtl"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0]


def test_bad_config_key(tmp_path):
    (tmp_path / "c.yaml").write_text("name: x\ndataset: digits\nkind: unet\nepoch: 3\n")
    _one_line_error(runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o")]), "c.yaml", "'epoch'")


def test_unknown_dataset(tmp_path):
    (tmp_path / "c.yaml").write_text("name: x\ndataset: cifar\nkind: unet\n")
    _one_line_error(runner.invoke(app, ["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o")]), "unknown dataset 'cifar'")


def test_missing_files(tmp_path):
    _one_line_error(runner.invoke(app, ["train", str(tmp_path / "none.yaml"), "--out", str(tmp_path)]), "no such file")
    _one_line_error(runner.invoke(app, ["fid", str(tmp_path)]), "not a model directory")
    _one_line_error(runner.invoke(app, ["demo", "--out", str(tmp_path / "d"), "--model", str(tmp_path)]), "not a model directory")


def test_unknown_extractor_and_sampler(tiny_model_dir, tmp_path):
    _one_line_error(runner.invoke(app, ["fid", str(tiny_model_dir), "--extractor", "clip"]), "unknown extractor")
    _one_line_error(runner.invoke(app, ["sample", str(tiny_model_dir), "--out", str(tmp_path), "--sampler", "euler"]), "unknown sampler")


def test_sample_and_fid(tiny_model_dir, tmp_path):
    result = runner.invoke(app, ["sample", str(tiny_model_dir), "--out", str(tmp_path / "s"), "--n", "6", "--steps", "3", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "s").iterdir()} == {"samples.npy", "samples.png", "sample.json"}
    result = runner.invoke(app, ["fid", str(tiny_model_dir), "--samples", "40", "--steps", "3", "--bootstrap", "5",
                                 "--json", str(tmp_path / "f.json"), "--threads", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "f.json").read_text())
    assert report["classifier"]["fid"]["num_samples"] == 40 and report["classifier"]["floor"]["fid"] > 0


def test_demo_report(tiny_model_dir, tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out), "--model", str(tiny_model_dir), "--samples", "32", "--steps", "4", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "float classifier-FID of tiny-digits" in result.output
    report = json.loads((out / "report.json").read_text())
    assert {"model", "samples", "steps", "fid_classifier", "fid_floor_classifier", "seconds"} <= set(report)
    assert report["samples"] == 32 and report["steps"] == 4 and report["fid_classifier"] > report["fid_floor_classifier"]
    assert (out / "samples.png").stat().st_size > 0 and "samples.png" in (out / "index.html").read_text()
    assert report["integer_bit_exact"] is True and report["integer_samples"] == 16 and (out / "samples_integer.png").is_file()
    assert report["cost_ii_cycles"] > 0 and (out / "cost.png").is_file()
    cost = json.loads((out / "cost.json").read_text())
    # the calibrated ECP5 model, with rtl/groupnorm narrowed and rtl/swg free of multipliers: the tiny
    # U-Net fits the 85F (before, its 64-bit GroupNorms alone needed more MULT18X18D than the 156)
    assert cost["steps"] == 4 and report["cost_fits"] is cost["fits"] is True
    assert all(cost["resources"][k] <= cost["budget"][k] for k in ("lut", "ff", "mult", "bram")) and cost["budget"]["mult"] == 156
    assert report["sweep_points"] == 4 and "sweep/report.html" in (out / "index.html").read_text()
    assert "<img" in (out / "sweep" / "report.html").read_text()


def test_export_then_sample_and_fid_on_the_simulator(tiny_model_dir, tmp_path):
    (tmp_path / "plan.yaml").write_text("default: {weight_bits: 8, act_bits: 8}\n")
    result = runner.invoke(app, ["export", str(tiny_model_dir), "--plan", str(tmp_path / "plan.yaml"), "--out", str(tmp_path / "q"),
                                 "--calib-samples", "4", "--calib-steps", "5", "--check-steps", "10", "--threads", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "q" / "export.json").read_text())
    assert len(report["bit_exact_checks"]) == 10 and report["check"]["all_equal"] is True
    graph = tmp_path / "q" / "integer.onnx"
    result = runner.invoke(app, ["fid", str(tiny_model_dir), "--backend", "intsim", "--graph", str(graph), "--samples", "20",
                                 "--steps", "3", "--bootstrap", "2", "--json", str(tmp_path / "f.json"), "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "f.json").read_text())["backend"] == "intsim"
    result = runner.invoke(app, ["sim", str(tiny_model_dir), "--graph", str(graph), "--stats", str(tmp_path / "s.json"),
                                 "--samples", "3", "--steps", "2"])
    assert result.exit_code == 0, result.output
    nodes = json.loads((tmp_path / "s.json").read_text())["nodes"]
    assert nodes and all("zero_fraction" in v for v in nodes.values())
    _one_line_error(runner.invoke(app, ["sample", str(tiny_model_dir), "--out", str(tmp_path / "s"), "--backend", "intsim"]),
                    "needs --graph")


def test_quantized_directory_samples_identically_on_torch_and_intsim(tiny_model_dir, tmp_path):
    """The acceptance behind 'FID through the simulator equals FID through the quantized model':
    the same seeds give the same uint8 images, so every metric on them agrees."""
    import numpy as np

    (tmp_path / "plan.yaml").write_text("default: {weight_bits: 4, act_bits: 8}\n")
    q = tmp_path / "q"
    result = runner.invoke(app, ["quantize", str(tiny_model_dir), "--plan", str(tmp_path / "plan.yaml"), "--out", str(q),
                                 "--calib-samples", "4", "--calib-steps", "5", "--check-samples", "2", "--check-steps", "5",
                                 "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert {"quant.json", "calibration.safetensors", "weights.safetensors", "integer.onnx"} <= {p.name for p in q.iterdir()}
    images = {}
    for backend in ("torch", "intsim"):
        result = runner.invoke(app, ["sample", str(q), "--out", str(tmp_path / backend), "--n", "6", "--steps", "4",
                                     "--backend", backend, "--threads", "1"])
        assert result.exit_code == 0, result.output
        images[backend] = np.load(tmp_path / backend / "samples.npy")
    assert np.array_equal(images["torch"], images["intsim"])
    result = runner.invoke(app, ["diagnose", str(q), "--out", str(tmp_path / "d"), "--samples", "2", "--groups", "2",
                                 "--threads", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "d" / "diagnose.json").read_text())
    assert len(report["sqnr_db"]["output"]) == 2 and (tmp_path / "d" / "sqnr.png").is_file()
    assert set(report["layers"]) <= set(report["sqnr_db"]) and report["output_mse"] > 0
    _one_line_error(runner.invoke(app, ["export", str(q), "--plan", str(tmp_path / "plan.yaml"), "--out", str(tmp_path / "e")]),
                    "already quantized")
    _one_line_error(runner.invoke(app, ["export", str(tiny_model_dir), "--out", str(tmp_path / "e")]), "give --plan")


def test_export_rejects_bad_plans(tiny_model_dir, tmp_path):
    (tmp_path / "plan.yaml").write_text("default: {weight_bits: 33}\n")
    _one_line_error(runner.invoke(app, ["export", str(tiny_model_dir), "--plan", str(tmp_path / "plan.yaml"), "--out", str(tmp_path)]),
                    "weight_bits must be an integer in 2..16")


def _bench(model_dir, out, *extra):
    return runner.invoke(app, ["bench", "intsim", "--model", str(model_dir), "--json", str(out), "--batch", "2",
                               "--precision", "W4A8", "--repeats", "1", "--threads", "1", *extra])


def test_bench_intsim_reports_ratios(tiny_model_dir, tmp_path):
    result = _bench(tiny_model_dir, tmp_path / "b.json", "--no-qonnx")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "b.json").read_text())
    row = report["rows"][0]
    assert report["bit_exact"] is True and row["batch"] == 2 and row["precision"] == "W4A8"
    assert report["threads"] == 1  # every row at the requested threads (Numba's OpenMP pool is torch's)
    assert row["intsim_vs_torch_fp32"] > 0 and row["intsim_vs_brevitas"] > 0 and "qonnx_exec_s" not in row
    _one_line_error(runner.invoke(app, ["bench", "intsim", "--model", str(tiny_model_dir), "--json", str(tmp_path / "c.json"),
                                        "--precision", "8bit"]), "not of the form W<bits>A<bits>")


@pytest.mark.slow
def test_bench_intsim_against_qonnx_exec(tiny_model_dir, tmp_path):
    result = _bench(tiny_model_dir, tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b.json").read_text())["rows"][0]["intsim_vs_qonnx_exec"] > 0
