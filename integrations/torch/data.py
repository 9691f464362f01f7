"""Stage-aware data loading, three ways behind one interface (``set_epoch(epoch)``, iterate).

* **zero-rebuild** (default, :func:`progressive_loader`): :class:`StageBatchSampler` tags every
  index with the stage, ``(index, stage)``, in the main process; :class:`StageDataset` applies
  that stage's transform, built once per stage by ``make_transform(stage)``. The stage travels
  with the indices, so it reaches ``num_workers > 0`` and ``persistent_workers=True`` workers
  without rebuilding anything, the batch size can change per stage, and every rank of a
  ``torch.distributed`` job computes the same stage from the same ``(schedule, epoch)``.
  (The same pairs protocol as timm's ``ScheduledBatchSampler``/``ScheduledTransformDataset``;
  :class:`StageDataset` *is* a ``ScheduledTransformDataset``.)
* **rebuild** (:class:`RebuildLoader`): ``make_loader(stage) -> DataLoader`` is called again
  when, and only when, the stage changes.
* **batch resize** (:class:`BatchResize`, :func:`resize_batch`): resize each decoded batch to
  the stage's size, for loaders nobody can touch (DALI, FFCV, streaming).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.data import ScheduledTransformDataset
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from proglearn import Stage, load_schedule, stage_at_epoch, stage_at_step, stage_values

from .appliers import ScheduleLike

__all__ = [
    "BatchResize",
    "RebuildLoader",
    "SeededRandomSampler",
    "StageBatchSampler",
    "StageDataset",
    "progressive_loader",
    "resize_batch",
    "set_loader_epoch",
]

Sized = Sequence[Any] | Dataset[Any]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: must be an integer >= 1 (received {value!r})")
    return value


class SeededRandomSampler(RandomSampler):
    """A ``RandomSampler`` whose order is a pure function of ``(seed, epoch)``.

    ``torch.randperm`` with a generator seeded ``seed + epoch`` (as ``DistributedSampler``
    does), so a resumed run sees the same order as an uninterrupted one. Being a
    ``RandomSampler``, Lightning recognises the loader as shuffled.
    """

    def __init__(self, data_source: Sized, seed: int = 0) -> None:
        super().__init__(data_source)  # type: ignore[arg-type]
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=g).tolist()  # type: ignore[arg-type]


class StageBatchSampler(BatchSampler):
    """Batches of ``(index, stage_index)`` pairs; the stage is a pure function of the epoch.

    ``set_epoch(epoch)`` selects the epoch (and forwards it to ``sampler``, e.g. a
    ``DistributedSampler``). Every batch of epoch ``e`` is in stage
    ``stage_at_epoch(schedule, e)``. If the schedule has ``steps_per_epoch``, batch ``b`` of
    epoch ``e`` is instead in ``stage_at_step(schedule, e · steps_per_epoch + b)``, so a stage
    can start mid-epoch. A stage's batch size is ``stage.batch_size`` when the schedule has a
    ``batch_size`` policy, else ``batch_size``. The last partial batch is kept unless
    ``drop_last``. ``len()`` is the number of batches of the current epoch.

    Lightning re-instantiates it with a ``DistributedSampler`` in place of ``sampler``.
    """

    def __init__(self, sampler: Sampler[int] | Sequence[int], schedule: ScheduleLike,
                 batch_size: int | None = None, drop_last: bool = False) -> None:
        # BatchSampler.__init__ only validates an int batch size; ours may come from the schedule.
        if not hasattr(sampler, "__len__"):
            raise TypeError(f"sampler: must have a length (received {type(sampler).__name__})")
        self.sampler = sampler
        self.schedule = load_schedule(schedule)
        if batch_size is not None:
            _check_positive_int("batch_size", batch_size)
        elif self.schedule.batch_size is None:
            raise ValueError("batch_size: required when the schedule has no batch_size policy "
                             "(received None)")
        self.batch_size = batch_size  # type: ignore[assignment]  # None: from the schedule
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self._sizes: list[int] = [stage_values(self.schedule, i).batch_size or batch_size or 0
                                  for i in range(self.schedule.stages)]
        self._cache: tuple[tuple[int, int], list[tuple[int, int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def plan(self, epoch: int | None = None) -> list[tuple[int, int]]:
        """``[(stage_index, batch_size), …]`` for every batch of ``epoch`` (default: current)."""
        epoch = self.epoch if epoch is None else epoch
        n = len(self.sampler)  # type: ignore[arg-type]
        if self._cache is not None and self._cache[0] == (epoch, n):
            return self._cache[1]
        spec, out = self.schedule, list[tuple[int, int]]()
        if spec.steps_per_epoch is None:
            s = stage_at_epoch(spec, epoch)
            full, rest = divmod(n, self._sizes[s])
            out = [(s, self._sizes[s])] * full + ([(s, rest)] if rest and not self.drop_last
                                                  else [])
        else:
            step, left = epoch * spec.steps_per_epoch, n
            while left > 0:
                s = stage_at_step(spec, step)
                size = self._sizes[s]
                if size > left:
                    if self.drop_last:
                        break
                    size = left
                out.append((s, size))
                left -= size
                step += 1
        self._cache = ((epoch, n), out)
        return out

    @property
    def stage(self) -> Stage:
        """Values of the stage the current epoch starts in."""
        return stage_values(self.schedule, self.stage_index)

    @property
    def stage_index(self) -> int:
        p = self.plan()
        return p[0][0] if p else stage_at_epoch(self.schedule, self.epoch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:  # type: ignore[override]
        indices = iter(self.sampler)
        for stage, size in self.plan():
            batch = [(int(i), stage) for _, i in zip(range(size), indices, strict=False)]
            if not batch:
                return
            yield batch

    def __len__(self) -> int:
        return len(self.plan())


class StageDataset(ScheduledTransformDataset):
    """A map-style dataset whose ``__getitem__((index, stage))`` applies that stage's transform.

    ``make_transform(stage)`` is called once per stage, here, with each
    :class:`proglearn.Stage` (image size, knob values such as ``randaug_magnitude``). The
    transform applies to the first element of each ``(image, target, …)`` sample. Works inside
    persistent workers because the stage arrives with each index.
    """

    def __init__(self, dataset: Dataset[Any], make_transform: Callable[[Stage], Callable[..., Any]],
                 schedule: ScheduleLike) -> None:
        if not callable(make_transform):
            raise TypeError(f"make_transform: must be callable as make_transform(stage) "
                            f"(received {make_transform!r})")
        self.schedule = load_schedule(schedule)
        self.make_transform = make_transform
        stages = [stage_values(self.schedule, i) for i in range(self.schedule.stages)]
        super().__init__(dataset, [make_transform(s) for s in stages])

    def __getitem__(self, index: tuple[int, int]) -> Any:
        if not isinstance(index, (tuple, list)) or len(index) != 2:
            raise TypeError(
                f"StageDataset expects (index, stage) pairs from StageBatchSampler (received "
                f"{index!r}); for evaluation use the base dataset with an eval transform")
        return super().__getitem__(index)


def progressive_loader(
    dataset: Dataset[Any], schedule: ScheduleLike,
    make_transform: Callable[[Stage], Callable[..., Any]] | None = None, *,
    batch_size: int | None = None,
    shuffle: bool = True, num_workers: int = 0, persistent_workers: bool = False, seed: int = 0,
    drop_last: bool = False, distributed: bool | None = None, **loader_kwargs: Any,
) -> DataLoader[Any]:
    """The zero-rebuild loader: a ``DataLoader`` over :class:`StageDataset` batched by
    :class:`StageBatchSampler`.

    ``make_transform(stage)`` builds each stage's training transform; the default is
    :func:`~proglearn.integrations.torch.default_transform_factory` (timm's training transform
    at ``stage.image_size`` with RandAugment at the stage's magnitude).

    Call ``set_loader_epoch(loader, epoch)`` (or ``loader.batch_sampler.set_epoch(epoch)``, or
    let :class:`~proglearn.integrations.torch.ProgressiveLearning` do it) before iterating
    each epoch. Order is a pure function of ``(seed, epoch)``. ``distributed=None`` shards with
    a ``DistributedSampler`` when ``torch.distributed`` is initialized: each rank gets a
    disjoint share (padded to equal length), the same stage and the same batch count. Other
    keyword arguments go to ``DataLoader`` (``pin_memory``, ``collate_fn``, …); its worker
    seeds come from ``generator``, by default ``torch.Generator().manual_seed(seed)``.
    """
    spec = load_schedule(schedule)
    if make_transform is None:
        from .transforms import default_transform_factory

        make_transform = default_transform_factory()
    data = StageDataset(dataset, make_transform, spec)
    if distributed is None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    sampler: Sampler[int]
    if distributed:
        sampler = DistributedSampler(data, shuffle=shuffle, seed=seed)
    elif shuffle:
        sampler = SeededRandomSampler(data, seed=seed)
    else:
        sampler = SequentialSampler(data)
    loader_kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
    return DataLoader(data, batch_sampler=StageBatchSampler(sampler, spec, batch_size, drop_last),
                      num_workers=num_workers, persistent_workers=persistent_workers,
                      **loader_kwargs)


def set_loader_epoch(loader: Any, epoch: int) -> None:
    """Tell any loader the epoch: ``loader.set_epoch`` (RebuildLoader, BatchResize), else its
    batch sampler's and sampler's ``set_epoch`` (a DataLoader)."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
        return
    for name in ("batch_sampler", "sampler"):
        part = getattr(loader, name, None)
        if part is not None and hasattr(part, "set_epoch"):
            part.set_epoch(epoch)


class RebuildLoader:
    """Rebuild mode: ``make_loader(stage) -> DataLoader``, called again only when the stage
    changes.

    ``set_epoch(epoch)`` picks the stage (``stage_at_epoch``), rebuilds if it changed (the old
    loader and its workers are released) and forwards the epoch to the loader's samplers.
    Iterate it like the loader. ``rebuilds`` counts calls of ``make_loader``.
    """

    def __init__(self, make_loader: Callable[[Stage], Any], schedule: ScheduleLike) -> None:
        if not callable(make_loader):
            raise TypeError(f"make_loader: must be callable as make_loader(stage) "
                            f"(received {make_loader!r})")
        self.make_loader = make_loader
        self.schedule = load_schedule(schedule)
        self.epoch = 0
        self.rebuilds = 0
        self._index: int | None = None
        self._loader: Any = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        index = stage_at_epoch(self.schedule, epoch)
        if index != self._index:
            self._loader = None  # release the old loader (and its workers) first
            self._loader = self.make_loader(stage_values(self.schedule, index))
            self._index = index
            self.rebuilds += 1
        set_loader_epoch(self._loader, epoch)

    @property
    def loader(self) -> Any:
        """The current stage's loader (built on first use)."""
        if self._loader is None:
            self.set_epoch(self.epoch)
        return self._loader

    @property
    def stage(self) -> Stage:
        return stage_values(self.schedule, stage_at_epoch(self.schedule, self.epoch))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.loader)


