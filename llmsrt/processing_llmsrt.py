"""Processor of LLM-SRT: Whisper features for the audio, the LLM's tokenizer for the minimalist-tag prompts.

Prompts and answers are written by the processor's `prompt_builder` (`llmsrt.prompt_builder.PromptBuilder`), made of
what the folder saved: `language_tags`, `num_query_tokens` and `prompt_layout`.
"""

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

from .audio_utils import prepare_audio
from .language_id import speech_frame_mask, speech_interval
from .languages import check_languages, get_language
from .prompt_builder import (
    AUDIO_TOKEN,
    TASKS,
    PromptBuilder,
    check_language_tags,
    check_prompt_layout,
    check_task,
    tokenizer_prompt_layout,
)

IGNORE_INDEX = -100


def one_per_clip(value, count: int, name: str) -> list:
    """Broadcast one value to every clip, or check that a list has one value per clip."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{name} has {len(value)} entries for {count} clip(s): give one value, or one per clip.")
        return list(value)
    return [value] * count


def pad_rows(rows: list, pad_value: int, side: str) -> torch.Tensor:
    """Rows of ids (lists or 1-D tensors, lengths `L_i`) -> `(B, max L_i)` long tensor, padded with `pad_value` on
    the `"left"` (generation) or the `"right"` (training)."""
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}.")
    length = max(len(row) for row in rows)
    padded = torch.full((len(rows), length), pad_value, dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(length - len(row), length) if side == "left" else slice(0, len(row))
        padded[i, span] = torch.as_tensor(row, dtype=torch.long)
    return padded


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
        prompt_layout (`list[str]`, *optional*): the order of the prompt's pieces, `"audio"`, `"bos"` (the
            tokenizer's BOS token) and `"instruction"`; saved with the processor. Default: `["audio", "instruction"]`
            (LLM-SRT on Qwen2.5); `["audio", "bos", "instruction"]` places BOS after the audio (Gemma-3 in MCAT).
        languages (`list[str]`, *optional*): the languages the model was trained with (ISO 639-3 codes); saved with
            the processor, and a prompt in any other language is refused with the list. Default: LLM-SRT v1.0's 15
            (`llmsrt.languages.PAPER_LANGUAGES`), what a folder saved without the field was trained with; MCAT
            (v2.0) folders list its 70 (`llmsrt.languages.MCAT_LANGUAGES`).
    """

    def __init__(
        self,
        feature_extractor=None,
        tokenizer=None,
        audio_token=AUDIO_TOKEN,
        num_query_tokens=80,
        language_tags=None,
        prompt_layout=None,
        languages=None,
    ):
        if audio_token not in tokenizer.get_vocab():
            tokenizer.add_tokens([audio_token], special_tokens=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.audio_token = audio_token
        self.audio_token_id = tokenizer.convert_tokens_to_ids(audio_token)
        self.num_query_tokens = num_query_tokens
        self.language_tags = check_language_tags(language_tags)
        self.prompt_layout = list(check_prompt_layout(prompt_layout))
        self.languages = list(check_languages(languages)) if languages is not None else None
        super().__init__(feature_extractor, tokenizer)
        _ = self.prompt_builder  # refuses a layout the tokenizer cannot write (a BOS without a BOS token)

    @classmethod
    def from_pretrained_parts(
        cls,
        whisper: str,
        llm: str,
        gguf_file: str | None = None,
        num_query_tokens: int = 80,
        language_tags: dict[str, str] | None = None,
        prompt_layout: list[str] | None = None,
    ) -> "LLMSRTProcessor":
        """Combine a Whisper checkpoint's feature extractor with a causal LM's tokenizer (Hub ids or folders).
        `prompt_layout` `None`: the tokenizer's own (`tokenizer_prompt_layout`: BOS after the audio where the
        tokenizer starts its encodings with one, as the authors' code lays out Gemma's prompts)."""
        from transformers import AutoTokenizer, WhisperFeatureExtractor

        feature_extractor = WhisperFeatureExtractor.from_pretrained(whisper)
        tokenizer = AutoTokenizer.from_pretrained(llm, gguf_file=gguf_file)
        if prompt_layout is None:
            prompt_layout = tokenizer_prompt_layout(tokenizer)
        return cls(
            feature_extractor,
            tokenizer,
            num_query_tokens=num_query_tokens,
            language_tags=language_tags,
            prompt_layout=prompt_layout,
        )

    @property
    def prompt_builder(self) -> PromptBuilder:
        """What writes this processor's prompts, answers and chat template: the one place tags are made."""
        return PromptBuilder(
            language_tags=self.language_tags,
            audio_token=self.audio_token,
            num_query_tokens=self.num_query_tokens,
            prompt_layout=self.prompt_layout,
            bos_token=self.tokenizer.bos_token,
            languages=self.languages,
        )

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
        tasks = [check_task(name) for name in one_per_clip(task, count, "task")]
        src_langs = [get_language(code).code for code in one_per_clip(src_lang, count, "src_lang")]
        tgt_langs = [
            code if name == "asr" else get_language(code).code
            for code, name in zip(one_per_clip(tgt_lang, count, "tgt_lang"), tasks)
        ]
        transcripts = one_per_clip(text, count, "text")
        waveforms = [
            prepare_audio(clip, sampling_rate, self.sampling_rate, self.max_audio_seconds, name=f"audio clip {i}")
            for i, clip in enumerate(clips)
        ]
        features = self._log_mel(waveforms)
        builder = self.prompt_builder
        prompts = [
            builder.prompt(name, src, tgt, transcript)
            for name, src, tgt, transcript in zip(tasks, src_langs, tgt_langs, transcripts)
        ]
        prompt_ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        answer_ids = None
        if targets is not None:
            answers = [
                self._answer_text(name, target, src, tgt)
                for name, target, src, tgt in zip(tasks, one_per_clip(targets, count, "targets"), src_langs, tgt_langs)
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
            return self.prompt_builder.answer(
                task, src_lang, tgt_lang, target.get("transcription"), target.get("translation")
            )
        if target is None or not str(target).strip():
            raise ValueError(f"Empty target for task={task!r}: every training example needs answer text.")
        return str(target).strip()

    def _pad(self, prompt_ids: list[list[int]], answer_ids: list[list[int]] | None, side: str) -> dict:
        """Concatenate prompt and answer ids, pad to the longest row, and mask the loss to the answer."""
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
        batch = {
            "input_ids": pad_rows(rows, self.tokenizer.pad_token_id, side),
            "attention_mask": pad_rows([[1] * len(row) for row in rows], 0, side),
        }
        if answer_ids is not None:
            batch["labels"] = pad_rows(label_rows, IGNORE_INDEX, side)
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
        tasks = [check_task(name) for name in one_per_clip(task, count, "task")]
        src_langs = one_per_clip(src_lang, count, "src_lang")
        tgt_langs = one_per_clip(tgt_lang, count, "tgt_lang")
        transcripts = one_per_clip(text, count, "text")
        builder = self.prompt_builder
        results = []
        for answer, name, src, tgt, transcript in zip(decoded, tasks, src_langs, tgt_langs, transcripts):
            if name == "srt":
                transcription, translation = builder.split_answer(answer, src, tgt)
            elif name == "asr":
                transcription, translation = answer.strip(), None
            else:
                transcription, translation = transcript, answer.strip()
            results.append({"transcription": transcription, "translation": translation})
        return results


__all__ = ["LLMSRTProcessor", "IGNORE_INDEX", "TASKS", "AUDIO_TOKEN", "check_task", "one_per_clip", "pad_rows"]
