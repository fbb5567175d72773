"""Compiled decoding (`use_compiled_decoding`: static KV cache + `torch.compile`d decode step) gives the tokens of
eager decoding, with the audio merged at prefill and the answer-only logits processors of `generate`."""

import copy

import pytest
import torch
from helpers import SAMPLING_RATE, make_clip
from transformers import StaticCache

from llmsrt.inference import use_compiled_decoding

PROMPTS = {"src_lang": ["eng", "deu"], "tgt_lang": ["deu", "eng"]}


def generate_both_ways(model, processor, backend, **decoding):
    batch = processor(audio=[make_clip(1.0, 1), make_clip(2.5, 2)], sampling_rate=SAMPLING_RATE, **PROMPTS)
    decoding = {"max_new_tokens": 8, "no_repeat_ngram_size": 2, **decoding}
    eager = model.generate(**batch, **decoding)
    compiled_model = copy.deepcopy(model)
    use_compiled_decoding(compiled_model, backend=backend)
    frames_compiled = torch._dynamo.utils.counters["frames"]["ok"]
    compiled = compiled_model.generate(**batch, **decoding, return_dict_in_generate=True)
    frames_compiled = torch._dynamo.utils.counters["frames"]["ok"] - frames_compiled
    return eager, compiled, compiled_model, frames_compiled


def returned_cache(output):
    """The KV cache `generate` returned (`cache` from transformers 5.24, `past_key_values` before)."""
    return output.get("cache", output.get("past_key_values"))


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_greedy_decoding_gives_the_eager_tokens(lively, backend):
    model, processor = lively
    eager, compiled, compiled_model, frames_compiled = generate_both_ways(
        model, processor, backend, num_beams=1, do_sample=False
    )
    assert isinstance(returned_cache(compiled), StaticCache)
    assert frames_compiled > 0  # the decode steps went through torch.compile
    assert compiled_model.generation_config.compile_config.backend == backend  # the public switch, recorded
    assert torch.equal(compiled.sequences, eager)
    assert eager.shape[1] > processor(audio=make_clip(1.0, 1), sampling_rate=SAMPLING_RATE)["input_ids"].shape[1]


def test_static_cache_beam_search_gives_the_eager_tokens(lively):
    model, processor = lively
    eager, compiled, _, _ = generate_both_ways(model, processor, "aot_eager", num_beams=3)
    assert isinstance(returned_cache(compiled), StaticCache)
    assert torch.equal(compiled.sequences, eager)
