"""Turn schema examples into model batches for one curriculum stage."""

import hashlib
from dataclasses import dataclass

from ..processing_llmsrt import IGNORE_INDEX, TASKS, LLMSRTProcessor, check_task, pad_rows
from .clips import clip_waveform
from .schema import SAMPLING_RATE


def batch_waveforms(processor: LLMSRTProcessor, examples: list[dict]) -> list:
    """The examples' clips decoded at 16 kHz and cut to the processor's encoder window (`clip_waveform`)."""
    return [clip_waveform(example, processor.max_audio_seconds) for example in examples]


def mixed_task(example_id: str, smt_share: float, seed: int = 0) -> str:
    """`"smt"` for a stable `smt_share` of example ids, `"srt"` for the rest (the same answer on every call)."""
    digest = hashlib.sha256(f"{seed}:{example_id}".encode()).digest()
    return "smt" if int.from_bytes(digest[:8], "big") / 2**64 < smt_share else "srt"


@dataclass
class CurriculumCollator:
    """Builds `input_ids`, `attention_mask`, `labels`, `input_features` and `input_features_mask` for a stage.

    Labels are `-100` on audio placeholders, prompt and padding; batches are right-padded (the processor's
    training layout). Clips longer than the encoder window are cut to it (`clip_waveform`). In the `srt` stage,
    `smt_share` turns that share of the examples into SMT samples.

    Args:
        processor: the model's `LLMSRTProcessor`.
        task: the stage's task, `"asr"`, `"smt"` or `"srt"`.
        smt_share: share of SMT samples mixed into the `srt` stage (0 = pure SRT; the paper's later recipe: 0.5).
        seed: makes the SMT/SRT assignment of each example id reproducible.
    """

    processor: LLMSRTProcessor
    task: str = "srt"
    smt_share: float = 0.0
    seed: int = 0

    def __post_init__(self):
        self.task = check_task(self.task)
        if not 0.0 <= self.smt_share <= 1.0:
            raise ValueError(f"smt_share must lie in [0, 1], got {self.smt_share}.")
        if self.smt_share and self.task != "srt":
            raise ValueError("smt_share mixes SMT samples into the 'srt' stage only.")

    def task_of(self, example: dict) -> str:
        if self.task == "srt" and self.smt_share > 0:
            return mixed_task(example["id"], self.smt_share, self.seed)
        return self.task

    def __call__(self, examples: list[dict]) -> dict:
        tasks = [self.task_of(example) for example in examples]
        for example, task in zip(examples, tasks):
            if task != "asr" and not example.get("translation"):
                raise ValueError(
                    f"Example {example.get('id')!r} has no translation, so it cannot serve the {task!r} stage "
                    f"({', '.join(TASKS)}): use translation data, or the 'asr' stage for transcripts only."
                )
        return self.processor(
            audio=batch_waveforms(self.processor, examples),
            sampling_rate=SAMPLING_RATE,
            src_lang=[example["src_lang"] for example in examples],
            tgt_lang=[example.get("tgt_lang") for example in examples],
            task=tasks,
            text=[example["transcript"] for example in examples],
            targets=[
                {"transcription": example["transcript"], "translation": example.get("translation")}
                for example in examples
            ],
        ).data


@dataclass
class AlignmentCollator:
    """Batches for the `align` stage: the audio, and the transcript as the LLM's token ids (the head's targets).

    Returns `input_features` `(B, n_mels, T_mel)`, `input_features_mask` `(B, T_mel)` and `ctc_labels` `(B, L)`:
    the transcript's token ids (no special tokens), right-padded with `-100`.
    """

    processor: LLMSRTProcessor

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.processor(
            audio=batch_waveforms(self.processor, examples),
            sampling_rate=SAMPLING_RATE,
            src_lang=[example["src_lang"] for example in examples],
            task="asr",
        )
        token_ids = self.processor.tokenizer([example["transcript"] for example in examples],
                                             add_special_tokens=False)["input_ids"]
        return {
            "input_features": batch["input_features"],
            "input_features_mask": batch["input_features_mask"],
            "ctc_labels": pad_rows(token_ids, IGNORE_INDEX, "right"),
        }
