"""The optional `align` stage: the speech adapter learns to write the transcript in the LLM's own embedding space.

A new adapter fed straight into a frozen LLM needs on the order of 10^4 steps before the LLM's loss depends on the
audio (SLAM-ASR, arXiv 2402.08846): the LLM first learns to answer from the prompt alone. The `align` stage gives the
adapter a direct signal instead, without the LLM's forward pass (LegoSLM arXiv 2505.11352, Soundwave arXiv
2502.12900): each of the `Q` audio embeddings is scored against the LLM's frozen input-embedding rows of the
training transcripts' tokens (cosine similarity, a learned scale) plus a learned blank. With the `proportional`
loss (the default) each embedding is classified as the token its time slice covers under a fixed alignment (tokens
last in proportion to their letters); with the `ctc` loss the sequence of `Q` embeddings spells the transcript's
tokens in order. The head (blank vector, scale) is for training only: the stage's folder is a plain LLM-SRT model,
and the next stage starts from its adapter.
"""

import itertools
import logging
import math

import torch
from torch import nn

from ..modeling_llmsrt import LLMSRTForConditionalGeneration

logger = logging.getLogger(__name__)


def transcript_token_ids(examples, tokenizer) -> list[list[int]]:
    """The LLM's token ids of every transcript in `examples` (no special tokens)."""
    return tokenizer(list(examples["transcript"]), add_special_tokens=False)["input_ids"]


def token_character_lengths(tokenizer, token_ids: list[int]) -> list[int]:
    """The length in characters of each token's text (at least 1): how long it roughly lasts when spoken."""
    return [max(len(tokenizer.decode([token_id]).strip()), 1) for token_id in token_ids]


def unreachable_transcripts(token_rows: list[list[int]], num_query_tokens: int) -> int:
    """How many transcripts (token id rows) CTC cannot spell with `num_query_tokens` outputs: a path needs one output
    per token plus a blank between two equal neighbours."""
    count = 0
    for row in token_rows:
        repeats = sum(1 for left, right in itertools.pairwise(row) if left == right)
        count += len(row) + repeats > num_query_tokens
    return count


