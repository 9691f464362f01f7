"""ProgressiveLearning in a plain loop, with real DataLoaders (2 persistent workers)."""

from __future__ import annotations

import json

import pytest
import torch
from timm.data import Mixup
from timm.data.auto_augment import rand_augment_transform
from torch import nn
from torch_support import BATCHES, EXPECTED, SCHEDULE, Probe, TinyImages, TinyNet, model_values
from torchvision import transforms as T

import proglearn
from proglearn.integrations.torch import (
    BatchResize,
    KnobTargetError,
    ProgressiveLearning,
    apply_stage,
    progressive_loader,
)


def make_run(num_workers: int = 2):
    model = TinyNet()
    mixup = Mixup(mixup_alpha=1.0, label_smoothing=0.0, num_classes=4)
    loader = progressive_loader(TinyImages(), SCHEDULE, Probe, num_workers=num_workers,
                                persistent_workers=num_workers > 0, seed=3)
    return model, mixup, loader, ProgressiveLearning(SCHEDULE, model, mixup=mixup, loader=loader)


def run_epoch(pl, model, mixup, loader, epoch, opt=None):
    """One real epoch (forward, mixup, backward); returns everything observed."""
    stage = pl.on_epoch_start(epoch)
    dropout, *drop_path = model_values(model)
    seen = {"stage": stage.index, "values": pl.values, "dropout": dropout,
            "drop_path": drop_path, "mixup": [mixup.mixup_alpha, mixup.label_smoothing,
                                              mixup.mixup_enabled],
            "shapes": [], "magnitudes": set(), "pids": set(), "indices": []}
    opt = opt or torch.optim.SGD(model.parameters(), lr=0.01)
    for (images, magnitude, pid), index in loader:
        seen["shapes"].append(list(images.shape))
        seen["magnitudes"] |= set(magnitude.tolist())
        seen["pids"] |= set(pid.tolist())
        seen["indices"] += index.tolist()
        if len(images) % 2:  # timm Mixup (batch mode) needs an even batch
            images, index = images[:-1], index[:-1]
        x, y = mixup(images, index % 4)
        loss = torch.sum(-y * torch.log_softmax(model(x), dim=-1), dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return seen


def test_each_epoch_has_the_schedules_sizes_batches_and_values():
    model, mixup, loader, pl = make_run()
    pids = set()
    for epoch in range(6):
        seen = run_epoch(pl, model, mixup, loader, epoch)
        stage, size, batch, dropout, drop_path, magnitude, alpha = EXPECTED[epoch]
        assert seen["stage"] == stage
        assert seen["shapes"] == [[b, 3, size, size] for b in BATCHES[stage]]
        assert sorted(seen["indices"]) == list(range(40))  # every sample once
        assert seen["magnitudes"] == {magnitude}  # read inside the workers
        assert seen["dropout"] == pytest.approx(dropout)
        # DropPath built at 0, .05, .1 keeps its depth ratios 0, 1/2, 1
        assert seen["drop_path"] == pytest.approx([0.0, drop_path / 2, drop_path])
        assert seen["mixup"] == [pytest.approx(alpha), pytest.approx(0.1), alpha > 0]
        assert seen["values"] == {
            "stage": stage, "image_size": size, "batch_size": batch,
            "lr_scale": pytest.approx(batch / 8), "dropout": pytest.approx(dropout),
            "drop_path": pytest.approx(drop_path), "randaug_magnitude": pytest.approx(magnitude),
            "mixup_alpha": pytest.approx(alpha), "label_smoothing": pytest.approx(0.1)}
        pids |= seen["pids"]
    assert len(pids) == 2  # the same two persistent workers served all six epochs


def test_resume_from_state_dict_after_a_stage_boundary_matches_an_uninterrupted_run(tmp_path):
    def observed(seen):  # everything but the worker pids, which differ between runs
        return {k: v for k, v in seen.items() if k != "pids"}

    torch.manual_seed(0)
    model, mixup, loader, pl = make_run()
    whole = [observed(run_epoch(pl, model, mixup, loader, e)) for e in range(6)]

    torch.manual_seed(0)
    model, mixup, loader, pl = make_run()
    first = [observed(run_epoch(pl, model, mixup, loader, e)) for e in range(3)]  # 2 = stage 1
    ckpt = tmp_path / "ckpt.json"
    ckpt.write_text(json.dumps(pl.state_dict()))
    del model, mixup, loader, pl

    model, mixup, loader, pl = make_run()  # a fresh process would build everything anew
    assert model_values(model)[0] == 0.0
    pl.load_state_dict(json.loads(ckpt.read_text()))
    assert pl.stage.index == 1
    assert model_values(model) == pytest.approx([0.2, 0.0, 0.05, 0.1])  # re-applied at once
    assert mixup.mixup_alpha == pytest.approx(0.4)
    rest = [observed(run_epoch(pl, model, mixup, loader, e)) for e in range(3, 6)]
    assert first + rest == whole  # same stages, values, shapes and sample order


def test_values_are_applied_only_when_the_stage_changes():
    calls = []
    spec = {**SCHEDULE, "knobs": {"my_knob": [1.0, 3.0]}}
    pl = ProgressiveLearning(spec, appliers={"my_knob": calls.append})
    stages = [pl.on_epoch_start(e).index for e in range(6)]
    assert stages == [0, 0, 1, 1, 2, 2]
    assert calls == [1.0, 2.0, 3.0]


def test_on_step_follows_a_step_based_schedule():
    spec = {**SCHEDULE, "steps_per_epoch": 5, "knobs": {"dropout": [0.1, 0.3]}}
    model = TinyNet()
    pl = ProgressiveLearning(spec, model)  # 30 steps in 3 stages of 10
    got = [(pl.on_step(s).index, model.drop.p) for s in (0, 9, 10, 19, 20, 29)]
    assert got == [(0, 0.1), (0, 0.1), (1, pytest.approx(0.2)), (1, pytest.approx(0.2)),
                   (2, 0.3), (2, 0.3)]
    pl2 = ProgressiveLearning(spec, TinyNet())
    pl2.load_state_dict(pl.state_dict())
    assert pl2.stage.index == 2 and pl2.model.drop.p == 0.3


def test_scheduling_dropout_on_a_model_without_dropout_fails_at_set_up():
    spec = {**SCHEDULE, "knobs": {"dropout": [0.1, 0.3]}}
    with pytest.raises(KnobTargetError, match=r"'dropout'.*nn\.Dropout.*drop_rate"):
        ProgressiveLearning(spec, TinyNet(dropout=False))
    # dropout 0 in every stage asks for nothing: no target needed
    ProgressiveLearning({**SCHEDULE, "knobs": {"dropout": 0.0}}, TinyNet(dropout=False))


def test_every_missing_target_is_named_at_set_up():
    with pytest.raises(KnobTargetError) as err:
        ProgressiveLearning(SCHEDULE, TinyNet(dropout=False))  # no mixup, no transform, no loader
    msg = str(err.value)
    for knob in ("dropout", "randaug_magnitude", "mixup_alpha", "label_smoothing"):
        assert f"'{knob}'" in msg
    assert "'drop_path'" not in msg  # TinyNet has DropPath modules


def test_a_factory_that_ignores_randaug_is_caught_at_set_up():
    plain = lambda stage: T.Compose([T.Resize(stage.image_size), T.ToTensor()])  # noqa: E731
    loader = progressive_loader(TinyImages(), SCHEDULE, plain)
    with pytest.raises(KnobTargetError, match="make_transform built no"):
        ProgressiveLearning(SCHEDULE, TinyNet(), mixup=Mixup(num_classes=4), loader=loader)


def test_batch_resize_mode_schedules_randaug_on_the_transform():
    spec = {**SCHEDULE, "batch_size": 8}
    ra = rand_augment_transform("rand-m9-n2", {})
    transform = T.Compose([ra, T.Resize(20), T.ToTensor()])

    class Data(TinyImages):
        def __getitem__(self, i):
            return transform(super().__getitem__(i)[0]), i

    loader = BatchResize(torch.utils.data.DataLoader(Data(), batch_size=8), spec)
    pl = ProgressiveLearning(spec, TinyNet(), mixup=Mixup(num_classes=4), transform=transform,
                             loader=loader)
    for epoch in range(6):
        pl.on_epoch_start(epoch)
        _, size, _, _, _, magnitude, _ = EXPECTED[epoch]
        assert {op.magnitude for op in ra.ops} == {magnitude}
        assert {tuple(x.shape) for x, _ in loader} == {(8, 3, size, size)}
    # raising past timm's clip at 10 also raised each op's bound, so 15 is in effect
    assert all(op.magnitude_max >= 15 for op in ra.ops)

    persistent = torch.utils.data.DataLoader(Data(), batch_size=8, num_workers=1,
                                             persistent_workers=True)
    with pytest.raises(KnobTargetError, match="persistent"):
        ProgressiveLearning(spec, TinyNet(), mixup=Mixup(num_classes=4), transform=transform,
                            loader=BatchResize(persistent, spec))


def test_apply_stage_is_the_functional_form():
    model, mixup = TinyNet(), Mixup(num_classes=4)
    spec = proglearn.load_schedule({**SCHEDULE, "knobs": {
        k: v for k, v in SCHEDULE["knobs"].items() if k != "randaug_magnitude"}})
    counts = apply_stage(proglearn.values_at_epoch(spec, 4), model=model, mixup=mixup)
    assert counts == {"dropout": 1, "drop_path": 3, "mixup_alpha": 1, "label_smoothing": 1}
    assert model_values(model) == pytest.approx([0.3, 0.0, 0.1, 0.2])
    assert (mixup.mixup_alpha, mixup.label_smoothing) == (0.8, 0.1)


def test_schedule_can_be_a_preset_name():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    tf = rand_augment_transform("rand-m9-mmax20", {})
    pl = ProgressiveLearning("efficientnetv2-s", model, transform=tf)
    assert pl.on_epoch_start(0).image_size == 128 and model[1].p == 0.1
    assert pl.on_epoch_start(349).image_size == 300 and model[1].p == 0.3
    assert {op.magnitude for op in tf.ops} == {15}
