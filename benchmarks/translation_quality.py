"""Shared by the quality benchmarks: translate a set of clips with a saved model and average its scores, and apply
a named CPU variant (`fp32`, `bf16`, `int8`, or `int8+SUFFIX...`: int8 except the linear layers whose names end with
a SUFFIX) through `llmsrt.inference.quantization.quantize_for_cpu`."""

import time

import torch
from peak_memory import PeakMemory

from llmsrt.data.collator import CurriculumCollator
from llmsrt.diagnostics.audio_gain import audio_gain_on_examples
from llmsrt.evaluation import generate_predictions, score_records
from llmsrt.inference.quantization import quantize_for_cpu


def mean(values) -> float:
    values = [value for value in values if value is not None]
    return sum(values) / len(values) if values else float("nan")


def translate_and_score(model, processor, examples, batch_size: int, decoding: dict) -> dict:
    """Average BLEU, chrF++ and WER/CER over directions, the seconds of generation and the memory it added."""
    with PeakMemory() as peak, torch.no_grad():
        started = time.perf_counter()
        records = generate_predictions(model, processor, examples, batch_size, decoding)
        seconds = time.perf_counter() - started
    scores = score_records(records)
    return {"bleu": scores["averages"]["bleu"]["all"], "chrf++": scores["averages"]["chrf++"]["all"],
            "asr_error_rate": mean(d["asr_error_rate"] for d in scores["directions"].values()),
            "seconds": seconds, "peak_gib": peak.gib}


def translate_score_and_hear(model, processor, examples, batch_size: int, decoding: dict) -> dict:
    """`translate_and_score`'s row plus the teacher-forced SRT loss with each clip's own audio and the audio gain."""
    gain = audio_gain_on_examples(model, examples, CurriculumCollator(processor, task="srt"), batch_size)
    return {**translate_and_score(model, processor, examples, batch_size, decoding),
            "srt_loss": gain.own_audio_loss, "audio_gain": gain.overall}


def apply_cpu_variant(model, variant: str):
    """`model` converted in place to `variant` (unchanged for `fp32`)."""
    mode, *keep_float = variant.split("+")
    return model if mode == "fp32" else quantize_for_cpu(model, mode, keep_float=tuple(keep_float))
