"""The schedule specification: frozen, validated pydantic models.

A :class:`Schedule` is a *value*. Everything an adapter needs (the stage of an epoch, its image
size, batch size and regularization values) is computed from it by the pure functions in
:mod:`proglearn.schedule`; nothing is stored anywhere else.

Validation errors raised while building a schedule are :class:`ScheduleError` (a ``ValueError``),
whose message names each offending field path and the value received, for example::

    knobs.dropout.end: must be < 1 (received 1.5)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "KNOWN_KNOBS",
    "BatchSize",
    "ConfigError",
    "ImageSize",
    "from_validation_error",
    "Knobs",
    "Ramp",
    "Schedule",
    "ScheduleError",
]

Convention = Literal["paper", "automl"]
Mode = Literal["adaptive", "resize_only", "fixed", "random"]

# A finite number: ints are accepted, bools and strings are not.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
Fraction01 = Annotated[float, Field(strict=True, ge=0, lt=1, allow_inf_nan=False)]


class ConfigError(ValueError):
    """Invalid user input from a file or a mapping.

    ``errors`` holds ``(field_path, message)`` pairs; ``source`` the file or preset name, if any;
    ``detail`` the message without the source.
    """

    def __init__(
        self, message: str, *, source: str | None = None,
        errors: list[tuple[str, str]] | None = None,
    ) -> None:
        self.source = source
        self.detail = message
        self.errors = errors or []
        super().__init__(f"{source}: {message}" if source else message)


class ScheduleError(ConfigError):
    """An invalid schedule: bad field, bad file, unknown preset."""


def _describe(err: Any) -> str:
    """One short, readable message for one pydantic error dict."""
    kind, received = err["type"], err.get("input")
    ctx = {k: (int(v) if isinstance(v, float) and v.is_integer() else v)
           for k, v in (err.get("ctx") or {}).items()}
    messages = {
        "less_than": "must be < {lt}",
        "less_than_equal": "must be <= {le}",
        "greater_than": "must be > {gt}",
        "greater_than_equal": "must be >= {ge}",
        "extra_forbidden": "unknown field",
        "missing": "required field is missing",
        "literal_error": "must be one of {expected}",
        "float_type": "must be a number",
        "int_type": "must be an integer",
        "finite_number": "must be a finite number",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "dict_type": "must be a mapping",
        "list_type": "must be a list",
    }
    if kind in messages:
        text = messages[kind].format(**ctx)
    else:
        text = str(err["msg"]).removeprefix("Value error, ")
        if text[:1].isupper() and not text[:2].isupper():
            text = text[0].lower() + text[1:]
    if kind == "missing" or (kind == "value_error" and "received" in text):
        return text
    return f"{text} (received {received!r})"


def from_validation_error(exc: ValidationError, source: str | None) -> ScheduleError:
    """A pydantic error as a :class:`ScheduleError`: one ``field.path: message (received …)``
    per problem. Other validated configs (e.g. the ablation's) reuse it."""
    pairs = []
    for err in exc.errors():
        path, msg = ".".join(str(p) for p in err["loc"]), _describe(err)
        if not path:  # a cross-field check: its message starts with the field it names
            path, _, msg = msg.partition(": ")
        pairs.append((path, msg))
    lines = "; ".join(f"{path}: {msg}" for path, msg in pairs)
    head = "invalid schedule" if len(pairs) == 1 else f"invalid schedule ({len(pairs)} errors)"
    return ScheduleError(f"{head}: {lines}", source=source, errors=pairs)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class Ramp(_Frozen):
    """A value that moves linearly from ``start`` (first stage) to ``end`` (last stage).

    In YAML a ramp is written ``{start: 0.1, end: 0.3}``, ``[0.1, 0.3]``, or a single number
    for a constant.
    """

    start: Number
    end: Number

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, (list, tuple)):
            if len(data) != 2:
                raise ValueError(f"a ramp list must be [start, end] (received {list(data)!r})")
            return {"start": data[0], "end": data[1]}
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"start": data, "end": data}
        if not isinstance(data, dict):
            raise ValueError(
                f"must be a number, [start, end] or {{start, end}} (received {data!r})")
        return data


