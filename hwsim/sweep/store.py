"""Crash-safe files of a sweep: the append-only results file, atomic file and directory writes,
and the lock that makes one sweep process the only writer of an output directory.

``results.jsonl`` holds one row per line. Each row carries ``checksum``, a hash of the rest of
the row, and a line only counts once its newline is written, so:

- a SIGKILL during an append leaves at most a torn last line without its newline: on reload it
  is cut off (the file is truncated to its last newline) before anything is appended again;
- a line whose bytes were damaged (a crash of the machine rather than of the process) fails its
  checksum and is ignored; its point counts as not done and is run again.

Every append is one ``write`` on an ``O_APPEND`` descriptor followed by ``fsync``; files that are
replaced whole (caches, summaries) go through a temporary file, ``fsync`` and ``os.replace``.

Test hook: ``HWSIM_SWEEP_SLOW_WRITE=SECONDS`` writes rows one byte at a time, sleeping SECONDS
after each, and prints ``sweep: writing KEY`` first, so a test can kill the process mid-write.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

from hwsim.sweep.experiment import canonical

SLOW_WRITE_ENV = "HWSIM_SWEEP_SLOW_WRITE"
VOLATILE = ("seconds", "reused", "provenance", "checksum")  # differ between runs of the same point


class SweepError(RuntimeError):
    """A sweep cannot start (locked output) or some of its points failed."""


def finite(obj):
    """The JSON-ready copy of ``obj`` with NaN and infinities as None (strict JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def checksum(row: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in row.items() if k != "checksum"}).encode()).hexdigest()[:16]


def stable(row: dict) -> dict:
    """A row without the fields that differ between two runs of the same point (times, provenance)."""
    return {k: v for k, v in row.items() if k not in VOLATILE}


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``path`` whole or not at all: temporary file, fsync, rename over, fsync the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(finite(obj), indent=1, allow_nan=False) + "\n")


def publish_dir(tmp: Path, final: Path) -> Path:
    """Make the finished directory ``tmp`` appear as ``final`` in one rename (after fsyncing its
    files). If another process published ``final`` first, keep theirs: both were made by the same
    deterministic recipe."""
    for root, _, files in os.walk(tmp):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    fsync_dir(final.parent)
    return final


def temp_dir(final: Path) -> Path:
    """A fresh sibling of ``final`` to build it in (``.tmp-`` prefix: swept away on the next start)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}-{time.monotonic_ns()}")
    tmp.mkdir()
    return tmp


def sweep_temporaries(root: Path) -> int:
    """Remove the ``.tmp-*`` directories and ``.*.tmp`` files that killed runs left under ``root``.
    Only call it while holding the output's lock, before any worker starts."""
    removed = 0
    if not root.is_dir():
        return 0
    for p in list(root.rglob(".tmp-*")) + list(root.rglob(".*.tmp")):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed += 1
    return removed


@contextlib.contextmanager
def key_lock(path: Path):
    """An exclusive, blocking flock on ``path`` while a stage is made, so two workers that need the
    same stage make it once (the second waits, then finds it). The kernel drops the lock when its
    holder dies, SIGKILL included: a killed run leaves no stale lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class OutputLock:
    """An exclusive flock on ``DIR/.lock`` for the life of a sweep: two sweeps never write one directory."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise SweepError(f"{self.path.parent}: another sweep is running in this directory") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class ResultStore:
    """An append-only JSONL file of rows keyed by ``row["key"]`` (module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: dict[str, dict] = {}
        self.torn_bytes = 0  # cut from the end on load: an interrupted append
        self.bad_lines = 0  # complete lines that are not a valid row (ignored)
        self._load()

    def _load(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self.torn_bytes = len(data) - end
            with open(self.path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        for line in data[:end].splitlines():
            row = self.parse(line)
            if row is None:
                self.bad_lines += 1
            else:
                self.rows.setdefault(row["key"], row)

    @staticmethod
    def parse(line: bytes) -> dict | None:
        try:
            row = json.loads(line)
        except ValueError:
            return None
        if not isinstance(row, dict) or not isinstance(row.get("key"), str) or row.get("checksum") != checksum(row):
            return None
        return row

    @staticmethod
    def encode(row: dict) -> tuple[dict, bytes]:
        row = json.loads(json.dumps(finite(row), allow_nan=False))  # exactly what a reload will see
        row["checksum"] = checksum(row)
        return row, (json.dumps(row, allow_nan=False) + "\n").encode()

    def append(self, row: dict) -> dict:
        row, line = self.encode(row)
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        slow = float(os.environ.get(SLOW_WRITE_ENV, "0") or 0)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if slow > 0:
                print(f"sweep: writing {row['key']}", flush=True)
                for i in range(len(line)):
                    os.write(fd, line[i : i + 1])
                    time.sleep(slow)
            else:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(self.path.parent)
        if slow > 0:
            print(f"sweep: wrote {row['key']}", flush=True)
        self.rows[row["key"]] = row
        return row


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
