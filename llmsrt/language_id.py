"""Spoken-language identification from the frozen Whisper encoder: a linear classifier on pooled frames.

The head reads the mean and standard deviation over time of the encoder's real (unpadded) frames of the clip's speech
part (leading and trailing silence trimmed by `speech_part`, in training and inference alike), standardised with
statistics fixed at training time, and scores each language of `config.language_id_languages` with one linear
layer (multinomial logistic regression). It costs one matrix product per clip on top of the encoder pass, and its
training needs only the encoder outputs that the training's encoder cache already holds
(`llmsrt.training.language_id`). It is saved with the model (config field + `language_id_head.*` weights).
"""

import numpy as np
import torch
from torch import nn

# Leading and trailing audio this far below the clip's peak is cut before pooling (training and inference alike):
# a segment's padding or a clip's silent edges would otherwise shift the pooled statistics.
TRIM_TOP_DB = 40.0


def speech_part(waveform: np.ndarray, top_db: float = TRIM_TOP_DB) -> np.ndarray:
    """`waveform` without its leading and trailing silence (the whole clip when nothing would be left)."""
    import librosa

    trimmed, _ = librosa.effects.trim(waveform, top_db=top_db, frame_length=512, hop_length=128)
    return trimmed if trimmed.size >= 1600 else waveform


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


__all__ = ["LLMSRTLanguageIdHead", "check_language_id_languages", "pooled_frames", "speech_part"]
