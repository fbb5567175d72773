"""Web demo: `python -m llmsrt.inference.app --model DIR` serves a Gradio page (install the `[app]` extra).

Upload or record audio, pick the source language (or `auto` with a model that has a language-ID head) and the
target, and get the transcript, the translation, the per-segment subtitles and the `.srt` files to download.
"""

import argparse
import tempfile
from pathlib import Path

from ..languages import LANGUAGES
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

    with gr.Blocks(title=title) as page:
        gr.Markdown(f"# {title}\nUpload or record speech: transcript, translation and subtitles of every segment "
                    "(long recordings are cut at pauses).")
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio", elem_id="audio")
                src = gr.Dropdown(language_choices(True), value=AUTO if can_detect else "eng",
                                  label="Source language", elem_id="src-lang")
                tgt = gr.Dropdown(language_choices(False), value="deu", label="Target language", elem_id="tgt-lang")
                button = gr.Button("Translate", variant="primary", elem_id="translate")
            with gr.Column():
                transcript = gr.Textbox(label="Transcript", lines=4, elem_id="transcript")
                translation = gr.Textbox(label="Translation", lines=4, elem_id="translation")
                language = gr.Textbox(label="Source language", elem_id="language")
        segments = gr.Dataframe(headers=["start (s)", "end (s)", "transcript", "translation"], label="Segments",
                                elem_id="segments", wrap=True)
        files = gr.File(label="Subtitles (.srt): translation, transcript", file_count="multiple", elem_id="srt")
        button.click(run, inputs=[audio, src, tgt], outputs=[transcript, translation, language, segments, files])
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
