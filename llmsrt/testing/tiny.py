"""Tiny random LLM-SRT models built offline: real transformers modules, small enough for CPU tests and smoke runs."""

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor

from ..configuration_llmsrt import LLMSRTConfig
from ..languages import LANGUAGES
from ..modeling_llmsrt import LLMSRTForConditionalGeneration
from ..processing_llmsrt import LLMSRTProcessor
from ..prompt_builder import PromptBuilder

EOS_TOKEN = "<|endoftext|>"


def build_tiny_tokenizer(corpus: list[str], vocab_size: int = 512, bos_token: str | None = None) -> PreTrainedTokenizerFast:
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
    tags = [PromptBuilder().tag(code) for code in LANGUAGES]
    tokenizer.train_from_iterator(list(corpus) + tags, trainer=trainer)
    if bos_token:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A", pair=f"{bos_token} $A $B", special_tokens=[(bos_token, tokenizer.token_to_id(bos_token))]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN, bos_token=bos_token)


def build_tiny_model_and_processor(
    corpus: list[str],
    num_query_tokens: int = 8,
    chunk_seconds: int = 5,
    hidden_size: int = 64,
    num_layers: int = 2,
    vocab_size: int = 512,
    seed: int = 0,
    **config_kwargs,
) -> tuple[LLMSRTForConditionalGeneration, LLMSRTProcessor]:
    """A randomly initialised LLM-SRT with a Whisper encoder window of `chunk_seconds` and a tokenizer trained on
    `corpus`. Same module classes as the real model, a few hundred thousand parameters. `config_kwargs` are further
    `LLMSRTConfig` fields (`query_time_window`, `variable_length_encoding`, ...)."""
    import torch

    tokenizer = build_tiny_tokenizer(corpus, vocab_size)
    feature_extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=chunk_seconds)
    processor = LLMSRTProcessor(feature_extractor, tokenizer, num_query_tokens=num_query_tokens)
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
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            "tie_word_embeddings": True,
            "initializer_range": 0.3,  # large random weights: a frozen tiny LLM that can still express a text
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
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
