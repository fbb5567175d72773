"""LLM-SRT v2.0 (MCAT) in the model: the pooled Q-Former adapter as config fields, and text sides other than Qwen2
(Gemma-3's text model out of a `Gemma3ForConditionalGeneration` folder, Gemma-2) with the audio embeddings fed as
the reference feeds them. The reference's numbers are computed here from transformers modules directly."""

import json

import pytest
import torch
from helpers import CORPUS, make_clip
from transformers import AutoModelForCausalLM, Blip2QFormerModel

from llmsrt import LLMSRTConfig, LLMSRTForConditionalGeneration
from llmsrt.model_storage import text_causal_lm
from llmsrt.modeling_llmsrt import LLMSRTSpeechAdapter
from llmsrt.testing import build_tiny_model_and_processor
from llmsrt.testing.tiny import build_tiny_gemma3

QFORMER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def pooled_config(num_query_tokens=150, stride=5, **fields) -> LLMSRTConfig:
    return LLMSRTConfig(
        audio_config={"num_mel_bins": 128, "d_model": 16, "encoder_layers": 1, "encoder_attention_heads": 2,
                      "encoder_ffn_dim": 32},
        qformer_config=QFORMER,
        text_config={"model_type": "qwen2", "vocab_size": 64, "hidden_size": 24, "intermediate_size": 48,
                     "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1},
        num_query_tokens=num_query_tokens, query_pooling_stride=stride, adapter_hidden_size=2560, **fields,
    )


@pytest.mark.parametrize("queries", [150, 152], ids=["150", "152-remainder-dropped"])
def test_the_pooled_adapter_is_the_qformer_mean_pooled_by_5_then_an_mlp_of_width_2560(queries):
    config = pooled_config(queries)
    assert config.num_audio_embeddings == 30
    torch.manual_seed(0)
    adapter = LLMSRTSpeechAdapter(config).eval()
    with torch.no_grad():
        for parameter in adapter.parameters():
            parameter.normal_(0, 0.5)
    frames = torch.randn(2, 1500, 16)
    with torch.no_grad():
        embeds = adapter(frames)
        qformer = Blip2QFormerModel(config.qformer_config).eval()
        qformer.load_state_dict(adapter.qformer.state_dict())
        queries_out = qformer(query_embeds=adapter.query_tokens.expand(2, -1, -1), encoder_hidden_states=frames,
                              encoder_attention_mask=torch.ones(2, 1500)).last_hidden_state
        pooled = torch.stack([queries_out[:, 5 * i : 5 * i + 5].mean(1) for i in range(30)], dim=1)
        first, second = adapter.projector.layers[0], adapter.projector.layers[2]
        assert (first.out_features, second.in_features, second.out_features) == (2560, 2560, 24)
        expected = adapter.projector.layer_norm(second(torch.relu(first(pooled))))
    assert embeds.shape == (2, 30, 24)
    torch.testing.assert_close(embeds, expected, rtol=1e-5, atol=1e-5)
    unpooled = adapter.projector(queries_out[:, :30])  # the first 30 queries, not pooled: a different computation
    assert (unpooled - expected).abs().max() > 1e-2


def test_the_pooling_fields_round_trip_and_a_v1_config_reads_as_before(tmp_path):
    config = pooled_config(audio_embedding_scale=8.0)
    config.save_pretrained(tmp_path / "v2")
    saved = json.loads((tmp_path / "v2" / "config.json").read_text())
    assert (saved["num_query_tokens"], saved["query_pooling_stride"], saved["adapter_hidden_size"]) == (150, 5, 2560)
    loaded = LLMSRTConfig.from_pretrained(tmp_path / "v2")
    assert (loaded.num_audio_embeddings, loaded.audio_embedding_scale) == (30, 8.0)
    v1 = pooled_config(80, 1).to_dict()
    for field in ("query_pooling_stride", "audio_embedding_scale"):  # a folder saved before the fields existed
        v1.pop(field)
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "config.json").write_text(json.dumps(v1))
    old = LLMSRTConfig.from_pretrained(tmp_path / "v1")
    assert (old.query_pooling_stride, old.num_audio_embeddings, old.audio_embedding_scale) == (1, 80, None)
    with pytest.raises(ValueError, match="query_pooling_stride must be between 1 .* and num_query_tokens"):
        pooled_config(4, 5)


def test_a_pooled_model_writes_30_embeddings_over_30_placeholders_and_the_scale_multiplies_them_only():
    model, processor = build_tiny_model_and_processor(CORPUS, num_query_tokens=30)
    config = model.config.to_dict()
    pooled = LLMSRTForConditionalGeneration(LLMSRTConfig(**{**config, "num_query_tokens": 150,
                                                            "query_pooling_stride": 5})).eval()
    batch = processor(audio=torch.randn(16000).numpy(), sampling_rate=16000)
    assert int((batch["input_ids"] == processor.audio_token_id).sum()) == 30
    with torch.no_grad():
        embeds = pooled.embed_inputs(batch["input_ids"], batch["input_features"], batch["input_features_mask"])
        pooled.config.audio_embedding_scale = 3.0
        scaled = pooled.embed_inputs(batch["input_ids"], batch["input_features"], batch["input_features_mask"])
    audio = batch["input_ids"][0] == processor.audio_token_id
    torch.testing.assert_close(scaled[0, audio], 3.0 * embeds[0, audio])
    assert torch.equal(scaled[0, ~audio], embeds[0, ~audio])  # the text's embeddings are the LLM's own


