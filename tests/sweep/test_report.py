"""Sweep analyses and the report page: exact Pareto fronts (ties, duplicates, missing metrics),
read-only loading that names what is wrong, and the HTML page with its plots on synthetic rows
written the way the sweep writes them (no pipeline run)."""

from __future__ import annotations

import random

import pytest
from typer.testing import CliRunner

from hwsim.cli import app
from hwsim.sweep.analysis import ReportError, label, load_sweep, metric, non_dominated, pareto_front, tidy
from hwsim.sweep.experiment import config_hash
from hwsim.sweep.report import write_markdown, write_report
from hwsim.sweep.runner import ERRORS_FILE, EXPERIMENT_FILE, RESULTS_FILE
from hwsim.sweep.store import ResultStore, atomic_write_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COMMITS = ("1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222+dirty")


def _config(precision: str, target: str = "device", seed: int = 0) -> dict:
    """A point's config as hwsim.sweep.experiment.load_experiment resolves it."""
    w, a = precision[1:].split("A")
    return {"schema": 1, "model": "unet-digits", "model_sha256": "ab" * 32, "method": "naive", "methods": [],
            "calibration": {"samples": 4, "steps": 5, "seed": 1234, "timesteps": "all", "points": 256,
                            "normal_mean": 0.4, "normal_std": 0.4, "observer": "minmax", "percentile": 99.99},
            "precision": precision, "plan": {"default": {"weight_bits": int(w), "act_bits": int(a),
                                                         "weight_granularity": "per_channel", "scale": "po2",
                                                         "group_size": 32}, "first": None, "last": None, "rules": []},
            "sparsity": None, "device": "ecp5-85f", "target": target,
            "cost": {"clock_mhz": 100.0, "asic_tech": "asic45nm", "host_gflops": 1.0, "max_fifo_depth": None},
            "samples": 32, "steps": 5, "seed": seed, "fid": {"extractor": "classifier", "bootstrap": 20},
            "export_check": {"samples": 1, "steps": 5}}


def _row(precision: str, fid, energy, latency, target: str = "device", fits: bool = True, commit: str = COMMITS[0],
         seed: int = 0) -> dict:
    """A result row with the fields hwsim.sweep.point.run_point returns."""
    config = _config(precision, target, seed)
    ci = [None, None] if fid is None else [fid * 0.8, fid * 1.3]
    return {
        "key": config_hash(config), "config": config,
        "fid": fid, "fid_ci": ci, "fid_floor": 3.5, "fid_precision": 0.9, "fid_recall": 0.8, "fid_samples": 32,
        "fits": fits, "cycles_per_step": {"ii": 27648, "latency": 405637, "host_update": 51},
        "cycles_per_image": None if latency is None else int(latency * 1e8),
        "cycles_per_image_pipelined": 138240, "latency_s_per_image": latency,
        "energy_uj_per_image": None if energy is None else {"fpga": energy, "asic45nm": energy / 100},
        "resources": {"lut": 22561, "ff": 16881, "mult": 156, "bram": 205},
        "utilization": {"lut": 0.27, "ff": 0.2, "mult": 1.0, "bram": 0.99}, "onchip_bits": 1759239,
        "folding_missed": [], "macs_per_step": 3119104, "bitops_per_step": 199622656, "offchip_weights": None,
        "activation_sparsity": 0.03, "weight_sparsity": 0.0,
        "seconds": {"quantize": 8.4, "fid": 3.3, "cost": 0.2, "total": 11.9}, "reused": [],
        "provenance": {"git_commit": commit, "versions": {"python": "3.11.7", "hwsim": "0.1.0", "torch": "2.13.0+cpu"},
                       "host": {"machine": "x86_64", "cpus": 2}, "time_utc": "2026-01-01T00:00:00+00:00",
                       "pid": 1, "threads": 1},
    }


def _rows() -> dict[str, dict]:
    """A sweep with a known answer: fronts {w8, w4} (energy) and {w8, w4, w6} (latency); w8s is w8's
    duplicate at another seed (equal metrics: both on the fronts), slow is dominated, big does not fit, nofid
    has no FID."""
    return {
        "w8": _row("W8A8", 10.0, 2000.0, 0.020, commit=COMMITS[0]),
        "w8s": _row("W8A8", 10.0, 2000.0, 0.020, seed=1, commit=COMMITS[1]),
        "w4": _row("W4A8", 30.0, 1000.0, 0.010),
        "w6": _row("W6A8", 20.0, 2500.0, 0.015),
        "slow": _row("W8A8", 10.0, 6000.0, 0.060, target="100000"),
        "big": _row("W8A16", 5.0, 500.0, 0.005, fits=False),
        "nofid": _row("W2A8", None, 300.0, 0.004),
    }


