"""proglearn: progressive learning with adaptive regularization (EfficientNetV2, Algorithm 1).

The core is pure and framework-free: ``import proglearn`` never imports torch, keras,
lightning, timm or jax. Adapters live in ``proglearn.integrations.<torch|lightning|keras>``.
"""

from .io import dump_schedule, list_presets, load_schedule, preset_path, schedule_from_yaml
from .schedule import (
    PlanRow,
    Stage,
    flop_cost_ratio,
    image_size,
    is_zero,
    knob_values,
    plan,
    stage_at_epoch,
    stage_at_fraction,
    stage_at_step,
    stage_epochs,
    stage_starts,
    stage_values,
    values_at_epoch,
)
from .spec import (
    KNOWN_KNOBS,
    BatchSize,
    ConfigError,
    ImageSize,
    Knobs,
    Ramp,
    Schedule,
    ScheduleError,
)

__version__ = "0.1.0"

__all__ = [
    "KNOWN_KNOBS",
    "BatchSize",
    "ConfigError",
    "ImageSize",
    "Knobs",
    "PlanRow",
    "Ramp",
    "Schedule",
    "ScheduleError",
    "Stage",
    "dump_schedule",
    "flop_cost_ratio",
    "image_size",
    "is_zero",
    "knob_values",
    "list_presets",
    "load_schedule",
    "plan",
    "preset_path",
    "schedule_from_yaml",
    "stage_at_epoch",
    "stage_at_fraction",
    "stage_at_step",
    "stage_epochs",
    "stage_starts",
    "stage_values",
    "values_at_epoch",
]
