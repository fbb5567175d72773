"""Curriculum training of LLM-SRT over transformers' Trainer."""

from .arguments import PAPER_STAGE_SETTINGS, STAGES, CurriculumArguments, DataArguments, ModelArguments
from .curriculum import push_final_stage, run_curriculum, run_stage
from .recipes import parse_train_args
from .trainer import LLMSRTTrainer


def main(argv: list[str] | None = None) -> dict:
    """Entry point of `train.py`."""
    import logging
    import sys

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    model_args, data_args, curriculum_args, training_args, settings = parse_train_args(
        sys.argv[1:] if argv is None else argv
    )
    finished = run_curriculum(model_args, data_args, curriculum_args, training_args, settings)
    if training_args.push_to_hub and training_args.should_save:
        push_final_stage(finished[list(finished)[-1]], training_args)
    return finished


__all__ = [
    "PAPER_STAGE_SETTINGS",
    "STAGES",
    "CurriculumArguments",
    "DataArguments",
    "LLMSRTTrainer",
    "ModelArguments",
    "main",
    "parse_train_args",
    "run_curriculum",
    "run_stage",
]
