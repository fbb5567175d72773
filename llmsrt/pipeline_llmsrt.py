"""The `speech-translation` pipeline: audio in, `{"transcription", "translation", "src_lang", "tgt_lang"}` out."""

import collections.abc
import contextlib
import functools
import itertools
import types

import torch
from torch.utils.data import DataLoader
from transformers import Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from .audio_utils import audio_duration, needs_ffmpeg, prepare_audio, stream_audio
from .encoder_cache import MemoryEncoderCache
from .languages import UNSPACED_LANGUAGES
from .processing_llmsrt import one_per_clip, pad_rows
from .segmentation import LongFormOptions, split_on_pauses
from .vad import has_speech


def _join(texts: list[str], language: str | None) -> str:
    separator = "" if language in UNSPACED_LANGUAGES else " "
    return separator.join(text.strip() for text in texts if text and text.strip())


PER_CLIP = ("src_lang", "tgt_lang", "text")  # options given once, or once per clip
METADATA = ("task", *PER_CLIP)  # what postprocessing needs besides the generated ids


def _collate_clips(items: list[dict], pad_token_id: int) -> dict:
    """Batch preprocessed clips: prompts `(1, L_i)` padded on the left to the longest (as the processor pads for
    generation), features `(1, n_mels, T_mel)` stacked, metadata as lists."""
    batch = {
        "input_ids": pad_rows([item["input_ids"][0] for item in items], pad_token_id, "left"),
        "attention_mask": pad_rows([item["attention_mask"][0] for item in items], 0, "left"),
    }
    for key in ("input_features", "input_features_mask"):
        batch[key] = torch.cat([item[key] for item in items])
    for key in METADATA:
        batch[key] = [value for item in items for value in item[key]]
    return batch


def _is_stream(inputs) -> bool:
    """Generators and datasets (`datasets.Dataset`, `IterableDataset`, torch datasets) are read clip by clip."""
    if isinstance(inputs, (types.GeneratorType, torch.utils.data.Dataset)):
        return True
    return type(inputs).__module__.split(".")[0] == "datasets" and isinstance(inputs, collections.abc.Iterable)


def _clip_of(row):
    """A dataset row's clip: its `audio` column (a `datasets.Audio` value), or the row itself."""
    if isinstance(row, collections.abc.Mapping) and "audio" in row and "array" not in row:
        return row["audio"]
    return row


