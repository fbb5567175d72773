"""Processor of LLM-SRT: Whisper features for the audio, the LLM's tokenizer for the minimalist-tag prompts.

Prompt and answer layouts (tags are plain text, tokenised as ordinary BPE):

| task | prompt (after the audio placeholders) | answer |
|------|---------------------------------------|--------|
| asr  | `<|eng|>`                             | `transcript<eos>` |
| smt  | `gold transcript<|eng|><|deu|>`       | `translation<eos>` |
| srt  | `<|eng|><|deu|>`                      | `transcript<|eng|><|deu|>translation<eos>` |
"""

import re

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

from .audio_utils import prepare_audio
from .language_id import speech_frame_mask, speech_interval
from .languages import get_language

TASKS = ("asr", "smt", "srt")
AUDIO_TOKEN = "<|audio|>"
IGNORE_INDEX = -100
_TAG_PAIR = re.compile(r"<\|([a-z]{3})\|><\|([a-z]{3})\|>")
_TAG = re.compile(r"<\|[a-z]{3}\|>")
_TAG_CODE = re.compile(r"[a-z]{3}")


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


def language_tag(code: str, language_tags: dict[str, str] | None = None) -> str:
    """The tag written for a language: `<|code|>` (ISO 639-3), or the tag code `language_tags` gives it."""
    code = get_language(code).code
    return f"<|{(language_tags or {}).get(code, code)}|>"


def check_task(task: str) -> str:
    """Normalise a task name, or raise a `ValueError` listing the accepted ones."""
    if isinstance(task, str) and task.lower() in TASKS:
        return task.lower()
    raise ValueError(
        f"Unknown task {task!r}. Accepted: 'asr' (speech -> transcript), 'smt' (speech + gold transcript -> "
        "translation), 'srt' (speech -> transcript + translation)."
    )


def format_prompt(
    task: str,
    src_lang: str,
    tgt_lang: str | None = None,
    transcript: str | None = None,
    language_tags: dict[str, str] | None = None,
) -> str:
    """The instruction that follows the audio: language tags (see `language_tag`), and for `smt` the gold
    transcript before them."""
    task = check_task(task)
    src_tag = language_tag(src_lang, language_tags)
    if task == "asr":
        return src_tag
    tgt_tag = language_tag(tgt_lang, language_tags)
    if task == "srt":
        return src_tag + tgt_tag
    if transcript is None or not str(transcript).strip():
        raise ValueError("task='smt' needs the gold transcript of each clip: pass it as `text=`.")
    return str(transcript).strip() + src_tag + tgt_tag


def format_answer(
    task: str,
    src_lang: str,
    tgt_lang: str | None = None,
    transcription: str | None = None,
    translation: str | None = None,
    language_tags: dict[str, str] | None = None,
) -> str:
    """The text the model learns to produce (without the end-of-sequence token)."""
    task = check_task(task)
    needed = {"asr": ("transcription",), "smt": ("translation",), "srt": ("transcription", "translation")}[task]
    given = {"transcription": transcription, "translation": translation}
    for field in needed:
        if given[field] is None or not str(given[field]).strip():
            raise ValueError(f"task={task!r} needs a non-empty {field} as target, got {given[field]!r}.")
    if task == "asr":
        return transcription.strip()
    if task == "smt":
        return translation.strip()
    separator = language_tag(src_lang, language_tags) + language_tag(tgt_lang, language_tags)
    return transcription.strip() + separator + translation.strip()


def split_answer(
    text: str, src_lang: str | None = None, tgt_lang: str | None = None, language_tags: dict[str, str] | None = None
) -> tuple[str, str]:
    """Split an SRT answer into (transcription, translation) on its tag pair.

    The expected pair `<|src|><|tgt|>` is tried first, then any pair of tags, then a single tag (a weakly trained
    model may write one tag only; other tags after it are dropped from the translation); without any tag the whole
    text is the transcription and the translation is empty.
    """
    if src_lang and tgt_lang:
        separator = language_tag(src_lang, language_tags) + language_tag(tgt_lang, language_tags)
        if separator in text:
            transcription, translation = text.split(separator, 1)
            return transcription.strip(), translation.strip()
    match = _TAG_PAIR.search(text) or _TAG.search(text)
    if match is None:
        return text.strip(), ""
    translation = " ".join(_TAG.sub(" ", text[match.end() :]).split())
    return text[: match.start()].strip(), translation


