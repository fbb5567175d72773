"""Spoken-language identification from the frozen Whisper encoder: a linear classifier on pooled frames.

The head reads the mean and standard deviation over time of the encoder's frames of the clip's speech part: the
whole clip is encoded as the processor prepares it for translation, and only the frames between its leading and
trailing silence (`speech_interval`, in training and inference alike) are pooled. The pooled vector is standardised
with statistics fixed at training time, and one linear layer scores each language of
`config.language_id_languages` (multinomial logistic regression). It costs one matrix product per clip on top of the
encoder pass, and its training reads the very encoder outputs that the curriculum's encoder cache already holds
(`llmsrt.training.language_id`). It is saved with the model (config field + `language_id_head.*` weights).
"""

import numpy as np
import torch
from torch import nn

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


__all__ = [
    "LLMSRTLanguageIdHead", "check_language_id_languages", "pooled_frames", "speech_frame_mask", "speech_interval"
]
