"""The three data modes: zero-rebuild sampler/dataset, rebuild, batch resize."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler
from torch_support import BATCHES, EXPECTED, SCHEDULE, N, Probe, TinyImages
from torchvision import transforms as T

from proglearn.integrations.torch import (
    BatchResize,
    RebuildLoader,
    SeededRandomSampler,
    StageBatchSampler,
    StageDataset,
    progressive_loader,
    resize_batch,
    set_loader_epoch,
)


def sizes(sampler, epoch):
    sampler.set_epoch(epoch)
    return [len(b) for b in sampler]


def test_batch_sampler_plan_whole_table():
    bs = StageBatchSampler(SequentialSampler(range(N)), SCHEDULE)
    for epoch in range(8):  # epochs past the end stay in the last stage
        stage = EXPECTED[min(epoch, 5)][0]
        assert sizes(bs, epoch) == BATCHES[stage]
        assert len(bs) == len(BATCHES[stage])
        assert {s for batch in bs for _, s in batch} == {stage}
    bs.set_epoch(2)
    assert [i for batch in bs for i, _ in batch] == list(range(N))  # every index once, in order
    assert bs.stage.image_size == 24 and bs.stage_index == 1


def test_batch_sampler_drop_last_and_fixed_batch_size():
    spec = {k: v for k, v in SCHEDULE.items() if k != "batch_size"}
    bs = StageBatchSampler(range(N), spec, batch_size=16, drop_last=True)
    assert sizes(bs, 0) == sizes(bs, 5) == [16, 16]
    bs = StageBatchSampler(range(N), spec, batch_size=16)
    assert sizes(bs, 0) == [16, 16, 8]
    with pytest.raises(ValueError, match=r"batch_size: required .*\(received None\)"):
        StageBatchSampler(range(N), spec)
    with pytest.raises(ValueError, match=r"batch_size: must be an integer >= 1 \(received 0\)"):
        StageBatchSampler(range(N), spec, batch_size=0)


def test_batch_sampler_step_based_stages_change_mid_epoch():
    # 6 epochs x 3 nominal steps = 18 steps, stages start at steps 0, 6, 12
    spec = {**SCHEDULE, "steps_per_epoch": 3, "batch_size": 16}
    bs = StageBatchSampler(range(N), spec)
    plans = [bs.plan(e) for e in range(6)]
    assert plans == [
        [(0, 16), (0, 16), (0, 8)],
        [(0, 16), (0, 16), (0, 8)],
        [(1, 16), (1, 16), (1, 8)],
        [(1, 16), (1, 16), (1, 8)],
        [(2, 16), (2, 16), (2, 8)],
        [(2, 16), (2, 16), (2, 8)],
    ]
    spec = {**SCHEDULE, "steps_per_epoch": 4, "batch_size": 10}  # 24 steps: stages at 0, 8, 16
    bs = StageBatchSampler(range(N), spec)
    assert [s for s, _ in bs.plan(1)] == [0, 0, 0, 0]
    assert [s for s, _ in bs.plan(2)] == [1, 1, 1, 1]
    spec = {**SCHEDULE, "steps_per_epoch": 5, "batch_size": 8}  # 30 steps: stages at 0, 10, 20
    bs = StageBatchSampler(range(N), spec)
    assert [s for s, _ in bs.plan(1)] == [0, 0, 0, 0, 0]
    assert [s for s, _ in bs.plan(3)] == [1, 1, 1, 1, 1]


def test_order_is_a_pure_function_of_seed_and_epoch():
    def order(seed, epochs):
        bs = StageBatchSampler(SeededRandomSampler(range(N), seed=seed), SCHEDULE)
        out = []
        for e in epochs:
            bs.set_epoch(e)
            out.append([i for b in bs for i, _ in b])
        return out

    run = order(7, range(4))
    assert all(sorted(o) == list(range(N)) for o in run)
    assert len({tuple(o) for o in run}) == 4  # reshuffled every epoch
    assert order(7, [3]) == run[3:]  # a resumed run at epoch 3 sees the same order
    assert order(8, [0]) != run[:1]


def test_stage_dataset_builds_one_transform_per_stage_and_rejects_plain_indices():
    built = []

    def make(stage):
        built.append((stage.index, stage.image_size))
        return T.Compose([T.Resize(stage.image_size), T.ToTensor()])

    ds = StageDataset(TinyImages(), make, SCHEDULE)
    assert built == [(0, 16), (1, 24), (2, 32)]
    assert ds[(3, 2)][0].shape == (3, 32, 32) and ds[(3, 2)][1] == 3
    with pytest.raises(TypeError, match=r"\(index, stage\) pairs .*received 3"):
        ds[3]
    with pytest.raises(TypeError, match="make_transform: must be callable"):
        StageDataset(TinyImages(), None, SCHEDULE)


def test_progressive_loader_single_process_shapes():
    loader = progressive_loader(TinyImages(), SCHEDULE, Probe, seed=1)
    for epoch in (0, 2, 4):
        set_loader_epoch(loader, epoch)
        _, size, _, _, _, magnitude, _ = EXPECTED[epoch]
        shapes = [tuple(x.shape) for (x, m, _), _ in loader]
        assert shapes == [(b, 3, size, size) for b in BATCHES[epoch // 2]]
        assert len(loader) == len(BATCHES[epoch // 2])


def test_lightning_can_reinstantiate_the_batch_sampler_with_a_distributed_sampler():
    # what Lightning does around a `train_dataloader` hook, then when it injects its sampler
    from lightning.fabric.utilities.data import _replace_dunder_methods
    from lightning.pytorch.utilities.data import _update_dataloader

    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = progressive_loader(TinyImages(), SCHEDULE, Probe, seed=1)  # as in a hook
    ranks = []
    for rank in (0, 1):
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=rank, shuffle=True)
        new = _update_dataloader(loader, sampler)
        assert isinstance(new.batch_sampler, StageBatchSampler)
        assert new.batch_sampler.sampler is sampler
        assert new.batch_sampler.schedule == loader.batch_sampler.schedule
        set_loader_epoch(new, 4)
        ranks.append([i for b in new.batch_sampler for i, _ in b])
        assert len(new.batch_sampler) == 3  # 20 samples per rank in batches of 8
    assert set(ranks[0]).isdisjoint(ranks[1]) and len(ranks[0]) == len(ranks[1]) == 20


def test_rebuild_loader_rebuilds_only_when_the_stage_changes():
    calls = []

    def make_loader(stage):
        calls.append(stage.index)
        tf = T.Compose([T.Resize(stage.image_size), T.ToTensor()])
        data = [(tf(img), i) for img, i in TinyImages()]
        return DataLoader(data, batch_size=stage.batch_size,
                          sampler=DistributedSampler(data, num_replicas=1, rank=0, seed=2))

    loader = RebuildLoader(make_loader, SCHEDULE)
    firsts = []
    for epoch in range(6):
        loader.set_epoch(epoch)
        _, size, batch, *_ = EXPECTED[epoch]
        batches = list(loader)
        assert [tuple(x.shape) for x, _ in batches] == [
            (b, 3, size, size) for b in BATCHES[epoch // 2]]
        firsts.append(batches[0][1][:4].tolist())
        assert loader.stage.index == epoch // 2
    assert calls == [0, 1, 2] and loader.rebuilds == 3
    assert firsts[0] != firsts[1]  # set_epoch reached the rebuilt loader's sampler


def test_batch_resize_wraps_an_untouchable_loader():
    images = torch.rand(N, 3, 20, 20)
    untouchable = DataLoader(list(zip(images, range(N), strict=True)), batch_size=8)
    spec = {**SCHEDULE, "batch_size": 8}
    loader = BatchResize(untouchable, spec)
    for epoch in range(6):
        loader.set_epoch(epoch)
        size = EXPECTED[epoch][1]
        assert {tuple(x.shape) for x, _ in loader} == {(8, 3, size, size)}
    loader.set_stage(0)
    assert next(iter(loader))[0].shape[-1] == 16
    dicts = BatchResize([{"img": images[:4], "y": 0}], spec, image_key="img")
    assert next(iter(dicts))["img"].shape == (4, 3, 16, 16)
    with pytest.raises(ValueError, match=r"batch-resize mode cannot change the batch size"):
        BatchResize(untouchable, SCHEDULE)  # batch size 32 -> 14 -> 8


def test_resize_batch():
    x = torch.rand(2, 3, 40, 40)
    assert resize_batch(x, 40) is x
    expected = F.interpolate(x, size=(20, 20), mode="bilinear", antialias=True,
                             align_corners=False)
    assert torch.equal(resize_batch(x, 20), expected)  # antialias on when shrinking
    up = F.interpolate(x, size=(50, 60), mode="bilinear", antialias=False, align_corners=False)
    assert torch.equal(resize_batch(x, (50, 60)), up)
    assert torch.equal(resize_batch(x, 20, mode="nearest"),
                       F.interpolate(x, size=(20, 20), mode="nearest"))
    u8 = (x * 255).to(torch.uint8)
    out = resize_batch(u8, 20)
    assert out.dtype == torch.uint8
    assert torch.equal(out, F.interpolate(u8.float(), size=(20, 20), mode="bilinear",
                                          antialias=True).round().to(torch.uint8))
    with pytest.raises(ValueError, match=r"antialias: only supported .*received mode='nearest'"):
        resize_batch(x, 20, mode="nearest", antialias=True)
    with pytest.raises(ValueError, match=r"images: must be a tensor \[N, C, H, W\]"):
        resize_batch(x[0], 20)
    with pytest.raises(ValueError, match=r"size: must be .*received 0"):
        resize_batch(x, 0)
