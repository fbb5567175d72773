import numpy as np
import pytest
from helpers import SAMPLING_RATE, make_clip


@pytest.mark.parametrize(
    "audio, message",
    [
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.full(16000, np.nan, dtype=np.float32), "NaN or infinite"),
        (np.full(16000, np.inf, dtype=np.float32), "NaN or infinite"),
        (np.zeros(16000, dtype=np.float32), "silent"),
        (make_clip(6.0, 0), "longer than the encoder window"),
        (np.zeros((2, 3, 4), dtype=np.float32), "1-D"),
    ],
)
def test_bad_audio_raises_a_clear_value_error(tiny, audio, message):
    _, processor = tiny
    with pytest.raises(ValueError, match=message):
        processor(audio=audio, sampling_rate=SAMPLING_RATE)


def test_bad_audio_in_a_batch_names_the_clip(tiny):
    _, processor = tiny
    with pytest.raises(ValueError, match="audio clip 1 is silent"):
        processor(audio=[make_clip(1, 0), np.zeros(8000, np.float32)], sampling_rate=SAMPLING_RATE)


def test_unknown_language_task_and_missing_transcript(tiny):
    _, processor = tiny
    clip = make_clip(1.0, 0)
    with pytest.raises(ValueError, match="Unknown language code 'xx'.*ISO 639-3"):
        processor(audio=clip, src_lang="xx", tgt_lang="deu")
    with pytest.raises(ValueError, match="Unknown language code 'klingon'"):
        processor(audio=clip, src_lang="eng", tgt_lang="klingon")
    with pytest.raises(ValueError, match="'st'.*'asr'"):
        processor(audio=clip, task="st")
    with pytest.raises(ValueError, match="smt.*gold transcript"):
        processor(audio=clip, task="smt", src_lang="eng", tgt_lang="deu")
    with pytest.raises(ValueError, match="tgt_lang has 3 entries for 1"):
        processor(audio=clip, tgt_lang=["deu", "fra", "spa"])
    with pytest.raises(ValueError, match="non-empty translation"):
        processor(audio=clip, targets={"transcription": "hi", "translation": ""})


def test_missing_and_corrupt_files(tiny, tmp_path):
    _, processor = tiny
    with pytest.raises(ValueError, match="not found: .*nope.wav"):
        processor(audio=str(tmp_path / "nope.wav"))
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage that is not audio")
    with pytest.raises(ValueError, match="corrupt.wav"):
        processor(audio=str(corrupt))


def test_placeholder_mismatch_is_a_value_error(tiny):
    model, processor = tiny
    batch = processor(audio=make_clip(1.0, 0), sampling_rate=SAMPLING_RATE)
    batch["input_ids"][0, -1] = processor.audio_token_id
    with pytest.raises(ValueError, match="9 audio placeholder tokens for 1 clip.*expected 8"):
        model(**batch)
    batch = processor(audio=make_clip(1.0, 0), sampling_rate=SAMPLING_RATE)
    with pytest.raises(ValueError, match="no input_features"):
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
