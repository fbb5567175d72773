"""The prompts of vLLM requests for LLM-SRT, written by the folder's processor (`LLMSRTProcessor.prompt_builder`, with
the folder's `language_tags` and `prompt_layout`) with one audio placeholder per clip.

vLLM expands the placeholder into the model's `num_audio_embeddings` placeholders, as `LLMSRTProcessor` writes them, so
the token ids the LLM reads are the processor's: e.g. `[<|audio|> x 80][prompt tags]`. Nothing here imports vLLM.
"""

from functools import lru_cache

from ..languages import LANGUAGES, get_language
from ..processing_llmsrt import LLMSRTProcessor


@lru_cache(maxsize=8)
def folder_processor(folder: str) -> LLMSRTProcessor:
    """The processor saved in a model folder (loaded once per folder): what writes the folder's prompts."""
    return LLMSRTProcessor.from_pretrained(folder)


def request_prompt(
    processor: LLMSRTProcessor,
    task: str = "srt",
    src_lang: str = "eng",
    tgt_lang: str | None = "deu",
    transcript: str | None = None,
) -> str:
    """The processor's prompt with one audio placeholder: e.g. `"<|audio|><|eng|><|deu|>"` for SRT.

    Raises:
        ValueError: an unknown task or language code, or `smt` without its gold transcript.
    """
    return processor.prompt_builder.prompt(task, src_lang, tgt_lang, transcript, audio_placeholders=1)


def iso639_3(code: str) -> str:
    """An ISO 639-1 code (`"en"`, as the OpenAI audio endpoints take) or any code `llmsrt.get_language` accepts ->
    llmsrt's ISO 639-3 code. Raises `ValueError` naming the accepted codes."""
    by_whisper = {language.whisper: language.code for language in LANGUAGES.values() if language.whisper}
    key = str(code).strip().lower()
    if key in by_whisper:
        return by_whisper[key]
    return get_language(key).code


def speech_to_text_prompt_ids(
    processor: LLMSRTProcessor, task_type: str, language: str | None, to_language: str | None = None
) -> list[int]:
    """The prompt ids of a `/v1/audio/transcriptions` (`task_type="transcribe"`: task `asr` in `language`) or
    `/v1/audio/translations` request (`"translate"`: task `srt` from `language` to `to_language`, English when not
    given, as OpenAI's endpoint). Codes: ISO 639-1 as the endpoints take them, or llmsrt's own."""
    source, target = speech_to_text_languages(task_type, language, to_language)
    text = request_prompt(processor, "asr", source) if target is None else request_prompt(processor, "srt", source,
                                                                                          target)
    return processor.tokenizer(text, add_special_tokens=False)["input_ids"]


def speech_to_text_languages(task_type: str, language: str | None, to_language: str | None = None):
    """`(source, target)` ISO 639-3 codes of a `/v1/audio/transcriptions` (`"transcribe"`: target None) or
    `/v1/audio/translations` (`"translate"`: `to_language`, English when not given) request.

    Raises:
        ValueError: no `language`, an unknown code (naming the accepted ones) or an unknown task type.
    """
    if language is None:
        raise ValueError("LLM-SRT needs the spoken language: pass `language` (e.g. 'en') with the request.")
    if task_type == "transcribe":
        return iso639_3(language), None
    if task_type == "translate":
        return iso639_3(language), iso639_3(to_language or "en")
    raise ValueError(f"Unsupported task type {task_type!r}: 'transcribe' or 'translate'.")


__all__ = ["folder_processor", "iso639_3", "request_prompt", "speech_to_text_prompt_ids"]
