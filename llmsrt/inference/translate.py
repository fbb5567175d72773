"""Subtitles for recordings of any length: `python -m llmsrt.inference.translate FILE... --model DIR --tgt_lang deu`.

Each input gives two files in `--output_dir` (default: next to the input): `<name>.transcript.<src>.<format>` and
`<name>.translation.<tgt>.<format>`, one cue per segment (the recording is cut at pauses, see
`llmsrt.segmentation`). A file that cannot be read is reported on stderr and skipped; the others are still written,
and the exit status is 1.

With `--live` (see `llmsrt.inference.live`), captions are made while the audio plays: each FILE is played at
real-time speed (`--speed 10` plays ten times faster), or, without FILE, the microphone is captioned until Ctrl-C
(`sounddevice`, `pip install llmsrt[live]`). The subtitle files grow with every final caption, and
`<name>.events.jsonl` gets every event as one JSON line (`type`, `start`, `end`, `transcription`, `translation`,
`emitted_at`, ...).
"""

import argparse
import sys
from pathlib import Path

from tqdm.auto import tqdm

from ..audio_utils import audio_duration, decoders
from .subtitles import FORMATS, write_subtitles


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m llmsrt.inference.translate",
        description="Transcribe and translate recordings into subtitle files (one per track and input). Decoders: "
        + "; ".join(decoders()),
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="Audio or video files (with --live: none means "
                        "the microphone).")
    parser.add_argument("--model", required=True, help="A saved LLM-SRT folder (or Hub id).")
    parser.add_argument("--tgt_lang", required=True, help="Target language, ISO 639-3 (e.g. deu).")
    parser.add_argument(
        "--src_lang",
        default=None,
        help="Source language (ISO 639-3) or 'auto' (needs a model with a language-ID head). Default: auto where "
        "the model can detect, else an error.",
    )
    parser.add_argument("--format", default="srt", choices=FORMATS, help="Subtitle format (default: srt).")
    parser.add_argument("--output_dir", default=None, help="Where the files go (default: each input's folder).")
    parser.add_argument("--batch_size", type=int, default=4, help="Segments translated together.")
    parser.add_argument("--num_beams", type=int, default=None,
                        help="Beam size (default: the model's, 5; with --live: 1).")
    parser.add_argument("--max_new_tokens", type=int, default=None,
                        help="Per segment (default: the model's; with --live: bounded by each decode's audio length).")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda when available).")
    parser.add_argument("--quantize", default=None, choices=["int8", "bf16"],
                        help="On a CPU: int8 (dynamically quantised LLM linear layers, about 2x faster) or bf16 "
                             "(where the CPU computes it natively). See docs/inference.md.")
    live = parser.add_argument_group("live captions (--live)")
    live.add_argument("--live", action="store_true", help="Caption while the audio plays: FILE at --speed, or the "
                      "microphone when no FILE is given.")
    live.add_argument("--speed", type=float, default=1.0, help="Playback speed of FILE (1: real time; 0: as fast as "
                      "the model goes).")
    live.add_argument("--chunk_seconds", type=float, default=1.0, help="New audio that triggers a new hypothesis.")
    live.add_argument("--max_latency_seconds", type=float, default=10.0, help="Longest stretch left uncommitted "
                      "when the speaker does not pause.")
    live.add_argument("--input_device", default=None, help="Microphone (a sounddevice name or index; default: the "
                      "system's).")
    args = parser.parse_args(argv)
    if not args.files and not args.live:
        parser.error("give at least one FILE (or --live for the microphone)")
    if args.speed < 0:
        parser.error(f"--speed {args.speed}: accepted: 0 (as fast as possible) or a positive factor")
    return args


def output_paths(audio_file: Path, output_dir: Path | None, src_lang: str | None, tgt_lang: str, file_format: str):
    """Where the transcript and translation tracks of `audio_file` go."""
    folder = output_dir or audio_file.parent
    stem = audio_file.stem
    return {
        "transcription": folder / f"{stem}.transcript.{src_lang or 'und'}.{file_format}",
        "translation": folder / f"{stem}.translation.{tgt_lang}.{file_format}",
    }


