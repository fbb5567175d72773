"""The one place where LLM-SRT's prompts and answers are written: language tags, each task's instruction, where the
audio placeholders (and a BOS token, for LLMs that want one) stand around it, and the Jinja chat template that
writes the same prompt on vLLM's OpenAI-compatible server.

Prompt and answer layouts (tags are plain text, tokenised as ordinary BPE):

| task | instruction (after the audio placeholders) | answer |
|------|--------------------------------------------|--------|
| asr  | `<|eng|>`                                  | `transcript<eos>` |
| smt  | `gold transcript<|eng|><|deu|>`            | `translation<eos>` |
| srt  | `<|eng|><|deu|>`                           | `transcript<|eng|><|deu|>translation<eos>` |

A folder's processor owns a `PromptBuilder` (`LLMSRTProcessor.prompt_builder`) made of what the folder saved: its
`language_tags` (`{"zho": "cmn"}` writes `<|cmn|>` for Mandarin), `num_query_tokens`, and `prompt_layout`, the
order of the prompt's pieces: `["audio", "instruction"]` for LLM-SRT on Qwen2.5, `["audio", "bos", "instruction"]`
for an LLM whose tokenizer puts BOS before the text (Gemma-3 in MCAT: `[30 audio][<bos>][<|src|><|tgt|>]`).
"""

import json
import re
from dataclasses import dataclass

from .languages import MCAT_CODES, PAPER_LANGUAGES, check_languages, check_model_language, get_language

TASKS = ("asr", "smt", "srt")
AUDIO_TOKEN = "<|audio|>"

# The pieces of each task's instruction and answer: `src` / `tgt` (language tags), `transcript` (the gold transcript
# given with smt), `transcription` / `translation` (answer text). The processor and the chat template both read them.
INSTRUCTION_PARTS = {"asr": ("src",), "smt": ("transcript", "src", "tgt"), "srt": ("src", "tgt")}
ANSWER_PARTS = {
    "asr": ("transcription",),
    "smt": ("translation",),
    "srt": ("transcription", "src", "tgt", "translation"),
}

# The pieces a prompt layout orders: the audio placeholders, the tokenizer's BOS token, the task's instruction.
PROMPT_PARTS = ("audio", "bos", "instruction")
DEFAULT_PROMPT_LAYOUT = ("audio", "instruction")

_TAG_PAIR = re.compile(r"<\|([a-z]{3})\|><\|([a-z]{3})\|>")
_TAG = re.compile(r"<\|[a-z]{3}\|>")
_TAG_CODE = re.compile(r"[a-z]{3}")


def check_task(task: str) -> str:
    """Normalise a task name, or raise a `ValueError` listing the accepted ones."""
    if isinstance(task, str) and task.lower() in TASKS:
        return task.lower()
    raise ValueError(
        f"Unknown task {task!r}. Accepted: 'asr' (speech -> transcript), 'smt' (speech + gold transcript -> "
        "translation), 'srt' (speech -> transcript + translation)."
    )


def check_language_tags(language_tags: dict[str, str] | None) -> dict[str, str] | None:
    """Normalise `{language: tag code}` (e.g. `{"zho": "cmn"}`: Mandarin written `<|cmn|>`, as the authors' 2026
    data does), or raise a `ValueError` naming the bad entry. `None` or `{}`: every language's tag is its code."""
    if not language_tags:
        return None
    if not isinstance(language_tags, dict):
        raise ValueError(f"language_tags must be a dict of language code -> tag code, got {language_tags!r}.")
    normalised = {}
    for language, tag in language_tags.items():
        if not isinstance(tag, str) or not _TAG_CODE.fullmatch(tag):
            raise ValueError(
                f"language_tags[{language!r}] = {tag!r}: a tag code is three lowercase letters (as in <|cmn|>)."
            )
        normalised[get_language(language).code] = tag
    return normalised


