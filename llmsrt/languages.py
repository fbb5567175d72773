"""Language registry: ISO 639-3 codes, names, scripts and per-language conventions.

The 15 languages of the LLM-SRT paper come first; every other FLEURS language follows. Codes are the
minimalist tags of the method (`<|eng|>`, written by `llmsrt.prompt_builder`), so the registry is the single source
of truth for which tags exist.
"""

from dataclasses import dataclass

# Languages whose BLEU is computed with sacrebleu's `char` tokenizer (the paper's rule).
CHAR_BLEU_LANGUAGES = frozenset({"tha", "jpn", "kor", "zho", "yue", "lao", "mya"})
# Languages written without spaces between words (the pipeline joins their segments without one).
UNSPACED_LANGUAGES = frozenset({"zho", "yue", "jpn", "tha", "lao", "khm", "mya"})
# Languages scored with CER instead of WER on the transcription: the unspaced ones, and Korean (spaced, but its
# words are long syllable blocks, so WER is scored on characters by convention).
CER_LANGUAGES = UNSPACED_LANGUAGES | {"kor"}


@dataclass(frozen=True)
class Language:
    """One language: `code` is ISO 639-3 (the tag), `fleurs` the FLEURS config name, `whisper` Whisper's code."""

    code: str
    name: str
    script: str
    fleurs: str
    whisper: str | None

    @property
    def bleu_tokenizer(self) -> str:
        return "char" if self.code in CHAR_BLEU_LANGUAGES else "13a"

    @property
    def uses_cer(self) -> bool:
        return self.code in CER_LANGUAGES


