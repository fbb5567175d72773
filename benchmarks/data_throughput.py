"""Benchmark: examples per second of the data path (rows read from FLEURS' parquet layout + WAV decoding + the
30-s log-mel features and token ids of the SRT collator) with 1 and 4 DataLoader workers, against the rate the demo
recipe trains at (benchmarks/results/align-throughput-demo.json).

    python benchmarks/data_throughput.py [--clips 160] [--mel_bins 128] [--batch_size 8]

Writes benchmarks/results/data-throughput.json. The corpus is written in the export's layout by
tests/corpus_fixtures.py: en_us and de_de, one speaker per sentence, clips of 5-15 s (mean 10 s, as FLEURS').
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import WhisperFeatureExtractor

from llmsrt.data import CurriculumCollator
from llmsrt.data.arguments import DataArguments
from llmsrt.data.stage_data import load_stage_data
from llmsrt.inference.quantization import describe_cpu
from llmsrt.processing_llmsrt import LLMSRTProcessor
from llmsrt.testing import build_tiny_tokenizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from corpus_fixtures import fleurs_row, write_fleurs_export  # noqa: E402

DEMO_RATES = ROOT / "benchmarks" / "results" / "align-throughput-demo.json"


def write_corpus(folder: Path, clips: int) -> Path:
    tables = {}
    for offset, config in enumerate(("en_us", "de_de")):
        rows = [fleurs_row(config, "train", n, f"Sentence number {n} in {config}.", 1000 * offset + n,
                           seconds=5.0 + 10.0 * (n % 11) / 10) for n in range(clips)]
        tables[config] = {"train": rows}
    return write_fleurs_export(folder, tables, rows_per_file=64)


def examples_per_second(examples, processor, workers: int, batch_size: int) -> float:
    loader = torch.utils.data.DataLoader(examples, batch_size=batch_size, num_workers=workers, shuffle=False,
                                         collate_fn=CurriculumCollator(processor, "srt"),
                                         persistent_workers=False)
    started, seen = time.perf_counter(), 0
    for batch in loader:
        seen += batch["input_features"].shape[0]
    return seen / (time.perf_counter() - started)


def run(clips: int, mel_bins: int, batch_size: int) -> dict:
    tokenizer = build_tiny_tokenizer([f"Sentence number {n}" for n in range(50)], 512)
    processor = LLMSRTProcessor(WhisperFeatureExtractor(feature_size=mel_bins), tokenizer, num_query_tokens=80)
    with tempfile.TemporaryDirectory() as folder:
        corpus = write_corpus(Path(folder) / "fleurs", clips)
        started = time.perf_counter()
        data = load_stage_data(DataArguments(dataset="fleurs", dataset_path=str(corpus), directions=["eng-deu"]),
                               "srt", folder)
        load_seconds = time.perf_counter() - started
        rates = {workers: examples_per_second(data.examples, processor, workers, batch_size) for workers in (1, 4)}
    demo = json.loads(DEMO_RATES.read_text())
    return {
        "cpu": describe_cpu(), "cpu_cores": os.cpu_count(), "load_average_1min_after": round(os.getloadavg()[0], 2),
        "clips": clips,
        "audio_hours": round(data.report.as_dict()["audio_seconds"] / 3600, 3),
        "mel_bins": mel_bins, "batch_size": batch_size,
        "load_and_check_seconds": round(load_seconds, 2),
        "examples_per_second": {f"{workers} worker{'s' if workers > 1 else ''}": round(rate, 2)
                                for workers, rate in rates.items()},
        "demo_training_examples_per_second": {"align stage": demo["align workers=0"],
                                              "asr stage (through the LLM)": demo["asr workers=0"],
                                              "source": str(DEMO_RATES.relative_to(ROOT))},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=160, help="utterances per language")
    parser.add_argument("--mel_bins", type=int, default=128, help="128: whisper-large-v3 (the paper); 80: base")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "data-throughput.json"))
    args = parser.parse_args()
    results = run(args.clips, args.mel_bins, args.batch_size)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
