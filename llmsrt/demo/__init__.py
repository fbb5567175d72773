"""The demo: a multilingual synthetic speech corpus written for this project, trained on through the curriculum."""

import sys

from .. import offline as models
from ..data import demo_corpus as corpus
from ..data.demo_corpus import VOICES, build_demo_corpus, split_of

# The corpus builder lives in `llmsrt.data.demo_corpus` and the offline mirrors in `llmsrt.offline`, below
# training and evaluation, which use them; their old paths `llmsrt.demo.corpus` and `llmsrt.demo.models` still work.
sys.modules[f"{__name__}.corpus"] = corpus
sys.modules[f"{__name__}.models"] = models

__all__ = ["VOICES", "build_demo_corpus", "split_of"]
