"""The evaluation path of a converted checkpoint is the paper's (issue 26, point 3).

A tiny checkpoint in the reference's layout (`test_convert_llm_srt_checkpoint.Reference`) is converted, a FLEURS
parquet export with two languages (eng, zho: a `13a` and a `char` / CER language) and several speakers per
sentence is written, and `eval.py` runs on the converted folder as docs/conversion.md documents it, with its
defaults. Its scores are recomputed here with sacrebleu and jiwer on the predictions it wrote, against the FLEURS
`raw_transcription` of each sentence id, with the paper's scoring as shared/reference/LLM-SRT.md states it.
"""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest
import sacrebleu
from corpus_fixtures import fleurs_row, write_fleurs_export
from test_convert_llm_srt_checkpoint import Reference, parts  # noqa: F401 - `parts` is the fixture of the parts
from transformers.models.whisper.english_normalizer import BasicTextNormalizer

from llmsrt.conversion.convert_llm_srt_checkpoint import main as convert
from llmsrt.evaluation import EvalArguments, write_report

ROOT = Path(__file__).resolve().parents[1]
# The paper's decoding (LLM-SRT.md, "Decoding") and scoring ("Evaluation"), written out rather than imported.
PAPER_DECODING = {"num_beams": 5, "max_new_tokens": 400, "no_repeat_ngram_size": 5, "repetition_penalty": 1.0}
PAPER_BLEU_TOKENIZER = {"eng": "13a", "zho": "char"}
PAPER_ASR_METRIC = {"eng": "wer", "zho": "cer"}
SENTENCES = {  # FLEURS sentence id -> raw_transcription, as written (case, punctuation, digits)
    "eng": {101: "The train leaves at nine.", 102: "Good morning, my friend!", 103: "The train leaves at 9 p.m."},
    "zho": {101: "火车九点出发。", 102: "早上好，我的朋友！", 103: "火车晚上9点出发。"},
}
CONFIGS = {"eng": "en_us", "zho": "cmn_hans_cn"}
SPEAKERS = 2  # every sentence read by two speakers in each language: each recording is an example
DIRECTIONS = ["eng-zho", "zho-eng"]


def write_export(root: Path) -> Path:
    tables = {}
    for language, sentences in SENTENCES.items():
        seed = 10 if language == "eng" else 50
        rows = [fleurs_row(CONFIGS[language], "test", sentence_id, text, seed=seed + 2 * sentence_id + speaker,
                           seconds=0.8 + 0.3 * speaker, gender=speaker)
                for sentence_id, text in sentences.items() for speaker in range(SPEAKERS)]
        tables[CONFIGS[language]] = {"test": rows, "train": rows[:2]}
    return write_fleurs_export(root, tables)


@pytest.fixture(scope="module")
def converted(parts, tmp_path_factory):  # noqa: F811
    """A rank-16 single-file checkpoint with the old text branch, converted with the documented command."""
    root = tmp_path_factory.mktemp("converted")
    checkpoint = Reference(parts, hidden=24, with_lora=True, text_branch=True).save_single_file(root / "llm_srt_3b.pt")
    convert(["--checkpoint", str(checkpoint), "--whisper", str(parts[0]), "--llm", str(parts[1]),
             "--output_dir", str(root / "llm-srt-3b")])
    return root / "llm-srt-3b"


def run_eval(folder: Path, fleurs: Path, output_dir: Path) -> dict:
    """`python eval.py --model F --dataset fleurs --dataset_path P --split test --directions ...`: the documented
    command with the paper's decoding left at eval.py's defaults (COMET cannot be downloaded here: it is skipped)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(output_dir.parent / "datasets-cache")}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), "--model", str(folder), "--dataset", "fleurs", "--dataset_path",
         str(fleurs), "--split", "test", "--directions", *DIRECTIONS, "--batch_size", "8",
         "--reference_csv", str(ROOT / "llmsrt/evaluation/reference/llm-srt-qwen2.5-3b-fleurs-210.csv"),
         "--device", "cpu", "--output_dir", str(output_dir)],
        capture_output=True, text=True, env=env, cwd=output_dir.parent, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads((output_dir / "results.json").read_text(encoding="utf-8"))


def normalized(text: str, language: str) -> str:
    """Whisper's basic normaliser; no spaces for a CER language (LLM-SRT.md: WER, CER for zho, after it)."""
    text = BasicTextNormalizer()(text)
    return re.sub(r"\s+", "" if PAPER_ASR_METRIC[language] == "cer" else " ", text).strip()


