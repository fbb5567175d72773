"""Curriculum training of LLM-SRT over transformers' Trainer."""

from .arguments import PAPER_STAGE_SETTINGS, STAGES, CurriculumArguments, DataArguments, ModelArguments
from .curriculum import run_curriculum, run_stage
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
    return run_curriculum(model_args, data_args, curriculum_args, training_args, settings)


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
