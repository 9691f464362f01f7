"""``proglearn ablate``: train one model on one data set under every schedule mode and compare.

The ablation of the paper's Tables 12 and 13, for your model and data: the same model, the same
data, the same seeds, trained under the modes ``fixed`` (final size and final regularization
throughout), ``resize_only`` (sizes progress, regularization constant), ``adaptive`` (both
progress; Algorithm 1) and ``random`` (a random stage per epoch). Per mode it reports final and
best top-1 on the held-out set (evaluated at the schedule's eval size), training wall-clock,
images/s, the measured speedup over ``fixed`` and the FLOP-ideal speedup
(``1 / flop_cost_ratio``); with several seeds, mean ± std.

Python::

    from proglearn.ablate import run_ablation
    result = run_ablation("examples/configs/ablate_demo.yaml", out_dir="runs/demo")
    print(result.summaries["adaptive"].speedup_vs_fixed)

Command line: ``proglearn ablate CONFIG [--seeds N] [--out DIR] [--modes a,b] [--no-resume]``.

Every finished run is written to ``OUT/runs/<mode>-seed<seed>.json`` as soon as it completes; a
rerun with the same config skips those runs (and says so), so an interrupted ablation resumes.
``OUT/ablation.json`` holds everything (config, host, every run with its per-epoch history, the
per-mode summaries) and ``OUT/ablation.png`` the plot (top-1 against training wall-clock, one
line per mode, and the schedule of every mode).

This module imports no framework: the training (:mod:`proglearn.ablate_torch`) imports torch and
timm only when a run starts.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .io import load_schedule
from .schedule import flop_cost_ratio, plan
from .spec import ConfigError, Schedule, ScheduleError, from_validation_error

__all__ = [
    "MODES",
    "AblationConfig",
    "AblationConfigError",
    "AblationResult",
    "DataConfig",
    "EpochRecord",
    "ModeSummary",
    "ModelConfig",
    "OptimizerConfig",
    "RunJob",
    "RunReporter",
    "RunResult",
    "Stat",
    "TrainOutput",
    "add_arguments",
    "load_config",
    "main",
    "run_ablation",
    "summarize",
]

Mode = Literal["fixed", "resize_only", "adaptive", "random"]
#: The four modes, in the order they are run and reported.
MODES: tuple[str, ...] = ("fixed", "resize_only", "adaptive", "random")

PositiveInt = Annotated[int, Field(strict=True, ge=1)]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
PositiveFloat = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
UnitFloat = Annotated[float, Field(strict=True, ge=0, lt=1, allow_inf_nan=False)]
UnitInterval = Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]

#: Data set names that are not folders.
BUILTIN_DATA = ("fashion-mnist", "synthetic")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
class AblationConfigError(ConfigError):
    """An invalid ablation config. Like :class:`proglearn.ScheduleError`: ``errors`` holds
    ``(field_path, message)`` pairs, ``source`` the file, if any."""


def _config_error(exc: ValidationError, source: str | None) -> AblationConfigError:
    """The core's field-path/received-value messages, with schedule errors spelled out in full
    (``schedule.knobs.dropout.end: must be < 1 (received 1.5)``)."""
    pairs: list[tuple[str, str]] = []
    described = from_validation_error(exc, None).errors
    for err, (path, msg) in zip(exc.errors(), described, strict=True):
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, ScheduleError):
            origin = f" (in {inner.source})" if inner.source else ""
            if inner.errors:
                pairs += [(f"{path}.{p}" if p else path, f"{m}{origin}") for p, m in inner.errors]
            else:
                pairs.append((path, f"{inner.detail}{origin}"))
        else:
            pairs.append((path, msg))
    lines = "; ".join(f"{p}: {m}" for p, m in pairs)
    head = ("invalid ablation config" if len(pairs) == 1
            else f"invalid ablation config ({len(pairs)} errors)")
    return AblationConfigError(f"{head}: {lines}", source=source, errors=pairs)


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def _base_dir(info: ValidationInfo) -> Path:
    ctx = info.context or {}
    return Path(ctx.get("base_dir") or ".")


class ModelConfig(_Frozen):
    """The network. ``name``: a bundled EfficientNetV2 variant (``tiny``, ``s``, ``m``, ``l``,
    ``xl``, ``b0``..``b3``; :func:`proglearn.models.efficientnetv2`) or any timm model name
    (built with ``pretrained=False``). ``kwargs`` go to the builder unchanged."""

    name: Annotated[str, Field(min_length=1)]
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from .models.efficientnetv2 import VARIANTS

        if name.lower().removeprefix("efficientnetv2-") in VARIANTS:
            return name
        try:
            import timm
        except ImportError:  # no torch extra: the trainer will say so
            return name
        if not timm.is_model(name):
            raise ValueError(
                f"must be a bundled EfficientNetV2 variant ({', '.join(VARIANTS)}) or a timm "
                f"model name (timm.list_models()) (received {name!r})")
        return name

    @field_validator("kwargs")
    @classmethod
    def _no_reserved(cls, kw: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted({"num_classes", "in_chans", "pretrained"} & set(kw))
        if reserved:
            raise ValueError(f"{reserved[0]!r} is set by the ablation runner, not by kwargs "
                             f"(received {kw!r})")
        return kw


class DataConfig(_Frozen):
    """The data. ``name``: ``fashion-mnist`` (local files, test split held out), ``synthetic``
    (generated, learnable; for tests) or an ImageFolder directory holding ``train/`` and
    ``val/`` (or ``test/``) class folders.

    ``train_subset``/``eval_subset``: use this many images (a random subset drawn with
    ``seed``, the same for every run); for ``synthetic`` the number of images generated
    (default 1000 and 200)."""

    name: Annotated[str, Field(min_length=1)]
    root: str | None = Field(default=None, description="fashion-mnist: folder of the idx files.")
    train_subset: PositiveInt | None = None
    eval_subset: PositiveInt | None = None
    seed: NonNegInt = 0
    channels: Literal[1, 3] | None = Field(
        default=None, description="1 (grayscale) or 3; default 1 for fashion-mnist, else 3.")
    num_classes: PositiveInt = Field(default=10, description="synthetic only.")
    size: PositiveInt = Field(default=32, description="synthetic only: stored image side.")
    mean: tuple[float, ...] | None = Field(
        default=None, description="Normalization mean per channel (default: the data set's).")
    std: tuple[float, ...] | None = None
    crop_scale: tuple[UnitInterval, UnitInterval] = Field(
        default=(0.08, 1.0), description="RandomResizedCrop area range (timm's default).")
    hflip: UnitInterval = Field(default=0.5, description="Horizontal flip probability.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data

    @field_validator("name")
    @classmethod
    def _known_or_folder(cls, name: str, info: ValidationInfo) -> str:
        if name in BUILTIN_DATA:
            return name
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = _base_dir(info) / path
        if not path.is_dir():
            raise ValueError(
                f"must be 'fashion-mnist', 'synthetic' or an existing ImageFolder directory "
                f"(received {name!r})")
        return str(path)

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.name not in BUILTIN_DATA and self.channels == 1:
            raise ValueError(f"data.channels: an ImageFolder gives RGB images; must be 3 "
                             f"(received {self.channels})")
        if not 0 < self.crop_scale[0] <= self.crop_scale[1]:
            raise ValueError(f"data.crop_scale: must be [low, high] with 0 < low <= high <= 1 "
                             f"(received {list(self.crop_scale)!r})")
        for key in ("mean", "std"):
            value = getattr(self, key)
            if value is not None and len(value) != self.in_chans:
                raise ValueError(f"data.{key}: needs one value per channel ({self.in_chans}) "
                                 f"(received {list(value)!r})")
        if self.name not in BUILTIN_DATA:
            path = Path(self.name)
            if not (path / "train").is_dir() or self.eval_dir is None:
                raise ValueError(f"data.name: an ImageFolder directory must hold train/ and "
                                 f"val/ (or test/) (received {self.name!r})")
        return self

    @property
    def in_chans(self) -> int:
        if self.channels is not None:
            return self.channels
        return 1 if self.name == "fashion-mnist" else 3

    @property
    def eval_dir(self) -> Path | None:
        for sub in ("val", "validation", "test"):
            if (Path(self.name) / sub).is_dir():
                return Path(self.name) / sub
        return None


class OptimizerConfig(_Frozen):
    """Optimizer and learning-rate schedule (per optimizer step, over the whole run).

    ``lr`` is the peak rate; ``warmup_epochs`` ramps linearly from 0 to it, then ``cosine``
    decays to ``min_lr`` (or ``constant`` holds it). ``scale_with_batch``: multiply by the
    stage's ``lr_scale`` (1 unless the schedule's batch policy is ``pixels``)."""

    name: Literal["sgd", "adamw", "rmsprop"] = "sgd"
    lr: PositiveFloat = 0.05
    momentum: UnitFloat = 0.9
    nesterov: bool = True
    weight_decay: NonNegFloat = 5e-5
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: NonNegFloat = 0.0
    min_lr: NonNegFloat = 0.0
    scale_with_batch: bool = True


class AblationConfig(_Frozen):
    """One ablation: what to train and how. See ``docs/ablate.md`` for the reference."""

    name: str | None = Field(default=None, description="Title of the table and plot.")
    model: ModelConfig
    data: DataConfig
    schedule: Schedule
    epochs: PositiveInt | None = Field(
        default=None, description="Override the schedule's epochs (stages are kept).")
    batch_size: PositiveInt | None = Field(
        default=None, description="Batch size (of the final stage when the schedule has a "
        "batch policy, which it overrides); default: the schedule's, else 64.")
    eval_batch_size: PositiveInt = 256
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    seeds: tuple[NonNegInt, ...] = (0,)
    modes: tuple[Mode, ...] = MODES  # type: ignore[assignment]
    num_workers: NonNegInt = 0
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:N or mps.")
    amp: bool = Field(default=False, description="bfloat16 autocast (cuda only).")
    channels_last: bool = False
    threads: PositiveInt | None = Field(default=None, description="torch.set_num_threads.")
    eval_every: PositiveInt = Field(default=1, description="Evaluate every N epochs and last.")

    @field_validator("schedule", mode="before")
    @classmethod
    def _load_schedule(cls, value: Any, info: ValidationInfo) -> Schedule:
        if isinstance(value, str) and (value.endswith((".yaml", ".yml")) or os.sep in value):
            path = Path(value).expanduser()
            if not path.is_absolute():
                value = str(_base_dir(info) / path)
        return load_schedule(value)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError(f"a number of seeds must be >= 1 (received {value})")
            return tuple(range(value))
        return value

    @field_validator("seeds", "modes")
    @classmethod
    def _unique(cls, value: tuple[Any, ...]) -> tuple[Any, ...]:
        if not value:
            raise ValueError("must not be empty (received [])")
        if len(set(value)) != len(value):
            raise ValueError(f"must not repeat an entry (received {list(value)!r})")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        head, _, index = value.partition(":")
        if head not in ("auto", "cpu", "cuda", "mps") or (index and not (
                head == "cuda" and index.isdigit())):
            raise ValueError(f"must be auto, cpu, cuda, cuda:N or mps (received {value!r})")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> AblationConfig:
        for name in ("epochs", "batch_size"):
            try:
                self._overridden(only=name)
            except ScheduleError as exc:
                raise ValueError(f"{name}: does not fit the schedule: {exc.detail} "
                                 f"(received {getattr(self, name)})") from None
        return self

    def _overridden(self, only: str | None = None) -> Schedule:
        changes: dict[str, Any] = {}
        if self.epochs is not None and only in (None, "epochs"):
            changes["epochs"] = self.epochs
        if (self.batch_size is not None and self.schedule.batch_size is not None
                and only in (None, "batch_size")):
            changes["batch_size"] = {
                **self.schedule.batch_size.model_dump(exclude_none=True), "size": self.batch_size}
        return self.schedule.replace(**changes) if changes else self.schedule

    # --- derived -------------------------------------------------------------------------
    @property
    def base_schedule(self) -> Schedule:
        """The schedule with the ``epochs`` and ``batch_size`` overrides applied."""
        return self._overridden()

    def schedule_for(self, mode: str, seed: int) -> Schedule:
        """The schedule of one run: ``mode`` set, and ``seed`` (it drives ``random`` mode's
        per-epoch stage draws, so each seed of ``random`` draws its own sequence)."""
        return self.base_schedule.replace(mode=mode, seed=seed)

    @property
    def default_batch_size(self) -> int:
        """Batch size for schedules without a batch policy."""
        return self.batch_size if self.batch_size is not None else 64

    def fingerprint(self) -> str:
        """Hash of everything that decides a run's result (not ``seeds``, ``modes``,
        ``name``): a finished run is reused only when this matches."""
        data = self.model_dump(mode="json", exclude={"seeds", "modes", "name"})
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_config(
    config: AblationConfig | str | os.PathLike[str] | dict[str, Any],
    *, base_dir: str | os.PathLike[str] | None = None,
) -> AblationConfig:
    """An :class:`AblationConfig` from itself, a YAML path or a dict.

    Relative paths inside the config (the schedule file, an ImageFolder) are resolved against
    the config file's folder (or ``base_dir``). Errors are :class:`AblationConfigError`, naming
    each field path and the value received.
    """
    if isinstance(config, AblationConfig):
        return config
    source: str | None = None
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise AblationConfigError("no such file", source=source) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AblationConfigError(f"cannot read the file: {exc}", source=source) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise AblationConfigError(f"not valid YAML{where}: {problem}",
                                      source=source) from None
        if base_dir is None:
            base_dir = path.parent
    elif isinstance(config, dict):
        data = config
    else:
        raise AblationConfigError("config: expected an AblationConfig, a YAML path or a dict "
                                  f"(received {type(config).__name__})")
    if not isinstance(data, dict):
        raise AblationConfigError(f"an ablation config must be a YAML mapping "
                                  f"(received {type(data).__name__}: {data!r:.60})",
                                  source=source)
    try:
        return AblationConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise _config_error(exc, source) from None


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpochRecord:
    """One epoch of one run. ``wall_clock_s`` is the training time (evaluation excluded)
    accumulated up to the end of this epoch; ``eval_top1`` is in percent, ``None`` when the
    epoch was not evaluated; ``train_top1`` is on the training batches (against the un-mixed
    labels, under augmentation)."""

    epoch: int
    stage: int
    image_size: int
    batch_size: int
    values: dict[str, float]
    lr: float
    images: int
    train_loss: float
    train_time_s: float
    wall_clock_s: float
    eval_top1: float | None = None
    eval_loss: float | None = None
    eval_time_s: float = 0.0
    train_top1: float | None = None


@dataclass(frozen=True)
class TrainOutput:
    """What a trainer returns for one run; :class:`RunResult` adds the derived fields."""

    history: list[EpochRecord]
    num_params: int
    device: str
    setup_time_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunJob:
    """One run to train: the config, the mode, the seed and that run's schedule."""

    config: AblationConfig
    mode: str
    seed: int
    schedule: Schedule


