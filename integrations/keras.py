"""Keras 3 adapter: a ``ProgressiveLearning`` callback and a ``ProgressiveDataset``.

Works on every Keras 3 backend (tested on torch and jax; nothing here is backend specific)::

    import keras
    from proglearn.integrations.keras import ProgressiveDataset, ProgressiveLearning

    train = ProgressiveDataset("efficientnetv2-s", x_train, y_train, num_classes=10)
    callback = ProgressiveLearning("efficientnetv2-s", datasets=[train])
    model.fit(train, epochs=350, callbacks=[callback])

At the start of every epoch the callback asks the core (:func:`proglearn.values_at_epoch`) for
that epoch's stage and hands its values to small *appliers*:

====================  ===================================================================
knob                  target
====================  ===================================================================
``dropout``           ``rate`` of ``keras.layers.Dropout`` layers (all, or ``dropout_layers``)
``randaug_magnitude`` ``factor`` of ``keras.layers.RandAugment`` (``magnitude / magnitude_scale``)
                      or a ``ProgressiveDataset(augment_factory=...)``
``mixup_alpha``       ``alpha`` of ``keras.layers.MixUp``
``cutmix_alpha``      ``factor = (alpha, alpha)`` of ``keras.layers.CutMix``
``label_smoothing``   ``label_smoothing`` of the compiled loss object
any other             ``appliers={"name": fn}``; ``fn(value)`` is called each epoch
image/batch size      every ``ProgressiveDataset`` in ``datasets``, and ``on_stage(stage)``
====================  ===================================================================

A knob that is not 0 in every stage (:func:`proglearn.is_zero`) and finds no target is an error
raised at ``on_train_begin`` naming the knob and what was searched.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

try:
    import keras
except ModuleNotFoundError as exc:  # Keras' default backend is TensorFlow
    if exc.name != "tensorflow":
        raise
    raise ModuleNotFoundError(
        "keras tried its default backend, tensorflow, which is not installed; choose a "
        "backend before keras is first imported: KERAS_BACKEND=torch (or jax) in the "
        "environment, or os.environ['KERAS_BACKEND'] = 'torch' at the top of your script",
        name="tensorflow") from exc

from proglearn import Schedule, Stage, is_zero, load_schedule, stage_values, values_at_epoch
from proglearn.schedule import stage_at_epoch

__all__ = [
    "HEAD_DROPOUT",
    "MAGNITUDE_SCALE",
    "ProgressiveDataset",
    "ProgressiveLearning",
    "ReferenceModel",
    "efficientnetv2",
    "magnitude_to_factor",
    "max_value",
    "needs_retrace",
    "set_cutmix_alpha",
    "set_dropout_rate",
    "set_mixup_alpha",
    "set_randaugment_factor",
]

#: Default divisor from the paper's RandAugment magnitude to Keras' ``factor`` (see
#: :func:`magnitude_to_factor`).
MAGNITUDE_SCALE = 30.0
#: Name of the head dropout layer of :func:`efficientnetv2`.
HEAD_DROPOUT = "proglearn_head_dropout"
_RAN_OUT = "Your input ran out of data"


# --------------------------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------------------------
def max_value(schedule: Any, knob: str) -> float:
    """Largest value ``knob`` takes in any stage (0.0 if the schedule does not set it).

    Build a ``Dropout`` at ``max_value(schedule, "dropout")`` so that it owns a seed generator.
    """
    spec = load_schedule(schedule)
    return max(stage_values(spec, i).values.get(knob, 0.0) for i in range(spec.stages))


def magnitude_to_factor(magnitude: float, scale: float = MAGNITUDE_SCALE) -> float:
    """Map a RandAugment magnitude on the paper's scale to ``keras.layers.RandAugment.factor``.

    ``factor = magnitude / scale``, with ``scale = 30`` by default, the top of the magnitude
    scale of torchvision's RandAugment (31 bins, 0..30). Keras' ``factor`` is a normalized
    strength in [0, 1] that every sub-operation interprets in its own units (RandAugment passes
    ``(0, factor)`` to each of its 11 layers), so there is no exact correspondence; this linear
    map keeps every magnitude of the paper's Table 6 (5 .. 25) inside [0, 1], keeps the
    ramp's shape, and puts Keras' default 0.5 at magnitude 15. A magnitude above ``scale`` is
    an error (Keras rejects factors above 1).

    >>> magnitude_to_factor(5), magnitude_to_factor(15), magnitude_to_factor(25)
    (0.16666666666666666, 0.5, 0.8333333333333334)
    """
    if not scale > 0:
        raise ValueError(f"magnitude_scale: must be > 0 (received {scale!r})")
    factor = magnitude / scale
    if not 0 <= factor <= 1:
        raise ValueError(
            f"randaug_magnitude: {magnitude} / magnitude_scale {scale} = {factor:g} is outside "
            f"Keras' RandAugment factor range [0, 1]; raise magnitude_scale (received "
            f"randaug_magnitude={magnitude})")
    return factor


def needs_retrace(model: Any) -> bool:
    """True when ``model``'s train function is compiled, so that Python-level values such as a
    ``Dropout`` rate are baked into it and a change needs ``make_train_function(force=True)``.

    torch backend: only with ``jit_compile=True``; jax: unless ``run_eagerly`` or
    ``jit_compile=False``; tensorflow: unless ``run_eagerly`` (``tf.function`` traces Python
    floats as constants).
    """
    if getattr(model, "run_eagerly", False):
        return False
    if keras.backend.backend() == "tensorflow":
        return True
    return bool(getattr(model, "jit_compile", False))


# --------------------------------------------------------------------------------------------
# Appliers: set one knob on one kind of target. Each returns nothing and fails loudly.
# --------------------------------------------------------------------------------------------
def set_dropout_rate(layer: keras.layers.Dropout, rate: float) -> None:
    """Set a ``keras.layers.Dropout``'s rate. A layer built with rate 0 has no seed generator
    and cannot be raised above 0: that is an error, not a silent no-op."""
    if not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be in [0, 1) (received {rate})")
    if rate > 0 and getattr(layer, "seed_generator", None) is None:
        raise ValueError(_no_seed_message(layer.name, rate))
    layer.rate = float(rate)


def _no_seed_message(name: str, rate: float) -> str:
    return (
        f"dropout: Dropout layer {name!r} was built with rate=0, so Keras gave it no seed "
        f"generator and its rate cannot be raised to {rate:g} later. Build it with the "
        "schedule's largest rate, e.g. keras.layers.Dropout("
        "proglearn.integrations.keras.max_value(schedule, 'dropout')); the callback sets the "
        "scheduled rate before the first step.")


def set_randaugment_factor(layer: keras.layers.RandAugment, factor: float) -> None:
    """Set a ``keras.layers.RandAugment``'s strength to ``factor`` in [0, 1].

    ``RandAugment`` copies its factor into its 11 sub-layers when it is constructed, and
    assigning ``layer.factor`` afterwards changes nothing. This builds a fresh RandAugment with
    the same config and the new factor and copies every factor-derived attribute (names
    containing ``factor``, ``_lower``, ``_upper``) of each sub-layer onto the live one; the live
    layer keeps its own seed generators (variables), so a model holding it stays intact.
    """
    if not 0 <= factor <= 1:
        raise ValueError(f"randaug_magnitude: factor must be in [0, 1] (received {factor})")
    config = {**layer.get_config(), "factor": float(factor)}
    config.pop("name", None)
    fresh = type(layer).from_config(config)
    layer.factor = fresh.factor
    for sub_name in layer._AUGMENT_LAYERS:
        live, new = getattr(layer, sub_name), getattr(fresh, sub_name)
        for attr, value in vars(new).items():
            if "factor" in attr or attr.endswith(("_lower", "_upper")):
                setattr(live, attr, value)


def set_mixup_alpha(layer: keras.layers.MixUp, alpha: float) -> None:
    """Set ``keras.layers.MixUp.alpha`` (Beta(alpha, alpha) mixing weights). At alpha 0 mixup
    is off: :class:`ProgressiveDataset` then skips the layer (Keras' Beta(0, 0) is invalid)."""
    if alpha < 0:
        raise ValueError(f"mixup_alpha: must be >= 0 (received {alpha})")
    layer.alpha = float(alpha)


def set_cutmix_alpha(layer: keras.layers.CutMix, alpha: float) -> None:
    """Set ``keras.layers.CutMix``'s alpha: Keras draws alpha uniformly from ``factor`` and the
    mixing weight from Beta(alpha, alpha), so a fixed alpha is ``factor = (alpha, alpha)``.
    At alpha 0 :class:`ProgressiveDataset` skips the layer."""
    if alpha < 0:
        raise ValueError(f"cutmix_alpha: must be >= 0 (received {alpha})")
    layer.factor = (float(alpha), float(alpha))


def _set_label_smoothing(loss: Any, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"label_smoothing: must be in [0, 1) (received {value})")
    loss.label_smoothing = float(value)


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # a torch tensor: keras' converter trips a numpy 2 warning
        return x.detach().cpu().numpy()
    return np.asarray(keras.ops.convert_to_numpy(x))


def _is_off(layer: Any) -> bool:
    """A MixUp/CutMix at alpha 0 (off)."""
    if isinstance(layer, keras.layers.MixUp):
        return layer.alpha == 0
    if isinstance(layer, keras.layers.CutMix):
        return max(layer.factor) == 0
    return False


# --------------------------------------------------------------------------------------------
# ProgressiveDataset
# --------------------------------------------------------------------------------------------
class ProgressiveDataset(keras.utils.PyDataset):
    """Batches ``(images, labels)`` at the image size and batch size of the current stage.

    Args:
        schedule: a Schedule, YAML path, preset name or dict.
        x: images, ``[N, H, W]`` or ``[N, H, W, C]`` (any dtype; batches are float32 in the
            same value range, e.g. 0..255 for uint8 input).
        y: integer labels ``[N]`` (or already one-hot ``[N, K]``), or None.
        batch_size: batch size when the schedule has no ``batch_size``; must be None when it
            has one (the schedule decides, per stage).
        num_classes: one-hot encode integer labels (needed by MixUp/CutMix).
        augment: Keras layers or callables applied in order to the batch dict
            ``{"images", "labels"}`` after resizing (e.g. ``RandAugment``, ``MixUp``,
            ``CutMix``); :class:`ProgressiveLearning` sets their strength. A MixUp/CutMix at
            alpha 0 is skipped.
        augment_factory: ``f(values) -> transform``: called once per stage with the stage's
            knob values (a dict) and cached; the transform maps the batch dict (numpy arrays)
            to a batch dict and runs after ``augment``. It is the target of the knobs in
            ``factory_knobs``.
        factory_knobs: knobs ``augment_factory`` consumes (default ``("randaug_magnitude",)``).
        eval: evaluation data: always ``schedule.image_size.eval_size``, no shuffling, no
            augmentation, constant length.
        shuffle: reshuffle samples every epoch from ``(seed, epoch)``: the same order on
            every run and on resume.
        seed: shuffling seed (default: the schedule's seed).
        interpolation: resize method of ``keras.ops.image.resize``.
        drop_remainder: drop each epoch's last partial batch (``N // batch_size`` batches),
            so that a compiled step (jax) sees one batch shape per stage, not two.
        **kwargs: ``workers``, ``use_multiprocessing``, ``max_queue_size`` of PyDataset.
            A training dataset refuses workers: Keras' enqueuer carries batches over from one
            run to the next, so they would lag one stage behind (eval datasets may use them).

    The stage follows the epoch given to :meth:`set_epoch`, which :class:`ProgressiveLearning`
    calls from ``on_epoch_begin(epoch)`` (pass the dataset in its ``datasets``). Keras reads a
    PyDataset's length once when ``fit()`` starts and never again; so between epochs (until
    ``set_epoch``) the length reported is the largest of any stage, an upper bound, and each
    epoch serves exactly ``ceil(N / batch_size)`` batches of its stage. When the length shrinks
    Keras warns "Your input ran out of data" at the end of the epoch; the callback silences
    that one warning during ``fit()`` while a dataset whose length changes is attached. The
    progress bar's target shows the upper bound.
    """

    def __init__(
        self,
        schedule: Any,
        x: Any,
        y: Any = None,
        *,
        batch_size: int | None = None,
        num_classes: int | None = None,
        augment: Any = (),
        augment_factory: Callable[[dict[str, float]], Callable[[dict], dict]] | None = None,
        factory_knobs: Sequence[str] = ("randaug_magnitude",),
        eval: bool = False,
        shuffle: bool = True,
        seed: int | None = None,
        interpolation: str = "bilinear",
        drop_remainder: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.schedule = load_schedule(schedule)
        if not eval and (self.workers > 1 or (self.workers > 0 and self.use_multiprocessing)):
            raise ValueError(
                "workers/use_multiprocessing: Keras' worker queue keeps batches made in one "
                "run for the next (its enqueuer stop() saves pending batches), so with workers "
                "every epoch would start with batches of the previous stage. Load training "
                "batches in the main thread (workers=1, use_multiprocessing=False) (received "
                f"workers={self.workers}, use_multiprocessing={self.use_multiprocessing})")
        x = np.asarray(x)
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4:
            raise ValueError(f"x: must be [N, H, W] or [N, H, W, C] (received shape {x.shape})")
        self.x = x
        self.y = None if y is None else np.asarray(y)
        if self.y is not None and len(self.y) != len(x):
            raise ValueError(f"y: must have one label per image ({len(x)}) "
                             f"(received {len(self.y)})")
        if len(x) == 0:
            raise ValueError("x: must hold at least one image (received 0)")
        spec_batch = self.schedule.batch_size
        if spec_batch is not None and batch_size is not None and not eval:
            raise ValueError(
                f"batch_size: the schedule already sets batch_size {spec_batch.size} "
                f"({spec_batch.policy}); leave batch_size=None (received {batch_size})")
        if spec_batch is None and batch_size is None:
            raise ValueError("batch_size: required when the schedule has no batch_size "
                             "(received None)")
        if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"batch_size: must be an integer >= 1 (received {batch_size!r})")
        self._batch_size = batch_size
        self.num_classes = num_classes
        if isinstance(augment, Iterable) and not isinstance(augment, (str, dict)):
            self.augment = list(augment)
        else:
            self.augment = [augment]
        for a in self.augment:
            if not callable(a):
                raise ValueError(f"augment: every item must be a Keras layer or callable "
                                 f"(received {a!r})")
        if eval and (self.augment or augment_factory is not None):
            raise ValueError("augment/augment_factory: an eval dataset is not augmented "
                             "(received augmentation with eval=True)")
        if augment_factory is not None and not callable(augment_factory):
            raise ValueError(f"augment_factory: must be callable (received {augment_factory!r})")
        self.augment_factory = augment_factory
        self.factory_knobs = tuple(factory_knobs) if augment_factory is not None else ()
        if any(isinstance(a, (keras.layers.MixUp, keras.layers.CutMix))
               for a in self.augment) and num_classes is None and (
                   self.y is None or self.y.ndim != 2):
            raise ValueError("num_classes: MixUp/CutMix mix one-hot labels; pass num_classes "
                             "or one-hot y (received num_classes=None)")
        self.eval = eval
        self.shuffle = shuffle and not eval
        self.seed = self.schedule.seed if seed is None else seed
        self.interpolation = interpolation
        self.drop_remainder = bool(drop_remainder)
        if self.drop_remainder:
            largest = max(self.batch_size_of(stage_values(self.schedule, i))
                          for i in range(self.schedule.stages))
            if largest > len(x):
                raise ValueError(f"drop_remainder: a stage's batch size {largest} exceeds the "
                                 f"{len(x)} images, leaving no batch (received True)")
        self._epoch: int | None = None  # set by set_epoch for one epoch, cleared at its end
        self._last_epoch = 0
        self._transforms: dict[int, Callable[[dict], dict]] = {}

    # -- stage -----------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Serve the stage of ``epoch`` (0-based, absolute) until the end of this epoch."""
        stage_at_epoch(self.schedule, epoch)  # validates epoch
        self._epoch = self._last_epoch = int(epoch)

    @property
    def stage(self) -> Stage:
        """The stage whose batches are served now."""
        return values_at_epoch(self.schedule, self._last_epoch)

    def image_size_of(self, stage: Stage) -> int:
        return self.schedule.image_size.eval_size if self.eval else stage.image_size

    def batch_size_of(self, stage: Stage) -> int:
        if self._batch_size is not None:
            return self._batch_size
        if self.eval:
            return self.schedule.batch_size.size  # type: ignore[union-attr]
        return stage.batch_size  # type: ignore[return-value]

    def _num_batches_of(self, stage: Stage) -> int:
        if self.drop_remainder:
            return len(self.x) // self.batch_size_of(stage)
        return math.ceil(len(self.x) / self.batch_size_of(stage))

    def batch_counts(self) -> list[int]:
        """Number of batches of every stage."""
        return [self._num_batches_of(stage_values(self.schedule, i))
                for i in range(self.schedule.stages)]

    @property
    def length_varies(self) -> bool:
        return len(set(self.batch_counts())) > 1

    def __len__(self) -> int:
        if self._epoch is None:
            return max(self.batch_counts())
        return self._num_batches_of(self.stage)

    def on_epoch_end(self) -> None:
        self._epoch = None

    # -- batches ---------------------------------------------------------------------------
    def _order(self) -> np.ndarray:
        n = len(self.x)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self._last_epoch]).permutation(n)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        stage = self.stage
        b = self.batch_size_of(stage)
        count = self._num_batches_of(stage)
        if index < 0 or (self._epoch is not None and index >= count):
            raise IndexError(f"index: must be in [0, {count}) (received {index})")
        index %= count  # between epochs (Keras' build pass) the length is an upper bound
        idx = self._order()[index * b:(index + 1) * b]
        images = self.x[idx].astype("float32")
        size = self.image_size_of(stage)
        if images.shape[1:3] != (size, size):
            images = _to_numpy(keras.ops.image.resize(
                images, (size, size), interpolation=self.interpolation,
                antialias=size < images.shape[1]))
        data: dict[str, Any] = {"images": images}
        if self.y is not None:
            labels = self.y[idx]
            if self.num_classes is not None and labels.ndim == 1:
                labels = np.eye(self.num_classes, dtype="float32")[labels]
            data["labels"] = labels
        if not self.eval:
            for layer in self.augment:
                if not _is_off(layer):
                    data = layer(data)
            if self.augment_factory is not None:
                data = {k: _to_numpy(v) for k, v in data.items()}
                if stage.index not in self._transforms:
                    self._transforms = {stage.index: self.augment_factory(dict(stage.values))}
                data = self._transforms[stage.index](data)
        return tuple(_to_numpy(data[k]) for k in ("images", "labels") if k in data)


