"""Where a stage's model comes from, and which of its parts train."""

import logging

from ..lora import add_lora
from ..modeling_llmsrt import LLMSRTForConditionalGeneration
from ..processing_llmsrt import LLMSRTProcessor
from ..prompt_builder import check_language_tags
from .arguments import ModelArguments

logger = logging.getLogger(__name__)


def build_initial_model(model_args: ModelArguments, texts: list[str] | None = None):
    """The model the first stage starts from: a saved LLM-SRT, pretrained parts with a new adapter, or tiny."""
    if model_args.model_name_or_path:
        return load_model(model_args.model_name_or_path)
    if model_args.whisper and model_args.llm:
        processor = LLMSRTProcessor.from_pretrained_parts(
            model_args.whisper, model_args.llm, model_args.gguf_file,
            model_args.num_query_tokens // model_args.query_pooling_stride,
        )
        model = LLMSRTForConditionalGeneration.from_pretrained_parts(
            model_args.whisper,
            model_args.llm,
            audio_token_id=processor.audio_token_id,
            gguf_file=model_args.gguf_file,
            dtype=model_args.model_dtype,
            num_query_tokens=model_args.num_query_tokens,
            query_pooling_stride=model_args.query_pooling_stride,
            adapter_hidden_size=model_args.adapter_hidden_size,
            qformer_config={"num_hidden_layers": model_args.qformer_num_layers},
            variable_length_encoding=model_args.variable_length_encoding,
            qformer_attends_padding=model_args.qformer_attends_padding,
            query_time_window=model_args.query_time_window,
        )
        return model, processor
    if model_args.tiny_model:
        from ..testing import build_tiny_model_and_processor

        if not texts:
            raise ValueError("tiny_model trains its tokenizer on the training texts, but none were found.")
        return build_tiny_model_and_processor(
            texts,
            num_query_tokens=min(model_args.num_query_tokens, 16 * model_args.query_pooling_stride),
            text_model_type=model_args.tiny_text_model,
            query_pooling_stride=model_args.query_pooling_stride,
            qformer_attends_padding=model_args.qformer_attends_padding,
            query_time_window=model_args.query_time_window,
        )
    raise ValueError(
        "No starting model: give --model_name_or_path (an LLM-SRT folder), or --whisper and --llm "
        "(pretrained parts), or --tiny_model true."
    )


def start_new_processor(processor: LLMSRTProcessor, model_args: ModelArguments) -> None:
    """A new model's processor: no languages until its stages train some, and the recipe's `language_tags`."""
    processor.languages = []
    if model_args.language_tags:
        processor.language_tags = check_language_tags(model_args.language_tags)


def apply_lora_settings(model: LLMSRTForConditionalGeneration, model_args: ModelArguments) -> None:
    """Recipe LoRA settings override the model config's (they are saved with the model)."""
    for name in ("lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules"):
        value = getattr(model_args, name)
        if value is not None:
            setattr(model.config, name, value)


def load_model(path: str):
    model = LLMSRTForConditionalGeneration.from_pretrained(path)
    return model, LLMSRTProcessor.from_pretrained(path)


def configure_trainable(model: LLMSRTForConditionalGeneration, parts: list[str]):
    """Freeze everything, then unfreeze `parts`: `adapter` (queries, Q-Former, MLP), `lora` (new LoRA adapters on
    the LLM's q/v projections; the model becomes a `PeftModel`), `llm` (full LLM fine-tuning). The Whisper encoder
    never trains."""
    model.requires_grad_(False)
    if "llm" in parts and "lora" in parts:
        raise ValueError("Train the LLM either fully ('llm') or through LoRA ('lora'), not both.")
    if "lora" in parts:
        model = add_lora(model, train_speech_adapter="adapter" in parts)
        inner = model.base_model.model
    else:
        inner = model
        if "adapter" in parts:
            inner.speech_adapter.requires_grad_(True)
        if "llm" in parts:
            inner.language_model.requires_grad_(True)
    inner.freeze_audio_encoder()
    return model


def trainable_parameter_names(model) -> list[str]:
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]
