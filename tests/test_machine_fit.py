"""The demo's fit to the machine: from the probe's time here and on the reference machine, the share of the
recipe's steps that keeps the projected demo within its budget."""

import pytest

from llmsrt.demo.machine_fit import (
    MARGIN,
    MIN_STEP_SCALE,
    SpeedReference,
    fit_to_machine,
    probe_overrides,
    scaled_stage_settings,
)
from llmsrt.training.recipes import parse_train_args

REFERENCE = SpeedReference(machine="reference", probe_seconds=50, training_seconds=1100, evaluation_seconds=400)
STAGES = {"align": {"train": ["adapter"], "max_steps": 900, "warmup_steps": 30},
          "asr": {"train": ["lora"], "max_steps": 40, "warmup_steps": 2},
          "smt": {"train": ["lora"], "max_steps": 12, "warmup_steps": 1},
          "srt": {"train": ["lora"], "max_steps": 32, "warmup_steps": 2}}
ORDER = list(STAGES)


def test_the_reference_machine_keeps_the_recipe_steps():
    fit = fit_to_machine(REFERENCE, 50, elapsed_seconds=300, budget_minutes=45, stage_settings=STAGES, stages=ORDER)
    assert fit.speed_factor == 1.0 and fit.step_scale == 1.0
    assert fit.projected_seconds == 300 + 1100 + 400
    assert all(row["fitted"] == row["recipe"] for row in fit.steps.values())


def test_a_slower_machine_trains_fewer_steps_and_keeps_the_evaluations():
    """Twice as slow: at the recipe's steps 3,600 s + 300 s of setup are projected, past 45 minutes; the fitted
    steps bring the projection within the budget less its margin, evaluations unchanged."""
    fit = fit_to_machine(REFERENCE, 100, elapsed_seconds=300, budget_minutes=45, stage_settings=STAGES, stages=ORDER)
    assert fit.speed_factor == 2.0 and fit.projected_seconds == 300 + 2 * 1500
    assert MIN_STEP_SCALE <= fit.step_scale < 1
    assert fit.fitted_projected_seconds <= 45 * 60 * (1 - MARGIN)
    assert fit.fitted_projected_seconds == pytest.approx(300 + 2 * (1100 * fit.step_scale + 400))
    assert fit.steps["align"] == {"recipe": 900, "fitted": round(900 * fit.step_scale)}
    assert all(1 <= row["fitted"] < row["recipe"] for row in fit.steps.values())
    assert "2.00x" in fit.note


def test_a_machine_too_slow_for_the_budget_is_reported_not_hidden():
    fit = fit_to_machine(REFERENCE, 200, elapsed_seconds=300, budget_minutes=45, stage_settings=STAGES, stages=ORDER)
    assert fit.step_scale == MIN_STEP_SCALE and fit.fitted_projected_seconds > 45 * 60
    assert "past 45 minutes" in fit.note


def test_scaled_settings_round_and_keep_at_least_one_step():
    fitted = scaled_stage_settings(STAGES, 0.02)
    assert fitted["align"]["max_steps"] == 18 and fitted["smt"]["max_steps"] == 1 and fitted["smt"]["warmup_steps"] == 1
    assert fitted["asr"]["train"] == ["lora"] and STAGES["align"]["max_steps"] == 900  # the input is left as it was


def test_bad_probe_times_are_refused():
    with pytest.raises(ValueError, match="positive, got 0"):
        fit_to_machine(REFERENCE, 0, 300, 45, STAGES, ORDER)


def test_the_probe_flags_parse_into_a_short_align_and_srt_run(tmp_path):
    """The probe runs the demo's own recipe through train.py's parser: only the stages, steps and folders change."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("tiny_model: true\ndataset: toy\nstages:\n  align: {max_steps: 900, warmup_steps: 30}\n"
                      "  srt: {max_steps: 32, learning_rate: 1.0e-3}\n", encoding="utf-8")
    _, _, curriculum, training, settings = parse_train_args([str(recipe), *probe_overrides(tmp_path / "probe")])
    assert list(curriculum.curriculum_stages) == ["align", "srt"]
    assert training.output_dir == str(tmp_path / "probe")
    assert curriculum.encoder_cache_dir == str(tmp_path / "probe" / "encoder-cache")
    assert settings["align"]["max_steps"] == 4 and settings["srt"]["max_steps"] == 2
    assert settings["align"]["warmup_steps"] == 0 and settings["srt"]["learning_rate"] == 1.0e-3
