"""The paper's metrics: sacrebleu BLEU (tokenizer by target language), chrF++, WER/CER after Whisper's basic
normalisation, and COMET when it is installed and its model is available locally."""

import re
from dataclasses import dataclass

import jiwer
import sacrebleu
from transformers.models.whisper.english_normalizer import BasicTextNormalizer

from ..languages import get_language

BLEU_TOKENIZERS = ("13a", "char", "zh", "ja-mecab", "intl", "none")
_normalizer = BasicTextNormalizer()


def bleu_tokenizer(tgt_lang: str, overrides: dict[str, str] | None = None) -> str:
    """The paper's rule: `char` for tha, jpn, kor, zho, yue, lao, mya targets, `13a` otherwise.

    `overrides` maps a language to another tokenizer (e.g. `{"zho": "zh", "jpn": "ja-mecab"}`, as in the older
    CoVoST-2 scripts).
    """
    code = get_language(tgt_lang).code
    tokenizer = (overrides or {}).get(code) or get_language(code).bleu_tokenizer
    if tokenizer not in BLEU_TOKENIZERS:
        raise ValueError(f"Unknown sacrebleu tokenizer {tokenizer!r}; use one of {BLEU_TOKENIZERS}.")
    return tokenizer


@dataclass
class CorpusScore:
    score: float
    signature: str


def corpus_bleu(hypotheses: list[str], references: list[str], tokenize: str) -> CorpusScore:
    metric = sacrebleu.BLEU(tokenize=tokenize)
    return CorpusScore(metric.corpus_score(hypotheses, [references]).score, str(metric.get_signature()))


def corpus_chrf_plus_plus(hypotheses: list[str], references: list[str]) -> CorpusScore:
    metric = sacrebleu.CHRF(word_order=2)
    return CorpusScore(metric.corpus_score(hypotheses, [references]).score, str(metric.get_signature()))


def normalize_transcript(text: str, language: str) -> str:
    """Whisper's basic normalisation (lower case, no punctuation or symbols); no spaces for CER languages."""
    normalized = _normalizer(text or "")
    if get_language(language).uses_cer:
        return re.sub(r"\s+", "", normalized)
    return re.sub(r"\s+", " ", normalized).strip()


def error_rate(hypotheses: list[str], references: list[str], language: str) -> tuple[str, float]:
    """`("wer", x)` or, for languages written without spaces, `("cer", x)`, in percent, over the corpus."""
    kind = "cer" if get_language(language).uses_cer else "wer"
    pairs = [
        (normalize_transcript(hyp, language), normalize_transcript(ref, language))
        for hyp, ref in zip(hypotheses, references)
    ]
    pairs = [(hyp, ref) for hyp, ref in pairs if ref]
    if not pairs:
        return kind, float("nan")
    hyps, refs = zip(*pairs)
    measure = jiwer.cer if kind == "cer" else jiwer.wer
    return kind, 100.0 * measure(list(refs), list(hyps))


def comet_scorer(model: str = "Unbabel/wmt22-comet-da"):
    """A function `(sources, hypotheses, references) -> system score x 100`, or `(None, reason)` when COMET can't
    run here (package missing or model not available offline)."""
    try:
        from comet import download_model, load_from_checkpoint
    except ImportError:
        return None, "unbabel-comet is not installed (pip install 'llmsrt[comet]')"
    try:
        checkpoint = model if model.endswith(".ckpt") else download_model(model)
        scorer = load_from_checkpoint(checkpoint)
    except Exception as error:  # noqa: BLE001 - offline, missing files, ...
        return None, f"COMET model {model} is not available ({type(error).__name__}: {error})"

    def score(sources, hypotheses, references) -> float:
        data = [{"src": s, "mt": h, "ref": r} for s, h, r in zip(sources, hypotheses, references)]
        return 100.0 * scorer.predict(data, batch_size=32, gpus=0, progress_bar=False).system_score

    return score, None
