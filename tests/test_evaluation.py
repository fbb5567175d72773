import json
import subprocess
import sys
from pathlib import Path

import evaluate
import pytest
import sacrebleu
from helpers import save_model

from llmsrt.data.toy import build_toy_corpus
from llmsrt.evaluation import SPEECH_TRANSLATION_METRIC, EvalArguments, bleu_tokenizer, error_rate, write_report
from llmsrt.evaluation.result_tables import matrix_markdown
from llmsrt.evaluation.scoring import averages
from llmsrt.languages import PAPER_LANGUAGES

ROOT = Path(__file__).resolve().parents[1]

RECORDS = [
    {"id": "1", "src_lang": "eng", "tgt_lang": "deu", "ref_transcription": "The train leaves at nine.",
     "hyp_transcription": "the train leaves at nine", "ref_translation": "Der Zug fährt um neun Uhr ab.",
     "hyp_translation": "Der Zug fährt um neun ab."},
    {"id": "2", "src_lang": "eng", "tgt_lang": "deu", "ref_transcription": "Good morning, my friend!",
     "hyp_transcription": "good morning friend", "ref_translation": "Guten Morgen, mein Freund!",
     "hyp_translation": "Guten Morgen, Freund!"},
    {"id": "3", "src_lang": "eng", "tgt_lang": "zho", "ref_transcription": "I like tea.",
     "hyp_transcription": "i like tea", "ref_translation": "我喜欢喝茶。", "hyp_translation": "我喜欢茶。"},
    {"id": "4", "src_lang": "zho", "tgt_lang": "eng", "ref_transcription": "你好世界",
     "hyp_transcription": "你好世", "ref_translation": "Hello world.", "hyp_translation": "Hello, world!"},
]


def test_bleu_tokenizer_rule_per_target_language():
    rule = {code: bleu_tokenizer(code) for code in PAPER_LANGUAGES}
    assert {code for code, tok in rule.items() if tok == "char"} == {"tha", "jpn", "kor", "zho", "yue"}
    assert all(tok == "13a" for code, tok in rule.items() if code not in {"tha", "jpn", "kor", "zho", "yue"})
    assert bleu_tokenizer("zho", {"zho": "zh"}) == "zh" and bleu_tokenizer("jpn", {"jpn": "ja-mecab"}) == "ja-mecab"
    with pytest.raises(ValueError, match="'moses'"):
        bleu_tokenizer("deu", {"deu": "moses"})


def test_wer_and_cer_on_hand_made_cases():
    # normalised: "the cat sat on the mat" vs "the cat sat on mat": one deletion in six words
    assert error_rate(["The cat sat on mat"], ["The cat sat on the mat."], "eng") == ("wer", pytest.approx(100 / 6))
    # Chinese is scored by characters: one of four missing
    assert error_rate(["你好世"], ["你好，世界。"], "zho") == ("cer", pytest.approx(25.0))
    assert error_rate(["hello"], ["Hello!"], "eng") == ("wer", 0.0)


def test_report_bleu_equals_sacrebleu_on_predictions(tmp_path):
    args = EvalArguments(model="unused", output_dir=str(tmp_path), comet_model="none")
    results = write_report(RECORDS, tmp_path, args)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert rows == RECORDS
    for direction, tokenize in (("eng-deu", "13a"), ("eng-zho", "char"), ("zho-eng", "13a")):
        chosen = [row for row in rows if f"{row['src_lang']}-{row['tgt_lang']}" == direction]
        direct = sacrebleu.corpus_bleu([r["hyp_translation"] for r in chosen], [[r["ref_translation"] for r in chosen]],
                                       tokenize=tokenize).score
        scores = results["directions"][direction]
        assert scores["bleu"] == pytest.approx(direct) and scores["bleu_tokenizer"] == tokenize
        assert f"tok:{tokenize}" in scores["bleu_signature"]
    zho_13a = sacrebleu.corpus_bleu(["我喜欢茶。"], [["我喜欢喝茶。"]], tokenize="13a").score
    assert results["directions"]["eng-zho"]["bleu"] != pytest.approx(zho_13a)  # the char rule is what counts
    assert results["directions"]["zho-eng"]["asr_metric"] == "cer"
    assert results["comet"].startswith("skipped")
    for name in ("results.json", "matrix.md", "bleu_heatmap.png"):
        assert (tmp_path / name).is_file()


