"""Web demo: `python -m llmsrt.inference.app --model DIR` serves a Gradio page (install the `[app]` extra).

Two tabs. *Recording*: upload or record audio, pick the source language (or `auto` with a model that has a
language-ID head) and the target, and get the transcript, the translation, the per-segment subtitles and the `.srt`
files to download. *Live (microphone)*: captions in both languages while you speak, from the microphone's stream
(`llmsrt.inference.live.LiveTranslator`: the current hypothesis is shown after the committed captions, and replaced
as it changes; a committed caption never changes).
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

from ..languages import LANGUAGES
from ..pipeline_llmsrt import _join
from .live import LiveTranslator
from .subtitles import format_subtitles
from .translate import load_translator, output_paths

AUTO = "auto"


def language_choices(with_auto: bool) -> list[tuple[str, str]]:
    choices = [(f"{language.name} ({code})", code) for code, language in LANGUAGES.items()]
    return ([("Detect (auto)", AUTO)] if with_auto else []) + choices


def translate_recording(translator, audio_path: str | None, src_lang: str, tgt_lang: str, generate_kwargs: dict,
                        output_dir: Path) -> tuple[str, str, str, list[list], list[str]]:
    """The page's callback: `(transcript, translation, source language, segment rows, subtitle files)`.

    Raises:
        ValueError: no audio, or what the pipeline refuses (unknown language, `auto` without a head, bad audio).
    """
    if not audio_path:
        raise ValueError("Upload or record some audio first.")
    result = translator(audio_path, src_lang=src_lang, tgt_lang=tgt_lang, return_timestamps=True,
                        generate_kwargs=generate_kwargs)
    rows = [[chunk["timestamp"][0], chunk["timestamp"][1], chunk["transcription"], chunk["translation"]]
            for chunk in result["chunks"]]
    paths = output_paths(Path(audio_path), output_dir, result["src_lang"], tgt_lang, "srt")
    files = []
    for track in ("translation", "transcription"):
        paths[track].write_text(format_subtitles(result["chunks"], track, "srt"), encoding="utf-8")
        files.append(str(paths[track]))
    detected = result["src_lang"] or "no speech found"
    if src_lang == AUTO and result["src_lang"]:
        detected = f"{LANGUAGES[result['src_lang']].name} ({result['src_lang']}, detected)"
    return result["transcription"], result["translation"] or "", detected, rows, files


def to_float(samples: np.ndarray) -> np.ndarray:
    """A browser recording's samples (int16 from Gradio, or float) -> float32 in [-1, 1]."""
    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.integer):
        return samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)
    return samples.astype(np.float32)


class LiveCaptions:
    """The microphone tab's session: a `LiveTranslator` for one pair of languages, the committed (final) captions
    and the current hypothesis (the last partial), shown as one text per language."""

    def __init__(self, translator, src_lang: str, tgt_lang: str, generate_kwargs: dict | None = None,
                 chunk_seconds: float = 1.0):
        self.live = LiveTranslator(translator, src_lang, tgt_lang, chunk_seconds=chunk_seconds,
                                   generate_kwargs=generate_kwargs)
        self.languages = (src_lang, tgt_lang)
        self.finals, self.partial, self.errors = [], None, []

    def _take(self, events) -> None:
        for event in events:
            if event.type == "final":
                self.finals.append(event)
                self.partial = None
            elif event.type == "partial":
                self.partial = event
            else:
                self.errors.append(event.message)

    def push(self, sampling_rate: int, samples: np.ndarray) -> None:
        """A chunk of the microphone's stream (any rate; stereo is mixed down)."""
        self._take(self.live.push(to_float(samples), sampling_rate))

    def finish(self) -> None:
        """The recording stopped: commit what is open; the next recording starts a new stream."""
        self._take(self.live.finish())
        self.partial = None
        self.live.reset()

    def texts(self) -> tuple[str, str]:
        """`(transcript, translation)`: the committed captions, then the current hypothesis."""
        shown = self.finals + ([self.partial] if self.partial is not None else [])
        source = self.live.source if self.live.source != AUTO else None
        return (_join([event.transcription for event in shown], source),
                _join([event.translation for event in shown], self.languages[1]))

    def rows(self) -> list[list]:
        return [[event.start, event.end, event.transcription, event.translation] for event in self.finals]


