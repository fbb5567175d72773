"""The live-captions WebSocket (llmsrt.serving.websocket) served by uvicorn on a loopback port and driven by a real
client (the `websockets` package): session options, PCM16 frames in, partial/final events out, errors that leave the
session usable, sessions freed on disconnect and refused beyond the limit. A tiny model taught one answer."""

import contextlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from helpers import SAMPLING_RATE, free_port
from speech_helpers import ANSWER, GREEDY, recording_with_pauses, spoken, tiny_model_that_answers

NEEDS_EXTRA = "the WebSocket server needs the [websocket] extra: pip install -e '.[websocket]'"
uvicorn = pytest.importorskip("uvicorn", reason=NEEDS_EXTRA)
pytest.importorskip("starlette", reason=NEEDS_EXTRA)
client = pytest.importorskip("websockets.sync.client", reason="the test's client is the `websockets` package")
exceptions = pytest.importorskip("websockets.exceptions")
httpx = pytest.importorskip("httpx")

from transformers import pipeline  # noqa: E402

from llmsrt.serving.websocket import PATH, TRY_AGAIN_LATER, LiveServer, uvicorn_config  # noqa: E402

pytestmark = pytest.mark.slow
FRAME_SECONDS = 0.1
TIMEOUT = 120



@pytest.fixture(scope="module")
def translator(one_thread):
    model, processor = tiny_model_that_answers()
    return pipeline("speech-translation", model=model, processor=processor)


