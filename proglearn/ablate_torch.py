"""The PyTorch trainer of ``proglearn ablate``: one run (mode, seed) of an ablation.

Built from proglearn's torch integration and timm, nothing hand-rolled that they provide:

* data: :func:`~proglearn.integrations.torch.progressive_loader` (zero-rebuild: the stage
  travels with the batch indices, so worker processes follow it) over
  :class:`~proglearn.integrations.torch.FashionMNIST`, ``SyntheticImages`` or ``image_folder``,
  with the stage transforms of
  :func:`~proglearn.integrations.torch.default_transform_factory` (timm's training transform
  at the stage's size, RandAugment at the stage's magnitude);
* regularization: :class:`~proglearn.integrations.torch.ProgressiveLearning` applies every
  knob at each stage change (dropout, drop path, mixup/cutmix through a timm ``Mixup``, label
  smoothing through the ``Mixup`` or the loss), and refuses knobs with no target;
* model: :func:`proglearn.models.efficientnetv2` (bundled variants) or ``timm.create_model``;
  optimizer: ``timm.optim.create_optimizer_v2`` (no weight decay on norms and biases);
* loop: the shared ``train_one_epoch`` / ``evaluate`` of
  :mod:`proglearn.integrations.torch.train` (a per-step hook sets the learning rate, follows
  step-based stages and moves the progress bar).

The learning rate is a pure function of training progress (linear warmup, then cosine or
constant), times the stage's ``lr_scale`` when the schedule scales the batch with pixels.

Timing: ``train_time_s`` of an epoch is ``train_one_epoch``'s: from asking the loader for the
first batch to the end of the last optimizer step (it reads every step's loss, so a GPU is
synchronized): data loading and augmentation included, evaluation excluded. Evaluation is at
the schedule's eval size on the held-out set. Training batches drop the last partial batch.

Importing this module imports no framework; :func:`train_run` does.
"""

from __future__ import annotations

import math
import random
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .schedule import is_zero

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .ablate import AblationConfig, DataConfig, EpochRecord, RunJob, RunReporter, TrainOutput
    from .spec import Schedule

__all__ = ["build_model", "learning_rate", "train_run"]

#: Per-channel mean/std of Fashion-MNIST's training images (pixel values in [0, 1]).
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530

_MIX_KNOBS = ("mixup_alpha", "cutmix_alpha")
_TIMM_OPT = {("sgd", True): "sgd", ("sgd", False): "momentum", ("adamw", True): "adamw",
             ("adamw", False): "adamw", ("rmsprop", True): "rmsproptf",
             ("rmsprop", False): "rmsproptf"}


def learning_rate(cfg: AblationConfig, progress: float, lr_scale: float = 1.0) -> float:
    """Learning rate when ``progress`` (epochs done / total epochs, in [0, 1]) of training is
    done: linear warmup from 0 over ``warmup_epochs``, then ``cosine`` decay from ``lr`` to
    ``min_lr`` over the rest (or ``constant``), times ``lr_scale`` if ``scale_with_batch``."""
    opt = cfg.optimizer
    epochs = cfg.base_schedule.epochs
    scale = lr_scale if opt.scale_with_batch else 1.0
    warm = min(opt.warmup_epochs / epochs, 1.0)
    if warm > 0 and progress < warm:
        return opt.lr * scale * progress / warm
    if opt.lr_schedule == "constant":
        return opt.lr * scale
    t = 1.0 if warm >= 1 else (progress - warm) / (1.0 - warm)
    lr = opt.min_lr + 0.5 * (opt.lr - opt.min_lr) * (1.0 + math.cos(math.pi * min(t, 1.0)))
    return lr * scale


def _ramp_max(schedule: Schedule, knob: str) -> float:
    ramp = schedule.knobs.ramps().get(knob)
    return 0.0 if ramp is None else max(ramp.start, ramp.end)


def build_model(cfg: AblationConfig, num_classes: int, schedule: Schedule) -> nn.Module:
    """The config's model with ``num_classes`` outputs and the data's input channels.

    Bundled variants get DropPath modules at every block (so ``drop_path`` can be scheduled
    from 0); a timm model is built with ``drop_path_rate`` = the schedule's largest drop path
    (timm builds no DropPath modules at rate 0) unless ``model.kwargs`` sets it.
    """
    from .models.efficientnetv2 import VARIANTS, efficientnetv2

    name, kwargs = cfg.model.name, dict(cfg.model.kwargs)
    in_chans = cfg.data.in_chans
    if name.lower().removeprefix("efficientnetv2-") in VARIANTS:
        return efficientnetv2(name, num_classes, in_chans=in_chans, **kwargs)
    import timm

    if "drop_path_rate" not in kwargs and not is_zero(schedule, "drop_path"):
        kwargs["drop_path_rate"] = _ramp_max(schedule, "drop_path")
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans,
                             **kwargs)


