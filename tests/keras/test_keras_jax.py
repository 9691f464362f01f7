"""The same fit() scenarios on the jax backend, in a subprocess (the backend is fixed when
keras is first imported). jax compiles the train step once per input shape and per forced
retrace, so the scenarios are few and tiny (about 25 s on a busy 2-core machine)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                reason="jax is not installed")

DROPOUT = [0.0, 0.1, 0.2, 0.3]


@pytest.fixture(scope="module")
def jax_run():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    script = Path(__file__).with_name("scenarios.py")
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def test_runs_on_jax(jax_run):
    assert jax_run["backend"] == "jax"


def test_jax_dropout_probe_sizes_and_history(jax_run):
    out = jax_run["ramp"]
    assert out["rates"] == DROPOUT
    h = out["history"]
    assert h["stage"] == [0, 1, 2, 3]
    assert h["image_size"] == [8, 10, 12, 14]
    assert h["batch_size"] == [24, 15, 10, 8]
    assert h["dropout"] == DROPOUT
    assert out["steps"] == {"0": 5, "1": 8, "2": 12, "3": 15}  # 120 images / batch
    # under jit the Lambda runs once per trace: one trace per stage, at that stage's shape
    assert out["shapes"] == {"0": [[24, 8, 8, 4]], "1": [[15, 10, 10, 4]],
                             "2": [[10, 12, 12, 4]], "3": [[8, 14, 14, 4]]}
    assert out["ran_out_warnings"] == 0


def test_jax_retrace_makes_a_rate_change_take_effect(jax_run):
    # same shape every epoch: only the forced retrace can bring the new rate into the step
    assert jax_run["rate_only"]["rates"] == [0.1, 0.2, 0.3]
    assert jax_run["rate_only"]["retraces"] == 3
    # negative control, retrace=False: the compiled step keeps the first epoch's rate
    assert jax_run["stale"]["rates"] == [0.1, 0.1, 0.1]
    assert jax_run["stale"]["history"]["dropout"] == [0.1, 0.2, 0.3]


def test_jax_initial_epoch_resumes_in_its_stage(jax_run):
    out = jax_run["resume"]
    assert out["epochs"] == [2, 3]
    assert out["rates"] == [0.2, 0.3]
    assert out["history"]["stage"] == [2, 3]
    assert out["history"]["image_size"] == [12, 14]
    assert out["steps"] == {"2": 12, "3": 15}
