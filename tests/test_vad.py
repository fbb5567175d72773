"""Speech detection (llmsrt/vad.py): Silero VAD finds speech and ignores noise, music, hum and clicks; the energy rule
takes any loud sound for speech (why it is not the default)."""

import numpy as np
import pytest
import torch
from helpers import SAMPLING_RATE
from speech_helpers import spoken_utterances

from llmsrt.vad import EnergyDetector, SileroDetector, has_speech, load_silero_model, make_detector, speech_regions


def non_speech(seconds: float = 4.0) -> dict[str, np.ndarray]:
    """Sounds that are not speech, at speech-like levels: white noise, a chord progression, mains hum, clicks."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    chords = sum(0.08 * np.sin(2 * np.pi * f * t) * (np.sin(2 * np.pi * 0.5 * k * t) > 0)
                 for k, f in enumerate([262, 330, 392, 523], 1))
    clicks = np.zeros(t.size)
    clicks[:: SAMPLING_RATE // 4] = 0.9
    return {"white noise": 0.1 * rng.standard_normal(t.size), "music": chords,
            "hum": 0.2 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t), "clicks": clicks,
            "silence": np.zeros(t.size)}


@pytest.fixture(scope="module")
def sentence():
    """1 s of silence, an eSpeak sentence, 1 s of silence; and where the sentence is."""
    (utterance,) = spoken_utterances(1)
    pause = np.zeros(SAMPLING_RATE, dtype=np.float32)
    return np.concatenate([pause, utterance, pause]), (1.0, 1.0 + utterance.size / SAMPLING_RATE)


def test_silero_finds_the_sentence(sentence):
    waveform, (start, end) = sentence
    regions = speech_regions(waveform, SAMPLING_RATE)
    assert regions and abs(regions[0][0] - start) <= 0.2 and abs(regions[-1][1] - end) <= 0.3
    assert has_speech(waveform)


@pytest.mark.parametrize("kind", ["white noise", "music", "hum", "clicks", "silence"])
def test_silero_finds_no_speech_in_noise_music_hum_clicks_or_silence(kind):
    sound = non_speech()[kind].astype(np.float32)
    assert speech_regions(sound, SAMPLING_RATE) == []
    assert not has_speech(sound)


def test_the_energy_rule_takes_noise_for_speech():
    assert has_speech(non_speech()["white noise"].astype(np.float32), detector="energy")


def test_a_stream_classified_in_pieces_equals_one_pass(sentence):
    waveform, _ = sentence
    frames = waveform[: waveform.size // 512 * 512].reshape(-1, 512)
    for detector in (SileroDetector(), EnergyDetector(frame_seconds=0.032)):
        whole = detector.classify(frames)
        detector.reset()
        pieces = [detector.classify(frames[i : i + 7]) for i in range(0, len(frames), 7)]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in pieces]), whole[0])
        np.testing.assert_allclose(np.concatenate([p[1] for p in pieces]), whole[1], atol=1e-6)


def test_loading_silero_keeps_torch_threads():
    """silero_vad sets torch to one thread when imported: the loader puts the caller's setting back."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        load_silero_model()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_unknown_detector_and_rate_are_refused():
    with pytest.raises(ValueError, match="'webrtc'.*silero, energy"):
        make_detector("webrtc")
    with pytest.raises(ValueError, match="sampling_rate=8000"):
        SileroDetector(8000)


def test_without_silero_vad_installed_the_energy_rule_stands_in_and_says_so(monkeypatch, caplog):
    import sys

    import llmsrt.vad

    monkeypatch.setitem(sys.modules, "silero_vad", None)  # `import silero_vad` raises ImportError
    monkeypatch.setattr(llmsrt.vad, "_WARNED", [])
    with caplog.at_level("WARNING", logger="llmsrt.vad"):
        detector = make_detector("silero")
    assert isinstance(detector, EnergyDetector)
    assert "pip install silero-vad" in caplog.text and "energy rule" in caplog.text
