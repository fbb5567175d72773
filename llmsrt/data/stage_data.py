"""The training (and evaluation) examples of each curriculum stage, from the configured source, and what loading
them kept, cut and left out (`DataReport`: logged, and written into the stage's `stage_info.json`)."""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from ..languages import check_languages
from .arguments import DATASETS, DataArguments
from .clips import check_clips
from .common_voice import load_common_voice
from .covost2 import covost_directions_among, covost_locales, load_covost2
from .directions import directions_among, filter_directions
from .fleurs import load_fleurs
from .loading_report import DataReport, direction_key
from .manifest import load_manifest
from .toy import build_toy_corpus

logger = logging.getLogger(__name__)
TRANSCRIPT_STAGES = ("align", "asr")  # stages that need transcripts only (the others need translations too)
NO_TRANSLATION = "no translation"


@dataclass
class StageData:
    """A stage's examples (None: no data for this split) and the counts of what loading them kept and left out."""

    examples: datasets.Dataset | datasets.IterableDataset | None
    report: DataReport = field(default_factory=DataReport)


def _filters(data_args: DataArguments) -> tuple:
    return data_args.source_languages, data_args.target_languages, data_args.centre_languages


def _directions(data_args: DataArguments) -> list[tuple[str, str]]:
    if data_args.directions == ["all"]:
        if data_args.dataset == "covost2":
            return filter_directions(covost_directions_among(data_args.languages), *_filters(data_args))
        return directions_among(data_args.languages, *_filters(data_args))
    pairs = []
    for direction in data_args.directions:
        source, _, target = direction.partition("-")
        if not target:
            raise ValueError(f"Bad direction {direction!r}: write SOURCE-TARGET, e.g. eng-deu.")
        if data_args.dataset == "covost2":
            covost_locales(source, target)  # a direction CoVoST-2 lacks: ValueError listing those it has
        pairs.append((source, target))
    if not pairs:
        raise ValueError(f"--dataset {data_args.dataset} needs --directions, e.g. eng-deu deu-eng (or all).")
    return filter_directions(pairs, *_filters(data_args))


def _sources(data_args: DataArguments) -> list[str]:
    """The languages whose transcripts a transcript stage reads: --languages for `all`, else the directions'."""
    if data_args.directions == ["all"] and data_args.dataset != "covost2" and not any(_filters(data_args)):
        return list(dict.fromkeys(data_args.languages))
    return list(dict.fromkeys(source for source, _ in _directions(data_args)))


def _concatenate(parts: list):
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], datasets.IterableDataset):
        return datasets.interleave_datasets(parts, stopping_strategy="all_exhausted")
    return datasets.concatenate_datasets(parts)


def load_stage_examples(data_args: DataArguments, stage: str, output_dir: str, split: str | None = None):
    """The examples of `load_stage_data`, without its report."""
    return load_stage_data(data_args, stage, output_dir, split).examples


def load_stage_data(data_args: DataArguments, stage: str, output_dir: str, split: str | None = None) -> StageData:
    """Examples for `stage` (`align`/`asr` need transcripts; `smt`/`srt` need translations), checked clip by clip.

    Rows without a translation are left out of the translation stages; `--max_train_samples` keeps the first N
    training rows; then every clip's header is read (`check_clips`: unreadable clips and, with `--long_audio skip`,
    clips longer than the encoder window are left out; longer clips are otherwise cut to it when decoded). All of it
    is counted in the returned report, which is also logged.
    """
    split = split or data_args.train_split
    training = split == data_args.train_split
    report = DataReport()
    examples = _source_examples(data_args, stage, output_dir, split, training, report)
    if examples is None:
        return StageData(None, report)
    if stage not in TRANSCRIPT_STAGES:
        examples = _keep_translations(examples, report)
    if training and data_args.max_train_samples:
        if isinstance(examples, datasets.IterableDataset):
            examples = examples.take(data_args.max_train_samples)
        else:
            examples = examples.select(range(min(data_args.max_train_samples, len(examples))))
    examples = check_clips(examples, report, data_args.long_audio, data_args.skip_invalid_rows)
    logger.info("%s data (%s, split %s): %s", stage, data_args.dataset, split, report.summary())
    return StageData(examples, report)


