"""Progressive learning with adaptive regularization in Keras 3, on Fashion-MNIST.

    KERAS_BACKEND=torch python examples/keras_fashion_mnist.py            # ~1 minute on 2 CPUs
    KERAS_BACKEND=jax   python examples/keras_fashion_mnist.py --epochs 8 --subset 0
    python examples/keras_fashion_mnist.py --model efficientnetv2-b0 --subset 1024

One ``ProgressiveLearning`` callback moves, at every epoch, the image size and batch size (through
``ProgressiveDataset``), the head dropout rate, the RandAugment strength and the mixup alpha to
the values of that epoch's stage; each epoch prints its stage and values.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # must be set before keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402

from proglearn import load_schedule, plan  # noqa: E402
from proglearn.data import load_fashion_mnist  # noqa: E402
from proglearn.integrations.keras import (  # noqa: E402
    MAGNITUDE_SCALE,
    ProgressiveDataset,
    ProgressiveLearning,
    efficientnetv2,
    max_value,
)

CONFIG = Path(__file__).with_name("configs") / "keras_fashion_mnist.yaml"


def small_cnn(schedule, num_classes: int = 10) -> keras.Model:
    """A small convnet for any input size; its head dropout is built at the schedule's
    largest rate so that Keras gives it a seed generator."""
    inputs = keras.Input((None, None, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for width in (32, 64, 96):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(max_value(schedule, "dropout"), name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def light_augment(seed: int):
    """An augmentation *factory*: ``factory(values)`` returns the transform of one stage.

    A cheap numpy stand-in for RandAugment whose strength follows ``randaug_magnitude``: a
    random horizontal flip and a random shift of up to ``magnitude / 30 * 25%`` of the side.
    (``keras.layers.RandAugment`` is the real thing, ``--augment randaugment``, but costs about
    2 s per batch of 128 on the torch backend on a CPU.)
    """
    rng = np.random.default_rng(seed)

    def factory(values: dict[str, float]):
        strength = values.get("randaug_magnitude", 0.0) / MAGNITUDE_SCALE

        def transform(data: dict) -> dict:
            images = np.array(data["images"])
            n, size = len(images), images.shape[1]
            k = int(round(strength * 0.25 * size))
            flip = rng.random(n) < 0.5
            images[flip] = images[flip, :, ::-1]
            for i, (dy, dx) in enumerate(rng.integers(-k, k + 1, size=(n, 2))):
                images[i] = np.roll(images[i], (dy, dx), axis=(0, 1))
            return {**data, "images": images}

        return transform

    return factory


class EpochPrinter(keras.callbacks.Callback):
    """One line per epoch: stage values (from the logs ProgressiveLearning writes) and times."""

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()
        self.first_step = None

    def on_train_batch_end(self, batch, logs=None):
        if self.first_step is None:
            self.first_step = time.perf_counter() - self.t0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.perf_counter() - self.t0
        print(f"epoch {epoch:2d}  stage {int(logs['stage'])}  size {int(logs['image_size']):3d}  "
              f"batch {int(logs['batch_size']):4d}  dropout {logs['dropout']:.3f}  "
              f"magnitude {logs['randaug_magnitude']:5.2f}  mixup {logs['mixup_alpha']:.3f}  "
              f"loss {logs['loss']:.4f}  acc {logs['accuracy']:.4f}  "
              f"val_acc {logs.get('val_accuracy', float('nan')):.4f}  "
              f"time {seconds:6.1f}s (first step {self.first_step or 0:.1f}s)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--schedule", default=str(CONFIG), help="YAML path or preset name")
    p.add_argument("--epochs", type=int, default=None, help="override the schedule's epochs")
    p.add_argument("--subset", type=int, default=4096,
                   help="train on the first N images (0: all 60000); test uses N/4")
    p.add_argument("--model", choices=["cnn", "efficientnetv2-b0"], default="cnn")
    p.add_argument("--augment", choices=["light", "randaugment"], default="light",
                   help="light: a numpy augmentation factory; randaugment: keras.layers."
                        "RandAugment (slow on CPU)")
    p.add_argument("--csv", default=None, help="also log every epoch to this CSV file")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    keras.utils.set_random_seed(args.seed)
    schedule = load_schedule(args.schedule)
    if args.epochs is not None:
        schedule = schedule.replace(epochs=args.epochs, stages=min(schedule.stages, args.epochs))
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    for row in plan(schedule):
        print(f"  stage {row.index}: epochs {row.epoch_start}-{row.epoch_end - 1}, "
              f"size {row.image_size}, batch {row.batch_size}, {row.values}")

    x, y = load_fashion_mnist("train")
    xt, yt = load_fashion_mnist("test")
    if args.subset:
        n = args.subset
        x, y, xt, yt = x[:n], y[:n], xt[:n // 4], yt[:n // 4]

    augment: list = [keras.layers.MixUp(seed=args.seed)]
    factory = None
    if args.augment == "randaugment":
        augment.insert(0, keras.layers.RandAugment(value_range=(0, 255), seed=args.seed))
    else:
        factory = light_augment(args.seed)
    train = ProgressiveDataset(schedule, x, y, num_classes=10, augment=augment,
                               augment_factory=factory, seed=args.seed)
    test = ProgressiveDataset(schedule, xt, yt, num_classes=10, eval=True)

    if args.model == "cnn":
        model, dropout_layers = small_cnn(schedule), "head_dropout"
    else:
        ref = efficientnetv2("b0", num_classes=10, schedule=schedule, channels=1)
        model, dropout_layers = ref.model, ref.dropout_layers
    model.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy", metrics=["accuracy"])

    callbacks = [ProgressiveLearning(schedule, datasets=[train], dropout_layers=dropout_layers),
                 EpochPrinter()]
    if args.csv:
        callbacks.append(keras.callbacks.CSVLogger(args.csv))
    t0 = time.perf_counter()
    model.fit(train, validation_data=test, epochs=schedule.epochs, callbacks=callbacks,
              verbose=0)
    print(f"total {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