def assert_paper_scores(results: dict, records: list[dict]) -> None:
    """Each direction's BLEU / chrF++ / WER-CER in `results` equal sacrebleu / jiwer on `records`' hypotheses
    against the FLEURS raw_transcription of each record's sentence id, with the paper's tokenizer and metric."""
    assert sorted(results["directions"]) == sorted(DIRECTIONS)
    for direction in DIRECTIONS:
        src, tgt = direction.split("-")
        rows = [record for record in records if record["direction"] == direction]
        # every speaker's recording of every sentence, joined on the FLEURS sentence id
        assert sorted(int(row["id"]) for row in rows) == sorted(list(SENTENCES[src]) * SPEAKERS)
        references = [SENTENCES[tgt][int(row["id"])] for row in rows]
        transcripts = [SENTENCES[src][int(row["id"])] for row in rows]
        assert [row["ref_translation"] for row in rows] == references  # raw_transcription, as written
        assert [row["ref_transcription"] for row in rows] == transcripts
        hypotheses = [row["hyp_translation"] or "" for row in rows]

        scores = results["directions"][direction]
        print(direction, {k: scores[k] for k in ("n", "bleu", "chrf++", "asr_metric", "asr_error_rate")})
        assert scores["n"] == len(rows) == len(SENTENCES[src]) * SPEAKERS
        assert scores["bleu_tokenizer"] == PAPER_BLEU_TOKENIZER[tgt]
        assert f"tok:{PAPER_BLEU_TOKENIZER[tgt]}" in scores["bleu_signature"]
        bleu = sacrebleu.BLEU(tokenize=PAPER_BLEU_TOKENIZER[tgt]).corpus_score(hypotheses, [references]).score
        chrf = sacrebleu.CHRF(word_order=2).corpus_score(hypotheses, [references]).score
        assert scores["bleu"] == pytest.approx(bleu, abs=1e-9)
        assert scores["chrf++"] == pytest.approx(chrf, abs=1e-9)
        measure = jiwer.cer if PAPER_ASR_METRIC[src] == "cer" else jiwer.wer
        rate = 100 * measure([normalized(t, src) for t in transcripts],
                             [normalized(row["hyp_transcription"] or "", src) for row in rows])
        assert scores["asr_metric"] == PAPER_ASR_METRIC[src]
        assert math.isfinite(scores["asr_error_rate"]) and scores["asr_error_rate"] == pytest.approx(rate, abs=1e-9)
    assert results["averages"]["bleu"]["all"] == pytest.approx(
        sum(results["directions"][d]["bleu"] for d in DIRECTIONS) / len(DIRECTIONS))


def near_misses(records: list[dict]) -> list[dict]:
    """The records with answers near the references (a word / character dropped, a mistaken digit), so that
    BLEU and chrF++ are far from 0 and the tokenizer matters: the random model's answers score 0."""
    def near(text: str) -> str:
        return text.replace("nine", "nein").replace("9", "8").replace("九", "八").replace("friend", "friends")

    return [{**record, "hyp_translation": near(record["ref_translation"])[:-1] if int(record["id"]) % 2 else
             near(record["ref_translation"]), "hyp_transcription": near(record["ref_transcription"])}
            for record in records]


def test_eval_py_on_a_converted_folder_scores_fleurs_as_the_paper(converted, tmp_path):
    results = run_eval(converted, write_export(tmp_path / "fleurs"), tmp_path / "eval")

    # the decoding eval.py ran with and recorded: the paper's, by default
    settings = results["settings"]
    assert {name: settings[name] for name in PAPER_DECODING} == PAPER_DECODING
    assert (settings["chinese_tokenizer"], settings["japanese_tokenizer"]) == ("char", "char")
    assert settings["dataset"] == "fleurs" and settings["split"] == "test"
    generation = json.loads((converted / "generation_config.json").read_text())
    assert {name: generation.get(name, 1.0) for name in PAPER_DECODING} == PAPER_DECODING  # the folder's own

    records = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert results["directions_evaluated"] == sorted(DIRECTIONS)
    assert_paper_scores(results, records)
    assert results["comet"].startswith("skipped")

    # the report files, with each direction against the authors' published figure
    matrix = (tmp_path / "eval" / "matrix.md").read_text()
    delta = (tmp_path / "eval" / "reference_delta.md").read_text()
    for direction in DIRECTIONS:
        assert direction.split("-")[0] in matrix
        published = next(line for line in delta.splitlines() if line.startswith(f"| {direction} |"))
        assert published.split("|")[2].strip() == f"{results['directions'][direction]['bleu']:.1f}"

    # The tiny random model never writes the SRT tag pair, so its translations are empty and score 0: the scoring
    # eval.py ran (write_report, with eval.py's default arguments) is checked again on answers near the references.
    rescored = write_report(near_misses(records), tmp_path / "near", EvalArguments(
        model=str(converted), output_dir=str(tmp_path / "near"), comet_model="none"))
    assert_paper_scores(rescored, near_misses(records))
    zho = [r for r in near_misses(records) if r["tgt_lang"] == "zho"]
    char, plain = (sacrebleu.BLEU(tokenize=tokenize).corpus_score([r["hyp_translation"] for r in zho],
                                                                   [[r["ref_translation"] for r in zho]]).score
                   for tokenize in ("char", "13a"))
    assert rescored["directions"]["eng-zho"]["bleu"] == pytest.approx(char) and abs(char - plain) > 10
    assert all(10 < rescored["directions"][d]["bleu"] < 100 and rescored["directions"][d]["chrf++"] > 10
               for d in DIRECTIONS)


def test_the_converted_folders_card_states_what_was_measured(converted):
    """The converter writes that nothing was measured on real data and names the FLEURS command; eval.py writes its
    scores to its output folder, not into the card (`python -m llmsrt.hub card` renders them, as a trained
    folder's card without the converter's summary: docs/conversion.md)."""
    card = (converted / "README.md").read_text(encoding="utf-8")
    assert "Nothing was measured on real data when this folder was written" in card
    assert "python eval.py --model THIS_FOLDER --dataset fleurs --dataset_path FLEURS --directions all" in card
    assert "21.2 average BLEU over the 210 FLEURS directions" in card  # the authors' figure, named as theirs
    assert "What the converter found and did" in card and "rank 16 (from the tensors)" in card
