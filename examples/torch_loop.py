"""Train the tiny EfficientNetV2 on Fashion-MNIST with progressive learning, in a plain loop.

    python examples/torch_loop.py                          # ~1-2 min on a 2-core CPU
    python examples/torch_loop.py --epochs 8 --train-subset 0   # 8 epochs on all 60,000 images
    torchrun --nproc_per_node 2 examples/torch_loop.py     # the same, 2 processes (gloo, CPU)

Each epoch prints the stage, image size, batch size, the knob values in effect, the training
loss and accuracy, the test accuracy (at the schedule's eval size) and the time. The schedule is
a YAML file (default: examples/configs/fashion_mnist_tiny.yaml); ``--mode fixed`` or
``--mode resize_only`` runs the ablations of the same schedule.

What proglearn does here, and nothing else: ``progressive_loader`` builds each stage's
transform (size, RandAugment magnitude) inside the persistent workers and sizes the batches;
``ProgressiveLearning.on_epoch_start`` sets dropout, drop path, mixup and label smoothing when
the stage changes. The rest is an ordinary PyTorch loop (``proglearn.integrations.torch.train``).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch
from timm.data import Mixup
from torch.utils.data import DataLoader, DistributedSampler, Subset

import proglearn
from proglearn.integrations.torch import ProgressiveLearning, progressive_loader
from proglearn.integrations.torch.datasets import FashionMNIST
from proglearn.integrations.torch.train import evaluate, train_one_epoch
from proglearn.integrations.torch.transforms import default_transform_factory, eval_transform
from proglearn.models import efficientnetv2

CONFIG = Path(__file__).parent / "configs" / "fashion_mnist_tiny.yaml"
MEAN, STD = (0.286,), (0.353,)  # Fashion-MNIST training-set pixel statistics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(CONFIG), help="schedule: YAML path or preset name")
    p.add_argument("--epochs", type=int, default=None, help="override the schedule's epochs")
    p.add_argument("--mode", choices=["adaptive", "resize_only", "fixed", "random"],
                   default=None, help="override the schedule's mode (ablations)")
    p.add_argument("--train-subset", type=int, default=6000,
                   help="train on this many images (0: all 60,000)")
    p.add_argument("--test-subset", type=int, default=2000,
                   help="evaluate on this many images (0: all 10,000)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="batch size when the schedule has no batch_size policy")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate (x stage lr_scale)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (persistent)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per process (1: the DataLoader workers need the other "
                        "cores, and oversubscribed OpenMP threads are several times slower)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None, help="Fashion-MNIST directory (idx .gz files)")
    return p.parse_args(argv)


def subset(data: torch.utils.data.Dataset, n: int, seed: int) -> torch.utils.data.Dataset:
    if n <= 0 or n >= len(data):  # type: ignore[arg-type]
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))  # type: ignore[arg-type]
    return Subset(data, order[:n].tolist())


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if distributed:
        torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank() if distributed else 0
    world = torch.distributed.get_world_size() if distributed else 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    schedule = proglearn.load_schedule(args.config)
    changes = {k: v for k, v in (("epochs", args.epochs), ("mode", args.mode)) if v is not None}
    if changes:
        schedule = schedule.replace(**changes)

    train_set = subset(FashionMNIST("train", root=args.data_root), args.train_subset, args.seed)
    test_set = subset(FashionMNIST("test", root=args.data_root,
                                   transform=eval_transform(schedule.image_size.eval_size,
                                                            in_chans=1, mean=MEAN, std=STD)),
                      args.test_subset, args.seed)
    make_transform = default_transform_factory(in_chans=1, mean=MEAN, std=STD, scale=(0.8, 1.0))
    loader = progressive_loader(
        train_set, schedule, make_transform, batch_size=args.batch_size, seed=args.seed,
        num_workers=args.workers, persistent_workers=args.workers > 0)
    test_loader = DataLoader(
        test_set, batch_size=256,
        sampler=DistributedSampler(test_set, shuffle=False) if distributed else None)

    model = efficientnetv2("tiny", num_classes=10, in_chans=1)
    knobs = schedule.knobs.ramps()
    mixup = None
    if any(k in knobs for k in ("mixup_alpha", "cutmix_alpha", "label_smoothing")):
        mixup = Mixup(mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.0, num_classes=10)
    pl = ProgressiveLearning(schedule, model, mixup=mixup, loader=loader)
    net = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.05)

    if rank == 0:
        print(f"schedule {args.config}: {schedule.epochs} epochs, {schedule.stages} stages, "
              f"mode {schedule.mode}; {len(train_set)} train / {len(test_set)} test images; "
              f"{world} process(es); FLOP-ideal cost {proglearn.flop_cost_ratio(schedule):.3f} "
              "of fixed-size training")
    result: dict[str, float] = {}
    for epoch in range(schedule.epochs):
        stage = pl.on_epoch_start(epoch)
        cosine = 0.5 * (1 + math.cos(math.pi * epoch / schedule.epochs))
        for group in optimizer.param_groups:
            group["lr"] = args.lr * stage.lr_scale * cosine
        train = train_one_epoch(net, loader, optimizer, mixup=mixup)
        test = evaluate(net, test_loader)
        if rank == 0:
            knob_text = " ".join(f"{k}={v:.3g}" for k, v in stage.values.items())
            print(f"epoch {epoch + 1}/{schedule.epochs} stage {stage.index} "
                  f"size {stage.image_size} batch {stage.batch_size or args.batch_size} "
                  f"{knob_text} | loss {train['loss']:.3f} train {train['top1']:.1f}% | "
                  f"test {test['top1']:.1f}% @{schedule.image_size.eval_size}px | "
                  f"{train['seconds'] + test['seconds']:.1f}s", flush=True)
        result = {"train_loss": train["loss"], "train_top1": train["top1"],
                  "test_top1": test["top1"], "test_loss": test["loss"]}
    if distributed:
        torch.distributed.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
