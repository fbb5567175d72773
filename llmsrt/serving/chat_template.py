"""The chat template that turns an OpenAI chat request into LLM-SRT's prompt (`vllm serve --chat-template FILE`).

The last user message holds the audio (an `input_audio` part: vLLM writes `<|audio|>` for it) and, optionally, text.
The task and languages come from the request's `chat_template_kwargs`:

    {"task": "srt" | "asr" | "smt", "src_lang": "eng", "tgt_lang": "deu"}

giving `<|audio|><|eng|><|deu|>` (srt), `<|audio|><|eng|>` (asr) or `<|audio|>TRANSCRIPT<|eng|><|deu|>` (smt, the
message's text being the gold transcript). Without `src_lang` the message's text is taken as the tags themselves
(`"<|eng|><|deu|>"`). Codes are llmsrt's ISO 639-3 codes; an unknown one is refused with the list's name.

    python -m llmsrt.serving.chat_template > llmsrt-chat.jinja
"""

from ..languages import LANGUAGES
from ..processing_llmsrt import AUDIO_TOKEN, TASKS

TEMPLATE = """{%- set audio = 'AUDIO_TOKEN' -%}
{%- set codes = CODES -%}
{%- set tasks = TASKS -%}
{%- set ns = namespace(content='') -%}
{%- for message in messages -%}
{%- if message['role'] == 'user' -%}
{%- if message['content'] is string -%}{%- set ns.content = message['content'] -%}
{%- else -%}{%- set ns.content = '' -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'text' -%}{%- set ns.content = ns.content ~ part['text'] -%}
{%- else -%}{%- set ns.content = ns.content ~ audio -%}{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endif -%}
{%- endfor -%}
{%- set text = ns.content | replace(audio, '') | replace('\\n', ' ') | trim -%}
{%- if src_lang is defined and src_lang -%}
{%- set task = (task if task is defined and task else 'srt') | lower -%}
{%- if task not in tasks -%}{{ raise_exception('Unknown task ' ~ task ~ ': accepted are asr, smt, srt.') }}{%- endif -%}
{%- if src_lang not in codes -%}{{ raise_exception('Unknown src_lang ' ~ src_lang ~ ': use an ISO 639-3 code of llmsrt.languages.LANGUAGES, e.g. eng.') }}{%- endif -%}
{%- if task != 'asr' and (tgt_lang is not defined or tgt_lang not in codes) -%}{{ raise_exception('task ' ~ task ~ ' needs tgt_lang, an ISO 639-3 code of llmsrt.languages.LANGUAGES, e.g. deu.') }}{%- endif -%}
{%- if task == 'smt' and not text -%}{{ raise_exception('task smt needs the gold transcript as the message text.') }}{%- endif -%}
{{ audio }}
{%- if task == 'smt' -%}{{ text }}{%- endif -%}
{{ '<|' ~ src_lang ~ '|>' }}
{%- if task != 'asr' -%}{{ '<|' ~ tgt_lang ~ '|>' }}{%- endif -%}
{%- else -%}
{{ audio }}{{ text }}
{%- endif -%}"""


def chat_template() -> str:
    """The Jinja template, with llmsrt's language codes and tasks written in."""
    return (TEMPLATE.replace("CODES", repr(sorted(LANGUAGES)), 1).replace("TASKS", repr(list(TASKS)), 1)
            .replace("AUDIO_TOKEN", AUDIO_TOKEN))


if __name__ == "__main__":
    print(chat_template())
