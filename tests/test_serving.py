"""llmsrt.serving without vLLM: `import llmsrt` and the remote-code files never reach it, and its prompts are the
processor's. The engine itself is tested in tests/test_vllm.py (where vLLM is installed)."""

import subprocess
import sys

import grimp
import numpy as np
import pytest
from helpers import CORPUS

from llmsrt.serving.prompts import request_prompt
from llmsrt.testing import build_tiny_model_and_processor

REMOTE_CODE = ("llmsrt.configuration_llmsrt", "llmsrt.modeling_llmsrt", "llmsrt.processing_llmsrt",
               "llmsrt.pipeline_llmsrt")


def test_import_llmsrt_loads_neither_vllm_nor_the_serving_package():
    code = ("import sys, llmsrt, llmsrt.serving, llmsrt.serving.prompts, llmsrt.serving.vllm_plugin\n"
            "print(sorted(name for name in sys.modules if name == 'vllm' or name.startswith('vllm.')))")
    found = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert found.strip() == "[]"


def test_remote_code_files_do_not_import_the_serving_package():
    graph = grimp.build_graph("llmsrt", cache_dir=None)
    assert "llmsrt.serving.vllm_model" in graph.modules
    assert "llmsrt.configuration_llmsrt" in graph.find_upstream_modules("llmsrt.modeling_llmsrt")
    for module in REMOTE_CODE:
        imported = graph.find_upstream_modules(module)  # everything it imports, directly or not
        assert not {name for name in imported if name.startswith("llmsrt.serving")}


def test_request_prompt_expands_to_the_processors_prompt():
    """One placeholder in the request; vLLM writes `num_query_tokens` of them where the processor does."""
    _, processor = build_tiny_model_and_processor(CORPUS)
    tokenizer = processor.tokenizer
    for task, src, tgt, text in [("srt", "eng", "deu", None), ("asr", "fra", None, None),
                                 ("smt", "deu", "eng", "der zug fährt um neun ab")]:
        ids = tokenizer(request_prompt(processor, task, src, tgt, text), add_special_tokens=False)["input_ids"]
        assert ids.count(processor.audio_token_id) == 1 and ids[0] == processor.audio_token_id
        expanded = [processor.audio_token_id] * processor.num_query_tokens + ids[1:]
        clip = np.sin(np.arange(16000, dtype=np.float32) / 8) * 0.1
        assert processor(audio=clip, task=task, src_lang=src, tgt_lang=tgt, text=text)["input_ids"][0].tolist() == \
            expanded


def test_request_prompt_refuses_what_the_processor_refuses():
    _, processor = build_tiny_model_and_processor(CORPUS)
    with pytest.raises(ValueError, match="'klingon'"):
        request_prompt(processor, "srt", "eng", "klingon")
    with pytest.raises(ValueError, match="'smt'.*gold transcript"):
        request_prompt(processor, "smt", "eng", "deu")
    with pytest.raises(ValueError, match="'summarise'.*'asr'.*'smt'.*'srt'"):
        request_prompt(processor, "summarise", "eng", "deu")
