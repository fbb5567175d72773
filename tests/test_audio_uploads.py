"""The audio endpoints' uploads (llmsrt.serving.audio_uploads) in front of an ASGI app that records what it is given:
what reaches vLLM is the pipeline's decoding of the upload as a 16-kHz mono WAV, the form's other fields unchanged;
what cannot be used is answered before it; chat completions' audio parts are checked the same way and, with speech,
passed on unchanged. The middleware in vLLM's server: tests/test_vllm_server.py."""

import base64
import io
import json

import numpy as np
import pytest
import soundfile as sf
from helpers import make_clip
from speech_helpers import spoken

from llmsrt.audio_utils import prepare_audio

starlette = pytest.importorskip("starlette", reason="the middleware is an ASGI (Starlette) component")
pytest.importorskip("httpx", reason="Starlette's TestClient sends its requests with httpx")

from starlette.applications import Starlette  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from llmsrt.serving.audio_uploads import AudioUploadMiddleware  # noqa: E402

FIELDS = {"model": "llmsrt", "language": "en", "to_language": "de", "temperature": "0"}


def encoded(waveform: np.ndarray, rate: int, file_format: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, waveform, rate, format=file_format, subtype=subtype)
    return buffer.getvalue()


# Files neither endpoint can use, and what the 400 says: the uploads' and the chat audio parts' shared cases.
UNUSABLE = [
    (b"certainly not audio" * 50, "Could not decode"),
    (b"", "Could not decode"),
    (encoded(np.full(1600, np.nan, dtype=np.float32), 16000, subtype="FLOAT"), "NaN or infinite"),
]


@pytest.fixture
def client():
    received = []

    async def engine(request):
        form = await request.form()
        if "file" not in form:
            return JSONResponse({"error": "the engine found no file"}, status_code=400)
        upload = form["file"]
        samples, rate = sf.read(io.BytesIO(await upload.read()), dtype="float32", always_2d=True)
        received.append({"samples": samples, "rate": rate, "filename": upload.filename,
                         "fields": {key: value for key, value in form.items() if key != "file"}})
        return JSONResponse({"text": "from the engine"})

    async def chat_engine(request):
        received.append({"body": await request.body()})
        return JSONResponse({"object": "chat.completion", "choices": [{"message": {"content": "from the engine"}}]})

    async def health(request):
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/v1/audio/transcriptions", engine, methods=["POST"]),
                            Route("/v1/audio/translations", engine, methods=["POST"]),
                            Route("/v1/chat/completions", chat_engine, methods=["POST"]),
                            Route("/health", health)])
    app.add_middleware(AudioUploadMiddleware)
    with TestClient(app) as test_client:
        yield test_client, received


def post(test_client, data: bytes, path: str = "/v1/audio/translations", **fields):
    return test_client.post(path, files={"file": ("upload.bin", data, "application/octet-stream")},
                            data={**FIELDS, **fields})


def test_an_8_khz_stereo_wav_reaches_the_engine_as_the_pipeline_decodes_it(client):
    test_client, received = client
    speech = spoken("Good morning, the train leaves at nine.", sampling_rate=8000)
    upload = encoded(np.stack([speech, 0.5 * speech], axis=1), 8000)
    response = post(test_client, upload)
    assert response.status_code == 200 and response.json() == {"text": "from the engine"}
    (seen,) = received
    assert seen["rate"] == 16000 and seen["samples"].shape[1] == 1
    np.testing.assert_array_equal(seen["samples"][:, 0], prepare_audio(upload, None, 16000))
    assert seen["fields"] == FIELDS


@pytest.mark.parametrize("file_format, rate, channels", [("OGG", 48000, 2), ("FLAC", 44100, 6), ("WAV", 16000, 1)])
def test_other_containers_rates_and_channel_counts_are_accepted(client, file_format, rate, channels):
    test_client, received = client
    speech = spoken("Good morning.", sampling_rate=rate)
    waveform = np.stack([speech * (1 - 0.1 * c) for c in range(channels)], axis=1)
    upload = encoded(waveform, rate, file_format)
    assert post(test_client, upload, path="/v1/audio/transcriptions").status_code == 200
    np.testing.assert_allclose(received[-1]["samples"][:, 0], prepare_audio(upload, None, 16000), atol=1e-6)


@pytest.mark.parametrize("upload, reason", UNUSABLE)
def test_unusable_uploads_are_a_400_naming_the_problem(client, upload, reason):
    test_client, received = client
    response = post(test_client, upload)
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]["message"] and response.json()["error"]["param"] == "file"
    assert received == []


