"""Lever check on the demo's test split: a curriculum model's BLEU, chrF++, WER/CER, teacher-forced SRT loss and
audio gain on the 56 clips of the demo-long report (one per direction) and on all 304 test clips, greedy, 40 new
tokens, no-repeat 5 over the answer. Either scores a finished model, or first trains the recipe's LLM stages
(ASR -> SMT -> SRT) from an align folder with per-stage overrides. Rows merge into `--output` by `--name`.

    python benchmarks/test_split_levers.py --name asr-400 --align_dir runs/demo-long/curriculum/align \
        --stage_overrides asr.max_steps=400
    python benchmarks/test_split_levers.py --name holdout-0.5 --model runs/demo-long-holdout/curriculum/srt
"""

import argparse
import json
from pathlib import Path

import torch
from llm_stage_levers import train_llm_stages
from translation_quality import translate_score_and_hear

from llmsrt import LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.data import load_manifest

ROOT = Path(__file__).resolve().parents[1]
DECODING = {"num_beams": 1, "do_sample": False, "max_new_tokens": 40, "no_repeat_ngram_size": 5}
TEST_SETS = {"test_56_clips": ROOT / "runs" / "demo-long" / "test-subset.jsonl",
             "test_304_clips": ROOT / ".cache" / "demo-corpus" / "test.jsonl"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--model", type=Path, help="a finished model folder to score")
    parser.add_argument("--align_dir", type=Path, help="train the LLM stages from this align folder first")
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "demo-long.yaml")
    parser.add_argument("--stage_overrides", nargs="*", default=[])
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "test-split-levers")
    parser.add_argument("--output", type=Path,
                        default=ROOT / "benchmarks" / "results" / "test-split-levers-demo-long.json")
    args = parser.parse_args()
    if (args.model is None) == (args.align_dir is None):
        parser.error("give --model (score it) or --align_dir (train the LLM stages from it, then score)")
    row = {"model": str(args.model), "stage_overrides": args.stage_overrides}
    model_dir = args.model
    if args.align_dir:
        flags = ["--stage_overrides", *args.stage_overrides] if args.stage_overrides else []
        finished, seconds = train_llm_stages(args.align_dir, args.recipe, ROOT / ".cache" / "demo-corpus",
                                             args.work_dir / args.name, flags)
        model_dir = list(finished.values())[-1]
        row.update(model=str(model_dir), align_dir=str(args.align_dir), llm_stage_seconds=round(seconds))
    model = LLMSRTForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = LLMSRTProcessor.from_pretrained(model_dir)
    for name, manifest in TEST_SETS.items():
        with torch.no_grad():
            row[name] = translate_score_and_hear(model, processor, load_manifest(manifest), 28, DECODING)
        print(f"{args.name}, {name}: {row[name]}", flush=True)
    results = json.loads(args.output.read_text()) if args.output.is_file() else {}
    results[args.name] = row
    args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