def _write_sweep(d, rows: list[dict], failures: list[dict] = ()) -> None:
    """Rows, errors and experiment.json written as hwsim.sweep.runner.run_sweep writes them."""
    store = ResultStore(d / RESULTS_FILE)
    for r in rows:
        store.append(r)
    errors = ResultStore(d / ERRORS_FILE)
    for f in failures:
        errors.append(f)
    atomic_write_json(d / EXPERIMENT_FILE, {"name": "synthetic", "description": "made by the test", "file": "exp.yaml",
                                            "points": [{"key": r["key"], "config": r["config"]} for r in rows]})


def _brute_front(points):
    return [i for i, p in enumerate(points)
            if not any(all(a <= b for a, b in zip(q, p)) and q != p for q in points)]


def test_non_dominated_known_answer_with_ties_and_duplicates():
    pts = [(1, 5), (1, 5), (2, 3), (2, 4), (3, 3), (4, 1), (5, 1), (5, 5), (5, 5), (0.5, 9), (1, 6)]
    # (1,5) twice: equal, both kept; (2,4) loses to (2,3) on a tie in x, (3,3) on a tie in y; (5,5) twice:
    # dominated duplicates, both out; (1,6) loses to (1,5)
    assert non_dominated(pts) == [0, 1, 2, 5, 9]
    assert non_dominated([]) == [] and non_dominated([(3, 3)]) == [0]


@pytest.mark.parametrize("dims", [2, 3])
def test_non_dominated_equals_definition(dims):
    rng = random.Random(dims)
    for _ in range(200):  # small integer grids: many ties and duplicates
        pts = [tuple(rng.randint(0, 4) for _ in range(dims)) for _ in range(rng.randint(0, 25))]
        assert non_dominated(pts) == _brute_front(pts)


def test_pareto_fronts_of_rows():
    rows = _rows()
    k = {name: r["key"] for name, r in rows.items()}
    energy = pareto_front(list(rows.values()), ("fid", "energy_fpga_uj"))
    assert energy.keys() == {k["w8"], k["w8s"], k["w4"]}
    assert {r["key"] for r in energy.dominated} == {k["w6"], k["slow"]}
    assert {r["key"]: why for r, why in energy.excluded} == {k["big"]: "does not fit ecp5-85f", k["nofid"]: "no fid"}
    assert [metric(r, "fid") for r in energy.front] == [10.0, 10.0, 30.0]  # sorted by the objectives
    latency = pareto_front(list(rows.values()), ("fid", "latency_s"))
    assert latency.keys() == {k["w8"], k["w8s"], k["w4"], k["w6"]}
    # counted when fit does not matter, the design that does not fit dominates all but the faster ones
    assert pareto_front(list(rows.values()), ("fid", "latency_s"), require_fit=False).keys() == {k["big"]}
    no_energy = dict(rows["w4"], energy_uj_per_image=None)
    nan_fid = dict(rows["w6"], fid=float("nan"))
    front = pareto_front([rows["w8"], no_energy, nan_fid])
    assert front.keys() == {k["w8"]}
    assert {r["key"]: why for r, why in front.excluded} == {k["w4"]: "no energy_fpga_uj", k["w6"]: "no fid"}


def test_tidy_table():
    rows = _rows()
    table = tidy([rows["w8"], rows["nofid"]])
    assert [t["key"] for t in table] == [rows["w8"]["key"], rows["nofid"]["key"]]
    t = table[0]
    assert (t["precision"], t["target"], t["seed"], t["fid"], t["fid_ci_low"], t["energy_fpga_uj"], t["latency_s"],
            t["res_lut"], t["util_bram"], t["fits"], t["git_commit"]) == \
        ("W8A8", "device", 0, 10.0, 8.0, 2000.0, 0.02, 22561, 0.99, True, COMMITS[0])
    assert table[1]["fid"] is None and table[1]["fid_ci_high"] is None
    assert label(rows["slow"]) == "unet-digits W8A8 naive ecp5-85f@100000 seed 0"


