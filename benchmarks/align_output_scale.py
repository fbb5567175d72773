"""Lever: the align stage's output scale. The frozen LLM's audio gain (ASR and SRT tasks, dev clips) of an align
folder as saved (`--align_output_scale embedding`: outputs at the norm of the LLM's tokens) and with that scaling
undone (`unchanged`: the LayerNorm's own scale), on the same weights otherwise.

    python benchmarks/align_output_scale.py runs/demo/curriculum/align [--clips 48]   # after `make demo`
"""

import argparse
import json
from pathlib import Path

import torch

from llmsrt import LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.audio_gain import audio_gain_on_examples
from llmsrt.data import load_manifest
from llmsrt.data.collator import CurriculumCollator

ROOT = Path(__file__).resolve().parents[1]


def gains(model, processor, examples, batch_size: int) -> dict:
    return {task: audio_gain_on_examples(model, examples, CurriculumCollator(processor, task=task), batch_size).overall
            for task in ("asr", "srt")}


def run(align_dir: Path, manifest: Path, clips: int, batch_size: int) -> dict:
    model = LLMSRTForConditionalGeneration.from_pretrained(align_dir).eval()
    processor = LLMSRTProcessor.from_pretrained(align_dir)
    examples = load_manifest(manifest).shuffle(seed=0).select(range(clips))
    factor = json.loads((align_dir / "stage_info.json").read_text())["output_scale_factor"]
    rows = {"align_dir": str(align_dir), "clips": clips, "output_scale_factor": factor}
    with torch.no_grad():
        rows["embedding"] = gains(model, processor, examples, batch_size)
        norm = model.speech_adapter.projector.layer_norm
        norm.weight.div_(factor)
        norm.bias.div_(factor)
        rows["unchanged"] = gains(model, processor, examples, batch_size)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("align_dir", type=Path)
    parser.add_argument("--manifest", type=Path, default=ROOT / ".cache" / "demo-corpus" / "dev.jsonl")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--batch_size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = run(args.align_dir, args.manifest, args.clips, args.batch_size)
    for scale in ("embedding", "unchanged"):
        print(f"{scale}: " + ", ".join(f"{task} audio gain {value:+.1%}" for task, value in results[scale].items()))
    out = ROOT / "benchmarks" / "results" / "align-output-scale-demo.json"
    out.write_text(json.dumps(results, indent=2))
