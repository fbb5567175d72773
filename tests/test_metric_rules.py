"""The two scoring rules of eval.py: v1 (LLM-SRT v1.0: BLEU, char/13a by target language) and v2 (MCAT, v2.0:
spBLEU with sacrebleu's flores200 SentencePiece tokenizer, COMET), and the published MCAT table as the reference.

No package ships FLORES-200's SentencePiece model and the Hub is out of reach here, so the spBLEU path runs on a
SentencePiece model trained by the real sentencepiece library and placed where sacrebleu looks for the FLORES-200 one;
offline, without it, eval refuses with a message (no other tokenizer stands in)."""

import json
import shutil

import pytest
import sacrebleu
from sacrebleu.tokenizers import tokenizer_spm

from llmsrt.evaluation import EvalArguments, write_report
from llmsrt.evaluation.metrics import bleu_tokenizer, flores200_model_path, require_spbleu
from llmsrt.evaluation.result_tables import PUBLISHED_MCAT_LARGE, read_reference
from llmsrt.evaluation.scoring import score_records
from llmsrt.languages import MCAT_AUTHOR_CODES, MCAT_LANGUAGES

spm = pytest.importorskip("sentencepiece")

RECORDS = [
    {"id": "1", "src_lang": "eng", "tgt_lang": "zho", "ref_transcription": "I like tea.",
     "hyp_transcription": "i like tea", "ref_translation": "我喜欢喝茶。", "hyp_translation": "我喜欢茶。"},
    {"id": "2", "src_lang": "eng", "tgt_lang": "swh", "ref_transcription": "The train leaves at nine.",
     "hyp_transcription": "the train leaves at nine", "ref_translation": "Treni inaondoka saa tatu.",
     "hyp_translation": "Treni inaondoka saa tatu asubuhi."},
    {"id": "3", "src_lang": "afr", "tgt_lang": "eng", "ref_transcription": "Die trein vertrek om nege.",
     "hyp_transcription": "die trein vertrek om nege", "ref_translation": "The train leaves at nine.",
     "hyp_translation": "The train departs at nine."},
]
CORPUS = [record[key] for record in RECORDS for key in ("ref_translation", "hyp_translation", "ref_transcription")]


@pytest.fixture
def sacrebleu_dir(tmp_path, monkeypatch):
    """sacrebleu's model folder moved to an empty temporary one, and the FLORES-200 download pointed at a closed
    loopback port (the file name, which sacrebleu derives from the URL, unchanged): offline, as on this machine."""
    monkeypatch.setattr(tokenizer_spm, "SACREBLEU_DIR", str(tmp_path / "sacrebleu"))
    models = dict(tokenizer_spm.SPM_MODELS)
    models["flores200"] = {**models["flores200"], "url": "http://127.0.0.1:9/flores200sacrebleuspm"}
    monkeypatch.setattr(tokenizer_spm, "SPM_MODELS", models)
    return tmp_path / "sacrebleu"


@pytest.fixture
def local_flores200(sacrebleu_dir, tmp_path):
    """A SentencePiece model trained on the test sentences, where sacrebleu reads FLORES-200's."""
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(CORPUS * 20), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(tmp_path / "local"), vocab_size=40,
                                   character_coverage=1.0, minloglevel=2)
    path = flores200_model_path()
    path.parent.mkdir(parents=True)
    shutil.copy(tmp_path / "local.model", path)
    return spm.SentencePieceProcessor(model_file=str(path))


def test_v2_rule_is_flores200_for_every_mcat_language():
    assert {bleu_tokenizer(code, rule="v2") for code in MCAT_LANGUAGES} == {"flores200"}
    assert {bleu_tokenizer(code, {"zho": "zh"}, rule="v2") for code in ("cmn", "zho")} == {"flores200"}
    assert bleu_tokenizer("cmn") == "char" and bleu_tokenizer("swh") == "13a"  # v1 keeps the paper's rule
    with pytest.raises(ValueError, match="'v3'.*v1.*v2"):
        bleu_tokenizer("eng", rule="v3")
    with pytest.raises(ValueError, match="'spbleu'.*v1"):
        EvalArguments(model="m", output_dir="o", metric_rule="spbleu")


def test_offline_without_the_flores200_model_spbleu_refuses_with_a_message(sacrebleu_dir, tmp_path):
    expected = sacrebleu_dir / "models" / "flores200sacrebleuspm"
    assert flores200_model_path() == expected
    with pytest.raises(FileNotFoundError, match="flores200sacrebleuspm") as error:
        require_spbleu()
    assert "127.0.0.1:9" in str(error.value) and "--metric_rule v1" in str(error.value)
    with pytest.raises(FileNotFoundError, match="spBLEU"):  # no silent fallback to another tokenizer
        score_records(RECORDS, metric_rule="v2")
    args = EvalArguments(model="unused", output_dir=str(tmp_path / "out"), comet_model="none", metric_rule="v2")
    with pytest.raises(FileNotFoundError, match="spBLEU"):
        args.check_scoring()  # what eval.py runs before loading the model or generating
    assert not expected.exists()


