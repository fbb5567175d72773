"""The three-stage curriculum (ASR -> SMT -> SRT): each stage starts from the previous stage's final weights.

Layout under `OUTPUT_DIR`:
    <stage>/                   `save_pretrained` folder: model (LoRA merged), processor, code,
                               trainer_state.json, loss.png, stage_info.json; written atomically. Complete, or
                               with `--stage_folders changed` only what differs from the pretrained parts
    checkpoints/<stage>/       the Trainer's checkpoint-N folders (atomic, see `LLMSRTTrainer`)
"""

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

import datasets
from transformers import TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from ..data import AlignmentCollator, CurriculumCollator
from ..data.stage_data import StageData, example_texts, load_stage_data, stage_languages
from ..data.streaming import TrainingStream
from ..encoder_cache import fingerprint
from ..lora import merge_lora
from .alignment import match_embedding_scale, prepare_alignment, unwrap_alignment
from .arguments import CurriculumArguments, DataArguments, ModelArguments
from .audio_gain_info import audio_gain_info
from .language_id import train_language_id_head
from .model_setup import (
    apply_lora_settings,
    build_initial_model,
    configure_trainable,
    load_model,
    start_new_processor,
    trainable_parameter_names,
)
from .plots import save_loss_plot
from .trainer import LLMSRTTrainer, publish_directory

logger = logging.getLogger(__name__)
STAGE_INFO = "stage_info.json"


def is_complete(stage_dir: Path) -> bool:
    return (stage_dir / STAGE_INFO).is_file()


def stage_training_arguments(base: TrainingArguments, stage: str, settings: dict, output_dir: Path):
    """The stage's `TrainingArguments`: the shared ones, with this stage's settings (`learning_rate`, ...)."""
    overrides = {name: value for name, value in settings.items() if name != "train"}
    unknown = set(overrides) - {f.name for f in dataclasses.fields(TrainingArguments)}
    if unknown:
        raise ValueError(f"Stage {stage}: {sorted(unknown)} are not TrainingArguments fields.")
    return dataclasses.replace(
        base,
        output_dir=str(output_dir / "checkpoints" / stage),
        push_to_hub=False,  # the finished curriculum is exported and pushed once, with its model card
        remove_unused_columns=False,
        **overrides,
    )


def resume_point(training_args: TrainingArguments, stage_args: TrainingArguments, single_stage: bool) -> str | None:
    """`--resume_from_checkpoint true` resumes each unfinished stage from its last complete checkpoint; a path
    resumes the (single) stage being run from that checkpoint."""
    requested = training_args.resume_from_checkpoint
    if not requested or str(requested).lower() == "false":
        return None
    if str(requested).lower() == "true":
        folder = Path(stage_args.output_dir)
        return get_last_checkpoint(str(folder)) if folder.is_dir() else None
    if not single_stage:
        raise ValueError("A checkpoint path in --resume_from_checkpoint needs --stage STAGE; use 'true' with all.")
    return requested