def check_prompt_layout(prompt_layout) -> tuple[str, ...]:
    """Normalise a prompt layout (`None`: the default, `("audio", "instruction")`), or raise a `ValueError` naming
    what is wrong: each piece of `PROMPT_PARTS` at most once, `audio` and `instruction` exactly once."""
    if prompt_layout is None:
        return DEFAULT_PROMPT_LAYOUT
    layout = tuple(prompt_layout) if isinstance(prompt_layout, (list, tuple)) else None
    if (
        layout is None
        or any(part not in PROMPT_PARTS for part in layout)
        or len(set(layout)) != len(layout)
        or not {"audio", "instruction"} <= set(layout)
    ):
        raise ValueError(
            f"prompt_layout {prompt_layout!r}: give a list ordering {list(PROMPT_PARTS)}, each at most once, with "
            "'audio' and 'instruction', e.g. ['audio', 'instruction'] or ['audio', 'bos', 'instruction']."
        )
    return layout


def tokenizer_prompt_layout(tokenizer) -> tuple[str, ...]:
    """The prompt layout an LLM's tokenizer gives where the prompt is encoded with its special tokens after the
    audio, as the authors' code writes it (`[audio] + tokenizer.encode(prompt)`): `("audio", "bos", "instruction")`
    where the tokenizer starts every encoding with its BOS (Gemma: MCAT's `[30 audio][<bos>][<|src|><|tgt|>]`),
    `("audio", "instruction")` where it adds nothing (Qwen2.5, LLM-SRT v1.0).

    Raises:
        ValueError: a tokenizer that adds other special tokens (a trailing EOS, ...), which no layout writes.
    """
    plain = tokenizer.encode("a", add_special_tokens=False)
    full = tokenizer.encode("a")
    if full == plain:
        return DEFAULT_PROMPT_LAYOUT
    if tokenizer.bos_token_id is not None and full == [tokenizer.bos_token_id, *plain]:
        return ("audio", "bos", "instruction")
    raise ValueError(
        f"The LLM's tokenizer encodes 'a' as {full} with its special tokens and {plain} without: a prompt layout "
        f"places nothing or its BOS before the instruction; give prompt_layout (pieces {list(PROMPT_PARTS)})."
    )


