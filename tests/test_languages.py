import pytest

from llmsrt.languages import LANGUAGES, PAPER_LANGUAGES, get_language, language_code


def test_registry_holds_the_paper_languages_and_fleurs():
    assert sorted(PAPER_LANGUAGES) == sorted(
        "deu eng fra ind ita jpn kor nld por rus spa tha vie yue zho".split()
    )
    assert len(LANGUAGES) == 102  # every FLEURS language
    assert len({language.fleurs for language in LANGUAGES.values()}) == 102
    assert get_language("zho").script == "Hans" and get_language("zho").fleurs == "cmn_hans_cn"
    assert get_language("en_us").code == "eng" and language_code(" DEU ") == "deu"


def test_per_language_metric_rules():
    assert {c for c, lang in LANGUAGES.items() if lang.bleu_tokenizer == "char"} == {
        "tha", "jpn", "kor", "zho", "yue", "lao", "mya"
    }
    assert get_language("deu").bleu_tokenizer == "13a"
    assert get_language("jpn").uses_cer and not get_language("eng").uses_cer


def test_unknown_code_lists_what_is_accepted():
    with pytest.raises(ValueError, match="Unknown language code 'en'.*ISO 639-3.*paper languages: deu, eng"):
        get_language("en")
    with pytest.raises(ValueError, match="Unknown language code None"):
        get_language(None)