def _per_clip(value, count: int, name: str) -> list:
    """Broadcast one value to every clip, or check that a list has one value per clip."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{name} has {len(value)} entries for {count} clip(s): give one value, or one per clip.")
        return list(value)
    return [value] * count


def _as_clip_list(audio) -> list:
    """Wrap a single clip in a list; leave a list of clips as it is."""
    if not isinstance(audio, (list, tuple)):
        return [audio]
    if len(audio) == 0:
        raise ValueError("audio is an empty list: pass at least one clip.")
    if isinstance(audio[0], (int, float, np.number)):
        return [audio]  # a list of samples is one clip
    return list(audio)


class LLMSRTProcessor(ProcessorMixin):
    r"""
    Builds LLM-SRT inputs from raw audio and language tags, and parses generated text back.

    Args:
        feature_extractor (`WhisperFeatureExtractor`): log-mel features at 16 kHz, padded to the encoder window.
        tokenizer: the LLM's tokenizer. The audio placeholder is added to it as a special token when missing.
        audio_token (`str`, defaults to `"<|audio|>"`): the placeholder, expanded `num_query_tokens` times.
        num_query_tokens (`int`, defaults to 80): audio embeddings per clip (the model's `num_query_tokens`).
        language_tags (`dict[str, str]`, *optional*): the tag code written for a language where it is not its ISO
            639-3 code, as the model was trained (`{"zho": "cmn"}` writes `<|cmn|>` for Mandarin); saved with the
            processor. Default: every language's own code.
    """

    def __init__(
        self, feature_extractor=None, tokenizer=None, audio_token=AUDIO_TOKEN, num_query_tokens=80, language_tags=None
    ):
        if audio_token not in tokenizer.get_vocab():
            tokenizer.add_tokens([audio_token], special_tokens=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.audio_token = audio_token
        self.audio_token_id = tokenizer.convert_tokens_to_ids(audio_token)
        self.num_query_tokens = num_query_tokens
        self.language_tags = check_language_tags(language_tags)
        super().__init__(feature_extractor, tokenizer)

    @classmethod
    def from_pretrained_parts(
        cls,
        whisper: str,
        llm: str,
        gguf_file: str | None = None,
        num_query_tokens: int = 80,
        language_tags: dict[str, str] | None = None,
    ) -> "LLMSRTProcessor":
        """Combine a Whisper checkpoint's feature extractor with a causal LM's tokenizer (Hub ids or folders)."""
        from transformers import AutoTokenizer, WhisperFeatureExtractor

        feature_extractor = WhisperFeatureExtractor.from_pretrained(whisper)
        tokenizer = AutoTokenizer.from_pretrained(llm, gguf_file=gguf_file)
        return cls(feature_extractor, tokenizer, num_query_tokens=num_query_tokens, language_tags=language_tags)

    @property
    def sampling_rate(self) -> int:
        return self.feature_extractor.sampling_rate

    @property
    def max_audio_seconds(self) -> float:
        """The encoder window: the longest clip the model reads."""
        return self.feature_extractor.n_samples / self.feature_extractor.sampling_rate

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "input_features", "input_features_mask"]

    def __call__(
        self,
        audio=None,
        sampling_rate: int | None = None,
        src_lang: str | list[str] = "eng",
        tgt_lang: str | list[str] | None = "deu",
        task: str | list[str] = "srt",
        text: str | list[str] | None = None,
        targets: str | dict | list | None = None,
        padding_side: str | None = None,
        return_tensors: str = "pt",
        **kwargs,
    ) -> BatchFeature:
        """
        Args:
            audio: one clip or a list of clips: file paths, `{"array", "sampling_rate"}` dicts, or arrays/tensors
                (mono or stereo; resampled to 16 kHz and mixed to mono).
            sampling_rate: sampling rate of array inputs (`None`: already 16 kHz).
            src_lang, tgt_lang: ISO 639-3 codes, one for all clips or one per clip.
            task: `"asr"`, `"smt"` or `"srt"`, for all clips or one per clip (to mix tasks in a batch).
            text: gold transcript(s), required for `smt`.
            targets: answers for training; a string (the answer as the model writes it) or a dict with
                `transcription` and/or `translation`. When given, the output holds `labels` and pads on the right.
            padding_side: overrides the default (`"left"` for generation, `"right"` with `targets`).

        Returns:
            `BatchFeature` with `input_ids` `(B, L)`, `attention_mask` `(B, L)`, `input_features`
            `(B, n_mels, T_mel)`, `input_features_mask` `(B, T_mel)`, and `labels` `(B, L)` when `targets` are given.
        """
        if audio is None:
            raise ValueError("audio is required: a path, an array with its sampling_rate, or a list of them.")
        clips = _as_clip_list(audio)
        count = len(clips)
        tasks = [check_task(name) for name in _per_clip(task, count, "task")]
        src_langs = [get_language(code).code for code in _per_clip(src_lang, count, "src_lang")]
        tgt_langs = [
            code if name == "asr" else get_language(code).code
            for code, name in zip(_per_clip(tgt_lang, count, "tgt_lang"), tasks)
        ]
        transcripts = _per_clip(text, count, "text")
        waveforms = [
            prepare_audio(clip, sampling_rate, self.sampling_rate, self.max_audio_seconds, name=f"audio clip {i}")
            for i, clip in enumerate(clips)
        ]
        features = self._log_mel(waveforms)
        prompts = [
            self.audio_token * self.num_query_tokens + format_prompt(name, src, tgt, transcript, self.language_tags)
            for name, src, tgt, transcript in zip(tasks, src_langs, tgt_langs, transcripts)
        ]
        prompt_ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        answer_ids = None
        if targets is not None:
            answers = [
                self._answer_text(name, target, src, tgt)
                for name, target, src, tgt in zip(tasks, _per_clip(targets, count, "targets"), src_langs, tgt_langs)
            ]
            eos = [self.tokenizer.eos_token_id]
            answer_ids = [ids + eos for ids in self.tokenizer(answers, add_special_tokens=False)["input_ids"]]
        side = padding_side or ("left" if answer_ids is None else "right")
        batch = self._pad(prompt_ids, answer_ids, side)
        batch["input_features"] = features["input_features"]
        batch["input_features_mask"] = features["attention_mask"]
        return BatchFeature(batch, tensor_type=return_tensors)

    def _log_mel(self, waveforms: list[np.ndarray]) -> BatchFeature:
        return self.feature_extractor(
            waveforms,
            sampling_rate=self.sampling_rate,
            padding="max_length",
            return_attention_mask=True,
            return_tensors="pt",
        )

    def language_id_inputs(self, waveforms: list[np.ndarray]) -> dict:
        """What `model.detect_language` reads for 16-kHz waveforms (each at most the encoder window long): the same
        log-mel features as `__call__` (so the encoder cache of a training run serves them), and the mask of the
        encoder frames inside each clip's speech, between its leading and trailing silence.

        Returns:
            `{"input_features": (B, n_mels, T_mel), "input_features_mask": (B, T_mel), "speech_mask": (B, T_mel // 2)}`.
        """
        features = self._log_mel(waveforms)
        samples_per_frame = 2 * self.feature_extractor.hop_length  # the encoder's second convolution has stride 2
        intervals = [speech_interval(np.asarray(waveform)) for waveform in waveforms]
        return {
            "input_features": features["input_features"],
            "input_features_mask": features["attention_mask"],
            "speech_mask": speech_frame_mask(intervals, features["input_features"].shape[-1] // 2, samples_per_frame),
        }

    def _answer_text(self, task: str, target, src_lang: str, tgt_lang: str) -> str:
        if isinstance(target, dict):
            return format_answer(
                task, src_lang, tgt_lang, target.get("transcription"), target.get("translation"), self.language_tags
            )
        if target is None or not str(target).strip():
            raise ValueError(f"Empty target for task={task!r}: every training example needs answer text.")
        return str(target).strip()

    def _pad(self, prompt_ids: list[list[int]], answer_ids: list[list[int]] | None, side: str) -> dict:
        """Concatenate prompt and answer ids, pad to the longest row, and mask the loss to the answer."""
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}.")
        rows, label_rows = [], []
        for i, prompt in enumerate(prompt_ids):
            placeholders = prompt.count(self.audio_token_id)
            if placeholders != self.num_query_tokens:
                raise ValueError(
                    f"The prompt of clip {i} holds {placeholders} audio placeholders instead of "
                    f"{self.num_query_tokens}: the text must not contain {self.audio_token!r} itself."
                )
            answer = answer_ids[i] if answer_ids is not None else []
            rows.append(prompt + answer)
            label_rows.append([IGNORE_INDEX] * len(prompt) + answer)
        length = max(len(row) for row in rows)
        pad_id = self.tokenizer.pad_token_id
        input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        for i, (row, label_row) in enumerate(zip(rows, label_rows)):
            span = slice(length - len(row), length) if side == "left" else slice(0, len(row))
            input_ids[i, span] = torch.tensor(row)
            attention_mask[i, span] = 1
            labels[i, span] = torch.tensor(label_row)
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        if answer_ids is not None:
            batch["labels"] = labels
        return batch

    def post_process_speech_translation(
        self,
        generated_ids: torch.Tensor | list[list[int]],
        task: str | list[str] = "srt",
        src_lang: str | list[str] | None = None,
        tgt_lang: str | list[str] | None = None,
        text: str | list[str] | None = None,
    ) -> list[dict]:
        """Turn generated answer ids `(B, T)` (without the prompt) into dicts.

        Returns one `{"transcription", "translation"}` dict per row: for `srt` the answer is split on its tag pair;
        `asr` gives no translation (`None`); `smt` returns the given gold transcript (`text`) as transcription.
        """
        decoded = self.tokenizer.batch_decode(generated_ids, skip_special_tokens=True)
        count = len(decoded)
        tasks = [check_task(name) for name in _per_clip(task, count, "task")]
        src_langs = _per_clip(src_lang, count, "src_lang")
        tgt_langs = _per_clip(tgt_lang, count, "tgt_lang")
        transcripts = _per_clip(text, count, "text")
        results = []
        for answer, name, src, tgt, transcript in zip(decoded, tasks, src_langs, tgt_langs, transcripts):
            if name == "srt":
                transcription, translation = split_answer(answer, src, tgt, self.language_tags)
            elif name == "asr":
                transcription, translation = answer.strip(), None
            else:
                transcription, translation = transcript, answer.strip()
            results.append({"transcription": transcription, "translation": translation})
        return results


__all__ = [
    "LLMSRTProcessor",
    "check_language_tags",
    "format_answer",
    "format_prompt",
    "language_tag",
    "split_answer",
    "TASKS",
    "AUDIO_TOKEN",
]
