"""The bundled EfficientNetV2: variants, parameter counts, DropPath at rate 0, local weights."""

import subprocess
import sys

import pytest
import timm
import torch
from timm.layers import DropPath

import proglearn
from proglearn.models import VARIANTS, efficientnetv2, variant_info


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def blocks(model):
    return [block for stage in model.blocks for block in stage]


def test_import_is_light():
    code = ("import sys, proglearn.models as m; m.variant_info('s'); "
            "print(sorted(x for x in ('torch', 'timm', 'torchvision') if x in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_variant_table():
    table = {v: (variant_info(v).timm_name, variant_info(v).train_size, variant_info(v).eval_size,
                 variant_info(v).dropout, variant_info(v).preset, variant_info(v).preset_automl)
             for v in VARIANTS}
    assert table == {
        "s": ("tf_efficientnetv2_s", 300, 384, 0.2, "efficientnetv2-s", "efficientnetv2-s-automl"),
        "m": ("tf_efficientnetv2_m", 384, 480, 0.3, "efficientnetv2-m", "efficientnetv2-m-automl"),
        "l": ("tf_efficientnetv2_l", 384, 480, 0.4, "efficientnetv2-l", "efficientnetv2-l-automl"),
        "xl": ("tf_efficientnetv2_xl", 384, 512, 0.4, None, "efficientnetv2-xl-automl"),
        "b0": ("tf_efficientnetv2_b0", 192, 224, 0.2, None, None),
        "b1": ("tf_efficientnetv2_b1", 192, 240, 0.2, None, None),
        "b2": ("tf_efficientnetv2_b2", 208, 260, 0.3, None, None),
        "b3": ("tf_efficientnetv2_b3", 240, 300, 0.3, None, None),
        "tiny": ("tf_efficientnetv2_b0", 56, 64, 0.1, None, None),
    }
    assert variant_info("efficientnetv2-s") == variant_info("S") == variant_info("s")


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "tiny"])
def test_sizes_agree_with_timm_and_presets_exist(variant):
    info = variant_info(variant)
    cfg = timm.models.get_pretrained_cfg(info.timm_name)
    assert (cfg.input_size[-1], cfg.test_input_size[-1]) == (info.train_size, info.eval_size)
    # Every preset evaluates at the variant's eval size; the released-code presets also end
    # training at its train size (paper Table 6 ends M and L at 380 instead of 384).
    for name in (info.preset, info.preset_automl):
        if name is not None:
            assert proglearn.load_schedule(name).image_size.eval_size == info.eval_size
    if info.preset_automl is not None:
        assert proglearn.load_schedule(info.preset_automl).image_size.end == info.train_size


@pytest.mark.parametrize("variant, millions", [("s", 21.5), ("m", 54.1), ("l", 118.5)])
def test_parameter_counts_match_the_paper(variant, millions):
    # Built on the meta device: the same construction code, no memory, no weights, no download.
    with torch.device("meta"):
        model = efficientnetv2(variant, num_classes=1000)
    assert round(n_params(model) / 1e6, 1) == millions == variant_info(variant).paper_params_m


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_block_has_drop_path_with_depth_scale(variant):
    with torch.device("meta"):
        model = efficientnetv2(variant, num_classes=10)
    bs = blocks(model)
    n = len(bs)
    assert [b.drop_path.proglearn_depth_scale for b in bs] == [i / n for i in range(n)]
    assert all(isinstance(b.drop_path, DropPath) and b.drop_path.drop_prob == 0.0 for b in bs)
    assert sum(isinstance(m, DropPath) for m in model.modules()) == n


def test_drop_path_rate_matches_timms_own_depth_scaling():
    with torch.device("meta"):
        ours = efficientnetv2("b0", num_classes=10, drop_path=0.2)
        theirs = timm.create_model("tf_efficientnetv2_b0", num_classes=10, drop_path_rate=0.2)
    got = [b.drop_path.drop_prob for b in blocks(ours)]
    want = [getattr(b.drop_path, "drop_prob", 0.0) for b in blocks(theirs)]
    assert got == want and max(got) > 0.18
    assert all(b.drop_path.drop_prob == pytest.approx(0.2 * b.drop_path.proglearn_depth_scale)
               for b in blocks(ours))


