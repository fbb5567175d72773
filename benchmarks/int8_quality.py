"""Benchmark 6b: which int8 layers cost a trained model its answers. The same saved LLM-SRT model, converted by
`llmsrt.inference.quantization.quantize_for_cpu` in several ways, translates the same clips; prints average BLEU,
chrF++, WER/CER, the teacher-forced SRT loss with the clip's own audio, the audio gain, and the seconds of each pass
(generation of the whole subset, batched as eval.py does), next to float32.

    python benchmarks/int8_quality.py --model runs/demo-long/curriculum/srt \
        --manifest runs/demo-long/test-subset.jsonl [--variants fp32 int8 int8+down_proj] \
        [--output benchmarks/results/int8-quality-demo.json]

A variant is `fp32`, `bf16`, or `int8[+suffix...]`: int8 dynamic quantisation of the LLM's linear layers except
those whose name ends with a listed suffix (`keep_float`).
"""

import argparse
import copy
import json

import torch
from translation_quality import apply_cpu_variant, translate_score_and_hear

from llmsrt import LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.data import load_manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--variants", nargs="+", default=["fp32", "int8", "int8+down_proj"])
    parser.add_argument("--batch_size", type=int, default=28)
    parser.add_argument("--max_new_tokens", type=int, default=40)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    model = LLMSRTForConditionalGeneration.from_pretrained(args.model).eval()
    processor = LLMSRTProcessor.from_pretrained(args.model)
    examples = load_manifest(args.manifest)
    decoding = {"num_beams": 1, "do_sample": False, "max_new_tokens": args.max_new_tokens, "no_repeat_ngram_size": 5}
    rows = {}
    for variant in args.variants:
        candidate = model if variant == "fp32" else apply_cpu_variant(copy.deepcopy(model), variant)
        row = rows[variant] = translate_score_and_hear(candidate, processor, examples, args.batch_size, decoding)
        print(f"{variant:>18}: BLEU {row['bleu']:.2f}  chrF++ {row['chrf++']:.2f}  "
              f"WER/CER {row['asr_error_rate']:.1f}  "
              f"SRT loss {row['srt_loss']:.3f}  audio gain {row['audio_gain']:+.1%}  {row['seconds']:.0f} s",
              flush=True)
        del candidate
    if "fp32" in rows:
        for variant, row in rows.items():
            print(f"{variant:>18} vs fp32: {rows['fp32']['seconds'] / row['seconds']:.2f}x faster; BLEU "
                  f"{row['bleu'] - rows['fp32']['bleu']:+.2f}, "
                  f"WER/CER {row['asr_error_rate'] - rows['fp32']['asr_error_rate']:+.1f}")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump({"model": args.model, "manifest": args.manifest, "clips": len(examples),
                       "threads": torch.get_num_threads(), "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
