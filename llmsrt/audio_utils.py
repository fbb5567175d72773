"""Audio in: decode files and streams (libsndfile through `soundfile`, FFmpeg through PyAV) and turn whatever a
user calls "audio" into one validated mono float32 waveform at the model's sampling rate.

`stream_audio` decodes a file block by block, mixes to mono and resamples with a streaming resampler (`soxr`), so
memory does not grow with the length of the file; `load_audio_file` is the same decoding read to the end. (Speech
detection is in `vad.py`, cutting recordings at pauses in `segmentation.py`.)
"""

import io
import os
from collections.abc import Iterator

import numpy as np

# A clip whose peak amplitude stays below this (about -100 dBFS) carries no speech.
SILENCE_PEAK = 1e-5
BLOCK_SECONDS = 30.0


def load_audio_file(source, sampling_rate: int, name: str = "audio") -> np.ndarray:
    """Decode a file path or encoded bytes (any format `decoders()` lists) as mono float32 at `sampling_rate`."""
    return np.concatenate([np.zeros(0, dtype=np.float32), *stream_audio(source, sampling_rate, name=name)])


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
    reject_silence: bool = True,
) -> np.ndarray:
    """Validate one clip and return it as a 1-D float32 array at `target_sampling_rate`.

    Args:
        audio: a path; a `{"array", "sampling_rate"}` dict; an undecoded `datasets.Audio` value (`{"path", "bytes"}`)
            or a decoded one (torchcodec `AudioDecoder`); a numpy array or torch tensor of shape `(samples,)`,
            `(channels, samples)` or `(samples, channels)`.
        sampling_rate: rate of an array input; `None` means it is already at `target_sampling_rate`.
        max_seconds: the longest accepted duration (the encoder window).
        name: how the clip is named in error messages.
        reject_silence: refuse a digitally silent clip (for training and the processor; the pipeline instead answers
            such a clip, as any clip without speech, with no text: `vad.py`).

    Raises:
        ValueError: empty, non-finite, silent (with `reject_silence`), too long, or undecodable audio.
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
    if reject_silence and np.abs(waveform).max() < SILENCE_PEAK:
        raise ValueError(f"{name} is silent (peak amplitude below {SILENCE_PEAK}); there is no speech to translate.")
    sampling_rate = sampling_rate or target_sampling_rate
    if sampling_rate != target_sampling_rate:
        import soxr

        waveform = soxr.resample(waveform, sampling_rate, target_sampling_rate, quality="HQ")
    if max_seconds is not None and waveform.size > max_seconds * target_sampling_rate:
        seconds = waveform.size / target_sampling_rate
        raise ValueError(
            f"{name} lasts {seconds:.2f} s, longer than the encoder window of {max_seconds:g} s. Split it into "
            f"clips of at most {max_seconds:g} s, or pass the whole recording to the speech-translation pipeline, "
            "which cuts it at pauses (llmsrt.segmentation)."
        )
    return waveform.astype(np.float32, copy=False)


def _resampler(in_rate: int, out_rate: int):
    """A function `(block, last) -> block` resampling a stream without seams between blocks."""
    if in_rate == out_rate:
        return lambda block, last=False: block
    import soxr

    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32")
    return lambda block, last=False: stream.resample_chunk(block, last=last)


def _check_finite(block: np.ndarray, name: str, position: float) -> None:
    if not np.isfinite(block).all():
        raise ValueError(f"{name} contains NaN or infinite samples (near {position:.1f} s). Accepted: finite values.")


def _soundfile_blocks(source, sampling_rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    import soundfile

    with soundfile.SoundFile(source) as audio_file:
        resample = _resampler(audio_file.samplerate, sampling_rate)
        frames = max(1, int(block_seconds * audio_file.samplerate))
        for block in audio_file.blocks(blocksize=frames, dtype="float32", always_2d=True):
            yield resample(block.mean(axis=1))
        yield resample(np.zeros(0, dtype=np.float32), last=True)


def _pyav_blocks(source, sampling_rate: int, block_seconds: float) -> Iterator[np.ndarray]:
    """Decode the first audio stream of any container FFmpeg reads (MP4, MKV, WebM, M4A, ...), resampled by
    FFmpeg to mono float32. Raises `ImportError` without PyAV (optional: `pip install llmsrt[video]`)."""
    try:  # inside `try`: transformers' check of remote code does not demand PyAV of a saved folder's users
        import av
    except ImportError as error:
        raise ImportError("Decoding through FFmpeg needs PyAV: `pip install av` (llmsrt[video]).") from error

    with av.open(source) as container:
        if not container.streams.audio:
            raise ValueError("the file has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
        pending, size = [], 0
        for frame in container.decode(stream):
            for converted in resampler.resample(frame):
                pending.append(converted.to_ndarray().reshape(-1))
                size += pending[-1].size
            if size >= block_seconds * sampling_rate:
                yield np.concatenate(pending)
                pending, size = [], 0
        for converted in resampler.resample(None):
            pending.append(converted.to_ndarray().reshape(-1))
        if pending:
            yield np.concatenate(pending)


def decoders() -> list[str]:
    """The decoders `stream_audio` can use here: libsndfile always, FFmpeg when PyAV is installed."""
    found = ["libsndfile (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...)"]
    try:
        import av  # noqa: F401

        found.append("FFmpeg through PyAV (video containers MP4/MKV/WebM/MOV, AAC, M4A, ...)")
    except ImportError:
        pass
    return found


def stream_audio(
    source, sampling_rate: int = 16000, block_seconds: float = BLOCK_SECONDS, name: str = "audio"
) -> Iterator[np.ndarray]:
    """Yield a recording as consecutive mono float32 blocks of about `block_seconds` at `sampling_rate`.

    Args:
        source: a file path or encoded bytes (read block by block), or an in-memory clip: a `{"array",
            "sampling_rate"}` dict, a numpy array or a torch tensor (`(samples,)`, `(channels, samples)` or
            `(samples, channels)`; an array without a rate is taken to be at `sampling_rate`).
        name: how the recording is named in error messages.

    Raises:
        ValueError: a missing file, a file no installed decoder reads (see `decoders()`), or non-finite samples.
    """
    if isinstance(source, dict) and "array" not in source:
        source = source.get("bytes") or source.get("path") or source
    if isinstance(source, (str, os.PathLike, bytes, bytearray)):
        yield from _file_blocks(source, sampling_rate, block_seconds, name)
        return
    rate = sampling_rate
    if isinstance(source, dict):
        source, rate = source.get("array"), source.get("sampling_rate") or sampling_rate
    if hasattr(source, "detach"):
        source = source.detach().cpu().numpy()
    waveform = to_mono(np.asarray(source, dtype=np.float32))
    resample = _resampler(int(rate), sampling_rate)
    step = max(1, int(block_seconds * rate))
    for begin in range(0, waveform.size, step):
        block = waveform[begin : begin + step]
        _check_finite(block, name, begin / rate)
        yield resample(block)
    yield resample(np.zeros(0, dtype=np.float32), last=True)


def _file_blocks(source, sampling_rate: int, block_seconds: float, name: str) -> Iterator[np.ndarray]:
    label = f"{name} (encoded bytes)" if isinstance(source, (bytes, bytearray)) else str(source)
    if not isinstance(source, (bytes, bytearray)) and not os.path.isfile(source):
        raise ValueError(f"Audio file not found: {label}. Pass an existing file path or an array.")
    errors = []
    for reader in (_soundfile_blocks, _pyav_blocks):
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        position = 0.0
        try:
            for block in reader(handle, sampling_rate, block_seconds):
                _check_finite(block, label, position)
                position += block.size / sampling_rate
                yield block
            if position > 0:
                return
            errors.append(f"{reader.__name__.strip('_').split('_')[0]}: no audio samples decoded")
            continue
        except ImportError:
            continue  # PyAV is optional
        except ValueError as error:
            if position > 0:
                raise
            errors.append(f"{reader.__name__.strip('_').split('_')[0]}: {error}")
        except Exception as error:  # noqa: BLE001 - each decoder raises its own types for unreadable data
            if position > 0:
                raise ValueError(f"Decoding {label} failed after {position:.1f} s ({error}).") from error
            errors.append(f"{reader.__name__.strip('_').split('_')[0]}: {type(error).__name__}: {error}")
    raise ValueError(
        f"Could not decode audio file {label} ({'; '.join(errors)}). Decoders here: {', '.join(decoders())}."
    )


def audio_duration(source, sampling_rate: int = 16000) -> float | None:
    """The duration in seconds of a file (from its header, nothing decoded) or an in-memory clip; `None` where no
    decoder can tell."""
    if isinstance(source, dict) and "array" not in source:
        source = source.get("bytes") or source.get("path") or source
    if isinstance(source, (str, os.PathLike, bytes, bytearray)):
        handle = (lambda: io.BytesIO(source)) if isinstance(source, (bytes, bytearray)) else (lambda: source)
        try:
            import soundfile

            return float(soundfile.info(handle()).duration)
        except Exception:  # noqa: BLE001 - not a libsndfile format: ask FFmpeg
            pass
        try:
            import av

            with av.open(handle()) as container:
                stream = container.streams.audio[0] if container.streams.audio else None
                if stream is not None and stream.duration is not None:
                    return float(stream.duration * stream.time_base)
                return container.duration / 1e6 if container.duration else None
        except Exception:  # noqa: BLE001 - PyAV missing or the file unreadable: the decoder will say why
            return None
    rate = sampling_rate
    if isinstance(source, dict):
        source, rate = source.get("array"), source.get("sampling_rate") or sampling_rate
    shape = getattr(source, "shape", None) or np.shape(source)
    if not shape:
        return None
    samples = shape[0] if len(shape) == 1 else max(shape[:2])
    return samples / rate


def needs_ffmpeg(source) -> bool:
    """True for a file (path or bytes) that libsndfile cannot read but FFmpeg (PyAV) can: a video container, AAC..."""
    if isinstance(source, dict) and "array" not in source:
        source = source.get("bytes") or source.get("path") or source
    if not isinstance(source, (str, os.PathLike, bytes, bytearray)):
        return False
    import soundfile

    try:
        soundfile.info(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
        return False
    except Exception:  # noqa: BLE001 - not a libsndfile format
        return audio_duration(source) is not None


__all__ = ["audio_duration", "decoders", "load_audio_file", "needs_ffmpeg", "prepare_audio", "stream_audio", "to_mono"]
