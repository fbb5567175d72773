"""LoRA on the language model only (never on Whisper's projections), through peft: added for training, merged for
saving and export (training, the Hub export, benchmarks). Nothing here ships inside a saved model folder."""

import re

from peft import LoraConfig, PeftModel, get_peft_model

from ..modeling_llmsrt import LLMSRTForConditionalGeneration

ADAPTER_MODULE = "speech_adapter"


def lora_config_for(model: LLMSRTForConditionalGeneration, train_speech_adapter: bool = True) -> LoraConfig:
    """The paper's LoRA (rank, alpha, dropout, targets from `model.config`), scoped by regex to `language_model`.

    With `train_speech_adapter`, the speech adapter is listed in `modules_to_save`: it trains alongside and is
    saved with the LoRA weights.
    """
    config = model.config
    targets = "|".join(re.escape(name) for name in config.lora_target_modules)
    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=rf".*language_model\..*\.({targets})",
        modules_to_save=[ADAPTER_MODULE] if train_speech_adapter else None,
        bias="none",
    )


def add_lora(model: LLMSRTForConditionalGeneration, train_speech_adapter: bool = True) -> PeftModel:
    """Wrap `model` with LoRA adapters on the LLM; only LoRA (and the speech adapter) stay trainable."""
    peft_model = get_peft_model(model, lora_config_for(model, train_speech_adapter))
    peft_model.base_model.model.freeze_audio_encoder()
    return peft_model


def merge_lora(model) -> LLMSRTForConditionalGeneration:
    """Fold LoRA weights into the LLM and return the plain model (a no-op for a model without LoRA)."""
    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    return model
