"""The audio of each example, checked before training and decoded when a batch is built.

Before a stage: every clip's header is read (`soundfile.info`: its length, and whether libsndfile can open it at
all); unreadable clips stop the run with a `ValueError` naming the file, or with `skip_invalid_rows` are counted and
left out; clips longer than the encoder window are counted and, by `long_audio`, cut to it (`trim`, as the reference
does with `whisper.pad_or_trim`) or left out (`skip`). When a batch is built: `clip_waveform` decodes a clip
(libsndfile: WAV, FLAC, OGG, MP3 at any rate; `datasets.Audio` decodes only through torchcodec, which needs FFmpeg)
at 16 kHz and cuts it to the window.
"""

import io
import logging

import datasets
import numpy as np
import pyarrow.compute
import soundfile
import soxr

from ..audio_utils import prepare_audio, to_mono
from .arguments import LONG_AUDIO
from .loading_report import DataReport, direction_key
from .schema import ENCODER_WINDOW_SECONDS, SAMPLING_RATE, audio_feature, undecoded

logger = logging.getLogger(__name__)

UNREADABLE = "unreadable audio"


def longer_than_window(window: float) -> str:
    return f"longer than {window:g} s"


def clip_label(example: dict) -> str:
    """How a clip is named in messages: its example id and, when known, its file."""
    audio = example.get("audio")
    path = audio.get("path") if isinstance(audio, dict) else audio if isinstance(audio, str) else None
    return f"clip {example.get('id')!r}" + (f" ({path})" if path else "")


def clip_seconds(audio) -> float:
    """The length of a stored clip (`{"bytes", "path"}` or a path) from its header; raises if libsndfile cannot
    open it."""
    if isinstance(audio, dict):
        audio = io.BytesIO(audio["bytes"]) if audio.get("bytes") else audio.get("path")
    if audio is None:
        raise ValueError("no audio bytes or path")
    return soundfile.info(audio).duration


def decode_stored(audio, name: str) -> np.ndarray:
    """Decode a stored clip (`{"bytes", "path"}` or a path) with libsndfile and resample it to 16 kHz with soxr
    (HQ: the resampler and quality of `librosa.load`, without librosa's first-call imports in every worker)."""
    if isinstance(audio, dict):
        audio = io.BytesIO(audio["bytes"]) if audio.get("bytes") else audio.get("path")
    try:
        waveform, sampling_rate = soundfile.read(audio, dtype="float32")
    except Exception as error:  # libsndfile raises several types for unreadable files
        raise ValueError(f"Could not decode {name} ({type(error).__name__}: {error}). Accepted: what libsndfile "
                         "reads (WAV, FLAC, OGG, MP3...).") from error
    waveform = to_mono(waveform)
    if sampling_rate != SAMPLING_RATE:
        waveform = soxr.resample(waveform, sampling_rate, SAMPLING_RATE, quality="HQ")
    return waveform


def clip_waveform(example: dict, window: float | None = ENCODER_WINDOW_SECONDS) -> np.ndarray:
    """The example's clip as a 16-kHz mono float32 waveform `(samples,)`, cut to the first `window` seconds (None:
    whole).

    Accepts what a dataset's `audio` column holds: stored `{"bytes", "path"}` (decoded here with libsndfile, then
    resampled), a `datasets.Audio` decoder (torchcodec), or `{"array", "sampling_rate"}`.
    """
    audio, name = example["audio"], clip_label(example)
    if isinstance(audio, str) or (isinstance(audio, dict) and "array" not in audio):
        audio = decode_stored(audio, name)
    waveform = prepare_audio(audio, None, SAMPLING_RATE, name=name)  # checks: not empty, finite, not silent
    return waveform if window is None else waveform[: round(window * SAMPLING_RATE)]


