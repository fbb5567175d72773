"""Turn whatever a user calls "audio" into one validated mono float32 waveform at the model's sampling rate."""

import os

import librosa
import numpy as np

# A clip whose peak amplitude stays below this (about -100 dBFS) carries no speech.
SILENCE_PEAK = 1e-5


def load_audio_file(path: str | os.PathLike, sampling_rate: int) -> np.ndarray:
    """Decode an audio file of any format that soundfile or audioread reads, as mono at `sampling_rate`."""
    if not os.path.isfile(path):
        raise ValueError(f"Audio file not found: {path!s}. Pass an existing file path or an array.")
    try:
        waveform, _ = librosa.load(path, sr=sampling_rate, mono=True)
    except Exception as error:  # noqa: BLE001 - any decoder failure means the file is unusable
        raise ValueError(
            f"Could not decode audio file {path!s} ({type(error).__name__}: {error}). Accepted: any format that "
            "libsndfile reads (WAV, FLAC, OGG, MP3...) or a {'array', 'sampling_rate'} dict."
        ) from error
    return waveform


def to_mono(waveform: np.ndarray) -> np.ndarray:
    """Average the channels of `(channels, samples)` or `(samples, channels)` audio; 1-D input is returned as is."""
    if waveform.ndim == 1:
        return waveform
    if waveform.ndim != 2:
        raise ValueError(
            f"Audio must be 1-D (samples) or 2-D (channels x samples), got an array of shape {waveform.shape}."
        )
    channel_axis = 0 if waveform.shape[0] <= waveform.shape[1] else 1
    return waveform.mean(axis=channel_axis)


def prepare_audio(
    audio,
    sampling_rate: int | None,
    target_sampling_rate: int,
    max_seconds: float | None = None,
    name: str = "audio",
) -> np.ndarray:
    """Validate one clip and return it as a 1-D float32 array at `target_sampling_rate`.

    Args:
        audio: a path, a `{"array", "sampling_rate"}` dict (as `datasets.Audio` decodes), a numpy array or torch
            tensor of shape `(samples,)`, `(channels, samples)` or `(samples, channels)`.
        sampling_rate: rate of an array input; `None` means it is already at `target_sampling_rate`.
        max_seconds: the longest accepted duration (the encoder window).
        name: how the clip is named in error messages.

    Raises:
        ValueError: empty, non-finite, silent, too long, or undecodable audio.
    """
    if isinstance(audio, (str, os.PathLike)):
        audio, sampling_rate = load_audio_file(audio, target_sampling_rate), target_sampling_rate
    elif isinstance(audio, dict):
        if "array" not in audio:
            if "path" in audio and audio["path"]:
                return prepare_audio(audio["path"], None, target_sampling_rate, max_seconds, name)
            raise ValueError(f"{name}: a dict input needs an 'array' and a 'sampling_rate' key, got {list(audio)}.")
        audio, sampling_rate = audio["array"], audio.get("sampling_rate", sampling_rate)
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().numpy()
    waveform = np.asarray(audio, dtype=np.float32)
    waveform = to_mono(waveform)
    if waveform.size == 0:
        raise ValueError(f"{name} is empty (0 samples). Pass at least a fraction of a second of speech.")
    if not np.isfinite(waveform).all():
        bad = int((~np.isfinite(waveform)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite sample(s) out of {waveform.size}. Accepted: finite values, "
            "normally in [-1, 1]."
        )
    if np.abs(waveform).max() < SILENCE_PEAK:
        raise ValueError(f"{name} is silent (peak amplitude below {SILENCE_PEAK}); there is no speech to translate.")
    sampling_rate = sampling_rate or target_sampling_rate
    if sampling_rate != target_sampling_rate:
        waveform = librosa.resample(waveform, orig_sr=sampling_rate, target_sr=target_sampling_rate)
    if max_seconds is not None and waveform.size > max_seconds * target_sampling_rate:
        seconds = waveform.size / target_sampling_rate
        raise ValueError(
            f"{name} lasts {seconds:.1f} s, longer than the encoder window of {max_seconds:g} s. Split it into "
            f"clips of at most {max_seconds:g} s (long-form audio is not supported yet)."
        )
    return waveform.astype(np.float32, copy=False)