# (code, name, script, FLEURS config, Whisper language code)
_TABLE = [
    # The 15 languages of the paper.
    ("deu", "German", "Latn", "de_de", "de"),
    ("eng", "English", "Latn", "en_us", "en"),
    ("fra", "French", "Latn", "fr_fr", "fr"),
    ("ind", "Indonesian", "Latn", "id_id", "id"),
    ("ita", "Italian", "Latn", "it_it", "it"),
    ("jpn", "Japanese", "Jpan", "ja_jp", "ja"),
    ("kor", "Korean", "Hang", "ko_kr", "ko"),
    ("nld", "Dutch", "Latn", "nl_nl", "nl"),
    ("por", "Portuguese", "Latn", "pt_br", "pt"),
    ("rus", "Russian", "Cyrl", "ru_ru", "ru"),
    ("spa", "Spanish", "Latn", "es_419", "es"),
    ("tha", "Thai", "Thai", "th_th", "th"),
    ("vie", "Vietnamese", "Latn", "vi_vn", "vi"),
    ("yue", "Cantonese", "Hant", "yue_hant_hk", "yue"),
    ("zho", "Chinese (Mandarin)", "Hans", "cmn_hans_cn", "zh"),
    # The other FLEURS languages.
    ("afr", "Afrikaans", "Latn", "af_za", "af"),
    ("amh", "Amharic", "Ethi", "am_et", "am"),
    ("ara", "Arabic", "Arab", "ar_eg", "ar"),
    ("asm", "Assamese", "Beng", "as_in", "as"),
    ("ast", "Asturian", "Latn", "ast_es", None),
    ("aze", "Azerbaijani", "Latn", "az_az", "az"),
    ("bel", "Belarusian", "Cyrl", "be_by", "be"),
    ("bul", "Bulgarian", "Cyrl", "bg_bg", "bg"),
    ("ben", "Bengali", "Beng", "bn_in", "bn"),
    ("bos", "Bosnian", "Latn", "bs_ba", "bs"),
    ("cat", "Catalan", "Latn", "ca_es", "ca"),
    ("ceb", "Cebuano", "Latn", "ceb_ph", None),
    ("ckb", "Central Kurdish", "Arab", "ckb_iq", None),
    ("ces", "Czech", "Latn", "cs_cz", "cs"),
    ("cym", "Welsh", "Latn", "cy_gb", "cy"),
    ("dan", "Danish", "Latn", "da_dk", "da"),
    ("ell", "Greek", "Grek", "el_gr", "el"),
    ("est", "Estonian", "Latn", "et_ee", "et"),
    ("fas", "Persian", "Arab", "fa_ir", "fa"),
    ("ful", "Fula", "Latn", "ff_sn", None),
    ("fin", "Finnish", "Latn", "fi_fi", "fi"),
    ("fil", "Filipino", "Latn", "fil_ph", "tl"),
    ("gle", "Irish", "Latn", "ga_ie", None),
    ("glg", "Galician", "Latn", "gl_es", "gl"),
    ("guj", "Gujarati", "Gujr", "gu_in", "gu"),
    ("hau", "Hausa", "Latn", "ha_ng", "ha"),
    ("heb", "Hebrew", "Hebr", "he_il", "he"),
    ("hin", "Hindi", "Deva", "hi_in", "hi"),
    ("hrv", "Croatian", "Latn", "hr_hr", "hr"),
    ("hun", "Hungarian", "Latn", "hu_hu", "hu"),
    ("hye", "Armenian", "Armn", "hy_am", "hy"),
    ("ibo", "Igbo", "Latn", "ig_ng", None),
    ("isl", "Icelandic", "Latn", "is_is", "is"),
    ("jav", "Javanese", "Latn", "jv_id", "jw"),
    ("kat", "Georgian", "Geor", "ka_ge", "ka"),
    ("kam", "Kamba", "Latn", "kam_ke", None),
    ("kea", "Kabuverdianu", "Latn", "kea_cv", None),
    ("kaz", "Kazakh", "Cyrl", "kk_kz", "kk"),
    ("khm", "Khmer", "Khmr", "km_kh", "km"),
    ("kan", "Kannada", "Knda", "kn_in", "kn"),
    ("kir", "Kyrgyz", "Cyrl", "ky_kg", None),
    ("ltz", "Luxembourgish", "Latn", "lb_lu", "lb"),
    ("lug", "Ganda", "Latn", "lg_ug", None),
    ("lin", "Lingala", "Latn", "ln_cd", "ln"),
    ("lao", "Lao", "Laoo", "lo_la", "lo"),
    ("lit", "Lithuanian", "Latn", "lt_lt", "lt"),
    ("luo", "Luo", "Latn", "luo_ke", None),
    ("lav", "Latvian", "Latn", "lv_lv", "lv"),
    ("mri", "Maori", "Latn", "mi_nz", "mi"),
    ("mkd", "Macedonian", "Cyrl", "mk_mk", "mk"),
    ("mal", "Malayalam", "Mlym", "ml_in", "ml"),
    ("mon", "Mongolian", "Cyrl", "mn_mn", "mn"),
    ("mar", "Marathi", "Deva", "mr_in", "mr"),
    ("msa", "Malay", "Latn", "ms_my", "ms"),
    ("mlt", "Maltese", "Latn", "mt_mt", "mt"),
    ("mya", "Burmese", "Mymr", "my_mm", "my"),
    ("nob", "Norwegian Bokmal", "Latn", "nb_no", "no"),
    ("nep", "Nepali", "Deva", "ne_np", "ne"),
    ("nso", "Northern Sotho", "Latn", "nso_za", None),
    ("nya", "Nyanja", "Latn", "ny_mw", None),
    ("oci", "Occitan", "Latn", "oc_fr", "oc"),
    ("orm", "Oromo", "Latn", "om_et", None),
    ("ori", "Odia", "Orya", "or_in", None),
    ("pan", "Punjabi", "Guru", "pa_in", "pa"),
    ("pol", "Polish", "Latn", "pl_pl", "pl"),
    ("pus", "Pashto", "Arab", "ps_af", "ps"),
    ("ron", "Romanian", "Latn", "ro_ro", "ro"),
    ("snd", "Sindhi", "Arab", "sd_in", "sd"),
    ("slk", "Slovak", "Latn", "sk_sk", "sk"),
    ("slv", "Slovenian", "Latn", "sl_si", "sl"),
    ("sna", "Shona", "Latn", "sn_zw", "sn"),
    ("som", "Somali", "Latn", "so_so", "so"),
    ("srp", "Serbian", "Cyrl", "sr_rs", "sr"),
    ("swe", "Swedish", "Latn", "sv_se", "sv"),
    ("swh", "Swahili", "Latn", "sw_ke", "sw"),
    ("tam", "Tamil", "Taml", "ta_in", "ta"),
    ("tel", "Telugu", "Telu", "te_in", "te"),
    ("tgk", "Tajik", "Cyrl", "tg_tj", "tg"),
    ("tur", "Turkish", "Latn", "tr_tr", "tr"),
    ("ukr", "Ukrainian", "Cyrl", "uk_ua", "uk"),
    ("umb", "Umbundu", "Latn", "umb_ao", None),
    ("urd", "Urdu", "Arab", "ur_pk", "ur"),
    ("uzb", "Uzbek", "Latn", "uz_uz", "uz"),
    ("wol", "Wolof", "Latn", "wo_sn", None),
    ("xho", "Xhosa", "Latn", "xh_za", None),
    ("yor", "Yoruba", "Latn", "yo_ng", "yo"),
    ("zul", "Zulu", "Latn", "zu_za", None),
]

