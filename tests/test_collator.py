"""The stage batches of `llmsrt.data.collator`: what each task's rows hold, where the loss falls, the SMT share of
the srt stage, clips cut to the encoder window, and the align stage's CTC targets."""

import numpy as np
import pytest
from helpers import make_clip

from llmsrt.data import AlignmentCollator, CurriculumCollator
from llmsrt.data.collator import mixed_task
from llmsrt.processing_llmsrt import IGNORE_INDEX

EXAMPLES = [
    {"id": "a", "src_lang": "eng", "tgt_lang": "deu", "transcript": "the train", "translation": "der zug",
     "audio": {"array": make_clip(1.0, 0), "sampling_rate": 16000}},
    {"id": "b", "src_lang": "fra", "tgt_lang": "spa", "transcript": "le train part à neuf heures",
     "translation": "el tren sale a las nueve", "audio": {"array": make_clip(2.5, 1, 22050), "sampling_rate": 22050}},
]


def ids(processor, text: str) -> list[int]:
    return processor.tokenizer(text, add_special_tokens=False)["input_ids"]


def answer_of(batch, row: int) -> list[int]:
    labels = batch["labels"][row]
    return labels[labels != IGNORE_INDEX].tolist()


def prompt_of(batch, row: int, processor) -> list[int]:
    """The row's ids before its answer: placeholders and instruction."""
    labels, real = batch["labels"][row], batch["attention_mask"][row].bool()
    return batch["input_ids"][row][real & (labels == IGNORE_INDEX)].tolist()


@pytest.mark.parametrize("task", ["asr", "smt", "srt"])
def test_each_task_writes_its_prompt_and_learns_its_answer_only(tiny, task):
    _, processor = tiny
    batch = CurriculumCollator(processor, task)(EXAMPLES)
    builder, eos = processor.prompt_builder, processor.tokenizer.eos_token_id
    for row, example in enumerate(EXAMPLES):
        src, tgt = example["src_lang"], example["tgt_lang"]
        assert prompt_of(batch, row, processor) == ids(processor, builder.prompt(task, src, tgt, example["transcript"]))
        answer = builder.answer(task, src, tgt, example["transcript"], example["translation"])
        assert answer_of(batch, row) == ids(processor, answer) + [eos]
    assert batch["attention_mask"][:, 0].all()  # right-padded: every row starts at column 0
    padding = batch["attention_mask"] == 0
    assert (batch["labels"][padding] == IGNORE_INDEX).all() and padding.any()
    assert batch["input_features"].shape[:2] == (2, processor.feature_extractor.feature_size)
    mel_frames = batch["input_features_mask"].sum(-1).tolist()
    assert mel_frames[0] == pytest.approx(100, abs=2) and mel_frames[1] == pytest.approx(250, abs=2)


def test_an_asr_stage_takes_transcript_only_examples_and_translation_stages_refuse_them(tiny):
    _, processor = tiny
    transcript_only = {**EXAMPLES[0], "tgt_lang": None, "translation": None}
    batch = CurriculumCollator(processor, "asr")([transcript_only])
    assert answer_of(batch, 0) == ids(processor, "the train") + [processor.tokenizer.eos_token_id]
    for task in ("smt", "srt"):
        with pytest.raises(ValueError, match=f"'a' has no translation.*the '{task}' stage"):
            CurriculumCollator(processor, task)([transcript_only])


def test_the_smt_share_turns_a_stable_share_of_srt_rows_into_smt_rows(tiny):
    _, processor = tiny
    examples = [{**EXAMPLES[index % 2], "id": f"utt-{index}"} for index in range(12)]
    collator = CurriculumCollator(processor, "srt", smt_share=0.5, seed=3)
    tasks = [collator.task_of(example) for example in examples]
    assert set(tasks) == {"smt", "srt"} and tasks == [collator.task_of(example) for example in examples]
    batch = collator(examples)
    builder = processor.prompt_builder
    for row, (example, task) in enumerate(zip(examples, tasks)):
        src, tgt = example["src_lang"], example["tgt_lang"]
        expected = builder.answer(task, src, tgt, example["transcript"], example["translation"])
        assert answer_of(batch, row)[:-1] == ids(processor, expected)
        assert (example["transcript"] in processor.tokenizer.decode(prompt_of(batch, row, processor))) == \
            (task == "smt")


def test_mixed_task_follows_the_share_and_the_seed():
    ids_ = [f"utt-{i}" for i in range(4000)]
    share = np.mean([mixed_task(i, 0.3) == "smt" for i in ids_])
    assert abs(share - 0.3) < 0.03
    assert all(mixed_task(i, 0.0) == "srt" for i in ids_[:100]) and all(mixed_task(i, 1.0) == "smt" for i in ids_[:100])
    assert [mixed_task(i, 0.5, seed=1) for i in ids_[:50]] != [mixed_task(i, 0.5, seed=2) for i in ids_[:50]]


def test_settings_outside_the_accepted_ones_are_refused(tiny):
    _, processor = tiny
    with pytest.raises(ValueError, match=r"smt_share must lie in \[0, 1\], got 1.5"):
        CurriculumCollator(processor, "srt", smt_share=1.5)
    with pytest.raises(ValueError, match="'srt' stage only"):
        CurriculumCollator(processor, "asr", smt_share=0.5)
    with pytest.raises(ValueError, match="'translate'.*'asr'"):
        CurriculumCollator(processor, "translate")


def test_a_clip_longer_than_the_encoder_window_is_cut_to_it(tiny):
    _, processor = tiny
    window = processor.max_audio_seconds
    long_clip = {**EXAMPLES[0], "audio": {"array": make_clip(window + 3.0, 4), "sampling_rate": 16000}}
    batch = CurriculumCollator(processor, "srt")([long_clip])
    assert int(batch["input_features_mask"].sum()) == processor.feature_extractor.nb_max_frames


def test_the_align_batch_holds_the_transcripts_token_ids_right_padded(tiny):
    _, processor = tiny
    batch = AlignmentCollator(processor)(EXAMPLES)
    assert set(batch) == {"input_features", "input_features_mask", "ctc_labels"}
    for row, example in enumerate(EXAMPLES):
        expected = ids(processor, example["transcript"])
        labels = batch["ctc_labels"][row].tolist()
        assert labels[: len(expected)] == expected and set(labels[len(expected):]) <= {IGNORE_INDEX}
    assert batch["ctc_labels"].shape[1] == max(len(ids(processor, example["transcript"])) for example in EXAMPLES)
