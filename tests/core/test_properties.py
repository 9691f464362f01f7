"""Hypothesis property tests over generated schedules."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import proglearn as pl
from proglearn import Schedule, ScheduleError

KNOBS = ["dropout", "drop_path", "label_smoothing", "randaug_magnitude", "mixup_alpha", "my_knob"]
unit = st.floats(0, 0.99, allow_nan=False)
nonneg = st.floats(0, 50, allow_nan=False)


@st.composite
def specs(draw: Any, modes=("adaptive", "resize_only", "fixed", "random")) -> Schedule:
    epochs = draw(st.integers(1, 400))
    stages = draw(st.integers(1, min(epochs, 12)))
    knobs = {}
    for k in draw(st.lists(st.sampled_from(KNOBS), unique=True, max_size=4)):
        lo = draw(unit if k in ("dropout", "drop_path", "label_smoothing") else nonneg)
        hi = draw(unit if k in ("dropout", "drop_path", "label_smoothing") else nonneg)
        knobs[k] = [lo, hi]
    data: dict[str, Any] = dict(
        epochs=epochs, stages=stages,
        image_size={"start": draw(st.integers(8, 600)), "end": draw(st.integers(8, 600))},
        knobs=knobs, convention=draw(st.sampled_from(["paper", "automl"])),
        mode=draw(st.sampled_from(modes)), seed=draw(st.integers(0, 2**31)),
    )
    if draw(st.booleans()):
        data["delay_fraction"] = draw(st.floats(0, 0.5))
        data["finetune_fraction"] = draw(st.floats(0, 0.45))
    if draw(st.booleans()):
        data["steps_per_epoch"] = draw(st.integers(1, 50))
    try:
        return Schedule(**data)
    except ScheduleError:
        assume(False)
        raise


def _monotone(xs: list[float], start: float, end: float) -> bool:
    pairs = list(zip(xs, xs[1:], strict=False))
    return all(a <= b for a, b in pairs) if end >= start else all(a >= b for a, b in pairs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(specs())
def test_plan_covers_every_epoch_once_in_order(spec: Schedule) -> None:
    rows = pl.plan(spec)
    assert rows[0].epoch_start == 0 and rows[-1].epoch_end == spec.epochs
    for a, b in zip(rows, rows[1:], strict=False):
        assert a.epoch_end == b.epoch_start
    assert all(r.epoch_end > r.epoch_start for r in rows)
    covered = [e for r in rows for e in range(r.epoch_start, r.epoch_end)]
    assert covered == list(range(spec.epochs))
    for r in rows:
        for e in range(r.epoch_start, r.epoch_end):
            assert pl.stage_at_epoch(spec, e) == r.index
    if spec.mode != "random":
        assert [r.index for r in rows] == list(range(spec.stages))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(specs(modes=("adaptive",)))
def test_values_start_at_start_end_at_end_and_move_monotonically(spec: Schedule) -> None:
    stages = [pl.stage_values(spec, i) for i in range(spec.stages)]
    size = spec.image_size
    sizes = [s.image_size for s in stages]
    assert _monotone(sizes, size.start, size.end)
    assert sizes[-1] == size.end
    if spec.convention == "paper" and spec.stages > 1:
        assert sizes[0] == size.start
    for name, ramp in spec.knobs.ramps().items():
        vals = [s.values[name] for s in stages]
        assert _monotone(vals, ramp.start, ramp.end)
        assert vals[-1] == ramp.end
        if spec.stages > 1:
            assert vals[0] == ramp.start  # knobs use i/(M-1) in both conventions


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(specs(modes=("adaptive", "resize_only", "fixed")))
def test_step_stages_are_monotone_and_every_stage_gets_steps(spec: Schedule) -> None:
    assume(spec.steps_per_epoch is not None)
    total = spec.epochs * spec.steps_per_epoch
    seq = [pl.stage_at_step(spec, s) for s in range(0, total, max(1, total // 500))]
    assert seq == sorted(seq)
    starts = pl.stage_starts(spec, total)
    assert list(starts) == sorted(set(starts)) and starts[0] == 0 and starts[-1] < total


# --- invalid input: the library's error and nothing else ---------------------------------------
junk = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=6,
)
VALID = dict(epochs=12, stages=4, image_size={"start": 128, "end": 300},
             knobs={"dropout": [0.1, 0.3], "randaug_magnitude": [5, 15]})
INVALID_EDITS = st.sampled_from([
    ("bogus_key", 1), ("stages", 0), ("stages", 13), ("epochs", 0), ("epochs", -3),
    ("image_size", {"start": -128, "end": 300}), ("image_size", {"start": 128}),
    ("knobs", {"dropout": [0.1, 1.5]}), ("knobs", {"dropout": [-0.1, 0.2]}),
    ("knobs", {"mixup_alpha": [0, -1]}), ("knobs", {"mine": "big"}), ("knobs", {"mine": [1]}),
    ("mode", "sometimes"), ("convention", "nature"), ("epochs", 3.5), ("epochs", "12"),
    ("stages", True), ("boundaries", [0, 5, 3, 9]), ("boundaries", [1, 2, 3, 4]),
    ("delay_fraction", 0.7), ("batch_size", {"size": 0}), ("seed", -1),
    ("image_size", {"start": 100, "end": 300, "multiple": 32}),
])


@settings(max_examples=200, deadline=None)
@given(st.lists(INVALID_EDITS, min_size=1, max_size=3), st.data())
def test_any_invalid_spec_raises_schedule_error(edits: list, data: Any) -> None:
    spec = dict(VALID)
    for key, value in edits:
        spec[key] = value
    if "finetune_fraction" not in spec and spec.get("delay_fraction") == 0.7:
        spec["finetune_fraction"] = 0.4
    try:
        pl.load_schedule(spec)
    except ScheduleError as exc:
        assert str(exc)
        assert exc.errors, "every error names at least one field"
    else:  # pragma: no cover - every edit above is invalid
        raise AssertionError(f"accepted invalid spec {spec}")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*VALID, "mode", "boundaries", "batch_size", "x"]), junk,
                       max_size=6))
def test_arbitrary_input_gives_a_schedule_or_schedule_error_only(data: dict) -> None:
    spec = {**VALID, **data}
    try:
        result = pl.load_schedule(spec)
    except ScheduleError:
        return
    assert isinstance(result, Schedule)


@settings(max_examples=100, deadline=None)
@given(junk)
def test_arbitrary_yaml_text_gives_schedule_error_only(value: Any) -> None:
    import yaml

    try:
        pl.schedule_from_yaml(yaml.safe_dump(value), source="gen.yaml")
    except ScheduleError as exc:
        assert str(exc).startswith("gen.yaml: ")