def test_an_upload_longer_than_the_decode_limit_is_refused(client, monkeypatch):
    test_client, received = client
    monkeypatch.setenv("VLLM_MAX_AUDIO_DECODE_DURATION_S", "5")
    speech = spoken("Good morning.")
    long_file = encoded(np.tile(speech, 1 + 6 * 16000 // speech.size), 16000)  # over 6 s, about 200 kB
    response = post(test_client, long_file)
    assert response.status_code == 400 and "longer than 5 s" in response.json()["error"]["message"]
    monkeypatch.setenv("VLLM_MAX_AUDIO_CLIP_FILESIZE_MB", "0.1")
    response = post(test_client, long_file)
    assert response.status_code == 413 and "larger than" in response.json()["error"]["message"]
    assert received == []


def test_silence_and_noise_get_no_text_without_a_request_to_the_engine(client):
    test_client, received = client
    silence = encoded(np.zeros(24000, dtype=np.float32), 8000)
    response = post(test_client, silence, path="/v1/audio/transcriptions")
    assert response.status_code == 200 and response.json() == {"text": "", "usage": {"type": "duration",
                                                                                     "seconds": 3}}
    response = post(test_client, silence, response_format="text")
    assert response.status_code == 200 and response.text == ""
    noise = (np.random.default_rng(0).standard_normal(32000) * 0.2).astype(np.float32)
    for sound in (noise, make_clip(2.0, seed=4)):  # white noise; a buzz of harmonics
        response = post(test_client, encoded(sound, 16000))
        assert response.status_code == 200 and response.json() == {"text": ""}
    assert received == []


@pytest.mark.parametrize(("fields", "reason"), [
    ({"language": "klingon"}, "Unknown language code 'klingon'. Use an ISO 639-3 code"),
    ({"to_language": "xx"}, "Unknown language code 'xx'. Use an ISO 639-3 code"),
    ({"language": None}, "needs the spoken language: pass `language`"),
])
def test_a_bad_language_is_a_400_whatever_the_audio_holds(client, fields, reason):
    """The engine refuses these; silence must not turn them into an empty answer."""
    test_client, received = client
    data = {key: value for key, value in {**FIELDS, **fields}.items() if value is not None}
    for sound in (np.zeros(16000, dtype=np.float32), spoken("Good morning.")):
        response = test_client.post("/v1/audio/translations", data=data,
                                    files={"file": ("upload.wav", encoded(sound, 16000), "audio/wav")})
        assert response.status_code == 400 and reason in response.json()["error"]["message"], response.text
    assert received == []


def test_other_routes_pass_through(client):
    test_client, received = client
    assert test_client.get("/health").json() == {"ok": True}
    response = test_client.post("/v1/audio/translations", data=FIELDS)  # no file: the engine's parser answers
    assert response.status_code == 400 and response.json() == {"error": "the engine found no file"}


def test_a_streamed_request_without_speech_gets_an_event_stream_that_ends_at_once(client):
    test_client, received = client
    response = post(test_client, encoded(np.zeros(16000, dtype=np.float32), 16000), stream="true")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.text == "data: [DONE]\n\n"
    assert received == []


def audio_part(data: bytes, kind: str = "input_audio") -> dict:
    encoded_data = base64.b64encode(data).decode()
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": {"data": encoded_data, "format": "wav"}}
    return {"type": "audio_url", "audio_url": {"url": "data:audio/wav;base64," + encoded_data}}


def chat(test_client, *parts: dict, **options):
    request = {"model": "llmsrt", "temperature": 0, **options,
               "chat_template_kwargs": {"task": "srt", "src_lang": "eng", "tgt_lang": "deu"},
               "messages": [{"role": "system", "content": "You translate."},
                            {"role": "user", "content": [{"type": "text", "text": "earlier"}]},
                            {"role": "assistant", "content": "an answer"},
                            {"role": "user", "content": list(parts)}]}
    return test_client.post("/v1/chat/completions", json=request), request


SILENCE = encoded(np.zeros(24000, dtype=np.float32), 8000)
NOISE = encoded((np.random.default_rng(1).standard_normal(32000) * 0.2).astype(np.float32), 16000)


@pytest.mark.parametrize("kind", ["input_audio", "audio_url"])
def test_chat_audio_with_speech_reaches_the_engine_unchanged(client, kind):
    test_client, received = client
    speech = encoded(spoken("The train leaves at nine.", sampling_rate=22050), 22050)
    response, request = chat(test_client, audio_part(NOISE, kind), audio_part(speech, kind))
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "from the engine"
    (seen,) = received
    assert json.loads(seen["body"]) == request


@pytest.mark.parametrize("kind", ["input_audio", "audio_url"])
def test_chat_audio_without_speech_gets_empty_content_without_a_request_to_the_engine(client, kind):
    test_client, received = client
    response, _ = chat(test_client, audio_part(SILENCE, kind), audio_part(NOISE, kind), n=2)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "chat.completion" and answer["model"] == "llmsrt"
    assert answer["id"].startswith("chatcmpl-")
    assert [(choice["index"], choice["message"], choice["finish_reason"]) for choice in answer["choices"]] == [
        (0, {"role": "assistant", "content": ""}, "stop"), (1, {"role": "assistant", "content": ""}, "stop")]
    assert answer["usage"]["completion_tokens"] == 0
    buzz, _ = chat(test_client, audio_part(encoded(make_clip(2.0, seed=4), 16000), kind))
    assert buzz.json()["choices"][0]["message"]["content"] == ""
    assert received == []


@pytest.mark.parametrize(("options", "reason"), [({"src_lang": "xx", "tgt_lang": "deu"}, "Unknown src_lang 'xx'"),
                                               ({"task": "summarise"}, "Unknown task 'summarise'")])
def test_a_chat_with_an_unknown_language_or_task_is_a_400_even_without_speech(client, options, reason):
    test_client, received = client
    _, request = chat(test_client, audio_part(SILENCE))
    received.clear()
    request["chat_template_kwargs"] |= options
    response = test_client.post("/v1/chat/completions", json=request)
    assert response.status_code == 400 and reason in response.json()["error"]["message"], response.text
    assert received == []


def test_a_streamed_chat_without_speech_is_one_empty_delta_then_done(client):
    test_client, received = client
    response, _ = chat(test_client, audio_part(NOISE), stream=True, stream_options={"include_usage": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in response.text.split("\n\n") if line)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert "".join(choice["delta"].get("content", "") for chunk in chunks for choice in chunk["choices"]) == ""
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [choice["finish_reason"] for chunk in chunks for choice in chunk["choices"]] == [None, "stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 0
    assert received == []


@pytest.mark.parametrize("data, reason", UNUSABLE)
def test_unusable_chat_audio_is_a_400_naming_the_problem(client, data, reason):
    test_client, received = client
    speech = encoded(spoken("Good morning."), 16000)
    response, _ = chat(test_client, audio_part(speech), audio_part(data, "audio_url"))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert reason in error["message"] and "content part 1 of the last user message" in error["message"]
    assert error["param"] == "messages"
    assert received == []


def test_chat_audio_that_is_not_base64_is_a_400(client):
    test_client, received = client
    not_base64 = {"type": "input_audio", "input_audio": {"data": "not base64 at all", "format": "wav"}}
    response, _ = chat(test_client, not_base64)
    assert response.status_code == 400
    assert "content part 0 of the last user message is not base64" in response.json()["error"]["message"]
    assert received == []


def test_chat_requests_without_audio_to_judge_pass_through(client):
    test_client, received = client
    remote = {"type": "audio_url", "audio_url": {"url": "https://example.org/clip.wav"}}  # vLLM fetches it
    for parts in ([{"type": "text", "text": "hello"}], [audio_part(SILENCE), remote]):
        response, request = chat(test_client, *parts)
        assert response.status_code == 200 and json.loads(received[-1]["body"]) == request
    response = test_client.post("/v1/chat/completions", content=b"{not json")
    assert response.status_code == 200 and received[-1]["body"] == b"{not json"
    assert len(received) == 3


def test_over_long_chat_audio_and_an_over_large_chat_body_are_refused(client, monkeypatch):
    test_client, received = client
    monkeypatch.setenv("VLLM_MAX_AUDIO_DECODE_DURATION_S", "5")
    speech = spoken("Good morning.")
    long_file = encoded(np.tile(speech, 1 + 6 * 16000 // speech.size), 16000)  # over 6 s, about 200 kB
    response, _ = chat(test_client, audio_part(long_file))
    assert response.status_code == 400 and "part 0 of the last user message is longer than 5 s" in response.text
    monkeypatch.setenv("VLLM_MAX_AUDIO_CLIP_FILESIZE_MB", "0")  # the JSON's 1 MB of room, exceeded by 2 MB of base64
    response, _ = chat(test_client, audio_part(encoded(np.tile(speech, 1 + 64 * 16000 // speech.size), 16000)))
    assert response.status_code == 413 and "larger than" in response.json()["error"]["message"]
    assert received == []
