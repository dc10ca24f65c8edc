"""experiments/ptq_table.py's bookkeeping: resumed rows report their whole cost, and a config
change that would make finished rows incomparable is refused (adding a recipe is allowed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def ptq_table(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("ptq_table", ROOT / "experiments/ptq_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "WORK", tmp_path)
    return module


def test_seconds_add_up_over_interrupted_runs(ptq_table, monkeypatch):
    clock = iter([100.0, 130.0, 500.0, 545.0, 545.0])
    monkeypatch.setattr(ptq_table.time, "time", lambda: next(clock))
    with pytest.raises(KeyboardInterrupt):
        with ptq_table.counted_seconds("row"):
            raise KeyboardInterrupt  # the first run is stopped after 30 s
    with ptq_table.counted_seconds("row") as seconds:
        assert seconds() == 75.0  # 30 s before + 45 s now
    assert (ptq_table.WORK / "seconds/row.json").read_text().strip() == '{"seconds": 75.0}'


def test_config_check(ptq_table):
    settings = {"samples": 2000, "recipes": {"naive": {"methods": []}, "ptqd": {"methods": ["ptqd"]}}}
    results = {"config": settings, "rows": [{"method": "naive"}]}
    path = Path("results.json")
    added = {**settings, "recipes": {**settings["recipes"], "new": {"methods": ["adaround"]}}}
    ptq_table.check_config(results, added, path)  # a new recipe: fine
    unused = {**settings, "recipes": {**settings["recipes"], "ptqd": {"methods": []}}}
    ptq_table.check_config(results, unused, path)  # a recipe no finished row used: fine
    used = {**settings, "recipes": {**settings["recipes"], "naive": {"methods": ["split-shortcut"]}}}
    with pytest.raises(SystemExit, match=r"recipes\.naive"):
        ptq_table.check_config(results, used, path)
    with pytest.raises(SystemExit, match="samples"):
        ptq_table.check_config(results, {**settings, "samples": 100}, path)


def test_fidelity_fill(ptq_table, monkeypatch, tmp_path):
    """Rows that have the columns (the paired gap, the last added) or are FP are skipped; a learned
    row whose samples and model are gone is left (remaking it takes hours); samples that do not
    score the row's recorded FID are not the row's and are left; the others get ``fid_to_fp``."""
    cfg = {"samples": 4, "steps": 2, "seed": 0,
           "recipes": {"naive": {"methods": []}, "full": {"methods": ["split-shortcut", "adaround"]}},
           "rows": [{"model": "m", "precision": p, "recipe": r} for p, r in
                    [("W8A8", "naive"), ("W4A8", "naive"), ("W8A8", "full"), ("W4A4", "naive")]]
           + [{"model": "m", "precision": "fp"}]}
    ids = [ptq_table.row_id(r) for r in cfg["rows"]]
    results = {"rows": [{"id": ids[0], "method": "naive", "model": "m", "fid_classifier": 10.0},
                        {"id": ids[1], "method": "naive", "model": "m", "fid_classifier": 20.0},
                        {"id": ids[2], "method": "full", "model": "m", "fid_classifier": 30.0},
                        {"id": ids[3], "method": "naive", "model": "m", "fid_classifier": 40.0, "fid_to_fp": 1.0,
                         "fid_gap_to_fp": 0.5},
                        {"id": ids[4], "method": "fp", "model": "m", "fid_classifier": 5.0}]}
    scored = {ids[0]: 10.0, ids[1]: 21.0, "fp features": 5.0}  # the second row's samples were made again and differ
    made = []
    monkeypatch.setattr(ptq_table, "quantized_dir", lambda row, cfg: (made.append(ptq_table.row_id(row)) or tmp_path, 0.0))
    monkeypatch.setattr(ptq_table, "generate", lambda model_dir, *a, resume_dir, **k: resume_dir.name)
    monkeypatch.setattr(ptq_table, "load_spec", lambda d: type("Spec", (), {"dataset": "digits"}))
    monkeypatch.setattr(ptq_table, "_features", lambda images, dataset: images)
    monkeypatch.setattr(ptq_table, "reference_features", lambda dataset, extractor: None)
    monkeypatch.setattr(ptq_table, "frechet_distance", lambda real, images: scored[images])
    monkeypatch.setattr(ptq_table, "fidelity", lambda images, model, cfg: {"fid_to_fp": 2.5, "fid_to_fp_ci": [2, 3],
                                                                          "fid_gap_to_fp": 1.5})
    monkeypatch.setattr(ptq_table, "fp_samples", lambda model, cfg: (np.array([7.0]), "fp features"))
    monkeypatch.setattr(ptq_table, "write_report", lambda results: None)
    monkeypatch.setattr(ptq_table, "provenance", lambda: {"git": "x"})
    ptq_table.fill_fidelity(results, cfg, tmp_path / "results.json")
    rows = results["rows"]
    assert made == ids[:2]  # the learned row was not remade
    assert rows[0]["fid_to_fp"] == 2.5 and rows[0]["fidelity_provenance"] == {"git": "x"}
    assert "fid_to_fp" not in rows[1] and "fid_to_fp" not in rows[2] and "fid_to_fp" not in rows[4]
    assert rows[3]["fid_to_fp"] == 1.0 and rows[0]["fid_gap_to_fp"] == 1.5
    assert rows[4]["mean_pixel"] == 7.0
    del rows[4]["mean_pixel"]
    scored["fp features"] = 6.0  # FP samples made again that are not the FP row's: nothing can be compared
    with pytest.raises(SystemExit, match="fid_to_fp would compare against other samples"):
        ptq_table.fill_fidelity(results, cfg, tmp_path / "results.json")


def test_asked_for_inception_is_filled_from_kept_samples(ptq_table, monkeypatch, tmp_path):
    """A row whose config asks for Inception-FID after it was made gets it from its kept samples;
    a row without kept samples, or not asking, is left."""
    cfg = {"samples": 4, "steps": 2, "seed": 0, "inception_samples": 2, "recipes": {"naive": {"methods": []}},
           "rows": [{"model": "m", "precision": p, "recipe": "naive", **extra}
                    for p, extra in [("W8A8", {"inception": True}), ("W4A8", {"inception": True}), ("W4A4", {})]]}
    ids = [ptq_table.row_id(r) for r in cfg["rows"]]
    results = {"rows": [{"id": i, "method": "naive", "model": "m", "fid_classifier": 10.0, "fid_to_fp": 1.0,
                         "fid_gap_to_fp": 0.5, "fid_inception": None} for i in ids]}
    for i in (ids[0], ids[2]):
        (tmp_path / "resume" / i).mkdir(parents=True)
    monkeypatch.setattr(ptq_table, "quantized_dir", lambda row, cfg: (tmp_path, 0.0))
    monkeypatch.setattr(ptq_table, "generate", lambda model_dir, *a, resume_dir, **k: resume_dir.name)
    monkeypatch.setattr(ptq_table, "load_spec", lambda d: type("Spec", (), {"dataset": "digits"}))
    monkeypatch.setattr(ptq_table, "_features", lambda images, dataset: images)
    monkeypatch.setattr(ptq_table, "reference_features", lambda dataset, extractor: None)
    monkeypatch.setattr(ptq_table, "frechet_distance", lambda real, images: 10.0)
    monkeypatch.setattr(ptq_table, "inception_fid", lambda images, dataset, cfg: {"fid_inception": 3.0})
    monkeypatch.setattr(ptq_table, "write_report", lambda results: None)
    monkeypatch.setattr(ptq_table, "provenance", lambda: {"git": "x"})
    ptq_table.fill_fidelity(results, cfg, tmp_path / "results.json", only=[ids[1]])
    assert results["rows"][0]["fid_inception"] is None  # not among --only
    ptq_table.fill_fidelity(results, cfg, tmp_path / "results.json")
    rows = results["rows"]
    assert rows[0]["fid_inception"] == 3.0 and rows[0]["inception_provenance"] == {"git": "x"}
    assert rows[1]["fid_inception"] is None and rows[2]["fid_inception"] is None


def test_every_row_of_the_table_resolves_to_a_plan(ptq_table):
    """Shorthand precisions and plan files alike (a typo in either would only surface mid-run)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "experiments/ptq_table.yaml").read_text())
    rows = [r for r in cfg["rows"] if r["precision"] != "fp"]
    plans = {ptq_table.row_id(r): ptq_table.row_plan(r, cfg) for r in rows}
    assert len(plans) == len(rows)  # ids are unique
    mixed = plans["unet-fashion-w8a8n12f8z-i16-unet-tb"]
    assert mixed.first.act_bits == 16 and mixed.default.act_zero_point and mixed.nonlinear_bits == 12


def test_rows_with_learned_rounding_before_the_fix_are_marked(ptq_table):
    """AdaRound/BRECQ rows made before the narrow-range fix are marked in table.md; later ones and
    rows without learned rounding are not."""
    def row(methods, commit):
        return {"methods": {"methods": methods}, "provenance": {"git_commit": commit}}

    before = "3772df9"  # the fix's grandparent
    assert ptq_table.learned_before_fix(row(["split-shortcut", "adaround", "ptqd"], before + "+dirty"))
    assert ptq_table.learned_before_fix(row(["brecq"], before))
    assert not ptq_table.learned_before_fix(row(["adaround"], ptq_table.NARROW_RANGE_FIX))
    assert not ptq_table.learned_before_fix(row(["adaround"], "HEAD"))
    assert not ptq_table.learned_before_fix(row(["split-shortcut", "ptqd"], before))
