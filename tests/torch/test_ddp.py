"""Two processes under torch.distributed (gloo, CPU), launched with torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from torch_support import EXPECTED, SCHEDULE


def test_two_ranks_share_every_stage_with_disjoint_samples_and_equal_batch_counts(tmp_path):
    schedule = tmp_path / "schedule.yaml"
    schedule.write_text(yaml.safe_dump(SCHEDULE))
    script = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(tmp_path), str(schedule)],
        capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    for epoch in range(6):
        r0, r1 = ranks[0][epoch], ranks[1][epoch]
        stage, size, batch, dropout, drop_path, magnitude, alpha = EXPECTED[epoch]
        # 40 samples -> 20 per rank, in the stage's batches (32 -> one batch of 20)
        expected_shapes = [[b, 3, size, size] for b in _split(20, batch)]
        for r in (r0, r1):
            assert r["stage"] == stage
            assert r["shapes"] == expected_shapes
            assert set(r["magnitudes"]) == {magnitude}
            assert r["model"][0] == dropout and r["model"][-1] == drop_path
            assert r["mixup"] == alpha
        assert r0["values"] == r1["values"]
        assert len(r0["shapes"]) == len(r1["shapes"])  # equal batch counts
        assert set(r0["indices"]).isdisjoint(r1["indices"])  # disjoint shards ...
        assert sorted(r0["indices"] + r1["indices"]) == list(range(40))  # ... covering all
    assert ranks[0][0]["indices"] != ranks[0][1]["indices"]  # reshuffled per epoch


def _split(n: int, batch: int) -> list[int]:
    return [batch] * (n // batch) + ([n % batch] if n % batch else [])


def test_split():
    assert _split(20, 32) == [20] and _split(20, 14) == [14, 6] and _split(20, 8) == [8, 8, 4]
