"""MCAT's 70 languages through the processor, the pipeline and eval.py, on a tiny folder that records them (with
MCAT's tags: <|cmn|> for Mandarin); a language a folder was not trained with is refused with its list."""

import json

import numpy as np
import pytest
from corpus_fixtures import write_fleurs70
from helpers import CORPUS, SAMPLING_RATE, enliven, make_clip, save_model
from transformers import pipeline

from llmsrt import LLMSRTProcessor
from llmsrt.evaluation import EvalArguments, evaluate_model
from llmsrt.languages import MCAT_AUTHOR_CODES, MCAT_CODES, MCAT_LANGUAGES, PAPER_LANGUAGES, language_code
from llmsrt.testing import build_tiny_model_and_processor

GREEDY = {"do_sample": False, "num_beams": 1, "max_new_tokens": 4, "no_repeat_ngram_size": 0}


@pytest.fixture(scope="module")
def mcat_folder(tmp_path_factory):
    model, processor = build_tiny_model_and_processor(CORPUS)
    processor.languages, processor.language_tags = list(MCAT_LANGUAGES), dict(MCAT_CODES)
    return save_model(tmp_path_factory.mktemp("mcat-tiny"), enliven(model), processor)


def test_the_processor_writes_the_70_tags_and_refuses_others(mcat_folder, saved_tiny):
    saved = json.loads((mcat_folder / "processor_config.json").read_text())
    assert saved["languages"] == list(MCAT_LANGUAGES) and saved["language_tags"] == MCAT_CODES
    processor = LLMSRTProcessor.from_pretrained(mcat_folder)
    clip = make_clip(0.5, 1)
    for code in MCAT_AUTHOR_CODES:  # the authors' codes, as a user of their model writes them
        target = "deu" if code == "eng" else "eng"
        ids = processor(audio=clip, src_lang=code, tgt_lang=target)["input_ids"][0].tolist()
        prompt = processor.tokenizer.decode([i for i in ids if i != processor.audio_token_id])
        assert prompt == f"<|{code}|><|{target}|>"
    with pytest.raises(ValueError, match="'zul'.*70 languages: afr, amh"):
        processor(audio=clip, src_lang="eng", tgt_lang="zul")
    # A folder saved before the field existed was trained with v1.0's 15: MCAT's extra languages are refused.
    v1 = LLMSRTProcessor.from_pretrained(saved_tiny)
    assert v1.languages is None
    with pytest.raises(ValueError, match=f"'swh'.*15 languages: {', '.join(PAPER_LANGUAGES)}"):
        v1(audio=clip, src_lang="swh", tgt_lang="eng")


def test_the_pipeline_translates_from_each_of_the_70(mcat_folder):
    translator = pipeline("speech-translation", model=str(mcat_folder), trust_remote_code=True)
    clips = [{"array": make_clip(0.4, i), "sampling_rate": SAMPLING_RATE} for i in range(len(MCAT_AUTHOR_CODES))]
    targets = ["cmn" if code == "eng" else "eng" for code in MCAT_AUTHOR_CODES]
    results = translator(clips, src_lang=list(MCAT_AUTHOR_CODES), tgt_lang=targets, batch_size=16,
                         generate_kwargs=GREEDY)
    assert [r["src_lang"] for r in results] == list(MCAT_LANGUAGES)
    assert [r["tgt_lang"] for r in results] == [language_code(code) for code in targets]
    assert all(isinstance(r["translation"], str) for r in results)
    single = translator(clips[11], src_lang="cmn", tgt_lang="eng", generate_kwargs=GREEDY)
    assert single == results[11] and single["src_lang"] == "zho"
    silence = {"array": np.zeros(SAMPLING_RATE, dtype=np.float32), "sampling_rate": SAMPLING_RATE}
    for clip in (clips[0], silence):  # a clip without speech is answered without the model, and checked the same
        with pytest.raises(ValueError, match="'ckb'.*70 languages"):
            translator(clip, src_lang="ckb", tgt_lang="eng", generate_kwargs=GREEDY)
    assert translator(silence, src_lang="tgl", tgt_lang="eng")["no_speech"]


@pytest.mark.slow
def test_eval_reads_fleurs_in_the_70_languages(mcat_folder, tmp_path):
    """Every language into English (69 directions): FLEURS configs, prompts and scoring of all 70."""
    export = write_fleurs70(tmp_path / "fleurs", list(MCAT_LANGUAGES), sentence_ids=(1,))
    args = EvalArguments(model=str(mcat_folder), output_dir=str(tmp_path / "eval"), dataset="fleurs",
                         dataset_path=str(export), directions=["all"], languages=list(MCAT_AUTHOR_CODES),
                         target_languages=["eng"], batch_size=16, num_beams=1, max_new_tokens=4,
                         no_repeat_ngram_size=0, comet_model="none", audio_gain=False, device="cpu")
    results = evaluate_model(args)
    assert len(results["directions"]) == 69 and results["examples"] == 69
    assert {scores["src_lang"] for scores in results["directions"].values()} == set(MCAT_LANGUAGES) - {"eng"}
    assert results["directions"]["zho-eng"]["asr_metric"] == "cer"  # Mandarin keeps the v1 rule's CER
    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert {row["ref_translation"] for row in rows} == {"English sentence 1."}



def test_eval_refuses_a_language_the_folder_was_not_trained_with(saved_tiny, tmp_path):
    """A v1.0-shaped folder (the 15) on FLEURS Swahili: refused before any generation, with the folder's list."""
    export = write_fleurs70(tmp_path / "fleurs", ["eng", "swh"], sentence_ids=(1,))
    args = EvalArguments(model=str(saved_tiny), output_dir=str(tmp_path / "eval"), dataset="fleurs",
                         dataset_path=str(export), directions=["swh-eng"], comet_model="none", audio_gain=False,
                         device="cpu")
    with pytest.raises(ValueError, match=r"'swh' \(Swahili\)\. Its 15 languages: deu, eng"):
        evaluate_model(args)
    assert not (tmp_path / "eval" / "predictions.jsonl").exists()
