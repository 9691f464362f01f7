"""A small, plain training loop shared by the example, the benchmark and the ablation runner.

::

    for epoch in range(schedule.epochs):
        stage = pl.on_epoch_start(epoch)                  # ProgressiveLearning
        train = train_one_epoch(model, loader, optimizer, mixup=mixup, loss_fn=loss)
        test = evaluate(model, test_loader)
        print(stage.image_size, train["loss"], test["top1"])

Nothing here knows about schedules: stage changes happen in ``ProgressiveLearning`` (which
sets the loader's epoch and the knobs) before each epoch. Under ``torch.distributed`` both
functions sum their counts over all ranks, so every rank returns the same global metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["evaluate", "train_one_epoch"]


def _reduce(*values: float, device: Any) -> list[float]:
    """Sum ``values`` over all ranks when torch.distributed is initialized."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def _hard_targets(targets: torch.Tensor) -> torch.Tensor:
    return targets.argmax(1) if targets.ndim == 2 else targets


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    mixup: Any = None,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
    on_step: Callable[[int], Any] | None = None,
) -> dict[str, float]:
    """Train ``model`` for one pass over ``loader``; return the epoch's metrics.

    Args:
        loader: yields ``(images, targets, ...)`` batches (any of proglearn's data modes).
        loss_fn: default ``nn.CrossEntropyLoss()``, or timm ``SoftTargetCrossEntropy()`` when
            ``mixup`` is given. Pass your own loss object to schedule its ``label_smoothing``.
        mixup: a timm ``Mixup`` applied to each batch (soft targets). timm needs an even batch:
            an odd batch loses its last sample.
        max_steps: stop after this many batches (quick runs, benchmarks).
        on_step: called as ``on_step(i)`` before batch ``i`` of the epoch (e.g. to drive a
            step-based schedule: ``lambda i: pl.on_step(offset + i)``).

    Returns ``{"loss": mean loss per sample, "top1": accuracy in % against the un-mixed labels,
    "samples": n, "steps": batches, "seconds": wall time, "images_per_s": n / seconds}``
    (loss, top1 and samples summed over ranks under torch.distributed).
    """
    if loss_fn is None:
        if mixup is not None:
            from timm.loss import SoftTargetCrossEntropy

            loss_fn = SoftTargetCrossEntropy()
        else:
            loss_fn = nn.CrossEntropyLoss()
    model.train()
    loss_sum = correct = seen = 0.0
    steps = 0
    start = time.perf_counter()
    for i, batch in enumerate(loader):
        if max_steps is not None and i >= max_steps:
            break
        if on_step is not None:
            on_step(i)
        images, targets = batch[0].to(device), batch[1].to(device)
        labels = targets
        if mixup is not None:
            if len(images) % 2:
                images, targets, labels = images[:-1], targets[:-1], labels[:-1]
            if len(images) == 0:
                continue
            images, targets = mixup(images, targets)
        output = model(images)
        loss = loss_fn(output, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = len(images)
        loss_sum += float(loss.detach()) * n
        correct += float((output.detach().argmax(1) == _hard_targets(labels)).sum())
        seen += n
        steps += 1
    seconds = time.perf_counter() - start
    loss_sum, correct, seen = _reduce(loss_sum, correct, seen, device=device)
    return {"loss": loss_sum / max(seen, 1), "top1": 100.0 * correct / max(seen, 1),
            "samples": seen, "steps": steps, "seconds": seconds,
            "images_per_s": seen / seconds if seconds > 0 else 0.0}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    device: str | torch.device = "cpu",
    max_steps: int | None = None,
) -> dict[str, float]:
    """Top-1 accuracy (%) and mean cross-entropy of ``model`` (in eval mode) over ``loader``.

    Returns ``{"top1", "loss", "samples", "seconds"}``; summed over ranks under
    torch.distributed (a ``DistributedSampler`` pads the last shard, so a few samples may count
    twice).
    """
    model.eval()
    loss_sum = correct = seen = 0.0
    start = time.perf_counter()
    for i, batch in enumerate(loader):
        if max_steps is not None and i >= max_steps:
            break
        images, labels = batch[0].to(device), batch[1].to(device)
        output = model(images)
        loss_sum += float(nn.functional.cross_entropy(output, labels, reduction="sum"))
        correct += float((output.argmax(1) == labels).sum())
        seen += len(images)
    seconds = time.perf_counter() - start
    loss_sum, correct, seen = _reduce(loss_sum, correct, seen, device=device)
    return {"top1": 100.0 * correct / max(seen, 1), "loss": loss_sum / max(seen, 1),
            "samples": seen, "seconds": seconds}