@lru_cache(maxsize=4)
def _datasets(data: DataConfig) -> tuple[Any, Any, int]:
    """(train set, held-out set, number of classes), subsets drawn with ``data.seed``; the same
    for every run (cached per process: the config is frozen and hashable)."""
    import numpy as np
    from torch.utils.data import Subset

    from .integrations.torch.datasets import FashionMNIST, SyntheticImages, image_folder

    def subset(ds: Any, n: int | None, salt: int) -> Any:
        if n is None or n >= len(ds):
            return ds
        order = np.random.default_rng([data.seed, salt]).permutation(len(ds))[:n]
        return Subset(ds, sorted(int(i) for i in order))

    if data.name == "synthetic":
        n_train, n_eval = data.train_subset or 1000, data.eval_subset or 200
        # One set, split: the same class prototypes, disjoint noise draws.
        full = SyntheticImages(n_train + n_eval, data.num_classes, data.size,
                               channels=data.in_chans, seed=data.seed)
        return (Subset(full, range(n_train)), Subset(full, range(n_train, n_train + n_eval)),
                data.num_classes)
    if data.name == "fashion-mnist":
        rgb = data.in_chans == 3
        train = FashionMNIST("train", root=data.root, rgb=rgb)
        test = FashionMNIST("test", root=data.root, rgb=rgb)
        return subset(train, data.train_subset, 0), subset(test, data.eval_subset, 1), 10
    train = image_folder(f"{data.name}/train")
    held = image_folder(str(data.eval_dir))
    if held.classes != train.classes:
        from .ablate import AblationConfigError

        raise AblationConfigError(f"data.name: {data.eval_dir} has classes {held.classes[:5]}… but "
                         f"train/ has {train.classes[:5]}…; they must be the same folders "
                         f"(received {data.name!r})")
    return (subset(train, data.train_subset, 0), subset(held, data.eval_subset, 1),
            len(train.classes))


def _norm(data: DataConfig) -> dict[str, Any]:
    c = data.in_chans
    if data.mean is not None or data.std is not None:
        return {"mean": data.mean, "std": data.std}
    if data.name == "fashion-mnist":
        return {"mean": (FASHION_MNIST_MEAN,) * c, "std": (FASHION_MNIST_STD,) * c}
    if data.name == "synthetic":
        return {"mean": (0.5,) * c, "std": (0.25,) * c}
    return {"mean": None, "std": None}  # ImageNet's (timm's default)


def _device(name: str) -> Any:
    import torch

    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)  # timm's RandAugment draws ops with `random`
    np.random.seed(seed)  # timm's Mixup draws lambdas with numpy
    torch.manual_seed(seed)


