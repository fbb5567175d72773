"""The audio gain of a finished curriculum stage on its evaluation split (for stage_info.json)."""

import dataclasses
import logging

from ..model_tools.audio_gain import audio_gain_on_examples

logger = logging.getLogger(__name__)


def audio_gain_info(stage: str, model, collator, eval_examples, batch_size: int) -> dict:
    """`{"audio_gain": {...}}` on the stage's evaluation examples with the stage's task (`collator.task`, SRT
    without the SMT share mixed in), or `{}` without an evaluation split (or with fewer than two examples).

    Every process runs it (with sharded weights, FSDP, a forward pass needs them all); the main one saves it."""
    if eval_examples is None:
        return {}
    if getattr(collator, "smt_share", 0.0) and dataclasses.is_dataclass(collator):
        collator = dataclasses.replace(collator, smt_share=0.0)
    gain = audio_gain_on_examples(model, eval_examples, collator, batch_size)
    if gain is None:
        logger.warning("Stage %s: no audio gain (the evaluation split has fewer than two examples).", stage)
        return {}
    overall = "n/a" if gain.overall is None else f"{gain.overall:.3f}"
    per_language = ", ".join(
        f"{key} {'n/a' if value is None else f'{value:.3f}'}" for key, value in gain.per_group.items()
    )
    logger.info(
        "Stage %s audio gain %s (loss %.4f with own audio, %.4f with another clip's; %s)",
        stage,
        overall,
        gain.own_audio_loss,
        gain.other_audio_loss,
        per_language,
    )
    return {"audio_gain": gain.as_dict("per_source_language")}