def tiny_gemma3_folder(folder, vocab_size=96):
    """A tiny `Gemma3ForConditionalGeneration` (vision tower included), saved as google/gemma-3-27b-it is."""
    model = build_tiny_gemma3(vocab_size)
    model.save_pretrained(folder)
    return model


def test_the_text_side_of_a_gemma3_folder_is_its_text_model_with_the_same_weights_and_logits(tmp_path):
    multimodal = tiny_gemma3_folder(tmp_path / "gemma3")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "gemma3")
    assert type(loaded).__name__ == "Gemma3ForConditionalGeneration"
    text = text_causal_lm(loaded).eval()
    assert type(text).__name__ == "Gemma3ForCausalLM" and text.config.model_type == "gemma3_text"
    assert not any("vision" in name for name in text.state_dict())
    ids = torch.randint(0, 90, (2, 20))
    with torch.no_grad():
        torch.testing.assert_close(text(input_ids=ids).logits, multimodal(input_ids=ids).logits, rtol=0, atol=0)
    # Gemma-3's embedding layer scales the text by sqrt(width); the audio, written over it, is not rescaled.
    embedding = text.get_input_embeddings()
    torch.testing.assert_close(embedding(ids), embedding.weight[ids] * 32**0.5)
    assert text_causal_lm(text) is text  # a text model is its own text side


def test_a_new_processor_lays_the_prompt_out_as_the_llms_tokenizer_encodes_it(tmp_path):
    """`[audio] + tokenizer.encode(prompt)`, as the authors' code: BOS after the audio for a tokenizer that adds one
    (Gemma), nothing for one that adds none (Qwen2.5); a tokenizer adding other tokens is refused."""
    from tokenizers import processors
    from transformers import WhisperFeatureExtractor

    from llmsrt import LLMSRTProcessor
    from llmsrt.prompt_builder import tokenizer_prompt_layout
    from llmsrt.testing import build_tiny_tokenizer

    WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp_path / "whisper")
    build_tiny_tokenizer(CORPUS, bos_token="<bos>").save_pretrained(tmp_path / "gemma")
    build_tiny_tokenizer(CORPUS).save_pretrained(tmp_path / "qwen")
    gemma = LLMSRTProcessor.from_pretrained_parts(str(tmp_path / "whisper"), str(tmp_path / "gemma"),
                                                  num_query_tokens=30)
    qwen = LLMSRTProcessor.from_pretrained_parts(str(tmp_path / "whisper"), str(tmp_path / "qwen"))
    assert gemma.prompt_layout == ["audio", "bos", "instruction"] and qwen.prompt_layout == ["audio", "instruction"]
    ids = gemma(audio=make_clip(1.0, 0), sampling_rate=16000, src_lang="eng", tgt_lang="deu")["input_ids"][0]
    assert ids[30:].tolist() == gemma.tokenizer.encode("<|eng|><|deu|>")  # with its <bos> first
    eos_after = build_tiny_tokenizer(CORPUS)
    eos_after.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="$A <|endoftext|>", special_tokens=[("<|endoftext|>", eos_after.eos_token_id)])
    with pytest.raises(ValueError, match="a prompt layout places nothing or its BOS before the instruction"):
        tokenizer_prompt_layout(eos_after)


@pytest.mark.parametrize("text_model_type", ["qwen3", "gemma3_text", "gemma2"])
def test_other_decoder_only_llms_are_the_text_side_and_a_saved_folder_computes_the_same(tmp_path, text_model_type):
    """Any causal LM `AutoModelForCausalLM` builds: the model holds its class, and a saved folder reloads with the
    same logits (Gemma's layout with BOS after the audio)."""
    model, processor = build_tiny_model_and_processor(CORPUS, text_model_type=text_model_type)
    model.eval()
    expected_class = {"qwen3": "Qwen3ForCausalLM", "gemma3_text": "Gemma3ForCausalLM", "gemma2": "Gemma2ForCausalLM"}
    assert type(model.language_model).__name__ == expected_class[text_model_type]
    batch = processor(audio=make_clip(1.0, 0), sampling_rate=16000, src_lang="eng", tgt_lang="deu")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded = LLMSRTForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)
    if text_model_type.startswith("gemma"):
        assert batch["input_ids"][0, 8] == processor.tokenizer.bos_token_id  # [8 audio][<bos>][tags]
    else:
        assert processor.tokenizer.bos_token_id is None and processor.prompt_layout == ["audio", "instruction"]
