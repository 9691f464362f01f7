"""Appliers: small functions that set one knob on one kind of target.

Each ``set_*`` function returns how many targets it set. Finding nothing to set for a non-zero
value is an error (:class:`KnobTargetError`), never a silent no-op: a user who asked for dropout
scheduling and got none has lost a training run. :func:`check_targets` runs the same searches at
set-up, before any training, for every knob of a schedule.

Targets
-------
=====================  ==================================================================
knob                   target
=====================  ==================================================================
``dropout``            every ``nn.Dropout*`` module's ``p`` and every float ``drop_rate``
                       attribute read at forward time (timm heads), optionally only in
                       modules whose qualified name matches ``pattern`` (``re.search``)
``drop_path``          timm ``DropPath.drop_prob`` and torchvision ``StochasticDepth.p``,
                       each scaled by its block's depth scale (see :func:`set_drop_path`)
``randaug_magnitude``  timm ``RandAugment`` (every op's ``magnitude``) and torchvision v2
                       ``RandAugment``, searched through ``Compose``-like trees
``mixup_alpha``,       timm ``Mixup`` (also ``FastCollateMixup``)
``cutmix_alpha``
``label_smoothing``    timm ``Mixup`` if given, else the loss (``nn.CrossEntropyLoss`` or
                       timm ``LabelSmoothingCrossEntropy``)
any other knob         a callable in ``appliers={"name": fn}``, called as ``fn(value)``
=====================  ==================================================================
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from torch import nn

from proglearn import Schedule, is_zero, load_schedule, stage_values

__all__ = [
    "KnobTargetError",
    "apply_values",
    "check_targets",
    "is_number",
    "is_smoothing_loss",
    "is_timm_mixup",
    "set_drop_path",
    "set_dropout",
    "set_label_smoothing",
    "set_mixup",
    "set_randaug_magnitude",
]

#: timm's RandAugment magnitude scale: ops clip the magnitude to [0, _LEVEL_DENOM] unless built
#: with a larger ``magnitude_max``; torchvision's bins cover the same range.
_TIMM_LEVEL_DENOM = 10.0

Appliers = Mapping[str, Callable[[float], Any]]
#: What ``proglearn.load_schedule`` accepts: a Schedule, a YAML path, a preset name or a dict.
ScheduleLike = Schedule | str | os.PathLike[str] | dict[str, Any]


class KnobTargetError(ValueError):
    """A scheduled knob has nothing to act on (or a target cannot take the value)."""


def _check_rate(name: str, value: float, hi: float | None = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: must be a number (received {value!r})")
    if value < 0 or (hi is not None and value >= hi):
        bound = f"in [0, {hi:g})" if hi is not None else ">= 0"
        raise ValueError(f"{name}: must be {bound} (received {value!r})")
    return float(value)


# --- dropout ---------------------------------------------------------------------------------
def is_number(value: object) -> bool:
    """True for an int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _dropout_targets(model: nn.Module, pattern: str | None) -> list[tuple[nn.Module, str]]:
    """``(module, attribute)`` pairs that hold a dropout rate."""
    rx = re.compile(pattern) if pattern is not None else None
    found: list[tuple[nn.Module, str]] = []
    for name, module in model.named_modules():
        if rx is not None and not rx.search(name):
            continue
        if isinstance(module, nn.modules.dropout._DropoutNd):
            found.append((module, "p"))
        elif is_number(getattr(module, "drop_rate", None)):
            found.append((module, "drop_rate"))
    return found


def set_dropout(model: nn.Module, rate: float, *, pattern: str | None = None) -> int:
    """Set every dropout rate in ``model`` to ``rate``; return how many were set.

    Targets: the ``p`` of every ``nn.Dropout``/``Dropout1d/2d/3d``/``AlphaDropout`` module and
    every float ``drop_rate`` attribute (timm models read ``self.drop_rate`` in their head at
    forward time). With ``pattern``, only modules whose qualified name matches the regular
    expression (``re.search``; the root module's name is ``""``).

    Raises :class:`KnobTargetError` when ``rate > 0`` and nothing was found.
    """
    rate = _check_rate("dropout", rate)
    targets = _dropout_targets(model, pattern)
    if not targets and rate > 0:
        raise KnobTargetError(_missing("dropout", rate, _DROPOUT_SEARCH, model, pattern))
    for module, attr in targets:
        setattr(module, attr, rate)
    return len(targets)


