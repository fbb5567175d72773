# One entry point for people and CI. `make test` and `make demo` set up .venv from scratch when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch is installed first: a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup test test-all demo clean

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

# The main job: the three-stage curriculum, then the evaluation report.
demo: setup
	$(PY) train.py recipes/tiny.yaml --output_dir runs/demo
	$(PY) eval.py --model runs/demo/srt --dataset toy --output_dir runs/demo/report --num_beams 1 \
		--max_new_tokens 40 --comet_model none

clean:
	rm -rf $(VENV) runs build *.egg-info