def check_clips(examples, report: DataReport, long_audio: str = "trim", skip_invalid: bool = False,
                window: float = ENCODER_WINDOW_SECONDS):
    """Read every clip's header, count what is kept, cut and left out in `report`, and return the usable examples.

    A `datasets.Dataset` is checked now (its unreadable clips raise one `ValueError` that names them, unless
    `skip_invalid`); an `IterableDataset` row by row as it streams (skips logged one by one).
    """
    if long_audio not in LONG_AUDIO:
        raise ValueError(f"--long_audio takes {' or '.join(LONG_AUDIO)}, got {long_audio!r}.")
    streaming = isinstance(examples, datasets.IterableDataset)
    examples = undecoded(examples)

    def verdict(audio, identifier, seconds=None) -> tuple[float, str, str]:
        """`(seconds after trimming, reason it is left out or "", message)`; `seconds` if already measured (a float,
        or the error a first reading raised)."""
        if seconds is None:
            seconds = measure(audio)
        if isinstance(seconds, Exception):
            label = clip_label({"id": identifier, "audio": audio})
            return 0.0, UNREADABLE, f"{label} ({type(seconds).__name__}: {seconds})"
        if seconds > window and long_audio == "skip":
            return seconds, longer_than_window(window), ""
        return min(seconds, window), "", "trimmed" if seconds > window else ""

    if streaming:
        report.counted = False

        def usable(audio, identifier):
            _, reason, message = verdict(audio, identifier)
            if reason == UNREADABLE and not skip_invalid:
                raise ValueError(f"Unreadable audio: {message}. Pass --skip_invalid_rows true to leave such clips "
                                 "out (they are counted and logged).")
            if reason:
                logger.warning("Left out %s: %s", identifier, message or reason)
            return not reason

        return examples.filter(usable, input_columns=["audio", "id"]).cast_column("audio", audio_feature(True))

    kept, unreadable = [], []
    for index, (audio, identifier, direction, seconds) in enumerate(_stored_clips(examples)):
        seconds, reason, message = verdict(audio, identifier, seconds)
        if reason:
            report.skip(direction, reason)
            if reason == UNREADABLE:
                unreadable.append(message)
        else:
            report.keep(direction, seconds, trimmed=message == "trimmed")
            kept.append(index)
    if unreadable and not skip_invalid:
        shown = "; ".join(unreadable[:5]) + (f"; and {len(unreadable) - 5} more" if len(unreadable) > 5 else "")
        raise ValueError(f"{len(unreadable)} clip(s) cannot be read: {shown}. Pass --skip_invalid_rows true to "
                         "leave them out (they are counted in the log and stage_info.json).")
    if len(kept) < len(examples):
        examples = examples.select(kept)
    return examples.cast_column("audio", audio_feature(False))


def measure(audio) -> float | Exception:
    """A stored clip's length in seconds, or the error libsndfile raised reading its header."""
    try:
        return clip_seconds(audio)
    except Exception as error:  # noqa: BLE001 - libsndfile raises several types for unreadable files
        return error


def _stored_clips(examples: datasets.Dataset, batch_size: int = 512):
    """`(audio, id, direction, seconds)` per row, read in Arrow batches. A clip that several rows share (FLEURS: the
    same recording in each of its directions; same file name and size) is measured once: `seconds` is then its
    length (or error), else None. An audio's bytes are copied out of Arrow only when it must be measured."""
    measured: dict[tuple[str, int | None], float | Exception] = {}
    rows = examples.select_columns(["audio", "id", "src_lang", "tgt_lang"]).with_format("arrow")
    for batch in rows.iter(batch_size=batch_size):
        audio = batch.column("audio").combine_chunks()
        paths, data = audio.field("path").to_pylist(), audio.field("bytes")
        sizes = pyarrow.compute.binary_length(data).to_pylist()
        for row, (path, size, identifier, src_lang, tgt_lang) in enumerate(zip(
                paths, sizes, batch.column("id").to_pylist(), batch.column("src_lang").to_pylist(),
                batch.column("tgt_lang").to_pylist())):
            key = (path, size) if path else None
            value = {"bytes": data[row].as_py(), "path": path} if key not in measured else {"path": path}
            if key is not None and key not in measured:
                measured[key] = measure(value)
            yield value, identifier, direction_key(src_lang, tgt_lang), measured.get(key)