@dataclass(frozen=True)
class PromptBuilder:
    """Writes the prompts, answers and chat template of one model.

    Args:
        language_tags: the tag code written for a language where it is not its ISO 639-3 code (`None`: none).
        audio_token: the audio placeholder.
        num_query_tokens: audio embeddings per clip: placeholders a prompt holds for one clip.
        prompt_layout: the order of `audio`, `bos` (optional) and `instruction` (`check_prompt_layout`).
        bos_token: the tokenizer's BOS token, written where the layout places `bos`.
        languages: the languages the model was trained with (registry codes, see `check_languages`); a tag for any
            other is refused with the list. `None`: LLM-SRT v1.0's 15 (`PAPER_LANGUAGES`), what a folder saved
            before the field existed was trained with.
    """

    language_tags: dict[str, str] | None = None
    audio_token: str = AUDIO_TOKEN
    num_query_tokens: int = 80
    prompt_layout: tuple[str, ...] = DEFAULT_PROMPT_LAYOUT
    bos_token: str | None = None
    languages: tuple[str, ...] | None = None

    def __post_init__(self):
        object.__setattr__(self, "languages", check_languages(self.languages))
        object.__setattr__(self, "language_tags", check_language_tags(self.language_tags))
        object.__setattr__(self, "prompt_layout", check_prompt_layout(self.prompt_layout))
        if "bos" in self.prompt_layout and not self.bos_token:
            raise ValueError(
                f"prompt_layout {list(self.prompt_layout)} places a BOS token, but the tokenizer has none "
                "(bos_token is None): use a layout without 'bos'."
            )

    @property
    def model_languages(self) -> tuple[str, ...]:
        """The languages the model was trained with: `languages`, or v1.0's 15 where the folder did not record them."""
        return self.languages if self.languages is not None else PAPER_LANGUAGES

    def language(self, language: str) -> str:
        """The registry code of `language` (any identifier `get_language` accepts, MCAT's codes included).

        Raises:
            ValueError: the language is unknown, or not one the model was trained with (the message lists those).
        """
        return check_model_language(language, self.model_languages)

    def tag(self, language: str) -> str:
        """The tag written for a language (`language` checked as `language()` checks it): `<|code|>` (ISO 639-3), or
        the tag code `language_tags` gives it."""
        code = self.language(language)
        return f"<|{(self.language_tags or {}).get(code, code)}|>"

    def instruction(
        self, task: str, src_lang: str, tgt_lang: str | None = None, transcript: str | None = None
    ) -> str:
        """The task's instruction (`INSTRUCTION_PARTS`): language tags, and for `smt` the gold transcript first."""
        task = check_task(task)
        if task == "smt" and (transcript is None or not str(transcript).strip()):
            raise ValueError("task='smt' needs the gold transcript of each clip: pass it as `text=`.")
        values = {"transcript": str(transcript).strip() if transcript is not None else None}
        return "".join(self._part(part, src_lang, tgt_lang, values) for part in INSTRUCTION_PARTS[task])

    def prompt(
        self,
        task: str,
        src_lang: str,
        tgt_lang: str | None = None,
        transcript: str | None = None,
        audio_placeholders: int | None = None,
    ) -> str:
        """The whole prompt in `prompt_layout` order, e.g. `"<|audio|>" * 80 + "<|eng|><|deu|>"` for srt.

        Args:
            audio_placeholders: placeholders written for the clip; `None`: `num_query_tokens` (what the model reads).
                vLLM takes one and expands it itself (`llmsrt.serving.prompts`).
        """
        instruction = self.instruction(task, src_lang, tgt_lang, transcript)
        count = self.num_query_tokens if audio_placeholders is None else audio_placeholders
        pieces = {"audio": self.audio_token * count, "bos": self.bos_token, "instruction": instruction}
        return "".join(pieces[part] for part in self.prompt_layout)

    def answer(
        self,
        task: str,
        src_lang: str,
        tgt_lang: str | None = None,
        transcription: str | None = None,
        translation: str | None = None,
    ) -> str:
        """The text the model learns to produce (`ANSWER_PARTS`, without the end-of-sequence token)."""
        task = check_task(task)
        values = {"transcription": transcription, "translation": translation}
        for name in ("transcription", "translation"):
            if name in ANSWER_PARTS[task] and (values[name] is None or not str(values[name]).strip()):
                raise ValueError(f"task={task!r} needs a non-empty {name} as target, got {values[name]!r}.")
            values[name] = str(values[name]).strip() if values[name] is not None else None
        return "".join(self._part(part, src_lang, tgt_lang, values) for part in ANSWER_PARTS[task])

    def split_answer(self, text: str, src_lang: str | None = None, tgt_lang: str | None = None) -> tuple[str, str]:
        """Split an SRT answer into (transcription, translation) on its tag pair.

        The expected pair `<|src|><|tgt|>` is tried first, then any pair of tags, then a single tag (a weakly trained
        model may write one tag only; other tags after it are dropped from the translation); without any tag the
        whole text is the transcription and the translation is empty.
        """
        if src_lang and tgt_lang:
            separator = self.tag(src_lang) + self.tag(tgt_lang)
            if separator in text:
                transcription, translation = text.split(separator, 1)
                return transcription.strip(), translation.strip()
        match = _TAG_PAIR.search(text) or _TAG.search(text)
        if match is None:
            return text.strip(), ""
        translation = " ".join(_TAG.sub(" ", text[match.end() :]).split())
        return text[: match.start()].strip(), translation

    def chat_template(self) -> str:
        """The Jinja chat template that writes `prompt(task, src_lang, tgt_lang, transcript, audio_placeholders=1)`
        for an OpenAI chat request (`vllm serve --chat-template FILE`), generated from this builder: its tags (with
        the folder's `language_tags`), `INSTRUCTION_PARTS` and `prompt_layout`.

        The last user message holds the audio (an `input_audio` part: vLLM writes the audio placeholder for it) and,
        optionally, text. The task and languages come from the request's `chat_template_kwargs`,
        `{"task": "srt" | "asr" | "smt", "src_lang": "eng", "tgt_lang": "deu"}` (ISO 639-3 codes; for smt the
        message's text is the gold transcript). Without `src_lang` the message's text is the instruction itself.
        """
        tags = {code: self.tag(code) for code in sorted(self.model_languages)}
        tags.update({alias: tags[code] for code, alias in MCAT_CODES.items() if code in tags})  # cmn for zho, ...
        jinja_parts = {"src": "{{ tags[src_lang] }}", "tgt": "{{ tags[tgt_lang] }}", "transcript": "{{ text }}"}
        by_task = "".join(
            f"{{%- {'if' if index == 0 else 'elif'} task == {json.dumps(task)} -%}}"
            + "".join(jinja_parts[part] for part in parts)
            for index, (task, parts) in enumerate(INSTRUCTION_PARTS.items())
        ) + "{%- endif -%}"
        layout = {"audio": "{{ audio }}", "bos": "{{ bos }}"}
        with_tags = "".join(layout.get(part, by_task) for part in self.prompt_layout)
        as_given = "".join(layout.get(part, "{{ text }}") for part in self.prompt_layout)
        return _CHAT_TEMPLATE.format(
            audio=json.dumps(self.audio_token),
            bos=json.dumps(self.bos_token or ""),
            tags=json.dumps(tags),
            tasks=json.dumps(list(TASKS)),
            with_tags=with_tags,
            as_given=as_given,
        )

    def _part(self, part: str, src_lang: str, tgt_lang: str | None, values: dict) -> str:
        if part == "src":
            return self.tag(src_lang)
        if part == "tgt":
            return self.tag(tgt_lang)
        return values[part]