def test_report_page_and_plots(tmp_path):
    rows = _rows()
    failed = _config("W3A8")
    _write_sweep(tmp_path, list(rows.values()),
                 [{"key": config_hash(failed), "config": failed, "label": "unet-digits W3A8 naive",
                   "error": "RuntimeError: boom <b>", "traceback": "...", "provenance": {}}])
    page = write_report(tmp_path)
    assert page == tmp_path / "report.html"
    text = page.read_text()
    for r in rows.values():
        assert r["key"] in text and f"id='p-{r['key']}'" in text  # in the table and in the provenance
    for commit in COMMITS:
        assert commit in text
    assert "hwsim report " + str(tmp_path) in text and "hwsim sweep exp.yaml --out" in text
    assert "2 git commits" in text and "+dirty" in text
    assert "boom &lt;b&gt;" in text and "<b>boom" not in text  # failures listed, escaped
    assert text.count("<tr class=front>") == 4  # w8, w8s, w4 (both fronts) and w6 (latency)
    pngs = sorted(tmp_path.glob("report-*.png"))
    assert [p.name for p in pngs] == ["report-fid-vs-energy.png", "report-fid-vs-latency.png"]
    for p in pngs:
        assert f"src='{p.name}'" in text  # relative: page and plots move together
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and data[12:16] == b"IHDR" and len(data) > 5000
    import matplotlib.image

    assert matplotlib.image.imread(pngs[0]).shape[2] in (3, 4)  # decodes


def test_markdown_table_of_every_point(tmp_path):
    rows = _rows()
    _write_sweep(tmp_path, list(rows.values()))
    text = write_markdown(tmp_path, tmp_path / "table.md").read_text()
    lines = text.splitlines()
    assert lines[0] == f"<!-- hwsim report {tmp_path} --markdown {tmp_path / 'table.md'} -->"
    head = lines[2]
    # only the config fields that differ between points get a column
    assert head.startswith("| precision | target | seed | FID [95% CI] |") and "| model |" not in head
    body = {line.split("`")[-2]: line for line in lines[4:] if line.startswith("| ")}
    assert set(body) == {r["key"] for r in rows.values()}
    w4 = [c.strip() for c in body[rows["w4"]["key"]].split("|")[1:-1]]
    assert w4[:4] == ["W4A8", "device", "0", "30.0 [24.0, 39.0]"]
    assert w4[4:8] == ["1,000", "10.00", "10.0", "1,000,000"] and "22,561 (27%)" in w4
    assert w4[-4:-1] == ["yes", "*", "*"]  # on both fronts
    big = [c.strip() for c in body[rows["big"]["key"]].split("|")[1:-1]]
    assert big[-4:-1] == ["**no**", "", ""]
    nofid = [c.strip() for c in body[rows["nofid"]["key"]].split("|")[1:-1]]
    assert nofid[3] == "\u2013" and lines.index(body[rows["nofid"]["key"]]) == len(body) + 3  # no FID: last


def test_report_elsewhere_and_torn_last_line(tmp_path):
    rows = _rows()
    _write_sweep(tmp_path, [rows["w8"], rows["w4"]])
    with open(tmp_path / RESULTS_FILE, "ab") as f:
        f.write(ResultStore.encode(rows["w6"])[1][:40])  # an append in progress
    before = (tmp_path / RESULTS_FILE).read_bytes()
    page = write_report(tmp_path, tmp_path / "out" / "page.html")
    assert (tmp_path / RESULTS_FILE).read_bytes() == before  # read-only: the running sweep owns the file
    assert page.is_file() and (tmp_path / "out" / "page-fid-vs-energy.png").is_file()
    text = page.read_text()
    assert "no newline" in text and rows["w6"]["key"] not in text and "--out" in text


def _damage(tmp_path, index: int, new: bytes) -> None:
    path = tmp_path / RESULTS_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    lines[index] = new
    path.write_bytes(b"".join(lines))


