"""The shared training loop (train_one_epoch, evaluate) and the example script, on tiny data."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from timm.data import Mixup
from torch.utils.data import DataLoader

from proglearn.data import FASHION_MNIST_DIR
from proglearn.integrations.torch.datasets import SyntheticImages
from proglearn.integrations.torch.train import evaluate, train_one_epoch
from proglearn.integrations.torch.transforms import eval_transform

ROOT = Path(__file__).resolve().parents[2]


def small_model(channels: int = 1, classes: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(channels * 8 * 8, classes))


def synthetic_loader(n: int, batch_size: int, seed: int = 3) -> DataLoader:
    data = SyntheticImages(n, 4, 8, channels=1, seed=seed,
                           transform=eval_transform(8, in_chans=1, mean=(0.5,), std=(0.25,)))
    return DataLoader(data, batch_size=batch_size, shuffle=False)


def test_train_one_epoch_learns_and_reports_counts():
    torch.manual_seed(0)
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = synthetic_loader(90, batch_size=16)  # 5 full batches and one of 10
    before = evaluate(model, loader)
    for _ in range(3):
        out = train_one_epoch(model, loader, opt)
    after = evaluate(model, loader)
    assert (out["samples"], out["steps"]) == (90, 6)
    assert set(out) == {"loss", "top1", "samples", "steps", "seconds", "images_per_s"}
    assert after["samples"] == 90 and after["loss"] < before["loss"] / 2
    assert after["top1"] > 95.0 and before["top1"] < 60.0
    assert model.training is False  # evaluate leaves the model in eval mode


def test_evaluate_counts_exactly():
    class Fixed(torch.nn.Module):  # always predicts class 1
        def forward(self, x):
            return torch.tensor([[0.0, 9.0, 0.0, 0.0]]).repeat(len(x), 1)

    result = evaluate(Fixed(), synthetic_loader(10, batch_size=3))
    assert result["top1"] == pytest.approx(100.0 * 3 / 10)  # labels cycle 0,1,2,3: three 1s
    assert result["samples"] == 10


def test_mixup_soft_targets_odd_batches_and_max_steps():
    torch.manual_seed(0)
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mixup = Mixup(mixup_alpha=0.2, cutmix_alpha=0.0, label_smoothing=0.1, num_classes=4)
    loader = synthetic_loader(45, batch_size=15)  # odd batches lose their last sample
    out = train_one_epoch(model, loader, opt, mixup=mixup)
    assert (out["samples"], out["steps"]) == (42, 3)
    seen = []
    out = train_one_epoch(model, loader, opt, mixup=mixup, max_steps=2, on_step=seen.append)
    assert (out["steps"], seen) == (2, [0, 1])
    # mixing disabled (both alphas 0, as in a first stage): still soft, smoothed targets
    mixup.mixup_alpha, mixup.mixup_enabled = 0.0, False
    assert train_one_epoch(model, loader, opt, mixup=mixup)["loss"] > 0


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
                    reason="dataset-fashion-mnist not installed")
def test_example_runs_end_to_end(tmp_path, capsys):
    config = tmp_path / "two_stages.yaml"
    config.write_text("epochs: 2\nstages: 2\nimage_size: {start: 16, end: 24, eval: 24}\n"
                      "batch_size: {size: 16, policy: pixels}\n"
                      "knobs:\n  randaug_magnitude: [2, 6]\n  dropout: [0.0, 0.2]\n"
                      "  drop_path: [0.0, 0.1]\n  mixup_alpha: [0.0, 0.2]\n")
    spec = importlib.util.spec_from_file_location("torch_loop", ROOT / "examples/torch_loop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--config", str(config), "--train-subset", "64", "--test-subset", "32",
                          "--workers", "0"])
    lines = capsys.readouterr().out.splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 2
    assert epochs[0].startswith("epoch 1/2 stage 0 size 16 batch 36 dropout=0 drop_path=0 "
                                "randaug_magnitude=2 mixup_alpha=0 |")
    assert epochs[1].startswith("epoch 2/2 stage 1 size 24 batch 16 dropout=0.2 drop_path=0.1 "
                                "randaug_magnitude=6 mixup_alpha=0.2 |")
    assert "@24px" in epochs[1] and 0 <= result["test_top1"] <= 100


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists(),
                    reason="dataset-fashion-mnist not installed")
def test_example_runs_unchanged_under_torchrun(tmp_path):
    config = tmp_path / "two_stages.yaml"
    config.write_text("epochs: 2\nstages: 2\nimage_size: {start: 16, end: 24}\n"
                      "knobs:\n  dropout: [0.0, 0.2]\n  randaug_magnitude: [2, 6]\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "examples/torch_loop.py"), "--config", str(config), "--train-subset", "64",
           "--test-subset", "32", "--workers", "1", "--batch-size", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert "2 process(es)" in lines[0]
    epochs = [line for line in lines if line.startswith("epoch ")]  # printed by rank 0 only
    assert [line.split(" |")[0] for line in epochs] == [
        "epoch 1/2 stage 0 size 16 batch 8 dropout=0 randaug_magnitude=2",
        "epoch 2/2 stage 1 size 24 batch 8 dropout=0.2 randaug_magnitude=6",
    ]
