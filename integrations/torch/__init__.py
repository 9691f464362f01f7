"""Progressive learning for plain PyTorch: appliers, stage-aware data loading, a loop helper.

``import proglearn.integrations.torch as plt`` needs ``torch``, ``torchvision`` and ``timm``
(``pip install proglearn[torch]``).
"""

from .appliers import (
    KnobTargetError,
    apply_values,
    check_targets,
    set_drop_path,
    set_dropout,
    set_label_smoothing,
    set_mixup,
    set_randaug_magnitude,
)
from .data import (
    BatchResize,
    RebuildLoader,
    SeededRandomSampler,
    StageBatchSampler,
    StageDataset,
    progressive_loader,
    resize_batch,
    set_loader_epoch,
)
from .loop import ProgressiveLearning, apply_stage, stage_log

__all__ = [
    "BatchResize",
    "KnobTargetError",
    "ProgressiveLearning",
    "RebuildLoader",
    "SeededRandomSampler",
    "StageBatchSampler",
    "StageDataset",
    "apply_stage",
    "apply_values",
    "check_targets",
    "progressive_loader",
    "resize_batch",
    "set_drop_path",
    "set_dropout",
    "set_label_smoothing",
    "set_loader_epoch",
    "set_mixup",
    "set_randaug_magnitude",
    "stage_log",
]

# The models helper's modules, re-exported once they exist.
try:
    from . import datasets as _datasets
    from . import transforms as _transforms
except ImportError:  # pragma: no cover - only while those files are being written
    pass
else:
    from .datasets import *  # noqa: F403
    from .transforms import *  # noqa: F403

    __all__ += [*_datasets.__all__, *_transforms.__all__]
