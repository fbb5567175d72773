"""Tiny random LLM-SRT models built offline, for tests, benchmarks and smoke runs (`--tiny_model true`)."""

from .tiny import EOS_TOKEN, build_tiny_model_and_processor, build_tiny_tokenizer

__all__ = ["EOS_TOKEN", "build_tiny_model_and_processor", "build_tiny_tokenizer"]
