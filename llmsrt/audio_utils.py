"""Turn whatever a user calls "audio" into one validated mono float32 waveform at the model's sampling rate."""

import io
import os

import librosa
import numpy as np

# A clip whose peak amplitude stays below this (about -100 dBFS) carries no speech.
SILENCE_PEAK = 1e-5


def load_audio_file(source, sampling_rate: int, name: str = "audio") -> np.ndarray:
    """Decode a file path or encoded bytes (any format soundfile or audioread reads) as mono at `sampling_rate`."""
    if isinstance(source, (bytes, bytearray)):
        source, label = io.BytesIO(source), f"{name} (encoded bytes)"
    else:
        label = str(source)
        if not os.path.isfile(source):
            raise ValueError(f"Audio file not found: {label}. Pass an existing file path or an array.")
    try:
        waveform, _ = librosa.load(source, sr=sampling_rate, mono=True)
    except Exception as error:  # noqa: BLE001 - any decoder failure means the file is unusable
        raise ValueError(
            f"Could not decode audio file {label} ({type(error).__name__}: {error}). Accepted: any format that "
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
        audio: a path; a `{"array", "sampling_rate"}` dict; an undecoded `datasets.Audio` value (`{"path", "bytes"}`)
            or a decoded one (torchcodec `AudioDecoder`); a numpy array or torch tensor of shape `(samples,)`,
            `(channels, samples)` or `(samples, channels)`.
        sampling_rate: rate of an array input; `None` means it is already at `target_sampling_rate`.
        max_seconds: the longest accepted duration (the encoder window).
        name: how the clip is named in error messages.

    Raises:
        ValueError: empty, non-finite, silent, too long, or undecodable audio.
    """
    if isinstance(audio, dict) and "array" not in audio:
        encoded = audio.get("bytes") or audio.get("path")
        if not encoded:
            raise ValueError(
                f"{name}: a dict input needs 'array' and 'sampling_rate' (or 'path'/'bytes'), got keys {list(audio)}."
            )
        audio = encoded
    if isinstance(audio, (str, os.PathLike, bytes, bytearray)):
        audio, sampling_rate = load_audio_file(audio, target_sampling_rate, name), target_sampling_rate
    elif isinstance(audio, dict):
        audio, sampling_rate = audio["array"], audio.get("sampling_rate", sampling_rate)
    elif hasattr(audio, "get_all_samples"):  # torchcodec's AudioDecoder, as datasets' Audio feature decodes
        samples = audio.get_all_samples()
        audio, sampling_rate = samples.data, samples.sample_rate
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
            f"{name} lasts {seconds:.2f} s, longer than the encoder window of {max_seconds:g} s. Split it into "
            f"clips of at most {max_seconds:g} s, or pass the whole recording to the speech-translation pipeline, "
            "which cuts it at pauses (llmsrt.segmentation)."
        )
    return waveform.astype(np.float32, copy=False)
