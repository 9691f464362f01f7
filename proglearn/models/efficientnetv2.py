"""EfficientNetV2 (Tan & Le, 2021) built on timm's implementation, ready for progressive learning.

``efficientnetv2(variant, num_classes)`` returns timm's ``tf_efficientnetv2_<variant>`` (the
architecture of the authors' released code: TF "same" padding, BatchNorm eps 1e-3) with two
changes that progressive learning needs:

* every block has a timm ``DropPath`` module, even when built with ``drop_path=0``, so stochastic
  depth can be *scheduled* from 0. Each one carries ``proglearn_depth_scale`` — timm's linear
  depth decay ``block_index / block_count`` — and its ``drop_prob`` is ``drop_path * scale``;
  :func:`proglearn.integrations.torch.set_drop_path` keeps that ratio when it changes the rate.
* the classifier dropout is timm's ``drop_rate`` attribute, read at every forward, so it can be
  changed at any time (``set_dropout``).

Variants: ``s``, ``m``, ``l``, ``xl`` (paper Table 4 and the released code), ``b0`` … ``b3``
(the released code's small models) and ``tiny``: ``b0`` at width 0.5 and depth 0.5 with a
stride-1 stem (0.77M parameters at 10 classes), small enough to train on a 2-core CPU at
28–64 px in minutes. The stride-1 stem gives it, at 32–56 px, the feature-map sizes b0 has at
64–112 px (2x2 to 4x4 at the end): with timm's stride-2 stem a 32 px image ends as a single
pixel, and a model trained there does not carry over to larger sizes.

Importing this module imports neither torch nor timm; :func:`efficientnetv2` does, when called.
Nothing is ever downloaded: ``pretrained=True`` only uses weights already in the local Hugging
Face cache, or pass the path of a weights file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = ["VARIANTS", "VariantInfo", "efficientnetv2", "variant_info"]


@dataclass(frozen=True)
class VariantInfo:
    """What proglearn knows about one EfficientNetV2 variant.

    ``train_size``/``eval_size`` are the released code's final training and evaluation image
    sizes (timm's ``input_size``/``test_input_size`` agree); ``dropout`` its classifier dropout;
    ``stem_stride`` the stride of the first convolution (2 in timm; 1 for ``tiny``);
    ``preset`` the proglearn preset of paper Table 6 (``None`` where the paper gives none) and
    ``preset_automl`` the released-code preset; ``paper_params_m`` the parameter count the paper
    reports (millions, 1000 classes; S/M/L Table 4 text, XL Table 7), ``None`` where it gives none.
    """

    name: str
    timm_name: str
    width: float
    depth: float
    train_size: int
    eval_size: int
    dropout: float
    stem_stride: int
    preset: str | None
    preset_automl: str | None
    paper_params_m: float | None


_INFO = {
    info.name: info
    for info in (
        VariantInfo("s", "tf_efficientnetv2_s", 1.0, 1.0, 300, 384, 0.2, 2,
                    "efficientnetv2-s", "efficientnetv2-s-automl", 21.5),
        VariantInfo("m", "tf_efficientnetv2_m", 1.0, 1.0, 384, 480, 0.3, 2,
                    "efficientnetv2-m", "efficientnetv2-m-automl", 54.1),
        VariantInfo("l", "tf_efficientnetv2_l", 1.0, 1.0, 384, 480, 0.4, 2,
                    "efficientnetv2-l", "efficientnetv2-l-automl", 118.5),
        VariantInfo("xl", "tf_efficientnetv2_xl", 1.0, 1.0, 384, 512, 0.4, 2,
                    None, "efficientnetv2-xl-automl", 208.1),
        VariantInfo("b0", "tf_efficientnetv2_b0", 1.0, 1.0, 192, 224, 0.2, 2, None, None, None),
        VariantInfo("b1", "tf_efficientnetv2_b1", 1.0, 1.1, 192, 240, 0.2, 2, None, None, None),
        VariantInfo("b2", "tf_efficientnetv2_b2", 1.1, 1.2, 208, 260, 0.3, 2, None, None, None),
        VariantInfo("b3", "tf_efficientnetv2_b3", 1.2, 1.4, 240, 300, 0.3, 2, None, None, None),
        # Not in the paper: b0 scaled down for CPU training on 28-64 px images (Fashion-MNIST).
        VariantInfo("tiny", "tf_efficientnetv2_b0", 0.5, 0.5, 56, 64, 0.1, 1, None, None, None),
    )
}

#: Variant names accepted by :func:`efficientnetv2` and :func:`variant_info`.
VARIANTS: tuple[str, ...] = tuple(_INFO)


def variant_info(variant: str) -> VariantInfo:
    """Facts about ``variant`` (see :class:`VariantInfo`). Imports no framework.

    >>> variant_info("s").preset, variant_info("s").eval_size
    ('efficientnetv2-s', 384)
    """
    key = variant.lower().removeprefix("efficientnetv2-") if isinstance(variant, str) else variant
    if key not in _INFO:
        raise ValueError(f"variant: must be one of {', '.join(VARIANTS)} (received {variant!r})")
    return _INFO[key]


def _check_rate(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name}: must be a number in [0, 1) (received {value!r})")
    return float(value)


def _check_count(name: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name}: must be an integer >= {lo} (received {value!r})")
    return value


def _cached_weights(info: VariantInfo) -> str:
    """Path of ``info``'s published weights in the local Hugging Face cache; never downloads."""
    if info.name == "tiny":
        raise ValueError("pretrained: the 'tiny' variant has no published weights; pass the path "
                         "of your own weights file (received True)")
    import timm
    from huggingface_hub import try_to_load_from_cache

    hub_id = str(timm.models.get_pretrained_cfg(info.timm_name).hf_hub_id)  # type: ignore[union-attr]
    for filename in ("model.safetensors", "pytorch_model.bin"):
        path = try_to_load_from_cache(hub_id, filename)
        if isinstance(path, str):
            return path
    raise FileNotFoundError(
        f"pretrained: weights for {info.timm_name} ({hub_id}) are not in the local Hugging Face "
        "cache, and proglearn never downloads. Fetch them once yourself (e.g. "
        f"`huggingface-cli download {hub_id}`) or pass pretrained='path/to/weights.safetensors'.")


def _add_drop_path(model: nn.Module, rate: float) -> int:
    """Give every block of a timm EfficientNet a DropPath with timm's depth scaling.

    Block ``i`` of ``n`` gets ``drop_prob = rate * i / n`` (timm's ``EfficientNetBuilder``
    ratio) and ``proglearn_depth_scale = i / n``. Returns the number of blocks.
    """
    from timm.layers import DropPath

    blocks = [block for stage in model.blocks for block in stage]  # type: ignore[union-attr]
    n = len(blocks)
    for i, block in enumerate(blocks):
        scale = i / n
        if not isinstance(block.drop_path, DropPath):
            block.drop_path = DropPath(rate * scale)
        block.drop_path.proglearn_depth_scale = scale
    return n


def efficientnetv2(
    variant: str,
    num_classes: int = 1000,
    *,
    in_chans: int = 3,
    dropout: float | None = None,
    drop_path: float | None = None,
    pretrained: bool | str | os.PathLike[str] = False,
    **timm_kwargs: Any,
) -> nn.Module:
    """EfficientNetV2 ``variant`` as a timm ``EfficientNet`` module.

    Args:
        variant: ``"s"``, ``"m"``, ``"l"``, ``"xl"``, ``"b0"`` … ``"b3"`` or ``"tiny"``
            (``"efficientnetv2-s"`` etc. also accepted).
        num_classes: classifier outputs (0: no classifier, the model returns pooled features).
        in_chans: input channels (1 for grayscale; pretrained stems are adapted by timm).
        dropout: classifier dropout; ``None`` = the variant's default (``variant_info().dropout``).
        drop_path: stochastic-depth rate of the last block; ``None`` = 0. DropPath modules are
            created either way (see the module docstring).
        pretrained: ``False``; ``True`` to load the published weights *from the local Hugging
            Face cache* (raises if absent — nothing is downloaded); or a path to a weights file
            (``.safetensors`` or a torch checkpoint). A different ``num_classes`` drops the
            pretrained classifier.
        **timm_kwargs: passed to ``timm.create_model`` (e.g. ``pad_type=""`` for PyTorch-style
            symmetric padding, ``bn_eps``).

    >>> model = efficientnetv2("tiny", num_classes=10)   # doctest: +SKIP
    """
    info = variant_info(variant)
    num_classes = _check_count("num_classes", num_classes, 0)
    in_chans = _check_count("in_chans", in_chans, 1)
    dropout = _check_rate("dropout", dropout)
    drop_path = _check_rate("drop_path", drop_path)

    import timm

    kwargs: dict[str, Any] = dict(
        num_classes=num_classes, in_chans=in_chans,
        drop_rate=info.dropout if dropout is None else dropout,
        drop_path_rate=drop_path or 0.0,
    )
    if info.name == "tiny":
        kwargs.update(channel_multiplier=info.width, depth_multiplier=info.depth)
    kwargs.update(timm_kwargs)

    weights: str | None = None
    if pretrained is True:
        weights = _cached_weights(info)
    elif isinstance(pretrained, (str, os.PathLike)):
        weights = os.fspath(pretrained)
        if not Path(weights).is_file():
            raise FileNotFoundError(f"pretrained: no weights file at {weights!r}")
    elif pretrained is not False:
        raise ValueError("pretrained: must be True, False or a path to a weights file "
                         f"(received {pretrained!r})")
    if weights is not None:
        # source/hf_hub_id/url cleared so timm reads exactly this local file; num_classes set to
        # the file's so timm keeps its classifier when it fits and drops it when it does not.
        overlay: dict[str, Any] = dict(file=weights, source="", hf_hub_id=None, url=None)
        if pretrained is not True:
            head = timm.models.load_state_dict(weights).get("classifier.weight")
            overlay["num_classes"] = 0 if head is None else int(head.shape[0])
        kwargs["pretrained_cfg_overlay"] = overlay

    model = timm.create_model(info.timm_name, pretrained=weights is not None, **kwargs)
    if info.stem_stride != 2:
        stem: Any = model.conv_stem
        stem.stride = (info.stem_stride, info.stem_stride)
        features: Any = model.feature_info
        for feature in features:  # keep timm's feature metadata true
            feature["reduction"] = feature["reduction"] * info.stem_stride // 2
    _add_drop_path(model, drop_path or 0.0)
    return model
