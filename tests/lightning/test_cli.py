"""The LightningCLI config of the example trains 2 epochs with the callback from YAML."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[2]
CONFIG = "examples/configs/lightning_cli.yaml"


def _example():
    name = "proglearn_lightning_example"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, ROOT / "examples" / "lightning_fashion_mnist.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared CPU: threads only contend
    yield
    torch.set_num_threads(threads)


def test_lightning_cli_config_trains_two_epochs(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(ROOT)  # the config names its schedule relative to the repository root
    cli = _example().cli_main([
        "fit", "--config", CONFIG,
        # the config as is, made tiny: few images and batches, no workers, output in tmp_path
        "--data.train_subset=32", "--data.test_subset=16", "--data.batch_size=8",
        "--data.num_workers=0", "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    ])
    from proglearn.integrations.lightning import ProgressiveLearning

    callback = ProgressiveLearning.of(cli.trainer)
    assert callback.schedule.epochs == 2 and cli.trainer.current_epoch == 2
    with open(Path(cli.trainer.logger.log_dir) / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("proglearn/stage")]
    assert [(int(r["epoch"]), float(r["proglearn/stage"]), float(r["proglearn/image_size"]),
             float(r["proglearn/dropout"]), float(r["proglearn/mixup_alpha"])) for r in rows] == [
        (0, 0.0, 32.0, 0.05, 0.0), (1, 1.0, 48.0, 0.2, 0.2)]
