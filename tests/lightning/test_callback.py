"""ProgressiveLearning (Lightning) with real Trainers on the CPU, tiny model and data."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from proglearn.integrations.lightning import ProgressiveLearning
from proglearn.integrations.torch import KnobTargetError

HERE = Path(__file__).parent


def _load_tiny():
    name = "proglearn_lightning_tiny"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "tiny.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


tiny = _load_tiny()

#: What the 6-epoch schedule asks for, epoch by epoch: (image size, dropout, magnitude).
EXPECTED = {
    0: (8, 0.0, 2.0), 1: (8, 0.0, 2.0),
    2: (12, 0.15, 4.0), 3: (12, 0.15, 4.0),
    4: (16, 0.3, 6.0), 5: (16, 0.3, 6.0),
}


def test_persistent_workers_see_every_stage(tmp_path):
    module = tiny.TinyModule()
    data = tiny.TinyData(n=8, batch_size=4, num_workers=1, persistent_workers=True)
    trainer = tiny.trainer(tmp_path, callbacks=[ProgressiveLearning(tiny.SCHEDULE)])
    trainer.fit(module, datamodule=data)
    assert tiny.per_epoch(module.records, "size", "dropout", "pixel") == EXPECTED
    assert {r["batch"] for r in module.records} == {4}
    assert len(module.records) == 6 * 2


def test_csv_log_holds_the_scheduled_values_every_epoch(tmp_path):
    schedule = {**tiny.SCHEDULE, "batch_size": {"size": 4}}
    logger = CSVLogger(tmp_path, name="csv", version=0)
    trainer = tiny.trainer(tmp_path, logger=logger, limit_train_batches=1,
                           callbacks=[ProgressiveLearning(schedule)])
    trainer.fit(tiny.TinyModule(), datamodule=tiny.TinyData(batch_size=None))
    with open(tmp_path / "csv" / "version_0" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("proglearn/stage")]
    got = {int(r["epoch"]): (float(r["proglearn/stage"]), float(r["proglearn/image_size"]),
                             float(r["proglearn/batch_size"]), float(r["proglearn/dropout"]),
                             float(r["proglearn/randaug_magnitude"]),
                             float(r["proglearn/lr_scale"]))
           for r in rows}
    assert got == {e: (e // 2, size, 4.0, p, m, 1.0) for e, (size, p, m) in EXPECTED.items()}
    assert len(rows) == 6


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
@pytest.mark.parametrize("saved", ["train-epoch-end", "validation-end"])
@pytest.mark.parametrize("data", ["progressive", "rebuild"])
def test_resume_equals_an_uninterrupted_run(tmp_path, data, saved):
    """Resume after epoch 2 (epoch 3 continues stage 1) and after epoch 3 (epoch 4 enters
    stage 2): every later step sees what the uninterrupted run saw — image size, dropout,
    the stage's transform, batch size and even the sample order."""
    loader = dict(n=8, batch_size=4, data=data, val=saved == "validation-end",
                  num_workers=1, persistent_workers=True)
    kwargs = dict(limit_val_batches=int(loader["val"]),
                  reload_dataloaders_every_n_epochs=int(data == "rebuild"))
    # "validation-end": saved after validation, before Lightning counts the epoch as done, so
    # on resume it loads the train loader while its epoch counter still reads the old epoch.
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1,
                           save_on_train_epoch_end=saved == "train-epoch-end")
    whole = tiny.TinyModule()
    trainer = tiny.trainer(tmp_path, enable_checkpointing=True, **kwargs,
                           callbacks=[ProgressiveLearning(tiny.SCHEDULE, data=data), ckpt])
    trainer.fit(whole, datamodule=tiny.TinyData(**loader))
    assert tiny.per_epoch(whole.records, "size", "dropout", "pixel") == EXPECTED
    for resume_after in (2, 3):
        resumed = tiny.TinyModule()
        trainer = tiny.trainer(tmp_path / f"resumed{resume_after}", **kwargs,
                               callbacks=[ProgressiveLearning(tiny.SCHEDULE, data=data)])
        trainer.fit(resumed, datamodule=tiny.TinyData(**loader),
                    ckpt_path=tmp_path / "ckpt" / f"epoch={resume_after}.ckpt")
        assert resumed.records == [r for r in whole.records if r["epoch"] > resume_after]


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
def test_resuming_under_another_schedule_warns(tmp_path):
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{epoch}", save_top_k=-1)
    trainer = tiny.trainer(tmp_path, max_epochs=1, limit_train_batches=1,
                           enable_checkpointing=True, callbacks=[ProgressiveLearning(
                               {**tiny.SCHEDULE, "epochs": 1, "stages": 1}), ckpt])
    trainer.fit(tiny.TinyModule(), datamodule=tiny.TinyData())
    trainer = tiny.trainer(tmp_path, limit_train_batches=1,
                           callbacks=[ProgressiveLearning(tiny.SCHEDULE)])
    with pytest.warns(UserWarning, match="resuming under a different schedule"):
        trainer.fit(tiny.TinyModule(), datamodule=tiny.TinyData(),
                    ckpt_path=tmp_path / "ckpt" / "epoch=0.ckpt")


