import numpy as np
import pytest

from hwsim.evaluate import generate
from hwsim.resume import BatchStore, ResumeMismatch


def test_store_refuses_another_job(tmp_path):
    store = BatchStore(tmp_path, {"seed": 0, "n": 4})
    store.save(0, np.arange(3.0))
    assert np.array_equal(BatchStore(tmp_path, {"seed": 0, "n": 4}).load(0), np.arange(3.0))
    with pytest.raises(ResumeMismatch, match=r"differs in seed"):
        BatchStore(tmp_path, {"seed": 1, "n": 4})


def test_interrupted_generation_resumes_to_the_same_images(tiny_model_dir, tmp_path):
    full = generate(tiny_model_dir, 6, steps=3, batch_size=2, progress=False)
    resume = tmp_path / "resume"
    generate(tiny_model_dir, 6, steps=3, batch_size=2, progress=False, resume_dir=resume)
    (resume / "batch-00001.npy").unlink()  # as if the run had stopped during the second batch
    before = (resume / "batch-00000.npy").stat().st_mtime_ns
    again = generate(tiny_model_dir, 6, steps=3, batch_size=2, progress=False, resume_dir=resume)
    assert np.array_equal(again, full)
    assert (resume / "batch-00000.npy").stat().st_mtime_ns == before  # finished batches are not recomputed


def test_a_copied_work_directory_keeps_its_batches(tiny_model_dir, tmp_path):
    """Samples are keyed by the model's content, not its path: a model (and its resume directory)
    copied elsewhere resumes; a model with other weights does not."""
    import shutil

    resume = tmp_path / "resume"
    first = generate(tiny_model_dir, 4, steps=3, batch_size=2, progress=False, resume_dir=resume)
    copy = shutil.copytree(tiny_model_dir, tmp_path / "elsewhere")
    before = (resume / "batch-00000.npy").stat().st_mtime_ns
    again = generate(copy, 4, steps=3, batch_size=2, progress=False, resume_dir=resume)
    assert np.array_equal(again, first) and (resume / "batch-00000.npy").stat().st_mtime_ns == before
    weights = next(copy.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ResumeMismatch, match="sha256"):
        generate(copy, 4, steps=3, batch_size=2, progress=False, resume_dir=resume)


def test_an_earlier_versions_path_key_is_read_by_content(tmp_path):
    """job.json of earlier versions named the model's absolute path: that field is ignored, the rest compared."""
    import json

    key = {"num_samples": 4, "sha256:weights.safetensors": "ab"}
    (tmp_path / "job.json").write_text(json.dumps({**key, "model": "/somewhere/else"}))
    BatchStore(tmp_path, {**key, "sha256:config.json": "cd"})  # accepted: path ignored, new fields not compared
    with pytest.raises(ResumeMismatch, match="sha256:weights"):
        BatchStore(tmp_path, {**key, "sha256:weights.safetensors": "ef"})
