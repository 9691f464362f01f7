"""Small, real pieces shared by the torch tests and the torchrun script (tests/torch/ddp_worker.py).

The expected tables below are written out by hand from the schedule, not computed with proglearn,
so a wrong stage or value in the library cannot hide behind the same arithmetic in the test.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image
from timm.data.auto_augment import RandAugment, rand_augment_ops
from timm.layers import DropPath
from torch import nn
from torchvision import transforms as T

# 6 epochs, 3 stages (2 epochs each), sizes 16 -> 24 -> 32, pixel-constant batch size capped at 32.
SCHEDULE = {
    "epochs": 6,
    "stages": 3,
    "image_size": {"start": 16, "end": 32},
    "batch_size": {"size": 8, "policy": "pixels", "max": 32},
    "knobs": {
        "dropout": [0.1, 0.3],
        "drop_path": [0.0, 0.2],
        "randaug_magnitude": [5, 15],
        "mixup_alpha": [0.0, 0.8],
        "label_smoothing": 0.1,
    },
}
N = 40  # samples

# stage, image size, batch size (8 * 32² / size², capped at 32), dropout, drop_path, randaug, mixup
STAGES = {
    0: (0, 16, 32, 0.1, 0.0, 5.0, 0.0),
    1: (1, 24, 14, 0.2, 0.1, 10.0, 0.4),
    2: (2, 32, 8, 0.3, 0.2, 15.0, 0.8),
}
EXPECTED = {epoch: STAGES[epoch // 2] for epoch in range(6)}
# batch sizes of one epoch over 40 samples, last partial batch kept
BATCHES = {0: [32, 8], 1: [14, 14, 12], 2: [8, 8, 8, 8, 8]}


class TinyImages(torch.utils.data.Dataset):
    """``n`` deterministic RGB PIL images of 20x20; the target is the sample index."""

    def __init__(self, n: int = N, size: int = 20) -> None:
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return Image.fromarray(self.images[i]), i


class Probe:
    """A stage's training transform (timm RandAugment, random-resized crop, to tensor) that also
    reports, from inside the worker, the RandAugment magnitude in effect and the worker's pid."""

    def __init__(self, stage) -> None:
        m = stage.values["randaug_magnitude"]
        # built like a user would, with timm's pieces, at the stage's magnitude
        self.randaug = RandAugment(rand_augment_ops(magnitude=m, hparams={"magnitude_max": 20}))
        crop = T.RandomResizedCrop(stage.image_size, scale=(0.5, 1))
        self.transform = T.Compose([self.randaug, crop, T.ToTensor()])

    def __call__(self, img):
        op = self.randaug.ops[0]
        in_effect = max(0.0, min(op.magnitude, op.magnitude_max or 10.0))  # timm's clip
        return self.transform(img), in_effect, os.getpid()


class Block(nn.Module):
    def __init__(self, channels: int, drop_path: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        return x + self.drop_path(self.conv(x))


class TinyNet(nn.Module):
    """Conv stem, three residual blocks with DropPath built at 0, 0.05, 0.1 (depth ratios 0, ½,
    1), a dropout head."""

    def __init__(self, num_classes: int = 4, dropout: bool = True) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(*(Block(8, r) for r in (0.0, 0.05, 0.1)))
        self.drop = nn.Dropout(0.0) if dropout else nn.Identity()
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x)).mean((2, 3))
        return self.head(self.drop(x))


def model_values(model: TinyNet) -> list[float]:
    """Dropout p, then every block's drop_prob, as read at forward time."""
    return [model.drop.p, *(b.drop_path.drop_prob for b in model.blocks)]