def _source_examples(data_args: DataArguments, stage: str, output_dir: str, split: str, training: bool,
                     report: DataReport):
    kind = data_args.dataset
    if kind in ("manifest", "toy"):
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
        return load_manifest(manifest, streaming=data_args.streaming, skip_invalid=data_args.skip_invalid_rows)
    streaming = data_args.streaming
    if kind == "fleurs":
        if stage in TRANSCRIPT_STAGES:
            parts = [load_fleurs(source, None, split, data_args.dataset_path, streaming)
                     for source in _sources(data_args)]
        else:
            parts = [load_fleurs(s, t, split, data_args.dataset_path, streaming) for s, t in _directions(data_args)]
        return _concatenate(parts)
    if kind == "covost2":
        directions = _directions(data_args)
        if not directions:
            raise ValueError(f"None of --languages {' '.join(data_args.languages)} pairs into a CoVoST-2 direction "
                             "(21 into English, 15 out of it): name them with --directions.")
        if stage in TRANSCRIPT_STAGES:  # the first direction of each source language: its clips and transcripts
            first = {}
            for source, target in directions:
                first.setdefault(source, (source, target))
            directions = list(first.values())
        return _concatenate([
            load_covost2(s, t, split, data_args.dataset_path, data_args.data_dir, streaming, report)
            for s, t in directions
        ])
    if kind == "common_voice":
        if stage not in TRANSCRIPT_STAGES:
            raise ValueError("Common Voice has transcripts only: use it for the align and asr stages (a translation "
                             "source, fleurs or covost2, for smt/srt).")
        return _concatenate([load_common_voice(source, split, data_args.data_dir, streaming, report)
                             for source in _sources(data_args)])
    raise ValueError(f"Unknown --dataset {kind!r}: use {', '.join(DATASETS)}.")


def _keep_translations(examples, report: DataReport):
    if isinstance(examples, datasets.IterableDataset):
        return examples.filter(lambda translation: bool(translation), input_columns=["translation"])
    has_translation = [bool(text) for text in examples["translation"]]
    if all(has_translation):
        return examples
    for src_lang, kept in zip(examples["src_lang"], has_translation):
        if not kept:
            report.skip(direction_key(src_lang, None), NO_TRANSLATION)
    logger.warning("Translation stage: %d of %d examples have no translation and are left out.",
                   has_translation.count(False), len(has_translation))
    return examples.select([row for row, kept in enumerate(has_translation) if kept])


def stage_languages(data_args: DataArguments, stage: str, examples) -> list[str]:
    """The languages a stage trains with (registry codes): those of its examples (sources, and targets in a
    translation stage); for streamed examples, those the arguments name (--directions, or --languages for a
    manifest)."""
    if isinstance(examples, datasets.Dataset):
        codes = examples.unique("src_lang") + ([] if stage in TRANSCRIPT_STAGES else examples.unique("tgt_lang"))
    elif data_args.dataset in ("manifest", "toy"):
        codes = list(data_args.languages)
    elif stage in TRANSCRIPT_STAGES:
        codes = _sources(data_args)
    else:
        codes = [code for pair in _directions(data_args) for code in pair]
    return list(check_languages([code for code in codes if code]))


def example_texts(examples) -> list[str]:
    """Transcripts and translations of a (non-streamed) dataset, e.g. to train a tiny model's tokenizer."""
    if isinstance(examples, datasets.IterableDataset):
        raise ValueError("A tiny model needs a non-streamed dataset to train its tokenizer on.")
    texts = examples.select_columns(["transcript", "translation"])
    return [text for row in texts for text in row.values() if text]
