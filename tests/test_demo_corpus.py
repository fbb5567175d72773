import json
import re
import time

import pytest

from llmsrt.data import load_manifest
from llmsrt.demo import VOICES, build_demo_corpus
from llmsrt.demo.corpus import read_sentences, split_of
from llmsrt.demo.templates import SLOT, chinese_pinyin, fill_templates


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-corpus")
    return out, build_demo_corpus(out, languages=["eng", "deu", "zho"], targets_per_clip=None, template_sentences=20)


def test_sentences_are_parallel_in_eight_languages():
    rows = read_sentences()
    assert len(VOICES) >= 8 and {"eng", "deu", "fra", "spa", "zho"} <= set(VOICES)
    assert len(rows) >= 300 and len({row["id"] for row in rows}) == len({row["eng"] for row in rows}) == len(rows)
    assert all(row[code].strip() for row in rows for code in VOICES)


@pytest.mark.slow
def test_corpus_splits_by_sentence_with_held_out_voices(corpus):
    out, manifests = corpus
    rows = {split: [json.loads(line) for line in path.read_text().splitlines()] for split, path in manifests.items()}
    sentence = {split: {row["id"].split("-")[0] for row in split_rows} for split, split_rows in rows.items()}
    assert sentence["train"] and sentence["test"]
    assert not sentence["train"] & sentence["test"] and not sentence["train"] & sentence["dev"]
    voices = {split: {row["voice"] for row in split_rows} for split, split_rows in rows.items()}
    assert not voices["train"] & voices["test"]
    assert {row["src_lang"] + "-" + row["tgt_lang"] for row in rows["test"]} == {
        f"{s}-{t}" for s in ("eng", "deu", "zho") for t in ("eng", "deu", "zho") if s != t}
    chinese = next(row for row in rows["train"] if row["src_lang"] == "zho")
    assert not chinese["transcript"].isascii()  # written in characters, spoken from pinyin
    examples = load_manifest(manifests["test"])
    assert len(examples) == len(rows["test"]) and examples[0]["audio"]["path"].endswith(".wav")
    assert all(split_of(s) == "test" for s in sentence["test"])
    templates = {s for s in sentence["train"] if s.startswith("tpl")}
    assert len(templates) == 20 and not any(s.startswith("tpl") for s in sentence["dev"] | sentence["test"])


def test_templates_are_parallel_and_vary_in_what_only_the_audio_tells():
    rows = fill_templates(40, list(VOICES))
    assert len({row["eng"] for row in rows}) == 40 and fill_templates(40, list(VOICES)) == rows
    for row in rows:
        assert not SLOT.search("".join(row[code] for code in VOICES))  # every slot filled, in every language
        numbers = {code: re.findall(r"\d+", row[code]) for code in VOICES}
        assert len({tuple(found) for found in numbers.values()}) == 1  # the same number in every language
        assert row["zho_pinyin"].replace("。", "").isascii()
        assert not re.search(r"(?<![a-z])\d", row["zho_pinyin"])  # numbers spoken as numerals: only tone digits
    platform = next(row for row in rows if "platform" in row["eng"])
    assert platform["deu"].startswith("Der Zug nach") and "Gleis" in platform["deu"]
    assert chinese_pinyin("房间号是47。").split()[:6] == ["fang2", "jian1", "hao4", "shi4", "si4", "shi2"]
    with pytest.raises(ValueError, match=r"not \['jpn'\]"):
        fill_templates(1, ["eng", "jpn"])


@pytest.mark.slow
def test_rebuild_is_cached(corpus):
    out, manifests = corpus
    before = {path: path.stat().st_mtime_ns for path in manifests.values()}
    started = time.time()
    assert build_demo_corpus(out, languages=["eng", "deu", "zho"], targets_per_clip=None,
                             template_sentences=20) == manifests
    assert time.time() - started < 1 and before == {path: path.stat().st_mtime_ns for path in manifests.values()}
    with pytest.raises(ValueError, match="'tlh'.*speaks"):
        build_demo_corpus(out, languages=["eng", "tlh"])


@pytest.mark.slow
def test_the_corpus_reaches_training_and_evaluation_as_manifests(corpus):
    """What the demo hands to training: `--dataset manifest --train_manifest CORPUS/train.jsonl` (and a split's
    manifest to evaluation)."""
    from llmsrt.data.stage_data import load_stage_examples
    from llmsrt.training.arguments import DataArguments

    out, manifests = corpus
    data_args = DataArguments(dataset="manifest", train_manifest=str(manifests["train"]),
                              eval_manifest=str(manifests["test"]))
    train = load_stage_examples(data_args, "srt", str(out))
    test = load_stage_examples(data_args, "srt", str(out), split="eval")
    assert {row["src_lang"] for row in train} == {"eng", "deu", "zho"} and len(test) > 0
    assert not {row["id"].split("-")[0] for row in train} & {row["id"].split("-")[0] for row in test}
