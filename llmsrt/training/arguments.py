"""Command-line / recipe arguments of `train.py`, parsed by `HfArgumentParser` with `TrainingArguments`."""

import json
from dataclasses import dataclass, field

from ..data.arguments import DataArguments  # noqa: F401  (re-exported: the data part of the arguments)
from .alignment import ALIGN_LOSSES

STAGES = ("align", "asr", "smt", "srt")
PAPER_CURRICULUM = ("asr", "smt", "srt")
TRAINABLE_PARTS = ("adapter", "lora", "llm")
STAGE_FOLDERS = ("complete", "changed")

# The paper's per-stage settings; a recipe's `stages:` block and `--stage_overrides` change them.
PAPER_STAGE_SETTINGS = {
    # Not in the paper: the optional alignment of the adapter before ASR (`llmsrt.training.alignment`).
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
    tiny_model: bool = field(
        default=False, metadata={"help": "Build a tiny random model (tokenizer trained on the data): smoke tests."}
    )
    tiny_text_model: str = field(
        default="qwen2",
        metadata={"help": "The LLM of a tiny model: qwen2 (LLM-SRT v1.0's kind), qwen3, gemma3_text (Gemma-3's "
                          "text model, as MCAT) or gemma2; Gemma's tokenizer adds <bos>, placed after the audio."},
    )
    num_query_tokens: int = field(default=80, metadata={"help": "Learnable queries of a new adapter (v1.0: 80)."})
    query_pooling_stride: int = field(
        default=1,
        metadata={"help": "A new adapter mean-pools its Q-Former outputs over this many consecutive queries: "
                          "num_query_tokens // stride audio embeddings per clip (MCAT: 150 queries by 5 -> 30)."},
    )
    adapter_hidden_size: int | None = field(
        default=None,
        metadata={"help": "Hidden width of a new adapter's MLP (MCAT: 2560; default: the v1.0 paper's rule from the "
                          "LLM width; 0: one Linear)."},
    )
    qformer_num_layers: int = field(default=8, metadata={"help": "Q-Former layers of a new adapter."})
    variable_length_encoding: bool = field(
        default=False,
        metadata={"help": "A new model encodes each clip at its own length, not the 30-s window (faster; see README)."},
    )
    qformer_attends_padding: bool = field(
        default=False,
        metadata={"help": "A new adapter's Q-Former attends to every frame of the 30-s window, padding included, as "
                          "the reference (the paper recipe; a converted checkpoint of the authors reads so too). "
                          "Default: the clip's real frames only."},
    )
    query_time_window: int | None = field(
        default=None,
        metadata={"help": "A new adapter's queries attend to their own time slice of the clip +- this many slices "
                          "(default: all frames, the paper)."},
    )
    lora_rank: int | None = field(default=None, metadata={"help": "LoRA rank (default: the model config's, 8)."})
    lora_alpha: int | None = field(default=None, metadata={"help": "LoRA alpha (default: the config's, 32)."})
    lora_dropout: float | None = field(
        default=None, metadata={"help": "LoRA dropout (default: the config's, 0.05); 0 makes runs with different "
                                        "numbers of processes comparable step by step."}
    )
    language_tags: dict | str | None = field(
        default=None,
        metadata={"help": "A new model's tag codes where they are not the ISO 639-3 code, as JSON: MCAT writes "
                          '{"zho": "cmn", "aze": "azj", "nep": "npi", "fil": "tgl"} (llmsrt.languages.MCAT_CODES).'},
    )
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "LLM modules LoRA wraps (default: the config's, q_proj v_proj)."}
    )
    model_dtype: str | None = field(
        default=None, metadata={"help": "dtype of the pretrained parts (float32, bfloat16); the adapter stays fp32."}
    )

    def __post_init__(self):
        if isinstance(self.language_tags, str):  # the command line and recipe_argv give it as JSON
            try:
                self.language_tags = json.loads(self.language_tags)
            except json.JSONDecodeError as error:
                raise ValueError(f"--language_tags takes a JSON object such as '{{\"zho\": \"cmn\"}}', got "
                                 f"{self.language_tags!r} ({error}).") from error


@dataclass
class CurriculumArguments:
    stage: str = field(
        default="all", metadata={"help": "Stage to run: align, asr, smt, srt or all (those of the curriculum)."}
    )
    curriculum_stages: list[str] = field(
        default_factory=lambda: list(PAPER_CURRICULUM),
        metadata={"help": "The stages that make up the curriculum, in order; each starts from the one before it. "
                          "`srt` alone trains SRT from the pretrained parts (the paper's no-curriculum ablation); "
                          "`align asr smt srt` first aligns the adapter with the LLM's embeddings (no LLM forward)."},
    )
    smt_share: float = field(
        default=0.0, metadata={"help": "Share of SMT samples mixed into the SRT stage (the later recipe: 0.5)."}
    )
    align_loss: str = field(
        default=ALIGN_LOSSES[0],
        metadata={"help": "Loss of the align stage: proportional (each query is the token its time slice covers, "
                          "tokens lasting in proportion to their letters; measured best on the demo) or ctc (the "
                          "audio embeddings spell the transcript's tokens)."},
    )
    align_output_scale: str = field(
        default="embedding",
        metadata={"help": "At the end of the align stage: embedding (scale the adapter's outputs to the norm of the "
                          "LLM's token embeddings, whose directions the stage aligned them with) or unchanged."},
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
    language_id_head: bool = field(
        default=False,
        metadata={"help": "Train a spoken-language ID head (linear, on the frozen encoder's pooled frames) on the "
                          "training clips' src_lang in the first stage; saved with the model, it lets the pipeline "
                          "take src_lang='auto'."},
    )

    def __post_init__(self):
        if self.stage not in STAGES + ("all",):
            raise ValueError(f"--stage must be one of {', '.join(STAGES)} or all, got {self.stage!r}.")
        unknown = [stage for stage in self.curriculum_stages if stage not in STAGES]
        if unknown or not self.curriculum_stages or len(set(self.curriculum_stages)) < len(self.curriculum_stages):
            raise ValueError(f"--curriculum_stages takes distinct stages among {', '.join(STAGES)}, got "
                             f"{self.curriculum_stages}.")
        if self.align_loss not in ALIGN_LOSSES:
            raise ValueError(f"--align_loss takes {', '.join(ALIGN_LOSSES)}, got {self.align_loss!r}.")
        if self.align_output_scale not in ("embedding", "unchanged"):
            raise ValueError(f"--align_output_scale takes embedding or unchanged, got {self.align_output_scale!r}.")
        if self.stage_folders not in STAGE_FOLDERS:
            raise ValueError(f"--stage_folders takes {' or '.join(STAGE_FOLDERS)}, got {self.stage_folders!r}.")
        if "align" in self.curriculum_stages[1:]:
            raise ValueError("The align stage prepares a new adapter: it can only come first in --curriculum_stages.")
        if self.stage != "all" and self.stage not in self.curriculum_stages:
            raise ValueError(f"--stage {self.stage} is not in --curriculum_stages {self.curriculum_stages}.")
