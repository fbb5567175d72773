"""Long recordings: read audio in blocks and cut it at pauses into segments that fit the encoder window.

`stream_audio` decodes a file block by block (libsndfile through `soundfile`, or FFmpeg's decoders through PyAV for
video containers and other formats), mixes to mono and resamples with a streaming resampler (`soxr`), so memory does
not grow with the length of the file. `split_on_pauses` runs one pass over those blocks: it measures the energy of
20-ms frames, ends a segment after a pause of `min_pause` seconds, and cuts a stretch of speech longer than the
window at its quietest point near the limit. Only the open segment is buffered.
"""

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .audio_utils import to_mono

BLOCK_SECONDS = 30.0


@dataclass
class Segment:
    """A stretch of speech: `start` and `end` in seconds from the beginning of the recording, `audio` `(samples,)`
    float32 at the segmenter's sampling rate."""

    start: float
    end: float
    audio: np.ndarray


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


def split_on_pauses(
    blocks: Iterable[np.ndarray],
    sampling_rate: int = 16000,
    max_seconds: float = 30.0,
    min_pause: float = 0.4,
    top_db: float = 40.0,
    floor_db: float = -55.0,
    pad: float = 0.1,
    min_speech: float = 0.1,
    frame_seconds: float = 0.02,
) -> Iterator[Segment]:
    """Cut a stream of mono blocks into speech segments of at most `max_seconds`, at pauses.

    A 20-ms frame is speech when its RMS level (dB full scale) is above both `floor_db` and the loudest frame so far
    minus `top_db` (as `librosa.effects.split`, with a running reference). A segment ends after `min_pause` seconds
    without speech and keeps `pad` seconds of context on each side; speech that runs on past the window is cut at
    the quietest frame of the window's last quarter (no context added there). Bursts with less than `min_speech`
    seconds of speech are dropped.

    Yields:
        `Segment`s in time order; none for a recording without speech.
    """
    hop = int(round(frame_seconds * sampling_rate))
    pad_frames = int(round(pad / frame_seconds))
    pause_frames = max(1, int(round(min_pause / frame_seconds)))
    max_frames = int(max_seconds / frame_seconds)
    region_max = max_frames - 2 * pad_frames  # the speech part of a padded segment
    if region_max < 10:
        raise ValueError(f"max_seconds={max_seconds} leaves no room for speech with pad={pad}.")
    min_voiced = max(1, int(round(min_speech / frame_seconds)))

    buffer, buffer_start = np.zeros(0, dtype=np.float32), 0  # samples from absolute index buffer_start on
    received = 0
    frame = 0  # next frame to classify
    peak_db = -np.inf
    start = last_voiced = None  # open region, in frames
    voiced_count = 0
    levels: list[float] = []  # dB of the open region's frames
    emitted_end = 0  # sample after the last emitted segment

    def cut(begin_frame: int, end_frame: int, pad_before: int, pad_after: int) -> Segment:
        nonlocal emitted_end
        first = max(begin_frame * hop - pad_before * hop, emitted_end, buffer_start)
        last = min(end_frame * hop + pad_after * hop, received)
        emitted_end = last
        audio = buffer[first - buffer_start : last - buffer_start].copy()
        return Segment(first / sampling_rate, last / sampling_rate, audio)

    def process(new_frames: np.ndarray, final: bool = False) -> Iterator[Segment]:
        nonlocal frame, peak_db, start, last_voiced, voiced_count, levels
        rms = np.sqrt(np.mean(np.square(new_frames, dtype=np.float64), axis=1))
        db = 20 * np.log10(np.maximum(rms, 1e-10))
        running_peak = np.maximum.accumulate(np.maximum(db, peak_db)) if db.size else db
        if db.size:
            peak_db = float(running_peak[-1])
        voiced = (db > floor_db) & (db > running_peak - top_db)
        for level, is_voiced in zip(db.tolist(), voiced.tolist()):
            if start is None:
                if is_voiced:
                    start, last_voiced, voiced_count, levels = frame, frame, 1, [level]
            else:
                levels.append(level)
                if is_voiced:
                    last_voiced, voiced_count = frame, voiced_count + 1
                if frame - last_voiced >= pause_frames:
                    if voiced_count >= min_voiced:
                        yield cut(start, last_voiced + 1, pad_frames, pad_frames)
                    start = None
                elif frame + 1 - start >= region_max:
                    # No pause within the window: cut at the quietest frame of its last quarter (3-frame average).
                    tail_from = start + (3 * region_max) // 4
                    tail = np.convolve(levels[tail_from - start :], np.ones(3) / 3, mode="same")
                    split = tail_from + int(np.argmin(tail)) + 1
                    yield cut(start, split, pad_frames, 0)
                    levels = levels[split - start :]
                    start = split
                    voiced_count = min_voiced  # the stretch goes on speaking
            frame += 1
        if final and start is not None and voiced_count >= min_voiced:
            yield cut(start, last_voiced + 1, pad_frames, pad_frames)
            start = None

    for block in blocks:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        buffer = np.concatenate([buffer, block])
        received += block.size
        complete = received // hop
        if complete > frame:
            offset = frame * hop - buffer_start
            framed = buffer[offset : offset + (complete - frame) * hop].reshape(-1, hop)
            yield from process(framed)
        # Keep the open region (and the context before it), or the last `pad` of audio when none is open.
        keep_from = (start if start is not None else frame) * hop - pad_frames * hop
        keep_from = max(keep_from, buffer_start)
        buffer, buffer_start = buffer[keep_from - buffer_start :], keep_from
    tail = buffer[frame * hop - buffer_start :]
    yield from process(tail[None, :] if tail.size else np.zeros((0, hop), dtype=np.float32), final=True)


__all__ = ["Segment", "audio_duration", "decoders", "needs_ffmpeg", "split_on_pauses", "stream_audio"]
