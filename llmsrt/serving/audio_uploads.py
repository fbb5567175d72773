"""The audio uploads of vLLM's `/v1/audio/transcriptions` and `/v1/audio/translations`, decoded as llmsrt's pipeline
decodes them: an ASGI middleware that `python -m llmsrt.serving` installs with vLLM's `--middleware` option.

vLLM decodes an upload itself (`vllm.multimodal.media.audio.load_audio`: torchcodec, else libsndfile, else PyAV) and
resamples it with PyAV; where PyAV or torchcodec is missing (the CPU build removes torchcodec), anything but a 16-kHz
file is refused as "Invalid or unsupported audio file", and the containers it reads differ from the pipeline's. This
middleware reads the upload first with `llmsrt.audio_utils.stream_audio` (libsndfile, then FFmpeg through PyAV where
installed; mono, resampled to 16 kHz with soxr, as the pipeline), and hands vLLM the decoded audio as a 16-kHz mono
float WAV in place of the upload, the form's other fields unchanged, so any rate, any channel count and every
container the pipeline reads are served, to the same samples the pipeline decodes. What it cannot use is answered
here, in vLLM's error format: an undecodable, empty or non-finite file is a 400 naming the problem, a file longer
than `VLLM_MAX_AUDIO_DECODE_DURATION_S` (600 s by default) a 400, a body larger than `VLLM_MAX_AUDIO_CLIP_FILESIZE_MB`
(25 MB by default) a 413, a missing or unknown `language` (or `to_language`) a 400 naming the accepted codes, as the
engine answers. Audio in which Silero VAD finds no speech (`llmsrt.vad.has_speech`: silence, noise, music, hum) gets
no text, `{"text": ""}` as Whisper servers answer, without a request to the engine.

`/v1/chat/completions` gets the same checks for the audio parts of its last user message (`input_audio` base64
`data`, or an `audio_url` whose `url` is a base64 `data:` URL): each is decoded as above, a corrupt, empty,
non-finite or over-long one, or an unknown `task`, `src_lang` or `tgt_lang` in `chat_template_kwargs`, is a 400 naming
the problem, and when none holds speech the answer is a chat completion
with empty content (`stream: true`: a server-sent event stream of one empty delta, then `data: [DONE]`) without a
request to the engine. A request with speech in some part, or with an `audio_url` to fetch, reaches vLLM unchanged.
"""

import base64
import binascii
import io
import json
import math
import os
import time
from http import HTTPStatus

import numpy as np
import soundfile
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..audio_utils import stream_audio
from ..languages import get_language
from ..prompt_builder import check_task
from ..vad import has_speech
from .prompts import speech_to_text_languages

AUDIO_PATHS = ("/v1/audio/transcriptions", "/v1/audio/translations")
CHAT_PATH = "/v1/chat/completions"
SAMPLING_RATE = 16000
MiB = 1 << 20


def max_upload_bytes() -> int:
    """vLLM's limit on an uploaded audio file (`VLLM_MAX_AUDIO_CLIP_FILESIZE_MB`, 25 by default)."""
    return int(float(os.environ.get("VLLM_MAX_AUDIO_CLIP_FILESIZE_MB", "25")) * MiB)


def max_audio_seconds() -> float:
    """vLLM's limit on the decoded duration (`VLLM_MAX_AUDIO_DECODE_DURATION_S`, 600 by default)."""
    return float(os.environ.get("VLLM_MAX_AUDIO_DECODE_DURATION_S", "600"))


def decode_upload(data: bytes, max_seconds: float, name: str = "the uploaded file") -> np.ndarray:
    """An uploaded file -> `(samples,)` float32 mono at 16 kHz, decoded as the pipeline decodes files (`name`: what
    the messages call it).

    Raises:
        ValueError: a file no decoder here reads (the message names the decoders), non-finite samples, no samples,
            or more than `max_seconds` of audio.
    """
    blocks, samples, subject = [], 0, name[0].upper() + name[1:]
    for block in stream_audio(data, SAMPLING_RATE, name=name):
        blocks.append(block)
        samples += block.size
        if samples > max_seconds * SAMPLING_RATE:
            raise ValueError(f"{subject} is longer than {max_seconds:g} s, the most this server decodes "
                             "(VLLM_MAX_AUDIO_DECODE_DURATION_S): send it in parts.")
    waveform = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    if waveform.size == 0:
        raise ValueError(f"{subject} holds no audio samples (an empty recording): send some speech.")
    return waveform