def test_matrix_averages():
    directions = {
        "eng-deu": {"src_lang": "eng", "tgt_lang": "deu", "bleu": 30.0},
        "eng-fra": {"src_lang": "eng", "tgt_lang": "fra", "bleu": 40.0},
        "deu-eng": {"src_lang": "deu", "tgt_lang": "eng", "bleu": 20.0},
        "fra-deu": {"src_lang": "fra", "tgt_lang": "deu", "bleu": 10.0},
    }
    means = averages(directions)["bleu"]
    assert means == {"all": 25.0, "eng->X": 35.0, "X->eng": 20.0}
    table = matrix_markdown(directions, averages(directions))
    assert "| **eng** | 30.0 | – | 40.0 | 35.0 |" in table  # row average
    assert "| **avg** | 20.0 | 20.0 | 40.0 | 25.0 |" in table  # column averages and overall
    assert "eng->X: 35.0; X->eng: 20.0" in table


def test_evaluate_module_loads_by_path_and_agrees(tmp_path):
    metric = evaluate.load(SPEECH_TRANSLATION_METRIC)
    chosen = [r for r in RECORDS if r["tgt_lang"] == "zho"]
    out = metric.compute(predictions=[r["hyp_translation"] for r in chosen],
                         references=[r["ref_translation"] for r in chosen], tgt_lang="zho", src_lang="eng")
    direct = sacrebleu.corpus_bleu(["我喜欢茶。"], [["我喜欢喝茶。"]], tokenize="char").score
    assert out["bleu"] == pytest.approx(direct)
    report = write_report(RECORDS, tmp_path, EvalArguments(model="x", output_dir=str(tmp_path), comet_model="none"))
    everything = metric.compute(predictions=[r["hyp_translation"] for r in RECORDS],
                                references=[r["ref_translation"] for r in RECORDS],
                                tgt_lang=[r["tgt_lang"] for r in RECORDS], src_lang=[r["src_lang"] for r in RECORDS])
    assert everything["bleu"] == pytest.approx(report["averages"]["bleu"]["all"])


@pytest.mark.slow
def test_eval_py_end_to_end_with_reference_delta(lively, tmp_path):
    model, processor = lively
    model_dir = save_model(tmp_path / "model", model, processor)
    manifest = build_toy_corpus(tmp_path / "toy")
    reference = tmp_path / "published.csv"
    reference.write_text("src,tgt,bleu,spbleu,comet\neng,deu,29.1,30.0,85.0\nxxx,yyy,1,1,1\n")
    out = tmp_path / "eval"
    subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), "--model", str(model_dir), "--manifest", str(manifest),
         "--output_dir", str(out), "--batch_size", "5", "--num_beams", "2", "--max_new_tokens", "8",
         "--directions", "eng-deu", "deu-fra", "--reference_csv", str(reference), "--comet_model", "none"],
        check=True, capture_output=True, cwd=tmp_path, timeout=600,
    )
    results = json.loads((out / "results.json").read_text())
    assert sorted(results["directions"]) == ["deu-fra", "eng-deu"] and results["examples"] == 16
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {row["direction"] for row in rows} == {"eng-deu", "deu-fra"} and len(rows) == 16
    for direction in ("eng-deu", "deu-fra"):
        chosen = [row for row in rows if row["direction"] == direction]
        direct = sacrebleu.corpus_bleu([r["hyp_translation"] for r in chosen],
                                       [[r["ref_translation"] for r in chosen]], tokenize="13a").score
        assert results["directions"][direction]["bleu"] == pytest.approx(direct)
    delta = (out / "reference_delta.md").read_text()
    assert "| eng-deu |" in delta and "29.1" in delta and "xxx-yyy" not in delta
    assert (out / "bleu_heatmap.png").stat().st_size > 1000


def test_length_sorted_batches_cover_every_example_once():
    import numpy as np

    from llmsrt.evaluation.evaluator import length_sorted_batches

    lengths = [16000, 4000, 32000, 8000, 24000]
    examples = [{"id": str(i), "audio": {"array": np.full(n, 0.1, np.float32), "sampling_rate": 16000}}
                for i, n in enumerate(lengths)]
    batches = list(length_sorted_batches(examples, batch_size=2, window=32))
    ids = [example["id"] for batch, _ in batches for example in batch]
    assert sorted(ids) == ["0", "1", "2", "3", "4"] and [len(b) for b, _ in batches] == [2, 2, 1]
    sizes = [waveform.size for _, waveforms in batches for waveform in waveforms]
    assert sizes == sorted(lengths)
