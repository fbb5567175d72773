"""Live (simultaneous) speech translation: audio in chunks, captions out while the speaker goes on.

```python
from llmsrt.inference.live import LiveTranslator

translator = LiveTranslator("path/to/llmsrt", src_lang="eng", tgt_lang="deu")
for event in translator.stream(chunks):              # numpy arrays at 16 kHz, or (array, sampling_rate) pairs
    print(event.type, event.start, event.end, event.transcription, event.translation)
```

Policy. Audio is resampled to the model's 16 kHz and fed to the same `PauseSegmenter` (Silero VAD) that cuts
recordings in the offline pipeline. Every `chunk_seconds` of audio, the unconfirmed audio (the open stretch of
speech since the last committed cut, at most `max_latency_seconds` and never more than the encoder window) is
decoded again by the pipeline: a *partial* event gives that hypothesis, which may change. Its `stable_*` fields are
the LocalAgreement-2 prefix: the words on which this hypothesis and the previous one agree (whisper_streaming's
rule). A stretch is committed when the speech detector finds a pause (`min_pause`), or, when the speaker does not
pause, at the least speech-like frame before `max_latency_seconds`: the committed audio is decoded once more and
given as a *final* event, whose text never changes; the buffer is trimmed there. Recordings of pause-separated
sentences therefore give the offline pipeline's segments and texts. Silence, noise and music give no events.

Cost. Partials are decoded only while decoding has taken less than `max_real_time_factor` (0.8) of the audio
received: on a machine too slow for a partial every chunk, partials become rarer and the finals keep up. Decoding is
greedy by default (`num_beams=1`; `generate_kwargs` may change it), and each decode after the first of a stretch is
given the previous hypothesis as an answer draft (`generate(answer_draft=...)`): the LLM checks up to 10 of its tokens
per forward pass and keeps those it would have generated itself, so that a partial or final whose text changed little
since the last partial costs a few forward passes instead of one per token, with the same text as decoding without
the draft.

Bad chunks (NaN, empty, a sampling rate that is not a positive integer) give an *error* event and the session
goes on; `reset()` starts a new session (a stopped and restarted microphone), times from 0 again.
"""

import dataclasses
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..audio_utils import to_mono
from ..segmentation import LongFormOptions, PauseSegmenter, Segment

EVENT_TYPES = ("partial", "final", "error")
# Without a `max_new_tokens` of the caller's, a decode of `seconds` of audio stops after
# TOKENS_PER_DECODE + TOKENS_PER_SECOND * seconds tokens: room for a transcript and a translation at twice a fast
# speaker's rate (about 3 words, 4-8 tokens, per second and language), not for a loop to the model's 400.
TOKENS_PER_DECODE, TOKENS_PER_SECOND = 16, 16


@dataclass
class LiveEvent:
    """One caption event.

    Attributes:
        type: `"partial"` (the current hypothesis, may change), `"final"` (committed, never changes) or `"error"`.
        start, end: the audio the text covers, in seconds from the start of the session.
        transcription, translation: the texts (`translation` is empty for `task="asr"`).
        emitted_at: seconds of audio received when the event was emitted (its computation-unaware time).
        wall_seconds: seconds of wall-clock time since the session's first chunk when the event was emitted.
        stable_transcription, stable_translation: on a partial, the LocalAgreement-2 prefix of the texts.
        src_lang: the source language (detected, for `src_lang="auto"`).
        message: on an error, what was wrong and what is accepted.
    """

    type: str
    start: float
    end: float
    transcription: str = ""
    translation: str = ""
    emitted_at: float = 0.0
    wall_seconds: float = 0.0
    stable_transcription: str = ""
    stable_translation: str = ""
    src_lang: str | None = None
    message: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def agreed_prefix(previous: str, current: str) -> str:
    """The longest common prefix of two texts, in whole words (LocalAgreement-2)."""
    words = []
    for a, b in zip(previous.split(), current.split()):
        if a != b:
            break
        words.append(a)
    return " ".join(words)


