"""Pure functions over a :class:`~proglearn.spec.Schedule`: epoch/step/fraction -> stage -> values.

Nothing here keeps state: the same schedule and the same epoch always give the same stage and the
same values, in every framework and every process. That is what makes resume and multi-process
training correct by construction.

Formulas (``M`` stages, stage index ``i`` in ``0 … M-1``)
--------------------------------------------------------
Stage boundaries, in epochs (or steps, for step-based use), with ``E`` the total::

    D = floor(delay_fraction · E)      F = floor(finetune_fraction · E)      R = E − D − F
    start_0 = 0,   start_i = D + floor(i · R / M)   (1 ≤ i < M),   end_{M−1} = E

so with no delay/finetune the remainder of ``E / M`` goes to the later stages
(10 epochs, 3 stages → 3, 3, 4), the first stage also holds the delay and the last the finetune.
Explicit ``boundaries`` replace this.

Ratio of stage ``i``: ``paper`` convention ``r_i = i / (M − 1)`` (paper Algorithm 1) for every
value; ``automl`` convention (the released code) uses ``r_i = (i + 1) / M`` for the image size and
``i / (M − 1)`` for every knob. With ``M = 1`` the ratio is 1 (train at the end values).

Values: ``v_i = start + (end − start) · r_i``, exact at ``r = 0`` and ``r = 1``. Image size is
truncated with ``int()`` (as the released code does), or rounded to the nearest ``multiple``
(half up) when one is set.

Modes: ``adaptive`` — size and knobs follow the stage; ``resize_only`` — size follows the stage,
knobs stay at their end value; ``fixed`` — end size and end knobs throughout (batch size too);
``random`` — each epoch's stage is drawn uniformly from a generator seeded with
``(seed, epoch)`` (identical on every process), and that stage's size and knobs apply.

Example (paper Table 6, EfficientNetV2-S; boundary values exact)::

    >>> from proglearn import load_schedule
    >>> s = load_schedule("efficientnetv2-s")
    >>> [stage_values(s, i).image_size for i in range(4)]
    [128, 185, 242, 300]
    >>> [stage_epochs(s, i) for i in range(4)]
    [(0, 87), (87, 175), (175, 262), (262, 350)]
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .spec import Schedule, ScheduleError

__all__ = [
    "PlanRow",
    "Stage",
    "flop_cost_ratio",
    "image_size",
    "is_zero",
    "knob_values",
    "plan",
    "ratio",
    "stage_at_epoch",
    "stage_at_fraction",
    "stage_at_step",
    "stage_epochs",
    "stage_starts",
    "stage_values",
    "values_at_epoch",
]


@dataclass(frozen=True)
class Stage:
    """Everything in effect during one stage."""

    index: int
    image_size: int
    batch_size: int | None
    lr_scale: float
    values: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "image_size": self.image_size,
            "batch_size": self.batch_size,
            "lr_scale": self.lr_scale,
            "values": dict(self.values),
        }


@dataclass(frozen=True)
class PlanRow(Stage):
    """A stage together with the epochs ``[epoch_start, epoch_end)`` it covers."""

    epoch_start: int = 0
    epoch_end: int = 0

    def to_dict(self) -> dict[str, object]:
        d = super().to_dict()
        return {"index": d.pop("index"), "epoch_start": self.epoch_start,
                "epoch_end": self.epoch_end, **d}


def _check_int(name: str, value: object, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name}: must be an integer >= {lo} (received {value!r})")
    return int(value)


def stage_starts(spec: Schedule, total: int | None = None) -> tuple[int, ...]:
    """Start of every stage, in units of ``total`` (default: ``spec.epochs``, i.e. epochs).

    Pass ``total = epochs * steps_per_epoch`` for step boundaries.
    """
    e = spec.epochs
    t = e if total is None else total
    if spec.boundaries is not None:
        scale = t / e
        return tuple(int(b * scale) for b in spec.boundaries)
    m = spec.stages
    d, f = int(spec.delay_fraction * t), int(spec.finetune_fraction * t)
    r = t - d - f
    return (0, *(d + (i * r) // m for i in range(1, m)))


def _check_stage(spec: Schedule, index: int) -> int:
    index = _check_int("stage", index)
    if index >= spec.stages:
        raise ValueError(f"stage: must be < stages={spec.stages} (received {index})")
    return index


def stage_epochs(spec: Schedule, index: int) -> tuple[int, int]:
    """Epoch range ``[start, end)`` of stage ``index`` (not defined in ``random`` mode)."""
    index = _check_stage(spec, index)
    if spec.mode == "random":
        raise ScheduleError("mode: 'random' draws a stage per epoch; stages have no fixed "
                            "epoch range (use plan() for the drawn sequence)")
    starts = stage_starts(spec)
    end = starts[index + 1] if index + 1 < spec.stages else spec.epochs
    return starts[index], end


def _random_stage(spec: Schedule, epoch: int) -> int:
    return int(np.random.default_rng([spec.seed, epoch]).integers(spec.stages))


def stage_at_epoch(spec: Schedule, epoch: int) -> int:
    """Stage index for the 0-based ``epoch``. Epochs past the end stay in the last stage."""
    epoch = _check_int("epoch", epoch)
    if spec.mode == "random":
        return _random_stage(spec, min(epoch, spec.epochs - 1))
    return bisect.bisect_right(stage_starts(spec), epoch) - 1


def stage_at_step(spec: Schedule, step: int) -> int:
    """Stage index for the 0-based global optimizer ``step`` (needs ``steps_per_epoch``).

    Boundaries are computed in steps (``total = epochs · steps_per_epoch``), so a stage lasts
    ``N / M`` steps as in Algorithm 1 even when ``epochs`` is not divisible by ``M``.
    """
    step = _check_int("step", step)
    spe = spec.steps_per_epoch
    if spe is None:
        raise ScheduleError("steps_per_epoch: required for step-based scheduling (received None)")
    if spec.mode == "random":
        return _random_stage(spec, min(step // spe, spec.epochs - 1))
    return bisect.bisect_right(stage_starts(spec, spec.epochs * spe), step) - 1


def stage_at_fraction(spec: Schedule, fraction: float) -> int:
    """Stage index when ``fraction`` (in [0, 1]) of training is done.

    The fraction is converted to the finest unit the schedule knows (steps if
    ``steps_per_epoch`` is set, else epochs) and truncated: ``unit = floor(fraction · total)``.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (
        0 <= fraction <= 1
    ):
        raise ValueError(f"fraction: must be a number in [0, 1] (received {fraction!r})")
    if spec.steps_per_epoch is not None:
        total = spec.epochs * spec.steps_per_epoch
        return stage_at_step(spec, min(math.floor(fraction * total), total - 1))
    return stage_at_epoch(spec, min(math.floor(fraction * spec.epochs), spec.epochs - 1))


