"""LLM-SRT as a vLLM model: llmsrt's Whisper encoder and speech adapter in front of vLLM's own LLM (the folder's
`text_config` architecture: Qwen2, Gemma-3's text model, Gemma-2, ...).

The audio path is llmsrt's code, not a copy: `LLMSRTWhisperEncoder` and `LLMSRTSpeechAdapter` are built from the
folder's config, and the methods that turn log-mel features into audio embeddings (`get_audio_features`,
`encode_frames`, `_run_audio_encoder` of `llmsrt.LLMSRTForConditionalGeneration`) are bound to this class, so every
config option they read (`variable_length_encoding`, `query_time_window`, ...)
computes what it computes in transformers, and so are the audio embeddings' dtype and `audio_embedding_scale`
(`audio_embeddings_for_llm`). The LLM is vLLM's implementation of the folder's `text_config` architecture (paged
attention, continuous batching, tensor parallelism on GPUs); vLLM embeds the text tokens with it (Gemma's scaled by
`sqrt(hidden_size)`, as transformers' Gemma embeddings are) and writes the audio embeddings over the placeholders.

A request's prompt holds one `<|audio|>` placeholder, written by the folder's processor
(`llmsrt.serving.prompts.request_prompt`, with the folder's `language_tags` and `prompt_layout`); the multimodal
processor expands it into `num_audio_embeddings` placeholders, the positions that `embed_multimodal`'s
`(num_audio_embeddings, D_llm)` embeddings per clip are written over.

Imported by vLLM only (registered by name in `llmsrt.serving.vllm_plugin`); it imports vLLM.
"""

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from transformers import BatchFeature, PreTrainedConfig
from transformers.models.whisper.tokenization_whisper import LANGUAGES as WHISPER_LANGUAGES
from vllm.config import ModelConfig, SpeechToTextConfig, VllmConfig
from vllm.config.speech_to_text import SpeechToTextParams
from vllm.inputs import MultiModalDataDict, PromptType, TokensPrompt
from vllm.model_executor.models.interfaces import (
    MultiModalEmbeddings,
    SupportsMultiModal,
    SupportsPP,
    SupportsTranscription,
)
from vllm.model_executor.models.utils import AutoWeightsLoader, init_vllm_registered_model, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import MultiModalDataItems, MultiModalDataParser
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
)
from vllm.sequence import IntermediateTensors

from ..audio_utils import prepare_audio
from ..configuration_llmsrt import LLMSRTConfig
from ..languages import LANGUAGES
from ..modeling_llmsrt import LLMSRTForConditionalGeneration as TransformersLLMSRT
from ..modeling_llmsrt import LLMSRTSpeechAdapter, LLMSRTWhisperEncoder
from ..processing_llmsrt import AUDIO_TOKEN, LLMSRTProcessor
from ..prompt_builder import PromptBuilder
from .prompts import folder_processor, iso639_3, speech_to_text_prompt_ids

# Keys of a saved config.json that no config field declares and that do not change what the model computes.
CONFIG_BOOKKEEPING = {"auto_map", "architectures", "transformers_version", "model_type", "bos_token_id",
                      "eos_token_id", "pad_token_id", "torch_dtype", "dtype"}

# Tensors of a saved folder that serving does not read: the spoken-language ID head (vLLM requests name src_lang).
UNSERVED_PREFIXES = ("language_id_head.",)

# ISO 639-1 codes (what the OpenAI audio endpoints take) of llmsrt's languages, where Whisper has one (vLLM checks
# them against Whisper's language map).
ISO639_1_LANGUAGES = {
    language.whisper: language.name
    for language in LANGUAGES.values()
    if language.whisper and language.whisper in WHISPER_LANGUAGES
}


def check_servable(config: LLMSRTConfig) -> None:
    """Refuse, with the reason, a folder whose config asks for something this plugin would not compute as
    transformers does.

    The audio path runs llmsrt's own methods, so every adapter option of the installed llmsrt is served as it is. A
    config key the installed `LLMSRTConfig` does not define (a folder saved by another llmsrt version) with a value
    other than `None`/`False` may change the audio embeddings in a way this code does not know: refused.
    """
    known = set(LLMSRTConfig.__dataclass_fields__) | set(PreTrainedConfig.__dataclass_fields__) | CONFIG_BOOKKEEPING
    unknown = {
        key: value
        for key, value in config.to_dict().items()
        if key not in known and value not in (None, False) and not key.startswith("_")
    }
    if unknown:
        raise ValueError(
            f"This folder's config sets {sorted(unknown)}, which the installed llmsrt does not implement, so vLLM "
            "cannot compute its audio embeddings as the model was trained: install the llmsrt version that saved "
            "the folder (its remote-code files name it) or remove the options if they are at their defaults."
        )
    if config.audio_token_id is None:
        raise ValueError("config.audio_token_id is None: the folder has no audio placeholder; save it with "
                         "LLMSRTProcessor.audio_token_id in the config (as from_pretrained_parts does).")


