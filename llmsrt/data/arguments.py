"""Where the examples of a run come from: the data part of `train.py`'s arguments (also read by `eval.py`)."""

from dataclasses import dataclass, field

from ..languages import PAPER_LANGUAGES


@dataclass
class DataArguments:
    dataset: str = field(
        default="manifest", metadata={"help": "Source: manifest, fleurs, covost2, common_voice, demo or toy."}
    )
    train_manifest: str | None = field(default=None, metadata={"help": "JSONL/CSV manifest of training rows."})
    eval_manifest: str | None = field(default=None, metadata={"help": "JSONL/CSV manifest for evaluation loss."})
    asr_manifest: str | None = field(
        default=None, metadata={"help": "Manifest for the ASR stage (default: the training manifest)."}
    )
    dataset_path: str | None = field(
        default=None,
        metadata={"help": "Hub id or local folder of a Hub dataset; for `demo`, where the corpus is built "
                          "(default: OUTPUT_DIR/demo-data)."},
    )
    data_dir: str | None = field(default=None, metadata={"help": "Manual data folder (CoVoST-2's Common Voice)."})
    directions: list[str] = field(
        default_factory=list,
        metadata={"help": "Directions for Hub sources, e.g. eng-deu zho-eng; 'all' = every pair of --languages."},
    )
    languages: list[str] = field(
        default_factory=lambda: list(PAPER_LANGUAGES),
        metadata={"help": "Languages that '--directions all' pairs (default: the paper's 15, 210 directions)."},
    )
    train_split: str = field(default="train")
    train_styles_per_sentence: int = field(
        default=1,
        metadata={"help": "--dataset demo: training clips per sentence and language, each in another eSpeak voice, "
                          "speed and pitch (dev and test keep one held-out voice)."},
    )
    word_lists_per_language: int = field(
        default=0,
        metadata={"help": "--dataset demo: training clips per language that speak a list of frequent words "
                          "(wordfreq), transcribed, not translated: for the align and asr stages."},
    )
    eval_split: str | None = field(default=None)
    streaming: bool = field(default=False, metadata={"help": "Stream Hub data (IterableDataset); needs max_steps."})
    skip_invalid_rows: bool = field(
        default=False, metadata={"help": "Drop bad manifest rows (counted and logged) instead of stopping."}
    )
    max_train_samples: int | None = field(default=None)

    def demo_corpus_options(self) -> dict:
        """The keyword arguments of `build_demo_corpus` that these arguments set."""
        return {"train_styles_per_sentence": self.train_styles_per_sentence,
                "word_lists_per_language": self.word_lists_per_language}