def build_app(translator, generate_kwargs: dict | None = None, title: str = "LLM-SRT speech translation"):
    """The Gradio `Blocks` page for `translator` (a `speech-translation` pipeline)."""
    import gradio as gr

    can_detect = bool(getattr(translator.model.config, "language_id_languages", None))
    output_dir = Path(tempfile.mkdtemp(prefix="llmsrt-app-"))

    def run(audio_path, src_lang, tgt_lang):
        try:
            return translate_recording(translator, audio_path, src_lang, tgt_lang, generate_kwargs or {}, output_dir)
        except ValueError as error:
            raise gr.Error(str(error)) from error

    def live_chunk(chunk, captions, src_lang, tgt_lang):
        """One chunk of the microphone's stream -> the session and the captions so far."""
        if chunk is None:
            return captions, *(captions.texts() if captions else ("", "")), captions.rows() if captions else []
        if captions is None or captions.languages != (src_lang, tgt_lang):
            try:
                captions = LiveCaptions(translator, src_lang, tgt_lang, generate_kwargs)
            except ValueError as error:
                raise gr.Error(str(error)) from error
        captions.push(*chunk)
        for message in captions.errors:
            gr.Warning(message)
        captions.errors.clear()
        return captions, *captions.texts(), captions.rows()

    def live_stop(captions):
        if captions is None:
            return None, "", "", []
        captions.finish()
        return captions, *captions.texts(), captions.rows()

    with gr.Blocks(title=title) as page:
        gr.Markdown(f"# {title}\nUpload or record speech: transcript, translation and subtitles of every segment "
                    "(long recordings are cut at pauses). Or speak into the microphone for live captions.")
        with gr.Tab("Recording", elem_id="recording-tab"):
            with gr.Row():
                with gr.Column():
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio",
                                     elem_id="audio")
                    src = gr.Dropdown(language_choices(True), value=AUTO if can_detect else "eng",
                                      label="Source language", elem_id="src-lang")
                    tgt = gr.Dropdown(language_choices(False), value="deu", label="Target language",
                                      elem_id="tgt-lang")
                    button = gr.Button("Translate", variant="primary", elem_id="translate")
                with gr.Column():
                    transcript = gr.Textbox(label="Transcript", lines=4, elem_id="transcript")
                    translation = gr.Textbox(label="Translation", lines=4, elem_id="translation")
                    language = gr.Textbox(label="Source language", elem_id="language")
            segments = gr.Dataframe(headers=["start (s)", "end (s)", "transcript", "translation"], label="Segments",
                                    elem_id="segments", wrap=True)
            files = gr.File(label="Subtitles (.srt): translation, transcript", file_count="multiple", elem_id="srt")
        with gr.Tab("Live (microphone)", elem_id="live-tab"):
            captions = gr.State(None)
            with gr.Row():
                with gr.Column():
                    microphone = gr.Audio(sources=["microphone"], type="numpy", streaming=True,
                                          label="Microphone", elem_id="microphone")
                    live_src = gr.Dropdown(language_choices(can_detect), value=AUTO if can_detect else "eng",
                                           label="Source language", elem_id="live-src-lang")
                    live_tgt = gr.Dropdown(language_choices(False), value="deu", label="Target language",
                                           elem_id="live-tgt-lang")
                with gr.Column():
                    live_transcript = gr.Textbox(label="Live transcript", lines=4, elem_id="live-transcript")
                    live_translation = gr.Textbox(label="Live translation", lines=4, elem_id="live-translation")
            live_segments = gr.Dataframe(headers=["start (s)", "end (s)", "transcript", "translation"],
                                         label="Committed captions", elem_id="live-segments", wrap=True)
        button.click(run, inputs=[audio, src, tgt], outputs=[transcript, translation, language, segments, files])
        live_outputs = [captions, live_transcript, live_translation, live_segments]
        microphone.stream(live_chunk, inputs=[microphone, captions, live_src, live_tgt], outputs=live_outputs,
                          stream_every=0.5, time_limit=None, show_progress="hidden")
        microphone.stop_recording(live_stop, inputs=[captions], outputs=live_outputs, show_progress="hidden")
    return page


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmsrt.inference.app", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="A saved LLM-SRT folder (or Hub id).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to serve on (0.0.0.0: every interface).")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--device", default=None)
    parser.add_argument("--num_beams", type=int, default=None, help="Beam size (default: the model's, 5).")
    parser.add_argument("--max_new_tokens", type=int, default=None)
    args = parser.parse_args(argv)
    generate_kwargs = {name: getattr(args, name) for name in ("num_beams", "max_new_tokens")
                       if getattr(args, name) is not None}
    page = build_app(load_translator(args.model, args.device), generate_kwargs)
    page.launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