class LLMSRTProcessingInfo(BaseProcessingInfo):
    """Shapes and limits of LLM-SRT's inputs: one clip per prompt, `num_audio_embeddings` embeddings per clip."""

    def get_hf_config(self) -> LLMSRTConfig:
        return self.ctx.get_hf_config(LLMSRTConfig)

    def get_hf_processor(self, **kwargs: object) -> LLMSRTProcessor:
        return self.ctx.get_hf_processor(LLMSRTProcessor, **kwargs)

    def get_supported_mm_processor_kwargs(self) -> dict[str, set[str]]:
        return {"text_kwargs": set(), "audio_kwargs": set()}

    def get_data_parser(self) -> MultiModalDataParser:
        """Audio of any rate and channel count is mixed to mono and resampled to 16 kHz with soxr, as the pipeline
        does (vLLM's default, torchaudio, is missing from its CPU build)."""
        return MultiModalDataParser(
            target_sr=self.get_hf_processor().sampling_rate,
            target_channels=1,
            audio_resample_method="soxr",
            expected_hidden_size=self._get_expected_hidden_size(),
            allow_missing_mm_embeddings=self.allow_missing_mm_embeddings,
        )

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"audio": 1}

    def get_default_tok_params(self):
        """Prompts are tokenised without the tokenizer's special tokens: the folder's prompt builder writes every
        one its layout places (the BOS after the audio for Gemma), as `LLMSRTProcessor` tokenises them."""
        return super().get_default_tok_params().with_kwargs(add_special_tokens=False)

    def get_mm_max_tokens_per_item(self, seq_len: int, mm_counts: Mapping[str, int]) -> Mapping[str, int]:
        return {"audio": self.get_hf_config().num_audio_embeddings}


class LLMSRTDummyInputsBuilder(BaseDummyInputsBuilder[LLMSRTProcessingInfo]):
    """Profiling inputs: a full-window clip (a quiet tone) and one placeholder per clip."""

    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return AUDIO_TOKEN * mm_counts.get("audio", 0)

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int], mm_options=None) -> MultiModalDataDict:
        processor = self.info.get_hf_processor()
        clips = self._get_dummy_audios(
            length=int(processor.max_audio_seconds * processor.sampling_rate),
            num_audios=mm_counts.get("audio", 0),
            overrides=(mm_options or {}).get("audio"),
        )
        # Not silence: the processor refuses silent clips (there is no speech to translate).
        return {"audio": [np.sin(np.arange(clip.shape[-1], dtype=np.float32) / 8.0) * 0.1 for clip in clips]}


class LLMSRTMultiModalProcessor(BaseMultiModalProcessor[LLMSRTProcessingInfo]):
    """Log-mel features as `LLMSRTProcessor` computes them, and the expansion of each `<|audio|>` into
    `num_audio_embeddings` placeholders (the prompt itself is tokenised by vLLM)."""

    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]) -> BatchFeature:
        """`{"audio": [waveform, ...]}` (16 kHz mono, resampled by vLLM's parser) -> `input_features`
        `(B, n_mels, T_mel)` and `input_features_mask` `(B, T_mel)`."""
        processor = self.info.get_hf_processor()
        waveforms = [
            prepare_audio(np.asarray(clip, dtype=np.float32), processor.sampling_rate, processor.sampling_rate,
                          processor.max_audio_seconds, name=f"audio clip {index}")
            for index, clip in enumerate(hf_data.get("audio", []))
        ]
        features = processor._log_mel(waveforms)
        return BatchFeature({"input_features": features["input_features"],
                             "input_features_mask": features["attention_mask"]})

    def _get_mm_fields_config(
        self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]
    ) -> Mapping[str, MultiModalFieldConfig]:
        return {
            "input_features": MultiModalFieldConfig.batched("audio"),
            "input_features_mask": MultiModalFieldConfig.batched("audio"),
        }

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, object],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        audio_token_id = self.info.get_hf_config().audio_token_id
        num_audio_embeddings = self.info.get_hf_config().num_audio_embeddings
        return [
            PromptReplacement(
                modality="audio", target=[audio_token_id], replacement=[audio_token_id] * num_audio_embeddings
            )
        ]


