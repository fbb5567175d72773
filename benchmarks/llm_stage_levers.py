"""Levers of the LLM stages. From one align folder, the demo recipe's LLM stages (by default ASR -> SMT -> SRT) run
under each named variant; each is scored by the dev audio gain (SRT and ASR teacher forcing) of its last stage,
with its training seconds. Results merge into `--output` (default `benchmarks/results/llm-stage-levers-demo.json`) by
variant name.

    python benchmarks/llm_stage_levers.py runs/demo/curriculum/align --variants base all-linear   # after make demo

Run it alone: the seconds are only comparable between variants of one run on an idle machine.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from llmsrt import LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.audio_gain import audio_gain_on_examples
from llmsrt.data import load_manifest
from llmsrt.data.collator import CurriculumCollator
from llmsrt.training import parse_train_args, run_curriculum

ROOT = Path(__file__).resolve().parents[1]
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# name -> train.py flags added to the recipe's (flags given later win)
VARIANTS = {
    "base": [],
    "all-linear": ["--lora_target_modules", *ALL_LINEAR],
    "bf16": ["--bf16", "true"],
    "lr-x2": ["--stage_overrides", "asr.learning_rate=4e-4", "smt.learning_rate=2e-4", "srt.learning_rate=4e-4"],
    "lr-1e-3": ["--stage_overrides", "asr.learning_rate=1e-3", "smt.learning_rate=5e-4", "srt.learning_rate=1e-3"],
    "lr-2e-3": ["--stage_overrides", "asr.learning_rate=2e-3", "smt.learning_rate=1e-3", "srt.learning_rate=2e-3"],
    "srt-only-lr-1e-3": ["--curriculum_stages", "srt", "--stage_overrides", "srt.max_steps=42",
                         "srt.learning_rate=1e-3"],
    "lr-1e-3-x2": ["--stage_overrides", "asr.learning_rate=1e-3", "smt.learning_rate=5e-4", "srt.learning_rate=1e-3",
                   "asr.max_steps=40", "smt.max_steps=12", "srt.max_steps=32"],
    "srt-only-lr-1e-3-x2": ["--curriculum_stages", "srt", "--stage_overrides", "srt.max_steps=84",
                            "srt.learning_rate=1e-3"],
    "recipe": [],  # the recipe as it is (recipes/demo.yaml: lr 1e-3, 40/12/32 steps)
    "srt-heavy": ["--stage_overrides", "asr.max_steps=20", "srt.max_steps=52"],
    # with --recipe recipes/demo-long.yaml (200/40/200): the same 440 LLM steps, most of them on SRT
    "long-srt-heavy": ["--stage_overrides", "asr.max_steps=100", "smt.max_steps=20", "srt.max_steps=320"],
    "recipe-bf16": ["--bf16", "true"],  # the recipe as it is, under bf16 autocast (AVX512-BF16 or AMX cores)
    "all-linear-lr-1e-3": ["--lora_target_modules", *ALL_LINEAR, "--stage_overrides", "asr.learning_rate=1e-3",
                           "smt.learning_rate=5e-4", "srt.learning_rate=1e-3"],
    "srt-only": ["--curriculum_stages", "srt", "--stage_overrides", "srt.max_steps=42"],
    "asr-heavy": ["--stage_overrides", "asr.max_steps=30", "smt.max_steps=2", "srt.max_steps=10"],
    "all-linear-srt-only": ["--lora_target_modules", *ALL_LINEAR, "--curriculum_stages", "srt",
                            "--stage_overrides", "srt.max_steps=42"],
}


def gains(model, processor, examples, batch_size: int) -> dict:
    """The audio gain and the own-audio loss of each task; `srt_same_language`: the SRT gain with the clips sorted
    by direction, so that the swapped-in clip shares the source language and differs in content."""
    row = {}
    for task in ("asr", "srt"):
        gain = audio_gain_on_examples(model, examples, CurriculumCollator(processor, task=task), batch_size)
        row[task], row[f"{task}_own_audio_loss"] = gain.overall, round(gain.own_audio_loss, 4)
    by_direction = examples.sort(["src_lang", "tgt_lang"])
    row["srt_same_language"] = audio_gain_on_examples(
        model, by_direction, CurriculumCollator(processor, task="srt"), batch_size).overall
    return row


def train_llm_stages(align_dir: Path, recipe: Path, corpus: Path, output: Path, flags: list[str]) -> tuple[dict, float]:
    """The recipe's ASR -> SMT -> SRT from `align_dir` into `output`, with train.py `flags` added: the finished
    stage folders (stage -> folder) and the seconds it took."""
    argv = [str(recipe), "--output_dir", str(output), "--model_name_or_path", str(align_dir),
            "--dataset_path", str(corpus), "--curriculum_stages", "asr", "smt", "srt", *flags]
    started = time.time()
    finished = run_curriculum(*parse_train_args(argv))
    return finished, time.time() - started


def run_variant(name: str, align_dir: Path, recipe: Path, corpus: Path, work: Path, examples, batch_size: int) -> dict:
    output = work / name
    shutil.rmtree(output, ignore_errors=True)
    finished, seconds = train_llm_stages(align_dir, recipe, corpus, output, VARIANTS[name])
    last = list(finished.values())[-1]
    model = LLMSRTForConditionalGeneration.from_pretrained(last).eval()
    processor = LLMSRTProcessor.from_pretrained(last)
    with torch.no_grad():
        row = {"flags": VARIANTS[name], "seconds": round(seconds, 1), **gains(model, processor, examples, batch_size)}
    row["stage_seconds"] = {stage: json.loads((folder / "stage_info.json").read_text())["train_seconds"]
                            for stage, folder in finished.items()}
    shutil.rmtree(output, ignore_errors=True)
    return row


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("align_dir", type=Path)
    parser.add_argument("--variants", nargs="+", default=["base"], choices=sorted(VARIANTS))
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "demo.yaml")
    parser.add_argument("--corpus", type=Path, default=ROOT / ".cache" / "demo-corpus")
    parser.add_argument("--work_dir", type=Path, default=Path("/tmp/llm-stage-levers"))
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "llm-stage-levers-demo.json")
    args = parser.parse_args()
    dev = load_manifest(args.corpus / "dev.jsonl").shuffle(seed=0).select(range(args.clips))
    out = args.output
    results = json.loads(out.read_text()) if out.is_file() else {}
    results["_setup"] = {"align_dir": str(args.align_dir), "dev_clips": args.clips, "recipe": str(args.recipe)}
    for name in args.variants:
        results[name] = run_variant(name, args.align_dir, args.recipe, args.corpus, args.work_dir, dev, args.batch_size)
        row = results[name]
        print(f"{name}: SRT audio gain {row['srt']:+.1%} (loss {row['srt_own_audio_loss']}; same-language swaps "
              f"{row['srt_same_language']:+.1%}), ASR {row['asr']:+.1%} "
              f"(loss {row['asr_own_audio_loss']}), {row['seconds']:.0f} s "
              f"({row['stage_seconds']})", flush=True)
        out.write_text(json.dumps(results, indent=2))