def run_stage(
    stage: str,
    model,
    processor,
    settings: dict,
    data_args: DataArguments,
    curriculum_args: CurriculumArguments,
    training_args: TrainingArguments,
    single_stage: bool,
    train_data: StageData | None = None,
) -> Path:
    """Train one stage and write `OUTPUT_DIR/<stage>/`. Returns that folder.

    `stage_info.json` records, under `data`, what loading the training examples kept, cut and left out
    (`DataReport.as_dict`: examples, by_direction, audio_seconds, trimmed, skipped).
    """
    output_dir = Path(training_args.output_dir)
    stage_args = stage_training_arguments(training_args, stage, settings, output_dir)
    started = time.time()
    initial_fingerprint = fingerprint(model)
    encoder_cache_dir = curriculum_args.encoder_cache_dir
    with model.using_encoder_cache(model.disk_encoder_cache(encoder_cache_dir) if encoder_cache_dir else None):
        model = configure_trainable(model, settings["train"])
        with training_args.main_process_first(desc=f"{stage} data"):
            train_data = train_data or load_stage_data(data_args, stage, str(output_dir))
            train_examples = train_data.examples
            eval_examples = None
            if data_args.eval_split or data_args.eval_manifest:
                eval_examples = load_stage_data(data_args, stage, str(output_dir),
                                                split=data_args.eval_split or "eval").examples
        stage_notes = {"data": train_data.report.as_dict() if train_data.report.counted else
                       {"streamed": train_data.report.summary()}}
        # The folder records every language it was trained with: the earlier stages' (or the starting folder's) and
        # this stage's; the processor refuses prompts in any other.
        trained = stage_languages(data_args, stage, train_examples)
        processor.languages = list(dict.fromkeys([*processor.prompt_builder.model_languages, *trained]))
        if stage == "align":
            # The head writes the training transcripts' tokens through the LLM's frozen input embeddings; the audio
            # gain after the stage is measured on the ASR task (the frozen LLM reading the aligned adapter).
            model, stage_notes = prepare_alignment(model, processor.tokenizer, train_examples,
                                                   curriculum_args.align_loss)
            train_collator, collator = AlignmentCollator(processor), CurriculumCollator(processor, task="asr")
        else:
            collator = CurriculumCollator(
                processor, task=stage, smt_share=curriculum_args.smt_share if stage == "srt" else 0.0,
                seed=stage_args.seed,
            )
            train_collator = collator
        trainer = LLMSRTTrainer(
            model=model,
            args=stage_args,
            train_dataset=training_examples(train_examples, data_args, stage_args),
            eval_dataset=eval_examples,
            data_collator=train_collator,
            processing_class=processor,
        )
        trainable = trainable_parameter_names(model)
        logger.info("Stage %s trains %d tensors (%s)", stage, len(trainable), ", ".join(settings["train"]))
        resume_from = resume_point(training_args, stage_args, single_stage)
        trainer.train(resume_from_checkpoint=resume_from)
        final_model = merge_lora(unwrap_alignment(trainer.trained_model()))
    final_model.encoder_cache = None  # the block's cache ends with it (FSDP's gathered copy was made inside it)
    if curriculum_args.language_id_head and final_model.language_id_head is None:
        # later stages inherit the head from this stage's folder
        stage_notes["language_id"] = train_language_id_head(
            final_model, processor, train_examples, eval_examples, curriculum_args.encoder_cache_dir,
            stage_args.per_device_eval_batch_size,
        )
    final_dir = output_dir / stage
    if stage == "align" and curriculum_args.align_output_scale == "embedding":
        unscaled = audio_gain_info("align (before scaling)", final_model, collator, eval_examples,
                                   stage_args.per_device_eval_batch_size)
        stage_notes["output_scale_factor"] = match_embedding_scale(final_model)
        stage_notes.update({f"{key}_before_output_scale": value for key, value in unscaled.items()})
    gain = audio_gain_info(stage, final_model, collator, eval_examples, stage_args.per_device_eval_batch_size)
    if stage_args.should_save:
        info = {
            "stage": stage,
            "trained_parts": settings["train"],
            "trainable_parameters": trainable,
            "initial_fingerprint": initial_fingerprint,
            "final_fingerprint": fingerprint(final_model),
            "global_step": trainer.state.global_step,
            "resumed_from": resume_from,
            "train_seconds": round(time.time() - started, 2),
            "settings": {k: v for k, v in settings.items()},
            **stage_notes,
        }
        info.update(gain)
        save_stage_folder(final_model, processor, trainer, final_dir, info,
                          changed_only=curriculum_args.stage_folders == "changed")
    trainer.accelerator.wait_for_everyone()
    return final_dir


def training_examples(examples, data_args: DataArguments, stage_args: TrainingArguments):
    """What the Trainer reads: a materialised dataset as it is; a stream as a `TrainingStream` (shuffled passes,
    resumed at the same example), which needs `max_steps`."""
    if not isinstance(examples, datasets.IterableDataset):
        return examples
    if stage_args.max_steps is None or stage_args.max_steps <= 0:
        raise ValueError("A streamed corpus (--streaming true) has no length: give the stage --max_steps N (or "
                         "STAGE.max_steps=N in --stage_overrides / the recipe's stages: block).")
    return TrainingStream(examples, seed=stage_args.seed, buffer_size=data_args.shuffle_buffer_size,
                          batch_size=stage_args.per_device_train_batch_size * stage_args.world_size)