# --- drop path -------------------------------------------------------------------------------
def _is_drop_path(module: nn.Module) -> bool:
    if type(module).__name__ == "DropPath" and hasattr(module, "drop_prob"):
        return True  # timm.layers.DropPath (and timm.models.layers re-exports)
    return type(module).__name__ == "StochasticDepth" and hasattr(module, "p")  # torchvision


def _drop_path_attr(module: nn.Module) -> str:
    return "drop_prob" if hasattr(module, "drop_prob") else "p"


def _depth_scales(modules: list[nn.Module]) -> list[float]:
    """Each module's depth scale, recording it as ``proglearn_depth_scale`` on first use."""
    missing = [m for m in modules if not isinstance(getattr(m, "proglearn_depth_scale", None),
                                                    (int, float))]
    if missing:
        rates = [float(getattr(m, _drop_path_attr(m))) for m in missing]
        top = max(rates)
        n = len(missing)
        for k, (m, r) in enumerate(zip(missing, rates, strict=True)):
            # Built with rates: keep their ratios. Built at 0: linear in depth, k / (n - 1).
            scale = r / top if top > 0 else (k / (n - 1) if n > 1 else 1.0)
            m.proglearn_depth_scale = scale  # type: ignore[assignment]
    return [float(m.proglearn_depth_scale) for m in modules]  # type: ignore[arg-type]


def set_drop_path(model: nn.Module, rate: float) -> int:
    """Set stochastic depth to ``rate``, keeping the per-block depth scaling; return the count.

    Targets: timm ``DropPath.drop_prob`` and torchvision ``StochasticDepth.p``. Module ``k``
    gets ``rate · scale_k``. ``scale_k`` is the module's ``proglearn_depth_scale`` attribute
    (proglearn's EfficientNetV2 sets it); when absent it is recorded on first call as the
    ratio the model was built with (``drop_prob_k / max_j drop_prob_j``, so the deepest block
    gets ``rate``) or, for a model built with every rate at 0, linearly by module order
    ``k / (n − 1)``.

    Raises :class:`KnobTargetError` when ``rate > 0`` and the model has no such module (timm
    builds ``nn.Identity`` instead of ``DropPath`` when ``drop_path_rate=0``).
    """
    rate = _check_rate("drop_path", rate)
    modules = [m for m in model.modules() if _is_drop_path(m)]
    if not modules and rate > 0:
        raise KnobTargetError(_missing("drop_path", rate, _DROP_PATH_SEARCH, model))
    for m, scale in zip(modules, _depth_scales(modules), strict=True):
        setattr(m, _drop_path_attr(m), rate * scale)
    return len(modules)


# --- RandAugment -----------------------------------------------------------------------------
def _walk(obj: Any, seen: set[int] | None = None) -> Iterator[Any]:
    """``obj`` and every transform nested in it (``.transforms`` lists, ``.transform``)."""
    seen = set() if seen is None else seen
    if obj is None or id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    children = getattr(obj, "transforms", None)
    if isinstance(children, (list, tuple, nn.ModuleList)):
        for child in children:
            yield from _walk(child, seen)
    yield from _walk(getattr(obj, "transform", None), seen)


def _is_timm_randaug(obj: Any) -> bool:
    return type(obj).__name__ == "RandAugment" and isinstance(getattr(obj, "ops", None), list)


def _is_tv_randaug(obj: Any) -> bool:
    return type(obj).__name__ == "RandAugment" and hasattr(obj, "num_magnitude_bins")


def _randaug_targets(transform: Any) -> list[Any]:
    return [t for t in _walk(transform) if _is_timm_randaug(t) or _is_tv_randaug(t)]


