"""The audio gain of a finished curriculum stage on its evaluation split (for stage_info.json)."""

import dataclasses

from ..diagnostics.audio_gain import audio_gain_report


def audio_gain_info(stage: str, model, collator, eval_examples, batch_size: int) -> dict:
    """`{"audio_gain": {...}}` on the stage's evaluation examples with the stage's task (`collator.task`, SRT
    without the SMT share mixed in), or `{}` without an evaluation split (or with fewer than two examples).

    Every process runs it (with sharded weights, FSDP, a forward pass needs them all); the main one saves it."""
    if eval_examples is None:
        return {}
    if getattr(collator, "smt_share", 0.0) and dataclasses.is_dataclass(collator):
        collator = dataclasses.replace(collator, smt_share=0.0)
    report = audio_gain_report(model, eval_examples, collator, batch_size, f"Stage {stage}")
    return {"audio_gain": report} if report is not None else {}
