"""Per-direction scores over prediction records, and the averages users compare (overall, eng->X, X->eng)."""

import math
from collections import defaultdict

from .metrics import bleu_tokenizer, corpus_bleu, corpus_chrf_plus_plus, error_rate


def direction_of(record: dict) -> str:
    return f"{record['src_lang']}-{record['tgt_lang']}"


def prediction_record(example: dict, transcription: str, translation: str) -> dict:
    """One line of predictions.jsonl: the example's references beside a system's outputs."""
    return {
        "id": example["id"], "direction": direction_of(example),
        "src_lang": example["src_lang"], "tgt_lang": example["tgt_lang"],
        "ref_transcription": example["transcript"], "hyp_transcription": transcription,
        "ref_translation": example["translation"], "hyp_translation": translation,
    }


def score_records(records: list[dict], tokenizer_overrides: dict | None = None, comet=None) -> dict:
    """Score prediction records (`src_lang`, `tgt_lang`, `ref_transcription`, `hyp_transcription`,
    `ref_translation`, `hyp_translation`) per direction; returns `{"directions": {...}, "averages": {...}}`."""
    grouped = defaultdict(list)
    for record in records:
        grouped[direction_of(record)].append(record)
    directions = {}
    for direction, rows in sorted(grouped.items()):
        src, tgt = direction.split("-")
        hyps = [row["hyp_translation"] or "" for row in rows]
        refs = [row["ref_translation"] for row in rows]
        tokenize = bleu_tokenizer(tgt, tokenizer_overrides)
        bleu = corpus_bleu(hyps, refs, tokenize)
        chrf = corpus_chrf_plus_plus(hyps, refs)
        kind, rate = error_rate([row["hyp_transcription"] for row in rows], [row["ref_transcription"] for row in rows],
                                src)
        scores = {
            "src_lang": src, "tgt_lang": tgt, "n": len(rows), "bleu": bleu.score, "chrf++": chrf.score,
            "bleu_tokenizer": tokenize, "bleu_signature": bleu.signature, "chrf_signature": chrf.signature,
            "asr_metric": kind, "asr_error_rate": rate,
        }
        if comet is not None:
            scores["comet"] = comet([row["ref_transcription"] for row in rows], hyps, refs)
        directions[direction] = scores
    return {"directions": directions, "averages": averages(directions)}


def _mean(values):
    values = [value for value in values if value is not None and not math.isnan(value)]
    return sum(values) / len(values) if values else None


def averages(directions: dict) -> dict:
    """Unweighted means over directions (as the paper averages its 210 directions)."""
    out = {}
    for metric in ("bleu", "chrf++", "comet"):
        if not any(metric in scores for scores in directions.values()):
            continue
        values = {name: scores.get(metric) for name, scores in directions.items()}
        out[metric] = {
            "all": _mean(values.values()),
            "eng->X": _mean(v for name, v in values.items() if name.startswith("eng-")),
            "X->eng": _mean(v for name, v in values.items() if name.endswith("-eng")),
        }
    return out
