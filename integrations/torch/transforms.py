"""Per-stage image transforms built on timm's: the default ``make_transform(stage)`` factory.

:func:`default_transform_factory` returns a picklable callable ``make_transform(stage)`` that
builds timm's ImageNet training transform (``RandomResizedCrop`` to ``stage.image_size``,
horizontal flip, RandAugment, ``ToTensor``, ``Normalize``) with RandAugment at
``stage.values["randaug_magnitude"]``. Give it to a stage-aware data mode (``StageDataset``,
``progressive_loader``) and every stage gets its own transform, built once.

Two details of timm's RandAugment that matter for schedules:

* **Fractional magnitudes.** timm's config string parses the magnitude with ``int()``, so
  ``"rand-m8.33"`` is an error. The transform is therefore built from the string with a
  placeholder and each op's ``magnitude`` is then set to the exact float (8.33 stays 8.33).
* **The [0, 10] clip.** timm clips every op's magnitude to ``[0, magnitude_max]``, and
  ``magnitude_max`` defaults to 10. The paper's schedules go to 15-25 (like the released code,
  where 10 is the "full" level and larger values extrapolate), so the ops are built with
  ``magnitude_max = max(10, magnitude)`` unless you pass ``randaug_max``.

The op set defaults to timm's *increasing* ops (``randaug_increasing=True``, timm's recommended
``inc1``): every op gets stronger as the magnitude grows, so a scheduled magnitude is a monotone
amount of regularization. ``randaug_increasing=False`` uses the released code's (TF) mapping, in
which Posterize and Solarize get *weaker* as the magnitude grows (magnitude 2 posterizes to 0 bits,
a black image). Pillow >= 10 rejects ``ImageOps.posterize(img, 0)``, which timm's ``Posterize``
asks for below magnitude 2.5 and ``PosterizeIncreasing`` at 10 and above; those ops get a
posterize that returns the black image a 0-bit posterize always produced, so every magnitude
works.

Grayscale input (Fashion-MNIST) works: every transform starts with :class:`ToMode`, which turns a
PIL image, ``HxW``/``HxWxC`` uint8 array or ``CxHxW`` tensor into a PIL image in ``"RGB"``
(``in_chans=3``) or ``"L"`` (``in_chans=1``) mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from timm.data.auto_augment import RandAugment
from torchvision import transforms as T

__all__ = [
    "IMAGENET_DEFAULT_MEAN",
    "IMAGENET_DEFAULT_STD",
    "StageTransformFactory",
    "ToMode",
    "default_transform_factory",
    "eval_transform",
    "find_randaugment",
    "train_transform",
]

#: timm's magnitude scale: magnitude 10 is the "full" level of every op (``_LEVEL_DENOM``).
RANDAUG_LEVEL_MAX = 10.0


class ToMode:
    """Convert an image to a PIL image in ``mode`` (``"RGB"`` or ``"L"``).

    Accepts PIL images, numpy ``uint8`` arrays ``HxW`` or ``HxWxC`` and tensors ``CxHxW``
    (uint8, or float in [0, 1]).
    """

    def __init__(self, mode: str = "RGB") -> None:
        if mode not in ("RGB", "L"):
            raise ValueError(f"mode: must be 'RGB' or 'L' (received {mode!r})")
        self.mode = mode

    def __call__(self, img: Any) -> Image.Image:
        if isinstance(img, torch.Tensor):
            img = T.functional.to_pil_image(img)
        elif isinstance(img, np.ndarray):
            img = Image.fromarray(img)
        if not isinstance(img, Image.Image):
            raise TypeError("image: must be a PIL image, numpy array or tensor "
                            f"(received {type(img).__name__})")
        return img if img.mode == self.mode else img.convert(self.mode)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode={self.mode!r})"


def _posterize(img: Image.Image, bits_to_keep: int, **_: Any) -> Image.Image:
    """timm's posterize, extended to ``bits_to_keep <= 0`` (keep no bit: a black image)."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size, 0)
    return ImageOps.posterize(img, bits_to_keep)


def find_randaugment(transform: Any) -> list[RandAugment]:
    """Every timm ``RandAugment`` inside ``transform`` (searching ``Compose`` trees)."""
    if isinstance(transform, RandAugment):
        return [transform]
    found: list[RandAugment] = []
    for child in getattr(transform, "transforms", None) or []:
        found += find_randaugment(child)
    return found


def _channels(name: str, value: Sequence[float] | None, default: Sequence[float],
              in_chans: int) -> tuple[float, ...]:
    if value is None:
        value = default if in_chans == 3 else (sum(default) / len(default),) * in_chans
    value = tuple(float(v) for v in value)
    if len(value) != in_chans:
        raise ValueError(
            f"{name}: must have one value per channel (in_chans={in_chans}) (received {value!r})")
    return value


def _check_in_chans(in_chans: object) -> int:
    if in_chans not in (1, 3) or isinstance(in_chans, bool):
        raise ValueError(f"in_chans: must be 1 or 3 (received {in_chans!r})")
    return int(in_chans)  # type: ignore[call-overload]


def _check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size: must be an integer >= 1 (received {size!r})")
    return int(size)


