"""ProgressiveLearning / ProgressiveDataset with real keras fit() (in-process backend: torch
unless KERAS_BACKEND says otherwise)."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest

from proglearn import load_schedule
from proglearn.integrations.keras import (
    ProgressiveDataset,
    ProgressiveLearning,
    magnitude_to_factor,
    max_value,
    set_cutmix_alpha,
    set_dropout_rate,
    set_mixup_alpha,
    set_randaugment_factor,
)

# Whole expected tables of scenarios.RAMP (4 stages) for 48 and 120 images.
SIZES = [8, 10, 12, 14]
BATCHES = [24, 15, 10, 8]
DROPOUT = [0.0, 0.1, 0.2, 0.3]
SHAPES_48 = {  # every batch of every epoch: ceil(48 / batch) batches, the last one partial
    0: [[24, 8, 8, 4]] * 2,
    1: [[15, 10, 10, 4]] * 3 + [[3, 10, 10, 4]],
    2: [[10, 12, 12, 4]] * 4 + [[8, 12, 12, 4]],
    3: [[8, 14, 14, 4]] * 6,
}


def _sorted(shapes):
    return {str(k): sorted(v) for k, v in shapes.items()}


def _fit(model, ds, epochs, callbacks, **kw):
    return model.fit(ds, epochs=epochs, callbacks=callbacks, verbose=0, **kw)


def test_dropout_probe_sizes_batches_and_history(scenarios):
    out = scenarios.run_probe(scenarios.RAMP, n=48)
    assert out["rates"] == DROPOUT  # the rate in effect each epoch, read back from the loss
    assert out["history"]["loss"][0] == 0.0  # exactly 0 only while dropout is off
    assert all(v > 0 for v in out["history"]["loss"][1:])
    h = out["history"]
    assert h["stage"] == [0, 1, 2, 3]
    assert h["image_size"] == SIZES
    assert h["batch_size"] == BATCHES
    assert h["dropout"] == DROPOUT
    if keras.backend.backend() == "torch":  # eager: the Lambda sees every batch
        # (fit(shuffle=True) also shuffles the order of batches, so compare sorted)
        assert _sorted(out["shapes"]) == _sorted(SHAPES_48)
    assert out["steps"] == {"0": 2, "1": 4, "2": 5, "3": 6}  # the length changed within fit
    assert out["ran_out_warnings"] == 0


def test_initial_epoch_resumes_in_its_stage(scenarios):
    out = scenarios.run_probe(scenarios.RAMP, n=48, initial_epoch=2)
    assert out["epochs"] == [2, 3]
    assert out["rates"] == [0.2, 0.3]
    assert out["history"]["stage"] == [2, 3]
    assert out["history"]["image_size"] == [12, 14]
    assert out["steps"] == {"2": 5, "3": 6}
    if keras.backend.backend() == "torch":
        assert _sorted(out["shapes"]) == _sorted({2: SHAPES_48[2], 3: SHAPES_48[3]})


def test_rate_only_changes_need_no_shape_change(scenarios):
    out = scenarios.run_probe(scenarios.RATE_ONLY, n=32)
    assert out["rates"] == [0.1, 0.2, 0.3]
    assert out["history"]["dropout"] == [0.1, 0.2, 0.3]


def test_csvlogger_records_stage_values(scenarios, tmp_path):
    spec = load_schedule(scenarios.RAMP)
    model = scenarios.probe_model(max_value(spec, "dropout"))
    ds = ProgressiveDataset(spec, np.ones((16, 10, 10, 4), "uint8"), np.ones(16, "float32"))
    path = tmp_path / "log.csv"
    _fit(model, ds, 4, [ProgressiveLearning(spec, datasets=[ds]),
                        keras.callbacks.CSVLogger(str(path))])
    rows = list(csv.DictReader(path.open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert [int(r["stage"]) for r in rows] == [0, 1, 2, 3]
    assert [int(r["image_size"]) for r in rows] == SIZES
    assert [int(r["batch_size"]) for r in rows] == BATCHES
    assert [float(r["dropout"]) for r in rows] == DROPOUT


def _plain_model(rate=0.3, name="head_dropout", extra=None):
    inp = keras.Input((None, None, 1))
    h = keras.layers.GlobalAveragePooling2D()(inp)
    if extra is not None:
        h = keras.layers.Dropout(extra, name="other_dropout")(h)
    h = keras.layers.Dropout(rate, name=name)(h)
    out = keras.layers.Dense(2)(h)
    model = keras.Model(inp, out)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class _Count(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0
        self.batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs += 1

    def on_train_batch_begin(self, batch, logs=None):
        self.batches += 1


def _small(knobs, **extra):
    return load_schedule({"epochs": 2, "stages": 2, "image_size": 8, "batch_size": 4,
                          "knobs": knobs, **extra})


def _data(spec, n=8, **kw):
    x = np.random.default_rng(0).integers(0, 255, (n, 8, 8, 1)).astype("uint8")
    return ProgressiveDataset(spec, x, np.arange(n) % 2, **kw)


@pytest.mark.parametrize("knob", ["randaug_magnitude", "mixup_alpha", "drop_path", "my_knob"])
def test_knob_without_target_fails_at_train_begin(knob):
    spec = _small({"dropout": [0.1, 0.3], knob: [0.1, 0.2]})
    count = _Count()
    with pytest.raises(ValueError, match=f"knob '{knob}' is scheduled .*found no target") as e:
        _fit(_plain_model(), _data(spec), 2, [ProgressiveLearning(spec, datasets=[_data(spec)]),
                                               count])
    assert "searched:" in str(e.value)
    assert count.epochs == 0 and count.batches == 0  # raised in on_train_begin


def test_zero_knob_needs_no_target_and_custom_applier_runs():
    spec = _small({"dropout": [0.1, 0.3], "mixup_alpha": 0, "my_knob": [1, 5]})
    seen = []
    ds = _data(spec)
    cb = ProgressiveLearning(spec, datasets=[ds], appliers={"my_knob": seen.append})
    history = _fit(_plain_model(), ds, 2, [cb])
    assert seen == [1, 5]
    assert history.history["my_knob"] == [1, 5]
    assert history.history["mixup_alpha"] == [0, 0]


def test_dropout_built_at_zero_fails_with_instructions():
    spec = _small({"dropout": [0.0, 0.3]})
    ds = _data(spec)
    with pytest.raises(ValueError, match=r"'head_dropout' was built with rate=0.*max_value"):
        _fit(_plain_model(rate=0.0), ds, 2, [ProgressiveLearning(spec, datasets=[ds])])
    with pytest.raises(ValueError, match="rate=0"):
        set_dropout_rate(keras.layers.Dropout(0.0), 0.2)
    # a schedule that keeps dropout at 0 everywhere needs no seed generator
    zero = _small({"dropout": 0})
    ds = _data(zero)
    _fit(_plain_model(rate=0.0), ds, 1, [ProgressiveLearning(zero, datasets=[ds])])


def test_default_pattern_refuses_layers_with_different_rates():
    spec = _small({"dropout": [0.1, 0.3]})
    ds = _data(spec)
    with pytest.raises(ValueError, match="dropout_layers: the default .*other_dropout=0.05"):
        _fit(_plain_model(extra=0.05), ds, 1, [ProgressiveLearning(spec, datasets=[ds])])
    model = _plain_model(extra=0.05)
    _fit(model, ds, 2, [ProgressiveLearning(spec, datasets=[ds], dropout_layers="head_*")])
    assert model.get_layer("head_dropout").rate == 0.3
    assert model.get_layer("other_dropout").rate == 0.05  # not selected, untouched


def test_image_size_change_without_dataset_fails():
    spec = load_schedule({"epochs": 2, "stages": 2, "image_size": [8, 16], "batch_size": 4})
    with pytest.raises(ValueError, match=r"image_size: changes across stages \(8 -> 16\)"):
        _fit(_plain_model(), _data(spec), 1, [ProgressiveLearning(spec)])
    stages = []
    _fit(_plain_model(), _data(spec), 2, [ProgressiveLearning(spec, on_stage=stages.append)])
    assert [(s.index, s.image_size) for s in stages] == [(0, 8), (1, 16)]


def test_get_config_from_config_round_trip():
    cb = ProgressiveLearning("efficientnetv2-s", dropout_layers=["head*", "top_*"],
                             magnitude_scale=20, retrace=False, log=False, verbose=True)
    config = cb.get_config()
    assert json.loads(json.dumps(config)) == config  # plain JSON
    again = ProgressiveLearning.from_config(config)
    assert again.get_config() == config
    assert again.schedule == load_schedule("efficientnetv2-s")
    assert again.dropout_layers == ("head*", "top_*") and again.magnitude_scale == 20.0
    seen = []
    with_objects = ProgressiveLearning.from_config(config, appliers={"x": seen.append})
    assert with_objects.appliers == {"x": seen.append}


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match=r"magnitude_scale: .*received 0"):
        ProgressiveLearning("efficientnetv2-s", magnitude_scale=0)
    with pytest.raises(ValueError, match=r"retrace: .*received 'yes'"):
        ProgressiveLearning("efficientnetv2-s", retrace="yes")
    with pytest.raises(ValueError, match=r"datasets: .*received list"):
        ProgressiveLearning("efficientnetv2-s", datasets=[[1, 2]])
    with pytest.raises(ValueError, match=r"batch_size: required .*received None"):
        ProgressiveDataset({"epochs": 1, "stages": 1, "image_size": 8}, np.ones((2, 8, 8)))
    with pytest.raises(ValueError, match=r"batch_size: the schedule already sets .*received 3"):
        ProgressiveDataset(_small({}), np.ones((2, 8, 8)), batch_size=3)
    with pytest.raises(ValueError, match=r"randaug_magnitude: 31 / magnitude_scale 30"):
        magnitude_to_factor(31)


def test_magnitude_to_factor_table():
    # paper Table 6 magnitudes -> Keras factor (scale 30)
    assert [round(magnitude_to_factor(m), 6) for m in (0, 5, 10, 15, 20, 25, 30)] == [
        0.0, 0.166667, 0.333333, 0.5, 0.666667, 0.833333, 1.0]
    assert magnitude_to_factor(5, scale=10) == 0.5


def _sub_configs(layer):
    out = {}
    for name in layer._AUGMENT_LAYERS:
        config = getattr(layer, name).get_config()
        config.pop("name")
        out[name] = config
    return out


def test_randaugment_factor_reaches_every_sublayer():
    layer = keras.layers.RandAugment(value_range=(0, 255), factor=0.5, seed=1)
    before = _sub_configs(layer)
    set_randaugment_factor(layer, 0.2)
    fresh = keras.layers.RandAugment(value_range=(0, 255), factor=0.2, seed=1)
    assert layer.factor == (0, 0.2)
    assert _sub_configs(layer) == _sub_configs(fresh)
    assert _sub_configs(layer) != before


def test_randaugment_in_dataset_follows_magnitude():
    spec = _small({"randaug_magnitude": [6, 15]})
    ra = keras.layers.RandAugment(value_range=(0, 255), seed=0)
    ds = _data(spec, augment=[ra])
    factors = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            factors.append((ra.factor, ra.random_contrast.factor))

    history = _fit(_plain_model(), ds, 2, [ProgressiveLearning(spec, datasets=[ds]), Watch()])
    assert factors == [((0, 0.2), (0, 0.2)), ((0, 0.5), (0, 0.5))]
    assert history.history["randaug_magnitude"] == [6, 15]


def test_mixup_and_cutmix_alpha_and_off_at_zero():
    spec = _small({"mixup_alpha": [0, 0.4], "cutmix_alpha": [0, 1.0]})
    mixup, cutmix = keras.layers.MixUp(seed=0), keras.layers.CutMix(seed=0)
    ds = _data(spec, n=16, num_classes=2, augment=[mixup, cutmix])
    cb = ProgressiveLearning(spec, datasets=[ds])
    cb.set_model(_plain_model())
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    _, labels = ds[0]
    assert mixup.alpha == 0 and cutmix.factor == (0, 0)
    assert set(np.unique(labels)) == {0.0, 1.0}  # alpha 0: both skipped, labels one-hot
    ds.on_epoch_end()
    cb.on_epoch_begin(1)
    _, labels = ds[0]
    assert mixup.alpha == 0.4 and cutmix.factor == (1.0, 1.0)
    assert np.allclose(labels.sum(axis=1), 1) and ((labels > 0) & (labels < 1)).any()
    with pytest.raises(ValueError, match=r"mixup_alpha: must be >= 0 \(received -1\)"):
        set_mixup_alpha(mixup, -1)
    with pytest.raises(ValueError, match=r"cutmix_alpha: must be >= 0"):
        set_cutmix_alpha(cutmix, -0.5)


def test_mixup_needs_one_hot_labels():
    with pytest.raises(ValueError, match="num_classes: MixUp/CutMix"):
        _data(_small({}), augment=[keras.layers.MixUp()])


def test_augment_factory_gets_each_stage_once():
    spec = _small({"randaug_magnitude": [5, 10]})
    calls = []

    def factory(values):
        calls.append(values)
        return lambda data: {**data, "images": data["images"] * 0}

    ds = _data(spec, augment_factory=factory)
    _fit(_plain_model(), ds, 2, [ProgressiveLearning(spec, datasets=[ds])])
    assert calls == [{"randaug_magnitude": 5}, {"randaug_magnitude": 10}]
    ds.set_epoch(1)
    assert float(ds[0][0].max()) == 0.0


def test_label_smoothing_reaches_the_compiled_loss():
    spec = _small({"label_smoothing": [0.0, 0.2]})
    inp = keras.Input((None, None, 1))
    h = keras.layers.GlobalAveragePooling2D()(inp)
    h = keras.layers.Dense(2, kernel_initializer="zeros", bias_initializer="zeros")(h)
    model = keras.Model(inp, keras.layers.Activation("softmax")(h))
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=0.0)
    model.compile(keras.optimizers.SGD(0.0), loss)
    ds = _data(spec, num_classes=2)
    history = _fit(model, ds, 2, [ProgressiveLearning(spec, datasets=[ds])])
    assert loss.label_smoothing == 0.2
    # uniform predictions: cross-entropy is log 2 whatever the smoothing, so check the object
    assert history.history["label_smoothing"] == [0.0, 0.2]
    assert np.allclose(history.history["loss"], np.log(2), atol=1e-6)


def test_eval_dataset_uses_eval_size_and_constant_length():
    spec = load_schedule({"epochs": 2, "stages": 2, "image_size": {"start": 8, "end": 12,
                          "eval": 16}, "batch_size": {"size": 4, "policy": "pixels"}})
    x = np.arange(10 * 8 * 8).reshape(10, 8, 8).astype("uint8")
    ev = ProgressiveDataset(spec, x, np.zeros(10), eval=True)
    assert len(ev) == 3 and ev[0][0].shape == (4, 16, 16, 1)
    assert ev.batch_counts() == [3, 3]
    train = ProgressiveDataset(spec, x, np.zeros(10))
    assert train.batch_counts() == [2, 3]  # batch 4*(12/8)**2 = 9 at 8 px, 4 at 12 px
    train.set_epoch(0)
    assert len(train) == 2 and train[0][0].shape == (9, 8, 8, 1)
    assert train[1][0].shape == (1, 8, 8, 1)
    train.on_epoch_end()
    assert len(train) == 3  # between epochs: the upper bound Keras caches
    with pytest.raises(ValueError, match="augment/augment_factory: an eval dataset"):
        ProgressiveDataset(spec, x, eval=True, augment=[keras.layers.MixUp()])


def test_shuffle_is_a_function_of_seed_and_epoch():
    spec = _small({})
    x = np.arange(8).reshape(8, 1, 1).repeat(8, 1).repeat(8, 2).astype("uint8")
    a, b = _data(spec), ProgressiveDataset(spec, x, np.arange(8))
    b2 = ProgressiveDataset(spec, x, np.arange(8))
    b.set_epoch(1)
    b2.set_epoch(1)
    assert np.array_equal(b[0][1], b2[0][1])  # same epoch, same order (resume-safe)
    b2.set_epoch(0)
    assert not np.array_equal(np.concatenate([b[0][1], b[1][1]]),
                              np.concatenate([b2[0][1], b2[1][1]]))
    assert a is not None


def test_drop_remainder_gives_one_shape_per_stage():
    spec = load_schedule({"epochs": 2, "stages": 2, "image_size": [8, 12],
                          "batch_size": {"size": 4, "policy": "pixels"}})
    ds = ProgressiveDataset(spec, np.zeros((10, 8, 8)), np.zeros(10), drop_remainder=True)
    assert ds.batch_counts() == [1, 2]  # 10 // 9, 10 // 4
    ds.set_epoch(1)
    assert [ds[i][0].shape[0] for i in range(len(ds))] == [4, 4]
    with pytest.raises(ValueError, match=r"drop_remainder: a stage's batch size 9 exceeds"):
        ProgressiveDataset(spec, np.zeros((5, 8, 8)), drop_remainder=True)


def test_reference_model_is_wired_with_its_schedule():
    from proglearn.integrations.keras import HEAD_DROPOUT, efficientnetv2

    with pytest.raises(ValueError, match=r"schedule: EfficientNetV2B0 has no preset"):
        efficientnetv2("b0", num_classes=3)
    with pytest.raises(ValueError, match=r"variant: must be one of .*received 'xs'"):
        efficientnetv2("xs")
    spec = _small({"dropout": [0.1, 0.3]}, image_size=[32, 48])
    ref = efficientnetv2("b0", num_classes=3, schedule=spec, channels=1)
    assert ref.schedule == spec
    head = ref.model.get_layer(HEAD_DROPOUT)
    assert head.rate == 0.3  # built at the schedule's largest rate: it has a seed generator
    assert ref.model.output_shape == (None, 3)
    for size in (32, 48):  # any input size
        assert ref.model.predict(np.zeros((1, size, size, 1)), verbose=0).shape == (1, 3)
    # the backbone's stochastic-depth Dropouts (rates rising with depth) are left alone:
    # the default "every Dropout" refuses, the reference's own callback selects the head only
    bare = ProgressiveLearning(spec, on_stage=lambda s: None)
    bare.set_model(ref.model)
    with pytest.raises(ValueError, match="dropout_layers: the default"):
        bare.on_train_begin()
    cb = ref.callback(on_stage=lambda s: None)
    cb.set_model(ref.model)
    cb.on_train_begin()
    before = {layer.name: layer.rate for layer in ref.model.get_layer(
        "efficientnetv2-b0").layers if isinstance(layer, keras.layers.Dropout)}
    cb.on_epoch_begin(0)
    assert head.rate == 0.1
    after = {layer.name: layer.rate for layer in ref.model.get_layer(
        "efficientnetv2-b0").layers if isinstance(layer, keras.layers.Dropout)}
    assert after == before and len(after) > 5


def test_training_dataset_refuses_keras_workers():
    # Keras' enqueuer keeps pending batches for its next run: epochs would get stale stages
    spec = _small({})
    with pytest.raises(ValueError, match=r"workers/use_multiprocessing: .*received workers=2"):
        ProgressiveDataset(spec, np.zeros((8, 8, 8)), workers=2)
    ProgressiveDataset(spec, np.zeros((8, 8, 8)), eval=True, workers=2)  # constant: fine
