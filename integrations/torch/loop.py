"""Progressive learning in a plain PyTorch loop: :class:`ProgressiveLearning` and
:func:`apply_stage`.

::

    pl = ProgressiveLearning("efficientnetv2-s", model, mixup=mixup, loader=loader)
    for epoch in range(pl.schedule.epochs):
        stage = pl.on_epoch_start(epoch)        # applies values only when the stage changes
        for images, targets in loader: ...
        log(pl.values)                           # {"stage": 1, "image_size": 185, ...}
        save({"model": ..., "progressive": pl.state_dict()})

Every value comes from the pure functions of :mod:`proglearn.schedule`; the class only
remembers which stage it last applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn
from torch.utils.data import DataLoader

from proglearn import Stage, load_schedule, stage_at_epoch, stage_at_step, stage_values

from .appliers import Appliers, KnobTargetError, ScheduleLike, apply_values, check_targets
from .data import BatchResize, RebuildLoader, StageBatchSampler, StageDataset, set_loader_epoch

__all__ = ["ProgressiveLearning", "apply_stage", "stage_log"]


def apply_stage(stage: Stage, *, model: nn.Module | None = None, mixup: Any = None,
                transform: Any = None, loss: Any = None, dropout_pattern: str | None = None,
                appliers: Appliers | None = None, skip: Iterable[str] = ()) -> dict[str, int]:
    """Apply a stage's knob values to their targets (functional form, no state).

    ``stage`` comes from :func:`proglearn.values_at_epoch` or :func:`proglearn.stage_values`.
    Returns ``{knob: targets set}``; see :func:`~.appliers.apply_values`.
    """
    return apply_values(stage.values, model=model, mixup=mixup, transform=transform, loss=loss,
                        dropout_pattern=dropout_pattern, appliers=appliers, skip=skip)


def stage_log(stage: Stage) -> dict[str, float | int | None]:
    """A flat dict for logging: stage, image_size, batch_size, lr_scale and every knob."""
    return {"stage": stage.index, "image_size": stage.image_size,
            "batch_size": stage.batch_size, "lr_scale": stage.lr_scale, **stage.values}


def _data_handles_randaug(loader: Any) -> bool:
    """Zero-rebuild and rebuild loaders build RandAugment per stage themselves."""
    return isinstance(loader, RebuildLoader) or (
        isinstance(loader, DataLoader) and isinstance(loader.batch_sampler, StageBatchSampler))


def _worker_copies(loader: Any, transform: Any) -> bool:
    """True when ``transform`` would be changed in the main process only (persistent workers)."""
    inner = loader.loader if isinstance(loader, BatchResize) else loader
    return (isinstance(inner, DataLoader) and inner.num_workers > 0
            and inner.persistent_workers and transform is not None)


class ProgressiveLearning:
    """Drive a schedule from a plain training loop.

    Args:
        schedule: a :class:`proglearn.Schedule`, a YAML path, a preset name or a dict.
        model: the model whose dropout / drop path is scheduled.
        mixup: a timm ``Mixup`` (``mixup_alpha``, ``cutmix_alpha``, ``label_smoothing``).
        transform: a transform holding a RandAugment, for the batch-resize mode or a loader you
            build yourself (zero-rebuild and rebuild loaders build it per stage instead).
        loader: a :func:`~.data.progressive_loader` DataLoader, a :class:`~.data.RebuildLoader`
            or a :class:`~.data.BatchResize`; its epoch is set by :meth:`on_epoch_start`.
        loss: a loss for ``label_smoothing`` when there is no ``mixup``.
        dropout_pattern: regex restricting dropout to matching module names.
        appliers: ``{knob: fn(value)}`` for custom knobs (or to override a built-in).
        data_handles_randaug: whether the data pipeline applies ``randaug_magnitude``; default
            ``True`` for zero-rebuild and rebuild loaders.

    Every knob of the schedule that is not 0 in every stage must find a target, checked here
    (:class:`~.appliers.KnobTargetError` otherwise).
    """

    def __init__(self, schedule: ScheduleLike,
                 model: nn.Module | None = None, *, mixup: Any = None, transform: Any = None,
                 loader: Any = None, loss: Any = None, dropout_pattern: str | None = None,
                 appliers: Appliers | None = None, data_handles_randaug: bool | None = None
                 ) -> None:
        self.schedule = load_schedule(schedule)
        self.model, self.mixup, self.transform, self.loader = model, mixup, transform, loader
        self.loss, self.dropout_pattern = loss, dropout_pattern
        self.appliers = dict(appliers or {})
        if data_handles_randaug is None:
            data_handles_randaug = _data_handles_randaug(loader)
        self._skip = {"randaug_magnitude"} if data_handles_randaug else set()
        check_targets(self.schedule, model=model, mixup=mixup, transform=transform, loss=loss,
                      dropout_pattern=dropout_pattern, appliers=self.appliers, skip=self._skip)
        if not data_handles_randaug and _worker_copies(loader, transform):
            raise KnobTargetError(
                "transform: randaug_magnitude set on the main process's transform cannot reach "
                "persistent DataLoader workers (received a loader with persistent_workers=True); "
                "use progressive_loader (zero-rebuild) or persistent_workers=False")
        if isinstance(loader, DataLoader) and isinstance(loader.dataset, StageDataset):
            _check_stage_transforms(loader.dataset, self._skip)
        self.epoch: int | None = None
        self.step: int | None = None
        self._stage: Stage | None = None

    # --- events --------------------------------------------------------------------------
    def on_epoch_start(self, epoch: int) -> Stage:
        """Enter ``epoch`` (0-based): set the loader's epoch, apply the stage if it changed."""
        self.epoch = epoch
        if self.loader is not None:
            set_loader_epoch(self.loader, epoch)
        return self._enter(stage_at_epoch(self.schedule, epoch))

    def on_step(self, step: int) -> Stage:
        """For step-based schedules (``steps_per_epoch`` set): enter global ``step`` (0-based).

        A zero-rebuild loader picks each batch's stage itself; a :class:`BatchResize` switches
        size at once; a :class:`RebuildLoader` follows at its next ``set_epoch``.
        """
        self.step = step
        index = stage_at_step(self.schedule, step)
        if isinstance(self.loader, BatchResize):
            self.loader.set_stage(index)
        return self._enter(index)

    def _enter(self, index: int) -> Stage:
        if self._stage is None or self._stage.index != index:
            stage = stage_values(self.schedule, index)
            apply_stage(stage, model=self.model, mixup=self.mixup, transform=self.transform,
                        loss=self.loss, dropout_pattern=self.dropout_pattern,
                        appliers=self.appliers, skip=self._skip)
            self._stage = stage
        return self._stage

    # --- state ---------------------------------------------------------------------------
    @property
    def stage(self) -> Stage:
        """The stage in effect (stage 0 before the first event)."""
        return self._stage if self._stage is not None else stage_values(self.schedule, 0)

    @property
    def values(self) -> dict[str, float | int | None]:
        """The values in effect, flat, for logging (:func:`stage_log`)."""
        return stage_log(self.stage)

    def state_dict(self) -> dict[str, Any]:
        """Only what cannot be recomputed: where training is (epoch, step)."""
        return {"epoch": self.epoch, "step": self.step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the position and re-apply its stage at once (dropout rates and the like are
        not part of a model's ``state_dict``)."""
        self.epoch, self.step = state.get("epoch"), state.get("step")
        self._stage = None
        if self.step is not None and self.schedule.steps_per_epoch is not None:
            self.on_step(self.step)
        elif self.epoch is not None:
            self.on_epoch_start(self.epoch)


def _check_stage_transforms(dataset: StageDataset, skip: set[str]) -> None:
    """In zero-rebuild mode, each stage with a non-zero magnitude must have built a
    RandAugment at that magnitude (the factory may have ignored the stage)."""
    from .appliers import _randaug_targets

    if "randaug_magnitude" not in skip:
        return
    for i, transform in enumerate(dataset.transforms):
        m = stage_values(dataset.schedule, i).values.get("randaug_magnitude", 0.0)
        if m and not _randaug_targets(transform):
            raise KnobTargetError(
                f"knob 'randaug_magnitude' (stage {i}: {m:g}) found no target: make_transform "
                f"built no timm/torchvision RandAugment for that stage (searched "
                f"{type(transform).__name__} through `.transforms` lists and `.transform` "
                "attributes); build one at stage.values['randaug_magnitude'], or pass "
                "data_handles_randaug=True if your transform applies it another way")
