"""Long recordings: cut a stream of audio at its pauses into segments that fit the encoder window.

`PauseSegmenter` reads mono 16-kHz blocks of any size (as `audio_utils.stream_audio` decodes them, or as a
microphone delivers them) and returns each segment as soon as it is closed: a speech detector (`vad.py`) marks
the frames that hold speech, a segment ends after a pause of `min_pause` seconds, and a stretch of speech longer
than the limit is cut at its least speech-like frame near the limit. Only the open segment is buffered, so memory
does not grow with the recording. The offline pipeline (`split_on_pauses`) and the live translator
(`llmsrt.inference.live`) cut with this one class, so that they cut the same audio at the same places.
"""

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .vad import DETECTORS, make_detector


@dataclass
class Segment:
    """A stretch of speech: `start` and `end` in seconds from the beginning of the recording, `audio` `(samples,)`
    float32 at the segmenter's sampling rate."""

    start: float
    end: float
    audio: np.ndarray


@dataclass
class LongFormOptions:
    """How a recording is cut into segments (the pipeline's `segmentation=` option, the live translator's).

    Attributes:
        detector: `"silero"` (Silero VAD: noise and music are not speech) or `"energy"` (an RMS-level threshold).
        min_pause: seconds without speech that end a segment.
        pad: seconds of context kept on each side of a segment.
        min_speech: segments with less speech than this (seconds) are dropped (clicks, coughs).
        max_seconds: the longest segment; `None` means the encoder window (30 s for Whisper).
        threshold: Silero's speech probability threshold.
        top_db, floor_db: the energy detector's levels (dB below the loudest frame so far; absolute dBFS floor).
    """

    detector: str = "silero"
    min_pause: float = 0.4
    pad: float = 0.1
    min_speech: float = 0.1
    max_seconds: float | None = None
    threshold: float = 0.5
    top_db: float = 40.0
    floor_db: float = -55.0

    def __post_init__(self):
        if self.detector not in DETECTORS:
            raise ValueError(f"Unknown speech detector {self.detector!r}. Accepted: {', '.join(DETECTORS)}.")
        for name in ("min_pause", "pad", "min_speech"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: must be a number of seconds >= 0.")

    @classmethod
    def of(cls, value: "LongFormOptions | dict | None") -> "LongFormOptions":
        """Options from an instance, a dict of its fields, or `None` (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = set(value) - fields
        if unknown:
            raise ValueError(f"Unknown segmentation option(s) {sorted(unknown)}. Accepted: {sorted(fields)}.")
        return cls(**value)

    def make_detector(self, sampling_rate: int = 16000):
        return make_detector(self.detector, sampling_rate, {"threshold": self.threshold},
                             {"top_db": self.top_db, "floor_db": self.floor_db})


class PauseSegmenter:
    """Push mono blocks, get closed `Segment`s back (see the module docstring).

    Args:
        options: `LongFormOptions` (`max_seconds=None` takes `max_seconds` below).
        sampling_rate: of the blocks.
        max_seconds: the longest segment when `options.max_seconds` is `None` (the encoder window).
        detector: a detector to reuse (one per stream: it keeps state); default: a new one from `options`.
    """

    def __init__(self, options: LongFormOptions | None = None, sampling_rate: int = 16000, max_seconds: float = 30.0,
                 detector=None):
        self.options = options = LongFormOptions.of(options)
        self.sampling_rate = sampling_rate
        self.detector = detector if detector is not None else options.make_detector(sampling_rate)
        self.hop = self.detector.frame_samples
        frame_seconds = self.hop / sampling_rate
        self.max_seconds = options.max_seconds or max_seconds
        self.pad_frames = int(round(options.pad / frame_seconds))
        self.pause_frames = max(1, int(round(options.min_pause / frame_seconds)))
        self.region_max = int(self.max_seconds / frame_seconds) - 2 * self.pad_frames  # speech part of a segment
        if self.region_max < 10:
            raise ValueError(f"max_seconds={self.max_seconds} leaves no room for speech with pad={options.pad}.")
        self.min_voiced = max(1, int(round(options.min_speech / frame_seconds)))
        self.reset()

    def reset(self) -> None:
        """Forget the stream (a new recording, or a restarted microphone): times start again at 0."""
        self.detector.reset()
        self.buffer, self.buffer_start = np.zeros(0, dtype=np.float32), 0  # samples from absolute index on
        self.received = 0
        self.frame = 0  # next frame to classify
        self.start = self.last_voiced = None  # the open region, in frames
        self.voiced_count = 0
        self.scores: list[float] = []  # the open region's frame scores
        self.emitted_end = 0  # sample after the last emitted segment

    @property
    def received_seconds(self) -> float:
        return self.received / self.sampling_rate

    def open_segment(self) -> Segment | None:
        """The open stretch of speech so far (with its context before), or `None` outside speech."""
        if self.start is None:
            return None
        first = max((self.start - self.pad_frames) * self.hop, self.emitted_end, self.buffer_start)
        audio = self.buffer[first - self.buffer_start :].copy()
        return Segment(first / self.sampling_rate, self.received / self.sampling_rate, audio)

    def _cut(self, begin_frame: int, end_frame: int, pad_before: int, pad_after: int) -> Segment:
        first = max((begin_frame - pad_before) * self.hop, self.emitted_end, self.buffer_start)
        last = min((end_frame + pad_after) * self.hop, self.received)
        self.emitted_end = last
        audio = self.buffer[first - self.buffer_start : last - self.buffer_start].copy()
        return Segment(first / self.sampling_rate, last / self.sampling_rate, audio)

    def _process(self, frames: np.ndarray, final: bool = False) -> list[Segment]:
        closed = []
        speech, scores = self.detector.classify(frames)
        for score, is_speech in zip(scores.tolist(), speech.tolist()):
            if self.start is None:
                if is_speech:
                    self.start, self.last_voiced, self.voiced_count, self.scores = self.frame, self.frame, 1, [score]
            else:
                self.scores.append(score)
                if is_speech:
                    self.last_voiced, self.voiced_count = self.frame, self.voiced_count + 1
                if self.frame - self.last_voiced >= self.pause_frames:
                    if self.voiced_count >= self.min_voiced:
                        closed.append(self._cut(self.start, self.last_voiced + 1, self.pad_frames, self.pad_frames))
                    self.start = None
                elif self.frame + 1 - self.start >= self.region_max:
                    # No pause within the limit: cut at the least speech-like frame of its last quarter (3-frame mean).
                    tail_from = self.start + (3 * self.region_max) // 4
                    tail = np.convolve(self.scores[tail_from - self.start :], np.ones(3) / 3, mode="same")
                    split = tail_from + int(np.argmin(tail)) + 1
                    closed.append(self._cut(self.start, split, self.pad_frames, 0))
                    self.scores = self.scores[split - self.start :]
                    self.start = split
                    self.voiced_count = self.min_voiced  # the stretch goes on speaking
            self.frame += 1
        if final and self.start is not None:
            if self.voiced_count >= self.min_voiced:
                closed.append(self._cut(self.start, self.last_voiced + 1, self.pad_frames, self.pad_frames))
            self.start = None
        return closed

    def push(self, block: np.ndarray) -> list[Segment]:
        """Add mono samples; returns the segments this closed, in time order."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self.buffer = np.concatenate([self.buffer, block])
        self.received += block.size
        complete = self.received // self.hop
        closed = []
        if complete > self.frame:
            offset = self.frame * self.hop - self.buffer_start
            frames = self.buffer[offset : offset + (complete - self.frame) * self.hop].reshape(-1, self.hop)
            closed = self._process(frames)
        # Keep the open region and the context before it, or the last `pad` of audio when none is open.
        keep_from = max(((self.start if self.start is not None else self.frame) - self.pad_frames) * self.hop,
                        self.buffer_start)
        self.buffer, self.buffer_start = self.buffer[keep_from - self.buffer_start :], keep_from
        return closed

    def finish(self) -> list[Segment]:
        """The end of the stream: classify the last partial frame and close the open segment."""
        tail = self.buffer[self.frame * self.hop - self.buffer_start :]
        frames = np.zeros((1 if tail.size else 0, self.hop), dtype=np.float32)
        frames[:, : tail.size] = tail
        return self._process(frames, final=True)


def split_on_pauses(blocks: Iterable[np.ndarray], sampling_rate: int = 16000, max_seconds: float = 30.0,
                    options: LongFormOptions | dict | None = None) -> Iterator[Segment]:
    """Cut a stream of mono blocks into speech segments of at most `max_seconds` (or `options.max_seconds`), at
    pauses. Yields `Segment`s in time order; none for a recording without speech."""
    segmenter = PauseSegmenter(options, sampling_rate, max_seconds)
    for block in blocks:
        yield from segmenter.push(block)
    yield from segmenter.finish()


__all__ = ["LongFormOptions", "PauseSegmenter", "Segment", "split_on_pauses"]