def test_v2_scores_spbleu_through_the_sentencepiece_model(local_flores200, tmp_path):
    args = EvalArguments(model="unused", output_dir=str(tmp_path), comet_model="none", metric_rule="v2")
    args.check_scoring()
    results = write_report(RECORDS, tmp_path, args)
    for record in RECORDS:
        direction = f"{record['src_lang']}-{record['tgt_lang']}"
        scores = results["directions"][direction]
        pieces = [" ".join(local_flores200.encode(text, out_type=str))
                  for text in (record["hyp_translation"], record["ref_translation"])]
        by_hand = sacrebleu.corpus_bleu([pieces[0]], [[pieces[1]]], tokenize="none").score
        assert scores["spbleu"] == pytest.approx(by_hand) and "bleu" not in scores
        assert scores["bleu_tokenizer"] == "flores200" and "tok:flores200" in scores["bleu_signature"]
    # The pieces are not the v1 rule's tokens: the spBLEU of eng-swh differs from its 13a BLEU.
    swh = RECORDS[1]
    assert results["directions"]["eng-swh"]["spbleu"] != pytest.approx(
        sacrebleu.corpus_bleu([swh["hyp_translation"]], [[swh["ref_translation"]]], tokenize="13a").score)
    assert results["averages"]["spbleu"]["all"] == pytest.approx(
        sum(s["spbleu"] for s in results["directions"].values()) / 3)
    matrix = (tmp_path / "matrix.md").read_text()
    assert matrix.startswith("| spBLEU: src \\ tgt |") and (tmp_path / "bleu_heatmap.png").is_file()


def test_the_published_mcat_table_is_the_reference_of_v2(local_flores200, tmp_path):
    reference = read_reference(PUBLISHED_MCAT_LARGE)
    assert len(reference) == 4830 == 70 * 69
    assert {name.split("-")[0] for name in reference} == set(MCAT_LANGUAGES)  # cmn read as zho, tgl as fil, ...
    spbleu = [float(row["spbleu"]) for row in reference.values()]
    comet = [float(row["comet"]) for row in reference.values()]
    assert round(sum(spbleu) / len(spbleu), 2) == 17.42 and round(sum(comet) / len(comet), 2) == 77.30
    assert reference["eng-zho"]["iso3"] == "eng_cmn" and len(MCAT_AUTHOR_CODES) == 70
    args = EvalArguments(model="unused", output_dir=str(tmp_path), comet_model="none", metric_rule="v2",
                         reference_csv=str(PUBLISHED_MCAT_LARGE))
    args.check_scoring()
    results = write_report(RECORDS, tmp_path, args)
    delta = (tmp_path / "reference_delta.md").read_text().splitlines()
    assert delta[0] == "| direction | ours (spBLEU) | published | delta |"
    row = next(line for line in delta if line.startswith("| eng-zho |"))
    ours = results["directions"]["eng-zho"]["spbleu"]
    published = float(reference["eng-zho"]["spbleu"])
    assert row == f"| eng-zho | {ours:.1f} | {published:.1f} | {ours - published:+.1f} |"
    assert delta[-1].startswith("| **average (3)** |")
    # The v1 rule scores BLEU, a column MCAT's table lacks: refused before any generation.
    v1 = EvalArguments(model="unused", output_dir=str(tmp_path), comet_model="none", metric_rule="v1",
                       reference_csv=str(PUBLISHED_MCAT_LARGE))
    with pytest.raises(ValueError, match="bleu.*idx, iso3, spbleu, comet"):
        v1.check_scoring()
    assert json.loads((tmp_path / "results.json").read_text())["settings"]["metric_rule"] == "v2"


def test_a_model_card_reports_the_rules_bleu(local_flores200, tmp_path):
    from llmsrt.hub.card import eval_results

    args = EvalArguments(model="unused", output_dir=str(tmp_path), comet_model="none", metric_rule="v2")
    results = write_report(RECORDS, tmp_path, args)
    entries = eval_results(results, "FLEURS", "google/fleurs")
    assert {entry.metric_type for entry in entries} == {"spbleu", "chrf++"}
    zho = next(entry for entry in entries if entry.dataset_config == "eng-zho")
    assert zho.metric_name == "spBLEU eng-zho"
    assert zho.metric_value == round(results["directions"]["eng-zho"]["spbleu"], 2)
