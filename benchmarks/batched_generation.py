"""Benchmark 4: batched generation throughput vs batch size 1, with `eval.py`'s length-sorted batching.

    python benchmarks/batched_generation.py [--clips 32] [--new_tokens 20]

Clips of mixed lengths (1-5 s) through `llmsrt.evaluation.generate_predictions` (what eval.py runs), on a small
random LLM-SRT (speed does not depend on the weights); prints clips/s per batch size and the ratio to batch 1.
"""

import argparse
import time

import datasets
import numpy as np
import torch
from peak_memory import PeakMemory

from llmsrt.evaluation import generate_predictions
from llmsrt.testing import build_tiny_model_and_processor


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--new_tokens", type=int, default=20)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    args = parser.parse_args()
    torch.manual_seed(0)
    model, processor = build_tiny_model_and_processor(["the train leaves at nine", "der zug"], hidden_size=256,
                                                      num_layers=4)
    model.eval()
    rng = np.random.default_rng(0)
    examples = datasets.Dataset.from_list([
        {"id": str(i), "audio": {"array": (0.1 * rng.standard_normal(int(rng.uniform(1, 5) * 16000))).tolist(),
                                 "sampling_rate": 16000},
         "src_lang": "eng", "tgt_lang": "deu", "transcript": "x", "translation": "y"}
        for i in range(args.clips)
    ])
    decoding = {"num_beams": 1, "do_sample": False, "max_new_tokens": args.new_tokens,
                "min_new_tokens": args.new_tokens, "no_repeat_ngram_size": 0}
    rates = {}
    for batch_size in args.batch_sizes:
        with PeakMemory() as peak:
            start = time.perf_counter()
            generate_predictions(model, processor, examples, batch_size, decoding)
            rates[batch_size] = args.clips / (time.perf_counter() - start)
        ratio = rates[batch_size] / rates[args.batch_sizes[0]]
        print(f"batch {batch_size:>3}: {rates[batch_size]:.1f} clips/s ({ratio:.1f}x), peak memory added "
              f"{peak.gib * 1024:.0f} MiB")


if __name__ == "__main__":
    main()