def resize_batch(images: torch.Tensor, size: int | tuple[int, int], *, mode: str = "bilinear",
                 antialias: bool | None = None) -> torch.Tensor:
    """Resize an ``[N, C, H, W]`` batch to ``size`` with ``F.interpolate``.

    ``antialias=None`` turns antialiasing on when shrinking with ``bilinear``/``bicubic`` (the
    only modes that support it). Integer batches (uint8) are resized in float and rounded
    back. A batch already at ``size`` is returned as is.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images: must be a tensor [N, C, H, W] (received {shape})")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in hw):
        raise ValueError(f"size: must be a positive int or (height, width) (received {size!r})")
    if tuple(images.shape[-2:]) == hw:
        return images
    smooth = mode in ("bilinear", "bicubic")
    if antialias is None:
        antialias = smooth and (hw[0] < images.shape[-2] or hw[1] < images.shape[-1])
    elif antialias and not smooth:
        raise ValueError(f"antialias: only supported with mode 'bilinear' or 'bicubic' "
                         f"(received mode={mode!r})")
    x = images if images.is_floating_point() else images.float()
    out = F.interpolate(x, size=hw, mode=mode, antialias=antialias,
                        **({"align_corners": False} if smooth else {}))
    if not images.is_floating_point():
        info = torch.iinfo(images.dtype)
        out = out.round_().clamp_(info.min, info.max).to(images.dtype)
    return out


class BatchResize:
    """Batch-resize mode: wrap an untouchable loader and resize each batch's images to the
    stage size (:func:`resize_batch`).

    ``image_key`` selects the images in a batch (position in a tuple/list, key of a dict; a
    bare tensor batch is the images). ``set_epoch(epoch)`` selects the stage and forwards the
    epoch to the loader; ``set_stage(index)`` switches mid-epoch (step-based schedules). The
    batch size cannot change in this mode: a schedule whose batch size varies is an error.
    """

    def __init__(self, loader: Any, schedule: ScheduleLike, *, mode: str = "bilinear",
                 antialias: bool | None = None, image_key: int | str = 0) -> None:
        self.loader = loader
        self.schedule = load_schedule(schedule)
        self.mode, self.antialias, self.image_key = mode, antialias, image_key
        sizes = {stage_values(self.schedule, i).batch_size or 0
                 for i in range(self.schedule.stages)}
        if len(sizes) > 1:
            raise ValueError(
                f"schedule.batch_size: the batch-resize mode cannot change the batch size "
                f"(received a schedule whose batch sizes are {sorted(sizes)}); use "
                "progressive_loader or RebuildLoader")
        self.epoch = 0
        self.stage = stage_values(self.schedule, stage_at_epoch(self.schedule, 0))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.set_stage(stage_at_epoch(self.schedule, epoch))
        set_loader_epoch(self.loader, epoch)

    def set_stage(self, index: int) -> None:
        if index != self.stage.index:
            self.stage = stage_values(self.schedule, index)

    def _resize(self, batch: Any) -> Any:
        size = self.stage.image_size
        fn = lambda x: resize_batch(x, size, mode=self.mode, antialias=self.antialias)  # noqa: E731
        if isinstance(batch, torch.Tensor):
            return fn(batch)
        if isinstance(batch, Mapping):
            return {**batch, self.image_key: fn(batch[self.image_key])}
        if isinstance(batch, (tuple, list)) and isinstance(self.image_key, int):
            items = list(batch)
            items[self.image_key] = fn(items[self.image_key])
            return type(batch)(items) if isinstance(batch, list) else tuple(items)
        raise TypeError(f"BatchResize: cannot find images at image_key={self.image_key!r} in a "
                        f"batch of type {type(batch).__name__}")

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            yield self._resize(batch)

    def __len__(self) -> int:
        return len(self.loader)

