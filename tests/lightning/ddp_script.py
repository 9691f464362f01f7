"""Two CPU processes (gloo) train the tiny module with ``strategy="ddp"``, twice: with a
constant batch size, and with a batch size that changes per stage (reloading the loader every
epoch). Each rank writes what its training steps saw to ``<out>/<run>-rank<r>.json``. Run by
test_ddp.py in a subprocess: Lightning starts the second rank by running this script again,
hence the main guard.

    python tests/lightning/ddp_script.py OUT_DIR
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import tiny  # this script's folder is on sys.path
import torch

from proglearn.integrations.lightning import ProgressiveLearning

#: 4 epochs in 2 stages: sizes 8 then 12, dropout 0.1 then 0.3, magnitude 2 then 6.
SCHEDULE = {"epochs": 4, "stages": 2, "image_size": {"start": 8, "end": 12},
            "knobs": {"dropout": [0.1, 0.3], "randaug_magnitude": [2, 6]}}
#: The same with 4 images per batch at 8 px and 2 at 12 px (the "pixels" policy).
PIXELS = {**SCHEDULE, "batch_size": {"size": 2, "policy": "pixels"}}


def run(out: Path, name: str, schedule: dict, batch_size: int | None, reload: int) -> None:
    module = tiny.TinyModule()
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=4, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, limit_val_batches=0, reload_dataloaders_every_n_epochs=reload,
        callbacks=[ProgressiveLearning(schedule)])
    trainer.fit(module, datamodule=tiny.TinyData(n=16, batch_size=batch_size))
    sampler = trainer.train_dataloader.batch_sampler.sampler
    (out / f"{name}-rank{trainer.global_rank}.json").write_text(json.dumps(
        {"records": module.records, "sampler": type(sampler).__name__,
         "shuffle": sampler.shuffle}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    run(out, "constant", SCHEDULE, batch_size=2, reload=0)
    run(out, "pixels", PIXELS, batch_size=None, reload=1)