def test_stages_that_start_mid_epoch(tmp_path):
    """steps_per_epoch: 3 epochs of 4 steps, stage 1 starts at step 6, in the middle of epoch
    1; the loader switches size and the callback switches dropout at that very step."""
    schedule = {"epochs": 3, "stages": 2, "steps_per_epoch": 4, "image_size": [8, 16],
                "knobs": {"dropout": [0.0, 0.4]}}
    module = tiny.TinyModule()
    trainer = tiny.trainer(tmp_path, max_epochs=3, callbacks=[ProgressiveLearning(schedule)])
    trainer.fit(module, datamodule=tiny.TinyData(n=8, batch_size=2))
    assert [(r["size"], r["dropout"]) for r in module.records] == [(8, 0.0)] * 6 + [
        (16, 0.4)] * 6


class KnobModule(tiny.TinyModule):
    """label_smoothing read from an attribute (no loss module, no Mixup), and a custom knob."""

    def __init__(self):
        super().__init__()
        self.label_smoothing = 0.0
        self.my_knob = 0.0

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.records[-1].update(smoothing=self.label_smoothing, my_knob=self.my_knob)
        return loss


def test_knobs_on_module_attributes(tmp_path):
    schedule = {**tiny.SCHEDULE, "knobs": {"label_smoothing": [0.1, 0.2], "my_knob": [1, 3]}}
    module = KnobModule()
    trainer = tiny.trainer(tmp_path, limit_train_batches=1,
                           callbacks=[ProgressiveLearning(schedule)])
    trainer.fit(module, datamodule=tiny.TinyData())
    assert tiny.per_epoch(module.records, "smoothing", "my_knob") == {
        0: (0.1, 1.0), 1: (0.1, 1.0), 2: (0.15, 2.0), 3: (0.15, 2.0), 4: (0.2, 3.0),
        5: (0.2, 3.0)}


def test_resize_mode_wraps_an_untouchable_loader(tmp_path):
    from proglearn.integrations.torch import BatchResize

    schedule = {k: v for k, v in tiny.SCHEDULE.items() if k != "knobs"}

    class ResizeData(tiny.TinyData):
        def train_dataloader(self):
            plain = DataLoader(tiny.Blank(8), batch_size=4)
            return BatchResize(plain, ProgressiveLearning.of(self.trainer).schedule)

    module = tiny.TinyModule()
    trainer = tiny.trainer(tmp_path, callbacks=[ProgressiveLearning(schedule, data="resize")])
    trainer.fit(module, datamodule=ResizeData())
    assert tiny.per_epoch(module.records, "size") == {0: (8,), 1: (8,), 2: (12,), 3: (12,),
                                                      4: (16,), 5: (16,)}


def test_a_network_built_in_configure_model(tmp_path):
    class LateModule(tiny.TinyModule):
        def __init__(self):
            super().__init__()
            del self.net

        def configure_model(self):
            if not hasattr(self, "net"):
                self.net = tiny.TinyModule().net

    module = LateModule()
    trainer = tiny.trainer(tmp_path, limit_train_batches=1,
                           callbacks=[ProgressiveLearning(tiny.SCHEDULE)])
    trainer.fit(module, datamodule=tiny.TinyData())
    assert tiny.per_epoch(module.records, "dropout") == {e: (v[1],) for e, v in EXPECTED.items()}


