"""The papers' metrics: sacrebleu BLEU (v1.0: tokenizer by target language; v2.0: spBLEU, the FLORES-200
SentencePiece tokenizer for every language), chrF++, WER/CER after Whisper's basic normalisation, and COMET when it
is installed and its model is available locally."""

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jiwer
import sacrebleu
from transformers.models.whisper.english_normalizer import BasicTextNormalizer

from ..languages import SPBLEU_TOKENIZER, get_language

BLEU_TOKENIZERS = ("13a", "char", "zh", "ja-mecab", "intl", "none", SPBLEU_TOKENIZER)
# How each version of the method scores a translation: the name of its BLEU in results (v1.0, ACL 2025: BLEU with
# `char` / `13a` by target language; v2.0, MCAT: spBLEU with `flores200` for every language), COMET beside both.
METRIC_RULES = {"v1": "bleu", "v2": "spbleu"}
_normalizer = BasicTextNormalizer()


def check_metric_rule(rule: str) -> str:
    """`rule` if it is one of `METRIC_RULES`, else a `ValueError` listing them."""
    if rule not in METRIC_RULES:
        raise ValueError(f"Unknown metric rule {rule!r}: use v1 (LLM-SRT v1.0: BLEU with char/13a by target "
                         "language) or v2 (MCAT, v2.0: spBLEU, sacrebleu's flores200 tokenizer, for every language).")
    return rule


def bleu_tokenizer(tgt_lang: str, overrides: dict[str, str] | None = None, rule: str = "v1") -> str:
    """Rule `v1` (the LLM-SRT paper): `char` for tha, jpn, kor, zho, yue, lao, mya targets, `13a` otherwise;
    `overrides` maps a language to another tokenizer (e.g. `{"zho": "zh", "jpn": "ja-mecab"}`, as in the older
    CoVoST-2 scripts). Rule `v2` (MCAT): `flores200` for every language (spBLEU; overrides do not apply).
    """
    code = get_language(tgt_lang).code
    if check_metric_rule(rule) == "v2":
        return SPBLEU_TOKENIZER
    tokenizer = (overrides or {}).get(code) or get_language(code).bleu_tokenizer
    if tokenizer not in BLEU_TOKENIZERS:
        raise ValueError(f"Unknown sacrebleu tokenizer {tokenizer!r}; use one of {BLEU_TOKENIZERS}.")
    return tokenizer


def flores200_model_path() -> Path:
    """Where sacrebleu reads the FLORES-200 SentencePiece model of spBLEU (`$SACREBLEU/models/...`, by default under
    `~/.sacrebleu`); sacrebleu downloads it there on first use."""
    from sacrebleu.tokenizers import tokenizer_spm

    url = tokenizer_spm.SPM_MODELS[SPBLEU_TOKENIZER]["url"]
    return Path(tokenizer_spm.SACREBLEU_DIR) / "models" / os.path.basename(url)


def require_spbleu() -> Path:
    """Make sure spBLEU can be computed: the FLORES-200 SentencePiece model is in place, or sacrebleu fetches it
    now. Returns its path.

    Raises:
        FileNotFoundError: the model is missing and could not be fetched (offline), or does not load; the message
            says where sacrebleu looks and where the file comes from. No other tokenizer stands in for it.
    """
    from sacrebleu.tokenizers import tokenizer_spm

    path = flores200_model_path()
    url = tokenizer_spm.SPM_MODELS[SPBLEU_TOKENIZER]["url"]
    try:
        sacrebleu.BLEU(tokenize=SPBLEU_TOKENIZER)  # loads the model; downloads it first when it is missing
    except ImportError as error:
        raise ImportError(f"spBLEU (sacrebleu tokenizer {SPBLEU_TOKENIZER}) needs the sentencepiece package: "
                          "pip install sentencepiece.") from error
    except (OSError, RuntimeError, SystemExit) as error:  # no network, a refused download, a broken file
        raise FileNotFoundError(
            f"spBLEU (sacrebleu tokenizer {SPBLEU_TOKENIZER}, the v2 metric rule) needs the FLORES-200 SentencePiece "
            f"model at {path}, and it is missing or does not load ({type(error).__name__}: {error}); sacrebleu "
            f"fetches it from {url} on first use, which failed here. Copy the file there from a machine that has it "
            "(or point the SACREBLEU environment variable at a folder holding models/"
            f"{path.name}), or score with --metric_rule v1."
        ) from error
    return path


@dataclass
class CorpusScore:
    score: float
    signature: str


@lru_cache(maxsize=8)
def _bleu_metric(tokenize: str, model_path: str | None) -> sacrebleu.BLEU:
    """One sacrebleu BLEU per tokenizer (and FLORES-200 model file: `model_path`), reused over directions."""
    if tokenize == SPBLEU_TOKENIZER:
        require_spbleu()
    return sacrebleu.BLEU(tokenize=tokenize)


def corpus_bleu(hypotheses: list[str], references: list[str], tokenize: str) -> CorpusScore:
    """Corpus BLEU with sacrebleu's `tokenize`; for `flores200` (spBLEU) a `FileNotFoundError` (see `require_spbleu`)
    where its SentencePiece model is missing and cannot be fetched."""
    model_path = str(flores200_model_path()) if tokenize == SPBLEU_TOKENIZER else None
    metric = _bleu_metric(tokenize, model_path)
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
