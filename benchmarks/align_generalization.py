"""Lever check: does the align stage learn to spell new speech, or the training clips? The align head's loss and
per-query accuracy on training clips against unseen dev clips, for align checkpoints (adapter + head, as the Trainer
saved them).

    python benchmarks/align_generalization.py runs/demo-long/curriculum/align \
        runs/demo-long/curriculum/checkpoints/align/checkpoint-4000 [--clips 128] [--output results/F.json] \
        [--read_split test]

The align folder gives the frozen parts and the processor; each checkpoint gives the adapter and the head. The head's
vocabulary is rebuilt from the training transcripts, as the stage built it. Accuracy counts the queries whose target
token is in that vocabulary; all-query accuracy counts every query, a token outside the vocabulary as a miss, and so
compares heads whose vocabularies differ. The targets are those of the `proportional` align loss (tokens last in
proportion to their letters), whichever loss the checkpoints were trained with.

`--read_split S` also reads every clip of split S with the head alone (no LLM): each query's best token, runs of the
same token merged, the text decoded, and scores it as the report scores transcripts (WER/CER per direction, then
the mean over directions). It is what the adapter hands the LLM, read the simplest way: the LLM stages' transcripts
are measured against it.
"""

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from llmsrt.data import load_manifest
from llmsrt.data.collator import AlignmentCollator
from llmsrt.evaluation.scoring import prediction_record, score_records
from llmsrt.training.alignment import prepare_alignment
from llmsrt.training.model_setup import load_model

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def score(aligner, collate, examples, batch_size: int) -> dict:
    losses, correct, counted, queries = [], 0, 0, 0
    for start in range(0, len(examples), batch_size):
        batch = collate([examples[i] for i in range(start, min(start + batch_size, len(examples)))])
        output = aligner(**batch)
        targets = aligner.head.proportional_targets(batch["ctc_labels"], output["logits"].shape[1])
        scored = targets != -100
        correct += (output["logits"].argmax(-1)[scored] == targets[scored]).sum().item()
        counted += scored.sum().item()
        queries += (batch["ctc_labels"] >= 0).any(-1).sum().item() * targets.shape[1]
        losses.append(output["loss"].item())
    return {"loss": sum(losses) / len(losses), "query_accuracy": correct / counted,
            "all_query_accuracy": correct / queries}


@torch.no_grad()
def read(aligner, collate, tokenizer, examples, batch_size: int) -> dict:
    """The head's greedy reading of every clip (best class per query, runs merged, blanks dropped, decoded), scored
    as the LLM's transcripts are: WER/CER per direction (`score_records`), then the mean over directions."""
    records = []
    for start in range(0, len(examples), batch_size):
        batch_examples = [examples[i] for i in range(start, min(start + batch_size, len(examples)))]
        for example, classes in zip(batch_examples, aligner(**collate(batch_examples))["logits"].argmax(-1).tolist()):
            merged = [c for i, c in enumerate(classes) if c > 0 and (i == 0 or classes[i - 1] != c)]
            reading = tokenizer.decode(aligner.head.vocabulary_ids[torch.tensor(merged, dtype=torch.long) - 1]
                                       if merged else [])
            records.append(prediction_record(example, reading, ""))
    rates = [scores["asr_error_rate"] for scores in score_records(records)["directions"].values()]
    shown = [{"transcript": r["ref_transcription"], "reading": r["hyp_transcription"]} for r in records[:8]]
    return {"clips": len(records), "asr_error_rate": sum(rates) / len(rates), "examples": shown}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("align_dir")
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--corpus", default=str(ROOT / ".cache" / "demo-corpus"))
    parser.add_argument("--encoder_cache_dir", default=str(ROOT / ".cache" / "encoder-features"))
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--output", default=None)
    parser.add_argument("--read_split", default=None, help="also read this split's clips with the head alone")
    args = parser.parse_args()
    model, processor = load_model(args.align_dir)
    if args.encoder_cache_dir:
        model.encoder_cache = model.disk_encoder_cache(args.encoder_cache_dir)  # for the whole run
    splits = {split: load_manifest(Path(args.corpus) / f"{split}.jsonl") for split in ("train", "dev")}
    aligner, _ = prepare_alignment(model, processor.tokenizer, splits["train"], "proportional")
    aligner.eval()
    samples = {split: rows.shuffle(seed=0).select(range(min(args.clips, len(rows)))) for split, rows in splits.items()}
    collate = AlignmentCollator(processor)
    reading_clips = load_manifest(Path(args.corpus) / f"{args.read_split}.jsonl") if args.read_split else None
    rows = {}
    for checkpoint in args.checkpoints:
        aligner.load_state_dict(load_file(Path(checkpoint) / "model.safetensors"))
        rows[checkpoint] = {split: score(aligner, collate, examples, args.batch_size)
                            for split, examples in samples.items()}
        train, dev = rows[checkpoint]["train"], rows[checkpoint]["dev"]
        print(f"{checkpoint}: train loss {train['loss']:.3f} accuracy {train['query_accuracy']:.3f} | "
              f"dev loss {dev['loss']:.3f} accuracy {dev['query_accuracy']:.3f} "
              f"(all queries {dev['all_query_accuracy']:.3f})", flush=True)
        if args.read_split:
            reading = read(aligner, collate, processor.tokenizer, reading_clips, args.batch_size)
            rows[checkpoint][f"{args.read_split}_reading"] = reading
            print(f"  head alone on {reading['clips']} {args.read_split} clips: WER/CER "
                  f"{reading['asr_error_rate']:.1f}% (mean over directions)", flush=True)
    if args.output:
        summary = {"align_dir": args.align_dir, "clips": args.clips, "targets": "proportional", "rows": rows}
        Path(args.output).write_text(json.dumps(summary, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
