"""The `proglearn` command line, called in-process and as the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from proglearn.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_json_efficientnetv2_s(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "efficientnetv2-s", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["index"], r["epoch_start"], r["epoch_end"], r["image_size"]) for r in rows] == [
        (0, 0, 87, 128), (1, 87, 175, 185), (2, 175, 262, 242), (3, 262, 350, 300)]
    assert [r["values"]["randaug_magnitude"] for r in rows] == [5, 8.3333333333, 11.6666666667, 15]
    assert [r["values"]["dropout"] for r in rows] == [0.1, 0.1666666667, 0.2333333333, 0.3]
    assert [r["values"]["mixup_alpha"] for r in rows] == [0, 0, 0, 0]
    assert all(r["batch_size"] == 4096 for r in rows)
    assert set(rows[0]) >= {"index", "epoch_start", "epoch_end", "image_size", "batch_size",
                            "values"}
    code, out, _ = run(capsys, "show", "efficientnetv2-s-automl", "--json")
    assert [r["image_size"] for r in json.loads(out)] == [171, 214, 257, 300]


def test_show_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "efficientnetv2-m")
    assert code == 0
    for text in ("randaug_magnitude", "mixup_alpha", "262–350", "380", "0.4"):
        assert text in out


def test_validate_ok(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("epochs: 10\nstages: 2\nimage_size: [32, 64]\nknobs: {dropout: [0, 0.2]}\n")
    assert run(capsys, "validate", str(path)) == (0, "ok\n", "")
    assert run(capsys, "validate", "efficientnetv2-l")[0] == 0


@pytest.mark.parametrize(("content", "needle"), [
    ("epochs: 10\nstages: 2\nimage_size: 64\ncolour: red\n", "colour: unknown field"),
    ("epochs: 10\nstages: 2\nimage_size: 64\nknobs: {dropout: [0.1, 1.5]}\n",
     "knobs.dropout.end: must be < 1 (received 1.5)"),
    ("epochs: 10\nstages: 0\nimage_size: 64\n", "stages: must be >= 1 (received 0)"),
    ("epochs: 3\nstages: 5\nimage_size: 64\n", "stages: must be <= epochs=3 (received 5)"),
    ("epochs: 10\nstages: 2\nimage_size: {start: -1, end: 64}\n",
     "image_size.start: must be >= 1 (received -1)"),
    ("epochs: 10\nstages: 2\nimage_size: [64\n", "not valid YAML"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file, not YAML"),
    ("", "the file is empty"),
])
def test_validate_rejects_with_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      content: str | bytes, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, out, err = run(capsys, "validate", str(path))
    assert code == 2
    assert out == ""
    assert str(path) in err and needle in err
    assert "Traceback" not in err


def test_validate_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such file" in err


def test_bad_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["plot", "efficientnetv2-s"])  # -o is required
    assert info.value.code == 2
    assert "-o/--output" in capsys.readouterr().err


def test_plot_writes_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "s.png"
    code, text, _ = run(capsys, "plot", "efficientnetv2-s", "-o", str(out))
    assert code == 0 and str(out) in text
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_presets_lists_paper_and_automl(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "presets")
    assert code == 0 and "efficientnetv2-s\n" in out and "efficientnetv2-s-automl\n" in out


def test_console_script_installed() -> None:
    exe = Path(sys.executable).with_name("proglearn")
    assert exe.exists(), f"console script missing next to {sys.executable}"
    res = subprocess.run([str(exe), "validate", "efficientnetv2-s"], capture_output=True,
                         text=True, check=False)
    assert (res.returncode, res.stdout) == (0, "ok\n")
