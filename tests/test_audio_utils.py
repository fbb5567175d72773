"""Audio in (llmsrt/audio_utils.py): one decoder for files, bytes and arrays, block by block or whole."""

import numpy as np
import pytest
import soundfile as sf
from helpers import SAMPLING_RATE, make_clip

from llmsrt.audio_utils import audio_duration, load_audio_file, prepare_audio, stream_audio, to_mono


@pytest.fixture(scope="module")
def stereo_wav(tmp_path_factory):
    """3 s of a speech-like signal, stereo (right channel at half level), at 22.05 kHz."""
    left = make_clip(3.0, seed=4, sampling_rate=22050)
    path = tmp_path_factory.mktemp("audio") / "stereo.wav"
    sf.write(path, np.stack([left, 0.5 * left], axis=1), 22050)
    return path, left


def test_a_stereo_file_is_downmixed_and_resampled_the_same_in_blocks_or_whole(stereo_wav):
    path, left = stereo_wav
    blocks = list(stream_audio(str(path), SAMPLING_RATE, block_seconds=0.7))
    assert len(blocks) >= 5
    whole = np.concatenate(blocks)
    assert whole.size == pytest.approx(3.0 * SAMPLING_RATE, abs=2)
    np.testing.assert_array_equal(load_audio_file(str(path), SAMPLING_RATE), whole)
    np.testing.assert_array_equal(np.concatenate(list(stream_audio(path.read_bytes(), SAMPLING_RATE))), whole)
    # The mixed level: 0.75 of the left channel (the mean of 1 and 0.5), through a 22.05 -> 16 kHz resampler.
    assert np.abs(whole).max() == pytest.approx(0.75 * np.abs(left).max(), rel=0.05)
    assert audio_duration(str(path)) == pytest.approx(3.0, abs=1e-3)


def test_arrays_are_resampled_and_downmixed_like_files():
    clip = make_clip(2.0, seed=1, sampling_rate=8000)
    stereo = np.stack([clip, clip])  # (channels, samples)
    streamed = np.concatenate(list(stream_audio({"array": stereo, "sampling_rate": 8000}, SAMPLING_RATE, 0.5)))
    assert streamed.size == pytest.approx(2 * clip.size, abs=2)
    whole = prepare_audio(stereo, 8000, SAMPLING_RATE)
    assert whole.size == pytest.approx(streamed.size, abs=2)
    np.testing.assert_allclose(whole[100:-100], streamed[100 : whole.size - 100], atol=2e-3)
    np.testing.assert_array_equal(to_mono(stereo.T), clip)


def test_bad_audio_is_refused_with_the_reason(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 50)
    with pytest.raises(ValueError, match="corrupt.wav"):
        load_audio_file(str(corrupt), SAMPLING_RATE)
    with pytest.raises(ValueError, match="not found: .*missing.wav"):
        list(stream_audio(str(tmp_path / "missing.wav")))
    broken = np.concatenate([np.zeros(SAMPLING_RATE, dtype=np.float32), [np.nan]])
    with pytest.raises(ValueError, match="NaN or infinite.*near 0.0 s"):
        list(stream_audio(broken, SAMPLING_RATE))
    with pytest.raises(ValueError, match="empty"):
        prepare_audio(np.zeros(0), SAMPLING_RATE, SAMPLING_RATE)


def test_digital_silence_is_refused_for_training_and_accepted_for_speech_detection():
    silence = np.zeros(SAMPLING_RATE, dtype=np.float32)
    with pytest.raises(ValueError, match="silent"):
        prepare_audio(silence, SAMPLING_RATE, SAMPLING_RATE)
    np.testing.assert_array_equal(prepare_audio(silence, SAMPLING_RATE, SAMPLING_RATE, reject_silence=False), silence)