@pytest.fixture(scope="module")
def served(translator):
    """`(ws_url, http_url)` of a running server with at most 3 sessions."""
    port = free_port()
    live = LiveServer(translator, max_sessions=3, generate_kwargs=GREEDY)
    server = uvicorn.Server(uvicorn_config(live.app(), "127.0.0.1", port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        assert thread.is_alive() and time.time() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"ws://127.0.0.1:{port}{PATH}", f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def talk():
    """Two spoken sentences with pauses, 16 kHz, and the offline pipeline's segments of it."""
    waveform, spans = recording_with_pauses([spoken("Good morning, how are you today?"),
                                             spoken("The train leaves at nine o'clock.")], [0.6, 1.2], tail=1.2)
    return waveform, spans


def pcm16_frames(waveform: np.ndarray, seconds: float = FRAME_SECONDS) -> list[bytes]:
    step = int(seconds * SAMPLING_RATE)
    pcm = (np.clip(waveform, -1, 1) * 32767).astype("<i2")
    return [pcm[begin:begin + step].tobytes() for begin in range(0, pcm.size, step)]


def receive_until(connection, kind: str) -> list[dict]:
    """Every event up to and including the first of type `kind`."""
    received = []
    while not received or received[-1]["type"] != kind:
        received.append(json.loads(connection.recv(timeout=TIMEOUT)))
    return received


def configure(connection, **options) -> dict:
    connection.send(json.dumps({"type": "session.update", "session": options}))
    return json.loads(connection.recv(timeout=TIMEOUT))


def stream(connection, waveform) -> list[dict]:
    for frame in pcm16_frames(waveform):
        connection.send(frame)
    connection.send(json.dumps({"type": "input_audio_buffer.commit"}))
    return receive_until(connection, "input_audio_buffer.committed")[:-1]


def sessions(http_url: str) -> int:
    return httpx.get(http_url + "/health", timeout=10).json()["sessions"]


def test_a_session_gets_partials_then_finals_that_match_the_offline_pipeline(served, translator, talk):
    ws_url, _ = served
    waveform, spans = talk
    with client.connect(ws_url, open_timeout=30) as connection:
        created = json.loads(connection.recv(timeout=TIMEOUT))
        assert created["type"] == "session.created" and created["session"]["src_lang"] is None
        updated = configure(connection, src_lang="eng", tgt_lang="de_de", chunk_seconds=0.5)  # a FLEURS name
        assert updated["type"] == "session.updated" and updated["session"]["tgt_lang"] == "deu"
        events = stream(connection, waveform)
    kinds = [event["type"] for event in events]
    assert set(kinds) <= {"partial", "final"} and "partial" in kinds, kinds
    assert kinds.index("partial") < kinds.index("final")
    finals = [event for event in events if event["type"] == "final"]
    offline = translator(waveform, src_lang="eng", tgt_lang="deu", return_timestamps=True,
                         generate_kwargs=GREEDY)["chunks"]
    assert [(f["start"], f["end"], f["transcription"], f["translation"]) for f in finals] == [
        (round(c["timestamp"][0], 3), round(c["timestamp"][1], 3), c["transcription"], c["translation"])
        for c in offline]
    assert len(finals) == len(spans) and all(f["translation"] == ANSWER["translation"] for f in finals)
    emitted = [event["emitted_at"] for event in events]
    assert emitted == sorted(emitted) and all(f["end"] <= f["emitted_at"] for f in finals)


def test_bad_messages_get_error_events_and_the_session_goes_on(served, talk):
    ws_url, _ = served
    waveform, _ = talk
    with client.connect(ws_url, open_timeout=30) as connection:
        receive_until(connection, "session.created")

        def error_for(message) -> dict:
            connection.send(message)
            event = json.loads(connection.recv(timeout=TIMEOUT))
            assert event["type"] == "error", event
            return event["error"]

        assert error_for(pcm16_frames(waveform)[5])["code"] == "session_not_configured"
        assert error_for("{not json")["code"] == "invalid_json"
        assert error_for(json.dumps({"type": "response.create"}))["code"] == "unknown_event"
        error = error_for(json.dumps({"type": "session.update", "session": {"src_lang": "eng", "tgt_lang": "xx"}}))
        assert error["code"] == "unknown_language" and "Unknown language code 'xx'" in error["message"]
        assert error_for(json.dumps({"type": "session.update", "session": {"speed": 2}}))["code"] == "unknown_option"
        assert error_for(json.dumps({"type": "session.update", "session": {"chunk_seconds": "fast"}}))["code"] == \
            "invalid_option"
        assert configure(connection, src_lang="eng", tgt_lang="deu")["session"]["tgt_lang"] == "deu"
        assert error_for(b"")["code"] == "empty_audio"
        assert error_for(b"\x00\x01\x02")["code"] == "invalid_audio"  # not a whole number of PCM16 samples
        too_long = np.zeros(31 * SAMPLING_RATE, dtype="<i2").tobytes()
        assert error_for(too_long)["code"] == "audio_too_long"
        assert configure(connection, audio_format="float32")["session"]["audio_format"] == "float32"
        nan = np.full(1600, np.nan, dtype="<f4").tobytes()
        error = error_for(nan)
        assert error["code"] == "invalid_audio" and "NaN" in error["message"]
        # The session goes on: the same talk, now as float32 frames, is captioned.
        for begin in range(0, waveform.size, 1600):
            connection.send(waveform[begin:begin + 1600].astype("<f4").tobytes())
        connection.send(json.dumps({"type": "input_audio_buffer.commit"}))
        events = receive_until(connection, "input_audio_buffer.committed")
    finals = [event for event in events if event["type"] == "final"]
    assert [event["type"] for event in events if event["type"] == "error"] == []
    assert len(finals) == 2 and finals[0]["transcription"] == ANSWER["transcription"]


def test_silence_gives_no_events_and_a_commit_starts_a_new_stream(served, talk):
    ws_url, _ = served
    waveform, _ = talk
    with client.connect(ws_url, open_timeout=30) as connection:
        receive_until(connection, "session.created")
        configure(connection, src_lang="eng", tgt_lang="deu", chunk_seconds=0.5)
        assert stream(connection, np.zeros(3 * SAMPLING_RATE, dtype=np.float32)) == []
        finals = [event for event in stream(connection, waveform) if event["type"] == "final"]
    assert finals and finals[0]["start"] < 1.0  # times start again at 0 after the commit


def wait_for_sessions(http_url: str, count: int) -> None:
    deadline = time.time() + TIMEOUT
    while sessions(http_url) != count:
        assert time.time() < deadline, f"{sessions(http_url)} sessions open, not {count}"
        time.sleep(0.2)


def test_a_client_that_disconnects_frees_its_session_and_the_limit_holds(served, talk):
    ws_url, http_url = served
    waveform, _ = talk
    assert sessions(http_url) == 0
    with contextlib.ExitStack() as stack:
        first, second, third = (stack.enter_context(client.connect(ws_url, open_timeout=30)) for _ in range(3))
        for connection in (first, second, third):
            receive_until(connection, "session.created")
        assert sessions(http_url) == 3
        with client.connect(ws_url, open_timeout=30) as refused:
            event = json.loads(refused.recv(timeout=TIMEOUT))
            assert event["type"] == "error" and event["error"]["code"] == "server_busy"
            with pytest.raises(exceptions.ConnectionClosed) as closed:
                refused.recv(timeout=TIMEOUT)
            assert closed.value.rcvd.code == TRY_AGAIN_LATER
        configure(first, src_lang="eng", tgt_lang="deu")
        for frame in pcm16_frames(waveform)[:20]:  # mid-sentence: the client goes away with audio buffered
            first.send(frame)
        first.socket.close()  # no closing handshake: the connection just drops
        second.close()
        wait_for_sessions(http_url, 1)
        assert configure(third, src_lang="fra", tgt_lang="eng")["type"] == "session.updated"  # still served
    wait_for_sessions(http_url, 0)


def soak_client(ws_url: str, talk_waveform: np.ndarray, seed: int) -> list[dict]:
    """One client's bounded script, two rounds: malformed messages (each must get an error event), noise and silence
    (no captions), then the talk (its two finals). Returns the finals."""
    rng = np.random.default_rng(seed)
    finals = []
    with client.connect(ws_url, open_timeout=60) as connection:
        receive_until(connection, "session.created")
        for _ in range(2):
            bad = [(json.dumps({"type": "session.update", "session": {"src_lang": "eng", "tgt_lang": "tlh"}}),
                    "unknown_language"),
                   ("{\"type\": ", "invalid_json"), (b"", "empty_audio"), (rng.bytes(1001), "invalid_audio"),
                   (np.zeros(31 * SAMPLING_RATE, dtype="<i2").tobytes(), "audio_too_long")]
            assert configure(connection, src_lang="eng", tgt_lang="deu", audio_format="pcm16",
                             chunk_seconds=0.5)["type"] == "session.updated"
            for message, code in bad:
                connection.send(message)
                event = json.loads(connection.recv(timeout=TIMEOUT))
                assert event["type"] == "error" and event["error"]["code"] == code, (code, event)
            assert configure(connection, audio_format="float32")["type"] == "session.updated"
            connection.send(np.array([0.1, np.nan, 0.2], dtype="<f4").tobytes())
            event = json.loads(connection.recv(timeout=TIMEOUT))
            assert event["type"] == "error" and "NaN" in event["error"]["message"], event
            assert configure(connection, audio_format="pcm16")["type"] == "session.updated"
            noise = (rng.standard_normal(2 * SAMPLING_RATE) * 0.3).astype(np.float32)
            assert stream(connection, np.concatenate([noise, np.zeros(SAMPLING_RATE, dtype=np.float32)])) == []
            events = stream(connection, talk_waveform)
            assert all(event["type"] in ("partial", "final") for event in events), events
            finals += [event for event in events if event["type"] == "final"]
    return finals


def test_soak_concurrent_clients_with_good_and_malformed_input(served, talk):
    """3 clients at once (the server's limit), each two rounds of malformed messages, noise, silence and a talk of
    two sentences: every bad message gets its error event, noise and silence no captions, every talk its two
    finals; afterwards no session is left and a new client is served."""
    ws_url, http_url = served
    waveform, spans = talk
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda seed: soak_client(ws_url, waveform, seed), range(3)))
    for finals in results:
        assert len(finals) == 2 * len(spans)
        assert all(final["translation"] == ANSWER["translation"] for final in finals)
    wait_for_sessions(http_url, 0)
    with client.connect(ws_url, open_timeout=30) as connection:
        receive_until(connection, "session.created")
        configure(connection, src_lang="eng", tgt_lang="deu")
        assert [event["type"] for event in stream(connection, waveform)].count("final") == len(spans)
    assert httpx.get(http_url + "/health", timeout=10).json() == {"status": "ok", "sessions": 0}


def test_the_command_quantizes_the_shared_pipeline_when_asked(saved_tiny, monkeypatch):
    """`python -m llmsrt.serving.websocket --quantize int8`: every session's translator runs the int8 model."""
    from llmsrt.serving import websocket

    servers, started = [], []
    monkeypatch.setattr(websocket, "LiveServer", lambda *args: servers.append(LiveServer(*args)) or servers[-1])
    monkeypatch.setattr(uvicorn.Server, "run", lambda server: started.append(server))
    websocket.main(["--model", str(saved_tiny), "--device", "cpu", "--quantize", "int8", "--port", str(free_port())])
    assert len(servers) == len(started) == 1
    layer = dict(servers[0].pipeline.model.language_model.named_modules())["model.layers.0.self_attn.q_proj"]
    assert type(layer) is torch.ao.nn.quantized.dynamic.Linear
