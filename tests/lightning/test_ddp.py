"""strategy="ddp" with 2 CPU processes (gloo): same stage switch on both ranks, disjoint
samples, no deadlock. Lightning's DDP on CPU must start from a script, so this runs one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent / "ddp_script.py"


def test_two_process_ddp(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=150)  # a deadlock fails here
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        # Lightning re-instantiated the zero-rebuild batch sampler around its own sampler.
        assert rank["sampler"] == "DistributedSampler" and rank["shuffle"]
        seen = {}
        for r in rank["records"]:
            assert seen.setdefault(r["epoch"], (r["size"], r["dropout"], r["pixel"])) == (
                r["size"], r["dropout"], r["pixel"])
        assert seen == {0: (8, 0.1, 2.0), 1: (8, 0.1, 2.0), 2: (12, 0.3, 6.0),
                        3: (12, 0.3, 6.0)}
    for epoch in range(4):
        idx = [sorted(i for r in rank["records"] if r["epoch"] == epoch for i in r["idx"])
               for rank in ranks]
        assert len(idx[0]) == len(idx[1]) == 8
        assert not set(idx[0]) & set(idx[1])  # disjoint
        assert sorted(idx[0] + idx[1]) == list(range(16))  # and together the whole dataset
