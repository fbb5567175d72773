"""Benchmark 2b: what variable-length encoding costs a trained model. The same saved LLM-SRT model translates
the same clips twice, its encoder reading each clip's real length and then the 30-s window; prints average BLEU,
chrF++, WER/CER and audio gain of both, the encoder-output drift on those clips, and the time of each pass.

    python benchmarks/variable_length_quality.py --model runs/demo/curriculum/srt \
        --manifest runs/demo/test-subset.jsonl [--output benchmarks/results/variable-length-quality-demo.json]

A model is best evaluated the way it was trained (the demo trains with variable-length encoding on).
"""

import argparse
import json

import torch
from translation_quality import mean, translate_score_and_hear

from llmsrt import LLMSRTForConditionalGeneration, LLMSRTProcessor
from llmsrt.data import load_manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_new_tokens", type=int, default=40)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    model = LLMSRTForConditionalGeneration.from_pretrained(args.model).eval()
    processor = LLMSRTProcessor.from_pretrained(args.model)
    examples = load_manifest(args.manifest)
    decoding = {"num_beams": 1, "do_sample": False, "max_new_tokens": args.max_new_tokens, "no_repeat_ngram_size": 5}
    rows = {}
    for variable_length in (True, False):
        model.config.variable_length_encoding = variable_length
        name = "variable-length" if variable_length else "window"
        rows[name] = translate_score_and_hear(model, processor, examples, args.batch_size, decoding)
    drifts, cosines = [], []
    with torch.no_grad():
        for example in examples.select(range(min(16, len(examples)))):
            inputs = processor(audio=example["audio"], sampling_rate=16000)
            frames = (int(inputs["input_features_mask"].sum()) + 1) // 2
            model.config.variable_length_encoding = False
            window = model._run_audio_encoder(inputs["input_features"], inputs["input_features_mask"])[0, :frames]
            real = min(2 * frames + 2, inputs["input_features"].shape[-1])
            model.config.variable_length_encoding = True
            short = model._run_audio_encoder(inputs["input_features"][..., :real],
                                             inputs["input_features_mask"][:, :real])[0, :frames]
            drifts.append(float((short - window).norm() / window.norm()))
            cosines.append(float(torch.nn.functional.cosine_similarity(short, window, dim=-1).mean()))
    for name, row in rows.items():
        print(f"{name:>15}: BLEU {row['bleu']:.2f}  chrF++ {row['chrf++']:.2f}  WER/CER {row['asr_error_rate']:.3f}  "
              f"audio gain {row['audio_gain']:+.1%}  "
              f"{row['seconds']:.0f} s  peak +{row['peak_gib']:.2f} GiB")
    speedup = rows["window"]["seconds"] / rows["variable-length"]["seconds"]
    print(f"variable-length vs window: {speedup:.2f}x faster end to end; BLEU "
          f"{rows['variable-length']['bleu'] - rows['window']['bleu']:+.2f}; encoder drift relative L2 "
          f"{mean(drifts):.3f}, cosine {mean(cosines):.3f} ({len(drifts)} clips)")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            json.dump({"model": args.model, "manifest": args.manifest, "rows": rows, "speedup": speedup,
                       "drift_relative_l2": mean(drifts), "cosine": mean(cosines)}, handle, indent=2)


if __name__ == "__main__":
    main()