def set_randaug_magnitude(transform: Any, magnitude: float) -> int:
    """Set the RandAugment magnitude (timm/paper scale, 10 = timm's default maximum).

    ``transform`` may be a RandAugment or any tree of ``Compose``/``RandomApply``-like objects
    (``.transforms`` lists, ``.transform`` attributes) holding one. Returns how many
    RandAugments were set.

    * timm ``RandAugment``: every op's ``magnitude``. timm clips it to ``[0, 10]`` unless the op
      was built with a larger ``magnitude_max`` (``rand-m9-mmax20``); when ``magnitude``
      exceeds the op's bound the bound is raised to ``magnitude`` so the value asked for is the
      value in effect (the paper's TensorFlow RandAugment does not clip).
    * torchvision ``RandAugment``: its ``magnitude`` is a bin index over the same range, set to
      ``round(magnitude / 10 · (num_magnitude_bins − 1))`` (31 bins: magnitude 5 → bin 15, a
      15° rotation in both libraries). Above 10 it cannot follow: :class:`KnobTargetError`.

    Note: a transform living in DataLoader worker processes is a copy; setting the main
    process's object does not reach persistent workers (use :func:`progressive_loader`).
    """
    magnitude = _check_rate("randaug_magnitude", magnitude, hi=None)
    targets = _randaug_targets(transform)
    if not targets and magnitude > 0:
        raise KnobTargetError(_missing("randaug_magnitude", magnitude, _RANDAUG_SEARCH,
                                       transform))
    for t in targets:
        if _is_timm_randaug(t):
            for op in t.ops:
                op.magnitude = magnitude
                bound = op.magnitude_max or _TIMM_LEVEL_DENOM
                if magnitude > bound:
                    op.magnitude_max = magnitude
        else:
            if magnitude > _TIMM_LEVEL_DENOM:
                raise KnobTargetError(
                    f"randaug_magnitude: torchvision's RandAugment covers magnitudes 0 to "
                    f"{_TIMM_LEVEL_DENOM:g} on the timm/paper scale (received {magnitude:g}); "
                    "use timm's RandAugment (rand_augment_transform('rand-m9-mmax20', ...)) "
                    "for larger magnitudes")
            t.magnitude = round(magnitude / _TIMM_LEVEL_DENOM * (t.num_magnitude_bins - 1))
    return len(targets)


# --- Mixup / CutMix / label smoothing --------------------------------------------------------
def is_timm_mixup(obj: Any) -> bool:
    """True for a timm ``Mixup`` (or a subclass, e.g. ``FastCollateMixup``)."""
    return any(c.__name__ == "Mixup" and c.__module__.startswith("timm")
               for c in type(obj).__mro__)


def set_mixup(mixup: Any, *, mixup_alpha: float | None = None,
              cutmix_alpha: float | None = None, label_smoothing: float | None = None) -> int:
    """Set a timm ``Mixup``'s alphas and label smoothing; return the number of values set.

    ``None`` leaves a value unchanged. timm's Mixup cannot run with both alphas at 0 (and no
    ``cutmix_minmax``), so ``mixup_enabled`` is set to whether either is active: a stage with
    both alphas at 0 mixes nothing, and still applies label smoothing to the one-hot targets.
    """
    asked = {k: v for k, v in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha),
                               ("label_smoothing", label_smoothing)) if v is not None}
    if not is_timm_mixup(mixup):
        if any(v > 0 for v in asked.values()):
            knob = next(k for k, v in asked.items() if v > 0)
            searched = _LOSS_SEARCH if knob == "label_smoothing" else _MIXUP_SEARCH
            raise KnobTargetError(_missing(knob, asked[knob], searched, mixup))
        return 0
    for name, value in asked.items():
        hi = 1.0 if name == "label_smoothing" else None
        setattr(mixup, name, _check_rate(name, value, hi=hi))
    mixup.mixup_enabled = bool(mixup.mixup_alpha > 0 or mixup.cutmix_alpha > 0
                               or mixup.cutmix_minmax is not None)
    return len(asked)


