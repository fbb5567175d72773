"""Per-direction scores over prediction records, and the averages users compare (overall, eng->X, X->eng)."""

import math
from collections import defaultdict

from .metrics import METRIC_RULES, bleu_tokenizer, check_metric_rule, corpus_bleu, corpus_chrf_plus_plus, error_rate

AVERAGED_METRICS = ("bleu", "spbleu", "chrf++", "comet")


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


def score_records(
    records: list[dict], tokenizer_overrides: dict | None = None, comet=None, metric_rule: str = "v1"
) -> dict:
    """Score prediction records (`src_lang`, `tgt_lang`, `ref_transcription`, `hyp_transcription`,
    `ref_translation`, `hyp_translation`) per direction; returns `{"directions": {...}, "averages": {...}}`.

    `metric_rule` `v1` scores `bleu` (char/13a by target language, LLM-SRT v1.0), `v2` scores `spbleu` (flores200
    for every language, MCAT v2.0); chrF++, WER/CER and COMET (when `comet` is given) in both.
    """
    bleu_name = METRIC_RULES[check_metric_rule(metric_rule)]
    grouped = defaultdict(list)
    for record in records:
        grouped[direction_of(record)].append(record)
    directions = {}
    for direction, rows in sorted(grouped.items()):
        src, tgt = direction.split("-")
        hyps = [row["hyp_translation"] or "" for row in rows]
        refs = [row["ref_translation"] for row in rows]
        tokenize = bleu_tokenizer(tgt, tokenizer_overrides, metric_rule)
        bleu = corpus_bleu(hyps, refs, tokenize)
        chrf = corpus_chrf_plus_plus(hyps, refs)
        kind, rate = error_rate([row["hyp_transcription"] for row in rows], [row["ref_transcription"] for row in rows],
                                src)
        scores = {
            "src_lang": src, "tgt_lang": tgt, "n": len(rows), bleu_name: bleu.score, "chrf++": chrf.score,
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
    for metric in AVERAGED_METRICS:
        if not any(metric in scores for scores in directions.values()):
            continue
        values = {name: scores.get(metric) for name, scores in directions.items()}
        out[metric] = {
            "all": _mean(values.values()),
            "eng->X": _mean(v for name, v in values.items() if name.startswith("eng-")),
            "X->eng": _mean(v for name, v in values.items() if name.endswith("-eng")),
        }
    return out