class SpeechTranslationPipeline(Pipeline):
    """Transcribe and translate speech with an LLM-SRT model.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> translator = pipeline("speech-translation", model="path/to/llmsrt", trust_remote_code=True)
    >>> translator("speech.wav", src_lang="eng", tgt_lang="deu")
    {'transcription': '...', 'translation': '...', 'src_lang': 'eng', 'tgt_lang': 'deu'}
    ```

    Inputs: a file path, a `{"array", "sampling_rate"}` dict, or a list of them (batched with `batch_size`); a
    generator or a dataset (`datasets.Dataset`: its `audio` column) streams: the call returns an iterator of results.
    `src_lang` / `tgt_lang` take one ISO 639-3 code or one per clip; `task` is `"srt"` (default), `"asr"` or
    `"smt"` (then `text=` gives the gold transcripts). Generation options go in `generate_kwargs`.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _pipeline_calls_generate = True

    def _sanitize_parameters(self, src_lang=None, tgt_lang=None, task=None, text=None, generate_kwargs=None, **kwargs):
        preprocess_params = {"task": task} if task is not None else {}
        return preprocess_params, {"generate_kwargs": {**(generate_kwargs or {}), **kwargs}}, {}

    def __call__(
        self, inputs, src_lang=None, tgt_lang="deu", task="srt", text=None, return_timestamps=False, **kwargs
    ):
        """Translate one clip or a list of clips (see the class docstring).

        `src_lang=None` means `"auto"` where the model has a language-ID head, and is an error otherwise.
        Recordings longer than the encoder window, and every clip with `return_timestamps=True`, are cut at pauses
        (`llmsrt.segmentation`) and translated segment by segment in batches; their result joins the segments'
        texts and, with `return_timestamps=True`, lists them in `chunks`:
        `[{"timestamp": (start_s, end_s), "transcription", "translation"}]`. `progress_callback(chunks)` is called
        with each translated group of segments; `segmentation` (`LongFormOptions`, or a dict of its fields) says how.

        Speech detection (`segmentation.detector`, Silero VAD by default) decides where speech is: a clip or a
        recording without speech (silence, noise, music) is answered with empty texts and `"no_speech": True`,
        without running the model.
        """
        per_clip = {"src_lang": src_lang, "tgt_lang": tgt_lang, "text": text}
        if _is_stream(inputs):
            # An iterator of results, read from `inputs` as they are consumed (clips within the encoder window);
            # with `auto`, each clip's language is detected as it is read, in this process (the model is here).
            sources = src_lang if isinstance(src_lang, (list, tuple)) else [src_lang]
            if "auto" in [self._source_language(code) for code in sources]:  # a model without a head stops here
                kwargs["num_workers"] = 0
            segmentation = LongFormOptions.of(kwargs.pop("segmentation", None))
            order = collections.deque()  # per clip read: None (to the model) or its item (no speech), in order
            items = self._stream_items(inputs, per_clip, task, segmentation, order)
            return self._in_order(super().__call__(items, task=task, **kwargs), order, task)
        single = not isinstance(inputs, (list, tuple))
        clips = [inputs] if single else list(inputs)
        for name, value in per_clip.items():
            one_per_clip(value, len(clips), name)  # a ValueError where a list does not hold one value per clip
        items = [self._item(clip, index, per_clip) for index, clip in enumerate(clips)]
        for item in items:
            item["src_lang"] = self._source_language(item["src_lang"])
        progress_callback = kwargs.pop("progress_callback", None)
        segmentation = LongFormOptions.of(kwargs.pop("segmentation", None))
        long_form = [return_timestamps or self._needs_segments(item["audio"]) for item in items]
        outputs = [None] * len(items)
        for i, item in enumerate(items):
            if long_form[i]:
                outputs[i] = self._translate_recording(
                    item, task, return_timestamps, progress_callback, segmentation, **kwargs
                )
            elif task != "smt" and not self._clip_has_speech(item, i, segmentation):
                outputs[i] = self._no_speech(item, task)
        short = [i for i in range(len(items)) if outputs[i] is None]
        if short:
            with self._one_encoder_pass(any(items[i]["src_lang"] == "auto" for i in short)):
                self._detect_clip_languages([items[i] for i in short], kwargs.get("batch_size") or 1)
                if single:
                    outputs[0] = super().__call__(items[0], task=task, **kwargs)
                else:
                    for i, output in zip(short, super().__call__([items[i] for i in short], task=task, **kwargs)):
                        outputs[i] = output
        return outputs[0] if single else outputs

    @contextlib.contextmanager
    def _one_encoder_pass(self, detecting: bool):
        """While languages are detected, the encoder's outputs for the clips are kept in memory until generation
        reads them: each clip is encoded once (the head reads the same log-mel features as generation). A model
        with its own encoder cache keeps using it."""
        if not detecting or self.model.encoder_cache is not None:
            yield
            return
        with self.model.using_encoder_cache(MemoryEncoderCache()):
            yield

    def _source_language(self, src_lang):
        """`None` -> `"auto"` where the model has a language-ID head; `"auto"` without one is an error."""
        has_head = bool(getattr(self.model.config, "language_id_languages", None))
        if src_lang is None or (isinstance(src_lang, str) and src_lang.lower() == "auto"):
            if not has_head:
                given = "src_lang='auto'" if src_lang is not None else "No src_lang was given, and"
                raise ValueError(
                    f"{given} this model cannot detect the spoken language (it has no language-ID head: "
                    "config.language_id_languages is None). Pass the source language as an ISO 639-3 code, e.g. "
                    "src_lang='eng', or use a model trained with a head (train.py --language_id_head true, or "
                    "python -m llmsrt.training.language_id)."
                )
            return "auto"
        return src_lang

    def _clip_has_speech(self, item: dict, index: int, segmentation: LongFormOptions) -> bool:
        """Decode a clip within the encoder window (the decoded waveform replaces the input) and ask the speech
        detector whether it holds speech."""
        rate = self.processor.sampling_rate
        waveform = prepare_audio(item["audio"], None, rate, self.processor.max_audio_seconds, name=f"clip {index}",
                                 reject_silence=False)
        item["audio"] = {"array": waveform, "sampling_rate": rate}
        return has_speech(waveform, rate, segmentation.detector, segmentation.min_speech)

    def _no_speech(self, item: dict, task: str, chunks: list | None = None) -> dict:
        """The answer to audio without speech: empty texts, marked `no_speech` (as Whisper servers answer). Its
        languages are checked as those of speech are: one the model was not trained with is refused."""
        language = self.processor.prompt_builder.language
        source = None if item["src_lang"] == "auto" else language(item["src_lang"])
        target = None if task == "asr" else language(item["tgt_lang"])
        output = {"transcription": "", "translation": None if task == "asr" else "", "src_lang": source,
                  "tgt_lang": target, "no_speech": True}
        return output if chunks is None else {**output, "chunks": chunks}

    def _needs_segments(self, audio) -> bool:
        """Longer than the encoder window, or in a container only FFmpeg reads (decoded by the segmenter)."""
        seconds = audio_duration(audio, self.processor.sampling_rate)
        return seconds is not None and (seconds > self.processor.max_audio_seconds or needs_ffmpeg(audio))

    def detect_languages(self, waveforms: list, batch_size: int = 8) -> list[tuple[str, float]]:
        """The most likely spoken language of each 16-kHz waveform (at most the encoder window long) and its
        probability, from the model's language-ID head."""
        languages = self.model.config.language_id_languages
        found = []
        for start in range(0, len(waveforms), max(1, batch_size)):
            probabilities = self._language_probabilities(waveforms[start : start + max(1, batch_size)])
            best = probabilities.argmax(-1)
            found += [(languages[int(i)], float(p[i])) for i, p in zip(best, probabilities)]
        return found

    def _language_probabilities(self, waveforms: list):
        inputs = self.processor.language_id_inputs(waveforms)
        return self.model.detect_language(**{name: value.to(self.device) for name, value in inputs.items()}).cpu()

    def _detect_clip_languages(self, items: list[dict], batch_size: int) -> None:
        """Replace `src_lang="auto"` by the detected language (the decoded clip replaces the input)."""
        auto = [item for item in items if item["src_lang"] == "auto"]
        if not auto:
            return
        rate = self.processor.sampling_rate
        for n, item in enumerate(auto):
            waveform = prepare_audio(item["audio"], None, rate, self.processor.max_audio_seconds, name=f"clip {n}")
            item["audio"] = {"array": waveform, "sampling_rate": rate}
        detected = self.detect_languages([item["audio"]["array"] for item in auto], batch_size)
        for item, (language, _) in zip(auto, detected):
            item["src_lang"] = language

    def _translate_recording(
        self, item: dict, task: str, return_timestamps: bool, progress_callback, segmentation: LongFormOptions,
        **kwargs
    ) -> dict:
        """Cut one recording at pauses and translate its segments in groups of a few batches (memory stays flat).

        With `src_lang="auto"`, the language is decided once, from the summed probabilities of the first group's
        segments, and used for the whole recording.
        """
        if task == "smt":
            raise ValueError("task='smt' needs a gold transcript per clip; it is not available for recordings cut "
                             "into segments. Use task='srt' or 'asr', or clips within the encoder window.")
        rate = self.processor.sampling_rate
        batch_size = kwargs.get("batch_size") or 1
        blocks = stream_audio(item["audio"], rate, name="recording")
        segments = split_on_pauses(blocks, rate, self.processor.max_audio_seconds, segmentation)
        source = item["src_lang"]
        chunks = []
        group = max(8, 4 * batch_size)
        while True:
            batch = list(itertools.islice(segments, group))
            if not batch:
                break
            new, source = self.translate_segments(batch, source, item["tgt_lang"], task, **kwargs)
            chunks += new
            if progress_callback is not None:
                progress_callback(new)
        if not chunks:
            return self._no_speech(item, task, [] if return_timestamps else None)
        language = self.processor.prompt_builder.language
        source = None if source == "auto" else language(source)
        target = None if task == "asr" else language(item["tgt_lang"])
        output = {
            "transcription": _join([chunk["transcription"] for chunk in chunks], source),
            "translation": None if task == "asr" else _join([chunk["translation"] for chunk in chunks], target),
            "src_lang": source,
            "tgt_lang": target,
        }
        if return_timestamps:
            output["chunks"] = chunks
        return output

    def translate_segments(self, segments: list, src_lang: str, tgt_lang: str, task: str = "srt", **kwargs):
        """Translate segments cut from one recording (`segmentation.Segment`s, each within the encoder window), as
        the long-form path and the live translator do.

        Returns:
            `(chunks, src_lang)`: `[{"timestamp": (start_s, end_s), "transcription", "translation"}]` and the source
            language, decided for `"auto"` from the segments' summed language-ID probabilities.
        """
        rate = self.processor.sampling_rate
        with self._one_encoder_pass(src_lang == "auto"):
            if src_lang == "auto":
                probabilities = self._language_probabilities([segment.audio for segment in segments]).sum(0)
                src_lang = self.model.config.language_id_languages[int(probabilities.argmax())]
            results = super().__call__(
                [{"audio": {"array": segment.audio, "sampling_rate": rate}, "src_lang": src_lang, "tgt_lang": tgt_lang,
                  "text": None} for segment in segments],
                task=task,
                **kwargs,
            )
        chunks = [
            {
                "timestamp": (round(segment.start, 3), round(segment.end, 3)),
                "transcription": result["transcription"],
                "translation": result["translation"],
            }
            for segment, result in zip(segments, results)
        ]
        return chunks, src_lang

    def _in_order(self, results, order, task: str):
        """The model's results with the no-speech answers put back at their clips' places."""
        for result in results:  # reading a result reads its clip, and the clips without speech before it
            while order[0] is not None:
                yield self._no_speech(order.popleft(), task)
            order.popleft()
            yield result
        while order:
            yield self._no_speech(order.popleft(), task)

    @staticmethod
    def _item(clip, index: int, per_clip: dict) -> dict:
        item = {"audio": clip}
        for name, value in per_clip.items():
            if isinstance(value, (list, tuple)):
                if index >= len(value):
                    raise ValueError(f"{name} has {len(value)} entries, but the input holds more clips: give one or "
                                     "one per clip.")
                value = value[index]
            item[name] = value
        return item

    def _stream_items(self, inputs, per_clip: dict, task: str, segmentation: LongFormOptions, order):
        """The clips of a stream with speech, for the model; each clip read is noted in `order` (`None`, or the item
        of a clip without speech, which the model does not see)."""
        count = 0
        for count, row in enumerate(inputs, start=1):
            item = self._item(_clip_of(row), count - 1, per_clip)
            item["src_lang"] = self._source_language(item["src_lang"])
            if task != "smt" and not self._clip_has_speech(item, count - 1, segmentation):
                order.append(item)
                continue
            order.append(None)
            self._detect_clip_languages([item], 1)
            yield item
        for name, value in per_clip.items():
            one_per_clip(value, count, name)

    def preprocess(self, item: dict, task: str = "srt") -> dict:
        """One clip: its audio read and resampled, its log-mel features and its prompt ids (all in the processor),
        so that DataLoader workers (`num_workers`) prepare batches while the model generates."""
        batch = self.processor(
            audio=item["audio"],
            src_lang=item["src_lang"],
            tgt_lang=item["tgt_lang"],
            text=item["text"] if task == "smt" else None,
            task=task,
        )
        # Lists of one: `_collate_clips` concatenates them into a batch.
        return {**batch, "task": [task], **{name: [item[name]] for name in PER_CLIP}}

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        if isinstance(inputs, collections.abc.Sized):
            dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        else:  # a stream: one worker at most reads it, in order
            num_workers = min(num_workers, 1)
            dataset = PipelineIterator(inputs, self.preprocess, preprocess_params)
        collate = functools.partial(_collate_clips, pad_token_id=self.processor.tokenizer.pad_token_id)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def _forward(self, model_inputs: dict, generate_kwargs: dict | None = None) -> dict:
        metadata = {key: model_inputs.pop(key) for key in METADATA}
        generated = self.model.generate(**model_inputs, **(generate_kwargs or {}))
        answer_ids = generated[:, model_inputs["input_ids"].shape[1] :]
        results = self.processor.post_process_speech_translation(
            answer_ids, metadata["task"], metadata["src_lang"], metadata["tgt_lang"], metadata["text"]
        )
        return {"result": results, "src_lang": metadata["src_lang"], "tgt_lang": metadata["tgt_lang"]}

    def postprocess(self, model_outputs: dict) -> dict:
        # A batch of one keeps its lists; an unbatched item (from a larger batch) holds plain values.
        result, src, tgt = (
            value[0] if isinstance(value, list) else value
            for value in (model_outputs["result"], model_outputs["src_lang"], model_outputs["tgt_lang"])
        )
        language = self.processor.prompt_builder.language
        target = language(tgt) if result["translation"] is not None else None
        return {**result, "src_lang": language(src), "tgt_lang": target}


__all__ = ["SpeechTranslationPipeline"]
