
import pytest
import torch
import torch.nn.functional as F
from helpers import SAMPLING_RATE, make_clip

from llmsrt import LLMSRTConfig, LLMSRTForConditionalGeneration
from llmsrt.configuration_llmsrt import paper_adapter_hidden_size

GREEDY = {"do_sample": False, "num_beams": 1, "max_new_tokens": 6, "no_repeat_ngram_size": 0}


def training_batch(processor):
    clips = [make_clip(1.0, 0), make_clip(2.0, 1)]
    targets = [
        {"transcription": "the train", "translation": "der zug"},
        {"transcription": "good morning", "translation": "guten morgen"},
    ]
    return processor(audio=clips, sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu", targets=targets)


def test_config_composes_sub_configs_and_round_trips(tmp_path):
    config = LLMSRTConfig()
    assert config.qformer_config.encoder_hidden_size == config.audio_config.d_model
    assert [paper_adapter_hidden_size(d) for d in (896, 1536, 2048, 2560, 3584)] == [None, None, 1536, 1536, 2560]
    config.save_pretrained(tmp_path)
    assert LLMSRTConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()
    from transformers import Qwen2Config, WhisperConfig

    from_objects = LLMSRTConfig(audio_config=WhisperConfig(d_model=64), text_config=Qwen2Config(hidden_size=3584))
    assert from_objects.qformer_config.encoder_hidden_size == 64 and from_objects.adapter_hidden_size == 2560


def test_adapter_mlp_follows_llm_width():
    small = LLMSRTConfig(text_config={"hidden_size": 896})
    large = LLMSRTConfig(text_config={"hidden_size": 2048})
    from llmsrt.modeling_llmsrt import LLMSRTProjector

    assert [type(m).__name__ for m in LLMSRTProjector(small).layers] == ["Linear"]
    layers = LLMSRTProjector(large).layers
    assert [type(m).__name__ for m in layers] == ["Linear", "ReLU", "Linear"] and layers[0].out_features == 1536


def test_loss_is_on_answer_tokens_only(tiny):
    model, processor = tiny
    batch = training_batch(processor)
    with torch.no_grad():
        output = model(**batch)
    logits, labels = output.logits[:, :-1], batch["labels"][:, 1:]
    kept = labels != -100
    expected = F.cross_entropy(logits[kept], labels[kept])
    torch.testing.assert_close(output.loss, expected)
    # Changing the prompt's target ids (masked with -100) would change the loss if they counted: they don't.
    assert kept.sum() < batch["attention_mask"].sum()


def test_audio_encoder_is_frozen_and_gets_no_gradients(tiny, saved_tiny):
    model, processor = tiny
    model.train()
    try:
        assert not model.audio_encoder.training
        model(**training_batch(processor)).loss.backward()
        assert all(p.grad is None and not p.requires_grad for p in model.audio_encoder.parameters())
        assert all(p.grad is not None for p in model.speech_adapter.parameters() if p.requires_grad)
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
    reloaded = LLMSRTForConditionalGeneration.from_pretrained(saved_tiny)
    assert not any(p.requires_grad for p in reloaded.audio_encoder.parameters())
    assert all(p.requires_grad for p in reloaded.speech_adapter.parameters())


def test_qformer_ignores_padded_encoder_frames(tiny):
    model, _ = tiny
    frames = torch.randn(1, 40, model.config.audio_config.d_model)
    mask = torch.zeros(1, 40, dtype=torch.long)
    mask[:, :25] = 1
    changed = frames.clone()
    changed[:, 25:] = torch.randn(1, 15, frames.shape[-1]) * 10
    with torch.no_grad():
        out = model.speech_adapter(frames, mask)
        torch.testing.assert_close(model.speech_adapter(changed, mask), out)
        assert not torch.allclose(model.speech_adapter(changed, None), model.speech_adapter(frames, None))
    assert out.shape == (1, model.config.num_query_tokens, model.config.text_config.hidden_size)


def test_window_encoding_hands_the_adapter_only_frames_up_to_the_longest_clip(lively):
    """The 30-s window's padded frames are cut before the Q-Former (they are masked anyway): the same audio
    embeddings as the adapter reading the whole window, from a fraction of its frames."""
    model, processor = lively
    batch = processor(audio=[make_clip(1.0, 0), make_clip(2.2, 1)], sampling_rate=SAMPLING_RATE)
    with torch.no_grad():
        frames, frame_mask = model.encode_frames(batch["input_features"], batch["input_features_mask"])
        window = model.audio_encoder(batch["input_features"]).last_hidden_state
        whole_window = model.speech_adapter(window, batch["input_features_mask"][:, ::2])
        audio = model.get_audio_features(batch["input_features"], batch["input_features_mask"])
    embeddings = audio.pooler_output
    torch.testing.assert_close(audio.last_hidden_state, frames)  # the frames the adapter read
    assert frames.shape[1] == int(batch["input_features_mask"][1].sum()) // 2 < window.shape[1]
    assert frame_mask.shape == frames.shape[:2] and frame_mask[1].all() and not frame_mask[0].all()
    torch.testing.assert_close(frames, window[:, : frames.shape[1]])
    torch.testing.assert_close(embeddings, whole_window, rtol=1e-5, atol=1e-5)


def test_save_load_gives_identical_logits(tiny, saved_tiny):
    model, processor = tiny
    batch = training_batch(processor)
    reloaded = LLMSRTForConditionalGeneration.from_pretrained(saved_tiny).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)
    assert reloaded.generation_config.num_beams == 5  # the paper's decoding is the saved default


