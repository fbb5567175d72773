"""LLM-SRT: a frozen Whisper encoder, a Q-Former speech adapter and a causal LLM (arXiv 2409.19510).

Data flow for a batch of `B` clips:

    input_features (B, n_mels, T_mel)                      log-mel features, padded to the encoder window
      -> WhisperEncoder (frozen, eval mode)             -> (B, T_mel // 2, D_whisper)
      -> LLMSRTSpeechAdapter: learnable queries (80; MCAT: 150) cross-attend to the frames through a Blip-2
         Q-Former (the clip's real frames; all frames of the window with `config.qformer_attends_padding`, as the
         reference), mean-pooled by `config.query_pooling_stride` (MCAT: 5), then an MLP + LayerNorm
                                                        -> (B, num_audio_embeddings, D_llm)
      -> scattered over the audio placeholder tokens of `input_ids` (after the LLM embedded the text; scaled by
         `config.audio_embedding_scale` where set)
      -> the causal LM (Qwen2, Gemma-3's or Gemma-2's text model, ...), which reads `[audio][prompt][answer]`
         (`[audio][<bos>][prompt][answer]` for MCAT on Gemma) and predicts the answer.
"""

import copy
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, Blip2QFormerModel, GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.generation import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
)
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast
from transformers.models.whisper.modeling_whisper import WhisperEncoder
from transformers.utils import torch_compilable_check

from .configuration_llmsrt import LLMSRTConfig
from .language_id import LLMSRTLanguageIdHead, check_language_id_languages, pooled_frames

# The paper's decoding settings: the defaults of `generate` for a new model (a saved generation_config wins).
# `no_repeat_ngram_size` and `repetition_penalty` read the generated answer only, as in the paper's reference
# (which generates from embeddings): see `LLMSRTForConditionalGeneration.generate`.
PAPER_DECODING = {"num_beams": 5, "max_new_tokens": 400, "no_repeat_ngram_size": 5, "repetition_penalty": 1.0}

# Arguments of `from_pretrained` that say where a folder is (also used to read a changes-only folder's files).
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
# The ones that also reach the pretrained parts a changes-only folder names (`revision`, `subfolder`: the folder's).
PART_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token")
# Arguments of `from_pretrained` that a changes-only folder cannot take, and why.
CHANGES_ONLY_REFUSED = {
    "state_dict": "its weights are the recorded parts with the folder's tensors on top; load a complete folder.",
    "gguf_file": "the folder is not a GGUF file (its config names the GGUF file of its LLM, if any).",
}

AUTO_MAP = {
    "AutoConfig": "configuration_llmsrt.LLMSRTConfig",
    "AutoModel": "modeling_llmsrt.LLMSRTForConditionalGeneration",
    "AutoModelForSpeechSeq2Seq": "modeling_llmsrt.LLMSRTForConditionalGeneration",
}