def test_drop_path_and_dropout_take_effect_after_build():
    torch.manual_seed(0)
    model = efficientnetv2("tiny", num_classes=10, in_chans=1, dropout=0.0).train()
    x = torch.randn(4, 1, 32, 32)
    assert torch.equal(model(x), model(x))  # rate 0: train mode is deterministic
    for b in blocks(model):
        b.drop_path.drop_prob = 0.5 * b.drop_path.proglearn_depth_scale
    assert not torch.equal(model(x), model(x))
    for b in blocks(model):
        b.drop_path.drop_prob = 0.0
    model.drop_rate = 0.5  # timm's head reads it at forward time
    assert not torch.equal(model(x), model(x))


def test_tiny_is_small_and_defaults():
    model = efficientnetv2("tiny", num_classes=10, in_chans=1)
    assert 0.5e6 < n_params(model) < 1.0e6
    assert model.drop_rate == variant_info("tiny").dropout
    assert efficientnetv2("tiny", 10, dropout=0.0).drop_rate == 0.0
    assert model.eval()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    # stride-1 stem: total stride 16, so 32 px ends 2x2 and 56 px 4x4 (timm's b0: 1x1 and 2x2)
    assert model.conv_stem.stride == (1, 1) and variant_info("tiny").stem_stride == 1
    assert model.forward_features(torch.zeros(1, 1, 32, 32)).shape[-2:] == (2, 2)
    assert model.forward_features(torch.zeros(1, 1, 56, 56)).shape[-2:] == (4, 4)
    assert [f["reduction"] for f in model.feature_info] == [1, 2, 4, 8, 16]
    assert efficientnetv2("b0", 10).conv_stem.stride == (2, 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(variant="q"),
     r"variant: must be one of s, m, l, xl, b0, b1, b2, b3, tiny \(received 'q'\)"),
    (dict(variant="s", num_classes=-1), r"num_classes: .* \(received -1\)"),
    (dict(variant="s", in_chans=0), r"in_chans: .* \(received 0\)"),
    (dict(variant="s", dropout=1.5), r"dropout: must be a number in \[0, 1\) \(received 1.5\)"),
    (dict(variant="s", drop_path=-0.1), r"drop_path: .* \(received -0.1\)"),
    (dict(variant="s", pretrained="yes"), r"pretrained: no weights file at 'yes'"),
    (dict(variant="s", pretrained=1), r"pretrained: must be True, False or a path"),
    (dict(variant="tiny", pretrained=True), r"'tiny' variant has no published weights"),
])
def test_bad_arguments_are_clear_errors(kwargs, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        efficientnetv2(**kwargs)


def test_weights_from_a_local_file(tmp_path):
    source = efficientnetv2("tiny", num_classes=10)
    path = tmp_path / "tiny.pth"
    torch.save(source.state_dict(), path)
    same = efficientnetv2("tiny", num_classes=10, pretrained=path)
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(),
                                                 same.state_dict().values(), strict=True))
    other = efficientnetv2("tiny", num_classes=5, in_chans=1, pretrained=str(path))
    assert other.classifier.out_features == 5 and other.conv_stem.in_channels == 1
    assert torch.equal(other.conv_stem.weight, source.conv_stem.weight.sum(1, keepdim=True))
    assert torch.equal(other.blocks[3][0].conv_pw.weight, source.blocks[3][0].conv_pw.weight)
    assert isinstance(other.blocks[1][0].drop_path, DropPath)


def test_pretrained_true_reads_only_the_local_cache(tmp_path, monkeypatch):
    import huggingface_hub

    asked = []
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, filename: asked.append((repo, filename)))
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        efficientnetv2("b0", pretrained=True)
    assert asked == [("timm/tf_efficientnetv2_b0.in1k", "model.safetensors"),
                     ("timm/tf_efficientnetv2_b0.in1k", "pytorch_model.bin")]

    source = efficientnetv2("b0", num_classes=1000)
    path = tmp_path / "pytorch_model.bin"
    torch.save(source.state_dict(), path)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache",
                        lambda repo, filename: str(path) if filename.endswith(".bin") else None)
    loaded = efficientnetv2("b0", num_classes=1000, pretrained=True)
    assert torch.equal(loaded.classifier.weight, source.classifier.weight)
