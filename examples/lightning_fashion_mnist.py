"""Train the tiny EfficientNetV2 on Fashion-MNIST with Lightning and progressive learning.

    python examples/lightning_fashion_mnist.py                   # a plain Trainer, 4 epochs
    python examples/lightning_fashion_mnist.py fit --config examples/configs/lightning_cli.yaml

The first form builds the Trainer in Python (its schedule:
examples/configs/lightning_fashion_mnist.yaml); the second is LightningCLI, where the callback
comes from the config file::

    trainer:
      callbacks:
        - class_path: proglearn.integrations.lightning.ProgressiveLearning
          init_args: {schedule: examples/configs/lightning_cli_schedule.yaml}

What the callback needs from the two classes below, and nothing else:

* ``FashionMNISTData.make_transform(stage)`` builds a stage's training transform (size,
  RandAugment magnitude), and ``train_dataloader`` returns
  ``ProgressiveLearning.of(self.trainer).train_loader(...)``: the zero-rebuild loader, whose
  persistent workers get every stage's transform without being restarted.
* ``Classifier`` holds the network (its dropout and DropPath modules get the stage's rates) and
  a timm ``Mixup`` attribute (mixup alpha and label smoothing).

Each epoch logs ``proglearn/image_size``, ``proglearn/dropout``, … next to the loss and the
accuracy, here to ``lightning_logs/…/metrics.csv``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, Subset

import proglearn
from proglearn import Stage
from proglearn.integrations.lightning import ProgressiveLearning
from proglearn.integrations.torch.datasets import FashionMNIST
from proglearn.integrations.torch.transforms import default_transform_factory, eval_transform
from proglearn.models import efficientnetv2

SCHEDULE = Path(__file__).parent / "configs" / "lightning_fashion_mnist.yaml"
MEAN, STD = (0.286,), (0.353,)  # Fashion-MNIST training-set pixel statistics


def _subset(data: Dataset[Any], n: int, seed: int) -> Dataset[Any]:
    if n <= 0 or n >= len(data):  # type: ignore[arg-type]
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))  # type: ignore[arg-type]
    return Subset(data, order[:n].tolist())


class FashionMNISTData(L.LightningDataModule):
    """Fashion-MNIST from the local files; the train loader follows the callback's stages."""

    def __init__(self, train_subset: int = 6000, test_subset: int = 2000, batch_size: int = 64,
                 num_workers: int = 2, data_root: str | None = None, seed: int = 0) -> None:
        super().__init__()
        self.train_subset, self.test_subset = train_subset, test_subset
        self.batch_size, self.num_workers = batch_size, num_workers
        self.data_root, self.seed = data_root, seed
        self._factory = default_transform_factory(in_chans=1, mean=MEAN, std=STD,
                                                  scale=(0.35, 1.0))

    def make_transform(self, stage: Stage) -> Any:
        """The stage's training transform: timm's, at ``stage.image_size``, with RandAugment
        at ``stage.values["randaug_magnitude"]``."""
        return self._factory(stage)

    def setup(self, stage: str) -> None:
        schedule = ProgressiveLearning.of(self.trainer).schedule
        eval_tf = eval_transform(schedule.image_size.eval_size, in_chans=1, mean=MEAN, std=STD)
        self.train_set = _subset(FashionMNIST("train", root=self.data_root), self.train_subset,
                                 self.seed)
        self.test_set = _subset(FashionMNIST("test", root=self.data_root, transform=eval_tf),
                                self.test_subset, self.seed)

    def train_dataloader(self) -> DataLoader[Any]:
        return ProgressiveLearning.of(self.trainer).train_loader(
            self.train_set, batch_size=self.batch_size, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, drop_last=True, seed=self.seed)

    def val_dataloader(self) -> DataLoader[Any]:
        return DataLoader(self.test_set, batch_size=256)


class Classifier(L.LightningModule):
    """The bundled EfficientNetV2 for 10 grey classes, trained with Mixup targets."""

    def __init__(self, variant: str = "tiny", lr: float = 2e-3, weight_decay: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = efficientnetv2(variant, num_classes=10, in_chans=1)
        # Alphas and smoothing are set by the callback at every stage.
        self.mixup = Mixup(mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.0,
                           num_classes=10)
        self.loss = SoftTargetCrossEntropy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        images, targets = self.mixup(images, labels)
        logits = self(images)
        loss = self.loss(logits, targets)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train/acc", (logits.argmax(1) == labels).float().mean(), on_step=False,
                 on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.log("val/loss", F.cross_entropy(logits, labels), prog_bar=True)
        self.log("val/acc", (logits.argmax(1) == labels).float().mean(), prog_bar=True)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr,
                                weight_decay=self.hparams.weight_decay)
        epochs = max(1, self.trainer.max_epochs or 1)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": cosine, "interval": "epoch"}}


def main() -> None:
    """The plain-Python form: one callback added to an ordinary Trainer."""
    schedule = proglearn.load_schedule(SCHEDULE)
    torch.manual_seed(0)
    trainer = L.Trainer(
        max_epochs=schedule.epochs, accelerator="cpu", logger=CSVLogger("lightning_logs"),
        callbacks=[ProgressiveLearning(schedule)], log_every_n_steps=10)
    trainer.fit(Classifier(), datamodule=FashionMNISTData())
    for key in ("proglearn/stage", "proglearn/image_size", "proglearn/dropout", "val/acc"):
        print(f"{key}: {float(trainer.callback_metrics[key]):.4g}")


def cli_main(args: list[str] | None = None) -> LightningCLI:
    """The LightningCLI form (``fit --config ...``)."""
    return LightningCLI(Classifier, FashionMNISTData, args=args,
                        save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    if len(sys.argv) > 1:
        cli_main()
    else:
        main()
