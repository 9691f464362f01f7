"""Progressive learning for plain PyTorch: appliers, stage-aware data loading, a loop helper.

``proglearn.integrations.torch`` needs ``torch``, ``torchvision`` and ``timm``
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
from .datasets import *  # noqa: F403  (FashionMNIST, SyntheticImages, image_folder)
from .datasets import __all__ as _datasets_all
from .loop import ProgressiveLearning, apply_stage, stage_log
from .train import evaluate, train_one_epoch
from .transforms import *  # noqa: F403  (default_transform_factory, eval_transform, ...)
from .transforms import __all__ as _transforms_all

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
    "evaluate",
    "progressive_loader",
    "resize_batch",
    "set_drop_path",
    "set_dropout",
    "set_label_smoothing",
    "set_loader_epoch",
    "set_mixup",
    "set_randaug_magnitude",
    "stage_log",
    "train_one_epoch",
]
__all__ += [*_datasets_all, *_transforms_all]