def is_smoothing_loss(obj: Any) -> bool:
    """True for a loss whose label smoothing :func:`set_label_smoothing` can set."""
    return isinstance(obj, nn.CrossEntropyLoss) or (
        type(obj).__name__ == "LabelSmoothingCrossEntropy" and hasattr(obj, "smoothing"))


def set_label_smoothing(loss: Any, value: float) -> int:
    """Set label smoothing on ``nn.CrossEntropyLoss`` or timm ``LabelSmoothingCrossEntropy``."""
    value = _check_rate("label_smoothing", value)
    if isinstance(loss, nn.CrossEntropyLoss):
        loss.label_smoothing = value
        return 1
    if is_smoothing_loss(loss):
        loss.smoothing, loss.confidence = value, 1.0 - value
        return 1
    if value > 0:
        raise KnobTargetError(_missing("label_smoothing", value, _LOSS_SEARCH, loss))
    return 0


# --- all knobs at once -----------------------------------------------------------------------
_DROPOUT_SEARCH = "nn.Dropout* modules (their `p`) and float `drop_rate` attributes"
_DROP_PATH_SEARCH = ("timm DropPath / torchvision StochasticDepth modules (timm builds "
                     "nn.Identity instead when drop_path_rate=0; build the model with a rate "
                     "> 0 or use proglearn.models.efficientnetv2)")
_RANDAUG_SEARCH = ("timm / torchvision RandAugment, through `.transforms` lists and "
                   "`.transform` attributes")
_MIXUP_SEARCH = "a timm Mixup (mixup=...)"
_LOSS_SEARCH = "a timm Mixup (mixup=...), else nn.CrossEntropyLoss / timm " \
               "LabelSmoothingCrossEntropy (loss=...)"


def _missing(knob: str, value: float, searched: str, where: Any,
             pattern: str | None = None) -> str:
    what = "nothing (None was passed)" if where is None else type(where).__name__
    pat = f" with module names matching {pattern!r}" if pattern is not None else ""
    return (f"knob {knob!r} (value {value:g}) found no target: searched {what} for "
            f"{searched}{pat}, found none. Pass a target, or remove the knob from the schedule.")


def _knob_targets(knob: str, *, model: nn.Module | None, mixup: Any, transform: Any,
                  loss: Any, dropout_pattern: str | None, appliers: Appliers) -> tuple[int, str]:
    """How many targets ``knob`` has, and what was searched (for the error message)."""
    if knob in appliers:
        return 1, "appliers"
    if knob == "dropout":
        n = len(_dropout_targets(model, dropout_pattern)) if model is not None else 0
        pat = f" matching {dropout_pattern!r}" if dropout_pattern is not None else ""
        return n, f"model={type(model).__name__ if model is not None else None} for " \
                  f"{_DROPOUT_SEARCH}{pat}"
    if knob == "drop_path":
        n = sum(map(_is_drop_path, model.modules())) if model is not None else 0
        return n, f"model={type(model).__name__ if model is not None else None} for " \
                  f"{_DROP_PATH_SEARCH}"
    if knob == "randaug_magnitude":
        n = len(_randaug_targets(transform)) if transform is not None else 0
        return n, f"transform={type(transform).__name__ if transform is not None else None} " \
                  f"for {_RANDAUG_SEARCH}"
    if knob in ("mixup_alpha", "cutmix_alpha"):
        return int(is_timm_mixup(mixup)), f"mixup={type(mixup).__name__} for {_MIXUP_SEARCH}"
    if knob == "label_smoothing":
        n = int(is_timm_mixup(mixup) or is_smoothing_loss(loss))
        return n, f"mixup={type(mixup).__name__}, loss={type(loss).__name__} for {_LOSS_SEARCH}"
    return 0, f"appliers (a custom knob needs appliers={{{knob!r}: fn}}; have " \
              f"{sorted(appliers)})"


