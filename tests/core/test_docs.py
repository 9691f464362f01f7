"""The YAML reference documents every field the schedule accepts."""

from __future__ import annotations

from pathlib import Path

from proglearn.spec import KNOWN_KNOBS, BatchSize, ImageSize, Schedule

DOC = (Path(__file__).resolve().parents[2] / "docs" / "yaml.md").read_text()


def test_yaml_reference_lists_every_field() -> None:
    for model in (Schedule, ImageSize, BatchSize):
        for name in model.model_fields:
            assert f"| `{name}` |" in DOC, f"{model.__name__}.{name} missing from docs/yaml.md"
    for knob in KNOWN_KNOBS:
        assert f"| `{knob}` |" in DOC, knob