def load_translator(model: str, device: str | None = None, quantize: str | None = None):
    """The `speech-translation` pipeline of `model` on `device` (default: cuda when available); `quantize` (`"int8"`
    or `"bf16"`, CPU only) converts it with `quantize_for_cpu`. Raises `ValueError` for `quantize` off the CPU."""
    import torch
    from transformers import pipeline

    import llmsrt  # noqa: F401  (registers the speech-translation task)

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    translator = pipeline("speech-translation", model=model, device=device, trust_remote_code=True)
    if quantize:
        if translator.model.device.type != "cpu":
            raise ValueError(f"--quantize {quantize} is for a model on the CPU (this one is on "
                             f"{translator.model.device}).")
        from .quantization import quantize_for_cpu

        quantize_for_cpu(translator.model, quantize)
    return translator


def translate_files(translator, files: list[str], args: argparse.Namespace, stderr=sys.stderr) -> dict[str, dict]:
    """Translate every file, write its subtitle files, and return `{file: result}` (`{"error": message}` for a file
    that failed)."""
    generate_kwargs = generate_options(args)
    durations = {name: audio_duration(name) or 0.0 for name in files}
    output_dir = Path(args.output_dir) if args.output_dir else None
    results = {}
    progress = tqdm(total=round(sum(durations.values()), 1), unit="s", desc="audio", file=stderr)
    segments, file_done, previous = 0, 0.0, None

    def advance(chunks: list[dict]) -> None:
        nonlocal segments, file_done
        segments += len(chunks)
        reached = max(chunk["timestamp"][1] for chunk in chunks)
        progress.update(round(reached - file_done, 1))
        progress.set_postfix(segments=segments)
        file_done = reached

    for name in files:
        progress.set_description(Path(name).name)
        if file_done:
            progress.update(round(durations[previous] - file_done, 1))  # the previous file's trailing silence
        file_done, previous = 0.0, name
        try:
            result = translator(
                name,
                src_lang=args.src_lang,
                tgt_lang=args.tgt_lang,
                return_timestamps=True,
                batch_size=args.batch_size,
                progress_callback=advance,
                generate_kwargs=generate_kwargs,
            )
        except ValueError as error:
            results[name] = {"error": str(error)}
            progress.write(f"error: {name}: {error}", file=stderr)
            continue
        paths = output_paths(Path(name), output_dir, result["src_lang"], args.tgt_lang, args.format)
        languages = {"transcription": result["src_lang"], "translation": result["tgt_lang"]}
        for track, path in paths.items():
            write_subtitles(result["chunks"], path, track, args.format, languages[track])
        if not result["chunks"]:
            progress.write(f"{name}: no speech found (empty subtitle files written)", file=stderr)
        result["files"] = {track: str(path) for track, path in paths.items()}
        results[name] = result
    if file_done:
        progress.update(round(durations[previous] - file_done, 1))
    progress.close()
    return results


def generate_options(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in ("num_beams", "max_new_tokens") if getattr(args, name) is not None}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        translator = load_translator(args.model, args.device, args.quantize)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        translator._source_language(args.src_lang)  # a model that cannot detect needs --src_lang: say so once
    except ValueError as error:
        print(f"error: {error}".replace("src_lang='", "--src_lang '"), file=sys.stderr)
        return 2
    if args.live:
        from .live_cli import run_live

        return run_live(translator, args)
    results = translate_files(translator, args.files, args)
    for name, result in results.items():
        if "files" in result:
            print(f"{name}: {result['files']['transcription']} {result['files']['translation']}")
    failed = [name for name, result in results.items() if "error" in result]
    if failed:
        print(f"{len(failed)} of {len(results)} file(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
