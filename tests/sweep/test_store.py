"""The results file: a torn last line is cut off on reload, a damaged line is ignored, rows round-trip."""

from __future__ import annotations

import json

from hwsim.sweep.store import ResultStore, atomic_write_json, publish_dir, sweep_temporaries, temp_dir


def _row(i: int) -> dict:
    return {"key": f"k{i}", "config": {"x": i, "t": (1, 2)}, "fid": 1.0 / 3 + i, "ci": [float("nan"), 2.5]}


def test_rows_round_trip(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl")
    written = [store.append(_row(i)) for i in range(3)]
    again = ResultStore(tmp_path / "r.jsonl")
    assert list(again.rows.values()) == written and again.torn_bytes == again.bad_lines == 0
    assert written[0]["ci"] == [None, 2.5] and written[0]["config"]["t"] == [1, 2]


def test_torn_last_line_is_dropped_and_cut(tmp_path):
    path = tmp_path / "r.jsonl"
    store = ResultStore(path)
    store.append(_row(0))
    _, line = ResultStore.encode(_row(1))
    for cut in (1, len(line) // 2, len(line) - 1):  # every torn prefix, up to the missing newline
        with open(path, "ab") as f:
            f.write(line[:cut])
        again = ResultStore(path)
        assert set(again.rows) == {"k0"} and again.torn_bytes == cut
        assert path.read_bytes().endswith(b"\n")  # cut back to the last complete row
    again.append(_row(1))
    assert set(ResultStore(path).rows) == {"k0", "k1"} and path.read_bytes().count(b"\n") == 2


def test_damaged_line_is_ignored(tmp_path):
    path = tmp_path / "r.jsonl"
    store = ResultStore(path)
    for i in range(3):
        store.append(_row(i))
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"x": 1', b'"x": 7')  # valid JSON, wrong checksum
    lines.insert(2, b"\x00\x00\x00\n")  # zeros where a crash lost the page
    path.write_bytes(b"".join(lines))
    again = ResultStore(path)
    assert set(again.rows) == {"k0", "k2"} and again.bad_lines == 2


def test_atomic_files_and_directories(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"v": float("inf")})
    assert json.loads((tmp_path / "a.json").read_text()) == {"v": None}
    final = tmp_path / "work" / "q"
    tmp = temp_dir(final)
    (tmp / "f").write_text("1")
    assert publish_dir(tmp, final) == final and (final / "f").read_text() == "1" and not tmp.exists()
    other = temp_dir(final)
    (other / "f").write_text("2")
    publish_dir(other, final)  # published twice: the first stays
    assert (final / "f").read_text() == "1" and not other.exists()
    leftover = temp_dir(final)
    (tmp_path / "work" / ".x.json.123.tmp").write_text("torn")
    assert sweep_temporaries(tmp_path / "work") == 2 and not leftover.exists() and final.is_dir()
