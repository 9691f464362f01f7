"""YAML round trip and the readable errors users see."""

from __future__ import annotations

from pathlib import Path

import pytest

import proglearn as pl
from proglearn import ScheduleError


@pytest.mark.parametrize("name", pl.list_presets())
def test_yaml_round_trip_of_every_preset(name: str) -> None:
    spec = pl.load_schedule(name)
    text = pl.dump_schedule(spec)
    assert pl.schedule_from_yaml(text) == spec
    assert pl.dump_schedule(pl.schedule_from_yaml(text)) == text


def test_round_trip_of_every_field(tmp_path: Path) -> None:
    spec = pl.Schedule(
        epochs=30, stages=3, image_size={"start": 96, "end": 224, "multiple": 32, "eval": 256},
        knobs={"dropout": [0.1, 0.3], "cutmix_alpha": [0, 1], "my_knob": [3, -3]},
        batch_size={"size": 64, "policy": "pixels", "max": 256, "multiple": 8},
        convention="automl", mode="resize_only", seed=7, steps_per_epoch=100,
        delay_fraction=0.1, finetune_fraction=0.2)
    path = tmp_path / "s.yaml"
    path.write_text(pl.dump_schedule(spec))
    assert pl.load_schedule(path) == spec
    assert pl.load_schedule(str(path)) == spec
    with pytest.raises(Exception, match="frozen"):
        spec.epochs = 3  # type: ignore[misc]


def test_shorthands_equal_the_long_form() -> None:
    long = pl.Schedule(epochs=4, stages=2, image_size={"start": 64, "end": 64},
                       knobs={"dropout": {"start": 0.2, "end": 0.2}},
                       batch_size={"size": 32})
    short = pl.Schedule(epochs=4, stages=2, image_size=64, knobs={"dropout": 0.2}, batch_size=32)
    assert short == long
    assert pl.Schedule(epochs=4, stages=2, image_size=[32, 64]).image_size.start == 32


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("epochs: 10\nstages: 2\nimage_size: 64\nknobs: {dropout: [0.1, 1.5]}\n",
     "knobs.dropout.end: must be < 1 (received 1.5)"),
    ("epochs: 10\nstages: 2\nimage_size: 64\nbogus: 3\n", "bogus: unknown field (received 3)"),
    ("epochs: 10\nstages: 0\nimage_size: 64\n", "stages: must be >= 1 (received 0)"),
    ("epochs: 10\nstages: 11\nimage_size: 64\n", "stages: must be <= epochs=10 (received 11)"),
    ("epochs: 10\nstages: 2\nimage_size: {start: -5, end: 64}\n",
     "image_size.start: must be >= 1 (received -5)"),
    ("epochs: 10\nstages: 2\n", "image_size: required field is missing"),
    ("epochs: 10\nstages: 2\nimage_size: 64\nknobs: {mine: big}\n",
     "knobs.mine: must be a number, [start, end] or {start, end} (received 'big')"),
    ("epochs: ten\nstages: 2\nimage_size: 64\n", "epochs: must be an integer (received 'ten')"),
    ("epochs: 10\nstages: 2\nimage_size: 64\nmode: sometimes\n",
     "mode: must be one of 'adaptive', 'resize_only', 'fixed' or 'random' (received 'sometimes')"),
    ("epochs: [\n", "not valid YAML at line 2"),
    ("- 1\n- 2\n", "a schedule must be a YAML mapping (received list"),
    ("", "the file is empty"),
])
def test_error_names_file_field_and_value(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ScheduleError) as info:
        pl.load_schedule(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text  # one readable paragraph, not a traceback


def test_binary_missing_and_unknown_preset(tmp_path: Path) -> None:
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ScheduleError, match="binary file"):
        pl.load_schedule(binary)
    with pytest.raises(ScheduleError, match="no such file"):
        pl.load_schedule(tmp_path / "missing.yaml")
    with pytest.raises(ScheduleError, match="unknown preset or missing file 'efficientnetv2-q'"):
        pl.load_schedule("efficientnetv2-q")
    with pytest.raises(ScheduleError, match="is a directory"):
        pl.load_schedule(tmp_path)
    with pytest.raises(ScheduleError, match="received int"):
        pl.load_schedule(3)  # type: ignore[arg-type]