def train_run(job: RunJob, reporter: RunReporter) -> TrainOutput:
    """Train ``job.config``'s model under ``job.schedule`` (one mode, one seed); evaluate at
    the eval size after every ``eval_every`` epochs and after the last."""
    import torch
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2
    from torch.utils.data import DataLoader

    from .ablate import EpochRecord, TrainOutput
    from .integrations.torch import ProgressiveLearning, progressive_loader
    from .integrations.torch.train import evaluate, train_one_epoch
    from .integrations.torch.transforms import default_transform_factory, eval_transform

    started = time.perf_counter()
    cfg, schedule = job.config, job.schedule
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = _device(cfg.device)
    cuda = device.type == "cuda"
    amp = cfg.amp and cuda
    if cuda:
        torch.backends.cudnn.benchmark = True
    train_set, eval_set, num_classes = _datasets(cfg.data)

    _seed(job.seed)  # the same initial weights and data order in every mode
    model = build_model(cfg, num_classes, schedule).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    ramps = schedule.knobs.ramps()
    norm = _norm(cfg.data)
    make_transform = default_transform_factory(
        in_chans=cfg.data.in_chans, randaug="randaug_magnitude" in ramps,
        scale=tuple(cfg.data.crop_scale), hflip=cfg.data.hflip, **norm)
    mixing = any(k in ramps and not is_zero(schedule, k) for k in _MIX_KNOBS)
    mixup = None
    loss_fn: torch.nn.Module = torch.nn.CrossEntropyLoss()
    if mixing:
        mixup = Mixup(mixup_alpha=_ramp_max(schedule, "mixup_alpha"),
                      cutmix_alpha=_ramp_max(schedule, "cutmix_alpha"),
                      label_smoothing=_ramp_max(schedule, "label_smoothing"),
                      num_classes=num_classes)
        loss_fn = SoftTargetCrossEntropy()
    workers = cfg.num_workers
    loader = progressive_loader(
        train_set, schedule, make_transform,
        batch_size=None if schedule.batch_size is not None else cfg.default_batch_size,
        num_workers=workers, persistent_workers=workers > 0, seed=job.seed,
        drop_last=True,  # a last batch of 1 would break BatchNorm (and timm's Mixup)
        pin_memory=cuda)
    pl = ProgressiveLearning(schedule, model, mixup=mixup, loader=loader,
                             loss=None if mixing else loss_fn)
    held_out: Any = _Transformed(eval_set, eval_transform(
        schedule.image_size.eval_size, in_chans=cfg.data.in_chans, **norm))
    eval_loader: DataLoader[Any] = DataLoader(
        held_out, batch_size=cfg.eval_batch_size, shuffle=False, num_workers=workers,
        persistent_workers=workers > 0, pin_memory=cuda)
    opt_kwargs: dict[str, Any] = {}
    if cfg.optimizer.name != "adamw":
        opt_kwargs["momentum"] = cfg.optimizer.momentum
    optimizer = create_optimizer_v2(
        model, opt=_TIMM_OPT[(cfg.optimizer.name, cfg.optimizer.nesterov)], lr=cfg.optimizer.lr,
        weight_decay=cfg.optimizer.weight_decay, **opt_kwargs)

    epochs = schedule.epochs
    batches = []
    for epoch in range(epochs):
        loader.batch_sampler.set_epoch(epoch)  # type: ignore[union-attr]
        batches.append(len(loader))
    reporter.start(sum(batches))
    num_params = sum(p.numel() for p in model.parameters())
    setup = time.perf_counter() - started

    history: list[EpochRecord] = []
    wall = 0.0
    for epoch in range(epochs):
        stage = pl.on_epoch_start(epoch)
        hook = _BeforeStep(cfg, pl, optimizer, reporter, epoch=epoch, batches=batches[epoch],
                           first_step=sum(batches[:epoch]), stage=stage)
        with torch.autocast(device.type, torch.bfloat16, enabled=amp):
            metrics = train_one_epoch(model, loader, optimizer, loss_fn=loss_fn, mixup=mixup,
                                      device=device, on_step=hook)
        if cuda:
            torch.cuda.synchronize(device)
        wall += metrics["seconds"]
        top1 = eval_loss = None
        eval_time = 0.0
        if (epoch + 1) % cfg.eval_every == 0 or epoch == epochs - 1:
            with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                held = evaluate(model, eval_loader, device=device)
            top1, eval_loss, eval_time = held["top1"], held["loss"], held["seconds"]
        stage = pl.stage
        record = EpochRecord(
            epoch=epoch, stage=stage.index, image_size=stage.image_size,
            batch_size=stage.batch_size or cfg.default_batch_size, values=dict(stage.values),
            lr=hook.lr, images=int(metrics["samples"]),
            train_loss=metrics["loss"], train_time_s=metrics["seconds"], wall_clock_s=wall,
            eval_top1=top1, eval_loss=eval_loss, eval_time_s=eval_time,
            train_top1=metrics["top1"])
        reporter.epoch_end(record)
        history.append(record)

    import timm

    info = {"torch": torch.__version__, "timm": timm.__version__,
            "threads": torch.get_num_threads(), "setup_time_s": setup}
    name = torch.cuda.get_device_name(device) if cuda else device.type
    return TrainOutput(history=history, num_params=num_params, device=name, setup_time_s=setup,
                       info=info)


class _BeforeStep:
    """``on_step`` hook of ``train_one_epoch``, called before batch ``i`` of ``epoch``: follows
    a step-based schedule's stage, sets the learning rate, moves the progress bar."""

    def __init__(self, cfg: AblationConfig, pl: Any, optimizer: Any, reporter: RunReporter, *,
                 epoch: int, batches: int, first_step: int, stage: Any) -> None:
        self.cfg, self.pl, self.optimizer, self.reporter = cfg, pl, optimizer, reporter
        self.epoch, self.batches, self.first_step, self.stage = epoch, batches, first_step, stage
        self.step_based = pl.schedule.steps_per_epoch is not None
        self.lr = 0.0

    def __call__(self, i: int) -> None:
        if self.step_based:  # the loader picks each batch's stage; follow it
            self.stage = self.pl.on_step(self.first_step + i)
        progress = (self.epoch + i / self.batches) / self.pl.schedule.epochs
        self.lr = learning_rate(self.cfg, progress, self.stage.lr_scale)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        self.reporter.advance(1, stage=self.stage.index, px=self.stage.image_size)


class _Transformed:
    """A dataset whose images pass through ``transform`` (the held-out set at the eval size)."""

    def __init__(self, dataset: Any, transform: Any) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        img, label = self.dataset[index]
        return self.transform(img), label
