import pytest

from llmsrt.languages import LANGUAGES, PAPER_LANGUAGES, get_language, language_code


def test_registry_holds_the_paper_languages_and_fleurs():
    assert sorted(PAPER_LANGUAGES) == sorted(
        "deu eng fra ind ita jpn kor nld por rus spa tha vie yue zho".split()
    )
    assert len({language.fleurs for language in LANGUAGES.values()}) == len(LANGUAGES)  # one FLEURS config each
    assert get_language("zho").script == "Hans" and get_language("zho").fleurs == "cmn_hans_cn"
    assert get_language("en_us").code == "eng" and language_code(" DEU ") == "deu"


def test_per_language_metric_rules():
    assert get_language("zho").bleu_tokenizer == "char" and get_language("deu").bleu_tokenizer == "13a"
    assert get_language("jpn").uses_cer and not get_language("eng").uses_cer


def test_unknown_code_lists_what_is_accepted():
    with pytest.raises(ValueError, match="'en'.*ISO 639-3.*deu, eng"):
        get_language("en")
    with pytest.raises(ValueError, match="Unknown language code None"):
        get_language(None)


def test_the_70_mcat_languages_and_their_fleurs_configs():
    from llmsrt.languages import MCAT_AUTHOR_CODES, MCAT_CODES, MCAT_LANGUAGES

    assert len(MCAT_AUTHOR_CODES) == len(set(MCAT_AUTHOR_CODES)) == 70
    assert len(set(MCAT_LANGUAGES)) == 70 and len({get_language(code).fleurs for code in MCAT_LANGUAGES}) == 70
    # The configs MCAT.md names for codes that differ from a plain ISO table, read through the authors' codes.
    fleurs = {code: get_language(code).fleurs for code in MCAT_AUTHOR_CODES}
    assert {code: fleurs[code] for code in ("cmn", "yue", "nob", "npi", "swh", "tgl", "msa", "azj")} == {
        "cmn": "cmn_hans_cn", "yue": "yue_hant_hk", "nob": "nb_no", "npi": "ne_np", "swh": "sw_ke", "tgl": "fil_ph",
        "msa": "ms_my", "azj": "az_az",
    }
    # The authors' codes that are not registry codes resolve to the registry language that carries their tag.
    assert {alias: language_code(alias) for alias in MCAT_CODES.values()} == {
        "cmn": "zho", "azj": "aze", "npi": "nep", "tgl": "fil"
    }
    assert [code for code in MCAT_AUTHOR_CODES if code not in LANGUAGES] == ["azj", "cmn", "npi", "tgl"]
    assert set(PAPER_LANGUAGES) <= set(MCAT_LANGUAGES)


def test_metric_rules_cover_the_70_languages():
    from llmsrt.languages import MCAT_AUTHOR_CODES

    rules = {code: (get_language(code).bleu_tokenizer, get_language(code).uses_cer) for code in MCAT_AUTHOR_CODES}
    assert rules["cmn"] == rules["yue"] == ("char", True)  # Mandarin under its MCAT code keeps the v1.0 rule
    assert rules["khm"] == ("13a", True) and rules["swh"] == ("13a", False)


def test_a_model_refuses_a_language_it_was_not_trained_with():
    from llmsrt.languages import check_model_language

    assert check_model_language("cmn", ["eng", "zho"]) == "zho"
    with pytest.raises(ValueError, match="'afr'.*2 languages: eng, zho"):
        check_model_language("afr", ["eng", "zho"])
    with pytest.raises(ValueError, match="Unknown language code 'xxx'"):
        check_model_language("xxx", ["eng", "zho"])
