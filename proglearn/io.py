"""Loading and saving schedules: YAML files, presets shipped with the package, plain dicts."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .spec import Schedule, ScheduleError

__all__ = ["dump_schedule", "list_presets", "load_schedule", "preset_path", "schedule_from_yaml"]

SchedulePath = str | os.PathLike[str]


def list_presets() -> list[str]:
    """Names of the presets shipped with proglearn (``proglearn/presets/*.yaml``)."""
    files = resources.files("proglearn").joinpath("presets").iterdir()
    return sorted(f.name[: -len(".yaml")] for f in files if f.name.endswith(".yaml"))


def preset_path(name: str) -> Path:
    """Path of the YAML file of preset ``name``."""
    if name not in list_presets():
        raise ScheduleError(
            f"unknown preset or missing file {name!r}; presets: {', '.join(list_presets())}")
    return Path(str(resources.files("proglearn").joinpath("presets", f"{name}.yaml")))


def schedule_from_yaml(text: str, *, source: str | None = None) -> Schedule:
    """Parse and validate YAML ``text``. Errors are :class:`ScheduleError` naming ``source``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScheduleError(f"not valid YAML{where}: {problem}", source=source) from None
    if data is None:
        raise ScheduleError("the file is empty; a schedule is a YAML mapping", source=source)
    if not isinstance(data, dict):
        raise ScheduleError(
            f"a schedule must be a YAML mapping (received {type(data).__name__}: {data!r:.60})",
            source=source)
    try:
        return Schedule.model_validate(data)
    except ScheduleError as exc:
        raise ScheduleError(exc.detail, source=source, errors=exc.errors) from None


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ScheduleError("is a directory, not a schedule file", source=str(path)) from None
    except OSError as exc:
        raise ScheduleError(f"cannot read file: {exc.strerror}", source=str(path)) from None
    if b"\x00" in raw:
        raise ScheduleError("binary file, not YAML", source=str(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ScheduleError("not a UTF-8 text file, not YAML", source=str(path)) from None


def load_schedule(spec: Schedule | SchedulePath | dict[str, Any]) -> Schedule:
    """The one entry point: a :class:`Schedule`, a YAML path, a preset name, or a dict."""
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, dict):
        return Schedule.model_validate(spec)
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if path.exists():
            return schedule_from_yaml(_read(path), source=str(path))
        name = str(spec)
        if name in list_presets():
            return schedule_from_yaml(_read(preset_path(name)), source=f"preset {name}")
        if name.endswith((".yaml", ".yml")) or os.sep in name:
            raise ScheduleError("no such file", source=name)
        return schedule_from_yaml(_read(preset_path(name)), source=name)
    raise ScheduleError(
        "schedule: expected a Schedule, a YAML path, a preset name or a dict "
        f"(received {type(spec).__name__})")


def dump_schedule(spec: Schedule) -> str:
    """YAML text of ``spec``; ``load_schedule`` of it gives back an equal schedule."""
    data = spec.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False)
