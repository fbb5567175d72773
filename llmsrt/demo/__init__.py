"""The demo: a multilingual synthetic speech corpus written for this project, trained on through the curriculum.

The corpus builder lives in `llmsrt.data.demo_corpus` and the offline mirrors in `llmsrt.conversion.offline`, below
training and evaluation, which use them.
"""

from ..data.demo_corpus import VOICES, build_demo_corpus, split_of

__all__ = ["VOICES", "build_demo_corpus", "split_of"]
