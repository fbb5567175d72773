"""FLEURS over MCAT's 70 languages: every direction among the chosen languages (4,830 for the 70), narrowed by
source, target and centre filters, read from an export in the published parquet layout (tests/corpus_fixtures.py)."""

import pytest
from corpus_fixtures import fleurs_sentence as sentence
from corpus_fixtures import write_fleurs70

from llmsrt.data.arguments import DataArguments
from llmsrt.data.directions import directions_among, filter_directions
from llmsrt.data.stage_data import load_stage_data
from llmsrt.languages import MCAT_AUTHOR_CODES, MCAT_LANGUAGES


@pytest.fixture(scope="module")
def fleurs70(tmp_path_factory):
    """Two FLEURS sentences in each of the 70 languages (sentence 2 missing in Swahili), under each language's
    FLEURS config, as the Hub's export lays them out."""
    return write_fleurs70(tmp_path_factory.mktemp("fleurs70"), list(MCAT_LANGUAGES), missing={"swh": (2,)})


def test_every_direction_among_the_70_and_the_filters():
    everything = directions_among(MCAT_AUTHOR_CODES)
    assert len(everything) == len(set(everything)) == 4830 and ("eng", "zho") in everything
    assert all(source != target for source, target in everything)
    english_centric = directions_among(MCAT_AUTHOR_CODES, centre_languages=["eng"])
    assert len(english_centric) == 138 and all("eng" in pair for pair in english_centric)
    into_mandarin = directions_among(MCAT_AUTHOR_CODES, target_languages=["cmn"])  # MCAT's code for zho
    assert len(into_mandarin) == 69 and {target for _, target in into_mandarin} == {"zho"}
    assert directions_among(["eng", "deu", "cmn", "zho"]) == [("eng", "deu"), ("eng", "zho"), ("deu", "eng"),
                                                              ("deu", "zho"), ("zho", "eng"), ("zho", "deu")]
    assert filter_directions([("eng", "deu"), ("deu", "fra")], source_languages=["deu"]) == [("deu", "fra")]
    with pytest.raises(ValueError, match=r"\(source_languages fra\)"):
        filter_directions([("eng", "deu"), ("deu", "fra")], source_languages=["fra"])
    with pytest.raises(ValueError, match="Unknown language code 'xx'"):
        directions_among(["eng", "deu"], centre_languages=["xx"])


def test_the_fleurs_loader_reads_all_70_configs_into_directions(fleurs70):
    """Mandarin (`cmn`) into each of the other 69 languages: every config's texts are joined on the sentence id."""
    args = DataArguments(dataset="fleurs", dataset_path=str(fleurs70), directions=["all"],
                         languages=list(MCAT_AUTHOR_CODES), source_languages=["cmn"], train_split="test")
    examples = load_stage_data(args, "srt", "unused").examples
    rows = [examples[i] for i in range(len(examples))]
    assert {row["src_lang"] for row in rows} == {"zho"}
    assert {row["tgt_lang"] for row in rows} == set(MCAT_LANGUAGES) - {"zho"}
    assert len(rows) == 68 * 2 + 1  # Swahili has sentence 1 only
    for row in rows:
        assert row["transcript"] == sentence("zho", int(row["id"]))
        assert row["translation"] == sentence(row["tgt_lang"], int(row["id"]))


def test_filters_reach_the_fleurs_stages(fleurs70):
    """English-centric among five languages gives eight directions; the ASR stage reads the sources they use."""
    languages = ["eng", "cmn", "npi", "tgl", "azj"]
    args = DataArguments(dataset="fleurs", dataset_path=str(fleurs70), directions=["all"], languages=languages,
                         centre_languages=["eng"], train_split="test")
    examples = load_stage_data(args, "srt", "unused").examples
    directions = {(s, t) for s, t in zip(examples["src_lang"], examples["tgt_lang"])}
    assert directions == {pair for code in ("zho", "nep", "fil", "aze") for pair in (("eng", code), (code, "eng"))}
    assert len(examples) == 16
    asr = load_stage_data(
        DataArguments(dataset="fleurs", dataset_path=str(fleurs70), directions=["all"], languages=languages,
                      source_languages=["npi", "tgl"], train_split="test"), "asr", "unused").examples
    assert sorted(set(asr["src_lang"])) == ["fil", "nep"] and len(asr) == 4
    assert sorted(set(asr["transcript"])) == sorted(sentence(c, i) for c in ("nep", "fil") for i in (1, 2))