class LiveTranslator:
    """Simultaneous speech translation over a stream of audio chunks (see the module docstring).

    Args:
        pipeline_or_model_dir: a `speech-translation` pipeline (its encoder, speech detection and decoding are
            used), or a saved model folder.
        src_lang: ISO 639-3 code, or `"auto"` for a model with a language-ID head: the language-ID probabilities of
            the finals so far are summed, and each final is decoded in (and reports) the most probable language
            (partials before the first final detect on their own audio).
        tgt_lang: ISO 639-3 code of the translation.
        chunk_seconds: how much new audio triggers a new partial hypothesis (smaller: more frequent updates, more
            computation).
        max_latency_seconds: the longest stretch of speech left uncommitted when the speaker does not pause (capped
            by the encoder window).
        segmentation: `LongFormOptions` (or a dict of them): the speech detector and pause length.
        partials: `False` gives finals only (no re-decoding between commits).
        task: `"srt"` (transcript and translation) or `"asr"` (transcript only).
        generate_kwargs: options for `generate` (beam size, max_new_tokens...); live decoding is greedy
            (`num_beams=1`) unless they say otherwise, and without `max_new_tokens` a decode of `s` seconds of audio
            writes at most `16 + 16 * s` tokens.
        drafts: give each decode the previous partial's answer as a draft (greedy decoding only; same texts, fewer
            forward passes). `False` decodes without.
        max_real_time_factor: partials are decoded only while the session's decoding time stays under this share
            of the audio received, so that on a slow machine the time goes to the finals and the captions keep up
            with the speaker (fewer partial updates instead of a growing delay); finals are always decoded. `None`:
            a partial every `chunk_seconds`, however long decoding takes.
    """

    def __init__(
        self,
        pipeline_or_model_dir,
        src_lang: str = "eng",
        tgt_lang: str = "deu",
        chunk_seconds: float = 1.0,
        max_latency_seconds: float = 10.0,
        segmentation: LongFormOptions | dict | None = None,
        partials: bool = True,
        task: str = "srt",
        generate_kwargs: dict | None = None,
        drafts: bool = True,
        max_real_time_factor: float | None = 0.8,
        device: str | None = None,
    ):
        if isinstance(pipeline_or_model_dir, (str, os.PathLike)):
            from .translate import load_translator

            pipeline_or_model_dir = load_translator(str(pipeline_or_model_dir), device)
        self.pipeline = pipeline_or_model_dir
        if not chunk_seconds > 0 or not max_latency_seconds > 0:
            raise ValueError(f"chunk_seconds={chunk_seconds} and max_latency_seconds={max_latency_seconds} must be "
                             "positive numbers of seconds.")
        if max_real_time_factor is not None and not max_real_time_factor > 0:
            raise ValueError(f"max_real_time_factor={max_real_time_factor}: a positive share of the audio's duration "
                             "(e.g. 0.8), or None for no limit.")
        if task not in ("srt", "asr"):
            raise ValueError(f"task={task!r}: live translation runs task 'srt' or 'asr'.")
        self.src_lang = self.pipeline._source_language(src_lang)
        self.tgt_lang, self.task = tgt_lang, task
        self.chunk_seconds = float(chunk_seconds)
        self.sampling_rate = self.pipeline.processor.sampling_rate
        self.max_segment_seconds = min(float(max_latency_seconds), self.pipeline.processor.max_audio_seconds)
        self.segmentation = LongFormOptions.of(segmentation)
        self.partials = partials
        self.max_real_time_factor = max_real_time_factor
        self.generate_kwargs = {"num_beams": 1, **(generate_kwargs or {})}
        greedy = self.generate_kwargs["num_beams"] == 1 and not self.generate_kwargs.get("do_sample")
        # A model class from an older folder's remote code takes no draft.
        self.drafts = drafts and greedy and hasattr(self.pipeline.model, "_answer_draft")
        self.segmenter = PauseSegmenter(self.segmentation, self.sampling_rate, self.max_segment_seconds)
        self.reset()

    def reset(self) -> None:
        """Start a new session: the buffered audio and hypotheses are dropped, times start again at 0."""
        self.segmenter.reset()
        self.source = self.src_lang
        self._language_scores = None  # with "auto": the summed language-ID probabilities of the finals so far
        self._resampler, self._input_rate = None, None
        self._decoded_at = 0  # samples received at the last partial decode
        self._previous = None  # the previous partial's (transcription, translation), for LocalAgreement-2
        self._previous_start = self._previous_source = None  # the previous partial's stretch start and language
        self._started = None  # wall-clock time of the first chunk
        self.decoding_seconds = 0.0  # wall-clock time spent decoding in this session

    @property
    def received_seconds(self) -> float:
        return self.segmenter.received_seconds

    # Events ----------------------------------------------------------------------------------------------------

    def _event(self, kind: str, start: float, end: float, **fields) -> LiveEvent:
        wall = time.monotonic() - self._started if self._started is not None else 0.0
        return LiveEvent(kind, round(start, 3), round(end, 3), emitted_at=round(self.received_seconds, 3),
                         wall_seconds=round(wall, 3), src_lang=None if self.source == "auto" else self.source,
                         **fields)

    def _error(self, message: str) -> list[LiveEvent]:
        position = self.received_seconds
        return [self._event("error", position, position, message=message)]

    def _draft(self, segments: list[Segment]) -> dict:
        """`answer_draft` for decoding `segments`: the previous partial's answer, when it decoded the same stretch
        (one segment starting where it started); otherwise nothing."""
        if (not self.drafts or self._previous is None or len(segments) != 1
                or segments[0].start != self._previous_start or not self._previous[0].strip()):
            return {}
        processor, (transcription, translation) = self.pipeline.processor, self._previous
        answer = transcription  # an answer cut short before its translation: its beginning
        if self.task == "asr" or translation.strip():
            answer = processor.prompt_builder.answer(self.task, self._previous_source, self.tgt_lang, transcription,
                                                     translation)
        return {"answer_draft": torch.tensor(processor.tokenizer(answer, add_special_tokens=False)["input_ids"])}

    def _decode(self, segments: list[Segment]) -> tuple[list[dict], str]:
        options = self.generate_kwargs | self._draft(segments)
        if "max_new_tokens" not in options:  # a looping answer must not stall the captions
            longest = max(segment.end - segment.start for segment in segments)
            options["max_new_tokens"] = int(TOKENS_PER_DECODE + TOKENS_PER_SECOND * longest)
        started = time.perf_counter()
        chunks, source = self.pipeline.translate_segments(segments, self.source, self.tgt_lang, self.task,
                                                          generate_kwargs=options)
        self.decoding_seconds += time.perf_counter() - started
        return chunks, source

    def _keeps_up(self) -> bool:
        """Whether decoding has taken less than `max_real_time_factor` of the audio received (a partial may go)."""
        limit = self.max_real_time_factor
        return limit is None or self.decoding_seconds <= limit * self.received_seconds

    def _finals(self, segments: list[Segment]) -> list[LiveEvent]:
        if not segments:
            return []
        if self.src_lang == "auto":
            scores = self.pipeline._language_probabilities([segment.audio for segment in segments]).sum(0)
            self._language_scores = scores if self._language_scores is None else self._language_scores + scores
            self.source = self.pipeline.model.config.language_id_languages[int(self._language_scores.argmax())]
        chunks, self.source = self._decode(segments)
        self._previous = None  # a new stretch begins: agreement starts over
        return [
            self._event("final", *chunk["timestamp"], transcription=chunk["transcription"],
                        translation=chunk["translation"] or "")
            for chunk in chunks
        ]

    def _partial(self) -> list[LiveEvent]:
        segment = self.segmenter.open_segment()
        if segment is None or segment.audio.size < self.sampling_rate * 0.1:
            return []
        self._decoded_at = self.segmenter.received
        (chunk,), source = self._decode([segment])  # "auto" before the first final: detected on the partial's audio
        current = (chunk["transcription"], chunk["translation"] or "")
        stable = ("", "") if self._previous is None else tuple(map(agreed_prefix, self._previous, current))
        self._previous, self._previous_start, self._previous_source = current, segment.start, source
        return [self._event("partial", segment.start, segment.end, transcription=current[0],
                            translation=current[1], stable_transcription=stable[0], stable_translation=stable[1])]

    # Audio in --------------------------------------------------------------------------------------------------

    def _validate(self, chunk, sampling_rate) -> np.ndarray:
        """The chunk as mono float32 at its own rate, or a `ValueError` naming what is wrong."""
        if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, (int, np.integer)) or sampling_rate <= 0:
            if not (isinstance(sampling_rate, float) and sampling_rate.is_integer() and sampling_rate > 0):
                raise ValueError(f"sampling_rate={sampling_rate!r}: accepted: a positive integer number of samples "
                                 "per second (e.g. 16000, 44100, 48000).")
        if hasattr(chunk, "detach"):
            chunk = chunk.detach().cpu().numpy()
        try:
            array = np.asarray(chunk, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise ValueError(f"audio chunk of type {type(chunk).__name__} is not numeric ({error}). Accepted: a "
                             "1-D or 2-D array of samples.") from error
        if array.ndim == 0 or array.ndim > 2:
            raise ValueError(f"audio chunk of shape {array.shape}: accepted: (samples,), (channels, samples) or "
                             "(samples, channels).")
        if array.size == 0:
            raise ValueError("audio chunk is empty (0 samples). Accepted: at least one sample.")
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise ValueError(f"audio chunk contains {bad} NaN or infinite sample(s) of {array.size}. Accepted: "
                             "finite values, normally in [-1, 1].")
        return to_mono(array)

    def _resample(self, samples: np.ndarray, rate: int, last: bool = False) -> np.ndarray:
        """Resample without seams between chunks; a change of rate flushes the old stream first."""
        flushed = np.zeros(0, dtype=np.float32)
        if rate != self._input_rate:
            if self._resampler is not None:
                flushed = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            self._input_rate = rate
            self._resampler = None
            if rate != self.sampling_rate:
                import soxr

                self._resampler = soxr.ResampleStream(rate, self.sampling_rate, 1, dtype="float32")
        if self._resampler is None:
            return np.concatenate([flushed, samples])
        return np.concatenate([flushed, self._resampler.resample_chunk(samples, last=last)])

    def push(self, chunk, sampling_rate: int = 16000) -> list[LiveEvent]:
        """Add a chunk of audio (any length, any rate: resampled; stereo: downmixed); returns the events it gives.
        A bad chunk gives one `error` event and is dropped; the session goes on."""
        if self._started is None:
            self._started = time.monotonic()
        try:
            samples = self._validate(chunk, sampling_rate)
        except ValueError as error:
            return self._error(str(error))
        samples = self._resample(samples, int(sampling_rate))
        events = self._finals(self.segmenter.push(samples))
        due = self.segmenter.received - self._decoded_at >= self.chunk_seconds * self.sampling_rate
        if self.partials and due and self._keeps_up():
            events += self._partial()
        elif due and self.segmenter.open_segment() is None:
            self._decoded_at = self.segmenter.received
        return events

    def finish(self) -> list[LiveEvent]:
        """The end of the stream: the open stretch is committed. The session can then be `reset()`."""
        tail = self._resample(np.zeros(0, dtype=np.float32), self._input_rate, last=True) if self._resampler else None
        events = self._finals(self.segmenter.push(tail)) if tail is not None and tail.size else []
        return events + self._finals(self.segmenter.finish())

    def stream(self, chunks: Iterable, sampling_rate: int = 16000) -> Iterator[LiveEvent]:
        """Events for a whole stream: `chunks` are arrays at `sampling_rate` or `(array, sampling_rate)` pairs; the
        stream's end commits what is open."""
        for chunk in chunks:
            if isinstance(chunk, tuple) and len(chunk) == 2:
                yield from self.push(*chunk)
            else:
                yield from self.push(chunk, sampling_rate)
        yield from self.finish()


__all__ = ["EVENT_TYPES", "LiveEvent", "LiveTranslator", "agreed_prefix"]
