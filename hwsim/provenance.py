"""Provenance stamped into every result file: git commit, tool versions, host, time."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import platform
import subprocess
from pathlib import Path

PACKAGES = ("hwsim", "torch", "numpy", "brevitas", "qonnx", "numba", "onnx", "torchmetrics", "safetensors")
REPO_ROOT = Path(__file__).resolve().parent.parent


# Committed experiment outputs: a long run rewrites its own results file after every finished row,
# which must not mark the rows after the first as made from an uncommitted tree.
OUTPUTS = "experiments/results"


def git_commit(root: Path = REPO_ROOT) -> str:
    """HEAD of the checkout hwsim runs from, with '+dirty' if tracked files other than the
    committed experiment outputs (``OUTPUTS``) have changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", f":(exclude){OUTPUTS}"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def package_versions(names) -> dict[str, str]:
    """Installed version of each distribution in ``names`` ("not installed" if absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def tool_versions() -> dict[str, str]:
    return {"python": platform.python_version(), **package_versions(PACKAGES)}


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; else platform's guess): timings and the int8
    kernels the simulator picks (AMX, VNNI) depend on it, and machines change between runs."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def provenance() -> dict[str, object]:
    return {
        "git_commit": git_commit(),
        "versions": tool_versions(),
        "host": {"machine": platform.machine(), "cpu": cpu_model(), "cpus": __import__("os").cpu_count()},
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def file_sha256(path: str | Path) -> str:
    """Content hash of a file (weights, graphs), so results name exactly what produced them."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