class UnitRamp(Ramp):
    """A ramp whose values are probabilities in [0, 1)."""

    start: Annotated[float, Field(strict=True, ge=0, lt=1, allow_inf_nan=False)]
    end: Annotated[float, Field(strict=True, ge=0, lt=1, allow_inf_nan=False)]


class NonNegRamp(Ramp):
    """A ramp whose values are >= 0."""

    start: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
    end: Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]


#: Knobs proglearn knows, with the range each must stay in.
KNOWN_KNOBS: dict[str, str] = {
    "dropout": "[0, 1)",
    "drop_path": "[0, 1)",
    "label_smoothing": "[0, 1)",
    "randaug_magnitude": ">= 0",
    "mixup_alpha": ">= 0",
    "cutmix_alpha": ">= 0",
}


class Knobs(BaseModel):
    """Named regularization ramps. Known names are range-checked; any other name is allowed
    (your own knob) but must be a number ramp."""

    model_config = ConfigDict(frozen=True, extra="allow")
    __pydantic_extra__: dict[str, Ramp] = Field(init=False)  # type: ignore[assignment]

    dropout: UnitRamp | None = None
    drop_path: UnitRamp | None = None
    label_smoothing: UnitRamp | None = None
    randaug_magnitude: NonNegRamp | None = None
    mixup_alpha: NonNegRamp | None = None
    cutmix_alpha: NonNegRamp | None = None

    def ramps(self) -> dict[str, Ramp]:
        """All knobs that are set, known ones first (in the order of ``KNOWN_KNOBS``)."""
        known = {k: getattr(self, k) for k in KNOWN_KNOBS if getattr(self, k) is not None}
        return {**known, **(self.__pydantic_extra__ or {})}


class ImageSize(_Frozen):
    """Training image size ramp (pixels, square side)."""

    start: PositiveInt
    end: PositiveInt
    multiple: PositiveInt | None = Field(
        default=None, description="Round every stage size to the nearest multiple of this.")
    eval: PositiveInt | None = Field(
        default=None, description="Evaluation image size (default: end).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, (list, tuple)) and len(data) == 2:
            return {"start": data[0], "end": data[1]}
        if isinstance(data, int) and not isinstance(data, bool):
            return {"start": data, "end": data}
        return data

    @model_validator(mode="after")
    def _multiples(self) -> ImageSize:
        q = self.multiple
        for name in ("start", "end"):
            v = getattr(self, name)
            if q is not None and v % q:
                raise ValueError(
                    f"image_size.{name}: must be a multiple of image_size.multiple={q} "
                    f"(received {v})")
        return self

    @property
    def eval_size(self) -> int:
        return self.eval if self.eval is not None else self.end


class BatchSize(_Frozen):
    """Batch size policy.

    ``constant``: every stage uses ``size``. ``pixels``: keep pixels per batch constant, i.e.
    ``batch_i = floor(size * (end / size_i)**2)`` rounded down to ``multiple`` and capped at
    ``max``; ``size`` is the batch at the final image size. The learning-rate scale factor of a
    stage is ``batch_i / size`` (linear scaling rule); adapters apply it only if asked.
    """

    size: PositiveInt
    policy: Literal["constant", "pixels"] = "constant"
    max: PositiveInt | None = None
    multiple: PositiveInt = 1

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, int) and not isinstance(data, bool):
            return {"size": data}
        return data

    @model_validator(mode="after")
    def _check(self) -> BatchSize:
        if self.max is not None and self.max < self.size:
            raise ValueError(
                f"batch_size.max: must be >= batch_size.size={self.size} (received {self.max})")
        if self.multiple > self.size:
            raise ValueError(
                f"batch_size.multiple: must be <= batch_size.size={self.size} "
                f"(received {self.multiple})")
        return self


