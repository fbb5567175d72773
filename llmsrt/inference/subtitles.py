"""Subtitle files from the pipeline's timestamped chunks: SRT (`srt`), WebVTT (`webvtt-py`), JSON and plain text.

A recording gives two tracks: the transcript (`"transcription"`) and the translation (`"translation"`); each chunk
`{"timestamp": (start_s, end_s), "transcription", "translation"}` becomes one cue of each track (empty texts are
left out).
"""

import json
from datetime import timedelta
from pathlib import Path

FORMATS = ("srt", "vtt", "json", "txt")
TRACKS = ("transcription", "translation")


def check_format(name: str) -> str:
    if isinstance(name, str) and name.lower() in FORMATS:
        return name.lower()
    raise ValueError(f"Unknown subtitle format {name!r}. Accepted: {', '.join(FORMATS)}.")


def subtitle_cues(chunks: list[dict], track: str) -> list[tuple[float, float, str]]:
    """`(start_s, end_s, text)` of every chunk whose `track` text is not empty."""
    if track not in TRACKS:
        raise ValueError(f"Unknown track {track!r}. Accepted: {', '.join(TRACKS)}.")
    cues = []
    for chunk in chunks:
        text = (chunk.get(track) or "").strip()
        start, end = chunk["timestamp"]
        if text:
            cues.append((float(start), float(end), text))
    return cues


def _vtt_time(seconds: float) -> str:
    milliseconds = int(round(seconds * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def format_subtitles(chunks: list[dict], track: str, file_format: str, language: str | None = None) -> str:
    """The text of a subtitle file for one track of `chunks`, in `file_format` (srt, vtt, json or txt)."""
    file_format = check_format(file_format)
    cues = subtitle_cues(chunks, track)
    if file_format == "srt":
        import srt

        return srt.compose(
            [
                srt.Subtitle(index, timedelta(seconds=start), timedelta(seconds=end), text)
                for index, (start, end, text) in enumerate(cues, start=1)
            ]
        )
    if file_format == "vtt":
        import webvtt

        document = webvtt.WebVTT()
        for start, end, text in cues:
            document.captions.append(webvtt.Caption(start=_vtt_time(start), end=_vtt_time(end), text=text))
        return document.content
    if file_format == "json":
        rows = [{"start": start, "end": end, "text": text} for start, end, text in cues]
        return json.dumps({"track": track, "language": language, "cues": rows}, ensure_ascii=False, indent=2) + "\n"
    return "".join(text + "\n" for _, _, text in cues)


def write_subtitles(
    chunks: list[dict], path: str | Path, track: str, file_format: str | None = None, language: str | None = None
) -> Path:
    """Write one track of `chunks` to `path` (format from `file_format`, else from the file's suffix)."""
    path = Path(path)
    text = format_subtitles(chunks, track, file_format or path.suffix.lstrip("."), language)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


__all__ = ["FORMATS", "TRACKS", "check_format", "format_subtitles", "subtitle_cues", "write_subtitles"]
