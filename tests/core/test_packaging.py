"""`import proglearn` stays framework-free; the wheel carries core, presets and integrations."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("torch", "keras", "lightning", "timm", "jax", "torchvision", "tensorflow")


def test_import_proglearn_loads_no_training_framework() -> None:
    code = (
        "import sys, proglearn, proglearn.cli, proglearn.data, proglearn.models, "
        "proglearn.integrations\n"
        "proglearn.cli.build_parser()\n"
        f"print(','.join(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""


def test_wheel_contains_core_presets_and_integrations(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.fail(f"wheel build failed: {res.stderr[-2000:]}")
    (wheel,) = tmp_path.glob("proglearn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("proglearn/__init__.py", "proglearn/schedule.py", "proglearn/cli.py",
                     "proglearn/presets/efficientnetv2-s.yaml",
                     "proglearn/presets/efficientnetv2-s-automl.yaml",
                     "proglearn/integrations/__init__.py",
                     "proglearn/integrations/torch/__init__.py"):
        assert required in names, required
    for adapter in ("keras", "lightning"):
        if (ROOT / "integrations" / f"{adapter}.py").exists():
            assert f"proglearn/integrations/{adapter}.py" in names
    assert not any(n.startswith(("tests/", "integrations/", "examples/")) for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "proglearn = proglearn.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