# --- misconfigurations fail at set-up, before any training step ---------------------------------
class NoFactoryData(tiny.TinyData):
    make_transform = None  # type: ignore[assignment]


def _fails_before_training(tmp_path, error, match, *, callback, data=None, **kwargs):
    module = tiny.TinyModule()
    trainer = tiny.trainer(tmp_path, callbacks=[callback], **kwargs)
    with pytest.raises(error, match=match):
        trainer.fit(module, datamodule=data or tiny.TinyData())
    assert module.records == [] and trainer.global_step == 0


def test_schedule_longer_than_max_epochs(tmp_path):
    _fails_before_training(
        tmp_path, ValueError, r"schedule\.epochs: the schedule runs 6 epochs but "
        r"Trainer\(max_epochs=4\) stops after 4.*received epochs=6, max_epochs=4",
        callback=ProgressiveLearning(tiny.SCHEDULE), max_epochs=4)


def test_zero_rebuild_without_a_transform_factory(tmp_path):
    _fails_before_training(
        tmp_path, ValueError, r"make_transform: data='progressive' \(zero-rebuild\).*image size "
        r"8 to 16.*received make_transform=None; searched the callback and "
        r"NoFactoryData\.make_transform and TinyModule\.make_transform",
        callback=ProgressiveLearning(tiny.SCHEDULE), data=NoFactoryData())


@pytest.mark.parametrize("knob", ["drop_path", "my_knob"])
def test_a_knob_with_no_target(tmp_path, knob):
    schedule = {**tiny.SCHEDULE, "knobs": {**tiny.SCHEDULE["knobs"], knob: [0.0, 0.2]}}
    _fails_before_training(
        tmp_path, KnobTargetError, rf"knob '{knob}' found no target.*LightningModule TinyModule",
        callback=ProgressiveLearning(schedule))


def test_rebuild_without_reloading_the_loader(tmp_path):
    _fails_before_training(
        tmp_path, ValueError, r"reload_dataloaders_every_n_epochs: data='rebuild' needs "
        r".*received reload_dataloaders_every_n_epochs=0",
        callback=ProgressiveLearning(tiny.SCHEDULE, data="rebuild"),
        data=tiny.TinyData(data="rebuild"))


def test_a_changing_batch_size_without_reloading_the_loader(tmp_path):
    schedule = {**tiny.SCHEDULE, "batch_size": {"size": 2, "policy": "pixels"}}
    _fails_before_training(
        tmp_path, ValueError, r"the batch size changes between stages \(\[2, 3, 8\]\).*"
        r"received reload_dataloaders_every_n_epochs=0",
        callback=ProgressiveLearning(schedule), data=tiny.TinyData(batch_size=None))


def test_a_loader_the_mode_cannot_drive(tmp_path):
    class PlainData(tiny.TinyData):
        def train_dataloader(self):
            return DataLoader(tiny.Blank(8), batch_size=4)

    _fails_before_training(
        tmp_path, TypeError, r"data='progressive' expects the zero-rebuild loader \(received "
        r"DataLoader\(batch_sampler=BatchSampler\)\)",
        callback=ProgressiveLearning(tiny.SCHEDULE), data=PlainData())


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"data": "zero"}, ValueError, r"data: must be one of 'progressive', 'rebuild', 'resize', "
                                   r"'manual' \(received 'zero'\)"),
    ({"make_transform": 3}, TypeError, r"make_transform: must be callable .*\(received 3\)"),
    ({"dropout_pattern": "("}, ValueError, r"dropout_pattern: must be a regular expression "
                                           r"\(received '\('"),
    ({"appliers": {"x": 1}}, TypeError, r"appliers: must map knob names to callables"),
    ({"log": "yes"}, TypeError, r"log: must be True or False \(received 'yes'\)"),
])
def test_arguments_are_checked_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        ProgressiveLearning(tiny.SCHEDULE, **kwargs)


def test_a_bad_schedule_is_a_schedule_error():
    from proglearn import ScheduleError

    with pytest.raises(ScheduleError, match=r"knobs\.dropout\.end: must be < 1 \(received 1\.5\)"):
        ProgressiveLearning({**tiny.SCHEDULE, "knobs": {"dropout": [0.1, 1.5]}})
