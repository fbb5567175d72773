"""Examples per second of an LLM-stage training step on the CPU in fp32 and under bf16 autocast (what `--bf16 true`
gives the Trainer), alternating in one process: the demo model, LoRA only, batches of 4 SRT training clips.

    python benchmarks/cpu_bf16_training.py MODEL_DIR [--steps 6]   # e.g. runs/demo/curriculum/srt after make demo

Worth it only where `llmsrt.inference.quantization.cpu_has_fast_bf16()` (AVX512-BF16 or AMX); prints the ratio.
"""

import argparse
import json
import time
from pathlib import Path

import torch

from llmsrt import LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.data import load_manifest
from llmsrt.data.collator import CurriculumCollator
from llmsrt.inference.quantization import cpu_has_fast_bf16
from llmsrt.lora import add_lora

ROOT = Path(__file__).resolve().parents[1]


def step_seconds(model, batch, bf16: bool) -> float:
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--manifest", type=Path, default=ROOT / ".cache" / "demo-corpus" / "train.jsonl")
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    model = add_lora(LLMSRTForConditionalGeneration.from_pretrained(args.model_dir), train_speech_adapter=False)
    model.train()
    processor = LLMSRTProcessor.from_pretrained(args.model_dir)
    examples = load_manifest(args.manifest).shuffle(seed=0).select(range(4 * args.steps))
    collate = CurriculumCollator(processor, task="srt")
    batches = [collate([examples[i] for i in range(4 * n, 4 * n + 4)]) for n in range(args.steps)]
    seconds = {"fp32": [], "bf16": []}
    step_seconds(model, batches[0], False)  # warm-up
    step_seconds(model, batches[0], True)
    for batch in batches:
        for name in ("fp32", "bf16"):
            seconds[name].append(step_seconds(model, batch, name == "bf16"))
    result = {"fast_bf16": cpu_has_fast_bf16(), "threads": torch.get_num_threads(),
              **{f"{name}_seconds_per_step": round(sum(v) / len(v), 3) for name, v in seconds.items()}}
    result["bf16_speedup"] = round(result["fp32_seconds_per_step"] / result["bf16_seconds_per_step"], 2)
    print(json.dumps(result, indent=2))
    (ROOT / "benchmarks" / "results" / "cpu-bf16-training-demo.json").write_text(json.dumps(result, indent=2) + "\n")
