"""Audio gain: does the model use the audio?

    audio gain = (teacher-forced answer loss with each clip's audio replaced by another clip's audio of the same
                  batch) / (the same loss with its own audio) - 1

Both losses are token-weighted means of the cross entropy over answer tokens. A model that ignores the audio
scores 0 (its answers are as likely after any clip); the more the answers depend on the clip, the larger the gain.
"Another clip" is the next one of the batch: `input_features` and `input_features_mask` are rolled by one, so every
batch needs two clips or more (`example_chunks` never makes a batch of one). Clips that appear twice in a row (one
recording used for two directions) lower the gain, as their swap changes nothing.
"""

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

AUDIO_KEYS = ("input_features", "input_features_mask")


@dataclass
class AudioGain:
    """The two token-weighted mean answer losses and their ratio minus one, overall and per group."""

    overall: float | None
    own_audio_loss: float
    other_audio_loss: float
    per_group: dict[str, float | None] = field(default_factory=dict)
    examples: int = 0
    tokens: int = 0

    def as_dict(self, group_name: str = "per_source_language") -> dict:
        """The JSON form written by eval.py (results.json) and training (stage_info.json)."""
        return {
            "overall": self.overall,
            "own_audio_loss": self.own_audio_loss,
            "other_audio_loss": self.other_audio_loss,
            group_name: dict(self.per_group),
            "examples": self.examples,
            "tokens": self.tokens,
        }


def _gain(own: float, other: float) -> float | None:
    return other / own - 1.0 if own > 0 else None


def swap_audio(batch: dict) -> dict:
    """The batch with each clip's audio replaced by the next clip's (rolled by one); a batch of one cannot be."""
    size = int(batch["input_ids"].shape[0])
    if size < 2:
        raise ValueError(
            "An audio-gain batch needs two clips or more (the audio is swapped within the batch); got a batch of "
            f"{size}: merge a final single example into the previous batch (see example_chunks)."
        )
    return {key: torch.roll(value, 1, dims=0) if key in AUDIO_KEYS else value for key, value in batch.items()}


def first_answer_logit(labels: torch.Tensor) -> int | None:
    """The position whose logits predict the batch's first answer token (`labels` `(B, L)`, -100 elsewhere): the
    vocabulary projection is only needed from there on. None when no position has a label."""
    answer_positions = (labels != -100).any(dim=0).nonzero()
    return max(int(answer_positions[0]) - 1, 0) if len(answer_positions) else None


@torch.no_grad()
def answer_losses(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example summed cross entropy over answer tokens (labels `-100` ignored) and answer token counts, both
    `(B,)`. The vocabulary projection runs from the position before the batch's first answer token on only."""
    labels = batch["labels"]
    first = first_answer_logit(labels)
    first = labels.shape[1] - 1 if first is None else first
    inputs = {
        key: value.to(model.device) if torch.is_tensor(value) else value
        for key, value in batch.items()
        if key != "labels"
    }
    logits = model(**inputs, logits_to_keep=labels.shape[1] - first, use_cache=False).logits
    targets = labels[:, first + 1 :].to(logits.device)
    losses = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, ignore_index=-100, reduction="none")
    return losses.sum(dim=1).cpu(), (targets != -100).sum(dim=1).cpu()


def audio_gain(model, batches: Iterable[dict], groups: Iterable[str] | None = None) -> AudioGain:
    """The audio gain of `model` over collated training batches (`input_ids`, `attention_mask`, `labels`,
    `input_features`, `input_features_mask`, as `llmsrt.data.CurriculumCollator` makes them).

    Args:
        batches: batches of two examples or more (`ValueError` on a batch of one).
        groups: one key per example, in the batches' order (e.g. the source language), for per-group gains.

    Returns:
        An `AudioGain` (`overall` is None when no answer token was seen or the own-audio loss is 0).
    """
    keys = iter(groups) if groups is not None else None

    def pairs():
        for batch in batches:
            size = int(batch["input_ids"].shape[0])
            yield batch, (list(islice(keys, size)) if keys is not None else None)

    return _measure(model, pairs())


