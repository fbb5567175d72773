"""The `speech-translation` pipeline: audio in, `{"transcription", "translation", "src_lang", "tgt_lang"}` out."""

import collections.abc
import functools
import types

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader
from transformers import Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from .languages import language_code

PER_CLIP = ("src_lang", "tgt_lang", "text")  # options given once, or once per clip
METADATA = ("task", *PER_CLIP)  # what postprocessing needs besides the generated ids


def _collate_clips(items: list[dict], pad_token_id: int) -> dict:
    """Batch preprocessed clips: prompts `(1, L_i)` padded on the left to the longest (as the processor pads for
    generation), features `(1, n_mels, T_mel)` stacked, metadata as lists."""
    length = max(item["input_ids"].shape[1] for item in items)

    def left_pad(key: str, value: int) -> torch.Tensor:
        return torch.cat([F.pad(item[key], (length - item[key].shape[1], 0), value=value) for item in items])

    batch = {"input_ids": left_pad("input_ids", pad_token_id), "attention_mask": left_pad("attention_mask", 0)}
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

    def __call__(self, inputs, src_lang="eng", tgt_lang="deu", task="srt", text=None, **kwargs):
        per_clip = {"src_lang": src_lang, "tgt_lang": tgt_lang, "text": text}
        if _is_stream(inputs):
            # An iterator of results, read from `inputs` as they are consumed.
            return super().__call__(self._stream_items(inputs, per_clip), task=task, **kwargs)
        single = not isinstance(inputs, (list, tuple))
        clips = [inputs] if single else list(inputs)
        for name, value in per_clip.items():
            if isinstance(value, (list, tuple)) and len(value) != len(clips):
                raise ValueError(f"{name} has {len(value)} entries for {len(clips)} clip(s): give one or one per clip.")
        items = [self._item(clip, index, per_clip) for index, clip in enumerate(clips)]
        return super().__call__(items if not single else items[0], task=task, **kwargs)

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

    def _stream_items(self, inputs, per_clip: dict):
        count = 0
        for count, row in enumerate(inputs, start=1):
            yield self._item(_clip_of(row), count - 1, per_clip)
        for name, value in per_clip.items():
            if isinstance(value, (list, tuple)) and len(value) != count:
                raise ValueError(f"{name} has {len(value)} entries for {count} clip(s): give one or one per clip.")

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
        target = language_code(tgt) if result["translation"] is not None else None
        return {**result, "src_lang": language_code(src), "tgt_lang": target}


__all__ = ["SpeechTranslationPipeline"]
