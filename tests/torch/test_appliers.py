"""Appliers: each knob on each kind of target, and a clear error when there is none."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.data import FastCollateMixup, Mixup
from timm.data.auto_augment import rand_augment_transform
from timm.layers import DropPath
from timm.loss import LabelSmoothingCrossEntropy
from torch import nn
from torch_support import SCHEDULE, TinyNet
from torchvision import transforms as T
from torchvision.ops import StochasticDepth
from torchvision.transforms import v2

from proglearn.integrations.torch import (
    KnobTargetError,
    apply_values,
    check_targets,
    set_drop_path,
    set_dropout,
    set_label_smoothing,
    set_mixup,
    set_randaug_magnitude,
)


@pytest.fixture(scope="module")
def effnet():
    """A real timm EfficientNetV2 (B0), built with drop_path_rate 0.2: its head reads
    ``self.drop_rate`` at forward time, its blocks hold DropPath at 0.2 · i / n."""
    return timm.create_model("tf_efficientnetv2_b0", num_classes=3, drop_rate=0.0,
                             drop_path_rate=0.2)


def test_dropout_sets_every_dropout_module_and_drop_rate_attribute():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.0), nn.Sequential(nn.Dropout2d(0.5)))
    assert set_dropout(model, 0.25) == 2
    assert model[1].p == model[2][0].p == 0.25
    assert set_dropout(model, 0.4, pattern=r"^2\.") == 1
    assert (model[1].p, model[2][0].p) == (0.25, 0.4)


def test_dropout_on_a_timm_head_is_in_effect(effnet):
    assert set_dropout(effnet, 0.5) == 1 and effnet.drop_rate == 0.5
    effnet.train()
    head_in = torch.ones(1, effnet.num_features)
    torch.manual_seed(0)
    out = effnet.forward_head(head_in[:, :, None, None].expand(1, -1, 2, 2), pre_logits=True)
    assert 0.3 < (out == 0).float().mean() < 0.7  # F.dropout(p=drop_rate) ran at 0.5
    set_dropout(effnet, 0.0)


def test_dropout_without_a_target_is_an_error_naming_what_was_searched():
    with pytest.raises(KnobTargetError, match=r"'dropout'.*Linear.*nn\.Dropout.*drop_rate"):
        set_dropout(nn.Linear(2, 2), 0.1)
    assert set_dropout(nn.Linear(2, 2), 0.0) == 0  # nothing asked, nothing to set
    with pytest.raises(KnobTargetError, match=r"matching 'nope'"):
        set_dropout(nn.Sequential(nn.Dropout()), 0.1, pattern="nope")
    with pytest.raises(ValueError, match=r"dropout: must be in \[0, 1\) \(received 1.5\)"):
        set_dropout(nn.Dropout(), 1.5)


def test_drop_path_keeps_the_depth_scaling_the_model_was_built_with(effnet):
    built = [m.drop_prob for m in effnet.modules() if isinstance(m, DropPath)]
    assert len(built) > 5 and max(built) < 0.2 + 1e-9
    assert set_drop_path(effnet, 0.1) == len(built)
    now = [m.drop_prob for m in effnet.modules() if isinstance(m, DropPath)]
    assert now == pytest.approx([b / max(built) * 0.1 for b in built])
    set_drop_path(effnet, 0.0)  # the ratios are remembered through a zero
    set_drop_path(effnet, 0.3)
    now = [m.drop_prob for m in effnet.modules() if isinstance(m, DropPath)]
    assert now == pytest.approx([b / max(built) * 0.3 for b in built])


def test_drop_path_built_at_zero_is_linear_in_depth_or_follows_the_recorded_scale():
    model = nn.Sequential(*(DropPath(0.0) for _ in range(5)))
    assert set_drop_path(model, 0.2) == 5
    assert [m.drop_prob for m in model] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    model = nn.Sequential(DropPath(0.0), StochasticDepth(0.0, "row"))
    model[0].proglearn_depth_scale = 0.5
    model[1].proglearn_depth_scale = 1.0
    set_drop_path(model, 0.2)
    assert (model[0].drop_prob, model[1].p) == pytest.approx((0.1, 0.2))


def test_drop_path_without_modules_explains_timms_identity():
    model = timm.create_model("tf_efficientnetv2_b0", num_classes=3, drop_path_rate=0.0)
    with pytest.raises(KnobTargetError, match=r"'drop_path'.*nn\.Identity instead"):
        set_drop_path(model, 0.1)


def test_randaug_timm_in_a_compose_tree_and_past_the_clip():
    ra = rand_augment_transform("rand-m9-n2", {})
    tf = T.Compose([T.RandomApply([T.Compose([ra])]), T.ToTensor()])
    assert set_randaug_magnitude(tf, 7) == 1
    assert {op.magnitude for op in ra.ops} == {7} and {op.magnitude_max for op in ra.ops} == {None}
    set_randaug_magnitude(tf, 15)
    assert {op.magnitude for op in ra.ops} == {15} and {op.magnitude_max for op in ra.ops} == {15}
    # timm clips to magnitude_max: 15 is now in effect, e.g. Rotate by 15/10 * 30 = 45 degrees
    rotate = next(op for op in ra.ops if op.name == "Rotate")
    assert rotate.level_fn(min(rotate.magnitude, rotate.magnitude_max), rotate.hparams)[0] in (
        45.0, -45.0)


def test_randaug_torchvision_v2_uses_bins_over_the_same_range():
    ra = v2.RandAugment()  # 31 bins
    assert set_randaug_magnitude(v2.Compose([ra, v2.ToDtype(torch.float32)]), 5) == 1
    assert ra.magnitude == 15  # rotate 15 degrees, as timm at magnitude 5
    with pytest.raises(KnobTargetError, match=r"torchvision's RandAugment covers .*received 15"):
        set_randaug_magnitude(ra, 15)
    with pytest.raises(KnobTargetError, match=r"reaches 15 but torchvision"):
        check_targets(SCHEDULE, transform=ra, model=TinyNet(), mixup=Mixup())


def test_randaug_without_a_target():
    with pytest.raises(KnobTargetError, match=r"'randaug_magnitude'.*Compose.*RandAugment"):
        set_randaug_magnitude(T.Compose([T.ToTensor()]), 5)


@pytest.mark.parametrize("cls", [Mixup, FastCollateMixup])
def test_mixup_alphas_and_smoothing(cls):
    mixup = cls(mixup_alpha=1.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=4)
    assert set_mixup(mixup, mixup_alpha=0.4, cutmix_alpha=0.0, label_smoothing=0.1) == 3
    assert (mixup.mixup_alpha, mixup.cutmix_alpha, mixup.label_smoothing) == (0.4, 0.0, 0.1)
    assert mixup.mixup_enabled
    set_mixup(mixup, mixup_alpha=0.0)  # both alphas 0: timm would assert, so mixing is off
    assert not mixup.mixup_enabled
    if cls is Mixup:
        x, y = mixup(torch.rand(4, 3, 8, 8), torch.arange(4))
        assert torch.allclose(y.max(dim=1).values, torch.full((4,), 0.925))  # smoothing only
    with pytest.raises(KnobTargetError, match=r"'mixup_alpha'.*None was passed.*timm Mixup"):
        set_mixup(None, mixup_alpha=0.2)
    assert set_mixup(None, mixup_alpha=0.0) == 0


def test_label_smoothing_on_losses():
    ce = nn.CrossEntropyLoss()
    assert set_label_smoothing(ce, 0.1) == 1 and ce.label_smoothing == 0.1
    ls = LabelSmoothingCrossEntropy(0.0)
    set_label_smoothing(ls, 0.2)
    assert (ls.smoothing, ls.confidence) == (0.2, 0.8)
    with pytest.raises(KnobTargetError, match="'label_smoothing'"):
        set_label_smoothing(nn.MSELoss(), 0.1)


def test_apply_values_routes_every_knob():
    model, mixup, ce = TinyNet(), Mixup(num_classes=4), nn.CrossEntropyLoss()
    ra = rand_augment_transform("rand-m9", {})
    seen = []
    counts = apply_values(
        {"dropout": 0.2, "drop_path": 0.1, "randaug_magnitude": 8.0, "mixup_alpha": 0.3,
         "cutmix_alpha": 0.0, "label_smoothing": 0.1, "mine": 2.0},
        model=model, mixup=mixup, transform=ra, loss=ce, appliers={"mine": seen.append})
    assert counts == {"dropout": 1, "drop_path": 3, "randaug_magnitude": 1, "mixup_alpha": 1,
                      "cutmix_alpha": 1, "label_smoothing": 1, "mine": 1}
    assert seen == [2.0] and mixup.label_smoothing == 0.1 and ce.label_smoothing == 0.0
    apply_values({"label_smoothing": 0.2}, loss=ce)  # no mixup: smoothing goes to the loss
    assert ce.label_smoothing == 0.2
    assert apply_values({"randaug_magnitude": 9.0}, skip={"randaug_magnitude"}) == {}
    assert apply_values({"mine": 0.0}) == {}  # a zero custom knob has nothing to do
    with pytest.raises(KnobTargetError, match=r"'mine'.*appliers"):
        apply_values({"mine": 1.0})
    with pytest.raises(KnobTargetError, match=r"'dropout'.*a model"):
        apply_values({"dropout": 0.1})


def test_check_targets_names_each_missing_knob_and_skips_zero_ones():
    spec = {**SCHEDULE, "knobs": {**SCHEDULE["knobs"], "cutmix_alpha": 0.0, "mine": [0, 1]}}
    with pytest.raises(KnobTargetError) as err:
        check_targets(spec, model=nn.Linear(2, 2))
    msg = str(err.value)
    for knob in ("dropout", "drop_path", "randaug_magnitude", "mixup_alpha", "label_smoothing",
                 "mine"):
        assert f"'{knob}'" in msg
    assert "cutmix_alpha" not in msg  # 0 in every stage
    check_targets(spec, model=TinyNet(), mixup=Mixup(), data_handles_randaug=True,
                  appliers={"mine": print})


def test_dropout_change_reaches_a_compiled_model():
    from torch._dynamo.testing import CompileCounter

    model = nn.Sequential(nn.Linear(4, 64), nn.Dropout(0.0))
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter)
    x = torch.ones(256, 4)
    assert (compiled(x) == 0).float().mean() < 0.2  # no dropout yet
    assert set_dropout(compiled, 0.9) == 1
    assert (compiled(x) == 0).float().mean() > 0.8  # recompiled once, the new rate in effect
    assert counter.frame_count == 2
