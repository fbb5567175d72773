"""Where the examples of a run come from: the data part of `train.py`'s arguments (also read by `eval.py`)."""

import json
from dataclasses import dataclass, field, fields

from ..languages import PAPER_LANGUAGES

LONG_AUDIO = ("trim", "skip")
DATASETS = ("manifest", "fleurs", "covost2", "common_voice", "toy")


def recipe_argv(settings: dict) -> list[str]:
    """Turn `{key: value}` recipe entries into `--key value` arguments (lists as several values, dicts as JSON)."""
    argv = []
    for key, value in settings.items():
        if value is None:
            continue
        argv.append(f"--{key}")
        if isinstance(value, (list, tuple)):
            argv.extend(str(item) for item in value)
        elif isinstance(value, dict):
            argv.append(json.dumps(value))
        else:
            argv.append(str(value).lower() if isinstance(value, bool) else str(value))
    return argv


@dataclass
class DataSource:
    """Where examples come from: the arguments `train.py` (`DataArguments`) and `eval.py`
    (`llmsrt.evaluation.EvalArguments`) share."""

    dataset: str = field(
        default="manifest", metadata={"help": "Source: manifest, fleurs, covost2, common_voice or toy."}
    )
    dataset_path: str | None = field(
        default=None,
        metadata={"help": "fleurs: a local copy of the Hub's parquet export (CONFIG/SPLIT/*.parquet) or a Hub id "
                          "(default google/fleurs, read from its parquet branch); covost2: the folder of the "
                          "covost_v2.*.tsv files."},
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "A Common Voice release folder (cv-corpus-VERSION: one folder per locale with clips/ and "
                          "the split TSVs): the audio and transcripts of covost2, the data of common_voice."},
    )
    directions: list[str] = field(
        default_factory=list,
        metadata={"help": "Directions, e.g. eng-deu zho-eng; 'all' = every pair of --languages (covost2: its "
                          "directions among --languages; transcript stages and common_voice: each of --languages)."},
    )
    languages: list[str] = field(
        default_factory=lambda: list(PAPER_LANGUAGES),
        metadata={"help": "Languages that '--directions all' pairs (default: the paper's 15, 210 directions)."},
    )
    source_languages: list[str] | None = field(
        default=None, metadata={"help": "Keep the directions whose source is one of these (filters --directions)."}
    )
    target_languages: list[str] | None = field(
        default=None, metadata={"help": "Keep the directions whose target is one of these (filters --directions)."}
    )
    centre_languages: list[str] | None = field(
        default=None,
        metadata={"help": "Keep the directions with one of these on either side: eng gives the English-centric "
                          "directions (filters --directions)."},
    )
    skip_invalid_rows: bool = field(
        default=False,
        metadata={"help": "Leave out bad manifest rows and unreadable clips (counted, logged and written into "
                          "stage_info.json) instead of stopping with an error that names them."},
    )

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"Unknown --dataset {self.dataset!r}: use {', '.join(DATASETS)}.")


@dataclass
class DataArguments(DataSource):
    """The data part of `train.py`'s arguments: a `DataSource` and the training run's manifests, splits and limits."""

    train_manifest: str | None = field(default=None, metadata={"help": "JSONL/CSV manifest of training rows."})
    eval_manifest: str | None = field(default=None, metadata={"help": "JSONL/CSV manifest for evaluation loss."})
    asr_manifest: str | None = field(
        default=None, metadata={"help": "Manifest for the ASR stage (default: the training manifest)."}
    )
    train_split: str = field(
        default="train", metadata={"help": "fleurs: train/validation/test; covost2: train (= train + "
                                           "train_covost)/dev/test; common_voice: train/dev/test/validated."}
    )
    eval_split: str | None = field(default=None)
    streaming: bool = field(
        default=False,
        metadata={"help": "Stream the corpus (datasets IterableDataset) instead of materialising it: nothing is "
                          "written to disk; needs max_steps (a stream has no length). Training reads it pass after "
                          "pass, shuffled through --shuffle_buffer_size, and resumes at the same example "
                          "(llmsrt.data.streaming)."},
    )
    shuffle_buffer_size: int = field(
        default=1000,
        metadata={"help": "Streaming: the shuffling buffer (examples) each training pass goes through (shards are "
                          "shuffled too); 0 keeps the corpus order."},
    )
    long_audio: str = field(
        default="trim",
        metadata={"help": "Clips longer than the encoder window (30 s): trim (cut to it, as the reference does; "
                          "counted) or skip (left out; counted)."},
    )
    max_train_samples: int | None = field(default=None)

    def __post_init__(self):
        super().__post_init__()
        if self.long_audio not in LONG_AUDIO:
            raise ValueError(f"--long_audio takes {' or '.join(LONG_AUDIO)}, got {self.long_audio!r}.")

    @classmethod
    def recipe_argv(cls, recipe: dict) -> list[str]:
        """The data entries of a `train.py` recipe as command-line arguments (the other entries are dropped)."""
        names = {field_.name for field_ in fields(cls)}
        return recipe_argv({key: value for key, value in recipe.items() if key in names})