@MULTIMODAL_REGISTRY.register_processor(
    LLMSRTMultiModalProcessor, info=LLMSRTProcessingInfo, dummy_inputs=LLMSRTDummyInputsBuilder
)
class LLMSRTForConditionalGeneration(nn.Module, SupportsMultiModal, SupportsPP, SupportsTranscription):
    """Speech in, text out, on vLLM. Weight names are those of a saved llmsrt folder (`audio_encoder.*`,
    `speech_adapter.*`, `language_model.*`), LoRA merged as llmsrt saves it."""

    supported_languages = ISO639_1_LANGUAGES

    # llmsrt's audio path, bound to this module (it reads `self.config`, `self.audio_encoder`, `self.speech_adapter`).
    get_audio_features = TransformersLLMSRT.get_audio_features
    qformer_frame_mask = TransformersLLMSRT.qformer_frame_mask
    encode_frames = TransformersLLMSRT.encode_frames
    _run_audio_encoder = TransformersLLMSRT._run_audio_encoder
    audio_embeddings_for_llm = TransformersLLMSRT.audio_embeddings_for_llm

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("audio"):
            return AUDIO_TOKEN
        raise ValueError("LLM-SRT reads audio only.")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__()
        config: LLMSRTConfig = vllm_config.model_config.hf_config
        check_servable(config)
        self.config = config
        self.model_folder = vllm_config.model_config.model
        self.encoder_cache = None  # read by llmsrt's `encode_frames`: vLLM caches multimodal embeddings itself
        with self._mark_tower_model(vllm_config, "audio"):
            self.audio_encoder = LLMSRTWhisperEncoder(config.audio_config).eval()
            # Kept in float32 whatever the LLM's dtype, as transformers keeps it (`_keep_in_fp32_modules`).
            self.speech_adapter = LLMSRTSpeechAdapter(config).float().eval()
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config,
                hf_config=config.text_config,
                prefix=maybe_prefix(prefix, "language_model"),
            )
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        """`input_features` `(B, n_mels, T_mel)` and `input_features_mask` `(B, T_mel)` of the clips vLLM batched ->
        one `(num_audio_embeddings, D_llm)` tensor per clip, in the LLM's dtype and scaled as in transformers."""
        features, mask = kwargs.get("input_features"), kwargs.get("input_features_mask")
        if features is None:
            return []
        if isinstance(features, (list, tuple)):
            features, mask = torch.stack(list(features)), torch.stack(list(mask))
        audio_embeds = self.get_audio_features(features, mask).pooler_output
        return tuple(self.audio_embeddings_for_llm(audio_embeds, next(self.language_model.parameters()).dtype))

    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors: IntermediateTensors | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor | IntermediateTensors:
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        """The LLM's logits with the audio placeholder suppressed (it is input only, as in llmsrt's
        `generation_config.suppress_tokens`)."""
        logits = self.language_model.compute_logits(hidden_states)
        if logits is not None:
            logits[..., self.config.audio_token_id] = float("-inf")
        return logits

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Load a saved llmsrt folder. A changes-only folder (`stored_weights == "changed"`) holds only what differs
        from the pretrained parts its config names: llmsrt's `from_pretrained` rebuilds the complete model and its
        tensors are loaded instead of the folder's."""
        if self.config.stored_weights == "changed":
            weights = self._complete_weights()
        weights = ((name, tensor) for name, tensor in weights if not name.startswith(UNSERVED_PREFIXES))
        return AutoWeightsLoader(self).load_weights(weights)

    def _complete_weights(self) -> Iterable[tuple[str, torch.Tensor]]:
        model = TransformersLLMSRT.from_pretrained(self.model_folder)
        yield from model.state_dict().items()

    # --- /v1/audio/transcriptions and /v1/audio/translations ---

    @classmethod
    def get_generation_prompt(cls, stt_params: SpeechToTextParams) -> PromptType:
        """`transcribe` -> task `asr` in `language`; `translate` -> task `srt` from `language` to `to_language`
        (English when not given, as OpenAI's endpoint). ISO 639-1 codes as the endpoints take them, or llmsrt's own
        ISO 639-3 codes. The prompt is the folder's processor's (`llmsrt.serving.prompts.speech_to_text_prompt_ids`:
        its tags and layout). The answer is cut to the translation by `post_process_output`."""
        processor = folder_processor(stt_params.model_config.model)
        return TokensPrompt(
            prompt_token_ids=speech_to_text_prompt_ids(
                processor, stt_params.task_type, stt_params.language, stt_params.to_language
            ),
            multi_modal_data={"audio": (stt_params.audio, stt_params.stt_config.sample_rate)},
        )

    @classmethod
    def validate_language(cls, language: str | None) -> str | None:
        """ISO 639-1 codes of llmsrt's languages and llmsrt's own codes (ISO 639-3, FLEURS names) are accepted."""
        if language is None:
            return None
        iso639_3(language)  # a ValueError naming the accepted codes
        return language

    @classmethod
    def post_process_output(cls, text: str) -> str:
        """An SRT answer (`transcript<|src|><|tgt|>translation`) -> its translation; any other answer as it is."""
        transcription, translation = PromptBuilder().split_answer(text)
        return translation if translation else transcription

    @classmethod
    def get_speech_to_text_config(cls, model_config: ModelConfig, task_type: str) -> SpeechToTextConfig:
        """Clips up to the encoder window (30 s for Whisper); longer audio is cut at quiet points by vLLM."""
        processor = folder_processor(model_config.model)
        return SpeechToTextConfig(sample_rate=processor.sampling_rate,
                                  max_audio_clip_s=int(processor.max_audio_seconds))

    @classmethod
    def get_num_audio_tokens(cls, audio_duration_s: float, stt_config: SpeechToTextConfig,
                             model_config: ModelConfig) -> int | None:
        return model_config.hf_config.num_audio_embeddings

