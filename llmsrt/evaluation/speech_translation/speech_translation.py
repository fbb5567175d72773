"""`evaluate` module of llmsrt: BLEU with the LLM-SRT tokenizer rule and chrF++, per direction and averaged.

Load it by path, offline: `evaluate.load(llmsrt.evaluation.SPEECH_TRANSLATION_METRIC)`. It computes exactly what
`eval.py` reports, through the same code.
"""

import datasets
import evaluate

from llmsrt.evaluation.scoring import score_records

_DESCRIPTION = """BLEU (sacrebleu; `char` tokenizer for tha/jpn/kor/zho/yue/lao/mya targets, `13a` otherwise) and
chrF++ of translations, grouped by direction and averaged over directions, as in the LLM-SRT paper."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): translated hypotheses.
    references (`list[str]`): one reference translation each.
    tgt_lang (`str` or `list[str]`): ISO 639-3 target language(s): one for all, or one per example.
    src_lang (`str` or `list[str]`, optional): source language(s), to group by direction (default "und").
    tokenizer_overrides (`dict`, optional): e.g. {"zho": "zh", "jpn": "ja-mecab"}.
Returns:
    bleu, chrf++: averages over directions (for one direction: that direction's scores);
    directions: per-direction scores with sacrebleu signatures.
Example:
    >>> metric = evaluate.load(SPEECH_TRANSLATION_METRIC)
    >>> metric.compute(predictions=["der Zug"], references=["der Zug"], tgt_lang="deu", src_lang="eng")["bleu"]
"""

_CITATION = """@inproceedings{du2025llmsrt,
  title={Making LLMs Better Many-to-Many Speech-to-Text Translators with Curriculum Learning},
  author={Du, Yexing and others},
  booktitle={ACL},
  year={2025}
}"""


def _per_example(value, count):
    return list(value) if isinstance(value, (list, tuple)) else [value] * count


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SpeechTranslation(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
            reference_urls=["https://arxiv.org/abs/2409.19510"],
        )

    def _compute(self, predictions, references, tgt_lang, src_lang="eng", tokenizer_overrides=None):
        count = len(predictions)
        records = [
            {"src_lang": src, "tgt_lang": tgt, "hyp_translation": hyp, "ref_translation": ref,
             "hyp_transcription": "", "ref_transcription": ""}
            for hyp, ref, src, tgt in zip(predictions, references, _per_example(src_lang, count),
                                          _per_example(tgt_lang, count))
        ]
        results = score_records(records, tokenizer_overrides)
        for scores in results["directions"].values():
            for key in ("asr_metric", "asr_error_rate"):
                scores.pop(key)
        return {"bleu": results["averages"]["bleu"]["all"], "chrf++": results["averages"]["chrf++"]["all"],
                "directions": results["directions"]}
