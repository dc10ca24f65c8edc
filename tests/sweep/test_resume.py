"""Acceptance of issue 8: a sweep of the real unet-digits pipeline (experiments/sweeps/smoke.yaml:
quantize, export and check bit-exact, FID through the integer simulator, map and cost), killed
with SIGKILL at random moments, including in the middle of writing a row, and rerun each time
until it finishes, ends with the same rows, as a set keyed by config hash, as an uninterrupted
run; and a local Ray cluster computes the same rows.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from hwsim.sweep import ResultStore, run_sweep
from hwsim.sweep.point import TRACE_ENV
from hwsim.sweep.store import SLOW_WRITE_ENV
from tests.sweep.conftest import SMOKE, by_key

# Kills in order, each at a random moment after the child announces it: "quantize" (quantization
# and export of a point's model, ~2-3 s), "sample" (sampling through the simulator, FID), "cost"
# (mapping and cost, then the write and the next point), "write" (inside the append of a row: the
# writer is slowed to 1 ms per byte there, so a row takes ~2-3 s). A stage already cached by an
# earlier run is not announced, and a run that finishes before its moment is not killed.
KILLS = ("quantize", "write", "sample", "write", "cost", "write")
DELAY = {"quantize": 2.0, "sample": 1.0, "cost": 1.0, "write": 1.5}  # kill within this many seconds
SEED = 8  # of the kill moments


class _Lines:
    """The child's stdout, read on a thread, so the test can wait for a line with a timeout."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc):
        for line in proc.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, prefix: str, proc: subprocess.Popen, timeout: float) -> bool:
        deadline = time.time() + timeout
        with self.cond:
            while not any(line.startswith(prefix) for line in self.lines):
                if proc.poll() is not None or time.time() > deadline:
                    return False
                self.cond.wait(0.05)
        return True


def _kill_tree(proc: subprocess.Popen) -> list[int]:
    """SIGKILL the sweep process alone (its pool worker must die with it); the worker pids."""
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    proc.kill()
    proc.wait()
    return children


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_sigkill_at_random_moments_then_resume(tmp_path, smoke_reference):
    out = tmp_path / "out"
    results = out / "results.jsonl"
    rng = random.Random(SEED)
    cmd = [sys.executable, "-m", "hwsim.sweep", str(SMOKE), "--out", str(out), "--workers", "1", "--threads", "1",
           "--no-progress"]
    log = open(tmp_path / "stderr.log", "ab")
    kills, torn, orphans = [], 0, []
    for attempt in range(len(KILLS) + 1):
        mode = KILLS[attempt] if attempt < len(KILLS) else None
        # each traced stage lasts at least 0.6 s: the kill (within DELAY) lands in it or in the next one,
        # not after a fast machine has finished the sweep
        env = {**os.environ, SLOW_WRITE_ENV: "0.001" if mode == "write" else "0", TRACE_ENV: "0.6"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        lines = _Lines(proc)
        try:
            if mode is None:
                assert proc.wait(timeout=300) == 0, (tmp_path / "stderr.log").read_text()[-3000:]
                break
            # the estimate line: the file was checked and the sweep holds its output directory
            assert lines.wait_for("sweep smoke:", proc, 120), (tmp_path / "stderr.log").read_text()[-3000:]
            marker = "sweep: writing" if mode == "write" else f"sweep: stage {mode}"
            if not lines.wait_for(marker, proc, 180):
                continue  # finished before reaching that stage
            time.sleep(rng.uniform(0.0, DELAY[mode]))
            if proc.poll() is not None:
                continue
            workers = _kill_tree(proc)
            data = results.read_bytes() if results.exists() else b""
            kills.append((mode, data.count(b"\n")))
            torn += bool(data) and not data.endswith(b"\n")
            deadline = time.time() + 10
            while _alive(workers) and time.time() < deadline:
                time.sleep(0.1)
            orphans += _alive(workers)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # nothing of this run may outlive the test
            except ProcessLookupError:
                pass
            proc.wait()
    else:
        pytest.fail("the sweep did not finish after the kills")
    log.close()

    print("kills (stage, complete lines in results.jsonl after the kill):", kills, "torn:", torn)
    assert len(kills) >= 4, kills
    assert torn >= 1, f"no kill landed inside a row's write: {kills}"
    assert not orphans, f"pool workers outlived their killed sweep: {orphans}"
    store = ResultStore(results)
    assert store.torn_bytes == 0 and store.bad_lines == 0
    lines = results.read_bytes().splitlines()
    assert len(lines) == len(smoke_reference), "a row was duplicated or lost"
    assert by_key(list(store.rows.values())) == smoke_reference
    # a rerun of a finished sweep computes nothing and returns the same rows
    rows = run_sweep(SMOKE, out, workers=0, threads=1, progress=False)
    assert by_key(rows) == smoke_reference and results.read_bytes().count(b"\n") == len(lines)


def test_ray_local_cluster_same_rows(tmp_path, smoke_reference):
    ray = pytest.importorskip("ray", reason="Ray is the optional extra hwsim[ray]")
    assert not ray.is_initialized()
    rows = run_sweep(SMOKE, tmp_path / "ray", workers=2, ray=True, threads=1, progress=False)
    assert not ray.is_initialized()  # the local cluster it started is shut down
    assert by_key(rows) == smoke_reference
    pids = {r["provenance"]["pid"] for r in rows}
    assert os.getpid() not in pids  # computed on Ray workers, not in this process
