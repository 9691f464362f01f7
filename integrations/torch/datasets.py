"""Datasets for examples, benchmarks and tests: Fashion-MNIST from local files, your own image
folder, and a deterministic synthetic set. All return ``(PIL image or transform(image), label)``,
so the stage transforms of :mod:`.transforms` apply unchanged. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from proglearn.data import FASHION_MNIST_CLASSES, load_fashion_mnist

__all__ = ["FashionMNIST", "SyntheticImages", "image_folder"]


class FashionMNIST(Dataset[tuple[Any, int]]):
    """Fashion-MNIST (28x28 grayscale, 10 classes) from Debian's ``dataset-fashion-mnist`` files.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        root: directory with the four idx(.gz) files; default ``$PROGLEARN_FASHION_MNIST`` or
            ``/usr/share/datasets/fashion-mnist``. Missing files raise
            :class:`proglearn.data.DataMissingError` saying how to get them.
        transform: applied to the PIL image (mode ``"L"``, or ``"RGB"`` with ``rgb=True``).
        rgb: return 3-channel images (for models and transforms that expect RGB).

    Attributes ``data`` (uint8 ``[N, 28, 28]``), ``targets`` (int64 ``[N]``) and ``classes``.
    """

    def __init__(self, split: str = "train", root: str | os.PathLike[str] | None = None,
                 transform: Callable[[Image.Image], Any] | None = None, rgb: bool = False) -> None:
        self.data, self.targets = load_fashion_mnist(split, root)
        self.split = split
        self.transform = transform
        self.rgb = bool(rgb)
        self.classes = list(FASHION_MNIST_CLASSES)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        img = Image.fromarray(self.data[index])  # uint8 HxW: mode "L"
        if self.rgb:
            img = img.convert("RGB")
        return (img if self.transform is None else self.transform(img)), int(self.targets[index])

    def __repr__(self) -> str:
        return f"FashionMNIST(split={self.split!r}, n={len(self)}, rgb={self.rgb})"


def image_folder(path: str | os.PathLike[str],
                 transform: Callable[[Image.Image], Any] | None = None, **kwargs: Any) -> Any:
    """Your own images as a torchvision ``ImageFolder``: ``path/<class name>/<image file>``.

    Images are loaded as RGB PIL images; ``transform`` (e.g. a stage transform) is applied to
    each; ``kwargs`` go to ``torchvision.datasets.ImageFolder``.
    """
    from torchvision.datasets import ImageFolder

    if not Path(path).is_dir():
        raise FileNotFoundError(f"path: no directory at {os.fspath(path)!r} (image_folder expects "
                                "path/<class name>/<image files>)")
    return ImageFolder(os.fspath(path), transform=transform, **kwargs)


class SyntheticImages(Dataset[tuple[Any, int]]):
    """A small, deterministic, learnable image set for tests and benchmarks.

    Each class has a smooth random prototype (a 4x4 grid of colors upsampled to ``size``);
    sample ``i`` is its class prototype plus Gaussian pixel noise (std 32 on a 0-255 scale),
    clipped to uint8. Labels cycle through the classes (``i % num_classes``). Everything is
    drawn at construction from ``numpy.random.default_rng(seed)``: the same arguments give the
    same images in every process.

    Returns ``(PIL image, label)`` (mode ``"L"`` for 1 channel, ``"RGB"`` for 3), or
    ``(transform(image), label)``. Attributes ``data`` (uint8 ``[n, size, size, channels]``)
    and ``targets`` (int64 ``[n]``).
    """

    def __init__(self, n: int, num_classes: int, size: int, channels: int = 3, seed: int = 0,
                 transform: Callable[[Image.Image], Any] | None = None) -> None:
        for name, value, lo in (("n", n, 1), ("num_classes", num_classes, 1), ("size", size, 4),
                                ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"{name}: must be an integer >= {lo} (received {value!r})")
        if channels not in (1, 3) or isinstance(channels, bool):
            raise ValueError(f"channels: must be 1 or 3 (received {channels!r})")
        rng = np.random.default_rng(seed)
        grid = rng.uniform(40, 215, size=(num_classes, 4, 4, channels))
        cells = np.minimum(np.arange(size) * 4 // size, 3)
        prototypes = grid[:, cells][:, :, cells]  # [classes, size, size, channels]
        self.targets = np.arange(n, dtype=np.int64) % num_classes
        noise = rng.normal(0.0, 32.0, size=(n, size, size, channels))
        self.data = np.clip(prototypes[self.targets] + noise, 0, 255).astype(np.uint8)
        self.num_classes, self.size, self.channels = num_classes, size, channels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        pixels = self.data[index]
        img = Image.fromarray(pixels[..., 0] if self.channels == 1 else pixels)
        return (img if self.transform is None else self.transform(img)), int(self.targets[index])

    def __repr__(self) -> str:
        return (f"SyntheticImages(n={len(self)}, num_classes={self.num_classes}, "
                f"size={self.size}, channels={self.channels})")
