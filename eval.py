"""Evaluate a saved LLM-SRT model: `python eval.py --model DIR --manifest test.jsonl --output_dir OUT`.

Writes predictions.jsonl, results.json, matrix.md, bleu_heatmap.png (and reference_delta.md with
--reference_csv). The work happens in `llmsrt.evaluation`.
"""

import logging

from transformers import HfArgumentParser

from llmsrt.evaluation import EvalArguments, evaluate_model

if __name__ == "__main__":
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    (arguments,) = HfArgumentParser(EvalArguments).parse_args_into_dataclasses()
    results = evaluate_model(arguments)
    print(open(f"{arguments.output_dir}/matrix.md", encoding="utf-8").read())
