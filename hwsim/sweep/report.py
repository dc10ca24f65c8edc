"""``hwsim report DIR``: one HTML page on a sweep's results, for reading a sweep without code.

The page (``DIR/report.html`` by default) shows the Pareto fronts of FID against energy and
against latency per image as PNG plots beside it (FID with its 95% bootstrap interval as error
bars), a table of every point, the failed points, and each point's provenance (full config,
seeds, tool versions, git commit). It is plain HTML made with the standard library, with no
scripts or external styles: it opens anywhere, and the PNGs are linked by relative paths, so the
page and its plots can be moved together.
"""

from __future__ import annotations

import datetime
import html
import json
import shlex
from pathlib import Path

from hwsim.sweep.analysis import (CONFIG_FIELDS, FRONTS, METRICS, Front, ReportError, Sweep, label, load_sweep,
                                  metric, pareto_front, tidy)
from hwsim.sweep.runner import RESULTS_FILE
from hwsim.sweep.store import atomic_write_text

PLOT_NAMES = {"energy_fpga_uj": "energy", "latency_s": "latency"}  # file name part of each front's plot
CSS = ("body{font-family:sans-serif;margin:2em;max-width:110em}table{border-collapse:collapse;font-size:90%}"
       "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}td.l,th.l{text-align:left}"
       "tr.front td{background:#fff3f0}code,pre{font-size:90%}pre{background:#f6f6f6;padding:.5em;overflow-x:auto}"
       ".warn{color:#a40}details{margin:.3em 0}summary{cursor:pointer}")


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _plain(v, fmt: str = ".4g") -> str:
    return format(v, fmt) if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)


def _num(v, fmt: str = ".4g") -> str:
    return "&ndash;" if v is None else _e(_plain(v, fmt))


def _fid_text(t: dict) -> str:
    if t["fid"] is None:
        return "&ndash;"
    ci = "" if t["fid_ci_low"] is None or t["fid_ci_high"] is None else \
        f" [{t['fid_ci_low']:.4g}, {t['fid_ci_high']:.4g}]"
    return _e(f"{t['fid']:.4g}{ci}")