def _one_by_one(model, processor, clips, texts, **generate_kwargs):
    outputs = []
    for clip, text in zip(clips, texts):
        single = processor(audio=clip, sampling_rate=SAMPLING_RATE, task="smt", text=text, tgt_lang="fra")
        generated = model.generate(**single, **generate_kwargs)
        outputs.append(generated[0, single["input_ids"].shape[1] :].tolist())
    return outputs


def test_batched_generation_equals_one_by_one(lively):
    model, processor = lively
    clips = [make_clip(1.0, 0), make_clip(3.0, 1), make_clip(2.0, 2)]
    texts = ["hi", "good morning my friend", "the train leaves at nine"]  # rows of different lengths
    batch = processor(audio=clips, sampling_rate=SAMPLING_RATE, task="smt", text=texts, tgt_lang="fra")
    assert len(set(batch["attention_mask"].sum(1).tolist())) > 1
    for options in (GREEDY, {**GREEDY, "num_beams": 3}):
        with torch.no_grad():
            generated = model.generate(**batch, **options)
            batched = [row.tolist() for row in generated[:, batch["input_ids"].shape[1] :]]
            singles = _one_by_one(model, processor, clips, texts, **options)
        assert len({tuple(single) for single in singles}) == len(clips), "outputs must depend on the input"
        for row, single in zip(batched, singles):
            # the batched row may continue with padding after eos where the single run stopped
            assert row[: len(single)] == single
            assert all(t == processor.tokenizer.pad_token_id for t in row[len(single) :])


def test_generate_runs_the_encoder_at_prefill_only(tiny):
    model, processor = tiny
    calls = []
    handle = model.audio_encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        batch = processor(audio=[make_clip(1.0, 0), make_clip(1.5, 1)], sampling_rate=SAMPLING_RATE)
        with torch.no_grad():
            model.generate(**batch, **{**GREEDY, "max_new_tokens": 5, "min_new_tokens": 5})
    finally:
        handle.remove()
    assert len(calls) == 1