class LLMSRTWhisperEncoder(WhisperEncoder):
    """Whisper's encoder (same weights and names) that can also read fewer mel frames than its 30-s window.

    With `input_features` of the full window it is exactly `WhisperEncoder`. Shorter inputs (variable-length
    encoding: the batch is cut to its longest clip) use the first positional embeddings, and `attention_mask`
    `(B, T_enc)` keeps padded frames out of self-attention, so a clip encodes the same whatever it is batched with.
    """

    def forward(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        window = self.config.max_source_positions * self.conv1.stride[0] * self.conv2.stride[0]
        mel_frames = input_features.shape[-1]
        if mel_frames == window and attention_mask is None:
            return super().forward(input_features, **kwargs)
        if mel_frames > window or mel_frames % 2:
            raise ValueError(f"Expected an even number of mel frames up to {window}, got {mel_frames}.")
        hidden_states = nn.functional.gelu(self.conv1(input_features))
        hidden_states = nn.functional.gelu(self.conv2(hidden_states)).permute(0, 2, 1)
        positions = torch.arange(hidden_states.shape[1], device=hidden_states.device)
        hidden_states = hidden_states + self.embed_positions(positions)
        key_mask = None
        if attention_mask is not None:
            blocked = attention_mask[:, None, None, : hidden_states.shape[1]] == 0
            key_mask = torch.zeros(blocked.shape, dtype=hidden_states.dtype, device=hidden_states.device)
            key_mask = key_mask.masked_fill(blocked, torch.finfo(hidden_states.dtype).min)
        for layer in self.layers:
            hidden_states = layer(hidden_states, key_mask, **kwargs)
        return BaseModelOutput(last_hidden_state=self.layer_norm(hidden_states))


class LLMSRTProjector(nn.Module):
    """The MLP of the speech adapter: (B, Q, D_qformer) -> (B, Q, D_llm).

    With `config.adapter_hidden_size == 0`: Linear + LayerNorm; otherwise Linear, ReLU, Linear, LayerNorm
    (the paper picks the hidden width from the LLM width, see `paper_adapter_hidden_size`).
    """

    def __init__(self, config: LLMSRTConfig):
        super().__init__()
        in_size = config.qformer_config.hidden_size
        out_size = config.text_config.hidden_size
        hidden = config.adapter_hidden_size
        if hidden:
            self.layers = nn.Sequential(nn.Linear(in_size, hidden), nn.ReLU(), nn.Linear(hidden, out_size))
        else:
            self.layers = nn.Sequential(nn.Linear(in_size, out_size))
        self.layer_norm = nn.LayerNorm(out_size, eps=config.adapter_layer_norm_eps)

    def forward(self, query_output: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(self.layers(query_output))


class LLMSRTSpeechAdapter(nn.Module):
    """Learnable queries + Q-Former (+ mean-pooling of consecutive queries) + MLP: every clip becomes exactly
    `config.num_audio_embeddings` LLM embeddings.

    Kept in one module so that it trains, saves and (with peft) is listed in `modules_to_save` as a unit.
    """

    def __init__(self, config: LLMSRTConfig):
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, config.qformer_config.hidden_size))
        self.qformer = Blip2QFormerModel(config.qformer_config)
        self.projector = LLMSRTProjector(config)
        self.query_time_window = config.query_time_window
        self.query_pooling_stride = config.query_pooling_stride

    def pool_queries(self, query_output: torch.Tensor) -> torch.Tensor:
        """Mean over consecutive groups of `query_pooling_stride` queries: `(B, Q, D)` -> `(B, Q // stride, D)`; a
        remainder of `Q % stride` queries is dropped from the end (MCAT's `qqm` projector: 150 -> 30)."""
        stride = self.query_pooling_stride
        if stride == 1:
            return query_output
        batch, count, width = query_output.shape
        kept = count - count % stride
        return query_output[:, :kept].reshape(batch, kept // stride, stride, width).mean(2)

    def time_window_mask(self, frame_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The cross-attention mask of `config.query_time_window = k`: query `i` of `Q` sees the `i`-th of `Q`
        equal slices of its clip's real frames, widened by `k` slices on each side (never empty).

        Args:
            frame_mask: `(B, T_enc)`, 1 on real frames and 0 on padding.

        Returns:
            `(B, 1, Q, T_enc)` additive mask: 0 where a query may attend, the dtype's minimum elsewhere.
        """
        num_queries = self.query_tokens.shape[1]
        lengths = frame_mask.sum(-1, keepdim=True).long()  # (B, 1)
        query_index = torch.arange(num_queries, device=frame_mask.device)[None, :]  # (1, Q)
        first = torch.div((query_index - self.query_time_window) * lengths, num_queries, rounding_mode="floor")
        end = -torch.div(-(query_index + 1 + self.query_time_window) * lengths, num_queries, rounding_mode="floor")
        frames = torch.arange(frame_mask.shape[1], device=frame_mask.device)[None, None, :]  # (1, 1, T)
        allowed = (frames >= first[..., None]) & (frames < end[..., None]) & frame_mask[:, None, :].bool()
        blocked = torch.zeros(allowed.shape, dtype=dtype, device=frame_mask.device)
        return blocked.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]

    def forward(
        self, encoder_hidden_states: torch.Tensor, encoder_attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """
        Args:
            encoder_hidden_states: `(B, T_enc, D_whisper)` Whisper encoder output.
            encoder_attention_mask: `(B, T_enc)`, 1 on real frames and 0 on padding; `None` attends to all (the
                reference's reading of the window, see `LLMSRTForConditionalGeneration.qformer_frame_mask`).
                With `config.query_time_window` set, it becomes the queries' time windows (`time_window_mask`).

        Returns:
            `(B, num_audio_embeddings, D_llm)` audio embeddings.
        """
        queries = self.query_tokens.expand(encoder_hidden_states.shape[0], -1, -1)
        if self.query_time_window is not None:
            if encoder_attention_mask is None:
                encoder_attention_mask = torch.ones(encoder_hidden_states.shape[:2], device=queries.device)
            encoder_attention_mask = self.time_window_mask(encoder_attention_mask, queries.dtype)
        query_output = self.qformer(
            query_embeds=queries,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
        ).last_hidden_state
        return self.projector(self.pool_queries(query_output).to(self.projector.layer_norm.weight.dtype))


class LLMSRTAnswerLogitsProcessor(LogitsProcessor):
    r"""
    Runs a [`LogitsProcessor`] on the generated answer only: the first `prompt_length` columns of `input_ids` (left
    padding, audio placeholders and prompt tags) are cut off before `processor` reads them.

    The paper's reference generates from `inputs_embeds`, so its `no_repeat_ngram_size` only sees generated tokens.
    Given the prompt as `input_ids`, transformers would ban n-grams of the prompt too, and an SRT answer
    (`transcript<|eng|><|deu|>translation`) must repeat the prompt's tag pair (about 10 BPE tokens for Qwen).

    Args:
        processor (`LogitsProcessor`):
            A processor that reads past tokens, such as [`NoRepeatNGramLogitsProcessor`].
        prompt_length (`int`):
            Length of the prompt given to `generate` (`input_ids.shape[1]`, padding included).
    """

    supports_continuous_batching = False

    def __init__(self, processor: LogitsProcessor, prompt_length: int):
        if not isinstance(prompt_length, int) or prompt_length < 0:
            raise ValueError(f"`prompt_length` has to be a non-negative integer, but is {prompt_length}")
        self.processor = processor
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """
        Args:
            input_ids: `(batch_size * num_beams, prompt_length + generated)` the prompt and the tokens generated so far.
            scores: `(batch_size * num_beams, vocab_size)` next-token scores.

        Returns:
            `(batch_size * num_beams, vocab_size)` the scores as `processor` leaves them given
            `input_ids[:, prompt_length:]`, `(batch_size * num_beams, generated)`.
        """
        return self.processor(input_ids[:, self.prompt_length :], scores)


class LLMSRTPreTrainedModel(PreTrainedModel):
    config: LLMSRTConfig
    base_model_prefix = "llmsrt"
    input_modalities = ("audio", "text")
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_flash_attn = False  # the Blip-2 Q-Former does not support it
    _supports_sdpa = True
    _supports_attention_backend = True
    _keep_in_fp32_modules = ["speech_adapter", "language_id_head"]
    _no_split_modules = ["WhisperEncoderLayer", "Blip2QFormerLayer"]

    def _init_weights(self, module: nn.Module):
        super()._init_weights(module)
        if isinstance(module, LLMSRTSpeechAdapter):
            init.normal_(module.query_tokens, mean=0.0, std=1.0)


def part_name(name_or_path: str | os.PathLike) -> str:
    """How the config records a pretrained part: a Hub id as given, a local folder as an absolute path (a
    changes-only folder is loaded on top of it from any working directory)."""
    path = Path(name_or_path)
    return str(path.resolve()) if path.is_dir() else str(name_or_path)


def load_pretrained_parts(
    whisper: str,
    llm: str,
    gguf_file: str | None = None,
    dtype: torch.dtype | str | None = None,
    download_kwargs: dict | None = None,
) -> tuple[nn.Module, nn.Module]:
    """A pretrained `WhisperModel` and causal LM (a GGUF file is de-quantized into a plain model); `download_kwargs`
    (`cache_dir`, `token`, `local_files_only`, ...) reach both."""
    from transformers import WhisperModel

    download_kwargs = download_kwargs or {}
    whisper_model = WhisperModel.from_pretrained(whisper, dtype=dtype, **download_kwargs)
    language_model = AutoModelForCausalLM.from_pretrained(llm, gguf_file=gguf_file, dtype=dtype, **download_kwargs)
    if gguf_file is not None:
        # A GGUF-loaded model keeps its quantizer and refuses `save_pretrained`: copy it into a plain model.
        language_model.config.quantization_config = None
        language_model = without_quantizer(language_model)
    return whisper_model, text_causal_lm(language_model)


def text_causal_lm(language_model: nn.Module) -> nn.Module:
    """The text-only causal LM inside what `AutoModelForCausalLM` loaded: the model itself when its config is a
    text config; for a multimodal model (a `Gemma3ForConditionalGeneration` folder, as MCAT's `gemma-3-27b-it`), the
    causal LM of its text config holding the same decoder and LM head modules (the vision tower is left out: it never
    sees audio). Refuses a model whose text decoder or head cannot be found."""
    text_config = language_model.config.get_text_config()
    if text_config is language_model.config:
        return language_model
    decoder, head = language_model.get_decoder(), language_model.get_output_embeddings()
    with torch.device("meta"):
        text_model = AutoModelForCausalLM.from_config(text_config, dtype=language_model.dtype)
    if type(decoder) is not type(text_model.get_decoder()) or head is None:
        raise ValueError(
            f"{type(language_model).__name__} holds a {type(decoder).__name__} decoder, not the "
            f"{type(text_model.get_decoder()).__name__} that {type(text_model).__name__} (its text config's causal LM) "
            "needs: llmsrt reads decoder-only LLMs and multimodal models whose text side is one."
        )
    setattr(text_model, text_model.base_model_prefix, decoder)  # the causal LM's own decoder (`model`)
    text_model.set_output_embeddings(head)
    if text_model.get_decoder() is not decoder or any(p.is_meta for p in text_model.parameters()):
        raise ValueError(f"Could not move the text decoder of {type(language_model).__name__} into "
                         f"{type(text_model).__name__}.")
    text_model.generation_config = language_model.generation_config
    return text_model


def without_quantizer(language_model: nn.Module) -> nn.Module:
    """The same weights in a plain model of the same class (built on the meta device: no random initialisation)."""
    with torch.device("meta"):
        plain_model = AutoModelForCausalLM.from_config(language_model.config, dtype=language_model.dtype)
    plain_model.load_state_dict(language_model.state_dict(), assign=True)
    for name, buffer in language_model.named_buffers():  # non-persistent buffers (rotary frequencies)
        module_name, _, buffer_name = name.rpartition(".")
        plain_model.get_submodule(module_name)._buffers[buffer_name] = buffer
    if plain_model.config.tie_word_embeddings:
        plain_model.tie_weights()
    return plain_model


class LLMSRTForConditionalGeneration(LLMSRTPreTrainedModel, GenerationMixin):
    """Speech in, text out: transcription, translation or both, selected by the prompt's language tags.

    The Whisper encoder is frozen (no gradients, eval mode) in every state of the model, including after
    `from_pretrained`; train the adapter directly and the LLM through LoRA (`llmsrt.model_tools.lora`).
    """

    def __init__(self, config: LLMSRTConfig):
        super().__init__(config)
        self.audio_encoder = LLMSRTWhisperEncoder(config.audio_config)
        self.speech_adapter = LLMSRTSpeechAdapter(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.language_id_head = None
        if config.language_id_languages:
            languages = len(config.language_id_languages)
            self.language_id_head = LLMSRTLanguageIdHead(config.audio_config.d_model, languages)
        self.post_init()
        self.generation_config.update(**PAPER_DECODING)
        if config.audio_token_id is not None:
            # The placeholder is input only: never generate it.
            self.generation_config.suppress_tokens = [config.audio_token_id]
        self.freeze_audio_encoder()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, with the arguments it takes (`dtype`, `device_map`, `attn_implementation`,
        `quantization_config`, config overrides, ...), for every folder llmsrt writes. A changes-only folder
        (`config.stored_weights == "changed"`, written by `save_pretrained(..., changed_only=True)`) is read as the
        pretrained parts its config names with the folder's tensors on top, and that complete state dict goes
        through transformers' own loading, so each argument acts as on a complete folder. The Whisper encoder comes
        back frozen either way."""
        hub_kwargs = {name: kwargs[name] for name in HUB_KWARGS if name in kwargs}
        config = kwargs.get("config")
        if config is None or isinstance(config, (str, os.PathLike)):
            config = LLMSRTConfig.from_pretrained(config or pretrained_model_name_or_path, **hub_kwargs)
        if getattr(config, "stored_weights", "all") == "changed":
            model = cls._from_changes(pretrained_model_name_or_path, config, *args, **kwargs)
        else:
            model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model.freeze_audio_encoder()
        return model

    @classmethod
    def _from_changes(cls, folder, folder_config: LLMSRTConfig, *args, **kwargs) -> "LLMSRTForConditionalGeneration":
        """A changes-only folder: the parts named in `folder_config` (read in its `parts_dtype`) with the folder's
        tensors over them, loaded by `PreTrainedModel.from_pretrained(None, state_dict=...)` with `kwargs`."""
        for name, reason in CHANGES_ONLY_REFUSED.items():
            if kwargs.get(name) is not None:
                raise ValueError(f"`{name}` cannot be used with the changes-only folder {folder}: {reason}")
        hub_kwargs = {name: kwargs.pop(name) for name in HUB_KWARGS if name in kwargs}
        part_kwargs = {name: value for name, value in hub_kwargs.items() if name in PART_HUB_KWARGS}
        dtype, torch_dtype = kwargs.pop("dtype", None), kwargs.pop("torch_dtype", None)
        dtype = dtype if dtype is not None else torch_dtype
        state_dict = cls._changes_on_parts(folder, folder_config, hub_kwargs, part_kwargs)
        if not isinstance(kwargs.get("config"), PreTrainedConfig):
            # transformers reads the folder's config and splits config overrides from loading arguments.
            kwargs["config"] = os.fspath(kwargs.get("config") or folder)
        load_generation_config = "generation_config" not in kwargs
        model = super().from_pretrained(
            None, *args, state_dict=state_dict, dtype=dtype or folder_config.parts_dtype, **hub_kwargs, **kwargs
        )
        model.config.stored_weights, model.config.parts_dtype = "all", None  # in memory, the model is complete
        if load_generation_config:
            try:
                model.generation_config = GenerationConfig.from_pretrained(folder, **hub_kwargs)
            except OSError:
                pass  # no saved generation config: the paper's defaults, set in __init__, stay
        return model

    @classmethod
    def _changes_on_parts(cls, folder, config: LLMSRTConfig, hub_kwargs: dict, part_kwargs: dict) -> dict:
        """The complete state dict of a changes-only folder: the recorded parts' tensors, the folder's over them."""
        from safetensors.torch import load_file
        from transformers.utils import SAFE_WEIGHTS_NAME, cached_file

        parts = cls._from_recorded_parts(LLMSRTConfig.from_dict(config.to_dict()), config.parts_dtype, part_kwargs)
        state_dict = parts.state_dict()
        changes = load_file(cached_file(folder, SAFE_WEIGHTS_NAME, **hub_kwargs))
        unexpected = sorted(name for name in changes if name not in state_dict)
        if unexpected:
            raise ValueError(f"{folder} stores tensors the model does not have: {unexpected[:5]}.")
        state_dict.update(changes)
        return state_dict

    @classmethod
    def from_pretrained_parts(
        cls,
        whisper: str,
        llm: str,
        audio_token_id: int,
        gguf_file: str | None = None,
        dtype: torch.dtype | str | None = None,
        **config_kwargs,
    ) -> "LLMSRTForConditionalGeneration":
        """Build a model from a pretrained Whisper and a pretrained causal LM, with a freshly initialised adapter.

        Args:
            whisper: Hub id or local folder of a Whisper checkpoint (only its encoder is kept).
            llm: Hub id or local folder of a causal LM (Qwen2.5 in the paper).
            audio_token_id: id of the processor's audio placeholder in the LLM's tokenizer
                (`LLMSRTProcessor.audio_token_id`); embeddings are resized when it lies outside the vocabulary.
            gguf_file: a GGUF file inside `llm`, loaded (and de-quantized) by transformers.
            dtype: dtype of the pretrained parts; the adapter stays in float32.
            config_kwargs: further `LLMSRTConfig` fields (`num_query_tokens`, `qformer_config`, LoRA settings...).
        """
        whisper_model, language_model = load_pretrained_parts(whisper, llm, gguf_file, dtype)
        text_config = language_model.config.to_dict()
        text_config.pop("quantization_config", None)
        config = LLMSRTConfig(
            audio_config=whisper_model.config.to_dict(),
            text_config=text_config,
            audio_token_id=audio_token_id,
            audio_model_name=part_name(whisper),
            text_model_name=part_name(llm),
            text_model_gguf_file=gguf_file,
            **config_kwargs,
        )
        return cls._assemble(config, whisper_model, language_model)

    @classmethod
    def _assemble(cls, config: LLMSRTConfig, whisper_model: nn.Module, language_model: nn.Module):
        """The model of `config` holding the parts' weights and a freshly initialised adapter."""
        with torch.device("meta"):
            model = cls(config)
        # Whisper's weights in llmsrt's encoder class (which can also read clips shorter than the window).
        model.audio_encoder.load_state_dict(whisper_model.get_encoder().state_dict(), assign=True)
        model.language_model = language_model
        model.speech_adapter = LLMSRTSpeechAdapter(config)
        for module in model.speech_adapter.modules():
            model._init_weights(module)
        audio_token_id = config.audio_token_id
        if audio_token_id >= model.get_input_embeddings().num_embeddings:
            # The placeholder's own rows are never used: placeholders are embedded as id 0 and then replaced, and
            # generation suppresses the id. Zero them rather than leave whatever the resize put there.
            old_size = model.get_input_embeddings().num_embeddings
            model.language_model.resize_token_embeddings(audio_token_id + 1, mean_resizing=False)
            with torch.no_grad():
                model.get_input_embeddings().weight[old_size:] = 0
                model.get_output_embeddings().weight[old_size:] = 0
            model.config.text_config.vocab_size = model.language_model.config.vocab_size
        model.freeze_audio_encoder()
        return model

    @classmethod
    def _from_recorded_parts(
        cls, config: LLMSRTConfig, dtype: torch.dtype | str | None, download_kwargs: dict | None = None
    ):
        """Rebuild the pretrained parts that `config` names (a new adapter): the base of a changes-only folder."""
        if not (config.audio_model_name and config.text_model_name):
            raise ValueError(
                "A changes-only folder needs the pretrained parts the model was built from, but its config names "
                f"audio_model_name={config.audio_model_name!r}, text_model_name={config.text_model_name!r}: build "
                "the model with `from_pretrained_parts`, or save a complete folder (`changed_only=False`)."
            )
        whisper_model, language_model = load_pretrained_parts(
            config.audio_model_name, config.text_model_name, config.text_model_gguf_file, dtype, download_kwargs
        )
        return cls._assemble(config, whisper_model, language_model)

    def changed_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors that differ from the pretrained parts named in the config (always the whole speech adapter):
        what a changes-only folder stores. Rebuilds the parts once to compare (about one more model in memory)."""
        base = type(self)._from_recorded_parts(copy.deepcopy(self.config), self.language_model.dtype).state_dict()
        changed = {}
        for name, tensor in self.state_dict().items():
            reference = base.get(name)
            if reference is None or reference.shape != tensor.shape or reference.dtype != tensor.dtype:
                found = None if reference is None else (tuple(reference.shape), reference.dtype)
                raise ValueError(
                    f"{name} {tuple(tensor.shape)} {tensor.dtype} has no counterpart in the pretrained parts "
                    f"(found {found}): this model cannot be stored as changes on top of them; save a complete "
                    "folder (`changed_only=False`)."
                )
            if name.startswith("speech_adapter.") or not torch.equal(tensor, reference):
                changed[name] = tensor
        return changed

    def freeze_audio_encoder(self):
        """Freeze the Whisper encoder: no gradients, and eval mode (no dropout) whatever `train()` is called with."""
        self.audio_encoder.requires_grad_(False)
        self.audio_encoder.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        self.audio_encoder.eval()
        return self

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module):
        self.language_model.set_output_embeddings(value)

    def get_audio_features(
        self, input_features: torch.Tensor, input_features_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Encode log-mel features into LLM input embeddings.

        Args:
            input_features: `(B, n_mels, T_mel)` log-mel features.
            input_features_mask: `(B, T_mel)`, 1 on real mel frames and 0 on padding.

        Returns:
            `(B, num_audio_embeddings, D_llm)` audio embeddings (float32, before `audio_embedding_scale`).
        """
        frames, frame_mask = self.encode_frames(input_features, input_features_mask)
        frames = frames.to(self.audio_encoder.conv1.weight.dtype)
        return self.speech_adapter(frames, self.qformer_frame_mask(frame_mask))

    def qformer_frame_mask(self, frame_mask: torch.Tensor | None) -> torch.Tensor | None:
        """What the Q-Former's cross-attention may read of `encode_frames`' output: the clip's real frames
        (`frame_mask`, `(B, T_enc)`), or with `config.qformer_attends_padding` every frame of the window, padding
        included (`None`): the reference's all-ones mask over its 1500 frames."""
        return None if self.config.qformer_attends_padding else frame_mask

    def encode_frames(
        self, input_features: torch.Tensor, input_features_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The frozen encoder's frames (through the encoder cache when one is enabled).

        Returns:
            `(B, T_enc, D_audio)` frames and their `(B, T_enc)` mask (1 on real frames; `None` without
            `input_features_mask`). With `config.qformer_attends_padding`, `T_enc` is the whole window (the
            Q-Former reads the padded frames too); otherwise frames past the batch's longest clip are dropped.
        """
        frame_mask = None
        if input_features_mask is not None:
            if self.config.variable_length_encoding:
                # Encode up to the longest clip of the batch instead of the whole 30-s window. Two more mel frames
                # keep the convolutions' view of each clip's last real frame the same in any batch.
                longest = int(input_features_mask.sum(-1).max()) + 2
                longest = min(longest + longest % 2, input_features.shape[-1])
                input_features, input_features_mask = input_features[..., :longest], input_features_mask[:, :longest]
            # The encoder's second convolution has stride 2: one encoder frame per two mel frames.
            frame_mask = input_features_mask[:, ::2].to(input_features.device)
        encoder_trains = torch.is_grad_enabled() and any(p.requires_grad for p in self.audio_encoder.parameters())
        input_features = input_features.to(self.audio_encoder.conv1.weight.dtype)
        cache = getattr(self, "encoder_cache", None)
        if cache is not None and input_features_mask is not None and not encoder_trains:
            with torch.no_grad():
                frames = cache.encode(
                    self._run_audio_encoder,
                    input_features,
                    input_features_mask,
                    keep_padding=self.config.qformer_attends_padding,
                )
        else:
            with torch.set_grad_enabled(encoder_trains):
                frames = self._run_audio_encoder(input_features, input_features_mask)
        if frame_mask is not None and not self.config.qformer_attends_padding:
            # Padded frames are masked out of everything downstream: drop those past the batch's longest clip. The
            # 30-s window leaves about 1,250 of them after a 5-s clip, which the Q-Former would read for nothing.
            real_frames = max(int(frame_mask.sum(-1).max()), 1)
            frames, frame_mask = frames[:, :real_frames], frame_mask[:, :real_frames]
        return frames, frame_mask

    def _run_audio_encoder(self, input_features: torch.Tensor, input_features_mask: torch.Tensor | None):
        """`(B, n_mels, T_mel)` -> `(B, T_mel / 2, D_audio)`; with variable-length encoding, padded frames are
        masked out of self-attention (a clip encodes the same in any batch)."""
        encoder_mask = None
        if self.config.variable_length_encoding and input_features_mask is not None:
            encoder_mask = input_features_mask[:, ::2].to(input_features.device)
        return self.audio_encoder(input_features, attention_mask=encoder_mask).last_hidden_state

    def enable_encoder_cache(self, directory: str | None):
        """Read the frozen encoder's outputs from (and write them to) an on-disk cache in `directory`; `None`
        switches it off. Used in training, where every clip is encoded again each epoch and stage."""
        if directory is None:
            self.encoder_cache = None
            return
        from .encoder_cache import EncoderCache

        variant = "variable-length" if self.config.variable_length_encoding else "window"
        if self.config.qformer_attends_padding:
            variant = "window-with-padding"  # entries hold the padded frames too
        self.encoder_cache = EncoderCache(directory, self.audio_encoder, variant)

    def get_placeholder_mask(
        self, input_ids: torch.LongTensor, inputs_embeds: torch.Tensor, audio_features: torch.Tensor | None
    ) -> torch.BoolTensor:
        """The audio placeholders of `input_ids` `(B, L)`, as a mask `(B, L, D_llm)` over `inputs_embeds`, after
        checking that they are exactly as many as the audio embeddings `(num_clips, num_audio_embeddings, D_llm)`
        (none without audio). The check is `torch_compilable_check`, as in transformers' audio and vision models:
        no Python branch on a tensor value, and a compiler hint under `torch.compile`."""
        placeholders = input_ids == self.config.audio_token_id
        found = placeholders.sum()
        if audio_features is None:
            torch_compilable_check(
                found == 0,
                "input_ids contain audio placeholder tokens but no input_features were given: pass the "
                "processor's `input_features` (and `input_features_mask`) with them.",
            )
        else:
            clips, per_clip = audio_features.shape[:2]
            torch_compilable_check(
                found * inputs_embeds.shape[-1] == audio_features.numel(),
                lambda: f"Found {int(found)} audio placeholder tokens for {clips} clip(s); expected {per_clip} per "
                f"clip ({clips * per_clip} in all). Build inputs with LLMSRTProcessor, which writes "
                "`num_audio_embeddings` placeholders per clip.",
            )
        return placeholders.unsqueeze(-1).expand_as(inputs_embeds).to(inputs_embeds.device)

    def add_language_id_head(self, languages: list[str]) -> LLMSRTLanguageIdHead:
        """Give the model a new (untrained) spoken-language ID head over `languages`, recorded in the config so that
        `save_pretrained` / `from_pretrained` keep it. Train it with `llmsrt.training.language_id`."""
        languages = check_language_id_languages(languages)
        self.config.language_id_languages = languages
        head = LLMSRTLanguageIdHead(self.config.audio_config.d_model, len(languages))
        self.language_id_head = head.to(self.audio_encoder.conv1.weight.device)
        return self.language_id_head

    @torch.no_grad()
    def detect_language(
        self,
        input_features: torch.Tensor,
        input_features_mask: torch.Tensor | None = None,
        speech_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Probabilities of the spoken language of each clip over `config.language_id_languages`.

        Args:
            input_features: `(B, n_mels, T_mel)` log-mel features; input_features_mask: `(B, T_mel)`.
            speech_mask: `(B, T_mel // 2)` 1 on the encoder frames to pool (the speech between leading and trailing
                silence, `llmsrt.language_id.speech_frame_mask`); default: every real frame.

        Returns:
            `(B, len(config.language_id_languages))` probabilities (rows sum to 1).
        """
        if self.language_id_head is None:
            raise ValueError(
                "This model has no language-ID head (config.language_id_languages is None), so it cannot detect the "
                "spoken language: pass the source language (e.g. src_lang='eng'), or train a head with "
                "`python -m llmsrt.training.language_id` or train.py --language_id_head true."
            )
        return self.language_id_head(self.language_id_features(input_features, input_features_mask, speech_mask))\
            .float().softmax(-1)

    def language_id_features(
        self,
        input_features: torch.Tensor,
        input_features_mask: torch.Tensor | None = None,
        speech_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """What the language-ID head reads: `(B, 2 * D_audio)` mean and standard deviation of the encoder frames
        that are real and inside `speech_mask` (arguments as `detect_language`; the encoder cache serves them)."""
        frames, frame_mask = self.encode_frames(input_features, input_features_mask)
        if speech_mask is not None:
            speech_mask = speech_mask[:, : frames.shape[1]].to(frames.device)
            frame_mask = speech_mask if frame_mask is None else frame_mask * speech_mask
        return pooled_frames(frames, frame_mask)

    def embed_inputs(
        self,
        input_ids: torch.LongTensor,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed `input_ids` `(B, L)` and write the audio embeddings over its placeholder tokens: `(B, L, D_llm)`."""
        # Placeholders are embedded as id 0 (their id may lie past the LLM's vocabulary) and then overwritten.
        inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(input_ids == self.config.audio_token_id, 0))
        audio_embeds = None
        if input_features is not None:
            audio_embeds = self.get_audio_features(input_features, input_features_mask)
            audio_embeds = self.audio_embeddings_for_llm(audio_embeds, inputs_embeds.dtype, inputs_embeds.device)
        audio_mask = self.get_placeholder_mask(input_ids, inputs_embeds, audio_embeds)
        if audio_embeds is None:
            return inputs_embeds
        return inputs_embeds.masked_scatter(audio_mask, audio_embeds)

    def audio_embeddings_for_llm(
        self, audio_embeds: torch.Tensor, dtype: torch.dtype, device: torch.device | None = None
    ) -> torch.Tensor:
        """The adapter's output `(..., D_llm)` as the LLM reads it: in the LLM's `dtype`, multiplied by
        `config.audio_embedding_scale` cast to that dtype where set (as transformers 4.x Gemma-2 multiplied every
        input embedding by its `sqrt(hidden_size)` normaliser). Used by `embed_inputs` and the vLLM plugin."""
        audio_embeds = audio_embeds.to(device if device is not None else audio_embeds.device, dtype)
        if self.config.audio_embedding_scale is None:
            return audio_embeds
        return audio_embeds * torch.tensor(self.config.audio_embedding_scale, dtype=dtype, device=audio_embeds.device)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""
        Args:
            input_ids: `(B, L)` prompt (and, in training, answer) ids with `num_audio_embeddings` audio
                placeholders per clip.
            input_features: `(B, n_mels, T_mel)` log-mel features; only needed when `input_ids` hold placeholders
                (generation passes them at prefill only). Not with `inputs_embeds` (a `ValueError`).
            input_features_mask: `(B, T_mel)` 1 on real mel frames: the Q-Former ignores padded frames
                (unless `config.qformer_attends_padding`, the reference's reading of the whole window).
            labels: `(B, L)` target ids aligned with `input_ids`, `-100` on audio, prompt and padding; the loss
                covers answer tokens only.
            kwargs: passed on to the LLM, its KV cache included (`cache` from transformers 5.24, `past_key_values`
                before: whichever name `generate` uses).

        Returns:
            The language model's `CausalLMOutputWithPast` (`logits` `(B, L, vocab)`, `loss` when `labels` are given).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is not None and (input_features is not None or input_features_mask is not None):
            raise ValueError(
                "input_features were given with inputs_embeds, which would ignore them: pass input_ids with the "
                "audio placeholders and input_features, or inputs_embeds that already hold the audio embeddings "
                "(`embed_inputs`) without input_features."
            )
        if inputs_embeds is None:
            inputs_embeds = self.embed_inputs(input_ids, input_features, input_features_mask)
        language_model = self._language_model_for_step(inputs_embeds, input_features, kwargs)
        return language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    def answer_logits_processors(
        self, prompt_length: int, no_repeat_ngram_size: int | None = None, repetition_penalty: float | None = None
    ) -> LogitsProcessorList:
        """`repetition_penalty` and `no_repeat_ngram_size` as processors that read the generated answer only: the
        first `prompt_length` columns of `input_ids` `(batch_size * num_beams, prompt_length + generated)` (left
        padding, audio placeholders, prompt tags) are skipped. What `generate` passes to transformers in place of the
        two settings, in transformers' order (the penalty, then the ban); an empty list where neither is on."""
        processors = LogitsProcessorList()
        if repetition_penalty is not None and repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(repetition_penalty, prompt_ignore_length=prompt_length))
        if no_repeat_ngram_size:
            processors.append(
                LLMSRTAnswerLogitsProcessor(NoRepeatNGramLogitsProcessor(no_repeat_ngram_size), prompt_length)
            )
        return processors

    def generate(
        self,
        inputs: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        logits_processor: LogitsProcessorList | None = None,
        **kwargs,
    ):
        """`GenerationMixin.generate`, with `no_repeat_ngram_size` and `repetition_penalty` applied to the generated
        answer only: `generate` then decodes as the paper's reference, which generates from `inputs_embeds`. An SRT
        answer repeats the prompt's tag pair, which a ban over the prompt ids `(B, L)` would forbid.

        The two settings are read as transformers reads them (a keyword argument, else `generation_config`, else
        `self.generation_config`; a saved generation config still records `no_repeat_ngram_size=5`), switched off in
        transformers' own list and passed as `logits_processor` instead (`answer_logits_processors`), ahead of any
        processors given here. A processor of either kind given in `logits_processor` is kept as given, in place of
        the setting. Generation from `inputs_embeds` (no prompt ids) is left to transformers as it is.

        transformers applies given processors after its own (before the sampling warpers): the ones they move past
        only lower scores to `-inf` (suppressed tokens, minimum length), which the penalty and the ban leave at
        `-inf`, so the tokens are those of the reference. (`forced_eos_token_id`, which overwrites the scores of the
        last step, is the exception: there the ban can still fall on the forced token. The paper does not set it.)
        """
        input_ids = inputs if inputs is not None else kwargs.get("input_ids")
        if input_ids is None or input_ids.shape[-1] == 0:
            return super().generate(inputs, generation_config, logits_processor, **kwargs)
        given = list(logits_processor or [])
        settings = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0}  # each one's "off"
        answer_only = {}
        for name, off in settings.items():
            value = kwargs.pop(name) if name in kwargs else None
            for config in (generation_config, self.generation_config):
                if value is None and config is not None:
                    value = getattr(config, name, None)
            answer_only[name] = value if value is not None else off
        if any(isinstance(processor, RepetitionPenaltyLogitsProcessor) for processor in given):
            answer_only["repetition_penalty"] = None  # the given processor stands in for the setting
        if any(isinstance(processor, NoRepeatNGramLogitsProcessor) for processor in given):
            answer_only["no_repeat_ngram_size"] = None
        generation_config = copy.deepcopy(generation_config) if generation_config is not None else None
        for name, value in answer_only.items():
            if value is not None:
                if generation_config is not None:
                    setattr(generation_config, name, settings[name])
                else:
                    kwargs[name] = settings[name]
        processors = self.answer_logits_processors(input_ids.shape[-1], **answer_only)
        processors.extend(given)
        return super().generate(inputs, generation_config, processors, **kwargs)

    def use_compiled_decoding(self, backend: str = "inductor", mode: str | None = None, **compile_options) -> None:
        """Decode with a static KV cache and a `torch.compile`d forward pass per new token, on every device, so
        `generate` and the pipeline keep their interface and give the same tokens as eager decoding (tested, greedy
        and beam).

        Public switches only: transformers' `cache_implementation="static"` and `compile_config` go into
        `self.generation_config` (transformers compiles the whole step with them by itself on GPUs); where
        transformers does not compile (a CPU), `forward` sends each decode step (one token, no audio, a compilable
        cache) through the LLM compiled here with the same settings. The audio embeddings are merged at prefill,
        which runs eagerly (its length varies with the prompt); every later step reads one token through the
        compiled graph at a fixed cache shape. Call it again after replacing `language_model` (e.g. merging LoRA).

        Args:
            backend: `torch.compile` backend (`"inductor"`; `"aot_eager"` compiles in seconds, for checks).
            mode: `torch.compile` mode; `None`: `"reduce-overhead"` (CUDA graphs) for inductor on a GPU,
                `"default"` for inductor elsewhere, none for other backends.
            compile_options: further `CompileConfig` fields (`fullgraph`, `dynamic`, `options`).
        """
        from transformers.generation import CompileConfig

        if mode is None:
            if backend == "inductor":
                mode = "reduce-overhead" if self.device.type == "cuda" else "default"
        compile_config = CompileConfig(backend=backend, mode=mode, **compile_options)
        self.generation_config.cache_implementation = "static"
        self.generation_config.compile_config = compile_config
        self.compiled_decode_step = torch.compile(self.language_model.__call__, **compile_config.to_dict())

    def _language_model_for_step(self, inputs_embeds: torch.Tensor, input_features, kwargs: dict) -> Callable:
        """The compiled LLM (`use_compiled_decoding`) for a decode step that transformers does not compile itself:
        one new token `(B, 1, D_llm)`, no audio, a compilable (static) cache. Otherwise the LLM as it is."""
        compiled = getattr(self, "compiled_decode_step", None)
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if (
            compiled is None
            or input_features is not None
            or inputs_embeds.shape[1] != 1
            or not getattr(cache, "is_compileable", False)
            or torch.compiler.is_compiling()  # transformers compiles the whole step (GPUs)
        ):
            return self.language_model
        return compiled

    def save_pretrained(self, save_directory, *args, changed_only: bool = False, **kwargs):
        """Save weights and config; with the classes registered for Auto (as `import llmsrt` does), also the code
        files, an `auto_map` for AutoConfig/AutoModel/AutoModelForSpeechSeq2Seq and the speech-translation pipeline.

        With `changed_only=True`, the folder stores only the tensors that differ from the pretrained parts the
        config names (`audio_model_name`, `text_model_name`): the speech adapter, and LoRA merged into the LLM or
        any other trained weight. `from_pretrained`, `AutoModel` and the pipeline load it as a complete model as
        long as those parts can be loaded (a Hub id, or a folder that stays where it was).
        """
        if getattr(self, "_auto_class", None) is not None:
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **AUTO_MAP}
        if changed_only:
            if kwargs.get("state_dict") is not None:
                raise ValueError("Pass either state_dict or changed_only=True to save_pretrained, not both.")
            kwargs["state_dict"] = self.changed_state_dict()
        stored, parts_dtype = self.config.stored_weights, self.config.parts_dtype
        self.config.stored_weights = "changed" if changed_only else "all"
        self.config.parts_dtype = str(self.language_model.dtype).removeprefix("torch.") if changed_only else None
        try:
            super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.config.stored_weights, self.config.parts_dtype = stored, parts_dtype
        pipeline_file = Path(__file__).with_name("pipeline_llmsrt.py")
        if getattr(self, "_auto_class", None) is not None and pipeline_file.exists():
            from transformers.dynamic_module_utils import get_relative_import_files

            # The pipeline and the siblings it imports (segmentation.py, ...).
            for source in [pipeline_file, *map(Path, get_relative_import_files(str(pipeline_file)))]:
                shutil.copyfile(source, Path(save_directory) / source.name)


__all__ = [
    "LLMSRTForConditionalGeneration",
    "LLMSRTPreTrainedModel",
    "LLMSRTProjector",
    "LLMSRTSpeechAdapter",
    "LLMSRTWhisperEncoder",
]