def test_bad_sweep_directories(tmp_path):
    with pytest.raises(ReportError, match="no such sweep directory"):
        load_sweep(tmp_path / "missing")
    with pytest.raises(ReportError, match=f"{RESULTS_FILE}: no results file"):
        load_sweep(tmp_path)
    (tmp_path / RESULTS_FILE).write_text("")
    with pytest.raises(ReportError, match=f"{RESULTS_FILE}: no result rows"):
        load_sweep(tmp_path)

    rows = _rows()
    _write_sweep(tmp_path, [rows["w8"], rows["w4"], rows["w6"]])
    good = (tmp_path / RESULTS_FILE).read_bytes().splitlines(keepends=True)
    _damage(tmp_path, 1, good[1].replace(b'"fid": 30.0', b'"fid": 3.0'))  # hand-edited: checksum fails
    with pytest.raises(ReportError, match=rf"{RESULTS_FILE}:2: damaged line: its checksum does not match"):
        load_sweep(tmp_path)
    sweep = load_sweep(tmp_path, skip_damaged=True)
    assert [r["key"] for r in sweep.rows] == [rows["w8"]["key"], rows["w6"]["key"]]
    assert any(":2: damaged line" in s for s in sweep.skipped)
    _damage(tmp_path, 1, b"\x00\x00{not json\n")
    with pytest.raises(ReportError, match=rf"{RESULTS_FILE}:2: damaged line: not JSON"):
        load_sweep(tmp_path)

    malformed = [  # checksummed, so the sweep accepts them, but not result rows
        (dict(rows["w4"], config="W4A8"), "no 'config' object"),
        (dict(rows["w4"], fid="12.5"), "'fid' is '12.5', not a number"),
        (dict(rows["w4"], fid_ci=[1.0]), "'fid_ci'"),
        (dict(rows["w4"], key="0123456789abcdef"), "not the hash of its config"),
        ({k: v for k, v in rows["w4"].items() if k != "provenance"}, "git_commit"),
        (dict(rows["w4"], config={k: v for k, v in rows["w4"]["config"].items() if k != "device"}), "lacks device"),
    ]
    for row, phrase in malformed:
        _damage(tmp_path, 1, ResultStore.encode(row)[1])
        with pytest.raises(ReportError, match=rf"{RESULTS_FILE}:2: malformed result row: .*{phrase}"):
            load_sweep(tmp_path, skip_damaged=True)

    _damage(tmp_path, 1, good[0])  # the same point twice: the first row counts, as in ResultStore
    sweep = load_sweep(tmp_path)
    assert len(sweep.rows) == 2 and any("second row" in s for s in sweep.skipped)


runner = CliRunner()


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_cli(tmp_path):
    assert "Usage" in runner.invoke(app, ["report", "--help"]).output
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(runner.invoke(app, ["report", str(empty)]), str(empty / RESULTS_FILE), "no results file")
    (empty / RESULTS_FILE).write_text("")
    _one_line_error(runner.invoke(app, ["report", str(empty)]), "no result rows")
    _one_line_error(runner.invoke(app, ["report", str(tmp_path / "nope")]), "no such sweep directory")
    sweep = tmp_path / "sweep"
    rows = _rows()
    _write_sweep(sweep, [rows["w8"], rows["w4"]])
    with open(sweep / RESULTS_FILE, "ab") as f:
        f.write(b'{"key": "x"}\n')
    _one_line_error(runner.invoke(app, ["report", str(sweep)]), f"{RESULTS_FILE}:3", "checksum")
    result = runner.invoke(app, ["report", str(sweep), "--out", str(tmp_path / "r.html"), "--skip-damaged",
                                 "--markdown", str(tmp_path / "t.md")])
    assert result.exit_code == 0, result.output
    assert rows["w4"]["key"] in (tmp_path / "t.md").read_text()
    text = (tmp_path / "r.html").read_text()
    assert "--skip-damaged" in text and ":3: damaged line" in text and rows["w4"]["key"] in text
    assert not (sweep / "report.html").exists()
    _one_line_error(runner.invoke(app, ["report", str(sweep), "--out", str(tmp_path), "--skip-damaged"]),
                    "is a directory")


def test_paired_fid_matches_the_rows_and_pairs_a_point_with_itself_exactly(smoke_run):
    from hwsim.sweep.analysis import paired_fid

    out, rows = smoke_run
    a, b = (next(r for r in rows if r["config"]["precision"] == p) for p in ("W8A8", "W4A8"))
    result = paired_fid(out / "work", {"a": a["config"], "b": b["config"]}, [("a", "b"), ("a", "a")], n_boot=20)
    diff = result["differences"]
    assert diff["a - b"]["diff"] == pytest.approx(a["fid"] - b["fid"], rel=1e-9, abs=1e-9)
    assert diff["a - b"]["ci_low"] <= diff["a - b"]["diff"] <= diff["a - b"]["ci_high"]
    assert diff["a - a"] == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_boot_le_0": 1.0}
