"""`python -m llmsrt.serving.websocket --model DIR --port 8765`: live captions over a WebSocket (console script
`llmsrt-websocket`; install the `[websocket]` extra: uvicorn, starlette, websockets).

A client opens `ws://HOST:PORT/v1/live`, sets its session's options with a JSON `session.update` message (source and
target language, chunk size, the audio format), streams its audio as binary frames (PCM16 little-endian, mono, 16 kHz
by default) and receives JSON events: `partial` (the current hypothesis of transcript and translation, may change) and
`final` (committed text that never changes), each with its audio times; `error` for a message the server could not
use (the session goes on). The protocol is modelled on the OpenAI Realtime transcription events and documented in
docs/serving.md; every session runs its own `llmsrt.inference.live.LiveTranslator` over one shared pipeline, and the
model runs on one worker thread, so sessions take turns and the event loop stays free to receive.

`GET /health` answers `{"status": "ok", "sessions": N}` (N: the sessions open now).
"""

import argparse
import asyncio
import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..inference.live import TOKENS_PER_DECODE, TOKENS_PER_SECOND, LiveTranslator
from ..inference.translate import load_translator
from ..languages import language_code

PATH = "/v1/live"
# The longest audio one binary frame may carry (a client streams as it records: frames of 20 ms to 1 s are usual).
MAX_FRAME_SECONDS = 30.0
# The sample type of each accepted audio format (little-endian, mono).
AUDIO_FORMATS = {"pcm16": np.dtype("<i2"), "float32": np.dtype("<f4")}
# A session's options: the translator's (llmsrt.inference.live.LiveTranslator) and the audio frames' format.
DEFAULT_OPTIONS = {"src_lang": None, "tgt_lang": None, "task": "srt", "chunk_seconds": 1.0,
                   "max_latency_seconds": 10.0, "partials": True, "sampling_rate": 16000, "audio_format": "pcm16"}
CHOICES = {"audio_format": tuple(AUDIO_FORMATS), "task": ("srt", "asr"), "partials": (True, False)}
RANGES = {"chunk_seconds": (0.05, 30.0), "max_latency_seconds": (0.5, 30.0), "sampling_rate": (1000, 384_000)}
# WebSocket close code when the server already runs `max_sessions` sessions (RFC 6455: try again later).
TRY_AGAIN_LATER = 1013


