import pickle

import numpy as np
import pytest

from hwsim import data


@pytest.mark.parametrize(
    "name, n_train, n_test, size",
    [("fashion", 60000, 10000, 28), ("mnist", 60000, 10000, 28), ("digits", 1500, 297, 8)],
)
def test_loaders(name, n_train, n_test, size):
    train, test = data.load_dataset(name, "train"), data.load_dataset(name, "test")
    assert train.images.shape == (n_train, size, size) and test.images.shape == (n_test, size, size)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert set(np.unique(train.labels)) == set(range(10))
    assert train.images.max() == 255 and train.images.min() == 0
    assert train.image_shape == (1, size, size)


def test_digits_split_is_disjoint_and_fixed():
    a, b = data.load_dataset("digits", "train"), data.load_dataset("digits", "test")
    rows = {r.tobytes() for r in a.images.reshape(len(a), -1)}
    assert len(rows) > 1000
    assert np.array_equal(b.images, data.load_dataset("digits", "test").images)


def test_mnist_bytes_are_recovered_exactly():
    images = data.load_dataset("mnist", "test").images
    # the file stores uint8/256 as float32: every value must come back as an integer byte
    assert images.dtype == np.uint8 and images[0].sum() > 0


def test_model_range_round_trip():
    images = data.load_dataset("digits", "test").images
    x = data.to_model_range(images)
    assert x.shape == (len(images), 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(data.to_uint8(x), images)


def test_unknown_dataset_and_split():
    with pytest.raises(data.DatasetError, match="unknown dataset 'cifar'.*fashion"):
        data.load_dataset("cifar")
    with pytest.raises(data.DatasetError, match="unknown split"):
        data.load_dataset("digits", "val")


def test_missing_fashion_names_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "FASHION_DIR", tmp_path)
    with pytest.raises(data.DatasetError, match="apt-get install -y dataset-fashion-mnist"):
        data.load_dataset("fashion")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code():
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system"):
        data.restricted_load(pickle.dumps(_Evil()))


def test_restricted_unpickler_admits_arrays():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    out = data.restricted_load(pickle.dumps(arrays, protocol=2))
    assert all(np.array_equal(a, b) for a, b in zip(arrays, out))