def ratio(spec: Schedule, index: int, *, for_size: bool = False) -> Fraction:
    """Interpolation ratio of stage ``index`` in [0, 1] (exact, as a Fraction)."""
    index = _check_stage(spec, index)
    m = spec.stages
    if m == 1:
        return Fraction(1)
    if for_size and spec.convention == "automl":
        return Fraction(index + 1, m)
    return Fraction(index, m - 1)


def _lerp(start: float, end: float, r: Fraction) -> float:
    if r == 0:
        return start
    if r == 1:
        return end
    v = round(start + (end - start) * float(r), 10)
    return min(max(v, min(start, end)), max(start, end))


def image_size(spec: Schedule, index: int) -> int:
    """Training image size of stage ``index`` (``fixed`` mode: always the end size)."""
    size = spec.image_size
    r = Fraction(1) if spec.mode == "fixed" else ratio(spec, index, for_size=True)
    exact = size.start + (size.end - size.start) * r
    if size.multiple is None:
        return int(exact)
    q = size.multiple
    return max(q, math.floor(exact / q + Fraction(1, 2)) * q)


def knob_values(spec: Schedule, index: int) -> dict[str, float]:
    """Every knob's value in stage ``index`` (``resize_only``/``fixed``: the end values)."""
    r = Fraction(1) if spec.mode in ("resize_only", "fixed") else ratio(spec, index)
    return {name: _lerp(ramp.start, ramp.end, r) for name, ramp in spec.knobs.ramps().items()}


def _batch(spec: Schedule, size: int) -> tuple[int | None, float]:
    b = spec.batch_size
    if b is None:
        return None, 1.0
    if b.policy == "constant":
        return b.size, 1.0
    n = (b.size * spec.image_size.end**2) // size**2
    n = max(b.multiple, (n // b.multiple) * b.multiple)
    if b.max is not None:
        n = min(n, b.max)
    return n, n / b.size


def stage_values(spec: Schedule, index: int) -> Stage:
    """All values of stage ``index``: image size, batch size, lr scale, knobs."""
    size = image_size(spec, index)
    batch, lr_scale = _batch(spec, size)
    return Stage(index=index, image_size=size, batch_size=batch, lr_scale=lr_scale,
                 values=knob_values(spec, index))


def values_at_epoch(spec: Schedule, epoch: int) -> Stage:
    """Values in effect at the 0-based ``epoch``."""
    return stage_values(spec, stage_at_epoch(spec, epoch))


def plan(spec: Schedule) -> list[PlanRow]:
    """The whole training plan: rows that cover every epoch exactly once, in order.

    One row per stage, except in ``random`` mode: one row per run of consecutive epochs that drew
    the same stage.
    """
    if spec.mode == "random":
        runs: list[tuple[int, int, int]] = []
        for epoch in range(spec.epochs):
            s = stage_at_epoch(spec, epoch)
            if runs and runs[-1][0] == s:
                runs[-1] = (s, runs[-1][1], epoch + 1)
            else:
                runs.append((s, epoch, epoch + 1))
    else:
        runs = [(i, *stage_epochs(spec, i)) for i in range(spec.stages)]
    rows = []
    for i, start, end in runs:
        st = stage_values(spec, i)
        rows.append(PlanRow(index=i, image_size=st.image_size, batch_size=st.batch_size,
                            lr_scale=st.lr_scale, values=st.values,
                            epoch_start=start, epoch_end=end))
    return rows


def flop_cost_ratio(spec: Schedule) -> float:
    """Ideal compute of this schedule relative to fixed-size training at the end size.

    ``Σ_rows epochs_row · size_row² / (epochs · end²)``; for M equal stages this is
    ``Σ size_i² / (M · size_end²)``. The FLOP-ideal speedup is its inverse.
    """
    end = spec.image_size.end
    total = sum((r.epoch_end - r.epoch_start) * r.image_size**2 for r in plan(spec))
    return total / (spec.epochs * end**2)


def is_zero(spec: Schedule, knob: str) -> bool:
    """True when ``knob`` is 0 in every stage (no regularization of that kind is asked for)."""
    return all(knob_values(spec, i).get(knob, 0.0) == 0.0 for i in range(spec.stages))
