# proglearn developer entry points. Two commands on a fresh machine (python3, make, apt):
#   make demo   set up .venv with every extra, fetch the demo data, run the main job
#   make test   set up .venv if needed, then pytest, ruff, mypy and the strict docs build
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Pinned here (dev set-up only), never in the library's own dependencies.
TORCH_PIN := torch==2.14.1 torchvision==0.29.1
FMNIST := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export HF_HUB_OFFLINE := 1
export KERAS_BACKEND ?= torch

.PHONY: venv data test pytest lint typecheck docs demo wheel clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing python3-venv with apt"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e ".[all,dev]"
	@touch $@

data:
	@if [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then \
	  echo "Installing Debian's dataset-fashion-mnist (local files, no download at run time)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	fi

pytest: $(STAMP) data
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check proglearn integrations tests examples benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy proglearn integrations

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

test: pytest lint typecheck docs

# A fresh four-mode ablation every time (--no-resume): real, newly measured numbers.
demo: $(STAMP) data
	$(VENV)/bin/proglearn ablate examples/configs/ablate_demo.yaml --no-resume

wheel: $(STAMP)
	$(PY) -m build --wheel --outdir dist

clean:
	rm -rf $(VENV) site dist build *.egg-info .pytest_cache .mypy_cache .ruff_cache
