"""Spoken-language identification from the frozen Whisper encoder: a linear classifier on pooled frames.

The head reads the mean and standard deviation over time of the encoder's frames of the clip's speech part: the
whole clip is encoded as the processor prepares it for translation, and only the frames between its leading and
trailing silence (`speech_interval`, in training and inference alike) are pooled. The pooled vector is standardised
with statistics fixed at training time, and one linear layer scores each language of
`config.language_id_languages` (multinomial logistic regression). It costs one matrix product per clip on top of the
encoder pass, and its training reads the very encoder outputs that the curriculum's encoder cache already holds
(`llmsrt.training.language_id`). It is saved with the model (config field + `language_id_head.*` weights).
"""

from collections import Counter, defaultdict

import numpy as np
import torch
from torch import nn

from .audio_utils import prepare_audio
from .languages import language_code

# Leading and trailing audio this far below the clip's peak is cut before pooling (training and inference alike):
# a segment's padding or a clip's silent edges would otherwise shift the pooled statistics.
TRIM_TOP_DB = 40.0


def speech_interval(waveform: np.ndarray, top_db: float = TRIM_TOP_DB) -> tuple[int, int]:
    """First and last-plus-one sample of `waveform` without its leading and trailing silence (the whole clip when
    less than 1,600 samples would be left)."""
    import librosa

    _, (start, end) = librosa.effects.trim(waveform, top_db=top_db, frame_length=512, hop_length=128)
    return (int(start), int(end)) if end - start >= 1600 else (0, len(waveform))


def speech_frame_mask(intervals: list[tuple[int, int]], num_frames: int, samples_per_frame: int) -> torch.Tensor:
    """`(B, num_frames)` 1 on the encoder frames that overlap each clip's speech interval (in samples), 0 elsewhere.
    Whisper: `samples_per_frame` = the mel hop (160) x the encoder's stride (2)."""
    positions = torch.arange(num_frames)
    starts = torch.tensor([start // samples_per_frame for start, _ in intervals])
    ends = torch.tensor([-(-end // samples_per_frame) for _, end in intervals])
    return ((positions >= starts[:, None]) & (positions < ends[:, None])).long()


def pooled_frames(frames: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean and standard deviation over time of the real frames.

    Args:
        frames: `(B, T_enc, D)` encoder outputs.
        frame_mask: `(B, T_enc)`, 1 on real frames (`None`: all frames are real).

    Returns:
        `(B, 2 * D)` float32: `[mean, std]`.
    """
    frames = frames.float()
    if frame_mask is None:
        frame_mask = torch.ones(frames.shape[:2], device=frames.device)
    weights = frame_mask[..., : frames.shape[1]].to(frames.device, torch.float32).unsqueeze(-1)
    count = weights.sum(1).clamp(min=1.0)
    mean = (frames * weights).sum(1) / count
    variance = ((frames - mean.unsqueeze(1)).square() * weights).sum(1) / count
    return torch.cat([mean, variance.clamp(min=0).sqrt()], dim=-1)


class LLMSRTLanguageIdHead(nn.Module):
    """`(B, 2 * D_audio)` pooled frames -> `(B, num_languages)` logits over `config.language_id_languages`."""

    def __init__(self, audio_hidden_size: int, num_languages: int):
        super().__init__()
        features = 2 * audio_hidden_size
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_std", torch.ones(features))
        self.classifier = nn.Linear(features, num_languages)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        standardized = (pooled.float() - self.feature_mean) / self.feature_std
        return self.classifier(standardized.to(self.classifier.weight.dtype))


def check_language_id_languages(languages: list[str] | None) -> list[str] | None:
    """`None` (no head) or at least two distinct ISO 639-3 codes."""
    if languages is None:
        return None
    from .languages import get_language

    codes = [get_language(code).code for code in languages]
    if len(set(codes)) < 2 or len(set(codes)) != len(codes):
        raise ValueError(f"language_id_languages needs two or more distinct languages, got {languages}.")
    return codes


class LLMSRTLanguageIdMixin:
    """The spoken-language ID methods of `LLMSRTForConditionalGeneration`: a head over `config.language_id_languages`
    (`language_id_head`, built by the model from its config), reading the frames of `encode_frames`."""

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


# What fitting the head (`llmsrt.training.language_id`) and scoring it (`eval.py`) read.


@torch.no_grad()
def pooled_features(model, processor, examples, batch_size: int = 16) -> tuple[torch.Tensor, list[str]]:
    """`(N, 2 * D_audio)` pooled encoder frames of every example's speech (clips at most the encoder window long;
    `processor.language_id_inputs`, through the model's encoder cache when one is enabled) and their `src_lang`
    codes."""
    features, languages, waveforms = [], [], []

    def flush():
        inputs = processor.language_id_inputs(waveforms)
        device = model.audio_encoder.conv1.weight.device
        features.append(model.language_id_features(**{name: value.to(device) for name, value in inputs.items()}).cpu())
        waveforms.clear()

    for example in examples:
        waveforms.append(prepare_audio(example["audio"], None, processor.sampling_rate, processor.max_audio_seconds,
                                       name=f"clip {example.get('id')}"))
        languages.append(language_code(example["src_lang"]))
        if len(waveforms) == batch_size:
            flush()
    if waveforms:
        flush()
    if not features:
        raise ValueError("No examples to compute language-ID features from.")
    return torch.cat(features), languages


def accuracy_by_language(predicted: list[str], gold: list[str]) -> dict:
    """`{"accuracy", "examples", "per_language": {code: {"accuracy", "examples"}}}`."""
    hits, counts = defaultdict(int), Counter(gold)
    for guess, truth in zip(predicted, gold):
        hits[truth] += guess == truth
    return {
        "accuracy": sum(hits.values()) / max(1, len(gold)),
        "examples": len(gold),
        "per_language": {
            code: {"accuracy": hits[code] / count, "examples": count} for code, count in sorted(counts.items())
        },
    }


@torch.no_grad()
def language_id_accuracy(model, processor, examples, batch_size: int = 16) -> dict:
    """Accuracy of the model's head on `examples` (their `src_lang`), overall and per language."""
    features, gold = pooled_features(model, processor, examples, batch_size)
    head = model.language_id_head
    logits = head(features.to(head.classifier.weight.device))
    predicted = [model.config.language_id_languages[int(i)] for i in logits.argmax(-1)]
    return accuracy_by_language(predicted, gold)

__all__ = [
    "LLMSRTLanguageIdHead",
    "LLMSRTLanguageIdMixin",
    "accuracy_by_language",
    "check_language_id_languages",
    "language_id_accuracy",
    "pooled_features",
    "pooled_frames",
    "speech_frame_mask",
    "speech_interval",
]
