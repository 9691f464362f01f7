"""strategy="ddp" with 2 CPU processes (gloo): the same stage switch on both ranks, disjoint
samples, no deadlock; with a constant and with a per-stage batch size. Lightning's DDP on CPU
must start from a script, so this test runs one (both trainings in one launch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "ddp_script.py"


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    done = subprocess.run([sys.executable, str(SCRIPT), str(out)], env=env,
                          capture_output=True, text=True, timeout=150)  # a deadlock fails here
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.parametrize(("run", "batches"), [
    ("constant", {0: 2, 1: 2, 2: 2, 3: 2}),
    ("pixels", {0: 4, 1: 4, 2: 2, 3: 2}),
])
def test_two_process_ddp(ddp_runs, run, batches):
    ranks = [json.loads((ddp_runs / f"{run}-rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        # Lightning re-instantiated the zero-rebuild batch sampler around its own sampler.
        assert rank["sampler"] == "DistributedSampler" and rank["shuffle"]
        seen = {}
        for r in rank["records"]:
            row = (r["size"], r["dropout"], r["pixel"], r["batch"])
            assert seen.setdefault(r["epoch"], row) == row
        assert seen == {0: (8, 0.1, 2.0, batches[0]), 1: (8, 0.1, 2.0, batches[1]),
                        2: (12, 0.3, 6.0, batches[2]), 3: (12, 0.3, 6.0, batches[3])}
    for epoch in range(4):
        idx = [sorted(i for r in rank["records"] if r["epoch"] == epoch for i in r["idx"])
               for rank in ranks]
        assert len(idx[0]) == len(idx[1]) == 8
        assert not set(idx[0]) & set(idx[1])  # disjoint
        assert sorted(idx[0] + idx[1]) == list(range(16))  # and together the whole dataset
