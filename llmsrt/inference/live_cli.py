"""`--live` for `python -m llmsrt.inference.translate` / `llmsrt-translate`: play files at real-time speed, or
caption the microphone, writing subtitle files that grow with each final caption and an events log (JSON lines)."""

import argparse
import json
import os
import queue
import sys
import time
from pathlib import Path

import numpy as np

from ..audio_utils import stream_audio
from .live import LiveEvent, LiveTranslator
from .subtitles import write_subtitles
from .translate import generate_options, output_paths


class CaptionFiles:
    """The two subtitle tracks and the events log of one live session, rewritten as finals arrive."""

    def __init__(self, name: str, output_dir: Path, src_lang: str | None, tgt_lang: str, file_format: str):
        self.paths = output_paths(Path(name), output_dir, src_lang, tgt_lang, file_format)
        self.languages = {"transcription": src_lang, "translation": tgt_lang}
        self.format = file_format
        self.events_path = output_dir / f"{Path(name).stem}.events.jsonl"
        output_dir.mkdir(parents=True, exist_ok=True)
        self.events_file = open(self.events_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.chunks: list[dict] = []
        self._write_tracks()

    def _write_tracks(self) -> None:
        for track, path in self.paths.items():
            temporary = path.with_name(path.name + ".tmp")
            write_subtitles(self.chunks, temporary, track, self.format, self.languages[track])
            os.replace(temporary, path)  # a reader never sees a half-written file

    def add(self, event: LiveEvent) -> None:
        self.events_file.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
        self.events_file.flush()
        if event.type == "final":
            self.chunks.append({"timestamp": (event.start, event.end), "transcription": event.transcription,
                                "translation": event.translation})
            self._write_tracks()

    def close(self) -> None:
        self.events_file.close()


def show(event: LiveEvent, stream=sys.stdout) -> None:
    if event.type == "error":
        print(f"error at {event.start:.1f} s: {event.message}", file=sys.stderr)
    elif event.type == "final":
        print(f"[{event.start:7.2f} - {event.end:7.2f}] {event.transcription}\n{'':19}{event.translation}",
              file=stream, flush=True)


def play_file(name: str, chunk_seconds: float, speed: float, sampling_rate: int = 16000):
    """`name`'s audio as it would be heard at `speed` (0: at once): each time the consumer asks, all the audio that
    has been played by then (at least one chunk of `chunk_seconds`), so that a slow consumer gets larger chunks
    instead of falling behind."""
    started, played, pending = time.monotonic(), 0.0, []
    for block in stream_audio(name, sampling_rate, block_seconds=chunk_seconds, name=name):
        if not block.size:
            continue
        played += block.size / sampling_rate
        if speed > 0:
            time.sleep(max(0.0, started + played / speed - time.monotonic()))
        pending.append(block)
        if speed > 0 and time.monotonic() >= started + (played + chunk_seconds) / speed:
            continue  # the next chunk has been played too: give them together
        yield np.concatenate(pending)
        pending = []
    if pending:
        yield np.concatenate(pending)


def microphone_chunks(chunk_seconds: float, device=None, sampling_rate: int = 16000):
    """Chunks from the microphone until Ctrl-C (`sounddevice`: PortAudio). Raises `RuntimeError` when there is no
    input device or no sounddevice."""
    try:
        import sounddevice
    except (ImportError, OSError) as error:  # OSError: the PortAudio library is missing
        raise RuntimeError(f"The microphone needs the sounddevice package and PortAudio ({error}): "
                           "`pip install llmsrt[live]` (and `apt-get install libportaudio2` on Debian).") from error
    try:
        sounddevice.check_input_settings(device=device, channels=1, samplerate=sampling_rate, dtype="float32")
    except Exception as error:  # noqa: BLE001 - PortAudio reports a missing or unusable device in several ways
        raise RuntimeError(f"No usable microphone ({error}). Devices: {sounddevice.query_devices()}") from error
    received: queue.Queue = queue.Queue()
    with sounddevice.InputStream(device=device, channels=1, samplerate=sampling_rate, dtype="float32",
                                 blocksize=int(chunk_seconds * sampling_rate),
                                 callback=lambda data, frames, when, status: received.put(data[:, 0].copy())):
        while True:
            chunks = [received.get()]
            while not received.empty():  # what arrived while the last chunk was translated: all at once
                chunks.append(received.get_nowait())
            yield np.concatenate(chunks)


def run_live(pipeline, args: argparse.Namespace) -> int:
    """Caption each file (or the microphone); returns the exit status (1 when a file failed)."""
    translator = LiveTranslator(pipeline, args.src_lang, args.tgt_lang, chunk_seconds=args.chunk_seconds,
                                max_latency_seconds=args.max_latency_seconds,
                                generate_kwargs=generate_options(args))
    sources = args.files or ["microphone"]
    failed = 0
    for name in sources:
        translator.reset()
        source_language = None if translator.src_lang == "auto" else translator.src_lang
        output_dir = Path(args.output_dir) if args.output_dir else Path(name).parent
        files = CaptionFiles(name, output_dir, source_language, args.tgt_lang, args.format)
        try:
            chunks = (microphone_chunks(args.chunk_seconds, args.input_device) if not args.files
                      else play_file(name, args.chunk_seconds, args.speed))
            for event in translator.stream(chunks):
                files.add(event)
                show(event)
        except KeyboardInterrupt:
            for event in translator.finish():
                files.add(event)
                show(event)
        except (ValueError, RuntimeError) as error:
            print(f"error: {name}: {error}", file=sys.stderr)
            failed += 1
            continue
        finally:
            files.close()
        print(f"{name}: {files.paths['transcription']} {files.paths['translation']} {files.events_path}")
    return 1 if failed else 0


__all__ = ["CaptionFiles", "microphone_chunks", "play_file", "run_live"]
