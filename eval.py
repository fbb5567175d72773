"""Evaluate a saved LLM-SRT model: `python eval.py --model DIR --manifest test.jsonl --output_dir OUT`.

Writes predictions.jsonl, results.json, matrix.md, bleu_heatmap.png (and reference_delta.md with
--reference_csv). The work happens in `llmsrt.evaluation`; installed, the same command is `llmsrt-eval`.
"""

import sys

from llmsrt.commands import evaluate

if __name__ == "__main__":
    sys.exit(evaluate())