def train_transform(
    size: int,
    randaug_magnitude: float | None = None,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    in_chans: int = 3,
    interpolation: str = "bilinear",
    randaug_layers: int = 2,
    randaug_std: float = 0.0,
    randaug_max: float | None = None,
    randaug_increasing: bool = True,
    scale: tuple[float, float] = (0.08, 1.0),
    hflip: float = 0.5,
    color_jitter: float | None = None,
    **timm_kwargs: Any,
) -> T.Compose:
    """timm's training transform at ``size`` with RandAugment at ``randaug_magnitude``.

    ``randaug_magnitude=None``: no RandAugment. ``mean``/``std`` default to ImageNet's (their
    average for ``in_chans=1``). ``randaug_layers``/``randaug_std``/``randaug_increasing`` are
    timm's ``n``/``mstd``/``inc``; ``randaug_max`` the clip (default ``max(10, magnitude)``).
    ``color_jitter`` defaults to off (timm turns it on when RandAugment is off, which would make
    stages with and without RandAugment differ in more than the schedule says). Other keywords
    go to ``timm.data.create_transform``.
    """
    size = _check_size(size)
    in_chans = _check_in_chans(in_chans)
    mean = _channels("mean", mean, IMAGENET_DEFAULT_MEAN, in_chans)
    std = _channels("std", std, IMAGENET_DEFAULT_STD, in_chans)
    auto_augment = None
    if randaug_magnitude is not None:
        m = float(randaug_magnitude)
        if not math.isfinite(m) or m < 0:
            raise ValueError(f"randaug_magnitude: must be a number >= 0 (received {m!r})")
        top = max(RANDAUG_LEVEL_MAX, m) if randaug_max is None else float(randaug_max)
        if top < m:
            raise ValueError(f"randaug_max: must be >= randaug_magnitude={m} (received {top})")
        if isinstance(randaug_layers, bool) or not isinstance(randaug_layers, int) or (
                randaug_layers < 1):
            raise ValueError(f"randaug_layers: must be an integer >= 1 (received "
                             f"{randaug_layers!r})")
        # Integer placeholder in the string (timm parses m with int()); exact values set below.
        auto_augment = (f"rand-m{int(m)}-n{randaug_layers}-mstd{float(randaug_std)}"
                        f"-inc{int(bool(randaug_increasing))}")
    tf = create_transform(
        size, is_training=True, auto_augment=auto_augment, interpolation=interpolation,
        mean=mean, std=std, scale=scale, hflip=hflip,
        color_jitter=color_jitter,  # type: ignore[arg-type]  # timm accepts None (off)
        **timm_kwargs)
    if randaug_magnitude is not None:
        for ra in find_randaugment(tf):
            for op in ra.ops:
                op.magnitude = m
                op.magnitude_max = top
                if op.name.startswith("Posterize"):
                    op.aug_fn = _posterize
    return T.Compose([ToMode("RGB" if in_chans == 3 else "L"), *tf.transforms])


def eval_transform(
    size: int,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    in_chans: int = 3,
    interpolation: str = "bilinear",
    crop_pct: float = 1.0,
    **timm_kwargs: Any,
) -> T.Compose:
    """timm's evaluation transform: resize to ``size / crop_pct``, center-crop ``size``,
    ``ToTensor``, ``Normalize``. ``crop_pct=1.0`` (default) resizes the whole image to ``size``,
    right for small images such as Fashion-MNIST; ImageNet recipes use 0.875-1.0."""
    size = _check_size(size)
    in_chans = _check_in_chans(in_chans)
    tf = create_transform(
        size, is_training=False, interpolation=interpolation, crop_pct=crop_pct,
        mean=_channels("mean", mean, IMAGENET_DEFAULT_MEAN, in_chans),
        std=_channels("std", std, IMAGENET_DEFAULT_STD, in_chans), **timm_kwargs)
    return T.Compose([ToMode("RGB" if in_chans == 3 else "L"), *tf.transforms])


class StageTransformFactory:
    """``make_transform(stage)``: :func:`train_transform` at ``stage.image_size`` with
    RandAugment at ``stage.values.get("randaug_magnitude")``. Picklable (works with worker
    processes started by ``spawn``). Built by :func:`default_transform_factory`."""

    def __init__(self, *, randaug: bool = True, **kwargs: Any) -> None:
        self.randaug = bool(randaug)
        self.kwargs = kwargs
        train_transform(8, 1.0 if randaug else None, **kwargs)  # check the arguments now

    def __call__(self, stage: Any) -> T.Compose:
        magnitude = stage.values.get("randaug_magnitude")
        if magnitude is not None and not self.randaug:
            raise ValueError(
                "randaug: the transform factory was built with randaug=False but the schedule "
                f"sets randaug_magnitude={magnitude} in stage {stage.index}; build it with "
                "randaug=True or remove the knob")
        return train_transform(stage.image_size, magnitude, **self.kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{type(self).__name__}(randaug={self.randaug}{', ' if args else ''}{args})"


def default_transform_factory(
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    in_chans: int = 3,
    interpolation: str = "bilinear",
    randaug: bool = True,
    **kwargs: Any,
) -> Callable[[Any], T.Compose]:
    """The default ``make_transform(stage)`` of the stage-aware data modes.

    Each call builds :func:`train_transform` at ``stage.image_size``; with ``randaug=True`` (the
    default) RandAugment runs at ``stage.values["randaug_magnitude"]`` when the schedule has
    that knob and is absent when it has not. ``randaug=False`` with a schedule that sets the
    knob is an error when the stage's transform is built (nothing is skipped silently).
    ``kwargs`` go to :func:`train_transform` (``randaug_layers``, ``randaug_std``,
    ``randaug_max``, ``randaug_increasing``, ``scale``, ``hflip``, ``color_jitter``, timm's).

    Example::

        make = default_transform_factory(in_chans=1, mean=(0.286,), std=(0.353,))
        tf = make(proglearn.stage_values(schedule, 0))   # PIL image -> tensor [1, S, S]
    """
    return StageTransformFactory(mean=mean, std=std, in_chans=in_chans,
                                 interpolation=interpolation, randaug=randaug, **kwargs)
