"""Keras fit() scenarios shared by the in-process (torch) tests and the jax subprocess.

Run as a script (``KERAS_BACKEND=jax python tests/keras/scenarios.py``) it runs the scenarios
and prints one JSON object; the tests compare it with the same expected tables as on torch.
Backend selection must happen before keras is imported, hence the subprocess.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from typing import Any

import keras
import numpy as np

from proglearn import load_schedule
from proglearn.integrations.keras import ProgressiveDataset, ProgressiveLearning, max_value

#: 4 stages: sizes 8/10/12/14, batch 24/15/10/8 (pixels policy), dropout 0/0.1/0.2/0.3.
RAMP = {"epochs": 4, "stages": 4, "image_size": {"start": 8, "end": 14, "multiple": 2},
        "batch_size": {"size": 8, "policy": "pixels"}, "knobs": {"dropout": [0.0, 0.3]}}
#: 3 stages at one size and batch: only the dropout rate changes (a compiled step would keep it).
RATE_ONLY = {"epochs": 3, "stages": 3, "image_size": 8, "batch_size": 16,
             "knobs": {"dropout": [0.1, 0.3]}}


class ShapeLog(keras.callbacks.Callback):
    """Collects, per epoch, the input shapes the model's Lambda saw (one per executed call:
    every batch in eager torch, every trace under jit)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_epoch: dict[int, list[list[int]]] = {}
        self.current: list[list[int]] | None = None
        self.steps: dict[int, int] = {}

    def record(self, t: Any) -> Any:
        if self.current is not None:
            self.current.append([int(d) for d in t.shape])
        return t

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.current = self.by_epoch.setdefault(epoch, [])
        self.steps[epoch] = 0

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.steps[self._epoch()] += 1

    def _epoch(self) -> int:
        return max(self.steps)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.current = None


def probe_model(rate: float, channels: int = 4, shapes: ShapeLog | None = None,
                **compile_kwargs: Any) -> keras.Model:
    """Loss probe. Input is all ones; after ``Dropout(rate)`` every kept unit is exactly
    ``1 / (1 - rate)``; the model outputs the max over all units, and the MAE against 1 is
    ``rate / (1 - rate)``: exactly 0 only when dropout is off, and ``rate = L / (1 + L)``.
    A frozen Dense(1) with weight 1 keeps Keras from warning about no trainable weights
    (SGD with learning rate 0 never changes it)."""
    inp = keras.Input((None, None, channels))
    h = keras.layers.Lambda(shapes.record if shapes else (lambda t: t), name="shapes")(inp)
    h = keras.layers.Dropout(rate, name="probe_dropout")(h)
    h = keras.layers.Lambda(lambda t: keras.ops.max(t, axis=(1, 2, 3), keepdims=False),
                            name="max")(h)
    h = keras.layers.Reshape((1,))(h)
    out = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros",
                             name="identity")(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.SGD(0.0), "mae", **compile_kwargs)
    return model


def rates_from_loss(losses: list[float]) -> list[float]:
    return [round(float(v) / (1.0 + float(v)), 5) for v in losses]


def run_probe(schedule: Any, n: int = 48, initial_epoch: int = 0, retrace: Any = "auto",
              **compile_kwargs: Any) -> dict[str, Any]:
    """fit() the probe on a ProgressiveDataset; return history, rates, shapes and steps."""
    spec = load_schedule(schedule)
    shapes = ShapeLog()
    model = probe_model(max_value(spec, "dropout"), shapes=shapes, **compile_kwargs)
    ds = ProgressiveDataset(spec, np.ones((n, 10, 10, 4), "uint8"), np.ones((n,), "float32"))
    cb = ProgressiveLearning(spec, datasets=[ds], retrace=retrace)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(ds, epochs=spec.epochs, initial_epoch=initial_epoch,
                            callbacks=[cb, shapes], verbose=0)
    seconds = time.perf_counter() - t0
    return {
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        "epochs": history.epoch,
        "rates": rates_from_loss(history.history["loss"]),
        "shapes": {str(k): v for k, v in shapes.by_epoch.items()},
        "steps": {str(k): v for k, v in shapes.steps.items()},
        "retraces": cb.retraces,
        "ran_out_warnings": sum("ran out of data" in str(w.message) for w in caught),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    which = sys.argv[1:] or ["ramp", "rate_only", "stale", "resume"]
    out: dict[str, Any] = {"backend": keras.backend.backend()}
    if "ramp" in which:
        out["ramp"] = run_probe(RAMP, n=120)
    if "rate_only" in which:
        out["rate_only"] = run_probe(RATE_ONLY, n=32)
    if "stale" in which:  # negative control: without the retrace the compiled rate is stale
        out["stale"] = run_probe(RATE_ONLY, n=32, retrace=False)
    if "resume" in which:
        out["resume"] = run_probe(RAMP, n=120, initial_epoch=2)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