class CTCAlignmentHead(nn.Module):
    """Cosine logits of audio embeddings against a frozen slice of the LLM's input embeddings, blank first.

    Args:
        embeddings: `(V, D_llm)` the LLM's input-embedding matrix (read, never trained).
        vocabulary_ids: the token ids the head can write (those of the training transcripts).
    """

    def __init__(
        self,
        embeddings: torch.Tensor,
        vocabulary_ids: list[int],
        initial_scale: float = 10.0,
        character_lengths: list[int] | None = None,
    ):
        super().__init__()
        self.register_buffer("vocabulary_ids", torch.tensor(vocabulary_ids, dtype=torch.long))
        lengths = torch.ones(embeddings.shape[0])
        if character_lengths is not None:
            lengths[self.vocabulary_ids] = torch.tensor(character_lengths, dtype=torch.float)
        self.register_buffer("character_length", lengths, persistent=False)  # token id -> characters
        position = torch.full((embeddings.shape[0],), -1, dtype=torch.long)
        position[self.vocabulary_ids] = torch.arange(1, len(vocabulary_ids) + 1)
        self.register_buffer("class_of_token", position)  # token id -> CTC class (0 = blank, -1 = not writable)
        generator = torch.Generator().manual_seed(0)
        self.blank = nn.Parameter(torch.randn(embeddings.shape[1], generator=generator))
        self.log_scale = nn.Parameter(torch.tensor([math.log(initial_scale)]))  # 1-D: FSDP2 shards no scalars

    def forward(self, audio_embeds: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """`(B, Q, D_llm)` audio embeddings -> `(B, Q, 1 + len(vocabulary_ids))` logits (class 0: blank)."""
        table = torch.cat([self.blank[None], embeddings[self.vocabulary_ids].detach().to(self.blank.dtype)])
        cosine = nn.functional.normalize(audio_embeds, dim=-1) @ nn.functional.normalize(table, dim=-1).T
        return cosine * self.log_scale.exp()

    def targets(self, ctc_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, L)` token ids (-100 padded) -> (concatenated CTC classes, `(B,)` lengths); tokens the head cannot
        write (outside the training transcripts' vocabulary) are left out."""
        known = ctc_labels >= 0
        classes = self.class_of_token[ctc_labels.clamp(min=0)]
        keep = known & (classes > 0)
        return classes[keep], keep.sum(-1)


    def proportional_targets(self, ctc_labels: torch.Tensor, num_queries: int) -> torch.Tensor:
        """A fixed alignment: `(B, L)` token ids (-100 padded) -> `(B, Q)` the class of the token spoken at the
        centre of each query's time slice (-100 where the token cannot be written), the queries splitting the clip
        evenly and each token lasting in proportion to its letters over the whole clip.
        """
        centres = (torch.arange(num_queries, device=ctc_labels.device) + 0.5) / num_queries
        rows = []
        for labels in ctc_labels:
            token_ids = labels[labels >= 0]
            if not len(token_ids):
                rows.append(torch.full((num_queries,), -100, device=ctc_labels.device))
                continue
            boundaries = self.character_length[token_ids].cumsum(0)
            covering = torch.searchsorted(boundaries / boundaries[-1], centres).clamp(max=len(token_ids) - 1)
            classes = self.class_of_token[token_ids][covering]
            rows.append(classes.masked_fill(classes <= 0, -100))
        return torch.stack(rows)


# The first is the default: measured on the demo, CTC sat on its blank plateau (docs/experiments/demo.md).
ALIGN_LOSSES = ("proportional", "ctc")

# What the align stage trains, and so what its checkpoints hold.
TRAINED_PREFIXES = ("model.speech_adapter.", "head.")


class LLMSRTForAlignment(nn.Module):
    """An LLM-SRT model with a head on its audio embeddings: what the Trainer trains in the `align` stage.

    `loss="proportional"`: each query is classified as the token its time slice covers under a fixed alignment
    (`CTCAlignmentHead.proportional_targets`): no blank plateau to escape, at the price of a rough alignment;
    `loss="ctc"`: the `Q` audio embeddings spell the transcript's tokens in order (CTC, learned blank).

    Its `state_dict` holds the trainable parts only (the speech adapter and the head): checkpoints stay small and
    the frozen Whisper encoder and LLM come back from the stage's starting point on resume.
    """

    _keys_to_ignore_on_save = None  # read by the Trainer when it loads a checkpoint

    def __init__(
        self,
        model: LLMSRTForConditionalGeneration,
        vocabulary_ids: list[int],
        loss: str = ALIGN_LOSSES[0],
        character_lengths: list[int] | None = None,
    ):
        super().__init__()
        if loss not in ALIGN_LOSSES:
            raise ValueError(f"Unknown align loss {loss!r}; accepted: {', '.join(ALIGN_LOSSES)}.")
        if loss != "ctc" and character_lengths is None:
            raise ValueError(f"The {loss} align loss needs the character length of each vocabulary token.")
        self.model = model
        self.loss = loss
        self.head = CTCAlignmentHead(model.get_input_embeddings().weight, vocabulary_ids,
                                     character_lengths=character_lengths)

    @property
    def config(self):
        return self.model.config

    def forward(
        self,
        input_features: torch.Tensor,
        input_features_mask: torch.Tensor,
        ctc_labels: torch.Tensor | None = None,
    ) -> dict:
        """
        Args:
            input_features: `(B, n_mels, T_mel)` log-mel features.
            input_features_mask: `(B, T_mel)` 1 on real mel frames.
            ctc_labels: `(B, L)` the transcripts' token ids, `-100` on padding.

        Returns:
            `{"logits": (B, Q, 1 + V_align), "loss": ...}` (loss only with labels): `ctc`, the mean CTC loss per
            target token; `proportional`, the mean cross entropy per query against `proportional_targets`.
        """
        frames, frame_mask = self.model.encode_frames(input_features, input_features_mask)
        frames = frames.to(self.model.audio_encoder.conv1.weight.dtype)
        audio_embeds = self.model.speech_adapter(frames, self.model.qformer_frame_mask(frame_mask))
        logits = self.head(audio_embeds, self.model.get_input_embeddings().weight)
        output = {"logits": logits}
        if ctc_labels is not None and self.loss == "proportional":
            targets = self.head.proportional_targets(ctc_labels.to(logits.device), logits.shape[1])
            output["loss"] = nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        elif ctc_labels is not None:
            targets, target_lengths = self.head.targets(ctc_labels.to(logits.device))
            log_probs = logits.float().log_softmax(-1).transpose(0, 1)  # (Q, B, C)
            input_lengths = torch.full((logits.shape[0],), logits.shape[1], dtype=torch.long, device=logits.device)
            output["loss"] = nn.functional.ctc_loss(
                log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=True
            )
        return output

    def activation_checkpointing_enable(self, **kwargs):
        """What the Trainer calls for `activation_checkpointing: true`: the model's (the Q-Former's layers here)."""
        self.model.activation_checkpointing_enable(**kwargs)

    def state_dict(self, *args, **kwargs):
        full = super().state_dict(*args, **kwargs)
        return {name: value for name, value in full.items() if name.startswith(TRAINED_PREFIXES)}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a `state_dict()` of this class: the trained parts must all be there; the frozen ones stay."""
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [name for name in result.missing_keys if name.startswith(TRAINED_PREFIXES)]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(
                f"Alignment checkpoint mismatch: missing {missing}, unexpected {result.unexpected_keys}.")
        return nn.modules.module._IncompatibleKeys(missing, result.unexpected_keys)


def prepare_alignment(
    model: LLMSRTForConditionalGeneration, tokenizer, train_examples, loss: str = ALIGN_LOSSES[0]
) -> tuple["LLMSRTForAlignment", dict]:
    """The align stage's trainable model (`model` with its head over the training transcripts' tokens) and the
    notes for `stage_info.json` (loss, vocabulary size, transcripts longer than the queries can spell)."""
    token_rows = transcript_token_ids(train_examples, tokenizer)  # tokenised once, for both
    vocabulary = sorted({token_id for row in token_rows for token_id in row})
    unreachable = unreachable_transcripts(token_rows, model.config.num_query_tokens)
    if unreachable and loss == "ctc":
        logger.warning("align: %d transcripts need more than num_query_tokens=%d CTC outputs and add no CTC loss.",
                       unreachable, model.config.num_query_tokens)
    notes = {"align_loss": loss, "ctc_vocabulary_size": len(vocabulary), "ctc_unreachable_transcripts": unreachable}
    aligner = LLMSRTForAlignment(model, vocabulary, loss, token_character_lengths(tokenizer, vocabulary))
    return aligner, notes


@torch.no_grad()
def match_embedding_scale(model: LLMSRTForConditionalGeneration) -> float:
    """Scale the adapter's final LayerNorm (gain and bias) so that its outputs have the mean norm of the LLM's
    input-embedding rows; returns the factor applied.

    The align stage's cosine loss fixes the direction of each audio embedding (towards its token's embedding),
    never its norm, which stays at the LayerNorm's initial scale (~sqrt(D_llm), ~30 for Qwen2.5-0.5B, against
    ~0.5 for its tokens). At the tokens' scale the frozen LLM reads the aligned queries like the text they spell.
    A LayerNorm output `gain * z + bias` (z: zero mean, unit variance per row) has expected squared norm
    `sum(gain**2 + bias**2)`, so no data is needed.
    """
    norm = model.speech_adapter.projector.layer_norm
    target = model.get_input_embeddings().weight.float().norm(dim=-1).mean()
    factor = (target / (norm.weight.float().pow(2) + norm.bias.float().pow(2)).sum().sqrt()).item()
    norm.weight.mul_(factor)
    norm.bias.mul_(factor)
    return factor


def unwrap_alignment(model: nn.Module) -> nn.Module:
    """The LLM-SRT model inside an `LLMSRTForAlignment` (any other model is returned as is)."""
    return model.model if isinstance(model, LLMSRTForAlignment) else model
