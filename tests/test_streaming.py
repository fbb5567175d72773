"""Training from a streamed corpus (FLEURS' parquet export, written by the test): shuffled passes that run on without
a break, the same order with DataLoader workers, a resumed stage that sees the same batches as an uninterrupted one,
and the clip checks of the materialised path."""

import itertools
import json
from pathlib import Path

import datasets
import pytest
import torch
from corpus_fixtures import fleurs_row, write_fleurs_export

from llmsrt.data.arguments import DataArguments
from llmsrt.data.stage_data import load_stage_data
from llmsrt.data.streaming import TrainingStream
from llmsrt.training import main

TEXTS = {1: "The train leaves at nine.", 2: "Good morning!", 3: "Where is the station?", 4: "A long story.",
         5: "See you tomorrow."}
@pytest.fixture(autouse=True)
def _no_pause_at_a_pass_end(monkeypatch):
    """datasets pauses 5 s whenever a shuffled parquet stream's reader threads stop (apache/arrow#45214), at every
    pass's end: nothing here depends on it, and these passes are a few rows long."""
    monkeypatch.setattr(datasets.config, "SLEEP_TIME_ON_THREADS_SHUTDOWN", 0)


CORRUPT = {"bytes": b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(64), "path": "corrupt.wav"}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """en_us train: six utterances (sentence 1 by two speakers, sentence 4 in a 31-s clip) and a corrupt clip, two
    rows a parquet file; de_de has sentences 1 and 2."""
    english = [fleurs_row("en_us", "train", n, TEXTS[n], seed=n, seconds=31.0 if n == 4 else 1.0) for n in TEXTS]
    english.insert(1, fleurs_row("en_us", "train", 1, TEXTS[1], seed=9, gender=1))
    corrupt = fleurs_row("en_us", "train", 6, "Broken.", seed=10)
    corrupt["audio"] = CORRUPT
    german = [fleurs_row("de_de", "train", n, f"Satz {n}.", seed=20 + n) for n in (1, 2)]
    return write_fleurs_export(tmp_path_factory.mktemp("fleurs-stream"),
                               {"en_us": {"train": english + [corrupt]}, "de_de": {"train": german}}, rows_per_file=2)


def streamed(export, **overrides):
    args = DataArguments(**{"dataset": "fleurs", "dataset_path": str(export), "directions": ["eng-deu"],
                            "streaming": True, "skip_invalid_rows": True, **overrides})
    return load_stage_data(args, "asr", "unused").examples


def clip_names(examples) -> list[str]:
    return [example["audio"]["path"] for example in examples]


def test_passes_run_on_reshuffled_and_resume_at_any_example(export):
    stream = TrainingStream(streamed(export), seed=3, buffer_size=4, batch_size=2)
    order = clip_names(itertools.islice(stream, 24))
    passes = [order[start : start + 6] for start in range(0, 24, 6)]
    assert all(sorted(one) == sorted(passes[0]) for one in passes)  # each pass: the six usable clips once
    assert "corrupt.wav" not in order and len(set(passes[0])) == 6
    assert len({tuple(one) for one in passes}) > 1, "every pass came in the same order"
    assert passes[0] != sorted(passes[0])
    stream.start = 9  # mid-pass, mid-batch
    assert clip_names(itertools.islice(stream, 15)) == order[9:]


def test_workers_share_the_stream_out_in_the_same_order(export):
    stream = TrainingStream(streamed(export), seed=3, buffer_size=4, batch_size=2)
    order = clip_names(itertools.islice(stream, 16))
    loader = torch.utils.data.DataLoader(stream, batch_size=2, num_workers=2, collate_fn=clip_names)
    batches = list(itertools.islice(loader, 8))
    assert [name for batch in batches for name in batch] == order


def test_a_stream_of_unusable_rows_says_so(export):
    with pytest.raises(ValueError, match="Unreadable audio"):
        next(iter(TrainingStream(streamed(export, skip_invalid_rows=False), buffer_size=0)))
    stream = TrainingStream(streamed(export).take(0), buffer_size=0)
    with pytest.raises(ValueError, match="no usable example"):
        next(iter(stream))


def _train(saved_tiny, export, output: Path, *extra: str) -> dict:
    main(["--model_name_or_path", str(saved_tiny), "--dataset", "fleurs", "--dataset_path", str(export),
          "--directions", "eng-deu", "--streaming", "true", "--skip_invalid_rows", "true",
          "--shuffle_buffer_size", "4", "--stage", "asr", "--output_dir", str(output), "--max_steps", "8",
          "--per_device_train_batch_size", "2", "--save_strategy", "steps", "--save_steps", "4", "--logging_steps",
          "1", "--stage_overrides", "asr.learning_rate=0.01", "asr.warmup_steps=0", "--use_cpu", "true",
          "--report_to", "none", "--disable_tqdm", "true", "--seed", "5", *extra])
    state = json.loads((output / "asr" / "trainer_state.json").read_text())
    info = json.loads((output / "asr" / "stage_info.json").read_text())
    return {"losses": [entry["loss"] for entry in state["log_history"] if "loss" in entry], **info}


@pytest.mark.slow
def test_a_streamed_stage_resumes_with_the_same_batches(saved_tiny, export, tmp_path):
    """Six usable clips, batches of two: the checkpoint at step 4 lies in the second pass, mid-way (the stock
    Trainer would restart that pass from its first batch)."""
    whole = _train(saved_tiny, export, tmp_path / "whole")
    assert whole["global_step"] == 8 and len(whole["losses"]) == 8
    checkpoint = tmp_path / "whole" / "checkpoints" / "asr" / "checkpoint-4"
    resumed = _train(saved_tiny, export, tmp_path / "resumed", "--resume_from_checkpoint", str(checkpoint))
    assert resumed["resumed_from"] == str(checkpoint)
    # the log of steps 1-4 comes with the checkpoint; steps 5-8: the same batches through the same weights
    assert resumed["losses"] == whole["losses"]
    assert resumed["final_fingerprint"] == whole["final_fingerprint"]
    # Read from step 0 instead (what the stock Trainer does past a pass's end), the batches and the weights differ.
    restarted = _train(saved_tiny, export, tmp_path / "restarted", "--resume_from_checkpoint", str(checkpoint),
                       "--ignore_data_skip", "true")
    assert restarted["losses"][:4] == whole["losses"][:4] and restarted["losses"][4:] != whole["losses"][4:]
    assert restarted["final_fingerprint"] != whole["final_fingerprint"]
