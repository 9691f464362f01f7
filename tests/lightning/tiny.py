"""Tiny real Lightning pieces for the callback's tests (and the DDP script).

A dataset of blank 1×12×12 images that yields ``(image, index)``, a transform factory whose
output is the stage's size and whose pixels all equal the stage's ``randaug_magnitude`` (so a
batch shows, in the worker that built it, which stage's transform ran), and a LightningModule
that records what every training step saw.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from proglearn import Stage
from proglearn.integrations.lightning import ProgressiveLearning
from proglearn.integrations.torch import SeededRandomSampler

#: 6 epochs, 3 stages of 2 epochs: sizes 8/12/16, dropout 0/0.15/0.3, magnitude 2/4/6.
SCHEDULE: dict[str, Any] = {
    "epochs": 6, "stages": 3, "image_size": {"start": 8, "end": 16},
    "knobs": {"dropout": [0.0, 0.3], "randaug_magnitude": [2, 6]},
}


class Blank(Dataset):
    def __init__(self, n: int = 16) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.zeros(1, 12, 12), i


class StageTransform:
    """Resize to the stage's size; every pixel becomes the stage's randaug_magnitude."""

    def __init__(self, stage: Stage) -> None:
        self.size = stage.image_size
        self.magnitude = stage.values.get("randaug_magnitude", 0.0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x[None], size=self.size)[0] + self.magnitude


class TinyModule(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Dropout(0.5), nn.Linear(4, 2))
        self.records: list[dict[str, Any]] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, idx = batch
        self.records.append({"epoch": self.current_epoch, "size": x.shape[-1],
                             "batch": x.shape[0], "dropout": self.net[3].p,
                             "pixel": float(x.mean()), "idx": idx.tolist()})
        return self.net(x).pow(2).mean()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.net(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Transformed(Dataset):
    """``Blank`` with one fixed transform (the rebuild mode's loader)."""

    def __init__(self, n: int, transform: StageTransform) -> None:
        self.base, self.transform = Blank(n), transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, y = self.base[i]
        return self.transform(x), y


class TinyData(pl.LightningDataModule):
    """``data="progressive"``: the callback's zero-rebuild helper; ``data="rebuild"``: an
    ordinary loader for the callback's current stage (with reload_dataloaders_every_n_epochs)."""

    def __init__(self, n: int = 16, batch_size: int | None = 4, num_workers: int = 0,
                 persistent_workers: bool = False, data: str = "progressive",
                 val: bool = False) -> None:
        super().__init__()
        self.n, self.batch_size, self.data, self.val = n, batch_size, data, val
        self.num_workers, self.persistent_workers = num_workers, persistent_workers

    def make_transform(self, stage: Stage) -> StageTransform:
        return StageTransform(stage)

    def train_dataloader(self) -> DataLoader:
        progressive = ProgressiveLearning.of(self.trainer)
        if self.data == "progressive":
            return progressive.train_loader(
                Blank(self.n), batch_size=self.batch_size, num_workers=self.num_workers,
                persistent_workers=self.persistent_workers)
        stage = progressive.stage
        dataset = Transformed(self.n, StageTransform(stage))
        return DataLoader(dataset, batch_size=stage.batch_size or self.batch_size,
                          sampler=SeededRandomSampler(dataset), num_workers=self.num_workers,
                          persistent_workers=self.persistent_workers)

    def val_dataloader(self) -> DataLoader | list:
        return DataLoader(Blank(4), batch_size=4) if self.val else []


def per_epoch(records: list[dict[str, Any]], *keys: str) -> dict[int, tuple[Any, ...]]:
    """``{epoch: (key values)}``, checking every step of an epoch saw the same values."""
    out: dict[int, tuple[Any, ...]] = {}
    for r in records:
        row = tuple(r[k] for k in keys)
        if out.setdefault(r["epoch"], row) != row:
            raise AssertionError(f"epoch {r['epoch']} mixed {out[r['epoch']]} and {row}")
    return out


def trainer(tmp_path: Any, **kwargs: Any) -> pl.Trainer:
    defaults: dict[str, Any] = dict(
        accelerator="cpu", devices=1, max_epochs=6, default_root_dir=tmp_path, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, log_every_n_steps=1, limit_val_batches=0)
    defaults.update(kwargs)
    return pl.Trainer(**defaults)
