"""Slow (`pytest -m slow`): LLM-SRT built from real pretrained parts that PyPI packages carry: the converted
faster-whisper base and Qwen2.5-0.5B (Coder, Instruct) as a GGUF file loaded through transformers' `gguf_file`."""

import pytest
import torch
from helpers import save_model

from llmsrt import LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.demo.offline_models import GGUF_NAME as GGUF

pytestmark = pytest.mark.slow


def test_build_from_whisper_and_gguf_parts_then_save_and_reload(whisper_base, qwen_gguf, tmp_path):
    whisper = whisper_base
    processor = LLMSRTProcessor.from_pretrained_parts(whisper, qwen_gguf, gguf_file=GGUF)
    model = LLMSRTForConditionalGeneration.from_pretrained_parts(
        whisper, qwen_gguf, audio_token_id=processor.audio_token_id, gguf_file=GGUF).eval()
    assert type(model.language_model).__name__ == "Qwen2ForCausalLM"
    assert model.config.text_config.hidden_size == 896 and model.config.adapter_hidden_size == 0  # Linear + LN
    assert model.config.audio_config.d_model == 512
    assert not any(p.requires_grad for p in model.audio_encoder.parameters())
    assert model.get_input_embeddings().num_embeddings > processor.audio_token_id
    batch = processor(audio=[torch.randn(16000).numpy() * 0.1], sampling_rate=16000, src_lang="eng", tgt_lang="deu")
    save_model(tmp_path / "saved", model, processor)
    reloaded = LLMSRTForConditionalGeneration.from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)
    # The de-quantized LLM still translates text on its own.
    tokenizer = processor.tokenizer
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Translate to German: good morning"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.language_model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert "guten" in tokenizer.decode(out[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True).lower()