# --------------------------------------------------------------------------------------------
# The callback
# --------------------------------------------------------------------------------------------
def _flatten(model: Any) -> list[Any]:
    return list(model._flatten_layers(include_self=False, recursive=True))


def _as_patterns(value: str | Sequence[str] | None, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    out = tuple(value)
    if not out or not all(isinstance(p, str) for p in out):
        raise ValueError(f"{name}: must be a glob pattern or a non-empty list of them "
                         f"(received {value!r})")
    return out


class ProgressiveLearning(keras.callbacks.Callback):
    """Progressive learning with adaptive regularization (EfficientNetV2, Algorithm 1).

    Args:
        schedule: a :class:`proglearn.Schedule`, a YAML path, a preset name or a dict.
        datasets: :class:`ProgressiveDataset` objects that follow the stage (image size, batch
            size, their augmentation layers and factory).
        dropout_layers: glob pattern(s) over layer names selecting the ``Dropout`` layers the
            ``dropout`` knob drives; None (default) selects every ``Dropout`` of the model.
        magnitude_scale: ``factor = magnitude / magnitude_scale`` (see
            :func:`magnitude_to_factor`).
        appliers: ``{knob: fn(value)}`` for your own knobs, or to override a built-in target.
        on_stage: ``fn(stage)`` called whenever the stage changes (e.g. to rebuild your own
            input pipeline at ``stage.image_size``); with it the image size counts as handled.
        retrace: ``"auto"`` (default: retrace when :func:`needs_retrace`), True or False.
            A retrace (``model.make_train_function(force=True)``) happens only after a value
            set on a layer of the model changed.
        log: write ``stage``, ``image_size``, ``batch_size`` and every knob into the epoch's
            ``logs`` (History, CSVLogger; put this callback before CSVLogger).
        verbose: print one line per stage change.

    ``fit(..., initial_epoch=k)`` starts in the stage of epoch ``k``: every value is a pure
    function of the absolute epoch, so nothing needs saving.
    """

    def __init__(
        self,
        schedule: Any,
        *,
        datasets: Sequence[ProgressiveDataset] = (),
        dropout_layers: str | Sequence[str] | None = None,
        magnitude_scale: float = MAGNITUDE_SCALE,
        appliers: dict[str, Callable[[float], Any]] | None = None,
        on_stage: Callable[[Stage], Any] | None = None,
        retrace: bool | str = "auto",
        log: bool = True,
        verbose: bool = False,
    ) -> None:
        super().__init__()
        self.schedule: Schedule = load_schedule(schedule)
        if isinstance(datasets, ProgressiveDataset):
            datasets = [datasets]
        for ds in datasets:
            if not isinstance(ds, ProgressiveDataset):
                raise ValueError(f"datasets: must hold ProgressiveDataset objects "
                                 f"(received {type(ds).__name__})")
        self.datasets = list(datasets)
        self.dropout_layers = _as_patterns(dropout_layers, "dropout_layers")
        if isinstance(magnitude_scale, bool) or not (
                isinstance(magnitude_scale, (int, float)) and magnitude_scale > 0):
            raise ValueError(f"magnitude_scale: must be a number > 0 (received "
                             f"{magnitude_scale!r})")
        self.magnitude_scale = float(magnitude_scale)
        self.appliers = dict(appliers or {})
        for name, fn in self.appliers.items():
            if not callable(fn):
                raise ValueError(f"appliers[{name!r}]: must be callable (received {fn!r})")
        if on_stage is not None and not callable(on_stage):
            raise ValueError(f"on_stage: must be callable (received {on_stage!r})")
        self.on_stage = on_stage
        if retrace not in ("auto", True, False):
            raise ValueError(f"retrace: must be 'auto', True or False (received {retrace!r})")
        self.retrace = retrace
        self.log = bool(log)
        self.verbose = bool(verbose)
        self.stage: Stage | None = None
        self.retraces = 0
        self._targets: dict[str, list[Callable[[float], Any]]] = {}
        self._model_knobs: set[str] = set()
        self._applied: dict[str, float] = {}
        self._warnings: Any = None

    # -- config ----------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Everything but ``datasets``, ``appliers`` and ``on_stage`` (objects and functions:
        pass them again to :meth:`from_config`)."""
        return {
            "schedule": self.schedule.model_dump(mode="json", exclude_none=True),
            "dropout_layers": None if self.dropout_layers is None else list(self.dropout_layers),
            "magnitude_scale": self.magnitude_scale,
            "retrace": self.retrace,
            "log": self.log,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], **objects: Any) -> ProgressiveLearning:
        """Rebuild from :meth:`get_config`; ``objects`` adds ``datasets``/``appliers``/
        ``on_stage``."""
        return cls(**{**config, **objects})

    # -- discovery -------------------------------------------------------------------------
    def _augment_layers(self) -> list[Any]:
        found = [layer for layer in _flatten(self.model)]
        for ds in self.datasets:
            found.extend(ds.augment)
        return found

    def _find_targets(self) -> None:
        spec = self.schedule
        layers = self._augment_layers()
        model_layers = {id(layer) for layer in _flatten(self.model)}
        targets: dict[str, list[Callable[[float], Any]]] = {}
        searched: dict[str, str] = {}
        model_knobs: set[str] = set()

        def add(knob: str, fn: Callable[[float], Any], in_model: bool) -> None:
            targets.setdefault(knob, []).append(fn)
            if in_model:
                model_knobs.add(knob)

        # dropout
        drops = [layer for layer in _flatten(self.model)
                 if isinstance(layer, keras.layers.Dropout)]
        if self.dropout_layers is not None:
            drops = [layer for layer in drops
                     if any(fnmatch.fnmatchcase(layer.name, p) for p in self.dropout_layers)]
            searched["dropout"] = (f"keras.layers.Dropout layers of the model named like "
                                   f"{list(self.dropout_layers)}")
        else:
            searched["dropout"] = "keras.layers.Dropout layers of the model"
        if "dropout" in spec.knobs.ramps() and "dropout" not in self.appliers and drops:
            self._check_dropouts(drops)
        for layer in drops:
            add("dropout", functools.partial(set_dropout_rate, layer), True)
        # augmentation layers
        kinds: list[tuple[str, type, Callable[[Any, float], None]]] = [
            ("randaug_magnitude", keras.layers.RandAugment, self._set_magnitude),
            ("mixup_alpha", keras.layers.MixUp, set_mixup_alpha),
            ("cutmix_alpha", keras.layers.CutMix, set_cutmix_alpha),
        ]
        for knob, cls, setter in kinds:
            searched[knob] = (f"keras.layers.{cls.__name__} layers of the model and of the "
                              "datasets' augment")
            for layer in layers:
                if isinstance(layer, cls):
                    add(knob, functools.partial(setter, layer), id(layer) in model_layers)
        for ds in self.datasets:
            for knob in ds.factory_knobs:
                add(knob, lambda v: None, False)  # the dataset's factory reads the stage
        searched["randaug_magnitude"] += " and ProgressiveDataset(augment_factory=...)"
        # label smoothing on the compiled loss
        losses = getattr(self.model, "loss", None)
        losses = (list(losses.values()) if isinstance(losses, dict) else
                  list(losses) if isinstance(losses, (list, tuple)) else [losses])
        for loss in losses:
            if hasattr(loss, "label_smoothing"):
                add("label_smoothing", functools.partial(_set_label_smoothing, loss), True)
        searched["label_smoothing"] = "the compiled loss object (its label_smoothing)"
        # user appliers replace built-in targets
        for knob, fn in self.appliers.items():
            targets[knob] = [fn]
            model_knobs.add(knob)  # unknown effect: assume it touches the compiled step
        for knob in spec.knobs.ramps():
            if knob in targets or is_zero(spec, knob):
                continue
            where = searched.get(knob, "no built-in target for this knob")
            raise ValueError(
                f"knob {knob!r} is scheduled ({self._range(knob)}) but found no target; "
                f"searched: {where}. Add the layer, pass a ProgressiveDataset in datasets=, or "
                f"pass appliers={{{knob!r}: fn}}.")
        for knob in ("mixup_alpha", "cutmix_alpha"):
            if knob in targets and knob in model_knobs and knob not in self.appliers and any(
                    stage_values(spec, i).values.get(knob, 1.0) == 0
                    for i in range(spec.stages)):
                raise ValueError(
                    f"{knob}: is 0 in some stage, and Keras' MixUp/CutMix inside the model "
                    "cannot be switched off (Beta(0, 0) is invalid); put the layer in "
                    "ProgressiveDataset(augment=[...]), which skips it at alpha 0.")
        self._targets = targets
        self._model_knobs = model_knobs

    def _set_magnitude(self, layer: Any, magnitude: float) -> None:
        set_randaugment_factor(layer, magnitude_to_factor(magnitude, self.magnitude_scale))

    def _range(self, knob: str) -> str:
        ramp = self.schedule.knobs.ramps()[knob]
        return f"{ramp.start:g} -> {ramp.end:g}"

    def _check_dropouts(self, drops: list[Any]) -> None:
        top = max_value(self.schedule, "dropout")
        for layer in drops:
            if top > 0 and getattr(layer, "seed_generator", None) is None:
                raise ValueError(_no_seed_message(layer.name, top))
        rates = {round(float(layer.rate), 12) for layer in drops}
        if self.dropout_layers is None and len(rates) > 1:
            detail = ", ".join(f"{layer.name}={float(layer.rate):.3g}" for layer in drops[:6])
            raise ValueError(
                f"dropout_layers: the default (every Dropout of the model) matched {len(drops)} "
                f"layers built with different rates ({detail}{', ...' if len(drops) > 6 else ''})"
                "; they are probably stochastic depth, which the dropout knob must not "
                "overwrite. Select the classifier dropout by name, e.g. "
                "dropout_layers='head_dropout' (received dropout_layers=None)")

    # -- hooks -----------------------------------------------------------------------------
    def on_train_begin(self, logs: dict | None = None) -> None:
        spec = self.schedule
        sizes = {stage_values(spec, i).image_size for i in range(spec.stages)}
        if len(sizes) > 1 and not self.datasets and self.on_stage is None:
            raise ValueError(
                f"image_size: changes across stages ({spec.image_size.start} -> "
                f"{spec.image_size.end}) but nothing applies it; pass a ProgressiveDataset in "
                "datasets=[...] or a function on_stage=fn(stage) that resizes your input "
                "(received datasets=[], on_stage=None)")
        self._find_targets()
        self._applied = {}
        self.stage = None
        self.on_train_end()  # a fit() that raised never called on_train_end
        if any(ds.length_varies for ds in self.datasets):
            self._warnings = warnings.catch_warnings()
            self._warnings.__enter__()
            warnings.filterwarnings("ignore", message=_RAN_OUT, category=UserWarning)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._warnings is not None:
            self._warnings.__exit__(None, None, None)
            self._warnings = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        stage = values_at_epoch(self.schedule, epoch)
        for ds in self.datasets:
            ds.set_epoch(epoch)
        changed_model = False
        for knob, value in stage.values.items():
            if self._applied.get(knob) == value:
                continue
            for fn in self._targets.get(knob, ()):
                fn(value)
            self._applied[knob] = value
            changed_model |= knob in self._model_knobs and knob in self._targets
        if self.stage is None or stage.index != self.stage.index:
            if self.on_stage is not None:
                self.on_stage(stage)
            if self.verbose:
                print(f"proglearn: epoch {epoch}: {self._describe(stage)}")
        self.stage = stage
        if changed_model and self._should_retrace():
            self.model.make_train_function(force=True)
            self.retraces += 1

    def _should_retrace(self) -> bool:
        if self.retrace == "auto":
            return needs_retrace(self.model)
        return bool(self.retrace)

    def _describe(self, stage: Stage) -> str:
        parts = [f"stage {stage.index}", f"image_size {stage.image_size}"]
        if stage.batch_size is not None:
            parts.append(f"batch_size {stage.batch_size}")
        parts += [f"{k} {v:g}" for k, v in stage.values.items()]
        return ", ".join(parts)

    def stage_logs(self, stage: Stage | None = None) -> dict[str, float]:
        """The values written into ``logs``: stage, image_size, batch_size, every knob."""
        stage = stage or self.stage
        if stage is None:
            return {}
        out: dict[str, float] = {"stage": stage.index, "image_size": stage.image_size}
        batch = stage.batch_size
        if batch is None and self.datasets and not self.datasets[0].eval:
            batch = self.datasets[0].batch_size_of(stage)
        if batch is not None:
            out["batch_size"] = batch
        out.update(stage.values)
        return out

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.log and logs is not None:
            logs.update(self.stage_logs())


# --------------------------------------------------------------------------------------------
# Reference model: keras.applications.EfficientNetV2 with our own head, wired with its preset
# --------------------------------------------------------------------------------------------
_VARIANTS = {"b0": "EfficientNetV2B0", "b1": "EfficientNetV2B1", "b2": "EfficientNetV2B2",
             "b3": "EfficientNetV2B3", "s": "EfficientNetV2S", "m": "EfficientNetV2M",
             "l": "EfficientNetV2L"}
_PRESETS = {"s": "efficientnetv2-s", "m": "efficientnetv2-m", "l": "efficientnetv2-l"}


class ReferenceModel(NamedTuple):
    """What :func:`efficientnetv2` returns."""

    model: Any
    schedule: Schedule
    dropout_layers: str

    def callback(self, **kwargs: Any) -> ProgressiveLearning:
        """A :class:`ProgressiveLearning` for this model (its head dropout only)."""
        return ProgressiveLearning(self.schedule, dropout_layers=self.dropout_layers, **kwargs)


def efficientnetv2(
    variant: str = "s",
    num_classes: int = 1000,
    *,
    schedule: Any = None,
    channels: int = 3,
    classifier_activation: str | None = "softmax",
    default_dropout: float = 0.2,
) -> ReferenceModel:
    """``keras.applications.EfficientNetV2<variant>`` with ``include_top=False``,
    ``weights=None`` (never downloads), input ``(None, None, channels)`` (any size), global
    average pooling, then our own ``Dropout`` (named :data:`HEAD_DROPOUT`) and ``Dense`` head.

    ``schedule`` defaults to the variant's preset (``s``, ``m``, ``l`` -> ``efficientnetv2-s``
    etc.); ``b0``..``b3`` have none and need one. The head dropout is built at the schedule's
    largest dropout rate (so it owns a seed generator), or at ``default_dropout`` if the
    schedule does not schedule dropout. The backbone's own stochastic-depth Dropout layers keep
    their rates. Inputs are in 0..255 (the backbone rescales).
    """
    key = str(variant).lower().removeprefix("efficientnetv2").strip("-_")
    if key not in _VARIANTS:
        raise ValueError(f"variant: must be one of {sorted(_VARIANTS)} (received {variant!r})")
    if schedule is None:
        if key not in _PRESETS:
            raise ValueError(f"schedule: EfficientNetV2{key.upper()} has no preset; pass a "
                             "schedule (a Schedule, YAML path, preset name or dict) "
                             "(received None)")
        schedule = _PRESETS[key]
    spec = load_schedule(schedule)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes: must be an integer >= 1 (received {num_classes!r})")
    rate = max_value(spec, "dropout") if "dropout" in spec.knobs.ramps() else default_dropout
    backbone = getattr(keras.applications, _VARIANTS[key])(
        include_top=False, weights=None, input_shape=(None, None, channels), pooling="avg")
    inputs = keras.Input((None, None, channels), name="images")
    x = backbone(inputs)
    x = keras.layers.Dropout(rate, name=HEAD_DROPOUT)(x)
    outputs = keras.layers.Dense(num_classes, activation=classifier_activation,
                                 name="proglearn_head")(x)
    model = keras.Model(inputs, outputs, name=f"efficientnetv2_{key}_proglearn")
    return ReferenceModel(model, spec, HEAD_DROPOUT)
