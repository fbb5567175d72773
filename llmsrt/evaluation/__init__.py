"""Evaluation of LLM-SRT: per-direction BLEU / chrF++ / WER-CER (/ COMET), matrices, heatmaps and reports."""

from pathlib import Path

from .evaluator import EvalArguments, evaluate_model, generate_predictions, write_report
from .metrics import bleu_tokenizer, corpus_bleu, corpus_chrf_plus_plus, error_rate, normalize_transcript
from .scoring import averages, score_records

# The `evaluate` module of the same metrics, for `evaluate.load(SPEECH_TRANSLATION_METRIC)` (offline: no download).
SPEECH_TRANSLATION_METRIC = str(Path(__file__).with_name("speech_translation"))

__all__ = [
    "SPEECH_TRANSLATION_METRIC",
    "EvalArguments",
    "averages",
    "bleu_tokenizer",
    "corpus_bleu",
    "corpus_chrf_plus_plus",
    "error_rate",
    "evaluate_model",
    "generate_predictions",
    "normalize_transcript",
    "score_records",
    "write_report",
]
