"""Tiny random LLM-SRT models built offline: real transformers modules, small enough for CPU tests and smoke runs."""

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor

from ..configuration_llmsrt import LLMSRTConfig
from ..languages import LANGUAGES
from ..modeling_llmsrt import LLMSRTForConditionalGeneration
from ..processing_llmsrt import LLMSRTProcessor
from ..prompt_builder import PromptBuilder, tokenizer_prompt_layout

EOS_TOKEN = "<|endoftext|>"


def build_tiny_tokenizer(
    corpus: list[str], vocab_size: int = 512, bos_token: str | None = None
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (the kind Qwen2 uses) on `corpus`; every language tag stays tokenisable.
    With `bos_token` (e.g. `"<bos>"`), every encoding with special tokens starts with it, as Gemma's tokenizer does."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN] + ([bos_token] if bos_token else []),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tags = [PromptBuilder(languages=tuple(LANGUAGES)).tag(code) for code in LANGUAGES]
    tokenizer.train_from_iterator(list(corpus) + tags, trainer=trainer)
    if bos_token:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A",
            pair=f"{bos_token} $A $B",
            special_tokens=[(bos_token, tokenizer.token_to_id(bos_token))],
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN, bos_token=bos_token
    )


# The tiny LLMs: the fields each kind adds to the shared ones (Gemma's tokenizer starts every encoding with <bos>).
TINY_TEXT_MODELS = {
    "qwen2": {"num_key_value_heads": 2},
    "qwen3": {"num_key_value_heads": 2},
    "gemma3_text": {"num_key_value_heads": 2, "sliding_window": 512},
    "gemma2": {"num_key_value_heads": 2, "sliding_window": 512},
}
BOS_TOKEN = "<bos>"


def build_tiny_model_and_processor(
    corpus: list[str],
    num_query_tokens: int = 8,
    chunk_seconds: int = 5,
    hidden_size: int = 64,
    num_layers: int = 2,
    vocab_size: int = 512,
    seed: int = 0,
    text_model_type: str = "qwen2",
    **config_kwargs,
) -> tuple[LLMSRTForConditionalGeneration, LLMSRTProcessor]:
    """A randomly initialised LLM-SRT with a Whisper encoder window of `chunk_seconds` and a tokenizer trained on
    `corpus`. Same module classes as the real model, a few hundred thousand parameters. `text_model_type` is the
    LLM's kind (`TINY_TEXT_MODELS`: `qwen2`, or Gemma-3's or Gemma-2's text model, whose tokenizer adds `<bos>`,
    laid out after the audio as MCAT's). `config_kwargs` are further `LLMSRTConfig` fields (`query_time_window`,
    `query_pooling_stride`, ...)."""
    import torch

    if text_model_type not in TINY_TEXT_MODELS:
        raise ValueError(f"text_model_type {text_model_type!r}: a tiny LLM is one of {list(TINY_TEXT_MODELS)}.")
    bos_token = BOS_TOKEN if text_model_type.startswith("gemma") else None
    tokenizer = build_tiny_tokenizer(corpus, vocab_size, bos_token=bos_token)
    feature_extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=chunk_seconds)
    audio_embeddings = num_query_tokens // config_kwargs.get("query_pooling_stride", 1)
    processor = LLMSRTProcessor(feature_extractor, tokenizer, num_query_tokens=audio_embeddings,
                                prompt_layout=tokenizer_prompt_layout(tokenizer))
    frames = feature_extractor.nb_max_frames // 2
    config = LLMSRTConfig(
        audio_config={
            "num_mel_bins": 80,
            "d_model": 32,
            "encoder_layers": 2,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "max_source_positions": frames,
            "decoder_layers": 1,
            "decoder_attention_heads": 2,
            "decoder_ffn_dim": 64,
        },
        qformer_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "hidden_dropout_prob": 0.0,  # deterministic training steps: runs can be compared exactly
            "attention_probs_dropout_prob": 0.0,
        },
        text_config={
            "model_type": text_model_type,
            **TINY_TEXT_MODELS[text_model_type],
            **({"head_dim": hidden_size // 4} if text_model_type != "qwen2" else {}),  # Gemma's default is 256
            "vocab_size": len(tokenizer),
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": 4,
            "max_position_embeddings": 1024,
            "tie_word_embeddings": True,
            "initializer_range": 0.3,  # large random weights: a frozen tiny LLM that can still express a text
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
        },
        num_query_tokens=num_query_tokens,
        audio_token_id=processor.audio_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **config_kwargs,
    )
    torch.manual_seed(seed)
    model = LLMSRTForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, processor


def build_tiny_gemma3(vocab_size: int, hidden_size: int = 32, seed: int = 0):
    """A tiny random `Gemma3ForConditionalGeneration`, vision tower included, shaped as google/gemma-3-27b-it is
    (MCAT's LLM): a 2-layer text model of `hidden_size` with sliding-window layers, a 1-layer SigLIP tower. Its
    image token ids are the last three of `vocab_size` (never used: llmsrt reads its text model only)."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    config = Gemma3Config(
        text_config={"vocab_size": vocab_size, "hidden_size": hidden_size, "intermediate_size": 2 * hidden_size,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "head_dim": hidden_size // 4, "sliding_window": 8, "max_position_embeddings": 256,
                     "initializer_range": 0.3},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 28, "patch_size": 14},
        mm_tokens_per_image=4, image_token_index=vocab_size - 1, boi_token_index=vocab_size - 3,
        eoi_token_index=vocab_size - 2,
    )
    torch.manual_seed(seed)
    return Gemma3ForConditionalGeneration(config).eval()

