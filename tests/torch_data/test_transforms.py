"""The default stage transform factory: size, RandAugment magnitude (fractional, >10), grayscale."""

import pickle
import random

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data.auto_augment import AugmentOp, RandAugment

import proglearn
from proglearn.integrations.torch.transforms import (
    ToMode,
    default_transform_factory,
    eval_transform,
    find_randaugment,
    train_transform,
)

GRAY = Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8))
RGB = GRAY.convert("RGB")


def schedule(**knobs):
    return proglearn.Schedule(epochs=4, stages=4, image_size={"start": 32, "end": 56},
                              knobs=knobs)


def test_one_transform_per_stage_at_the_stage_size_and_magnitude():
    spec = schedule(randaug_magnitude=[5, 15], dropout=[0.1, 0.3])
    make = default_transform_factory(in_chans=1)
    rows = []
    for i in range(4):
        stage = proglearn.stage_values(spec, i)
        tf = make(stage)
        (ra,) = find_randaugment(tf)
        rows.append((tf(GRAY).shape, {op.magnitude for op in ra.ops},
                     {op.magnitude_max for op in ra.ops}))
    assert rows == [
        ((1, 32, 32), {5.0}, {10.0}),
        ((1, 40, 40), {8.3333333333}, {10.0}),  # the core rounds to 10 decimals
        ((1, 48, 48), {11.6666666667}, {11.6666666667}),
        ((1, 56, 56), {15.0}, {15.0}),
    ]


def test_fractional_magnitude_is_kept_exactly():
    # timm's config string parses m with int(): "rand-m8.33" is an error there.
    from timm.data.auto_augment import rand_augment_transform

    with pytest.raises(ValueError):
        rand_augment_transform("rand-m8.33", {})
    (ra,) = find_randaugment(train_transform(32, 8.33))
    assert {op.magnitude for op in ra.ops} == {8.33}
    assert len(ra.ops) == 15 and ra.num_layers == 2


def test_magnitude_above_ten_is_not_clipped_unless_asked():
    (ra,) = find_randaugment(train_transform(32, 20))
    assert {(op.magnitude, op.magnitude_max) for op in ra.ops} == {(20.0, 20.0)}
    (ra,) = find_randaugment(train_transform(32, 5, randaug_max=25))
    assert {op.magnitude_max for op in ra.ops} == {25.0}
    with pytest.raises(ValueError, match=r"randaug_max: must be >= randaug_magnitude=20.0"):
        train_transform(32, 20, randaug_max=10)


@pytest.mark.parametrize("increasing", [False, True])
@pytest.mark.parametrize("magnitude", [0, 1, 2.4, 5, 8.33, 10, 15, 25])
def test_every_op_runs_at_every_magnitude_on_gray_and_rgb(magnitude, increasing):
    for img, in_chans in ((GRAY, 1), (RGB, 3)):
        (ra,) = find_randaugment(train_transform(28, magnitude, in_chans=in_chans,
                                                 randaug_increasing=increasing))
        for op in ra.ops:
            op.prob = 1.0
            out = op(img)
            assert out.mode == img.mode and out.size == img.size, op.name


def test_posterize_to_zero_bits_gives_black():
    # Pillow >= 10 rejects posterize(img, 0), which timm's Posterize asks for below magnitude 2.5.
    plain = AugmentOp("Posterize", prob=1.0, magnitude=1)
    with pytest.raises(ValueError):
        plain(RGB)
    (ra,) = find_randaugment(train_transform(28, 1, randaug_increasing=False))
    (op,) = [op for op in ra.ops if op.name == "Posterize"]
    op.prob = 1.0
    assert np.asarray(op(RGB)).max() == 0
    # The default (increasing) op set gets stronger with the magnitude: black from 10 up.
    (ra,) = find_randaugment(train_transform(28, 1))
    (op,) = [op for op in ra.ops if op.name.startswith("Posterize")]
    assert op.name == "PosterizeIncreasing"
    op.prob = 1.0
    assert np.asarray(op(RGB)).max() > 0
    op.magnitude = 10
    assert np.asarray(op(RGB)).max() == 0


def test_no_knob_means_no_randaugment_and_randaug_false_with_knob_is_an_error():
    spec = schedule(dropout=[0.1, 0.3])
    tf = default_transform_factory()(proglearn.stage_values(spec, 1))
    assert find_randaugment(tf) == []
    assert not any("ColorJitter" in type(t).__name__ for t in tf.transforms)
    assert tf(GRAY).shape == (3, 40, 40)
    make = default_transform_factory(randaug=False)
    with pytest.raises(ValueError, match=r"randaug=False but the schedule sets "
                                         r"randaug_magnitude=5.0 in stage 0"):
        make(proglearn.stage_values(schedule(randaug_magnitude=[5, 15]), 0))


@pytest.mark.parametrize("img", [GRAY, RGB, np.asarray(GRAY), np.asarray(RGB),
                                 torch.from_numpy(np.array(GRAY))[None],
                                 torch.rand(3, 28, 28)])
@pytest.mark.parametrize("in_chans", [1, 3])
def test_inputs_pil_array_tensor_gray_or_rgb(img, in_chans):
    assert train_transform(36, 7, in_chans=in_chans)(img).shape == (in_chans, 36, 36)
    out = eval_transform(64, in_chans=in_chans)(img)
    assert out.shape == (in_chans, 64, 64) and out.dtype == torch.float32


def test_normalization_defaults_and_checks():
    tf = eval_transform(28, in_chans=1, mean=(0.5,), std=(0.25,))
    white = Image.new("L", (28, 28), 255)
    assert torch.allclose(tf(white), torch.full((1, 28, 28), 2.0))
    norm = train_transform(28, in_chans=1).transforms[-1]
    assert norm.mean.tolist() == pytest.approx([(0.485 + 0.456 + 0.406) / 3])
    with pytest.raises(ValueError, match=r"mean: must have one value per channel \(in_chans=1\)"):
        train_transform(28, in_chans=1, mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"in_chans: must be 1 or 3 \(received 2\)"):
        default_transform_factory(in_chans=2)
    with pytest.raises(ValueError, match=r"randaug_magnitude: must be a number >= 0"):
        train_transform(28, -1)
    with pytest.raises(ValueError, match=r"size: must be an integer >= 1 \(received 0\)"):
        eval_transform(0)
    with pytest.raises(ValueError, match=r"mode: must be 'RGB' or 'L'"):
        ToMode("CMYK")


def test_factory_and_transforms_pickle_for_worker_processes():
    make = pickle.loads(pickle.dumps(default_transform_factory(in_chans=1, scale=(0.5, 1.0))))
    tf = pickle.loads(pickle.dumps(make(proglearn.stage_values(schedule(randaug_magnitude=9), 0))))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    first = tf(GRAY)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    assert torch.equal(first, tf(GRAY)) and first.shape == (1, 32, 32)
    assert isinstance(find_randaugment(tf)[0], RandAugment)