class RunReporter(Protocol):
    """Progress of one run, fed by the trainer."""

    def start(self, total_steps: int) -> None: ...
    def advance(self, steps: int = 1, **info: Any) -> None: ...
    def epoch_end(self, record: EpochRecord) -> None: ...


Trainer = Callable[[RunJob, RunReporter], TrainOutput]


@dataclass(frozen=True)
class RunResult:
    """One finished run (mode, seed). Top-1 values are percentages; times are seconds.

    ``wall_clock_s``: training time (every epoch's loader + forward/backward/step),
    evaluation excluded; ``images_per_s = images / wall_clock_s``; ``flop_speedup =
    1 / flop_cost_ratio`` of this run's schedule."""

    mode: str
    seed: int
    epochs: int
    final_top1: float
    best_top1: float
    best_epoch: int
    wall_clock_s: float
    eval_time_s: float
    total_time_s: float
    images: int
    images_per_s: float
    flop_cost_ratio: float
    flop_speedup: float
    num_params: int
    device: str
    fingerprint: str
    started_at: str
    finished_at: str
    load_avg: tuple[float, float]
    schedule: dict[str, Any]
    plan: list[dict[str, Any]]
    history: list[EpochRecord]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return run_key(self.mode, self.seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        data = _nan_if_none(cls, dict(data))
        data["history"] = [EpochRecord(**_nan_if_none(EpochRecord, r)) for r in data["history"]]
        data["load_avg"] = tuple(math.nan if v is None else v for v in data["load_avg"])
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Stat:
    """Mean ± sample standard deviation (0 for one value) over seeds, with the values."""

    mean: float
    std: float
    values: list[float]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        vals = [float(v) for v in values]
        std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return cls(mean=statistics.fmean(vals), std=std, values=vals)

    def format(self, digits: int = 2, suffix: str = "", sep: str = " ± ") -> str:
        """``"82.50 ± 0.71"`` (several values) or ``"82.50"`` (one)."""
        if len(self.values) > 1:
            return f"{self.mean:.{digits}f}{sep}{self.std:.{digits}f}{suffix}"
        return f"{self.mean:.{digits}f}{suffix}"


@dataclass(frozen=True)
class ModeSummary:
    """Per-mode aggregate over seeds. ``speedup_vs_fixed`` pairs runs by seed:
    ``wall_clock(fixed, seed) / wall_clock(mode, seed)``; ``None`` without ``fixed`` runs."""

    mode: str
    seeds: list[int]
    final_top1: Stat
    best_top1: Stat
    wall_clock_s: Stat
    images_per_s: Stat
    flop_speedup: Stat
    speedup_vs_fixed: Stat | None


def run_key(mode: str, seed: int) -> str:
    return f"{mode}-seed{seed}"


def summarize(runs: Sequence[RunResult], modes: Sequence[str]) -> dict[str, ModeSummary]:
    """Per-mode :class:`ModeSummary` of ``runs`` (modes without runs are left out)."""
    fixed = {r.seed: r for r in runs if r.mode == "fixed"}
    out: dict[str, ModeSummary] = {}
    for mode in modes:
        rs = sorted((r for r in runs if r.mode == mode), key=lambda r: r.seed)
        if not rs:
            continue
        paired = [fixed[r.seed].wall_clock_s / r.wall_clock_s for r in rs
                  if r.seed in fixed and r.wall_clock_s > 0]
        out[mode] = ModeSummary(
            mode=mode, seeds=[r.seed for r in rs],
            final_top1=Stat.of([r.final_top1 for r in rs]),
            best_top1=Stat.of([r.best_top1 for r in rs]),
            wall_clock_s=Stat.of([r.wall_clock_s for r in rs]),
            images_per_s=Stat.of([r.images_per_s for r in rs]),
            flop_speedup=Stat.of([r.flop_speedup for r in rs]),
            speedup_vs_fixed=Stat.of(paired) if paired else None,
        )
    return out


def host_info() -> dict[str, Any]:
    """The machine, without importing any framework (the trainer adds its device)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    with contextlib.suppress(OSError, AttributeError):
        info["load_avg_1m"] = os.getloadavg()[0]
    return info


@dataclass
class AblationResult:
    """Every run of an ablation and the per-mode summaries. ``skipped``: runs reused from an
    earlier, interrupted or finished ablation in the same output folder."""

    config: AblationConfig
    modes: list[str]
    seeds: list[int]
    runs: list[RunResult]
    summaries: dict[str, ModeSummary]
    host: dict[str, Any]
    skipped: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.config.name or "proglearn ablation"

    def run(self, mode: str, seed: int) -> RunResult:
        for r in self.runs:
            if r.mode == mode and r.seed == seed:
                return r
        raise KeyError(f"no run for mode={mode!r}, seed={seed}")

    def to_dict(self) -> dict[str, Any]:
        from . import __version__

        return {
            "proglearn_version": __version__,
            "title": self.title,
            "fingerprint": self.config.fingerprint(),
            "config": self.config.model_dump(mode="json"),
            "modes": list(self.modes),
            "seeds": list(self.seeds),
            "host": self.host,
            "summaries": {m: dataclasses.asdict(s) for m, s in self.summaries.items()},
            "runs": [r.to_dict() for r in self.runs],
            "skipped": list(self.skipped),
            "files": dict(self.files),
        }

    def table(self) -> Any:
        """The results as a ``rich.table.Table``."""
        from .ablate_report import results_table

        return results_table(self)

    def print_table(self, console: Any = None) -> None:
        from rich.console import Console

        (console or Console()).print(self.table())


# --------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------
def _json_safe(value: Any) -> Any:
    """Strict JSON: a non-finite float (a diverged loss, an unknown load average) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _nan_if_none(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Undo :func:`_json_safe` for the float fields of dataclass ``cls``."""
    floats = {f.name for f in dataclasses.fields(cls) if f.type in ("float", float)}
    return {k: (math.nan if v is None and k in floats else v) for k, v in data.items()}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: an interrupted write never leaves a half file that looks finished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(_json_safe(data), indent=1, allow_nan=False)
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _load_finished(path: Path, fingerprint: str) -> RunResult | None:
    """The saved run at ``path`` if it was made with this config, else ``None``; a file made
    with another config is an error (reusing it would mix two ablations)."""
    if not path.is_file():
        return None
    try:
        result = RunResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, KeyError) as exc:
        raise AblationConfigError(
            f"{path}: not a finished run of proglearn ablate ({exc}); delete it or choose "
            "another output folder") from None
    if result.fingerprint != fingerprint:
        raise AblationConfigError(
            f"{path} was made with a different config (fingerprint {result.fingerprint}, "
            f"this config {fingerprint}); use another --out folder, or --no-resume to "
            "overwrite the finished runs")
    return result


def _finish_run(job: RunJob, output: TrainOutput, *, started: float, started_at: str,
                load_start: float) -> RunResult:
    history = output.history
    if not history or history[-1].eval_top1 is None:
        raise RuntimeError("the trainer returned no final evaluation for "
                           f"{run_key(job.mode, job.seed)}")
    evaluated = [r for r in history if r.eval_top1 is not None]
    best = max(evaluated, key=lambda r: (r.eval_top1, -r.epoch))
    wall = sum(r.train_time_s for r in history)
    images = sum(r.images for r in history)
    ratio = flop_cost_ratio(job.schedule)
    load_end = _load_avg()
    return RunResult(
        mode=job.mode, seed=job.seed, epochs=job.schedule.epochs,
        final_top1=float(history[-1].eval_top1),  # type: ignore[arg-type]
        best_top1=float(best.eval_top1),  # type: ignore[arg-type]
        best_epoch=best.epoch,
        wall_clock_s=wall, eval_time_s=sum(r.eval_time_s for r in history),
        total_time_s=time.perf_counter() - started,
        images=images, images_per_s=images / wall if wall > 0 else math.nan,
        flop_cost_ratio=ratio, flop_speedup=1.0 / ratio,
        num_params=output.num_params, device=output.device,
        fingerprint=job.config.fingerprint(),
        started_at=started_at, finished_at=_now(), load_avg=(load_start, load_end),
        schedule=job.schedule.model_dump(mode="json", exclude_none=True),
        plan=[row.to_dict() for row in plan(job.schedule)],
        history=list(history), info=dict(output.info),
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _load_avg() -> float:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return math.nan


class _NullReporter:
    def start(self, total_steps: int) -> None:
        pass

    def advance(self, steps: int = 1, **info: Any) -> None:
        pass

    def epoch_end(self, record: EpochRecord) -> None:
        pass


class _RichReporter:
    """One rich progress bar per run: steps done, current stage/size, last loss and top-1."""

    def __init__(self, progress: Any, label: str) -> None:
        self.progress = progress
        self.label = label
        self.task = progress.add_task(label, total=None, info="")
        self.last = ""

    def start(self, total_steps: int) -> None:
        self.progress.update(self.task, total=total_steps)

    def advance(self, steps: int = 1, **info: Any) -> None:
        text = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in info.items())
        self.progress.update(self.task, advance=steps, info=f"{text}{self.last}")

    def epoch_end(self, record: EpochRecord) -> None:
        if record.eval_top1 is not None:
            self.last = f" top1={record.eval_top1:.1f}%"
        self.progress.update(self.task, info=f"loss={record.train_loss:.3g}{self.last}")


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(TextColumn("{task.description:<18}"), BarColumn(bar_width=16),
                  MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                  transient=False) as progress:
        yield progress


def _default_trainer(job: RunJob, reporter: RunReporter) -> TrainOutput:
    from .ablate_torch import train_run

    return train_run(job, reporter)


def run_ablation(
    config: AblationConfig | str | os.PathLike[str] | dict[str, Any],
    *,
    seeds: int | Sequence[int] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    modes: Sequence[str] | None = None,
    progress: bool = True,
    resume: bool = True,
    trainer: Trainer | None = None,
    console: Any = None,
) -> AblationResult:
    """Train the config's model under every mode and seed; return (and save) the results.

    ``seeds``: a number ``N`` (seeds ``0..N-1``) or a list; default the config's.
    ``modes``: default the config's (all four). ``out_dir``: where the per-run JSON files,
    ``ablation.json`` and ``ablation.png`` go; ``None`` writes nothing (and resumes nothing).
    ``resume``: reuse runs already finished in ``out_dir`` with the same config (they are
    listed in ``result.skipped``); ``False`` retrains and overwrites them.
    ``trainer``: the function that trains one run (default: the PyTorch trainer of
    :mod:`proglearn.ablate_torch`); tests pass a fake one.
    """
    cfg = load_config(config)
    overrides: dict[str, Any] = {}
    if seeds is not None:
        overrides["seeds"] = seeds
    if modes is not None:
        overrides["modes"] = tuple(modes)
    if overrides:
        data = cfg.model_dump(mode="python")
        data.update(overrides)
        try:
            cfg = AblationConfig.model_validate(data)
        except ValidationError as exc:
            raise _config_error(exc, None) from None
    train = trainer or _default_trainer
    out = Path(out_dir) if out_dir is not None else None
    fingerprint = cfg.fingerprint()
    if console is None and progress:
        from rich.console import Console

        console = Console(stderr=True)

    runs: list[RunResult] = []
    skipped: list[str] = []
    result = AblationResult(config=cfg, modes=list(cfg.modes), seeds=list(cfg.seeds), runs=runs,
                            summaries={}, host=host_info(), skipped=skipped, out_dir=out)
    # Seeds outermost: after an interruption every mode has the same number of seeds done.
    jobs = [(m, s) for s in cfg.seeds for m in cfg.modes]
    with _progress_bars(progress) as bars:
        for mode, seed in jobs:
            key = run_key(mode, seed)
            path = out / "runs" / f"{key}.json" if out is not None else None
            if path is not None and resume:
                done = _load_finished(path, fingerprint)
                if done is not None:
                    runs.append(done)
                    skipped.append(key)
                    if console is not None:
                        console.print(f"[dim]{key}: finished earlier ({path}), skipped[/dim]",
                                      soft_wrap=True)
                    continue
            job = RunJob(config=cfg, mode=mode, seed=seed, schedule=cfg.schedule_for(mode, seed))
            reporter: RunReporter = (_RichReporter(bars, key) if bars is not None
                                     else _NullReporter())
            started, started_at, load_start = time.perf_counter(), _now(), _load_avg()
            output = train(job, reporter)
            run = _finish_run(job, output, started=started, started_at=started_at,
                              load_start=load_start)
            runs.append(run)
            if path is not None:
                _write_json(path, run.to_dict())
            if out is not None:  # keep the summary current, so a partial ablation is readable
                _save(result, plot=False)
    _save(result)
    return result


def _summarize_into(result: AblationResult) -> None:
    order = {k: i for i, k in enumerate(run_key(m, s) for s in result.seeds for m in result.modes)}
    result.runs.sort(key=lambda r: order.get(r.key, len(order)))
    result.summaries = summarize(result.runs, result.modes)


def _save(result: AblationResult, *, plot: bool = True) -> None:
    _summarize_into(result)
    out = result.out_dir
    if out is None:
        return
    result.files = {"json": str(out / "ablation.json"), "runs": str(out / "runs")}
    if plot:
        from .ablate_report import plot_ablation

        result.files["plot"] = str(plot_ablation(result, out / "ablation.png"))
    _write_json(out / "ablation.json", result.to_dict())


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``proglearn ablate``."""
    parser.add_argument("config", metavar="CONFIG", help="ablation config (YAML)")
    parser.add_argument("--seeds", type=int, metavar="N", default=None,
                        help="run seeds 0..N-1 and report mean ± std (default: the config's)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default: runs/ablate/<config name>)")
    parser.add_argument("--modes", metavar="M[,M...]", default=None,
                        help="comma-separated subset of fixed,resize_only,adaptive,random "
                             "(default: the config's)")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="skip runs already finished in the output folder (default: on)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def default_out_dir(config_path: str | os.PathLike[str]) -> Path:
    return Path("runs") / "ablate" / Path(config_path).stem


def main(args: argparse.Namespace) -> int:
    """``proglearn ablate``: run, print the table, say where the JSON and the plot are."""
    from rich.console import Console

    if "torch" not in sys.modules:  # only effective before torch (its OpenMP) is loaded
        # Spinning OpenMP threads collapse on a shared CPU: two 2-thread trainings on 2 cores
        # ran 15x slower each with the default policy, 2x with PASSIVE (docs/ablate.md).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    console = Console()
    err = Console(stderr=True)
    out = Path(args.out) if args.out else default_out_dir(args.config)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()] if args.modes else None
    try:
        cfg = load_config(args.config)
        if cfg.name is None:
            cfg = cfg.model_copy(update={"name": Path(args.config).stem})
        result = run_ablation(cfg, seeds=args.seeds, out_dir=out, modes=modes,
                              progress=not args.quiet, resume=args.resume, console=err)
    except Exception as exc:
        # Bad input found only when training starts (a knob with no target in the chosen
        # model, data files missing) is still the user's input: a message and exit 2.
        names = {c.__name__ for c in type(exc).__mro__}
        if not names & {"AblationConfigError", "ScheduleError", "KnobTargetError",
                        "DataMissingError"}:
            raise
        err.print(f"proglearn ablate: {exc}", markup=False, highlight=False)
        return 2
    except KeyboardInterrupt:
        err.print(f"\ninterrupted; finished runs are saved in {out / 'runs'}. "
                  "Run the same command again to resume.")
        return 130
    console.print(result.table())
    fresh = len(result.runs) - len(result.skipped)
    console.print(f"{fresh} run(s) trained, {len(result.skipped)} reused.")
    console.print(f"Results: {result.files['json']}", soft_wrap=True)
    console.print(f"Plot:    {result.files['plot']}", soft_wrap=True)
    return 0


if __name__ == "__main__":  # pragma: no cover - `python -m proglearn.ablate CONFIG`
    _parser = argparse.ArgumentParser(prog="proglearn ablate", description=__doc__.split("\n")[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