# The request's checks and text, then the prompt: `{with_tags}` / `{as_given}` are generated by `chat_template`.
_CHAT_TEMPLATE = """{{%- set audio = {audio} -%}}
{{%- set bos = {bos} -%}}
{{%- set tags = {tags} -%}}
{{%- set tasks = {tasks} -%}}
{{%- set ns = namespace(content='') -%}}
{{%- for message in messages -%}}
{{%- if message['role'] == 'user' -%}}
{{%- if message['content'] is string -%}}{{%- set ns.content = message['content'] -%}}
{{%- else -%}}{{%- set ns.content = '' -%}}
{{%- for part in message['content'] -%}}
{{%- if part['type'] == 'text' -%}}{{%- set ns.content = ns.content ~ part['text'] -%}}
{{%- else -%}}{{%- set ns.content = ns.content ~ audio -%}}{{%- endif -%}}
{{%- endfor -%}}
{{%- endif -%}}
{{%- endif -%}}
{{%- endfor -%}}
{{%- set text = ns.content | replace(audio, '') | replace('\\n', ' ') | trim -%}}
{{%- if src_lang is defined and src_lang -%}}
{{%- set task = (task if task is defined and task else 'srt') | lower -%}}
{{%- if task not in tasks -%}}
{{{{ raise_exception('Unknown task ' ~ task ~ ': accepted are ' ~ tasks | join(', ') ~ '.') }}}}
{{%- endif -%}}
{{%- if src_lang not in tags -%}}
{{{{ raise_exception('Unknown src_lang ' ~ src_lang ~ ': this model was trained with '
                     ~ tags | list | join(', ') ~ ' (ISO 639-3 codes).') }}}}
{{%- endif -%}}
{{%- if task != 'asr' and (tgt_lang is not defined or tgt_lang not in tags) -%}}
{{{{ raise_exception('task ' ~ task ~ ' needs tgt_lang, one of the languages this model was trained with: '
                     ~ tags | list | join(', ') ~ ' (ISO 639-3 codes).') }}}}
{{%- endif -%}}
{{%- if task == 'smt' and not text -%}}
{{{{ raise_exception('task smt needs the gold transcript as the message text.') }}}}
{{%- endif -%}}
{with_tags}
{{%- else -%}}
{as_given}
{{%- endif -%}}"""


__all__ = [
    "AUDIO_TOKEN",
    "DEFAULT_PROMPT_LAYOUT",
    "PromptBuilder",
    "TASKS",
    "check_language_tags",
    "check_prompt_layout",
    "check_task",
    "tokenizer_prompt_layout",
]
