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

This file is the architecture. Its siblings hold the rest of the model class: storage and assembly from pretrained
parts (`model_storage.py`), the spoken-language ID head (`language_id.py`), decoding as the paper
(`answer_decoding.py`), and the encoder cache (`encoder_cache.py`).
"""

import contextlib
import inspect
from collections.abc import Callable
from functools import lru_cache

import torch
from torch import nn
from transformers import AutoModelForCausalLM, Blip2QFormerModel, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling, CausalLMOutputWithPast
from transformers.models.whisper.modeling_whisper import WhisperEncoder
from transformers.utils import torch_compilable_check

from .answer_decoding import PAPER_DECODING, LLMSRTAnswerDecodingMixin
from .configuration_llmsrt import LLMSRTConfig
from .encoder_cache import EncoderCache
from .language_id import LLMSRTLanguageIdHead, LLMSRTLanguageIdMixin
from .model_storage import LLMSRTStorageMixin


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


@lru_cache(maxsize=None)
def cache_argument(language_model_class: type) -> str:
    """The name under which an LLM class takes its KV cache: `cache` (transformers 5.24 on), `past_key_values`
    (before)."""
    return "cache" if "cache" in inspect.signature(language_model_class.forward).parameters else "past_key_values"


class LLMSRTForConditionalGeneration(
    LLMSRTStorageMixin, LLMSRTLanguageIdMixin, LLMSRTAnswerDecodingMixin, LLMSRTPreTrainedModel, GenerationMixin
):
    """Speech in, text out: transcription, translation or both, selected by the prompt's language tags.

    The Whisper encoder is frozen (no gradients, eval mode) in every state of the model, including after
    `from_pretrained`; train the adapter directly and the LLM through LoRA (`llmsrt.lora`).

    State besides the weights: `encoder_cache` (`None`, or an `EncoderCache` that serves the frozen encoder's
    outputs: set it for a block with `using_encoder_cache`) and `compiled_decode_step` (`None`, or the compiled LLM
    step of `llmsrt.inference.use_compiled_decoding`).
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
        self.encoder_cache: EncoderCache | None = None
        self.compiled_decode_step: Callable | None = None
        self.post_init()
        self.generation_config.update(**PAPER_DECODING)
        if config.audio_token_id is not None:
            # The placeholder is input only: never generate it.
            self.generation_config.suppress_tokens = [config.audio_token_id]
        self.freeze_audio_encoder()

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
    ) -> BaseModelOutputWithPooling:
        """Encode log-mel features into LLM input embeddings.

        Args:
            input_features: `(B, n_mels, T_mel)` log-mel features.
            input_features_mask: `(B, T_mel)`, 1 on real mel frames and 0 on padding.

        Returns:
            `BaseModelOutputWithPooling`: `last_hidden_state` `(B, T_enc, D_audio)` the encoder frames the adapter
            read (`encode_frames`), `pooler_output` `(B, num_audio_embeddings, D_llm)` the audio embeddings (float32,
            before `audio_embedding_scale`).
        """
        frames, frame_mask = self.encode_frames(input_features, input_features_mask)
        frames = frames.to(self.audio_encoder.conv1.weight.dtype)
        audio_embeds = self.speech_adapter(frames, self.qformer_frame_mask(frame_mask))
        return BaseModelOutputWithPooling(last_hidden_state=frames, pooler_output=audio_embeds)

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
        if self.encoder_cache is not None and input_features_mask is not None and not encoder_trains:
            with torch.no_grad():
                frames = self.encoder_cache.encode(
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


    def disk_encoder_cache(self, directory: str) -> EncoderCache:
        """An on-disk cache of this model's frozen encoder outputs in `directory` (entries keyed by the encoder's
        weights and by how it is run), for `using_encoder_cache`. Training reads every clip again each epoch and
        stage."""
        variant = "variable-length" if self.config.variable_length_encoding else "window"
        if self.config.qformer_attends_padding:
            variant = "window-with-padding"  # entries hold the padded frames too
        return EncoderCache(directory, self.audio_encoder, variant)

    @contextlib.contextmanager
    def using_encoder_cache(self, cache: EncoderCache | None):
        """Serve the frozen encoder's outputs from `cache` inside the block (`None`: encode every time), then go
        back to the cache the model had before.

            with model.using_encoder_cache(model.disk_encoder_cache("encoder-cache")):
                trainer.train()
        """
        previous, self.encoder_cache = self.encoder_cache, cache
        try:
            yield cache
        finally:
            self.encoder_cache = previous

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
            audio_embeds = self.get_audio_features(input_features, input_features_mask).pooler_output
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
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Cache | None = None,
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
            cache: the LLM's KV cache (`generate` passes it). `past_key_values`: the same, under the name
                transformers before 5.24 gives it; the LLM receives it under the name its class takes.
            kwargs: passed on to the LLM (attention and output options).

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
        cache = cache if cache is not None else past_key_values
        if cache is not None:
            kwargs[cache_argument(type(self.language_model))] = cache
        language_model = self._language_model_for_step(inputs_embeds, input_features, cache)
        return language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )


    def _language_model_for_step(self, inputs_embeds: torch.Tensor, input_features, cache: Cache | None) -> Callable:
        """The compiled LLM step (`compiled_decode_step`, set by `llmsrt.inference.use_compiled_decoding`) for a
        decode step that transformers does not compile itself: one new token `(B, 1, D_llm)`, no audio, a
        compilable (static) cache. Otherwise the LLM as it is."""
        if (
            self.compiled_decode_step is None
            or input_features is not None
            or inputs_embeds.shape[1] != 1
            or not getattr(cache, "is_compileable", False)
            or torch.compiler.is_compiling()  # transformers compiles the whole step (GPUs)
        ):
            return self.language_model
        return self.compiled_decode_step

__all__ = [
    "LLMSRTForConditionalGeneration",
    "LLMSRTPreTrainedModel",
    "LLMSRTProjector",
    "LLMSRTSpeechAdapter",
    "LLMSRTWhisperEncoder",
]
