"""Resumable batch jobs: every finished batch is written at once, so an interrupted run loses
at most the batch in flight. The job's key (its config) is stored beside the batches, and a
resume with a different key is refused rather than mixing results of two configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

KEY_FILE = "job.json"
# sampling jobs keyed their model by its absolute path (and hashes of its weights, ranges and graph)
# until they were keyed by content alone; such a stored key is compared on its other fields, so that
# those batches stay usable where the directory was copied or moved
LEGACY_KEYS = ("model",)


class ResumeMismatch(ValueError):
    """A resume directory holds batches of a different job."""


class BatchStore:
    def __init__(self, directory: str | Path, key: dict):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        key = json.loads(json.dumps(key))  # normalize tuples and numbers as JSON sees them
        key_path = self.dir / KEY_FILE
        if key_path.is_file():
            stored = json.loads(key_path.read_text())
            fields = set(stored) | set(key)
            if any(k in stored and k not in key for k in LEGACY_KEYS):  # an earlier version's key
                fields = set(stored) - set(LEGACY_KEYS)
            diff = sorted(k for k in fields if stored.get(k) != key.get(k))
            if diff:
                raise ResumeMismatch(f"{self.dir}: holds batches of another job (differs in {', '.join(diff)}: "
                                     f"{ {k: stored.get(k) for k in diff} } vs { {k: key.get(k) for k in diff} }); "
                                     "use another directory or delete it")
        else:
            key_path.write_text(json.dumps(key, indent=2) + "\n")

    def _path(self, index: int) -> Path:
        return self.dir / f"batch-{index:05d}.npy"

    def load(self, index: int) -> np.ndarray | None:
        path = self._path(index)
        return np.load(path, allow_pickle=False) if path.is_file() else None

    def save(self, index: int, array: np.ndarray) -> None:
        path = self._path(index)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, np.ascontiguousarray(array), allow_pickle=False)
        tmp.replace(path)

    def finished(self) -> int:
        return len(list(self.dir.glob("batch-*.npy")))
