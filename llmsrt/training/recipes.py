"""YAML recipes + command-line overrides -> argument dataclasses and per-stage settings."""

import copy
from pathlib import Path

import yaml
from transformers import HfArgumentParser, TrainingArguments

from ..data.arguments import recipe_argv
from .arguments import (
    PAPER_STAGE_SETTINGS,
    STAGES,
    TRAINABLE_PARTS,
    CurriculumArguments,
    DataArguments,
    ModelArguments,
)


def _scalar(text: str):
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def stage_settings(recipe_stages: dict | None, overrides: list[str]) -> dict[str, dict]:
    """The settings of each stage: the paper's, updated by the recipe's `stages:` block, then by overrides."""
    settings = copy.deepcopy(PAPER_STAGE_SETTINGS)
    for stage, values in (recipe_stages or {}).items():
        if stage not in STAGES:
            raise ValueError(f"Recipe stage {stage!r} is not one of {', '.join(STAGES)}.")
        settings[stage].update(values or {})
    for override in overrides:
        key, _, value = override.partition("=")
        stage, _, name = key.partition(".")
        if stage not in STAGES or not name or not _:
            raise ValueError(f"Bad stage override {override!r}: write STAGE.FIELD=VALUE, e.g. srt.learning_rate=2e-4.")
        settings[stage][name] = value.split(",") if name == "train" else _scalar(value)
    for stage, values in settings.items():
        parts = [values["train"]] if isinstance(values["train"], str) else list(values["train"])
        unknown = set(parts) - set(TRAINABLE_PARTS)
        if unknown:
            raise ValueError(f"Stage {stage}: unknown trainable part(s) {sorted(unknown)}; use {TRAINABLE_PARTS}.")
        values["train"] = parts
    if settings["align"]["train"] != ["adapter"]:
        raise ValueError(
            f"The align stage trains the adapter only (train: [adapter]), got {settings['align']['train']}.")
    return settings


def parse_train_args(argv: list[str]):
    """`train.py [RECIPE.yaml] [--flag value ...]`: flags given on the command line win over the recipe."""
    recipe: dict = {}
    if argv and argv[0].endswith((".yaml", ".yml")):
        recipe = yaml.safe_load(Path(argv[0]).read_text(encoding="utf-8")) or {}
        argv = argv[1:]
    recipe_stages = recipe.pop("stages", None)
    recipe.pop("demo", None)  # settings of `python -m llmsrt.demo` (evaluation of the demo), not of training
    recipe.pop("plan", None)  # shapes and text lengths for `llmsrt-plan` (llmsrt.training.planner)
    parser = HfArgumentParser((ModelArguments, DataArguments, CurriculumArguments, TrainingArguments))
    model_args, data_args, curriculum_args, training_args = parser.parse_args_into_dataclasses(
        args=recipe_argv(recipe) + list(argv)
    )
    settings = stage_settings(recipe_stages, curriculum_args.stage_overrides)
    return model_args, data_args, curriculum_args, training_args, settings