def save_stage_folder(model, processor, trainer, final_dir: Path, info: dict, changed_only: bool = False) -> None:
    """Write the stage's folder under a staging name, then rename it into place (atomic). With `changed_only`, the
    folder holds only the tensors that differ from the pretrained parts (`save_pretrained(changed_only=True)`)."""
    staged = final_dir.with_name(final_dir.name + ".staging")
    shutil.rmtree(staged, ignore_errors=True)
    model.save_pretrained(staged, changed_only=changed_only)
    processor.save_pretrained(staged)
    trainer.state.save_to_json(str(staged / "trainer_state.json"))
    save_loss_plot(trainer.state.log_history, staged / "loss.png", f"LLM-SRT {info['stage'].upper()} stage")
    (staged / STAGE_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
    publish_directory(str(staged), str(final_dir))


def run_curriculum(
    model_args: ModelArguments,
    data_args: DataArguments,
    curriculum_args: CurriculumArguments,
    training_args: TrainingArguments,
    settings: dict[str, dict],
) -> dict[str, Path]:
    """Run `curriculum_args.stage` (or all three stages in order). Returns the finished stage folders."""
    output_dir = Path(training_args.output_dir)
    curriculum = list(curriculum_args.curriculum_stages)
    stages = curriculum if curriculum_args.stage == "all" else [curriculum_args.stage]
    single_stage = len(stages) == 1
    # A resumed run of the whole curriculum (even a one-stage one, like the SRT-only baseline) keeps finished stages;
    # a stage named with --stage is run again.
    skip_finished = bool(training_args.resume_from_checkpoint) and curriculum_args.stage == "all"
    finished: dict[str, Path] = {}
    for stage in stages:
        stage_dir = output_dir / stage
        if skip_finished and is_complete(stage_dir):
            logger.info("Stage %s is complete in %s: skipped.", stage, stage_dir)
            finished[stage] = stage_dir
            continue
        set_seed(training_args.seed)
        position = curriculum.index(stage)
        previous = curriculum[position - 1] if position else None
        train_data = None
        if previous and is_complete(output_dir / previous):
            model, processor = load_model(str(output_dir / previous))
        elif previous and model_args.model_name_or_path is None:
            raise ValueError(
                f"Stage {stage} starts from the {previous} stage, but {output_dir / previous} is missing: run "
                f"--stage {previous} first, or pass --model_name_or_path."
            )
        else:
            if model_args.tiny_model and not model_args.model_name_or_path:
                with training_args.main_process_first(desc="tokenizer data"):
                    train_data = load_stage_data(data_args, stage, str(output_dir))
            model, processor = build_initial_model(
                model_args, example_texts(train_data.examples) if train_data is not None else None
            )
            if not model_args.model_name_or_path:
                start_new_processor(processor, model_args)
        apply_lora_settings(model, model_args)
        finished[stage] = run_stage(
            stage, model, processor, settings[stage], data_args, curriculum_args, training_args, single_stage,
            train_data,
        )
    return finished


def push_final_stage(stage_dir: Path, training_args: TrainingArguments) -> str:
    """`--push_to_hub`: export the last stage (LoRA merged, code, model card) and upload it to `--hub_model_id`
    (`--hub_private_repo` and `--hub_revision` honoured)."""
    from ..hub import export_model, push_folder

    repo_id = training_args.hub_model_id
    if not repo_id:
        raise ValueError("--push_to_hub needs --hub_model_id (e.g. user/llmsrt-demo).")
    folder = export_model(stage_dir, Path(training_args.output_dir) / "export", repo_id=repo_id)
    return push_folder(folder, repo_id, private=bool(training_args.hub_private_repo),
                       revision=training_args.hub_revision, token=training_args.hub_token)
