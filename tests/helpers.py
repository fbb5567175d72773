"""Helpers the tests (and benchmarks/long_audio_memory.py) share: a test corpus, a speech-like signal, saving a
model as a user publishes it, a tiny Whisper in CTranslate2's format. The fixtures built on them are in conftest.py."""

import json
import socket
import subprocess
import sys

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperModel

from llmsrt import LLMSRTForConditionalGeneration
from llmsrt.conversion.convert_ctranslate2_whisper_to_hf import SPEC, state_dict_to_ctranslate2
from llmsrt.conversion.ctranslate2_format import write_model_bin

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


def build_from_saved_parts(tiny_model, processor, folder, **options):
    """A new LLM-SRT built with `from_pretrained_parts` from a Whisper and an LLM saved under `folder` (`whisper/`,
    `llm/`): `tiny_model`'s LLM, a Whisper of its audio config, its query count and Q-Former; `options` go to
    `from_pretrained_parts`. Its `save_pretrained(changed_only=True)` folders name those parts."""
    WhisperModel(WhisperConfig(**tiny_model.config.audio_config.to_dict())).save_pretrained(folder / "whisper")
    tiny_model.language_model.save_pretrained(folder / "llm")
    return LLMSRTForConditionalGeneration.from_pretrained_parts(
        str(folder / "whisper"), str(folder / "llm"), audio_token_id=processor.audio_token_id,
        num_query_tokens=tiny_model.config.num_query_tokens, qformer_config=tiny_model.config.qformer_config.to_dict(),
        **options,
    )


def enliven(model):
    """Give a tiny model large random weights (the matrices outside the encoder): unlike a freshly initialised one,
    its outputs then depend on the input."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim == 2 and not name.startswith("audio_encoder"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return model.eval()


# A tiny Whisper in CTranslate2's format (as faster-whisper ships it), for the converter and the demo tests.
SPECIAL = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|de|>", "<|fr|>", "<|translate|>",
           "<|transcribe|>", "<|notimestamps|>"]


def make_tiny_whisper() -> WhisperForConditionalGeneration:
    torch.manual_seed(0)
    config = WhisperConfig(vocab_size=64, num_mel_bins=80, d_model=32, encoder_layers=2, decoder_layers=2,
                           encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=32,
                           pad_token_id=0, bos_token_id=0, eos_token_id=0, decoder_start_token_id=1)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # the k-projection has no bias; every other weight gets a value to carry over
        for parameter in model.parameters():
            parameter.normal_(0, 0.2)
    return model


def write_checkpoint(folder, model, dtype):
    folder.mkdir(parents=True, exist_ok=True)
    variables = state_dict_to_ctranslate2(model.state_dict(), model.config, dtype=dtype)
    variables.pop("decoder/embeddings/weight")
    aliases = {"decoder/embeddings/weight": "decoder/projection/weight"}  # as faster-whisper ties them
    variables["decoder/projection/weight"] = model.proj_out.weight.detach().numpy().astype(dtype)
    write_model_bin(folder / "model.bin", SPEC, variables, aliases)
    vocab = {token: index for index, token in enumerate(SPECIAL + [f"t{i}" for i in range(64 - len(SPECIAL))])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(SPECIAL)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "config.json").write_text(json.dumps({"suppress_ids": [9, 10], "suppress_ids_begin": [0]}))
    return folder


def run_in_fresh_process(script: str, waveform: np.ndarray, folder, output_name: str, tmp_path) -> None:
    """Run `script` as `python fresh.py FOLDER clip.npy OUTPUT` in a new process, offline, with a bare PATH and its
    own remote-code module cache: what a user's fresh interpreter sees of a saved folder."""
    np.save(tmp_path / "clip.npy", waveform)
    (tmp_path / "fresh.py").write_text(script)
    subprocess.run([sys.executable, str(tmp_path / "fresh.py"), str(folder), str(tmp_path / "clip.npy"),
                    str(tmp_path / output_name)], check=True, capture_output=True, cwd=tmp_path,
                   env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "m")},
                   timeout=300)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the tests' servers listen on loopback only)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