class Schedule(_Frozen):
    """A progressive-learning schedule (paper Algorithm 1), as a frozen value.

    Example::

        Schedule(epochs=12, stages=4, image_size={"start": 128, "end": 300},
                 knobs={"dropout": [0.1, 0.3]})
    """

    epochs: PositiveInt = Field(description="Length of training in epochs.")
    stages: PositiveInt = Field(description="Number of stages M (1 <= M <= epochs).")
    image_size: ImageSize
    knobs: Knobs = Field(default_factory=Knobs)
    batch_size: BatchSize | None = None
    convention: Convention = "paper"
    mode: Mode = "adaptive"
    seed: NonNegInt = 0
    steps_per_epoch: PositiveInt | None = None
    boundaries: tuple[NonNegInt, ...] | None = Field(
        default=None, description="Explicit start epoch of every stage (uneven stages).")
    delay_fraction: Fraction01 = 0.0
    finetune_fraction: Fraction01 = 0.0

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise from_validation_error(exc, None) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Schedule:  # type: ignore[override]
        if not isinstance(obj, dict):
            raise ScheduleError(
                f"invalid schedule: schedule: must be a mapping (received {obj!r:.60})",
                errors=[("schedule", "must be a mapping")])
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise ScheduleError(
                f"invalid schedule: schedule: field names must be strings "
                f"(received {bad[0]!r})", errors=[("schedule", "field names must be strings")])
        # A custom __init__ makes pydantic route validation through it; call it directly so the
        # error is converted exactly once.
        return cls(**obj)

    @field_validator("boundaries")
    @classmethod
    def _boundaries_increasing(cls, b: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if b is None:
            return b
        if not b or b[0] != 0:
            raise ValueError(f"must start with 0 (received {list(b)!r})")
        if any(x >= y for x, y in zip(b, b[1:], strict=False)):
            raise ValueError(f"must be strictly increasing (received {list(b)!r})")
        return b

    @model_validator(mode="after")
    def _cross_checks(self) -> Schedule:
        e, m = self.epochs, self.stages
        if m > e:
            raise ValueError(f"stages: must be <= epochs={e} (received {m})")
        if self.boundaries is not None:
            b = list(self.boundaries)
            if len(b) != m:
                raise ValueError(
                    f"boundaries: must list one start epoch per stage ({m}) (received {b!r})")
            if b[-1] >= e:
                raise ValueError(f"boundaries: every start must be < epochs={e} (received {b!r})")
            if self.delay_fraction or self.finetune_fraction:
                raise ValueError(
                    "boundaries: cannot be combined with delay_fraction/finetune_fraction "
                    f"(received delay_fraction={self.delay_fraction}, "
                    f"finetune_fraction={self.finetune_fraction})")
        if self.delay_fraction + self.finetune_fraction >= 1:
            raise ValueError(
                "delay_fraction + finetune_fraction: must be < 1 "
                f"(received {self.delay_fraction} + {self.finetune_fraction})")
        ramp = e - int(self.delay_fraction * e) - int(self.finetune_fraction * e)
        if ramp < m:
            raise ValueError(
                f"delay_fraction/finetune_fraction: leave {ramp} ramp epoch(s) for {m} stages; "
                f"each stage needs at least one (received delay_fraction={self.delay_fraction}, "
                f"finetune_fraction={self.finetune_fraction}, epochs={e})")
        return self

    # --- convenience: the pure functions of proglearn.schedule, as methods -----------------
    def stage_at(self, epoch: int) -> int:
        """Stage index for a 0-based ``epoch`` (see :func:`proglearn.schedule.stage_at_epoch`)."""
        from .schedule import stage_at_epoch

        return stage_at_epoch(self, epoch)

    def stage(self, index: int) -> Any:
        """Values of stage ``index`` (see :func:`proglearn.schedule.stage_values`)."""
        from .schedule import stage_values

        return stage_values(self, index)

    def at_epoch(self, epoch: int) -> Any:
        """Values in effect at ``epoch`` (see :func:`proglearn.schedule.values_at_epoch`)."""
        from .schedule import values_at_epoch

        return values_at_epoch(self, epoch)

    def plan(self) -> Any:
        """The whole plan (see :func:`proglearn.schedule.plan`)."""
        from .schedule import plan

        return plan(self)

    def replace(self, **changes: Any) -> Schedule:
        """A validated copy with some top-level fields changed (e.g. ``mode="fixed"``)."""
        data = self.model_dump(mode="python", exclude_none=True)
        data.update(changes)
        return Schedule.model_validate(data)
