"""Benchmark proglearn's PyTorch integration on this machine (CPU). Prints three tables:

1. **Stage-switch cost** of each data mode, with persistent workers: the extra wait for the
   first batch of an epoch that starts a new stage, over an epoch that stays in the same stage,
   in ms and in training steps of the tiny EfficientNetV2 (the step at the new stage's size and
   batch size). Also the model's own first step at a new input size (framework warm-up, paid by
   any progressive-resizing method).
2. **Per-step overhead** of the library: ``StageBatchSampler`` (index, stage) pairs over a plain
   ``BatchSampler``, ``StageDataset``'s per-item lookup over calling the transform directly,
   and ``ProgressiveLearning.on_epoch_start`` amortized over the epoch; as a % of a training
   step.
3. **Progressive vs fixed-size training** of the tiny EfficientNetV2 on Fashion-MNIST: training
   time of the schedule (adaptive) and of the same schedule in ``mode: fixed`` (end size, end
   batch size, end regularization throughout), the realized speedup and the FLOP-ideal one,
   ``1 / flop_cost_ratio = M · size_end² / Σ size_i²``.

Targets (issue 3): zero-rebuild stage switch <= one training step; overhead <= 0.5 %; realized
speedup >= 90 % of the ideal.

    python benchmarks/bench_torch.py            # ~5-8 min on a quiet 2-core CPU
    python benchmarks/bench_torch.py --quick    # fewer repetitions and a smaller subset
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from timm.data import Mixup
from torch.utils.data import BatchSampler, DataLoader, Dataset, SequentialSampler, Subset

import proglearn
from proglearn.integrations.torch import (
    BatchResize,
    ProgressiveLearning,
    RebuildLoader,
    StageDataset,
    progressive_loader,
)
from proglearn.integrations.torch.datasets import FashionMNIST
from proglearn.integrations.torch.train import train_one_epoch
from proglearn.integrations.torch.transforms import default_transform_factory, train_transform
from proglearn.models import efficientnetv2

CONFIG = os.path.join(os.path.dirname(__file__), "..", "examples", "configs",
                      "fashion_mnist_tiny.yaml")
MEAN, STD = (0.286,), (0.353,)


def machine() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch thread(s), load average {load:.1f} at start")


def transforms_kwargs() -> dict[str, Any]:
    return dict(in_chans=1, mean=MEAN, std=STD, scale=(0.8, 1.0))


# --- training step time ---------------------------------------------------------------------
def step_time(model: torch.nn.Module, size: int, batch: int, reps: int) -> float:
    """Mean seconds of one forward/backward/update of ``model`` at ``size`` px and ``batch``."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 1, size, size), torch.randint(0, 10, (batch,))
    model.train()
    times = []
    for i in range(reps + 2):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:  # the first steps at a new shape include framework warm-up
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def first_step_at_new_size(size: int, batch: int) -> tuple[float, float]:
    """(first step, median later step) of a fresh model at ``size``: the warm-up a new input
    shape costs the framework (oneDNN primitive creation), not the data pipeline."""
    model = efficientnetv2("tiny", num_classes=10, in_chans=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    step_time(model, 24, 8, 1)  # warm the framework up at another size first
    times = []
    x, y = torch.randn(batch, 1, size, size), torch.randint(0, 10, (batch,))
    for _ in range(4):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return times[0], statistics.median(times[1:])


# --- 1. stage-switch cost ---------------------------------------------------------------------
def first_batch_latency(loader: Any, epoch: int) -> float:
    """Seconds from ``set_epoch`` to the first batch of ``epoch``; then drains the epoch."""
    t = time.perf_counter()
    loader.set_epoch(epoch) if hasattr(loader, "set_epoch") else (
        loader.batch_sampler.set_epoch(epoch))
    it = iter(loader)
    next(it)
    latency = time.perf_counter() - t
    for _ in it:
        pass
    return latency


def switch_costs(loader: Any, spec: proglearn.Schedule, rounds: int) -> tuple[float, float]:
    """(median first-batch latency of epochs that start a new stage, of the epochs right after
    them, in the same stage and so with the same batch size), in seconds."""
    switch, stay = [], []
    first_batch_latency(loader, 0)  # start the workers
    for _ in range(rounds):
        for epoch in range(1, spec.epochs):
            latency = first_batch_latency(loader, epoch)
            new = proglearn.stage_at_epoch(spec, epoch) != proglearn.stage_at_epoch(spec, epoch - 1)
            if new:
                switch.append(latency)
            elif epoch >= 2 and proglearn.stage_at_epoch(spec, epoch - 1) != (
                    proglearn.stage_at_epoch(spec, epoch - 2)):
                stay.append(latency)  # the same stage as the switch just measured
        first_batch_latency(loader, 0)  # back to stage 0: another switch, not timed
    return statistics.median(switch), statistics.median(stay)


def bench_switch(data: Dataset[Any], workers: int, rounds: int,
                 steps: dict[int, float]) -> list[tuple[str, float, float, float]]:
    # 3 stages of 2 epochs: epochs 2 and 4 switch, 1, 3, 5 stay.
    spec = proglearn.Schedule(epochs=6, stages=3, image_size={"start": 32, "end": 56},
                              knobs={"randaug_magnitude": [2, 8]},
                              batch_size={"size": 64, "policy": "pixels", "multiple": 8})
    make = default_transform_factory(**transforms_kwargs())
    rows = []

    def row(name: str, loader: Any) -> None:
        switch, stay = switch_costs(loader, spec, rounds)
        cost = switch - stay
        rows.append((name, cost * 1e3, cost / steps[56], stay * 1e3))

    zero = progressive_loader(data, spec, make, num_workers=workers, persistent_workers=True)
    row("zero-rebuild (progressive_loader)", zero)
    del zero

    def make_loader(stage: proglearn.Stage) -> DataLoader[Any]:
        ds = _Transformed(data, make(stage))
        return DataLoader(ds, batch_size=stage.batch_size, shuffle=True, num_workers=workers,
                          persistent_workers=True)

    row("rebuild (RebuildLoader)", RebuildLoader(make_loader, spec))

    fixed_size = train_transform(56, 8, **transforms_kwargs())
    plain = DataLoader(_Transformed(data, fixed_size), batch_size=64, shuffle=True,
                       num_workers=workers, persistent_workers=True)
    resize_spec = spec.replace(batch_size={"size": 64})
    row("batch resize (BatchResize)", BatchResize(plain, resize_spec))
    return rows


class _Transformed(Dataset[Any]):
    def __init__(self, data: Dataset[Any], transform: Callable[[Any], Any]) -> None:
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Any:
        img, label = self.data[i]
        return self.transform(img), label


class _Tensors(Dataset[Any]):
    """``n`` tiny (image, label) samples that cost nothing to fetch."""

    def __init__(self, n: int) -> None:
        self.images, self.n = torch.zeros(n, 1, 4, 4), n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return self.images[i], i % 10


class _ScaleBy:
    """``make_transform(stage)`` returning a near-free transform."""

    def __call__(self, stage: proglearn.Stage) -> Callable[[Any], Any]:
        return lambda x: x


# --- 2. per-step overhead ----------------------------------------------------------------------
def bench_overhead(data: Dataset[Any], reps: int, steps: dict[int, float]) -> dict[str, float]:
    spec = proglearn.load_schedule(CONFIG)
    stage = proglearn.stage_values(spec, spec.stages - 1)
    size, batch = stage.image_size, stage.batch_size or 64
    make = default_transform_factory(**transforms_kwargs())
    n = len(data)  # type: ignore[arg-type]

    # a) batch sampler: (index, stage) pairs vs plain indices, per batch
    from proglearn.integrations.torch import StageBatchSampler

    ours = StageBatchSampler(SequentialSampler(range(n)), spec)
    ours.set_epoch(spec.epochs - 1)
    theirs = BatchSampler(SequentialSampler(range(n)), batch, drop_last=False)
    t_ours = _per(lambda: sum(1 for _ in ours), reps) / len(ours)
    t_theirs = _per(lambda: sum(1 for _ in theirs), reps) / len(theirs)

    # b) StageDataset's (index, stage) lookup vs indexing the dataset and calling the same
    #    transform directly, per item. A cheap transform isolates the lookup: RandAugment's
    #    random op choice would make two runs of the real transform differ by more than it.
    tensors = _Tensors(n)
    wrapped = StageDataset(tensors, _ScaleBy(), spec)
    direct = _Transformed(tensors, wrapped.transforms[stage.index])
    idx = list(range(min(n, 2048)))
    t_wrapped = _per(lambda: [wrapped[(i, stage.index)] for i in idx], reps) / len(idx)
    t_direct = _per(lambda: [direct[i] for i in idx], reps) / len(idx)
    real = _Transformed(data, make(stage))
    t_transform = _per(lambda: [real[i] for i in idx[:256]], 1) / 256

    # c) ProgressiveLearning.on_epoch_start, amortized over the epoch's steps
    model = efficientnetv2("tiny", num_classes=10, in_chans=1)
    mixup = Mixup(mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.0, num_classes=10)
    loader = progressive_loader(data, spec, make, num_workers=0)
    pl = ProgressiveLearning(spec, model, mixup=mixup, loader=loader)
    epochs = list(range(spec.epochs))
    t_epoch = _per(lambda: [pl.on_epoch_start(e) for e in epochs] + [pl.on_epoch_start(0)],
                   reps) / (len(epochs) + 1)
    steps_per_epoch = max(1, len(loader))

    step = steps[size]
    per_step = {
        "batch sampler (per batch)": max(0.0, t_ours - t_theirs),
        "StageDataset lookup (per batch)": max(0.0, t_wrapped - t_direct) * batch,
        "on_epoch_start (per step, amortized)": t_epoch / steps_per_epoch,
    }
    per_step["total"] = sum(per_step.values())
    return {"size": size, "batch": batch, "step": step, **per_step,
            "transform per item": t_transform}


def _per(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# --- 3. progressive vs fixed ---------------------------------------------------------------------
def bench_speedup(data: Dataset[Any], workers: int, epochs: int | None) -> dict[str, Any]:
    spec = proglearn.load_schedule(CONFIG)
    if epochs is not None:
        spec = spec.replace(epochs=epochs)
    out: dict[str, Any] = {"ideal": 1 / proglearn.flop_cost_ratio(spec), "epochs": spec.epochs}
    for mode in ("adaptive", "fixed"):
        s = spec.replace(mode=mode)
        torch.manual_seed(0)
        model = efficientnetv2("tiny", num_classes=10, in_chans=1)
        mixup = Mixup(mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.0, num_classes=10)
        loader = progressive_loader(data, s, default_transform_factory(**transforms_kwargs()),
                                    num_workers=workers, persistent_workers=workers > 0)
        pl = ProgressiveLearning(s, model, mixup=mixup, loader=loader)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
        times = []
        for epoch in range(s.epochs):
            pl.on_epoch_start(epoch)
            times.append(train_one_epoch(model, loader, opt, mixup=mixup)["seconds"])
        out[mode] = times
    out["realized"] = sum(out["fixed"]) / sum(out["adaptive"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions, smaller subset")
    p.add_argument("--subset", type=int, default=None, help="Fashion-MNIST training images")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=None, help="override the schedule's epochs "
                   "for part 3")
    p.add_argument("--skip", default="", help="comma list of parts to skip: switch,overhead,"
                   "speedup")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    subset_n = args.subset or (1024 if args.quick else 3000)
    reps = 2 if args.quick else 5
    full = FashionMNIST("train")
    data = Subset(full, range(subset_n))
    print(f"machine: {machine()}")
    print(f"data: Fashion-MNIST, {subset_n} training images, {args.workers} persistent "
          f"workers; model: tiny EfficientNetV2 "
          f"({sum(p.numel() for p in efficientnetv2('tiny', 10, in_chans=1).parameters()):,} "
          "parameters)\n")

    model = efficientnetv2("tiny", num_classes=10, in_chans=1)
    spec = proglearn.load_schedule(CONFIG)
    steps = {}
    for s, b in ((32, 192), (40, 120), (48, 80), (56, 64)):
        steps[s] = step_time(model, s, b, reps)
    print("training step (forward + backward + AdamW) of the tiny EfficientNetV2:")
    for s, b in ((32, 192), (40, 120), (48, 80), (56, 64)):
        print(f"  {s:>3} px, batch {b:>3}: {steps[s] * 1e3:7.1f} ms")
    first, later = first_step_at_new_size(56, 64)
    print(f"  first step at a new input size (56 px): {first * 1e3:.0f} ms vs {later * 1e3:.0f} "
          "ms later (framework warm-up of a new shape, paid by every progressive method)\n")

    if "switch" not in skip:
        rounds = 1 if args.quick else 3
        print("1. stage-switch cost, persistent workers: first-batch wait of an epoch that starts "
              "a new stage\n   minus that of the next epoch (same stage, same batch size); "
              "medians; steps at 56 px, batch 64:")
        print(f"  {'mode':<36}{'switch cost':>14}{'in steps':>10}{'first batch, no switch':>26}")
        for name, ms, in_steps, stay in bench_switch(data, args.workers, rounds, steps):
            print(f"  {name:<36}{ms:>11.1f} ms{in_steps:>10.2f}{stay:>23.1f} ms")
        print("  target: zero-rebuild <= 1 step\n")

    if "overhead" not in skip:
        o = bench_overhead(data, reps, steps)
        print(f"2. library overhead per training step (last stage: {o['size']} px, batch "
              f"{o['batch']}, step {o['step'] * 1e3:.1f} ms):")
        for key in ("batch sampler (per batch)", "StageDataset lookup (per batch)",
                    "on_epoch_start (per step, amortized)", "total"):
            print(f"  {key:<40}{o[key] * 1e6:>10.1f} us{100 * o[key] / o['step']:>9.3f} %")
        print(f"  (for scale: the image transform itself costs {o['transform per item'] * 1e6:.0f}"
              f" us per image, {o['transform per item'] * o['batch'] * 1e3:.1f} ms per batch, "
              "in the workers)")
        print("  target: <= 0.5 %\n")

    if "speedup" not in skip:
        r = bench_speedup(data, args.workers, args.epochs)
        print(f"3. progressive vs fixed-size training, {r['epochs']} epochs of {subset_n} images "
              f"({spec.image_size.start}->{spec.image_size.end} px; fixed: "
              f"{spec.image_size.end} px throughout):")
        print("  epoch seconds, progressive: " + " ".join(f"{t:.1f}" for t in r["adaptive"]))
        print("  epoch seconds, fixed:       " + " ".join(f"{t:.1f}" for t in r["fixed"]))
        print(f"  total: progressive {sum(r['adaptive']):.1f} s, fixed {sum(r['fixed']):.1f} s")
        print(f"  speedup: realized {r['realized']:.2f}x, FLOP-ideal {r['ideal']:.2f}x "
              f"(1/flop_cost_ratio) -> {100 * r['realized'] / r['ideal']:.0f} % of ideal")
        spec3 = spec.replace(epochs=r["epochs"])
        prog = sum(math.ceil(subset_n / (row.batch_size or 64)) * steps[row.image_size]
                   * (row.epoch_end - row.epoch_start) for row in proglearn.plan(spec3))
        fixed = math.ceil(subset_n / 64) * steps[56] * spec3.epochs
        print(f"  model compute alone (step table x steps, no data loading): progressive "
              f"{prog:.1f} s, fixed {fixed:.1f} s -> {fixed / prog:.2f}x "
              f"({100 * fixed / prog / r['ideal']:.0f} % of ideal)")
        print("  target: >= 90 % of ideal")


if __name__ == "__main__":
    main()
