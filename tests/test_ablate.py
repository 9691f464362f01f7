"""The ablation runner: config validation, results, JSON, resume, table, plot, command line.

Most tests use a fake trainer (exact, instant numbers); ``test_real_training_*`` train a tiny
model on synthetic data under every mode through the PyTorch trainer.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from proglearn import values_at_epoch
from proglearn.ablate import (
    MODES,
    AblationConfigError,
    EpochRecord,
    RunJob,
    RunReporter,
    RunResult,
    TrainOutput,
    add_arguments,
    load_config,
    main,
    run_ablation,
)

SCHEDULE = {
    "epochs": 4, "stages": 2, "image_size": {"start": 16, "end": 32, "eval": 32},
    "knobs": {"dropout": [0.0, 0.2], "randaug_magnitude": [1, 5]},
}
CONFIG = {
    "model": "tiny",
    "data": {"name": "synthetic", "train_subset": 64, "eval_subset": 32, "num_classes": 3,
             "size": 32},
    "schedule": SCHEDULE,
    "batch_size": 16,
}


def fake_trainer(job: RunJob, reporter: RunReporter) -> TrainOutput:
    """Time proportional to pixels; accuracy that depends on mode and seed; no framework."""
    history, wall = [], 0.0
    reporter.start(job.schedule.epochs)
    for epoch in range(job.schedule.epochs):
        st = values_at_epoch(job.schedule, epoch)
        t = 64 * st.image_size**2 * 1e-6
        wall += t
        top1 = 50.0 + 10 * epoch + MODES.index(job.mode) + job.seed
        rec = EpochRecord(epoch=epoch, stage=st.index, image_size=st.image_size, batch_size=16,
                          values=dict(st.values), lr=0.1, images=64, train_loss=1.0 / (epoch + 1),
                          train_time_s=t, wall_clock_s=wall, eval_top1=top1, eval_loss=0.5,
                          eval_time_s=0.01)
        reporter.advance(1, loss=rec.train_loss)
        reporter.epoch_end(rec)
        history.append(rec)
    return TrainOutput(history=history, num_params=123, device="fake")


class CountingTrainer:
    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on

    def __call__(self, job: RunJob, reporter: RunReporter) -> TrainOutput:
        key = f"{job.mode}-seed{job.seed}"
        if key == self.fail_on:
            raise KeyboardInterrupt
        self.calls.append(key)
        return fake_trainer(job, reporter)


# --- config ---------------------------------------------------------------------------------
def test_config_defaults_and_shorthands() -> None:
    cfg = load_config(CONFIG)
    assert cfg.model.name == "tiny" and cfg.model.kwargs == {}
    assert cfg.data.name == "synthetic" and cfg.data.in_chans == 3
    assert cfg.modes == ("fixed", "resize_only", "adaptive", "random")
    assert cfg.seeds == (0,)
    assert cfg.default_batch_size == 16
    assert load_config({**CONFIG, "seeds": 3}).seeds == (0, 1, 2)
    assert load_config({**CONFIG, "seeds": [4, 7]}).seeds == (4, 7)
    assert load_config({**CONFIG, "data": "fashion-mnist"}).data.in_chans == 1
    s = cfg.schedule_for("random", 5)
    assert (s.mode, s.seed, s.epochs) == ("random", 5, 4)
    assert load_config({**CONFIG, "epochs": 6}).schedule_for("fixed", 0).epochs == 6


def test_config_schedule_from_preset_and_relative_file(tmp_path: Path) -> None:
    preset = load_config({**CONFIG, "schedule": "efficientnetv2-s", "epochs": 8})
    assert (preset.schedule.epochs, preset.schedule.batch_size.size) == (350, 4096)
    assert preset.base_schedule.epochs == 8
    assert preset.base_schedule.batch_size == preset.schedule.batch_size.model_copy(
        update={"size": 16})
    (tmp_path / "sched.yaml").write_text(json.dumps(SCHEDULE))
    (tmp_path / "abl.yaml").write_text(json.dumps({**CONFIG, "schedule": "sched.yaml"}))
    assert load_config(tmp_path / "abl.yaml").schedule.image_size.end == 32


@pytest.mark.parametrize(("change", "expected"), [
    ({"optimizer": {"lr": -1}}, "optimizer.lr: must be > 0 (received -1)"),
    ({"optimizer": {"lr": 0.1, "nesterow": True}}, "optimizer.nesterow: unknown field"),
    ({"modes": ["fixed", "fast"]}, "modes.1: must be one of"),
    ({"modes": ["fixed", "fixed"]},
     "modes: must not repeat an entry (received ['fixed', 'fixed'])"),
    ({"seeds": 0}, "seeds: a number of seeds must be >= 1 (received 0)"),
    ({"data": "/no/such/folder"}, "data.name: must be 'fashion-mnist', 'synthetic' or an "
                                  "existing ImageFolder directory (received '/no/such/folder')"),
    ({"schedule": {**SCHEDULE, "knobs": {"dropout": [0.1, 1.5]}}},
     "schedule.knobs.dropout.end: must be < 1 (received 1.5)"),
    ({"schedule": "no-such-preset"}, "schedule: unknown preset or missing file 'no-such-preset'"),
    ({"epochs": 1}, "epochs: does not fit the schedule"),
    ({"device": "gpu"}, "device: must be auto, cpu, cuda, cuda:N or mps (received 'gpu')"),
    ({"model": {"name": "tiny", "kwargs": {"num_classes": 5}}},
     "model.kwargs: 'num_classes' is set by the ablation runner"),
    ({"schedule": {**SCHEDULE, "batch_size": {"size": 8, "multiple": 8}}, "batch_size": 4},
     "batch_size: does not fit the schedule: "),
    ({"learning_rate": 0.1}, "learning_rate: unknown field (received 0.1)"),
])
def test_bad_config_names_field_and_value(change: dict, expected: str) -> None:
    with pytest.raises(AblationConfigError) as info:
        load_config({**CONFIG, **change})
    assert expected in str(info.value)
    assert str(info.value).startswith("invalid ablation config")


def test_bad_config_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny\ndata: synthetic\nschedule: {epochs: 2, stages: 3, "
                   "image_size: 16}\n")
    with pytest.raises(AblationConfigError) as info:
        load_config(bad)
    assert str(info.value) == (f"{bad}: invalid ablation config: schedule.stages: must be <= "
                               "epochs=2 (received 3)")
    assert info.value.errors == [("schedule.stages", "must be <= epochs=2 (received 3)")]
    bad.write_text("model: [tiny\n")
    with pytest.raises(AblationConfigError, match=r"bad.yaml: not valid YAML at line 2"):
        load_config(bad)
    with pytest.raises(AblationConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")


# --- the runner with a fake trainer ----------------------------------------------------------
def test_all_modes_run_and_summaries_are_exact(tmp_path: Path) -> None:
    result = run_ablation(CONFIG, seeds=2, out_dir=tmp_path, progress=False, trainer=fake_trainer)
    assert [r.key for r in result.runs] == [f"{m}-seed{s}" for s in (0, 1) for m in MODES]
    assert list(result.summaries) == list(MODES)
    fixed, adaptive = result.summaries["fixed"], result.summaries["adaptive"]
    # fixed trains 4 epochs at 32 px; adaptive 2 at 16 and 2 at 32: 1024*4 / (256*2 + 1024*2)
    assert fixed.speedup_vs_fixed is not None and fixed.speedup_vs_fixed.mean == 1.0
    assert adaptive.speedup_vs_fixed is not None
    assert adaptive.speedup_vs_fixed.mean == pytest.approx(4096 / 2560)
    assert adaptive.flop_speedup.mean == pytest.approx(4096 / 2560)
    assert fixed.flop_speedup.mean == 1.0
    # final top-1 = 50 + 30 + mode index + seed; seeds 0 and 1
    assert adaptive.final_top1.values == [82.0, 83.0]
    assert adaptive.final_top1.mean == 82.5
    assert adaptive.final_top1.std == pytest.approx(0.7071067811865476)
    run = result.run("resize_only", 1)
    assert (run.best_top1, run.best_epoch, run.images) == (82.0, 3, 256)
    assert run.images_per_s == pytest.approx(256 / run.wall_clock_s)
    # resize_only keeps regularization at its end values; adaptive ramps it
    assert [h.values["dropout"] for h in run.history] == [0.2, 0.2, 0.2, 0.2]
    assert [h.values["dropout"] for h in result.run("adaptive", 0).history] == [0, 0, 0.2, 0.2]


def test_json_has_every_field(tmp_path: Path) -> None:
    result = run_ablation(CONFIG, out_dir=tmp_path, progress=False, trainer=fake_trainer)
    data = json.loads((tmp_path / "ablation.json").read_text())
    assert set(data) == {"proglearn_version", "title", "fingerprint", "config", "modes", "seeds",
                         "host", "summaries", "runs", "skipped", "files"}
    assert set(data["summaries"]) == set(MODES)
    assert set(data["summaries"]["adaptive"]) == {
        "mode", "seeds", "final_top1", "best_top1", "wall_clock_s", "images_per_s",
        "flop_speedup", "speedup_vs_fixed"}
    assert set(data["summaries"]["adaptive"]["final_top1"]) == {"mean", "std", "values"}
    run = data["runs"][0]
    assert set(run) == {
        "mode", "seed", "epochs", "final_top1", "best_top1", "best_epoch", "wall_clock_s",
        "eval_time_s", "total_time_s", "images", "images_per_s", "flop_cost_ratio",
        "flop_speedup", "num_params", "device", "fingerprint", "started_at", "finished_at",
        "load_avg", "schedule", "plan", "history", "info"}
    assert set(run["history"][0]) == {
        "epoch", "stage", "image_size", "batch_size", "values", "lr", "images", "train_loss",
        "train_time_s", "wall_clock_s", "eval_top1", "eval_loss", "eval_time_s", "train_top1"}
    assert run["schedule"]["mode"] == run["mode"]
    assert data["config"]["model"] == {"name": "tiny", "kwargs": {}}
    # every run file is the same record as in ablation.json, and round-trips
    for r in data["runs"]:
        saved = json.loads((tmp_path / "runs" / f"{r['mode']}-seed{r['seed']}.json").read_text())
        assert saved == r
        assert RunResult.from_dict(saved) == result.run(r["mode"], r["seed"])
    assert (tmp_path / "ablation.png").stat().st_size > 10_000


def test_resume_skips_finished_runs(tmp_path: Path) -> None:
    first = CountingTrainer(fail_on="adaptive-seed0")
    with pytest.raises(KeyboardInterrupt):
        run_ablation(CONFIG, out_dir=tmp_path, progress=False, trainer=first)
    assert first.calls == ["fixed-seed0", "resize_only-seed0"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "fixed-seed0.json", "resize_only-seed0.json"]
    before = (tmp_path / "runs" / "fixed-seed0.json").read_text()

    second = CountingTrainer()
    result = run_ablation(CONFIG, out_dir=tmp_path, progress=False, trainer=second)
    assert second.calls == ["adaptive-seed0", "random-seed0"]
    assert result.skipped == ["fixed-seed0", "resize_only-seed0"]
    assert [r.key for r in result.runs] == [f"{m}-seed0" for m in MODES]
    assert (tmp_path / "runs" / "fixed-seed0.json").read_text() == before

    # more seeds later: only the new seed trains
    third = CountingTrainer()
    result = run_ablation(CONFIG, seeds=2, out_dir=tmp_path, progress=False, trainer=third)
    assert third.calls == [f"{m}-seed1" for m in MODES]
    assert len(result.runs) == 8

    # --no-resume retrains everything
    fourth = CountingTrainer()
    run_ablation(CONFIG, out_dir=tmp_path, progress=False, trainer=fourth, resume=False,
                 modes=["fixed"])
    assert fourth.calls == ["fixed-seed0"]


def test_resume_refuses_runs_of_another_config(tmp_path: Path) -> None:
    run_ablation(CONFIG, out_dir=tmp_path, progress=False, trainer=fake_trainer, modes=["fixed"])
    other = {**CONFIG, "optimizer": {"lr": 0.2}}
    with pytest.raises(AblationConfigError, match="was made with a different config"):
        run_ablation(other, out_dir=tmp_path, progress=False, trainer=fake_trainer)


def test_no_out_dir_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_ablation(CONFIG, progress=False, trainer=fake_trainer, modes=["fixed", "random"])
    assert list(result.summaries) == ["fixed", "random"]
    assert list(tmp_path.iterdir()) == []


def test_table_lists_every_mode(tmp_path: Path) -> None:
    from rich.console import Console

    result = run_ablation(CONFIG, seeds=2, progress=False, trainer=fake_trainer)
    console = Console(record=True, width=200)
    console.print(result.table())
    text = console.export_text()
    for mode in MODES:
        assert mode in text
    assert "82.5±0.7" in text  # adaptive final top-1 over 2 seeds
    assert "1.60±0.00×" in text  # adaptive speedup vs fixed: 4096 / 2560


# --- command line ----------------------------------------------------------------------------
def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_bad_config_exits_2_with_message(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(json.dumps({**CONFIG, "optimizer": {"lr": "fast"}}))
    assert main(_args(str(bad), "--out", str(tmp_path / "out"))) == 2
    err = capsys.readouterr().err
    assert "optimizer.lr: must be a number (received 'fast')" in " ".join(err.split())
    assert not (tmp_path / "out").exists()


def test_cli_args() -> None:
    args = _args("c.yaml", "--seeds", "3", "--modes", "fixed,adaptive", "--no-resume")
    assert (args.config, args.seeds, args.modes, args.resume) == (
        "c.yaml", 3, "fixed,adaptive", False)


def test_import_stays_framework_free() -> None:
    code = ("import sys, proglearn, proglearn.ablate, proglearn.ablate_report, "
            "proglearn.ablate_torch; "
            "bad = [m for m in ('torch', 'timm', 'keras', 'jax', 'lightning') if m in sys.modules];"
            " print(bad); sys.exit(bool(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# --- the PyTorch trainer, for real, on tiny synthetic data -----------------------------------
REAL = {
    "name": "tiny-real",
    "model": "tiny",
    "data": {"name": "synthetic", "train_subset": 48, "eval_subset": 16, "num_classes": 3,
             "size": 16},
    "schedule": {"epochs": 2, "stages": 2, "image_size": {"start": 8, "end": 16},
                 "knobs": {"dropout": [0.0, 0.2], "randaug_magnitude": [1, 5],
                           "mixup_alpha": [0.0, 0.2], "label_smoothing": [0.0, 0.1]}},
    "batch_size": 16,
    "eval_batch_size": 16,
    "threads": 1,
    "device": "cpu",
}


def test_real_training_all_modes_via_cli(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    config, out = tmp_path / "real.yaml", tmp_path / "out"
    config.write_text(json.dumps(REAL))
    assert main(_args(str(config), "--out", str(out), "--quiet")) == 0
    printed = capsys.readouterr().out
    for mode in MODES:
        assert mode in printed
    assert f"Plot:    {out / 'ablation.png'}" in printed

    data = json.loads((out / "ablation.json").read_text())
    runs = {r["mode"]: r for r in data["runs"]}
    assert list(runs) == list(MODES)
    sizes = {m: [h["image_size"] for h in r["history"]] for m, r in runs.items()}
    assert sizes["fixed"] == [16, 16]
    assert sizes["resize_only"] == sizes["adaptive"] == [8, 16]
    dropout = {m: [h["values"]["dropout"] for h in r["history"]] for m, r in runs.items()}
    assert dropout["adaptive"] == [0.0, 0.2]
    assert dropout["resize_only"] == dropout["fixed"] == [0.2, 0.2]
    for r in runs.values():
        assert r["images"] == 96 and r["device"] == "cpu" and r["num_params"] > 100_000
        assert all(h["eval_top1"] is not None and 0 <= h["eval_top1"] <= 100
                   for h in r["history"])
        assert r["wall_clock_s"] == pytest.approx(sum(h["train_time_s"] for h in r["history"]))
        assert r["images_per_s"] == pytest.approx(96 / r["wall_clock_s"])
    assert runs["adaptive"]["flop_speedup"] == pytest.approx(2 / (0.25 + 1))

    # Rerun: every run is finished, nothing trains, the command says so.
    assert main(_args(str(config), "--out", str(out))) == 0
    err = capsys.readouterr().err
    assert all(f"{m}-seed0: finished earlier" in " ".join(err.split()) for m in MODES)


def test_same_seed_same_run() -> None:
    """Two runs of one (mode, seed) give the same numbers (the seed fixes weights and data)."""
    pytest.importorskip("torch")
    cfg = {**REAL, "modes": ["adaptive"]}
    a = run_ablation(cfg, progress=False).run("adaptive", 0)
    b = run_ablation(cfg, progress=False).run("adaptive", 0)
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]
    assert a.final_top1 == b.final_top1


def test_timm_model_gets_drop_path_modules() -> None:
    pytest.importorskip("timm")
    from timm.layers import DropPath

    from proglearn.ablate_torch import build_model

    cfg = load_config({**REAL, "model": {"name": "efficientnet_b0", "kwargs": {"drop_rate": 0.1}},
                       "schedule": {**REAL["schedule"], "knobs": {"drop_path": [0.0, 0.2]}}})
    model = build_model(cfg, 3, cfg.base_schedule)
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert rates and max(rates) <= 0.2 and model.num_classes == 3


def test_unknown_timm_model_is_a_config_error() -> None:
    pytest.importorskip("timm")
    with pytest.raises(AblationConfigError, match=r"model.name: must be a bundled EfficientNetV2 "
                                                  r"variant \(s, m, l, xl, b0, b1, b2, b3, tiny\)"
                                                  r" or a timm model name"):
        load_config({**REAL, "model": "resnet-9000"})


def test_learning_rate_warmup_then_cosine() -> None:
    from proglearn.ablate_torch import learning_rate

    cfg = load_config({**REAL, "epochs": 4,
                       "optimizer": {"lr": 0.4, "warmup_epochs": 1, "min_lr": 0.0}})
    got = [round(learning_rate(cfg, p), 6) for p in (0, 0.125, 0.25, 0.5, 0.625, 1.0)]
    # warmup over the first quarter, then cosine over the remaining three quarters
    assert got == [0.0, 0.2, 0.4, 0.3, 0.2, 0.0]
    assert learning_rate(cfg, 0.25, lr_scale=2.0) == pytest.approx(0.8)


# --- failures that surface only once training starts -----------------------------------------
def test_diverged_run_is_saved_as_strict_json_and_resumes(tmp_path: Path) -> None:
    def diverging(job: RunJob, reporter: RunReporter) -> TrainOutput:
        out = fake_trainer(job, reporter)
        last = out.history[-1]
        bad = EpochRecord(**{**last.__dict__, "train_loss": float("nan"),
                             "eval_loss": float("inf")})
        return TrainOutput(history=[*out.history[:-1], bad], num_params=123, device="fake")

    run_ablation(CONFIG, out_dir=tmp_path, progress=False, trainer=diverging, modes=["fixed"])
    (saved,) = (tmp_path / "runs").glob("*.json")
    text = saved.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text)  # strict JSON: no NaN tokens
    assert data["history"][-1]["train_loss"] is None
    again = run_ablation(CONFIG, out_dir=tmp_path, progress=False, trainer=diverging,
                         modes=["fixed"])
    assert len(again.skipped) == 1
    import math

    assert math.isnan(again.runs[0].history[-1].train_loss)


def test_cli_missing_data_exits_2_with_instructions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "fm.yaml"
    cfg.write_text(json.dumps({**REAL, "data": {"name": "fashion-mnist", "root": str(tmp_path)}}))
    assert main(_args(str(cfg), "--out", str(tmp_path / "out"), "--quiet")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "apt-get install dataset-fashion-mnist" in err and "Traceback" not in err


def test_cli_knob_without_target_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from proglearn import ablate
    from proglearn.integrations.torch import KnobTargetError

    def no_target(*args: object, **kwargs: object) -> None:
        raise KnobTargetError("knob 'dropout' found no target: searched model=Net")

    monkeypatch.setattr(ablate, "run_ablation", no_target)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(CONFIG))
    assert main(_args(str(cfg), "--out", str(tmp_path / "out"))) == 2
    assert "knob 'dropout' found no target" in capsys.readouterr().err


def test_cli_other_errors_are_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from proglearn import ablate

    def bug(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug, not bad input")

    monkeypatch.setattr(ablate, "run_ablation", bug)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(CONFIG))
    with pytest.raises(ZeroDivisionError):
        main(_args(str(cfg), "--out", str(tmp_path / "out")))