def wav_file(waveform: np.ndarray) -> bytes:
    """A 16-kHz mono float32 WAV of `waveform` (the samples exactly, no requantisation)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, waveform, SAMPLING_RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def error_response(message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST, param: str | None = None) -> Response:
    """An error in vLLM's (OpenAI's) format."""
    return JSONResponse({"error": {"message": message, "type": "BadRequestError" if status == 400 else status.phrase,
                                   "param": param, "code": int(status)}}, status_code=int(status))


def no_text_response(path: str, form, seconds: float) -> Response:
    """The answer to an upload without speech: no text, in the requested `response_format`."""
    if form.get("response_format") == "text":
        return PlainTextResponse("")
    if str(form.get("stream", "false")).lower() == "true":
        return Response("data: [DONE]\n\n", media_type="text/event-stream")
    answer = {"text": ""}
    if path.endswith("transcriptions"):
        answer["usage"] = {"type": "duration", "seconds": int(math.ceil(seconds))}
    return JSONResponse(answer)


def chat_audio(request: dict) -> list[tuple[str, bytes]] | None:
    """The encoded files of the audio parts of a chat request's last user message, as `(name for messages, bytes)`;
    None when there is nothing here to judge (no audio part, an `audio_url` to fetch, a malformed part: vLLM answers
    those).

    Raises:
        ValueError: a part whose `data` is not base64.
    """
    messages = request.get("messages")
    users = [message for message in messages if isinstance(message, dict) and message.get("role") == "user"] \
        if isinstance(messages, list) else []
    if not users or not isinstance(users[-1].get("content"), list):
        return None
    found = []
    for index, part in enumerate(users[-1]["content"]):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("input_audio", "audio_url"):
            continue
        field = part.get(kind)
        if not isinstance(field, dict):
            return None
        if kind == "input_audio":
            data = field.get("data")
        else:
            head, _, data = str(field.get("url", "")).partition(",")
            if not (head.startswith("data:") and head.endswith(";base64")):
                return None
        if not isinstance(data, str):
            return None
        name = f"the audio of content part {index} of the last user message"
        try:
            found.append((name, base64.b64decode(data)))
        except (binascii.Error, ValueError) as error:
            raise ValueError(f"{name[0].upper()}{name[1:]} is not base64 ({error}): send the file's bytes "
                             "base64-encoded.") from error
    return found or None


def check_chat_options(request: dict) -> None:
    """A `ValueError` naming an unknown task or language code in the request's `chat_template_kwargs`, which the
    chat template would refuse."""
    options = request.get("chat_template_kwargs")
    if not isinstance(options, dict):
        return
    if "task" in options:
        check_task(options["task"])
    for name in ("src_lang", "tgt_lang"):
        if options.get(name) is not None:
            try:
                get_language(options[name])
            except ValueError as error:
                raise ValueError(f"Unknown {name} {options[name]!r}: {error}") from error


def empty_chat_completion(request: dict) -> Response:
    """A chat completion with empty content for each of the request's `n` choices, as vLLM (OpenAI) shapes it; with
    `stream: true`, its server-sent events (an empty delta, the stop, usage where `stream_options` asks, `[DONE]`)."""
    head = {"id": "chatcmpl-" + os.urandom(16).hex(), "created": int(time.time()), "model": request.get("model")}
    choices = range(request.get("n") if isinstance(request.get("n"), int) and request.get("n") > 0 else 1)
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}  # the engine was not asked
    if request.get("stream") is not True:
        return JSONResponse({**head, "object": "chat.completion", "usage": usage, "choices": [
            {"index": index, "message": {"role": "assistant", "content": ""}, "logprobs": None,
             "finish_reason": "stop"} for index in choices]})
    chunk = {**head, "object": "chat.completion.chunk"}
    events = [{**chunk, "choices": [{"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                     "finish_reason": None} for index in choices]},
              {**chunk, "choices": [{"index": index, "delta": {}, "logprobs": None, "finish_reason": "stop"}
                                    for index in choices]}]
    options = request.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        events.append({**chunk, "choices": [], "usage": usage})
    return Response("".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n",
                    media_type="text/event-stream")


def multipart_body(fields: list[tuple[str, object]], boundary: str) -> bytes:
    """A multipart/form-data body of `fields` (strings, or `(filename, bytes, content_type)` for a file)."""
    parts = []
    for name, value in fields:
        if isinstance(value, tuple):
            filename, content, content_type = value
            head = (f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: {content_type}\r\n\r\n")
        else:
            head, content = f'Content-Disposition: form-data; name="{name}"\r\n\r\n', str(value).encode()
        parts.append(f"--{boundary}\r\n".encode() + head.encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


class AudioUploadMiddleware:
    """ASGI middleware: decode the `file` of an audio request as llmsrt's pipeline does and pass vLLM a 16-kHz mono
    WAV; answer undecodable, empty, non-finite and over-long uploads with a 4xx, and speechless ones with no text.
    Chat completions: the same for the audio parts of the last user message, speech passed on unchanged."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in (*AUDIO_PATHS, CHAT_PATH):
            await self.app(scope, receive, send)
            return
        chat = scope["path"] == CHAT_PATH
        limit = max_upload_bytes() * 4 // 3 + MiB if chat else max_upload_bytes()  # chat: base64 and the JSON
        body = await read_body(receive, limit)
        if body is None:
            await error_response(f"The request is larger than {limit // MiB} MB, the most this server takes "
                                 "(VLLM_MAX_AUDIO_CLIP_FILESIZE_MB).", HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                 "messages" if chat else "file")(scope, receive, send)
            return
        if chat:
            await self.chat_completion(scope, receive, send, body)
            return
        request = Request(scope, replay(body, receive))
        try:
            form = await request.form(max_part_size=limit)
        except Exception:  # noqa: BLE001 - not a form this parser reads: vLLM's own parser answers it
            await self.app(scope, replay(body, receive), send)
            return
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            await self.app(scope, replay(body, receive), send)  # vLLM names the missing field
            return
        try:  # the engine's own check, made before the audio decides anything
            speech_to_text_languages("transcribe" if scope["path"].endswith("transcriptions") else "translate",
                                     form.get("language"), form.get("to_language"))
        except ValueError as error:
            await error_response(str(error), param="language")(scope, receive, send)
            return
        try:
            waveform = await run_in_threadpool(decode_upload, await upload.read(), max_audio_seconds())
        except ValueError as error:
            await error_response(str(error), param="file")(scope, receive, send)
            return
        if not await run_in_threadpool(has_speech, waveform, SAMPLING_RATE):
            await no_text_response(scope["path"], form, waveform.size / SAMPLING_RATE)(scope, receive, send)
            return
        boundary = "llmsrt-" + os.urandom(12).hex()
        fields = [(name, ("audio.wav", wav_file(waveform), "audio/wav") if name == "file" else value)
                  for name, value in form.multi_items() if not isinstance(value, UploadFile) or name == "file"]
        new_body = multipart_body(fields, boundary)
        headers = [(key, value) for key, value in scope["headers"] if key not in (b"content-type", b"content-length")]
        headers += [(b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                    (b"content-length", str(len(new_body)).encode())]
        await form.close()
        await self.app({**scope, "headers": headers}, replay(new_body, receive), send)

    async def chat_completion(self, scope, receive, send, body: bytes):
        """Refuse unusable audio parts, answer speechless audio with empty content, pass the rest on unchanged."""
        try:
            request = json.loads(body)
            parts = chat_audio(request) if isinstance(request, dict) else None
            if parts is not None:
                check_chat_options(request)
            waveforms = [await run_in_threadpool(decode_upload, data, max_audio_seconds(), name)
                         for name, data in parts or ()]
        except (json.JSONDecodeError, UnicodeDecodeError):  # vLLM names what is wrong with the JSON
            parts = None
        except ValueError as error:
            await error_response(str(error), param="messages")(scope, receive, send)
            return
        if parts is None or any([await run_in_threadpool(has_speech, waveform, SAMPLING_RATE)
                                 for waveform in waveforms]):
            await self.app(scope, replay(body, receive), send)
            return
        await empty_chat_completion(request)(scope, receive, send)


async def read_body(receive, limit: int) -> bytes | None:
    """The request's body, or None once it exceeds `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive):
    """An ASGI `receive` that hands over `body` (already read from `receive`) in one message, then waits on `receive`
    (which reports the client's disconnect)."""
    sent = False

    async def replayed():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
