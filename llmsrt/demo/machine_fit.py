"""Fitting the demo's training to the machine it runs on.

The recipe's step counts were timed on one machine (`SpeedReference`: its name, and how long the speed probe, the
training and the evaluations took there). Before training, the demo runs the probe here: a few steps of its own
training code (align and SRT, through the Trainer, from the pretrained parts), timed from the start of the process
that runs them to their finished stage folders. The probe's time over the reference's gives this machine's
`speed_factor`; the demo's remaining parts are projected at that factor. When the projection (the time spent so far,
the training and the evaluations) passes the time budget, every stage trains for the same share of its recipe steps
(`step_scale`), chosen so that the projected whole fits: the evaluations (what the report verifies: the same test
clips, the same dev clips, the same three systems) are never cut. The fit is written to `OUTPUT/machine_fit.json`,
reused as it is when the demo resumes, and reported.

The projection assumes that the probe, the training and the evaluations slow down alike on a slower machine: they
run the same model's matrix products on the same cores. It is checked after the run: the report sets the measured
times beside the projected ones.
"""

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PROBE_STEPS = {"align": 4, "srt": 2}
MIN_STEP_SCALE = 0.5  # below half the recipe's steps, the fit gives up on the budget rather than on the training
MARGIN = 0.05  # of the budget, kept for what the projection misses


@dataclass
class SpeedReference:
    """Where the recipe's steps were timed, and how long each kind of work took there (seconds)."""

    machine: str
    probe_seconds: float
    training_seconds: float  # the curriculum and the SRT-only baseline
    evaluation_seconds: float  # the dev learning curve and the three systems' test evaluations


@dataclass
class MachineFit:
    """The speed measured here and the step counts it leads to."""

    reference: dict
    probe_seconds: float
    speed_factor: float  # probe here / probe on the reference machine (2.0: this machine takes twice as long)
    elapsed_seconds: float  # spent before training (setup, models, corpus, probe)
    budget_seconds: float
    projected_seconds: float  # the whole demo at the recipe's steps
    fitted_projected_seconds: float  # the whole demo at the fitted steps
    step_scale: float  # 1.0: the recipe's steps
    steps: dict  # stage -> {"recipe": N, "fitted": M}
    note: str

    def as_dict(self) -> dict:
        return asdict(self)


def _scaled(value, scale: float) -> int:
    value = int(value)
    return value if value <= 0 else max(1, math.floor(value * scale + 0.5))


def scaled_stage_settings(stage_settings: dict[str, dict], scale: float) -> dict[str, dict]:
    """Each stage's settings with `max_steps` and `warmup_steps` times `scale` (rounded, at least 1 where set)."""
    fitted = {}
    for stage, settings in stage_settings.items():
        fitted[stage] = dict(settings)
        for name in ("max_steps", "warmup_steps"):
            if name in settings:
                fitted[stage][name] = _scaled(settings[name], scale)
    return fitted


def fit_to_machine(reference: SpeedReference, probe_seconds: float, elapsed_seconds: float, budget_minutes: float,
                   stage_settings: dict[str, dict], stages: list[str]) -> MachineFit:
    """The share of the recipe's steps that fits the budget at this machine's measured speed.

    Projected total = elapsed + factor * (training * scale + evaluation), with factor = probe / reference probe.
    The largest scale <= 1 whose projection stays within the budget (less `MARGIN`) is taken, down to
    `MIN_STEP_SCALE`; below that the budget is reported as missed.
    """
    if probe_seconds <= 0 or reference.probe_seconds <= 0:
        raise ValueError(f"Probe times must be positive, got {probe_seconds} here and {reference.probe_seconds} on "
                         f"{reference.machine}.")
    factor = probe_seconds / reference.probe_seconds
    budget = budget_minutes * 60
    training, evaluation = factor * reference.training_seconds, factor * reference.evaluation_seconds
    projected = elapsed_seconds + training + evaluation
    room = budget * (1 - MARGIN) - elapsed_seconds - evaluation
    scale = 1.0 if projected <= budget * (1 - MARGIN) else max(0.0, room / training)
    if scale >= 1.0:
        scale, note = 1.0, "the recipe's steps fit the budget on this machine"
    elif scale >= MIN_STEP_SCALE:
        scale = math.floor(scale * 100) / 100
        note = (f"this machine measured {factor:.2f}x the reference's probe time: every stage trains "
                f"{scale:.0%} of its recipe steps so that the demo fits {budget_minutes:g} minutes")
    else:
        note = (f"this machine measured {factor:.2f}x the reference's probe time: even at {MIN_STEP_SCALE:.0%} of "
                f"the recipe steps (the least the fit trains) the demo is projected past {budget_minutes:g} minutes")
        scale = MIN_STEP_SCALE
    fitted = scaled_stage_settings(stage_settings, scale)
    steps = {stage: {"recipe": int(stage_settings[stage].get("max_steps", 0)),
                     "fitted": int(fitted[stage].get("max_steps", 0))} for stage in stages}
    return MachineFit(reference=asdict(reference), probe_seconds=round(probe_seconds, 1), speed_factor=round(factor, 3),
                      elapsed_seconds=round(elapsed_seconds, 1), budget_seconds=budget,
                      projected_seconds=round(projected, 1),
                      fitted_projected_seconds=round(elapsed_seconds + training * scale + evaluation, 1),
                      step_scale=scale, steps=steps, note=note)


def probe_overrides(probe_dir: Path) -> list[str]:
    """`train.py` flags that turn the demo recipe into the probe: the align and SRT stages for `PROBE_STEPS` steps
    each, from the pretrained parts, without a warm-up, into `probe_dir` (its own encoder cache: the demo's stays
    as it was)."""
    overrides = [f"{stage}.{name}={value}" for stage, steps in PROBE_STEPS.items()
                 for name, value in (("max_steps", steps), ("warmup_steps", 0))]
    return ["--output_dir", str(probe_dir), "--curriculum_stages", *PROBE_STEPS,
            "--encoder_cache_dir", str(probe_dir / "encoder-cache"), "--stage_overrides", *overrides]


def run_probe(train, probe_dir: Path) -> float:
    """Time `train(flags)` (the demo's curriculum runner, given `probe_overrides`); returns seconds."""
    started = time.time()
    train(probe_overrides(probe_dir))
    return time.time() - started


def load_fit(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
