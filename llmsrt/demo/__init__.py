"""The demo: a multilingual synthetic speech corpus written for this project."""

from .corpus import VOICES, build_demo_corpus, split_of

__all__ = ["VOICES", "build_demo_corpus", "split_of"]