LANGUAGES: dict[str, Language] = {row[0]: Language(*row) for row in _TABLE}
PAPER_LANGUAGES: tuple[str, ...] = tuple(row[0] for row in _TABLE[:15])
_BY_FLEURS = {language.fleurs: language for language in LANGUAGES.values()}

# The codes MCAT (LLM-SRT v2.0, `yxduir/m2m-70`) writes for a registry language under another code: its tags are
# these (`<|cmn|>` for Mandarin), and `get_language` accepts them. Each names the same FLEURS config.
MCAT_CODES: dict[str, str] = {"zho": "cmn", "aze": "azj", "nep": "npi", "fil": "tgl"}
_ALIASES = {alias: LANGUAGES[code] for code, alias in MCAT_CODES.items()}

# The 70 languages of MCAT, in the authors' codes and order (README of `yxduir/m2m-70`, `taslp_70` of
# `evaluation/test_metric_n.py`): every ordered pair is one of its 4,830 directions.
MCAT_AUTHOR_CODES: tuple[str, ...] = tuple(
    "afr amh ara asm azj bel ben bos bul cat ces cmn cym dan deu ell eng est fas fin fra glg guj heb hin hrv hun hye "
    "ind isl ita jav jpn kan kat kaz khm kir kor lao lav lit mal mkd msa mya nld nob npi pan pol por ron rus slk slv "
    "spa srp swe swh tam tel tgl tha tur ukr urd uzb vie yue".split()
)

# spBLEU: the sacrebleu tokenizer MCAT scores every target language with (the FLORES-200 SentencePiece model).
SPBLEU_TOKENIZER = "flores200"


def get_language(code: str) -> Language:
    """Look up a language by ISO 639-3 code (`"eng"`) or FLEURS config name (`"en_us"`).

    Raises:
        ValueError: the code is unknown; the message lists the accepted codes.
    """
    if isinstance(code, str):
        key = code.strip().lower()
        if key in LANGUAGES:
            return LANGUAGES[key]
        if key in _BY_FLEURS:
            return _BY_FLEURS[key]
        if key in _ALIASES:
            return _ALIASES[key]
    raise ValueError(
        f"Unknown language code {code!r}. Use an ISO 639-3 code such as 'eng', 'deu' or 'zho' "
        f"(paper languages: {', '.join(PAPER_LANGUAGES)}; {len(LANGUAGES)} codes in all, see "
        "`llmsrt.languages.LANGUAGES`; MCAT's codes cmn, azj, npi, tgl are accepted too) or a FLEURS config name "
        "such as 'en_us'."
    )


def language_code(code: str) -> str:
    """Normalise any accepted language identifier to its ISO 639-3 code."""
    return get_language(code).code


# The languages of MCAT (v2.0) as registry codes (Mandarin is `zho`, written `<|cmn|>` through `MCAT_CODES`).
MCAT_LANGUAGES: tuple[str, ...] = tuple(language_code(code) for code in MCAT_AUTHOR_CODES)


def check_languages(languages) -> tuple[str, ...] | None:
    """Registry codes of `languages` (any accepted identifiers) in order, duplicates dropped (`cmn` and `zho` are one
    language); `None` stays `None`.

    Raises:
        ValueError: not a list of codes, or an unknown code (see `get_language`).
    """
    if languages is None:
        return None
    if isinstance(languages, str) or not isinstance(languages, (list, tuple)):
        raise ValueError(f"languages must be a list of language codes (e.g. ['eng', 'deu']), got {languages!r}.")
    return tuple(dict.fromkeys(get_language(code).code for code in languages))


def check_model_language(code: str, languages) -> str:
    """The registry code of `code` if it is among `languages`, those a model was trained with.

    Raises:
        ValueError: `code` is unknown (see `get_language`), or the model was not trained with it; the message lists
            the model's languages.
    """
    language = get_language(code).code
    if language not in languages:
        raise ValueError(
            f"This model was not trained with language {code!r} ({get_language(code).name}). Its "
            f"{len(languages)} languages: {', '.join(languages)}."
        )
    return language
