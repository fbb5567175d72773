"""Lever check: does the align stage learn to spell new speech, or the training clips? The align head's loss and
per-query accuracy on training clips against unseen dev clips, for align checkpoints (adapter + head, as the Trainer
saved them).

    python benchmarks/align_generalization.py runs/demo-long/curriculum/align \
        runs/demo-long/curriculum/checkpoints/align/checkpoint-4000 [--clips 128] [--output results/F.json]

The align folder gives the frozen parts and the processor; each checkpoint gives the adapter and the head. The head's
vocabulary is rebuilt from the training transcripts, as the stage built it. Accuracy counts the queries whose target
token is in that vocabulary; all-query accuracy counts every query, a token outside the vocabulary as a miss, and so
compares heads whose vocabularies differ. The targets are those of `--targets`: `proportional` (tokens last in
proportion to their letters, `--align_loss proportional`) or `timed` (the token spoken at each query's centre, from
the corpus's `word_timestamps`, `--align_loss timed`), whichever loss the checkpoints were trained with.
"""

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from llmsrt.data import load_manifest
from llmsrt.data.collator import AlignmentCollator
from llmsrt.training.alignment import prepare_alignment
from llmsrt.training.model_setup import load_model

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def score(aligner, collate, examples, batch_size: int, timed: bool) -> dict:
    losses, correct, counted, queries = [], 0, 0, 0
    for start in range(0, len(examples), batch_size):
        batch = collate([examples[i] for i in range(start, min(start + batch_size, len(examples)))])
        output = aligner(**batch)
        targets = aligner.head.proportional_targets(batch["ctc_labels"], output["logits"].shape[1],
                                                    batch.get("ctc_token_times") if timed else None)
        scored = targets != -100
        correct += (output["logits"].argmax(-1)[scored] == targets[scored]).sum().item()
        counted += scored.sum().item()
        queries += (batch["ctc_labels"] >= 0).any(-1).sum().item() * targets.shape[1]
        losses.append(output["loss"].item())
    return {"loss": sum(losses) / len(losses), "query_accuracy": correct / counted,
            "all_query_accuracy": correct / queries}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("align_dir")
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--corpus", default=str(ROOT / ".cache" / "demo-corpus"))
    parser.add_argument("--encoder_cache_dir", default=str(ROOT / ".cache" / "encoder-features"))
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--targets", choices=["proportional", "timed"], default="proportional")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    model, processor = load_model(args.align_dir)
    model.enable_encoder_cache(args.encoder_cache_dir)
    splits = {split: load_manifest(Path(args.corpus) / f"{split}.jsonl") for split in ("train", "dev")}
    aligner, _ = prepare_alignment(model, processor.tokenizer, splits["train"], args.targets)
    aligner.eval()
    samples = {split: rows.shuffle(seed=0).select(range(min(args.clips, len(rows)))) for split, rows in splits.items()}
    collate = AlignmentCollator(processor)
    rows = {}
    for checkpoint in args.checkpoints:
        aligner.load_state_dict(load_file(Path(checkpoint) / "model.safetensors"))
        rows[checkpoint] = {split: score(aligner, collate, examples, args.batch_size, args.targets == "timed")
                            for split, examples in samples.items()}
        train, dev = rows[checkpoint]["train"], rows[checkpoint]["dev"]
        print(f"{checkpoint}: train loss {train['loss']:.3f} accuracy {train['query_accuracy']:.3f} | "
              f"dev loss {dev['loss']:.3f} accuracy {dev['query_accuracy']:.3f} "
              f"(all queries {dev['all_query_accuracy']:.3f})", flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps({"align_dir": args.align_dir, "clips": args.clips, "targets": args.targets,
                                                 "rows": rows},
                                                indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
