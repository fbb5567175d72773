import torch
from helpers import SAMPLING_RATE, make_clip
from peft import PeftModel
from peft.tuners.lora import LoraLayer

from llmsrt import LLMSRTForConditionalGeneration
from llmsrt.lora import add_lora, merge_lora
from llmsrt.testing import build_tiny_model_and_processor


def _batch(processor):
    return processor(
        audio=[make_clip(1.0, 0), make_clip(2.0, 1)],
        sampling_rate=SAMPLING_RATE,
        src_lang="eng",
        tgt_lang="deu",
        targets=["the train<|eng|><|deu|>der zug", "hi<|eng|><|deu|>hallo"],
    )


def _lora_model(corpus):
    model, processor = build_tiny_model_and_processor(corpus)
    peft_model = add_lora(model)
    with torch.no_grad():  # as if trained: LoRA B leaves zero, the adapter's trainable copy moves
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name or ("modules_to_save" in name and "query_tokens" in name):
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return peft_model.eval(), processor


def test_lora_wraps_only_llm_query_and_value_projections():
    from helpers import CORPUS

    peft_model, _ = _lora_model(CORPUS)
    wrapped = [name for name, module in peft_model.named_modules() if isinstance(module, LoraLayer)]
    assert wrapped, "LoRA must wrap something"
    assert all(".language_model." in name for name in wrapped)
    assert all(name.endswith(("q_proj", "v_proj")) for name in wrapped)
    layers = peft_model.base_model.model.config.text_config.num_hidden_layers
    assert len(wrapped) == 2 * layers
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert all("lora_" in name or "speech_adapter" in name for name in trainable)
    assert any("speech_adapter" in name for name in trainable)
    assert not any("audio_encoder" in name for name in trainable)


def test_merged_and_adapter_only_saves_reproduce_the_lora_model(tmp_path):
    from helpers import CORPUS

    peft_model, processor = _lora_model(CORPUS)
    batch = _batch(processor)
    with torch.no_grad():
        expected = peft_model(**batch).logits

    # Adapter-only: LoRA weights + the trained speech adapter, applied to the same base model.
    peft_model.save_pretrained(tmp_path / "adapter")
    saved = {path.name for path in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= saved
    fresh_base, _ = build_tiny_model_and_processor(CORPUS)
    restored = PeftModel.from_pretrained(fresh_base, tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(**batch).logits, expected, rtol=0, atol=0)

    merged = merge_lora(peft_model)
    assert isinstance(merged, LLMSRTForConditionalGeneration) and not isinstance(merged, PeftModel)
    merged.save_pretrained(tmp_path / "merged")
    reloaded = LLMSRTForConditionalGeneration.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        # merging re-associates float sums: equal to 1e-4
        torch.testing.assert_close(reloaded(**batch).logits, expected, rtol=1e-4, atol=1e-4)