def _measure(model, pairs: Iterable[tuple[dict, list | None]]) -> AudioGain:
    sums = defaultdict(lambda: [0.0, 0.0, 0])  # group ("" = all) -> [own loss sum, other loss sum, tokens]
    examples = 0
    was_training = model.training
    model.eval()
    try:
        for batch, batch_keys in pairs:
            other_batch = swap_audio(batch)
            own_loss, counts = answer_losses(model, batch)
            other_loss, _ = answer_losses(model, other_batch)
            size = len(counts)
            if batch_keys is not None and len(batch_keys) != size:
                raise ValueError(f"groups ran out of keys after {examples + len(batch_keys)} examples.")
            for index, (own, other, count) in enumerate(zip(own_loss.tolist(), other_loss.tolist(), counts.tolist())):
                for name in ("",) if batch_keys is None else ("", str(batch_keys[index])):
                    entry = sums[name]
                    entry[0] += own
                    entry[1] += other
                    entry[2] += count
            examples += size
    finally:
        model.train(was_training)
    own, other, tokens = sums[""]
    own_mean, other_mean = (own / tokens, other / tokens) if tokens else (0.0, 0.0)
    per_group = {name: _gain(entry[0], entry[1]) for name, entry in sorted(sums.items()) if name != ""}
    return AudioGain(_gain(own_mean, other_mean), own_mean, other_mean, per_group, examples, int(tokens))


def example_chunks(examples: Iterable, batch_size: int) -> Iterator[list]:
    """Consecutive lists of `batch_size` examples; a final single example joins the previous list, so that only a
    one-example set gives a list of one."""
    if batch_size < 2:
        raise ValueError(f"The audio gain needs batches of two examples or more, got batch_size={batch_size}.")
    chunk, ready = [], None
    for example in examples:
        chunk.append(example)
        if len(chunk) == batch_size:
            if ready is not None:
                yield ready
            ready, chunk = chunk, []
    if ready is not None and len(chunk) == 1:
        ready, chunk = ready + chunk, []
    if ready is not None:
        yield ready
    if chunk:
        yield chunk


def audio_gain_on_examples(
    model,
    examples: Iterable[dict],
    collator: Callable[[list[dict]], dict],
    batch_size: int,
    group_key: str | None = "src_lang",
) -> AudioGain | None:
    """`audio_gain` over `examples` collated by `collator` (any callable list-of-examples -> batch, e.g.
    `CurriculumCollator(processor, task="srt")`) in batches of `batch_size` (at least 2, see `example_chunks`),
    grouped by `example[group_key]`. Returns None for fewer than two examples (no other clip to swap in)."""
    chunks = example_chunks(examples, max(batch_size, 2))
    first = next(chunks, None)
    if first is None or len(first) < 2:
        return None

    def pairs():
        for chunk in chain([first], chunks):
            keys = [example[group_key] for example in chunk] if group_key is not None else None
            yield collator(chunk), keys

    return _measure(model, pairs())


def audio_gain_report(model, examples, collator, batch_size: int, label: str) -> dict | None:
    """`audio_gain_on_examples` grouped by source language, logged under `label` (a stage name, `"eval"`) and in the
    JSON form of eval.py's results.json and training's stage_info.json; `None` (and a warning) for fewer than two
    examples."""
    gain = audio_gain_on_examples(model, examples, collator, batch_size)
    if gain is None:
        logger.warning("%s: no audio gain (it needs two examples or more).", label)
        return None
    per_language = ", ".join(f"{key} {_format(value)}" for key, value in gain.per_group.items())
    logger.info("%s audio gain %s (loss %.4f with own audio, %.4f with another clip's; %s)", label,
                _format(gain.overall), gain.own_audio_loss, gain.other_audio_loss, per_language)
    return gain.as_dict("per_source_language")


def _format(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