class ProtocolError(ValueError):
    """A client message the server cannot use: answered with an `error` event, the session goes on."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def error_event(code: str, message: str) -> dict:
    """An `error` event as the OpenAI Realtime API writes it."""
    return {"type": "error", "error": {"type": "invalid_request_error", "code": code, "message": message}}


def events(found: list) -> list[dict]:
    """Translator events -> protocol events: `partial`/`final` as `LiveEvent.to_dict()`, errors as `error` events."""
    return [error_event("invalid_audio", event.message) if event.type == "error" else event.to_dict()
            for event in found]


def decode_frame(frame: bytes, audio_format: str, sampling_rate: int) -> np.ndarray:
    """A binary frame -> `(samples,)` float32 (PCM16 scaled by 1/32768).

    Raises:
        ProtocolError: an empty frame, a byte count that is not a whole number of samples, or more than
            `MAX_FRAME_SECONDS` of audio. (NaN samples are the translator's to refuse: an `error` event.)
    """
    dtype = AUDIO_FORMATS[audio_format]
    if not frame:
        raise ProtocolError("empty_audio", "Empty audio frame (0 bytes): send at least one sample.")
    if len(frame) % dtype.itemsize:
        raise ProtocolError(
            "invalid_audio",
            f"An audio frame of {len(frame)} bytes is not a whole number of {audio_format} samples "
            f"({dtype.itemsize} bytes each, little-endian mono).",
        )
    samples = len(frame) // dtype.itemsize
    if samples > MAX_FRAME_SECONDS * sampling_rate:
        raise ProtocolError(
            "audio_too_long",
            f"An audio frame of {samples / sampling_rate:.1f} s: at most {MAX_FRAME_SECONDS:g} s per frame (stream "
            "the audio as it is recorded, in frames of 20 ms to a few seconds).",
        )
    waveform = np.frombuffer(frame, dtype=dtype).astype(np.float32)
    return waveform / 32768.0 if audio_format == "pcm16" else waveform


def session_options(current: dict, update) -> dict:
    """`current` with a `session.update`'s `session` object applied, validated.

    Raises:
        ProtocolError: an unknown option, an unknown language, or a value out of range.
    """
    if not isinstance(update, dict):
        raise ProtocolError("invalid_session", "session.update needs a `session` object, e.g. "
                                               '{"type": "session.update", "session": {"src_lang": "eng", '
                                               '"tgt_lang": "deu"}}.')
    unknown = sorted(set(update) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ProtocolError("unknown_option", f"Unknown session option(s) {unknown}; accepted: "
                                              f"{', '.join(DEFAULT_OPTIONS)}.")
    options = {**current, **update}
    try:
        for key in ("src_lang", "tgt_lang"):
            if options[key] is not None and not (key == "src_lang" and options[key] == "auto"):
                options[key] = language_code(options[key])
    except ValueError as error:
        raise ProtocolError("unknown_language", f"{key}: {error}") from error
    for key, accepted in CHOICES.items():
        if options[key] not in accepted or isinstance(options[key], bool) != (key == "partials"):
            raise ProtocolError("invalid_option", f"{key}={options[key]!r}: one of {', '.join(map(str, accepted))}.")
    for key, (low, high) in RANGES.items():
        value = options[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ProtocolError("invalid_option", f"{key}={value!r}: a number from {low} to {high}.")
    options["sampling_rate"] = int(options["sampling_rate"])
    return options


@dataclass
class Session:
    """One client's options and its translator (made once the languages are known)."""

    options: dict
    translator: LiveTranslator | None = None


class LiveServer:
    """The WebSocket endpoint over one `speech-translation` pipeline.

    Args:
        pipeline: the pipeline every session's `LiveTranslator` runs.
        defaults: the options a session starts with (`src_lang`/`tgt_lang` may be None: the client sets them).
        max_sessions: more open sessions are refused (close code 1013, after an `error` event).
        generate_kwargs: decoding options of every session (beam size, max_new_tokens...).
    """

    def __init__(self, pipeline, defaults: dict | None = None, max_sessions: int = 8,
                 generate_kwargs: dict | None = None):
        self.pipeline = pipeline
        self.generate_kwargs = dict(generate_kwargs or {})
        self.defaults = session_options(
            DEFAULT_OPTIONS, {key: value for key, value in (defaults or {}).items() if value is not None})
        self.max_sessions = max_sessions
        self.sessions: set[int] = set()
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmsrt-live")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/health", self.health), WebSocketRoute(PATH, self.serve)],
                         lifespan=self.lifespan)

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        yield
        self.model_thread.shutdown(wait=False, cancel_futures=True)

    async def health(self, request) -> JSONResponse:
        return JSONResponse({"status": "ok", "sessions": len(self.sessions)})

    async def run_model(self, function, *args):
        """Run a translator call on the model's thread (sessions take turns; the event loop keeps receiving)."""
        return await asyncio.get_running_loop().run_in_executor(self.model_thread, function, *args)

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if len(self.sessions) >= self.max_sessions:
            await websocket.send_json(error_event(
                "server_busy", f"The server runs {self.max_sessions} sessions already; try again later."))
            await websocket.close(TRY_AGAIN_LATER)
            return
        session = Session(dict(self.defaults))
        self.sessions.add(id(session))
        try:
            if self.defaults["src_lang"] is not None and self.defaults["tgt_lang"] is not None:
                session.translator = await self.new_translator(session.options)
            await websocket.send_json({"type": "session.created", "session": session.options})
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                for event in await self.handle(session, message):
                    await websocket.send_json(event)
        except WebSocketDisconnect:
            pass
        finally:
            self.sessions.discard(id(session))  # the translator and its audio go with the session

    async def handle(self, session: Session, message: dict) -> list[dict]:
        """The events answering one received message (`error` events for what cannot be used)."""
        try:
            if message.get("bytes") is not None:
                return await self.audio(session, message["bytes"])
            return await self.command(session, message.get("text") or "")
        except ProtocolError as error:
            return [error_event(error.code, str(error))]

    async def audio(self, session: Session, frame: bytes) -> list[dict]:
        options = session.options
        chunk = decode_frame(frame, options["audio_format"], options["sampling_rate"])
        if session.translator is None:
            raise ProtocolError("session_not_configured", "Set the languages first: "
                                '{"type": "session.update", "session": {"src_lang": "eng", "tgt_lang": "deu"}}.')
        return await self.run_model(self.push, session.translator, chunk, options["sampling_rate"])

    async def new_translator(self, options: dict) -> LiveTranslator:
        """A translator with the session's options (`ProtocolError` for what it refuses, e.g. `auto` without a
        language-ID head)."""
        try:
            return await self.run_model(lambda: LiveTranslator(
                self.pipeline, options["src_lang"], options["tgt_lang"], chunk_seconds=options["chunk_seconds"],
                max_latency_seconds=options["max_latency_seconds"], partials=options["partials"],
                task=options["task"], generate_kwargs=self.generate_kwargs))
        except ValueError as error:
            raise ProtocolError("invalid_session", str(error)) from error

    @staticmethod
    def push(translator: LiveTranslator, chunk: np.ndarray, sampling_rate: int) -> list[dict]:
        try:
            return events(translator.push(chunk, sampling_rate))
        except ValueError as error:  # what decoding refuses: an error event, the session goes on
            return [error_event("invalid_audio", str(error))]

    async def command(self, session: Session, text: str) -> list[dict]:
        try:
            message = json.loads(text)
        except json.JSONDecodeError as error:
            raise ProtocolError("invalid_json", f"A text message must be one JSON object ({error}).") from error
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "session.update":
            options = session_options(session.options, message.get("session"))
            translator = None
            if options["src_lang"] is not None and options["tgt_lang"] is not None:
                translator = await self.new_translator(options)
            finished = await self.finish(session)  # the audio so far is committed with the options it was sent with
            session.options, session.translator = options, translator
            return finished + [{"type": "session.updated", "session": options}]
        if kind == "input_audio_buffer.commit":
            return await self.finish(session) + [{"type": "input_audio_buffer.committed"}]
        if kind == "input_audio_buffer.clear":
            if session.translator is not None:
                await self.run_model(session.translator.reset)
            return [{"type": "input_audio_buffer.cleared"}]
        raise ProtocolError("unknown_event", f"Unknown message type {kind!r}; accepted: session.update, "
                                             "input_audio_buffer.commit, input_audio_buffer.clear (and binary audio "
                                             "frames).")

    async def finish(self, session: Session) -> list[dict]:
        """Commit what the session's translator holds (its last `final` events) and start a new stream: the next
        audio is at time 0 again."""
        translator = session.translator
        if translator is None:
            return []

        def finish_and_reset() -> list[dict]:
            found = events(translator.finish())
            translator.reset()
            return found

        return await self.run_model(finish_and_reset)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m llmsrt.serving.websocket", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="A saved LLM-SRT folder (or Hub id).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to serve on (0.0.0.0: every interface).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--src_lang", default=None, help="A session's source language until it sets one.")
    parser.add_argument("--tgt_lang", default=None, help="A session's target language until it sets one.")
    parser.add_argument("--chunk_seconds", type=float, default=1.0, help="Audio decoded per step (default 1 s).")
    parser.add_argument("--max_sessions", type=int, default=8, help="Sessions served at once (default 8).")
    parser.add_argument("--num_beams", type=int, default=None, help="Beam size (default 1: live decoding is greedy).")
    parser.add_argument("--max_new_tokens", type=int, default=None,
                        help=f"Per decode (default: {TOKENS_PER_DECODE} + {TOKENS_PER_SECOND} per second of audio).")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available).")
    parser.add_argument("--quantize", default=None, choices=["int8", "bf16"],
                        help="On a CPU: int8 (about 2x faster decoding) or bf16 (where the CPU computes it natively).")
    return parser.parse_args(argv)


def uvicorn_config(app, host: str, port: int, log_level: str = "info"):
    """uvicorn's settings for `app`: a frame of `MAX_FRAME_SECONDS` of float32 at 48 kHz fits in one message; a
    larger message is refused by uvicorn (close code 1009)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, ws_max_size=int(MAX_FRAME_SECONDS * 48_000 * 4) + 4096,
                          log_level=log_level)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = parse_args(argv)
    generate_kwargs = {name: getattr(args, name) for name in ("num_beams", "max_new_tokens")
                       if getattr(args, name) is not None}
    server = LiveServer(load_translator(args.model, args.device, args.quantize),
                        {"src_lang": args.src_lang, "tgt_lang": args.tgt_lang, "chunk_seconds": args.chunk_seconds},
                        args.max_sessions, generate_kwargs)
    uvicorn.Server(uvicorn_config(server.app(), args.host, args.port)).run()


if __name__ == "__main__":
    main()
