"""Fashion-MNIST from local files (Debian's ``dataset-fashion-mnist``), as numpy arrays.

Framework-free: the torch and Keras adapters wrap these arrays. Nothing is ever downloaded.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR", "DataMissingError", "load_fashion_mnist"]

#: Where Debian's ``dataset-fashion-mnist`` package puts the files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DataMissingError(FileNotFoundError):
    """A data set's files are not on this machine; the message says how to get them."""


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise DataMissingError(
        f"Fashion-MNIST file {stem}(.gz) not found in {root}. proglearn never downloads data. "
        "Install Debian's package (`sudo apt-get install dataset-fashion-mnist`, files land in "
        f"{FASHION_MNIST_DIR}), or pass root= a directory holding the four idx files "
        "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz), or set PROGLEARN_FASHION_MNIST to it.")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an idx file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: truncated idx file ({data.size} bytes for shape {shape})")
    return data.reshape(shape)


def load_fashion_mnist(
    split: str = "train", root: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [N, 28, 28]`` and labels ``int64 [N]`` of ``split`` ('train' or 'test').

    ``root`` defaults to ``$PROGLEARN_FASHION_MNIST``, else Debian's
    ``/usr/share/datasets/fashion-mnist``.
    """
    if split not in _FILES:
        raise ValueError(f"split: must be 'train' or 'test' (received {split!r})")
    if root is None:
        root = os.environ.get("PROGLEARN_FASHION_MNIST", FASHION_MNIST_DIR)
    root = Path(root)
    images_stem, labels_stem = _FILES[split]
    images = _read_idx(_find(root, images_stem))
    labels = _read_idx(_find(root, labels_stem)).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{root}: {split} images {images.shape} and labels {labels.shape} "
                         "do not match")
    return images, labels
