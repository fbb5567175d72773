"""`config.qformer_attends_padding`: the Q-Former reads the whole 30-s window, padding included, as the reference
(the authors pad every clip to 30 s and hand the Q-Former an all-ones mask); the default keeps the masked reading
that every folder saved before the field computed."""

import json

import pytest
import torch
from helpers import CORPUS, SAMPLING_RATE, make_clip

from llmsrt.configuration_llmsrt import LLMSRTConfig
from llmsrt.modeling_llmsrt import LLMSRTForConditionalGeneration
from llmsrt.testing import build_tiny_model_and_processor


def _lively(**config_kwargs):
    """A tiny model with large random weights (its outputs depend on every frame it reads)."""
    model, processor = build_tiny_model_and_processor(CORPUS, **config_kwargs)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim == 2 and not name.startswith("audio_encoder"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model.eval(), processor


@pytest.fixture(scope="module")
def window_reader():
    return _lively(qformer_attends_padding=True)


def test_a_saved_config_without_the_field_reads_only_the_real_frames_as_before(tmp_path):
    model, processor = _lively()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config.pop("qformer_attends_padding") is False
    (tmp_path / "config.json").write_text(json.dumps(config))  # a folder saved before the field existed
    loaded = LLMSRTForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config.qformer_attends_padding is False
    batch = processor(audio=[make_clip(1.0, 0), make_clip(2.2, 1)], sampling_rate=SAMPLING_RATE)
    with torch.no_grad():
        window = loaded.audio_encoder(batch["input_features"]).last_hidden_state
        real_frames_only = loaded.speech_adapter(window, batch["input_features_mask"][:, ::2])
        embeddings = loaded.get_audio_features(batch["input_features"], batch["input_features_mask"]).pooler_output
        torch.testing.assert_close(embeddings, model.get_audio_features(batch["input_features"],
                                                                        batch["input_features_mask"]).pooler_output)
    torch.testing.assert_close(embeddings, real_frames_only, rtol=1e-5, atol=1e-5)


def test_attending_padding_reads_every_frame_of_the_window(window_reader):
    model, processor = window_reader
    clips = [make_clip(1.0, 0), make_clip(2.2, 1)]
    batch = _features(processor, clips)
    with torch.no_grad():
        window = model.audio_encoder(batch["input_features"]).last_hidden_state
        frames, frame_mask = model.encode_frames(batch["input_features"], batch["input_features_mask"])
        embeddings = model.get_audio_features(batch["input_features"], batch["input_features_mask"]).pooler_output
        all_ones = model.speech_adapter(window, torch.ones(window.shape[:2]))
        masked = model.speech_adapter(window, batch["input_features_mask"][:, ::2])
        alone = model.get_audio_features(**_features(processor, clips[0])).pooler_output
    assert frames.shape[1] == batch["input_features"].shape[-1] // 2  # the whole window, nothing dropped
    assert not frame_mask[0].all()  # the real-frame mask is still there for others (language ID)
    torch.testing.assert_close(embeddings, all_ones, rtol=1e-5, atol=1e-5)
    assert (embeddings - masked).abs().max() > 1e-2  # the padded frames count
    torch.testing.assert_close(alone[0], embeddings[0], rtol=1e-4, atol=1e-4)  # any batch: each clip has its window


def _features(processor, clip):
    batch = processor(audio=clip, sampling_rate=SAMPLING_RATE)
    return {"input_features": batch["input_features"], "input_features_mask": batch["input_features_mask"]}


def test_attending_padding_needs_the_whole_window():
    with pytest.raises(ValueError, match="qformer_attends_padding=True.*variable_length_encoding=True"):
        LLMSRTConfig(qformer_attends_padding=True, variable_length_encoding=True)


def test_the_encoder_cache_keeps_the_padded_frames_for_a_window_reader(window_reader, tmp_path):
    model, processor = window_reader
    batch = _features(processor, [make_clip(1.0, 0), make_clip(2.2, 1)])
    with torch.no_grad():
        plain = model.get_audio_features(**batch).pooler_output
        with model.using_encoder_cache(model.disk_encoder_cache(str(tmp_path))) as cache:
            first = model.get_audio_features(**batch).pooler_output
            second = model.get_audio_features(**batch).pooler_output
            hits = cache.hits
    assert [path.name[-20:] for path in tmp_path.iterdir()] == ["-window-with-padding"]
    assert hits == 2
    torch.testing.assert_close(first, plain)
    torch.testing.assert_close(second, plain)
