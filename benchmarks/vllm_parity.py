"""Greedy parity of llmsrt on vLLM with llmsrt's `generate` on a trained model, e.g. the demo's:

    python benchmarks/vllm_parity.py runs/demo/curriculum/srt runs/demo/test-subset.jsonl \
        --output benchmarks/results/vllm-parity-demo.json

Both decode every clip of the manifest greedily (no n-gram ban: vLLM has none) for the same number of new tokens, in
this one process: vLLM through `llmsrt.serving.offline.evaluate_with_vllm` (clips handed over together, batched
continuously), transformers through eval.py's `generate_predictions` (left-padded batches of `--batch_size`).
Printed: how many clips get the same transcription and translation, and the first differences. The tests check
token-for-token parity on tiny models (tests/test_vllm.py); this is the check on real weights (float32, CPU).
Needs vLLM (`make test-vllm` builds its venv).
"""

import argparse
import json
import os
import tempfile
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("manifest")
    parser.add_argument("--max_new_tokens", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    # The engine first: vLLM 0.32's CPU platform fails to start once librosa's numba code has run in-process.
    from llmsrt.serving.offline import VLLMEvalArguments, evaluate_with_vllm, load_llm

    llm = load_llm(args.model, max_model_len=512)
    work = Path(tempfile.mkdtemp(prefix="vllm-parity-"))
    vllm_args = VLLMEvalArguments(model=args.model, output_dir=str(work / "vllm"), manifest=args.manifest,
                                  max_new_tokens=args.max_new_tokens, comet_model="none", batch_size=64)
    evaluate_with_vllm(vllm_args, llm=llm)
    served = {row["id"]: row for row in map(json.loads, (work / "vllm" / "predictions.jsonl").open())}

    import torch

    from llmsrt import LLMSRTForConditionalGeneration, LLMSRTProcessor
    from llmsrt.evaluation.evaluator import generate_predictions, load_eval_examples

    model = LLMSRTForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).eval()
    processor = LLMSRTProcessor.from_pretrained(args.model)
    decoding = {"num_beams": 1, "do_sample": False, "no_repeat_ngram_size": 0, "max_new_tokens": args.max_new_tokens}
    with torch.no_grad():
        expected = generate_predictions(model, processor, load_eval_examples(vllm_args), args.batch_size, decoding)
    answer = lambda row: (row["hyp_transcription"], row["hyp_translation"])  # noqa: E731
    differences = [{"id": row["id"], "transformers": answer(row), "vllm": answer(served[row["id"]])}
                   for row in expected if answer(row) != answer(served[row["id"]])]
    summary = {"model": args.model, "manifest": args.manifest, "clips": len(expected),
               "identical": len(expected) - len(differences), "max_new_tokens": args.max_new_tokens,
               "differences": differences}
    print(f"{summary['identical']} of {summary['clips']} clips: the same greedy transcription and translation")
    for row in differences[:5]:
        print(f"  {row['id']}: transformers {row['transformers']} | vLLM {row['vllm']}")
    if args.output:
        Path(args.output).write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
