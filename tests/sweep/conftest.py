"""The sweep tests' shared pieces: the committed smoke experiment and its uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwsim.sweep import run_sweep, stable

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "experiments/sweeps/smoke.yaml"


def by_key(rows: list[dict]) -> dict[str, dict]:
    """Rows as a set keyed by config hash, without timing and provenance fields."""
    out = {r["key"]: stable(r) for r in rows}
    assert len(out) == len(rows), "duplicate keys"
    return out


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> tuple[Path, list[dict]]:
    """The smoke sweep run once without interruption, in this process (workers=0): (out dir, rows)."""
    out = tmp_path_factory.mktemp("sweep-reference")
    rows = run_sweep(SMOKE, out, workers=0, threads=1, progress=False)
    assert len(rows) == 4
    return out, rows


@pytest.fixture(scope="session")
def smoke_reference(smoke_run) -> dict[str, dict]:
    return by_key(smoke_run[1])
