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
