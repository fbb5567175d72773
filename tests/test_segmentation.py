"""Cutting at pauses (llmsrt/segmentation.py): one segmenter for recordings and live streams, typed options."""

import numpy as np
import pytest
from helpers import SAMPLING_RATE
from speech_helpers import recording_with_pauses, spoken_utterances

from llmsrt.segmentation import LongFormOptions, PauseSegmenter, split_on_pauses


@pytest.fixture(scope="module")
def talk():
    """Four eSpeak sentences after pauses of 0.6-1.5 s, with white noise at -40 dBFS between them."""
    waveform, spans = recording_with_pauses(spoken_utterances(4, seed=2), [0.6, 1.2, 0.9, 1.5])
    noise = 0.01 * np.random.default_rng(1).standard_normal(waveform.size).astype(np.float32)
    return waveform + noise, spans


def test_segments_fall_on_the_pauses_in_blocks_of_any_size(talk):
    waveform, spans = talk
    whole = list(split_on_pauses([waveform], SAMPLING_RATE))
    assert len(whole) == len(spans)
    for segment, (start, end) in zip(whole, spans):
        assert abs(segment.start - start) <= 0.35 and abs(segment.end - end) <= 0.35
    segmenter = PauseSegmenter(sampling_rate=SAMPLING_RATE)
    rng = np.random.default_rng(0)
    pushed, position = [], 0
    while position < waveform.size:
        size = int(rng.integers(1, 9000))
        pushed += segmenter.push(waveform[position : position + size])
        position += size
    pushed += segmenter.finish()
    assert [(s.start, s.end) for s in pushed] == [(s.start, s.end) for s in whole]
    for segment in pushed:
        begin = round(segment.start * SAMPLING_RATE)
        np.testing.assert_array_equal(segment.audio, waveform[begin : begin + segment.audio.size])


def test_the_open_segment_grows_with_the_speech_and_reset_starts_again(talk):
    waveform, spans = talk
    segmenter = PauseSegmenter(sampling_rate=SAMPLING_RATE)
    middle = int((spans[0][0] + 0.5) * SAMPLING_RATE)
    assert segmenter.push(waveform[:middle]) == []
    segment = segmenter.open_segment()
    assert segment is not None and abs(segment.start - spans[0][0]) <= 0.2
    assert segment.end == pytest.approx(middle / SAMPLING_RATE)
    segmenter.reset()
    assert segmenter.open_segment() is None and segmenter.received_seconds == 0
    again = segmenter.push(waveform) + segmenter.finish()
    assert len(again) == len(spans) and abs(again[0].start - spans[0][0]) <= 0.35


def test_a_long_stretch_is_cut_within_the_limit_and_memory_holds_only_the_open_segment(talk):
    waveform, _ = talk
    speech = np.concatenate([u[2000:-2000] for u in spoken_utterances(5, seed=1)])  # no pauses between them
    segmenter = PauseSegmenter(LongFormOptions(max_seconds=3.0), SAMPLING_RATE)
    segments, peak = [], 0
    for start in range(0, speech.size, 4000):
        segments += segmenter.push(speech[start : start + 4000])
        peak = max(peak, segmenter.buffer.size)
    segments += segmenter.finish()
    assert len(segments) >= 3 and all(s.end - s.start <= 3.0 + 1e-6 for s in segments)
    assert peak <= 3.5 * SAMPLING_RATE


def test_noise_alone_gives_segments_with_the_energy_rule_and_none_with_silero():
    noise = 0.05 * np.random.default_rng(3).standard_normal(6 * SAMPLING_RATE).astype(np.float32)
    assert list(split_on_pauses([noise], SAMPLING_RATE, options=LongFormOptions(detector="silero"))) == []
    assert len(list(split_on_pauses([noise], SAMPLING_RATE, options={"detector": "energy"}))) >= 1


def test_options_are_typed_and_checked():
    assert LongFormOptions.of({"min_pause": 0.6}) == LongFormOptions(min_pause=0.6)
    assert LongFormOptions.of(None) == LongFormOptions()
    with pytest.raises(ValueError, match=r"\['pause'\].*'min_pause'"):
        LongFormOptions.of({"pause": 0.6})
    with pytest.raises(ValueError, match="'vad'.*silero, energy"):
        LongFormOptions(detector="vad")
    with pytest.raises(ValueError, match="min_pause=-1"):
        LongFormOptions(min_pause=-1)
