"""The training (and evaluation) examples of each curriculum stage, from the configured source."""

import logging
from pathlib import Path

import datasets

from .arguments import DataArguments
from .hub import load_common_voice, load_covost2, load_fleurs
from .manifest import load_manifest
from .toy import build_toy_corpus

logger = logging.getLogger(__name__)
TRANSCRIPT_STAGES = ("align", "asr")  # stages that need transcripts only (the others need translations too)


def _directions(data_args: DataArguments) -> list[tuple[str, str]]:
    if data_args.directions == ["all"]:
        return [(s, t) for s in data_args.languages for t in data_args.languages if s != t]
    pairs = []
    for direction in data_args.directions:
        source, _, target = direction.partition("-")
        if not target:
            raise ValueError(f"Bad direction {direction!r}: write SOURCE-TARGET, e.g. eng-deu.")
        pairs.append((source, target))
    if not pairs:
        raise ValueError(f"--dataset {data_args.dataset} needs --directions, e.g. eng-deu deu-eng.")
    return pairs


def _concatenate(parts: list):
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], datasets.IterableDataset):
        return datasets.interleave_datasets(parts, stopping_strategy="all_exhausted")
    return datasets.concatenate_datasets(parts)


def load_stage_examples(data_args: DataArguments, stage: str, output_dir: str, split: str | None = None):
    """Examples for `stage` (`align`/`asr` need transcripts; `smt`/`srt` need translations), or None without data.

    Rows without a translation are removed from the translation stages, and the count is logged.
    """
    split = split or data_args.train_split
    training = split == data_args.train_split
    kind = data_args.dataset
    if kind == "demo":
        from .demo_corpus import VOICES, build_demo_corpus

        languages = [code for code in data_args.languages if code in VOICES]
        manifests = build_demo_corpus(data_args.dataset_path or Path(output_dir) / "demo-data", languages=languages,
                                      **data_args.demo_corpus_options())
        if split not in manifests:
            raise ValueError(f"The demo corpus has the splits {sorted(manifests)}, not {split!r}.")
        examples = load_manifest(manifests[split], streaming=data_args.streaming)
    elif kind in ("manifest", "toy"):
        if kind == "toy":
            manifest = build_toy_corpus(Path(output_dir) / "toy-data")
        elif training:
            manifest = (data_args.asr_manifest if stage in TRANSCRIPT_STAGES else None) or data_args.train_manifest
        else:
            manifest = data_args.eval_manifest
        if manifest is None:
            if training:
                raise ValueError("--dataset manifest needs --train_manifest (a JSONL or CSV file).")
            return None
        examples = load_manifest(manifest, streaming=data_args.streaming, skip_invalid=data_args.skip_invalid_rows)
    elif kind == "fleurs":
        path = data_args.dataset_path or "google/fleurs"
        if stage in TRANSCRIPT_STAGES:
            sources = dict.fromkeys(source for source, _ in _directions(data_args))
            parts = [load_fleurs(source, None, split, path, data_args.streaming) for source in sources]
        else:
            parts = [load_fleurs(s, t, split, path, data_args.streaming) for s, t in _directions(data_args)]
        examples = _concatenate(parts)
    elif kind == "covost2":
        path = data_args.dataset_path or "facebook/covost2"
        parts = [
            load_covost2(s, t, split, path, data_args.data_dir, data_args.streaming)
            for s, t in _directions(data_args)
        ]
        examples = _concatenate(parts)
    elif kind == "common_voice":
        if stage not in TRANSCRIPT_STAGES:
            raise ValueError("Common Voice has transcripts only: use it for the asr stage (--asr_manifest or a "
                             "translation source for smt/srt).")
        path = data_args.dataset_path or "mozilla-foundation/common_voice_17_0"
        sources = dict.fromkeys(source for source, _ in _directions(data_args))
        examples = _concatenate([load_common_voice(source, split, path, data_args.streaming) for source in sources])
    else:
        raise ValueError(
            f"Unknown --dataset {kind!r}: use manifest, fleurs, covost2, common_voice, demo or toy."
        )
    if stage not in TRANSCRIPT_STAGES:
        examples = _keep_translations(examples)
    if training and data_args.max_train_samples:
        if isinstance(examples, datasets.IterableDataset):
            examples = examples.take(data_args.max_train_samples)
        else:
            examples = examples.select(range(min(data_args.max_train_samples, len(examples))))
    return examples


def _keep_translations(examples):
    kept = examples.filter(lambda translation: bool(translation), input_columns=["translation"])
    if isinstance(examples, datasets.Dataset) and len(kept) < len(examples):
        logger.warning(
            "Translation stage: %d of %d examples have no translation and are left out.",
            len(examples) - len(kept),
            len(examples),
        )
    return kept


def example_texts(examples) -> list[str]:
    """Transcripts and translations of a (non-streamed) dataset, e.g. to train a tiny model's tokenizer."""
    if isinstance(examples, datasets.IterableDataset):
        raise ValueError("A tiny model needs a non-streamed dataset to train its tokenizer on.")
    texts = examples.select_columns(["transcript", "translation"])
    return [text for row in texts for text in row.values() if text]
