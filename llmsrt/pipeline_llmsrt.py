"""The `speech-translation` pipeline: audio in, `{"transcription", "translation", "src_lang", "tgt_lang"}` out."""

from torch.utils.data import DataLoader
from transformers import Pipeline
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

from .languages import language_code


def _collate_clips(items: list[dict]) -> dict:
    """Batch preprocessed clips as lists; the processor pads them (on the left) in `_forward`."""
    return {key: [value for item in items for value in item[key]] for key in items[0]}


class SpeechTranslationPipeline(Pipeline):
    """Transcribe and translate speech with an LLM-SRT model.

    Example:

    ```python
    >>> from transformers import pipeline
    >>> translator = pipeline("speech-translation", model="path/to/llmsrt", trust_remote_code=True)
    >>> translator("speech.wav", src_lang="eng", tgt_lang="deu")
    {'transcription': '...', 'translation': '...', 'src_lang': 'eng', 'tgt_lang': 'deu'}
    ```

    Inputs: a file path, a `{"array", "sampling_rate"}` dict, or a list of them (batched with `batch_size`).
    `src_lang` / `tgt_lang` take one ISO 639-3 code or one per clip; `task` is `"srt"` (default), `"asr"` or
    `"smt"` (then `text=` gives the gold transcripts). Generation options go in `generate_kwargs`.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _pipeline_calls_generate = True

    def _sanitize_parameters(self, src_lang=None, tgt_lang=None, task=None, text=None, generate_kwargs=None, **kwargs):
        forward_params = {"generate_kwargs": {**(generate_kwargs or {}), **kwargs}}
        if task is not None:
            forward_params["task"] = task
        return {}, forward_params, {}

    def __call__(self, inputs, src_lang="eng", tgt_lang="deu", task="srt", text=None, **kwargs):
        single = not isinstance(inputs, (list, tuple))
        clips = [inputs] if single else list(inputs)
        per_clip = {"src_lang": src_lang, "tgt_lang": tgt_lang, "text": text}
        for name, value in per_clip.items():
            if isinstance(value, (list, tuple)) and len(value) != len(clips):
                raise ValueError(f"{name} has {len(value)} entries for {len(clips)} clip(s): give one or one per clip.")
        items = [
            {
                "audio": clip,
                **{
                    name: value[i] if isinstance(value, (list, tuple)) else value
                    for name, value in per_clip.items()
                },
            }
            for i, clip in enumerate(clips)
        ]
        outputs = super().__call__(items if not single else items[0], task=task, **kwargs)
        return outputs

    def preprocess(self, item: dict) -> dict:
        # Lists of one: `_collate_clips` concatenates them into a batch.
        return {key: [value] for key, value in item.items()}

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=_collate_clips, num_workers=0)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def _forward(self, model_inputs: dict, task: str = "srt", generate_kwargs: dict | None = None) -> dict:
        batch = self.processor(
            audio=model_inputs["audio"],
            src_lang=model_inputs["src_lang"],
            tgt_lang=model_inputs["tgt_lang"],
            text=model_inputs["text"] if task == "smt" else None,
            task=task,
        ).to(self.device)
        generated = self.model.generate(**batch, **(generate_kwargs or {}))
        answer_ids = generated[:, batch["input_ids"].shape[1] :]
        results = self.processor.post_process_speech_translation(
            answer_ids, task, model_inputs["src_lang"], model_inputs["tgt_lang"], model_inputs["text"]
        )
        return {
            "result": results,
            "src_lang": model_inputs["src_lang"],
            "tgt_lang": model_inputs["tgt_lang"],
        }

    def postprocess(self, model_outputs: dict) -> dict:
        # A batch of one keeps its lists; an unbatched item (from a larger batch) holds plain values.
        result, src, tgt = (
            value[0] if isinstance(value, list) else value
            for value in (model_outputs["result"], model_outputs["src_lang"], model_outputs["tgt_lang"])
        )
        target = language_code(tgt) if result["translation"] is not None else None
        return {**result, "src_lang": language_code(src), "tgt_lang": target}


__all__ = ["SpeechTranslationPipeline"]