def check_targets(
    schedule: ScheduleLike, *, model: nn.Module | None = None,
    mixup: Any = None, transform: Any = None, loss: Any = None,
    dropout_pattern: str | None = None, data_handles_randaug: bool = False,
    appliers: Appliers | None = None, skip: Iterable[str] = (),
) -> None:
    """Raise :class:`KnobTargetError` at set-up for every knob that would find no target.

    Knobs that are 0 in every stage (:func:`proglearn.is_zero`) need no target, knobs in
    ``skip`` are applied by someone else, and ``data_handles_randaug=True`` says the data
    pipeline builds RandAugment at each stage's magnitude (zero-rebuild and rebuild modes).
    Also checks that every stage's values are valid for the targets found (e.g. a torchvision
    RandAugment cannot go above magnitude 10).
    """
    spec = load_schedule(schedule)
    skipped = set(skip) | ({"randaug_magnitude"} if data_handles_randaug else set())
    appliers = dict(appliers or {})
    problems = []
    for knob in spec.knobs.ramps():
        if knob in skipped or is_zero(spec, knob):
            continue
        n, searched = _knob_targets(knob, model=model, mixup=mixup, transform=transform,
                                    loss=loss, dropout_pattern=dropout_pattern,
                                    appliers=appliers)
        if n == 0:
            problems.append(f"knob {knob!r} found no target: searched {searched}, found none")
    if problems:
        raise KnobTargetError("; ".join(problems) + ". Pass a target, or remove the knob from "
                              "the schedule (a knob that is 0 in every stage needs none).")
    if "randaug_magnitude" not in skipped and transform is not None:
        top = max(stage_values(spec, i).values.get("randaug_magnitude", 0.0)
                  for i in range(spec.stages))
        if top > _TIMM_LEVEL_DENOM and any(map(_is_tv_randaug, _randaug_targets(transform))):
            raise KnobTargetError(
                f"randaug_magnitude: the schedule reaches {top:g} but torchvision's "
                f"RandAugment covers 0 to {_TIMM_LEVEL_DENOM:g} on the timm/paper scale; use "
                "timm's RandAugment for larger magnitudes")


def apply_values(
    values: Mapping[str, float], *, model: nn.Module | None = None, mixup: Any = None,
    transform: Any = None, loss: Any = None, dropout_pattern: str | None = None,
    appliers: Appliers | None = None, skip: Iterable[str] = (),
) -> dict[str, int]:
    """Apply every knob in ``values`` to its targets; return ``{knob: targets set}``.

    A non-zero value with no target raises :class:`KnobTargetError`; a zero value with no
    target is skipped (there is nothing to apply). Knobs in ``skip`` are left alone;
    ``appliers`` maps a knob name (custom, or overriding a built-in) to ``fn(value)``.
    ``label_smoothing`` goes to ``mixup`` when one is given (timm's recipe smooths the mixed
    targets and uses a soft-target loss), else to ``loss``.
    """
    appliers = dict(appliers or {})
    skipped = set(skip)
    counts: dict[str, int] = {}
    mix: dict[str, float] = {}
    for knob, value in values.items():
        if knob in skipped:
            continue
        if knob in appliers:
            appliers[knob](value)
            counts[knob] = 1
        elif knob == "dropout":
            counts[knob] = _apply_model(set_dropout, knob, value, model, pattern=dropout_pattern)
        elif knob == "drop_path":
            counts[knob] = _apply_model(set_drop_path, knob, value, model)
        elif knob == "randaug_magnitude":
            counts[knob] = set_randaug_magnitude(transform, value)
        elif knob in ("mixup_alpha", "cutmix_alpha"):
            mix[knob] = value
        elif knob == "label_smoothing":
            if mixup is not None or loss is None:
                mix[knob] = value
            else:
                counts[knob] = set_label_smoothing(loss, value)
        elif value != 0:
            raise KnobTargetError(_missing(knob, value, "appliers", appliers))
    if mix:
        n = set_mixup(mixup, **mix)
        counts.update({k: int(n > 0) for k in mix})
    return counts


def _apply_model(fn: Callable[..., int], knob: str, value: float, model: nn.Module | None,
                 **kwargs: Any) -> int:
    if model is None:
        if value > 0:
            raise KnobTargetError(_missing(knob, value, "a model (model=...)", None))
        return 0
    return fn(model, value, **kwargs)
