"""The demo's report folder: `summary.json` (average BLEU of each system, overall and per direction, timings),
`README.md` (tables, verdict, example translations, plots), loss plots and each system's evaluation folder."""

import json
import shutil
from pathlib import Path

from ..evaluation.result_tables import matrix_markdown

SYSTEM_NAMES = {
    "curriculum": "LLM-SRT curriculum (ASR -> SMT -> SRT, after the align stage when the recipe has it)",
    "srt-only": "SRT only, same start and training budget",
    "cascade": "cascade: Whisper-base transcribes, the LLM translates (zero-shot)",
}

# The curriculum model's audio gain on the test clips that `make demo` aims at (issue 10); a recipe's
# `demo: {audio_gain_target: ...}` sets its own (demo-long: +50%).
AUDIO_GAIN_TARGET = 0.20


def _average(results: dict, metric: str) -> float | None:
    return results["averages"].get(metric, {}).get("all")


def _asr_average(results: dict) -> float | None:
    rates = [scores["asr_error_rate"] for scores in results["directions"].values()
             if scores["asr_error_rate"] is not None]
    return sum(rates) / len(rates) if rates else None


def _fmt(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _audio_gain(results: dict) -> float | None:
    return (results.get("audio_gain") or {}).get("overall")


def build_summary(results: dict[str, dict], timings: dict[str, float], training: dict[str, dict],
                  time_budget_minutes: float = 45, audio_gain_target: float = AUDIO_GAIN_TARGET) -> dict:
    directions = sorted(set.intersection(*(set(r["directions"]) for r in results.values())))
    return {
        "systems": {
            system: {
                "description": SYSTEM_NAMES.get(system, system),
                "audio_gain": _audio_gain(result),
                "average_bleu": _average(result, "bleu"),
                "average_chrf++": _average(result, "chrf++"),
                "average_asr_error_rate": _asr_average(result),
                "test_clips": sum(scores["n"] for scores in result["directions"].values()),
                "training": training.get(system),
            }
            for system, result in results.items()
        },
        "bleu_per_direction": {
            direction: {system: result["directions"][direction]["bleu"] for system, result in results.items()}
            for direction in directions
        },
        "timings_seconds": timings,
        "total_seconds": round(sum(timings.values()), 1),
        "time_budget_minutes": time_budget_minutes,
        "within_time_budget": sum(timings.values()) <= time_budget_minutes * 60,
        "audio_gain_target": audio_gain_target,
    }


def training_budget(stage_dirs: dict[str, Path]) -> dict:
    """Steps, examples and seconds of each stage that produced a system."""
    stages = {}
    for stage, folder in stage_dirs.items():
        info = json.loads((Path(folder) / "stage_info.json").read_text())
        state = json.loads((Path(folder) / "trainer_state.json").read_text())
        batch = state.get("train_batch_size") or 0
        stages[stage] = {"steps": info["global_step"], "examples": info["global_step"] * batch,
                         "seconds": info["train_seconds"], "trained": info["trained_parts"]}
    return {"stages": stages, "examples": sum(s["examples"] for s in stages.values()),
            "seconds": round(sum(s["seconds"] for s in stages.values()), 1)}


def learning_curve(curve: dict[str, dict], budget: dict) -> list[dict]:
    """One point per curriculum stage: training examples seen so far, and the dev scores of that stage's model."""
    points, seen = [], 0
    for stage, result in curve.items():
        seen += budget["stages"].get(stage, {}).get("examples", 0)
        points.append({"stage": stage, "examples_seen": seen, "audio_gain": _audio_gain(result),
                       "average_bleu": _average(result, "bleu"), "average_asr_error_rate": _asr_average(result)})
    return points


def save_learning_curve(points: list[dict], path: Path) -> Path:
    """Dev audio gain, BLEU and WER/CER of the curriculum's model after each stage, against examples seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("audio_gain", "audio gain (%)", 100.0), ("average_bleu", "dev BLEU", 1.0),
              ("average_asr_error_rate", "dev WER/CER (%)", 1.0))
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for axis, (key, label, factor) in zip(axes, panels):
        kept = [p for p in points if p[key] is not None]
        axis.plot([p["examples_seen"] for p in kept], [p[key] * factor for p in kept], marker="o")
        for p in kept:
            axis.annotate(p["stage"], (p["examples_seen"], p[key] * factor), textcoords="offset points",
                          xytext=(4, 4), fontsize=8)
        axis.set_xlabel("training examples seen")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    figure.suptitle("Curriculum model after each stage (dev clips)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _audio_gain_verdict(systems: dict, target: float) -> list[str]:
    ours = systems["curriculum"]["audio_gain"]
    theirs = systems.get("srt-only", {}).get("audio_gain")
    if ours is None:
        return ["- Audio gain: not measured."]
    met = ours >= target
    line = (f"- Curriculum audio gain {ours:+.1%} (target at least {target:+.0%}): "
            f"**{'met' if met else f'missed by {target - ours:.1%}'}**")
    if theirs is not None:
        line += f"; SRT-only baseline {theirs:+.1%}: curriculum **{'above' if ours > theirs else 'not above'}**."
    return [line]


def _asr_verdict(systems: dict) -> list[str]:
    """The curriculum's average WER/CER against the cascade's Whisper on the same clips (lower is better)."""
    ours = systems["curriculum"]["average_asr_error_rate"]
    theirs = systems.get("cascade", {}).get("average_asr_error_rate")
    if ours is None or theirs is None:
        return []
    word = "below" if ours < theirs else "not below"
    return [f"- Curriculum vs cascade's Whisper, average WER/CER: {ours:.1f}% vs {theirs:.1f}%: **{word}** "
            f"({ours - theirs:+.1f} points)."]


def _verdict(summary: dict, train_clips: int | None) -> list[str]:
    systems = summary["systems"]
    ours = systems["curriculum"]["average_bleu"]
    lines = _audio_gain_verdict(systems, summary["audio_gain_target"]) + _asr_verdict(systems)
    behind = []
    for baseline in ("cascade", "srt-only"):
        theirs = systems.get(baseline, {}).get("average_bleu")
        if ours is None or theirs is None:
            continue
        word = "above" if ours > theirs else "not above"
        if ours <= theirs:
            behind.append(baseline)
        lines.append(f"- Curriculum vs {baseline}: {ours:.1f} vs {theirs:.1f} average BLEU over the same "
                     f"{len(summary['bleu_per_direction'])} directions: **{word}** ({ours - theirs:+.1f}).")
    if behind:
        stages = (systems["curriculum"]["training"] or {}).get("stages", {})
        seen = sum(budget["examples"] for stage, budget in stages.items() if stage != "align")
        share = ""
        if seen and train_clips:
            share = f" ({seen / train_clips:.0%} of one pass over the {train_clips} training rows)"
        aligned = ""
        if "align" in stages:
            aligned = f" after an align stage of {stages['align']['examples']} clips that never run the LLM"
        lines += ["", (f"Why: the curriculum model is not above {' and '.join(behind)}. In this budget it trains on "
                       f"{seen} examples through the LLM{share}{aligned}: too few to learn to recognise speech of "
                       "sentences it has not seen as well as the cascade's Whisper and LLM, which come pretrained for "
                       "their jobs (the paper trains on FLEURS/CoVoST-2 for far longer on GPUs). The audio gain and "
                       "the learning curve show how far the model has come to use its audio.")]
    return lines


def _part_seconds(timings: dict, prefix: str) -> float:
    return sum(seconds for part, seconds in timings.items() if part.startswith(prefix))


def _machine_fit_lines(fit: dict, timings: dict) -> list[str]:
    """The speed probe, the projection it gave, the steps trained, the projection set beside what was measured, and
    this run's own figures as a `speed_reference` for the recipe (when it trained the recipe's steps)."""
    reference = fit["reference"]
    scale = fit["step_scale"]
    training, evaluation = _part_seconds(timings, "train:"), _part_seconds(timings, "evaluate:")
    lines = ["## Fitted to this machine", "", f"- This machine: {fit['machine']}."]
    if reference is None:
        lines += [f"- Speed probe: {fit['probe_seconds']:.0f} s; {fit['note']}."]
    else:
        lines += [f"- The recipe's steps were timed on: {reference['machine']}.",
                  ("- Speed probe (a few align and SRT steps of the demo's own training code): "
                   f"{fit['probe_seconds']:.0f} s here, {reference['probe_seconds']:.0f} s there: speed factor "
                   f"**{fit['speed_factor']:.2f}**."),
                  (f"- Projected at the recipe's steps: {fit['projected_seconds'] / 60:.1f} min against the "
                   f"{fit['budget_seconds'] / 60:.0f}-min budget; {fit['note']}."), "",
                  "| stage | recipe steps | steps trained |", "|---|---|---|"]
        lines += [f"| {stage} | {row['recipe']} | {row['fitted']} |" for stage, row in fit["steps"].items()]
        factor = fit["speed_factor"]
        lines += ["", "| projection check | projected s | measured s |", "|---|---|---|",
                  f"| training (curriculum + SRT-only) | {factor * reference['training_seconds'] * scale:.0f} | "
                  f"{training:.0f} |",
                  f"| evaluations | {factor * reference['evaluation_seconds']:.0f} | {evaluation:.0f} |"]
    if scale == 1.0:
        lines += ["", "This run as the recipe's `speed_reference` (in its `demo:` block):", "", "```yaml",
                  (f"speed_reference: {{machine: \"{fit['machine']}\", probe_seconds: {fit['probe_seconds']:.0f}, "
                   f"training_seconds: {training:.0f}, evaluation_seconds: {evaluation:.0f}}}"), "```"]
    return lines + [""]


def _examples(results_dirs: dict[str, Path], per_system: int = 6) -> list[str]:
    """The first predictions of each system, side by side with the references."""
    lines = ["| system | direction | reference | transcription | translation |", "|---|---|---|---|---|"]
    for system, folder in results_dirs.items():
        rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
        for row in sorted(rows, key=lambda r: r["direction"])[:per_system]:
            cells = [system, row["direction"], f"{row['ref_transcription']} → {row['ref_translation']}",
                     row["hyp_transcription"] or "", row["hyp_translation"] or ""]
            lines.append("| " + " | ".join(cell.replace("|", "/").replace("\n", " ") for cell in cells) + " |")
    return lines


def write_demo_report(report_dir: Path, results: dict[str, dict], stage_dirs: dict[str, dict], timings: dict,
                      train_clips: int | None = None, curve: dict[str, dict] | None = None,
                      time_budget_minutes: float = 45, audio_gain_target: float = AUDIO_GAIN_TARGET,
                      machine_fit: dict | None = None) -> dict:
    """Write summary.json, README.md and the plots into `report_dir`; returns the summary.

    `train_clips`: rows in the training split, to put the training budget in proportion. `curve`: the dev
    evaluation (eval.py results) of the curriculum's model after each stage. `machine_fit`: the demo's fit of its
    training to this machine (`MachineFit.as_dict()` with the machine's description under `machine`)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    training = {system: training_budget(dirs) for system, dirs in stage_dirs.items()}
    summary = build_summary(results, timings, training, time_budget_minutes, audio_gain_target)
    if machine_fit:
        summary["machine_fit"] = machine_fit
    if curve:
        summary["learning_curve"] = learning_curve(curve, training["curriculum"])
        save_learning_curve(summary["learning_curve"], report_dir / "learning_curve.png")
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    plots = []
    for system, dirs in stage_dirs.items():
        for stage, folder in dirs.items():
            if (Path(folder) / "loss.png").is_file():
                name = f"loss-{system}-{stage}.png"
                shutil.copyfile(Path(folder) / "loss.png", report_dir / name)
                plots.append(name)
    systems = summary["systems"]
    lines = [
        "# llmsrt demo report", "",
        ("| system | audio gain | avg BLEU | avg chrF++ | avg WER/CER (%) | test clips | training examples | "
         "training s |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in systems.values():
        budget = row["training"] or {}
        gain = "–" if row["audio_gain"] is None else f"{row['audio_gain']:+.1%}"
        lines.append(f"| {row['description']} | {gain} | {_fmt(row['average_bleu'])} | {_fmt(row['average_chrf++'])} | "
                     f"{_fmt(row['average_asr_error_rate'], 2)} | {row['test_clips']} | "
                     f"{budget.get('examples', '–')} | {budget.get('seconds', '–')} |")
    lines += ["", ("Audio gain: the teacher-forced answer loss with another clip's audio over the loss with the clip's "
                   "own audio, minus one (0: the audio is ignored; the cascade has no such loss)."), ""]
    lines += ["## Verdict", "", *_verdict(summary, train_clips), ""]
    if curve:
        lines += ["## Learning curve (dev clips, after each curriculum stage)", "",
                  "| stage | examples seen | audio gain | dev BLEU | dev WER/CER (%) |", "|---|---|---|---|---|"]
        lines += [f"| {p['stage']} | {p['examples_seen']} | "
                  f"{'–' if p['audio_gain'] is None else format(p['audio_gain'], '+.1%')} | "
                  f"{_fmt(p['average_bleu'])} | {_fmt(p['average_asr_error_rate'], 2)} |"
                  for p in summary["learning_curve"]]
        lines += ["", "![learning curve](learning_curve.png)", ""]
    lines += ["## Time of each part", "", "| part | seconds |", "|---|---|"]
    lines += [f"| {part} | {seconds:.0f} |" for part, seconds in timings.items()]
    lines += [(f"| **total** | **{summary['total_seconds']:.0f}** (budget {time_budget_minutes:.0f} min: "
               f"{'within' if summary['within_time_budget'] else 'over'}) |"), ""]
    if machine_fit:
        lines += _machine_fit_lines(machine_fit, timings)
    lines += ["## BLEU per direction", "", "| direction | " + " | ".join(results) + " |",
              "|---|" + "---|" * len(results)]
    for direction, scores in summary["bleu_per_direction"].items():
        lines.append(f"| {direction} | " + " | ".join(_fmt(scores[s]) for s in results) + " |")
    lines += ["", "## Curriculum model: BLEU matrix", "",
              matrix_markdown(results["curriculum"]["directions"], results["curriculum"]["averages"])]
    lines += ["## Examples", "", *_examples({system: report_dir / system for system in results}), ""]
    lines += ["## Plots", ""] + [f"![{name}]({name})" for name in plots]
    lines += [f"![{system} BLEU]({system}/bleu_heatmap.png)" for system in results]
    (report_dir / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return summary
