"""Changes-only folders: `save_pretrained(changed_only=True)` stores what differs from the pretrained parts, and
every loading path (`from_pretrained`, `AutoModel`, the pipeline) gives back the same model as a complete folder."""

import json

import pytest
import torch
from helpers import SAMPLING_RATE, build_from_saved_parts, make_clip, save_model
from safetensors import safe_open
from transformers import AutoModel, pipeline

from llmsrt import LLMSRTForConditionalGeneration
from llmsrt.hub import export_model

GREEDY = {"do_sample": False, "num_beams": 1, "max_new_tokens": 5, "no_repeat_ngram_size": 0}


@pytest.fixture(scope="module")
def trained_from_parts(tiny, tmp_path_factory):
    """A model built from saved parts, then 'trained': a new adapter and one LLM projection changed (as merged LoRA
    changes q/v)."""
    tiny_model, processor = tiny
    model = build_from_saved_parts(tiny_model, processor, tmp_path_factory.mktemp("parts"),
                                   variable_length_encoding=True)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.speech_adapter.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.3)
        q_proj = model.language_model.model.layers[1].self_attn.q_proj.weight
        q_proj.add_(torch.randn(q_proj.shape, generator=generator) * 0.3)
    return model.eval(), processor


def stored_names(folder) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        return set(weights.keys())


def test_changes_only_folder_loads_to_the_same_logits_as_the_complete_one(trained_from_parts, tmp_path, wav_file):
    model, processor = trained_from_parts
    complete = save_model(tmp_path / "complete", model, processor)
    model.save_pretrained(tmp_path / "changes", changed_only=True)
    processor.save_pretrained(tmp_path / "changes")
    changes = tmp_path / "changes"

    adapter = {name for name in model.state_dict() if name.startswith("speech_adapter.")}
    assert stored_names(changes) == adapter | {"language_model.model.layers.1.self_attn.q_proj.weight"}
    assert (changes / "model.safetensors").stat().st_size < (complete / "model.safetensors").stat().st_size
    config = json.loads((changes / "config.json").read_text())
    assert config["stored_weights"] == "changed" and config["parts_dtype"] == "float32"
    assert json.loads((complete / "config.json").read_text())["stored_weights"] == "all"
    assert model.config.stored_weights == "all"  # saving changes only leaves the model's own config as it was

    batch = processor(audio=make_clip(1.5, 2), sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu")
    loaded_complete = LLMSRTForConditionalGeneration.from_pretrained(complete)
    loaded_changes = LLMSRTForConditionalGeneration.from_pretrained(changes)
    auto_changes = AutoModel.from_pretrained(changes, trust_remote_code=True)
    assert not loaded_changes.training and not any(p.requires_grad for p in loaded_changes.audio_encoder.parameters())
    with torch.no_grad():
        reference = loaded_complete(**batch).logits
        assert torch.equal(loaded_changes(**batch).logits, reference)
        assert torch.equal(auto_changes(**batch).logits, reference)
    for name, tensor in loaded_complete.state_dict().items():
        assert torch.equal(loaded_changes.state_dict()[name], tensor), name
    assert loaded_changes.generation_config.to_dict() == loaded_complete.generation_config.to_dict()

    translate = {"src_lang": "eng", "tgt_lang": "deu", "generate_kwargs": GREEDY}
    from_complete = pipeline("speech-translation", model=str(complete), trust_remote_code=True)(wav_file, **translate)
    from_changes = pipeline("speech-translation", model=str(changes), trust_remote_code=True)(wav_file, **translate)
    assert from_changes == from_complete

    # The final export stays a complete folder, whatever it is exported from.
    exported = export_model(changes, tmp_path / "export")
    assert json.loads((exported / "config.json").read_text())["stored_weights"] == "all"
    assert stored_names(exported) >= stored_names(complete) - {"language_model.lm_head.weight"}


def test_changes_only_needs_the_parts(tiny, tmp_path):
    model, _ = tiny  # built from a config, not from pretrained parts
    with pytest.raises(ValueError, match="pretrained parts"):
        model.save_pretrained(tmp_path / "changes", changed_only=True)
    with pytest.raises(ValueError, match="stored_weights"):
        type(model.config)(stored_weights="some")
