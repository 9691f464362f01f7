"""One rank of the 2-process test (tests/torch/test_ddp.py), launched by torchrun (gloo, CPU).

Usage: ``torchrun --nproc_per_node 2 ddp_worker.py OUT_DIR SCHEDULE_YAML``. Each rank trains
TinyNet for the 6 epochs of the schedule on a zero-rebuild loader (one persistent worker) under
DistributedDataParallel and writes what it saw, per epoch, to ``OUT_DIR/rank<k>.json``: stage,
batch shapes, sample indices, values in effect.
"""

import json
import sys

import torch
import torch.distributed as dist
from timm.data import Mixup
from torch_support import Probe, TinyImages, TinyNet, model_values

from proglearn.integrations.torch import ProgressiveLearning, progressive_loader


def main(out: str, schedule: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = TinyNet()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    mixup = Mixup(mixup_alpha=1.0, label_smoothing=0.0, num_classes=4)
    loader = progressive_loader(TinyImages(), schedule, Probe, num_workers=1,
                                persistent_workers=True, seed=5)  # distributed: auto
    pl = ProgressiveLearning(schedule, ddp, mixup=mixup, loader=loader)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    epochs = []
    for epoch in range(6):
        stage = pl.on_epoch_start(epoch)
        seen = {"stage": stage.index, "values": pl.values, "model": model_values(model),
                "mixup": mixup.mixup_alpha, "shapes": [], "indices": [], "magnitudes": []}
        for (images, magnitude, _), index in loader:
            seen["shapes"].append(list(images.shape))
            seen["indices"] += index.tolist()
            seen["magnitudes"] += magnitude.tolist()
            loss = torch.nn.functional.cross_entropy(ddp(images), index % 4)
            opt.zero_grad()
            loss.backward()  # DDP all-reduces here: a rank with fewer batches would hang
            opt.step()
        epochs.append(seen)
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump(epochs, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