def test_variable_length_encoding(lively):
    model, processor = lively
    clips = [make_clip(1.0, 0), make_clip(2.2, 1)]
    batch = processor(audio=clips, sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu")
    encoder = model.audio_encoder
    with torch.no_grad():
        # Unchanged Whisper behaviour on the full window.
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        full = WhisperEncoder.forward(encoder, batch["input_features"]).last_hidden_state
        torch.testing.assert_close(encoder(batch["input_features"]).last_hidden_state, full)
        model.config.variable_length_encoding = True
        try:
            seen = []
            hook = encoder.register_forward_hook(lambda m, args, out: seen.append(out.last_hidden_state.shape[1]))
            batched = model.get_audio_features(batch["input_features"], batch["input_features_mask"]).pooler_output
            single = processor(audio=clips[0], sampling_rate=SAMPLING_RATE)
            alone = model.get_audio_features(single["input_features"], single["input_features_mask"]).pooler_output
            hook.remove()
            generated = model.generate(**batch, **GREEDY)
        finally:
            model.config.variable_length_encoding = False
        default = model.get_audio_features(batch["input_features"], batch["input_features_mask"]).pooler_output
    window_frames = batch["input_features"].shape[-1] // 2
    longest = int(batch["input_features_mask"][1].sum()) + 2
    assert seen[0] == (longest + longest % 2) // 2 < window_frames  # the longest clip, not the window
    assert seen[1] < seen[0]
    # A clip encodes the same alone or batched with a longer one: padded frames are masked.
    torch.testing.assert_close(batched[0], alone[0], rtol=1e-4, atol=1e-4)
    assert batched.shape == default.shape and not torch.allclose(batched, default)
    assert generated.shape[0] == 2


@pytest.mark.parametrize("variable_length", [False, True], ids=["window", "variable-length"])
def test_encoder_cache_reproduces_the_encoder_and_is_reused(lively, tmp_path, variable_length):
    model, processor = lively
    batch = processor(audio=[make_clip(1.0, 0), make_clip(2.5, 1)], sampling_rate=SAMPLING_RATE,
                      src_lang="eng", tgt_lang="deu", targets=["a<|eng|><|deu|>b", "c<|eng|><|deu|>d"])
    model.config.variable_length_encoding = variable_length
    with torch.no_grad():
        expected = model(**batch)
        cache = model.disk_encoder_cache(tmp_path)
        try:
            with model.using_encoder_cache(cache):
                assert model.encoder_cache is cache
                first = model(**batch)
                assert (cache.hits, cache.misses) == (0, 2)
                calls = []
                hook = model.audio_encoder.register_forward_hook(lambda *args: calls.append(1))
                second = model(**batch)
                hook.remove()
                assert (cache.hits, cache.misses) == (2, 2) and calls == []  # read back, not recomputed
            assert model.encoder_cache is None  # the block's cache is gone after it
        finally:
            model.config.variable_length_encoding = False
    for output in (first, second):
        torch.testing.assert_close(output.logits, expected.logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(output.loss, expected.loss)
    entries = list(tmp_path.rglob("*.safetensors"))
    assert len(entries) == 2 and not list(tmp_path.rglob("*.tmp"))
    # Another encoder (other weights) keeps its own entries.
    from llmsrt.encoder_cache import EncoderCache
    from llmsrt.testing import build_tiny_model_and_processor

    other, _ = build_tiny_model_and_processor(["x y"], seed=5)
    assert EncoderCache(tmp_path, other.audio_encoder).directory != cache.directory
    # Window and variable-length encodings of the same clip differ: they never share entries.
    other_variant = "window" if variable_length else "variable-length"
    assert EncoderCache(tmp_path, model.audio_encoder, other_variant).directory != cache.directory


def test_from_pretrained_parts_keeps_the_weights_in_llmsrt_classes(tiny, tmp_path):
    """Parts saved as a plain Whisper and a plain causal LM come back as llmsrt's encoder (which can read clips
    shorter than the window) and the same LLM weights."""
    from transformers import AutoModelForCausalLM, WhisperConfig, WhisperModel

    from llmsrt.modeling_llmsrt import LLMSRTWhisperEncoder

    model, processor = tiny
    whisper = WhisperModel(WhisperConfig(**model.config.audio_config.to_dict()))
    whisper.save_pretrained(tmp_path / "whisper")
    model.language_model.save_pretrained(tmp_path / "llm")
    built = LLMSRTForConditionalGeneration.from_pretrained_parts(
        str(tmp_path / "whisper"), str(tmp_path / "llm"), audio_token_id=processor.audio_token_id,
        num_query_tokens=model.config.num_query_tokens, variable_length_encoding=True,
    )
    assert isinstance(built.audio_encoder, LLMSRTWhisperEncoder)
    for name, tensor in whisper.get_encoder().state_dict().items():
        torch.testing.assert_close(built.audio_encoder.state_dict()[name], tensor, rtol=0, atol=0)
    for name, tensor in AutoModelForCausalLM.from_pretrained(tmp_path / "llm").state_dict().items():
        torch.testing.assert_close(built.language_model.state_dict()[name], tensor, rtol=0, atol=0)
    assert not any(p.requires_grad for p in built.audio_encoder.parameters())
    batch = processor(audio=make_clip(1.0, 0), sampling_rate=SAMPLING_RATE)
    with torch.no_grad():  # variable-length encoding reads fewer frames than the window
        features = built.get_audio_features(batch["input_features"], batch["input_features_mask"]).pooler_output
    assert features.shape == (1, model.config.num_query_tokens, model.config.text_config.hidden_size)


def test_input_features_with_inputs_embeds_is_an_error(tiny):
    """`inputs_embeds` already hold the audio: features given with them would be silently ignored."""
    model, processor = tiny
    batch = processor(audio=make_clip(1.0, 0), sampling_rate=SAMPLING_RATE)
    with torch.no_grad():
        embeds = model.embed_inputs(batch["input_ids"], batch["input_features"], batch["input_features_mask"])
        with pytest.raises(ValueError, match="input_features.*inputs_embeds"):
            model(inputs_embeds=embeds, input_features=batch["input_features"])
        logits = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"]).logits
        torch.testing.assert_close(logits, model(**batch).logits)


def test_placeholder_merge_traces_as_one_graph(tiny):
    """`get_placeholder_mask` + `masked_scatter` trace without a graph break: the count check is a
    `torch_compilable_check`, not a Python branch on a tensor value (a host-device sync)."""
    model, processor = tiny
    batch = processor(audio=[make_clip(1.0, 0), make_clip(0.6, 1)], sampling_rate=SAMPLING_RATE)
    ids = batch["input_ids"]
    embeds = model.get_input_embeddings()(ids.masked_fill(ids == processor.audio_token_id, 0)).detach()
    audio = torch.randn(2, model.config.num_query_tokens, embeds.shape[-1])

    def merge(ids, embeds, audio):
        return embeds.masked_scatter(model.get_placeholder_mask(ids, embeds, audio), audio)

    merged = torch.compile(merge, backend="eager", fullgraph=True)(ids, embeds, audio)
    placeholders = ids == processor.audio_token_id
    torch.testing.assert_close(merged[placeholders], audio.reshape(-1, embeds.shape[-1]))
    torch.testing.assert_close(merged[~placeholders], embeds[~placeholders])
    with pytest.raises(ValueError, match="16 audio placeholder tokens for 3"):
        merge(ids, embeds, torch.randn(3, model.config.num_query_tokens, embeds.shape[-1]))
