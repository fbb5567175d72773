# One entry point for people and CI. `make test` and `make demo` set up .venv from scratch when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch is installed first: a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup test test-all demo tiny clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

test: setup
	$(PY) -m pytest -q -m "not slow"

test-all: setup
	$(PY) -m pytest -q

tiny: setup
	$(PY) train.py recipes/tiny.yaml --output_dir runs/tiny

demo: setup
	$(PY) -m llmsrt.demo

clean:
	rm -rf $(VENV) runs build *.egg-info
