"""Keras tests run in this process on the backend chosen before keras is imported
(tests/conftest.py defaults KERAS_BACKEND to torch); test_keras_jax.py reruns the fit()
scenarios in a subprocess on jax."""

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")


def _load_scenarios():
    name = "proglearn_keras_test_scenarios"
    if name not in sys.modules:
        path = Path(__file__).with_name("scenarios.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def scenarios():
    return _load_scenarios()
