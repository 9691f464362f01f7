"""Progressive learning for Lightning: one callback, :class:`ProgressiveLearning`.

::

    from proglearn.integrations.lightning import ProgressiveLearning

    trainer = L.Trainer(max_epochs=12, callbacks=[ProgressiveLearning("schedule.yaml")])

The callback is a thin translation of Lightning's events into calls of the pure core
(:mod:`proglearn.schedule`) and of the PyTorch appliers and data modes
(:mod:`proglearn.integrations.torch`); it adds no schedule arithmetic of its own.

What it needs from your code (the whole contract)
-------------------------------------------------
**The LightningModule** holds the network: ``dropout`` and ``drop_path`` are set on its
submodules (``nn.Dropout*`` ``p``, timm ``drop_rate``, timm ``DropPath`` / torchvision
``StochasticDepth``; ``dropout_pattern`` restricts dropout to matching module names).
``mixup_alpha``, ``cutmix_alpha`` and ``label_smoothing`` go to a timm ``Mixup`` held as an
attribute of the module; without one, ``label_smoothing`` goes to an ``nn.CrossEntropyLoss``
(or timm ``LabelSmoothingCrossEntropy``) submodule. Any knob that finds none of these — your
own knobs too — is written to a number attribute of the same name on the module (e.g.
``self.label_smoothing``, read in ``training_step``), or to ``appliers={"name": fn}``.

**The train loader** (``train_dataloader`` of your LightningDataModule or of the module itself)
follows the ``data`` mode:

``"progressive"`` (default, zero-rebuild)
    ``train_dataloader`` returns ``ProgressiveLearning.of(self.trainer).train_loader(dataset,
    batch_size=..., num_workers=..., persistent_workers=True)`` (or
    :func:`~proglearn.integrations.torch.progressive_loader` with ``distributed=False``), and a
    transform factory ``make_transform(stage) -> transform`` exists: passed to the callback, or
    defined on the DataModule, or on the LightningModule. Each stage's transform is built once
    and the stage travels with the batch indices, so persistent workers and DDP need nothing
    else. A schedule whose batch size changes also needs
    ``Trainer(reload_dataloaders_every_n_epochs=1)``: Lightning counts an epoch's batches when
    it loads the loader.
``"rebuild"``
    ``Trainer(reload_dataloaders_every_n_epochs=1)``, and ``train_dataloader`` builds an
    ordinary loader for ``ProgressiveLearning.of(self.trainer).stage`` (``image_size``,
    ``batch_size``, ``values["randaug_magnitude"]``). Lightning shards it under DDP.
``"resize"``
    ``train_dataloader`` returns :class:`~proglearn.integrations.torch.BatchResize` around a
    loader you cannot change; each batch is resized to the stage's size (no RandAugment
    scheduling, constant batch size, and under DDP shard it yourself).
``"manual"``
    The callback leaves the data alone; your code reads ``ProgressiveLearning.of(trainer).stage``.

A schedule whose image size, batch size and RandAugment magnitude never change needs no data
mode at all.

Checks
------
Arguments are checked in ``__init__``; the environment in ``setup`` (the schedule is longer
than ``max_epochs``; a knob has no target; ``"progressive"`` has no transform factory;
``"rebuild"`` or a changing batch size without reloading at every stage start), and the train
loader, once Lightning has built it, in ``on_train_start`` — all before any training step.

Logging, checkpoints, DDP
-------------------------
Every epoch logs ``proglearn/stage``, ``proglearn/image_size``, ``proglearn/batch_size``,
``proglearn/lr_scale`` and ``proglearn/<knob>`` through ``LightningModule.log`` (so every
logger — CSV, TensorBoard, … — gets them, with the epoch). Stages are a pure function of
``trainer.current_epoch``, so a resumed run recomputes them: the checkpoint holds only the
schedule, to warn when a run is resumed under a different one. Every DDP rank computes the
same stage from the same epoch; Lightning re-instantiates the zero-rebuild batch sampler
around its ``DistributedSampler``, so ranks see disjoint samples.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch.utils.data import DataLoader

from proglearn import (
    Schedule,
    Stage,
    dump_schedule,
    is_zero,
    load_schedule,
    schedule_from_yaml,
    stage_at_epoch,
    stage_at_step,
    stage_values,
)
from proglearn.integrations.torch import (
    BatchResize,
    KnobTargetError,
    StageBatchSampler,
    progressive_loader,
    set_loader_epoch,
    stage_log,
)
from proglearn.integrations.torch import ProgressiveLearning as _Core
from proglearn.integrations.torch.appliers import is_number, is_smoothing_loss, is_timm_mixup

__all__ = ["ProgressiveLearning"]

DataMode = Literal["progressive", "rebuild", "resize", "manual"]
_DATA_MODES = ("progressive", "rebuild", "resize", "manual")
#: Knobs whose targets are modules of the network or the data pipeline, never a plain attribute.
_STRUCTURAL = ("dropout", "drop_path", "randaug_magnitude")


class ProgressiveLearning(Callback):
    """Progressive learning with adaptive regularization as a Lightning callback.

    Args:
        schedule: a :class:`proglearn.Schedule`, a YAML path, a preset name or a dict.
        data: how the train loader follows the stage: ``"progressive"`` (zero-rebuild,
            default), ``"rebuild"``, ``"resize"`` or ``"manual"`` (see the module docs).
        make_transform: the transform factory ``make_transform(stage) -> transform`` of the
            ``"progressive"`` mode; default: a ``make_transform`` method of the DataModule,
            else of the LightningModule.
        dropout_pattern: regular expression; only modules whose qualified name matches
            (``re.search``) get the dropout rate.
        appliers: ``{knob: fn(value)}`` for knobs applied by your own code.
        log: log the stage values every epoch as ``proglearn/<name>``.

    Example::

        trainer = L.Trainer(max_epochs=12, callbacks=[ProgressiveLearning("my_schedule.yaml")])

    Or from a LightningCLI config::

        trainer:
          callbacks:
            - class_path: proglearn.integrations.lightning.ProgressiveLearning
              init_args: {schedule: examples/configs/lightning_cli_schedule.yaml}
    """

    def __init__(
        self,
        schedule: str | dict[str, Any] | Schedule,
        *,
        data: DataMode = "progressive",
        make_transform: Callable[[Stage], Callable[..., Any]] | None = None,
        dropout_pattern: str | None = None,
        appliers: dict[str, Callable[[float], Any]] | None = None,
        log: bool = True,
    ) -> None:
        super().__init__()
        self.schedule = load_schedule(schedule)
        if data not in _DATA_MODES:
            raise ValueError(f"data: must be one of {', '.join(map(repr, _DATA_MODES))} "
                             f"(received {data!r})")
        if make_transform is not None and not callable(make_transform):
            raise TypeError(f"make_transform: must be callable as make_transform(stage) "
                            f"(received {make_transform!r})")
        if dropout_pattern is not None:
            try:
                re.compile(dropout_pattern)
            except (re.error, TypeError) as exc:
                raise ValueError(f"dropout_pattern: must be a regular expression "
                                 f"(received {dropout_pattern!r}: {exc})") from None
        appliers = dict(appliers or {})
        for name, fn in appliers.items():
            if not isinstance(name, str) or not callable(fn):
                raise TypeError(f"appliers: must map knob names to callables fn(value) "
                                f"(received {name!r}: {fn!r})")
        if not isinstance(log, bool):
            raise TypeError(f"log: must be True or False (received {log!r})")
        self.data: DataMode = data
        self.make_transform = make_transform
        self.dropout_pattern = dropout_pattern
        self.appliers = appliers
        self.log = log
        self._trainer: pl.Trainer | None = None
        self._core: _Core | None = None
        self._factory: Callable[[Stage], Any] | None = None
        self._epoch_stage: Stage | None = None
        self._restart = False

    # --- for your DataModule / LightningModule ----------------------------------------------
    @classmethod
    def of(cls, trainer: pl.Trainer | None) -> ProgressiveLearning:
        """The ``ProgressiveLearning`` callback of ``trainer`` (e.g. ``self.trainer`` inside
        ``train_dataloader``)."""
        found = [cb for cb in getattr(trainer, "callbacks", None) or []
                 if isinstance(cb, cls)]
        if len(found) != 1:
            raise RuntimeError(
                f"ProgressiveLearning.of(trainer): expected exactly one ProgressiveLearning "
                f"callback in trainer.callbacks (received {len(found)}"
                f"{'' if trainer is not None else '; trainer is None: not attached yet'})")
        return found[0]

    @property
    def stage(self) -> Stage:
        """The stage of the current epoch (``trainer.current_epoch``; stage 0 before fit).

        A pure function of the trainer's epoch, so it is already right inside
        ``train_dataloader`` when Lightning reloads the loader for a new epoch.
        """
        epoch = self._trainer.current_epoch if self._trainer is not None else 0
        return stage_values(self.schedule, self._stage_index(epoch))

    def train_loader(self, dataset: Any, *,
                     make_transform: Callable[[Stage], Callable[..., Any]] | None = None,
                     **kwargs: Any) -> DataLoader[Any]:
        """The zero-rebuild train loader for this schedule:
        :func:`~proglearn.integrations.torch.progressive_loader` with the callback's schedule
        and transform factory, ``distributed=False`` (Lightning injects its
        ``DistributedSampler``), set to the trainer's current epoch. Other keyword arguments
        (``batch_size``, ``num_workers``, ``persistent_workers``, ``seed``, …) go to
        ``progressive_loader``.
        """
        factory = make_transform or self._factory or self.make_transform
        if factory is None:
            raise ValueError(
                "make_transform: train_loader() needs a transform factory make_transform(stage)"
                " (received None); pass it here, to ProgressiveLearning(make_transform=...), "
                "or define make_transform(self, stage) on your DataModule or LightningModule")
        kwargs.setdefault("distributed", False)
        loader = progressive_loader(dataset, self.schedule, factory, **kwargs)
        if self._trainer is not None:
            set_loader_epoch(loader, self._trainer.current_epoch)
        return loader

    # --- Lightning hooks ----------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._trainer = trainer
        ProgressiveLearning.of(trainer)  # exactly one
        self._check_epochs(trainer)
        self._check_data(trainer, pl_module)
        if not is_overridden("configure_model", pl_module):
            self._core = self._build_core(pl_module)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._core is None:  # the network is built in configure_model()
            self._core = self._build_core(pl_module)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning creates the train iterator, and worker processes start drawing batches,
        # before any epoch hook; on a resumed run it does so even before its epoch counter
        # and the samplers' epochs are final (Lightning issue #21938). So: set the epoch here
        # and restart an iterator that drew another stage's batches; and on a resumed run
        # with workers, restart it once more at the first epoch start, when all is final.
        loaders = _flatten(trainer.train_dataloader)
        self._check_loaders(trainer, loaders)
        stale = any(_drawn_ahead(dl, trainer.current_epoch) for dl in loaders)
        self._enter_epoch(trainer, first=True)
        if stale:
            _restart_iterator(trainer)
        self._restart = (trainer.ckpt_path is not None and not stale
                         and any(map(_has_workers, loaders)))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._enter_epoch(trainer)
        if self._restart:
            self._restart = False
            _restart_iterator(trainer)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        spe = self.schedule.steps_per_epoch
        if spe is not None:
            self._core_or_raise().on_step(trainer.current_epoch * spe + batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.log and self._epoch_stage is not None:
            values = stage_log(self._epoch_stage)
            if values["batch_size"] is None:
                values["batch_size"] = _loader_batch_size(_flatten(trainer.train_dataloader))
            # float64 so that 0.15 is written as 0.15, not float32's 0.15000000596.
            pl_module.log_dict({f"proglearn/{k}": torch.tensor(float(v), dtype=torch.float64)
                                for k, v in values.items() if v is not None},
                               on_step=False, on_epoch=True, batch_size=1, sync_dist=True)

    def state_dict(self) -> dict[str, Any]:
        # Stages are recomputed from the trainer's epoch; the schedule is kept to notice a
        # resume under a different one.
        return {"schedule": dump_schedule(self.schedule)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("schedule")
        if saved is not None and schedule_from_yaml(saved, source="checkpoint") != self.schedule:
            rank_zero_warn(
                "ProgressiveLearning: resuming under a different schedule than the checkpoint "
                "was trained with; the new schedule applies from the resumed epoch on.\n"
                f"checkpoint:\n{saved}\nnow:\n{dump_schedule(self.schedule)}")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self._core is not None:
            self._core.loader = None  # release the loaders (and their workers)

    # --- the one call per event ---------------------------------------------------------------
    def _enter_epoch(self, trainer: pl.Trainer, first: bool = False) -> None:
        core, epoch = self._core_or_raise(), trainer.current_epoch
        core.loader = _Loaders(_flatten(trainer.train_dataloader))  # new after each reload
        self._epoch_stage = core.on_epoch_start(epoch)
        if self.schedule.steps_per_epoch is not None:
            self._epoch_stage = core.on_step(epoch * self.schedule.steps_per_epoch)
        if self.data == "rebuild":
            self._check_rebuilt(_flatten(trainer.train_dataloader))
        if self.data == "progressive" and self._needs_data() and not first:
            # (on a resumed run Lightning may still reload the loader before the first epoch)
            self._check_batch_count(trainer)

    def _stage_index(self, epoch: int) -> int:
        spe = self.schedule.steps_per_epoch
        if spe is None:
            return stage_at_epoch(self.schedule, epoch)
        return stage_at_step(self.schedule, epoch * spe)

    def _core_or_raise(self) -> _Core:
        if self._core is None:
            raise RuntimeError("ProgressiveLearning: setup() has not run for trainer.fit(); "
                               "the callback must be in Trainer(callbacks=[...])")
        return self._core

    # --- set-up checks --------------------------------------------------------------------------
    def _check_epochs(self, trainer: pl.Trainer) -> None:
        max_epochs = trainer.max_epochs
        if max_epochs is not None and max_epochs >= 0 and max_epochs < self.schedule.epochs:
            raise ValueError(
                f"schedule.epochs: the schedule runs {self.schedule.epochs} epochs but "
                f"Trainer(max_epochs={max_epochs}) stops after {max_epochs}, so its last "
                f"stage(s) would never train (received epochs={self.schedule.epochs}, "
                f"max_epochs={max_epochs}); set max_epochs >= {self.schedule.epochs} or "
                "shorten the schedule")

    def _sizes(self) -> tuple[set[int], set[int | None]]:
        stages = [stage_values(self.schedule, i) for i in range(self.schedule.stages)]
        return {s.image_size for s in stages}, {s.batch_size for s in stages}

    def _needs_data(self) -> bool:
        """Whether the data side changes at all (image size, batch size or RandAugment)."""
        sizes, batches = self._sizes()
        return len(sizes) > 1 or len(batches) > 1 or not is_zero(self.schedule,
                                                                  "randaug_magnitude")

    def _check_data(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._factory = self.make_transform
        datamodule = getattr(trainer, "datamodule", None)
        for owner in (datamodule, pl_module):
            factory = getattr(owner, "make_transform", None)
            if self._factory is None and callable(factory):
                self._factory = factory
        if not self._needs_data() or self.data == "manual":
            return
        sizes, batches = self._sizes()
        what = _data_changes(self.schedule, sizes, batches)
        reload = _reload_every(trainer)
        if self.data == "progressive":
            if self._factory is None and (len(sizes) > 1 or not is_zero(self.schedule,
                                                                         "randaug_magnitude")):
                owners = [type(o).__name__ for o in (datamodule, pl_module) if o is not None]
                raise ValueError(
                    f"make_transform: data='progressive' (zero-rebuild) builds each stage's "
                    f"transform with a factory make_transform(stage) -> transform ({what}), "
                    f"and none was found (received make_transform=None; searched the callback "
                    f"and {' and '.join(f'{o}.make_transform' for o in owners)}). Pass "
                    "ProgressiveLearning(make_transform=...), define make_transform(self, "
                    "stage) on your DataModule or LightningModule, or use data='rebuild' with "
                    "Trainer(reload_dataloaders_every_n_epochs=1)")
            if len(batches) > 1 and reload != 1:
                raise ValueError(
                    f"reload_dataloaders_every_n_epochs: the batch size changes between stages "
                    f"({sorted(b for b in batches if b is not None)}) and Lightning counts an "
                    f"epoch's batches when it loads the train loader, so it must reload it "
                    f"every epoch (received reload_dataloaders_every_n_epochs={reload}); use "
                    "Trainer(reload_dataloaders_every_n_epochs=1)")
        elif self.data == "rebuild":
            if self.schedule.steps_per_epoch is not None:
                raise ValueError(
                    f"data: 'rebuild' rebuilds the loader at epoch starts, but the schedule "
                    f"switches stages by step (received steps_per_epoch="
                    f"{self.schedule.steps_per_epoch}); use data='progressive'")
            if reload != 1:
                raise ValueError(
                    f"reload_dataloaders_every_n_epochs: data='rebuild' needs Lightning to "
                    f"rebuild the train loader every epoch ({what}) (received "
                    f"reload_dataloaders_every_n_epochs={reload}); use "
                    "Trainer(reload_dataloaders_every_n_epochs=1) and build the loader for "
                    "ProgressiveLearning.of(self.trainer).stage in train_dataloader()")
        elif self.data == "resize":
            if not is_zero(self.schedule, "randaug_magnitude"):
                raise ValueError(
                    "data: 'resize' resizes finished batches and cannot reach the RandAugment "
                    "inside your loader's workers (received a schedule with randaug_magnitude);"
                    " use data='progressive' or 'rebuild'")
            if len(batches) > 1:
                raise ValueError(
                    f"data: 'resize' cannot change the batch size (received batch sizes "
                    f"{sorted(b for b in batches if b is not None)}); use data='progressive' "
                    "or 'rebuild'")

    def _build_core(self, pl_module: pl.LightningModule) -> _Core:
        mixups = [v for v in vars(pl_module).values() if is_timm_mixup(v)]
        losses = [m for m in pl_module.modules() if is_smoothing_loss(m)]
        mixup = mixups[0] if len(mixups) == 1 else None
        loss = losses[0] if len(losses) == 1 else None
        appliers = dict(self.appliers)
        for knob in self.schedule.knobs.ramps():
            if knob in appliers or knob in _STRUCTURAL or is_zero(self.schedule, knob):
                continue
            builtin = mixup is not None if knob in ("mixup_alpha", "cutmix_alpha") else (
                (mixup is not None or loss is not None) if knob == "label_smoothing" else False)
            if not builtin and is_number(getattr(pl_module, knob, None)):
                appliers[knob] = _attribute_setter(pl_module, knob)
        try:
            if len(mixups) > 1:
                raise KnobTargetError(f"found {len(mixups)} timm Mixup attributes on "
                                      f"{type(pl_module).__name__}; keep one")
            return _Core(self.schedule, pl_module, mixup=mixup, loss=loss,
                         dropout_pattern=self.dropout_pattern, appliers=appliers,
                         data_handles_randaug=self.data != "resize")
        except KnobTargetError as exc:
            raise KnobTargetError(
                f"ProgressiveLearning: {exc} In Lightning the targets are searched on your "
                f"LightningModule {type(pl_module).__name__}: its submodules (dropout, "
                "drop_path, an nn.CrossEntropyLoss for label_smoothing), a timm Mixup "
                "attribute, or a number attribute named like the knob (e.g. "
                "self.label_smoothing); or pass appliers={knob: fn}.") from None

    # --- loader checks (the loader exists only once training starts) ---------------------------
    def _check_loaders(self, trainer: pl.Trainer, loaders: list[Any]) -> None:
        if not self._needs_data() or self.data in ("manual", "rebuild"):
            return
        for dl in loaders:
            if self.data == "progressive":
                bs = getattr(dl, "batch_sampler", None)
                if not isinstance(bs, StageBatchSampler):
                    raise TypeError(
                        f"train_dataloader: data='progressive' expects the zero-rebuild loader "
                        f"(received {_describe(dl)}); return "
                        "ProgressiveLearning.of(self.trainer).train_loader(dataset, ...) from "
                        "train_dataloader(), or choose data='rebuild' / 'resize' / 'manual'")
                if bs.schedule != self.schedule:
                    raise ValueError(
                        "train_dataloader: the zero-rebuild loader was built with a different "
                        "schedule than the callback's (received another Schedule); build it "
                        "with ProgressiveLearning.of(self.trainer).train_loader(...)")
            elif self.data == "resize" and not isinstance(dl, BatchResize):
                raise TypeError(
                    f"train_dataloader: data='resize' expects a BatchResize around your loader "
                    f"(received {_describe(dl)}); return BatchResize(loader, "
                    "ProgressiveLearning.of(self.trainer).schedule)")

    def _check_rebuilt(self, loaders: list[Any]) -> None:
        stage = self._epoch_stage
        want = stage.batch_size if stage is not None else None
        for dl in loaders:
            got = getattr(dl, "batch_size", None)
            if want is not None and isinstance(dl, DataLoader) and got is not None \
                    and got != want:
                raise ValueError(
                    f"train_dataloader: data='rebuild', stage {stage.index if stage else 0} has "
                    f"batch size {want} but the loader Lightning loaded has batch_size={got} "
                    "(received a loader not built for ProgressiveLearning.of(self.trainer)"
                    ".stage)")

    def _check_batch_count(self, trainer: pl.Trainer) -> None:
        """Lightning fixes an epoch's batch count when it loads the loader; a loader whose
        length changed since would be cut short or run dry."""
        loaders = [dl for dl in _flatten(trainer.train_dataloader)
                   if isinstance(getattr(dl, "batch_sampler", None), StageBatchSampler)]
        if len(loaders) != 1:
            return
        have, counted = len(loaders[0]), trainer.num_training_batches
        limit = trainer.limit_train_batches
        full = isinstance(limit, float) and limit == 1.0
        if (full and have != counted) or have < counted:
            stage = loaders[0].batch_sampler.stage_index
            raise RuntimeError(
                f"train_dataloader: epoch {trainer.current_epoch} (stage {stage}) has {have} "
                f"batches but Lightning counted {counted} when it loaded the loader; with a "
                "batch size that changes between stages use "
                "Trainer(reload_dataloaders_every_n_epochs=1) and build the loader with "
                "ProgressiveLearning.of(self.trainer).train_loader()")


# --- small helpers ------------------------------------------------------------------------------
class _Loaders:
    """Several train loaders behind one ``set_epoch`` (Lightning's CombinedLoader)."""

    def __init__(self, loaders: list[Any]) -> None:
        self.loaders = loaders

    def set_epoch(self, epoch: int) -> None:
        for dl in self.loaders:
            set_loader_epoch(dl, epoch)


def _reload_every(trainer: pl.Trainer) -> int:
    return int(getattr(trainer, "reload_dataloaders_every_n_epochs", 0) or 0)


def _flatten(obj: Any) -> list[Any]:
    if obj is None:
        return []
    if isinstance(obj, Mapping):
        return [x for v in obj.values() for x in _flatten(v)]
    if isinstance(obj, (list, tuple)):
        return [x for v in obj for x in _flatten(v)]
    return [obj]


def _drawn_ahead(loader: Any, epoch: int) -> bool:
    """Whether ``loader``'s iterator, created by Lightning before any epoch hook, has already
    drawn batches for another epoch's stage: worker processes prefetch as soon as the
    iterator exists (the first epoch of a resumed run; Lightning issue #21938)."""
    bs = getattr(loader, "batch_sampler", None)
    return (isinstance(bs, StageBatchSampler) and getattr(loader, "num_workers", 0) > 0
            and bs.epoch != epoch)


def _has_workers(loader: Any) -> bool:
    inner = loader.loader if isinstance(loader, BatchResize) else loader
    return getattr(inner, "num_workers", 0) > 0


def _restart_iterator(trainer: pl.Trainer) -> None:
    """Recreate the train iterator now that the samplers know the epoch (what Lightning's
    epoch loop does itself at the start of every later epoch)."""
    fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
    if fetcher is None:
        raise RuntimeError("ProgressiveLearning: cannot restart the train iterator on this "
                           "Lightning version; resume with num_workers=0")
    iter(fetcher)


def _attribute_setter(owner: Any, name: str) -> Callable[[float], None]:
    def apply(value: float) -> None:
        setattr(owner, name, value)

    return apply


def _loader_batch_size(loaders: Iterable[Any]) -> int | None:
    for dl in loaders:
        bs = getattr(dl, "batch_sampler", None)
        size = getattr(bs, "batch_size", None) or getattr(dl, "batch_size", None)
        if isinstance(size, int):
            return size
    return None


def _describe(loader: Any) -> str:
    bs = getattr(loader, "batch_sampler", None)
    inner = f"(batch_sampler={type(bs).__name__})" if bs is not None else ""
    return f"{type(loader).__name__}{inner}"


def _data_changes(spec: Schedule, sizes: set[int], batches: set[int | None]) -> str:
    parts = []
    if len(sizes) > 1:
        parts.append(f"image size {min(sizes)} to {max(sizes)}")
    if len(batches) > 1:
        parts.append(f"batch size {sorted(b for b in batches if b is not None)}")
    if not is_zero(spec, "randaug_magnitude"):
        parts.append("randaug_magnitude")
    return "the schedule changes " + ", ".join(parts)