def plot_front(front: Front, rows: list[dict], out_png: Path) -> Path:
    """FID (bootstrap interval as error bars) against the front's cost metric: the front in red and
    joined by its staircase, dominated points grey, points excluded for not fitting hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_name, x_name = front.objectives
    on, dominated = front.keys(), {r["key"] for r in front.dominated}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = [("on the Pareto front", lambda k: k in on, dict(color="tab:red", zorder=3)),
              ("dominated", lambda k: k in dominated, dict(color="0.55", zorder=2)),
              ("left out: does not fit its device", lambda k: k not in on and k not in dominated,
               dict(color="0.55", mfc="none", zorder=1))]
    xs_all = []
    for name, member, style in groups:
        pts = [r for r in rows if member(r["key"]) and metric(r, x_name) is not None and metric(r, y_name) is not None]
        if not pts:
            continue
        xs, ys = [metric(r, x_name) for r in pts], [metric(r, y_name) for r in pts]
        xs_all += xs
        err = [[], []]
        for r, y in zip(pts, ys):
            ci = (r.get("fid_ci") or [None, None]) if y_name == "fid" else [None, None]
            err[0].append(max(0.0, y - ci[0]) if ci[0] is not None else 0.0)
            err[1].append(max(0.0, ci[1] - y) if ci[1] is not None else 0.0)
        ax.errorbar(xs, ys, yerr=err, fmt="o", ms=6, capsize=3, elinewidth=1, label=name, **style)
    if front.front:
        stair = sorted((metric(r, x_name), metric(r, y_name)) for r in front.front)
        ax.step([p[0] for p in stair], [p[1] for p in stair], where="post", color="tab:red", lw=1, alpha=0.6)
    shown = [r for r in rows if metric(r, x_name) is not None and metric(r, y_name) is not None]
    if len(shown) <= 12:  # few points: name them all
        for r in shown:
            c = r["config"]
            ax.annotate(f"{c['precision']} {c['method']} @{c['target']}", (metric(r, x_name), metric(r, y_name)),
                        textcoords="offset points", xytext=(6, 4), fontsize=7,
                        color="tab:red" if r["key"] in on else "0.4")
    floors = {r.get("fid_floor") for r in shown}
    if y_name == "fid" and len(floors) == 1 and None not in floors:  # one data floor: the FID of real images
        ax.axhline(floors.pop(), color="tab:blue", ls="--", lw=1, label="data floor (real images, same count)")
    if xs_all and min(xs_all) > 0 and max(xs_all) / min(xs_all) > 20:
        ax.set_xscale("log")
    ax.margins(x=0.12)  # room for the names of the outermost points
    ax.set_xlabel(METRICS[x_name][0])
    ax.set_ylabel(METRICS[y_name][0] + (" (95% bootstrap interval)" if y_name == "fid" else ""))
    ax.set_title(f"{METRICS[y_name][0]} vs {METRICS[x_name][0]}: {len(front.front)} of "
                 f"{len(front.front) + len(front.dominated)} points on the front", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def _resource_keys(table: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for t in table for k in t if k.startswith("res_")))  # lut, ff, mult, bram


def _by_fid(table: list[dict]) -> list[dict]:
    """Points by FID (those without one last), then FPGA energy: the order of both tables."""
    return sorted(table, key=lambda t: (t["fid"] is None, t["fid"] or 0.0, t["energy_fpga_uj"] or 0.0))


def _points_table(table: list[dict], fronts: list[Front]) -> str:
    res_keys = _resource_keys(table)
    head = ["point", *CONFIG_FIELDS, "FID [95% CI]", "data floor", "cycles / image", "latency / image [ms]",
            "energy FPGA [uJ]", "energy ASIC [uJ]", *(k[4:] for k in res_keys), "fits",
            *(f"front {PLOT_NAMES.get(f.objectives[1], f.objectives[1])}" for f in fronts), "git commit"]
    left = {0, *range(1, len(CONFIG_FIELDS) + 1), len(head) - 1}
    out = ["<table><tr>" + "".join(f"<th{' class=l' if i in left else ''}>{_e(h)}</th>" for i, h in enumerate(head))
           + "</tr>"]
    order = _by_fid(table)
    for t in order:
        marks = ["&#9733;" if t["key"] in f.keys() else "" for f in fronts]
        util = {k: t.get("util_" + k[4:]) for k in res_keys}
        cells = [f"<a href='#p-{_e(t['key'])}'><code>{_e(t['key'])}</code></a>",
                 *(_e("none" if t[f] is None else t[f]) for f in CONFIG_FIELDS),
                 _fid_text(t), _num(t["fid_floor"]), _num(t["cycles_per_image"]),
                 _num(None if t["latency_s"] is None else t["latency_s"] * 1e3), _num(t["energy_fpga_uj"]),
                 _num(t["energy_asic_uj"]),
                 *(_num(t[k]) + ("" if util[k] is None else f" ({util[k]:.0%})") for k in res_keys),
                 "&ndash;" if t["fits"] is None else "yes" if t["fits"] else "<b>no</b>",
                 *marks, f"<code>{_e(t['git_commit'])}</code>"]
        cls = " class=front" if any(marks) else ""
        out.append(f"<tr{cls}>" + "".join(f"<td{' class=l' if i in left else ''}>{c}</td>" for i, c in enumerate(cells))
                   + "</tr>")
    return "\n".join(out) + "</table>"


def _front_section(front: Front, png: str) -> str:
    y_name, x_name = front.objectives
    rows = "".join(f"<tr><td class=l><a href='#p-{_e(r['key'])}'><code>{_e(r['key'])}</code></a></td>"
                   f"<td class=l>{_e(label(r))}</td><td>{_fid_text(tidy([r])[0])}</td>"
                   f"<td>{_num(metric(r, x_name))}</td></tr>" for r in front.front)
    excluded = "".join(f"<li><code>{_e(r['key'])}</code> {_e(label(r))}: {_e(why)}</li>" for r, why in front.excluded)
    return (f"<h3>{_e(METRICS[y_name][0])} vs {_e(METRICS[x_name][0])}</h3>"
            f"<p><img src='{_e(png)}' alt='{_e(METRICS[y_name][0])} vs {_e(METRICS[x_name][0])}'></p>"
            f"<p>{len(front.front)} point(s) on the front (both minimized; no other point is as good in both and "
            f"better in one), {len(front.dominated)} dominated.</p>"
            + (f"<table><tr><th class=l>point</th><th class=l>config</th><th>FID [95% CI]</th>"
               f"<th>{_e(METRICS[x_name][0])}</th></tr>{rows}</table>"
               if rows else "<p class=warn>No point qualifies.</p>")
            + (f"<p>Left out of this front ({len(front.excluded)}):</p><ul>{excluded}</ul>" if excluded else ""))


def _provenance(row: dict) -> str:
    prov, c = row.get("provenance") or {}, row["config"]
    seeds = {"samples and bootstrap": c.get("seed"), "calibration": (c.get("calibration") or {}).get("seed")}
    items = [("git commit", f"<code>{_e(prov.get('git_commit'))}</code>"),
             ("seeds", _e(", ".join(f"{k} {v}" for k, v in seeds.items()))),
             ("tool versions", _e(", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items()))),
             ("host", _e(json.dumps(prov.get("host")))), ("finished (UTC)", _e(prov.get("time_utc"))),
             ("threads", _e(prov.get("threads"))), ("seconds", _e(json.dumps(row.get("seconds")))),
             ("stages reused", _e(", ".join(row.get("reused") or []) or "none"))]
    return (f"<details id='p-{_e(row['key'])}'><summary><code>{_e(row['key'])}</code> {_e(label(row))}</summary>"
            "<table>" + "".join(f"<tr><td class=l>{k}</td><td class=l>{v}</td></tr>" for k, v in items) + "</table>"
            "<p>config (the key is the first 16 hex digits of the sha256 of its canonical JSON):</p>"
            f"<pre>{html.escape(json.dumps(c, indent=1, sort_keys=True), quote=False)}</pre></details>")


def _header(sweep: Sweep, command: str) -> str:
    from hwsim.provenance import git_commit

    exp = sweep.experiment or {}
    name = exp.get("name") or sweep.dir.resolve().name
    total = len(exp.get("points") or []) or None
    made = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    sweep_cmd = shlex.join(["hwsim", "sweep", str(exp["file"]), "--out", str(sweep.dir)]) if exp.get("file") else None
    commits = sorted({(r.get("provenance") or {}).get("git_commit") for r in sweep.rows})
    notes = [f"<li class=warn>{_e(s)}</li>" for s in sweep.skipped]
    if len(commits) > 1:
        notes.append(f"<li class=warn>the rows come from {len(commits)} git commits: {_e(', '.join(commits))}</li>")
    if any(c.endswith("+dirty") for c in commits):
        notes.append("<li class=warn>some rows were made from a checkout with uncommitted changes (+dirty)</li>")
    return (f"<h1>Sweep report: {_e(name)}</h1>"
            + (f"<p>{_e(exp['description'])}</p>" if exp.get("description") else "")
            + f"<p>{len(sweep.rows)} point(s) with results" + (f" of the experiment's {total}" if total else "")
            + (f", {len(sweep.failures)} failed" if sweep.failures else "")
            + f", from <code>{_e(sweep.dir / RESULTS_FILE)}</code>.</p>"
            + f"<p>This page was made by <code>{_e(command)}</code> on {_e(made)} (hwsim at {_e(git_commit())})"
            + (f"; the rows by <code>{_e(sweep_cmd)}</code>" if sweep_cmd else "")
            + ". docs/sweeps.md describes the rows; <code>hwsim.sweep.analysis</code> loads them in Python.</p>"
            + (f"<ul>{''.join(notes)}</ul>" if notes else ""))


def write_report(sweep_dir: str | Path, out_html: str | Path | None = None, skip_damaged: bool = False,
                 command: str | None = None) -> Path:
    """Write the report page of a sweep directory (``sweep_dir/report.html`` unless ``out_html``)
    and its PNG plots beside it; returns the page's path. Raises
    :class:`~hwsim.sweep.analysis.ReportError` for a directory without usable rows."""
    sweep = load_sweep(sweep_dir, skip_damaged)
    if command is None:
        command = shlex.join(["hwsim", "report", str(sweep_dir)] + (["--out", str(out_html)] if out_html else [])
                             + (["--skip-damaged"] if skip_damaged else []))
    out_html = Path(out_html) if out_html is not None else sweep.dir / "report.html"
    if out_html.is_dir():
        raise ReportError(f"{out_html}: is a directory; --out takes the HTML file to write")
    out_html.parent.mkdir(parents=True, exist_ok=True)
    fronts, sections = [], []
    for objectives in FRONTS:
        front = pareto_front(sweep.rows, objectives)
        png = out_html.with_name(f"{out_html.stem}-fid-vs-{PLOT_NAMES.get(objectives[1], objectives[1])}.png")
        plot_front(front, sweep.rows, png)
        fronts.append(front)
        sections.append(_front_section(front, png.name))
    failed = "".join(f"<li><code>{_e(f['key'])}</code> {_e(f.get('label', ''))}: {_e(f.get('error', ''))}</li>"
                     for f in sweep.failures)
    page = ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>sweep report: {_e((sweep.experiment or {}).get('name') or sweep.dir.name)}</title>"
            f"<style>{CSS}</style></head><body>"
            + _header(sweep, command)
            + "<h2>Pareto fronts</h2><p>Only designs that fit their device compete. The FID error bars are 95% "
              "bootstrap intervals: where two points' intervals overlap, the samples do not tell them apart.</p>"
            + "".join(sections)
            + "<h2>All points</h2><p>Sorted by FID; &#9733; marks a point on a front; a point's key links to "
              "its provenance (below). Resources are the folded design's, with the share of the device in brackets.</p>"
            + _points_table(tidy(sweep.rows), fronts)
            + (f"<h2>Failed points</h2><p>No row; their tracebacks are in <code>errors.jsonl</code>, and rerunning "
               f"the sweep tries them again.</p><ul>{failed}</ul>" if failed else "")
            + "<h2>Provenance</h2>" + "".join(_provenance(r) for r in sweep.rows)
            + "</body></html>\n")
    return atomic_write_text(out_html, page)


def write_markdown(sweep_dir: str | Path, out_md: str | Path, skip_damaged: bool = False) -> Path:
    """A markdown table of every point (the config fields that differ between points, FID with its
    interval, energies, latency, cycles, resources with the device share, fit, Pareto fronts), sorted
    as the HTML page's, with the command that wrote it: what results READMEs quote, so that their
    numbers come from a command."""
    sweep = load_sweep(sweep_dir, skip_damaged)
    table = tidy(sweep.rows)
    fronts = [pareto_front(sweep.rows, objectives) for objectives in FRONTS]
    varying = [f for f in CONFIG_FIELDS if len({json.dumps(t[f]) for t in table}) > 1] or ["precision"]
    res_keys = _resource_keys(table)
    head = [*varying, "FID [95% CI]", "energy FPGA uJ", "energy ASIC uJ", "latency ms", "cycles / image",
            *(k[4:] for k in res_keys), "fits", *(f"front {PLOT_NAMES.get(f.objectives[1], f.objectives[1])}"
                                                    for f in fronts), "key"]
    lines = [f"<!-- {shlex.join(['hwsim', 'report', str(sweep_dir), '--markdown', str(out_md)])} -->", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" if i < len(varying) else "---:"
                                                         for i in range(len(head))) + "|"]
    dash = "\u2013"
    for t in _by_fid(table):
        ci = "" if t["fid_ci_low"] is None else f" [{t['fid_ci_low']:.1f}, {t['fid_ci_high']:.1f}]"
        fid = dash if t["fid"] is None else f"{t['fid']:.1f}{ci}"
        res = [dash if t[k] is None else _plain(t[k]) + ("" if t.get("util_" + k[4:]) is None
                                                         else f" ({t['util_' + k[4:]]:.0%})") for k in res_keys]
        cells = [*("none" if t[f] is None else Path(t[f]).name if str(t[f]).endswith(".yaml") else str(t[f])
                   for f in varying), fid,
                 *(dash if t[m] is None else f"{t[m]:{fmt}}" for m, fmt in
                   (("energy_fpga_uj", ",.0f"), ("energy_asic_uj", ".2f"))),
                 dash if t["latency_s"] is None else f"{t['latency_s'] * 1e3:.1f}",
                 dash if t["cycles_per_image"] is None else f"{t['cycles_per_image']:,.0f}", *res,
                 dash if t["fits"] is None else "yes" if t["fits"] else "**no**",
                 *("*" if t["key"] in f.keys() else "" for f in fronts), f"`{t['key']}`"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "Fronts (*): Pareto-optimal in FID and the named cost among the designs that fit their device."]
    return atomic_write_text(Path(out_md), "\n".join(lines) + "\n")
