"""Metric modules of llmsrt for `evaluate.load(path)` (offline: no Hub download)."""

from pathlib import Path

SPEECH_TRANSLATION_METRIC = str(Path(__file__).with_name("speech_translation"))

__all__ = ["SPEECH_TRANSLATION_METRIC"]
