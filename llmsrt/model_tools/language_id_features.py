"""What the spoken-language ID head (`llmsrt.language_id`) reads, and how often it is right: the pooled frames of the
frozen encoder for a set of examples, and the head's accuracy on them (overall and per language). Used to fit the
head (`llmsrt.training.language_id`) and to report it (`eval.py`)."""

from collections import Counter, defaultdict

import torch

from ..audio_utils import prepare_audio
from ..languages import language_code


@torch.no_grad()
def pooled_features(model, processor, examples, batch_size: int = 16) -> tuple[torch.Tensor, list[str]]:
    """`(N, 2 * D_audio)` pooled encoder frames of every example's speech (clips at most the encoder window long;
    `processor.language_id_inputs`, through the model's encoder cache when one is enabled) and their `src_lang`
    codes."""
    features, languages, waveforms = [], [], []

    def flush():
        inputs = processor.language_id_inputs(waveforms)
        device = model.audio_encoder.conv1.weight.device
        features.append(model.language_id_features(**{name: value.to(device) for name, value in inputs.items()}).cpu())
        waveforms.clear()

    for example in examples:
        waveforms.append(prepare_audio(example["audio"], None, processor.sampling_rate, processor.max_audio_seconds,
                                       name=f"clip {example.get('id')}"))
        languages.append(language_code(example["src_lang"]))
        if len(waveforms) == batch_size:
            flush()
    if waveforms:
        flush()
    if not features:
        raise ValueError("No examples to compute language-ID features from.")
    return torch.cat(features), languages


def accuracy_by_language(predicted: list[str], gold: list[str]) -> dict:
    """`{"accuracy", "examples", "per_language": {code: {"accuracy", "examples"}}}`."""
    hits, counts = defaultdict(int), Counter(gold)
    for guess, truth in zip(predicted, gold):
        hits[truth] += guess == truth
    return {
        "accuracy": sum(hits.values()) / max(1, len(gold)),
        "examples": len(gold),
        "per_language": {
            code: {"accuracy": hits[code] / count, "examples": count} for code, count in sorted(counts.items())
        },
    }


@torch.no_grad()
def language_id_accuracy(model, processor, examples, batch_size: int = 16) -> dict:
    """Accuracy of the model's head on `examples` (their `src_lang`), overall and per language."""
    features, gold = pooled_features(model, processor, examples, batch_size)
    head = model.language_id_head
    logits = head(features.to(head.classifier.weight.device))
    predicted = [model.config.language_id_languages[int(i)] for i in logits.argmax(-1)]
    return accuracy_by_language(predicted, gold)
