"""How much the audio gain depends on which clip is swapped in. The audio gain swaps each clip's audio for its
neighbour's in the batch; the demo's test subset lists a sentence in its 8 languages one after another, so the
neighbour is mostly the same sentence in another language. This scores the same models on the same clips in three
orders: as listed, by direction (neighbours share the source language and differ in content: only the content can
tell them apart), and shuffled.

    python benchmarks/audio_gain_pairing.py runs/demo/test-subset.jsonl \
        runs/demo/curriculum/srt runs/demo/srt-only/srt \
        [--output benchmarks/results/audio-gain-pairing-demo.json]
"""

import argparse
import json
import random
import tempfile
from pathlib import Path

from llmsrt import LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.data import load_manifest, write_manifest
from llmsrt.data.collator import CurriculumCollator
from llmsrt.diagnostics.audio_gain import audio_gain_on_examples

ROOT = Path(__file__).resolve().parents[1]
ORDERS = {
    "as listed (neighbours: the same sentence in another language)": lambda rows: rows,
    "by direction (neighbours: the same source language, another sentence)":
        lambda rows: sorted(rows, key=lambda row: (row["src_lang"], row["tgt_lang"])),
    "shuffled (seed 0)": lambda rows: random.Random(0).sample(rows, len(rows)),
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("subset", type=Path)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--batch_size", type=int, default=28)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "audio-gain-pairing-demo.json")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.subset.read_text(encoding="utf-8").splitlines()]
    results = {"subset": str(args.subset), "clips": len(rows), "batch_size": args.batch_size, "models": {}}
    with tempfile.TemporaryDirectory() as folder:
        for model_dir in args.models:
            model = LLMSRTForConditionalGeneration.from_pretrained(model_dir).eval()
            processor = LLMSRTProcessor.from_pretrained(model_dir)
            collator = CurriculumCollator(processor, task="srt")
            scores = results["models"][str(model_dir)] = {}
            for name, order in ORDERS.items():
                path = Path(folder) / "ordered.jsonl"
                write_manifest(path, order(rows))
                gain = audio_gain_on_examples(model, load_manifest(path), collator, args.batch_size)
                scores[name] = {"audio_gain": gain.overall, "own_audio_loss": gain.own_audio_loss,
                                "other_audio_loss": gain.other_audio_loss}
                print(f"{model_dir} | {name} | {gain.overall:+.1%}", flush=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
