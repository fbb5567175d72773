"""The text prompt of a vLLM request for LLM-SRT: one audio placeholder, then the task's language tags.

vLLM expands the placeholder into the model's `num_query_tokens` (80) placeholders, as `LLMSRTProcessor` does, so the
token ids the LLM reads are the processor's: `[<|audio|> x 80][prompt tags]`.
"""

from ..processing_llmsrt import AUDIO_TOKEN, format_prompt


def request_prompt(
    task: str = "srt", src_lang: str = "eng", tgt_lang: str | None = "deu", transcript: str | None = None
) -> str:
    """`"<|audio|>" + format_prompt(task, src_lang, tgt_lang, transcript)`: e.g. `"<|audio|><|eng|><|deu|>"` for SRT.

    Raises:
        ValueError: an unknown task or language code, or `smt` without its gold transcript.
    """
    return AUDIO_TOKEN + format_prompt(task, src_lang, tgt_lang, transcript)


__all__ = ["request_prompt"]
