"""`from_pretrained` takes what transformers' takes, for both folder layouts llmsrt writes (complete and changes-only):
each loading argument reaches the part it concerns, or a `ValueError` names it."""

import importlib.util

import pytest
import torch
from helpers import SAMPLING_RATE, make_clip, save_model
from test_changes_only import trained_from_parts  # noqa: F401  (the fixture: a model built from saved parts)

from llmsrt import LLMSRTForConditionalGeneration

LAYOUTS = ("complete", "changes")


@pytest.fixture(scope="module")
def folders(trained_from_parts, tmp_path_factory):  # noqa: F811
    """The same trained model saved both ways, and its logits on one clip."""
    model, processor = trained_from_parts
    root = tmp_path_factory.mktemp("layouts")
    save_model(root / "complete", model, processor)
    model.save_pretrained(root / "changes", changed_only=True)
    processor.save_pretrained(root / "changes")
    batch = processor(audio=make_clip(1.5, 2), sampling_rate=SAMPLING_RATE, src_lang="eng", tgt_lang="deu")
    with torch.no_grad():
        logits = model(**batch).logits
    return {"complete": root / "complete", "changes": root / "changes"}, batch, logits


def logits_of(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits.float()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("device_map", ["cpu", "auto"])
def test_device_map_places_the_model(folders, layout, device_map):
    paths, batch, reference = folders
    model = LLMSRTForConditionalGeneration.from_pretrained(paths[layout], device_map=device_map)
    assert {parameter.device.type for parameter in model.parameters()} == {"cpu"}
    assert torch.equal(logits_of(model, batch), reference)
    assert not any(parameter.requires_grad for parameter in model.audio_encoder.parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_map_reaches_the_loader_for_both_layouts(folders):
    """On a CPU machine "cpu" and "auto" look like no device map at all; a device that is not there tells: the
    changes-only folder fails as the complete one does (it used to load on the CPU without a word)."""
    paths, _, _ = folders
    errors = []
    for layout in LAYOUTS:
        with pytest.raises((RuntimeError, AssertionError, ValueError)) as error:
            LLMSRTForConditionalGeneration.from_pretrained(paths[layout], device_map="cuda")
        errors.append(error.type)
    assert errors[0] is errors[1]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_attn_implementation_reaches_the_llm(folders, layout, implementation):
    paths, batch, reference = folders
    model = LLMSRTForConditionalGeneration.from_pretrained(paths[layout], attn_implementation=implementation)
    assert model.config._attn_implementation == implementation
    assert model.language_model.config._attn_implementation == implementation
    assert model.config.text_config._attn_implementation == implementation
    torch.testing.assert_close(logits_of(model, batch), reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_dtype_converts_the_parts(folders, layout):
    paths, batch, reference = folders
    model = LLMSRTForConditionalGeneration.from_pretrained(paths[layout], dtype=torch.bfloat16)
    assert model.language_model.dtype == torch.bfloat16  # the changes-only folder was saved in float32
    assert model.audio_encoder.conv1.weight.dtype == torch.bfloat16
    logits = logits_of(model, batch)
    assert (logits - reference).norm() / reference.norm() < 0.1


@pytest.mark.parametrize("layout", LAYOUTS)
def test_config_overrides_reach_the_config(folders, layout):
    paths, _, _ = folders
    model = LLMSRTForConditionalGeneration.from_pretrained(paths[layout], variable_length_encoding=False)
    assert model.config.variable_length_encoding is False  # saved as True
    assert model.config.stored_weights == "all"  # in memory, the model is complete


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao is not installed (`pip install "
                    "-e .[quantization]`; `make setup-test` installs it)")
@pytest.mark.parametrize("layout", LAYOUTS)
def test_quantization_config_quantizes_the_llm_on_a_cpu(folders, layout):
    from transformers import TorchAoConfig

    paths, batch, reference = folders
    model = LLMSRTForConditionalGeneration.from_pretrained(paths[layout], quantization_config=int8_weight_only())
    assert isinstance(model.config.quantization_config, TorchAoConfig)
    q_proj = model.language_model.model.layers[1].self_attn.q_proj.weight
    assert type(q_proj) not in (torch.Tensor, torch.nn.Parameter), type(q_proj)  # torchao's quantized tensor
    logits = logits_of(model, batch)
    assert not torch.equal(logits, reference)  # quantized for real...
    assert (logits - reference).norm() / reference.norm() < 0.1  # ...and close


def int8_weight_only():
    """torchao's int8 weight-only quantization (runs on a CPU), in the form this torchao version takes."""
    from transformers import TorchAoConfig

    try:
        from torchao.quantization import Int8WeightOnlyConfig
    except ImportError:  # older torchao: the string form
        return TorchAoConfig("int8_weight_only")
    return TorchAoConfig(quant_type=Int8WeightOnlyConfig())


@pytest.mark.parametrize("argument", [{"state_dict": {}}, {"gguf_file": "model.gguf"}])
def test_changes_only_folder_names_what_it_cannot_take(folders, argument):
    paths, _, _ = folders
    (name,) = argument
    with pytest.raises(ValueError, match=f"`{name}`.*changes-only"):
        LLMSRTForConditionalGeneration.from_pretrained(paths["changes"], **argument)
