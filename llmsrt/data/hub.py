"""Adapters for speech datasets in their Hugging Face Hub layouts: FLEURS, CoVoST-2 and Common Voice.

Each returns the example schema (`llmsrt.data.schema`). The Hub ids are the defaults; `path=` points the same code
at a mirror or a local folder in the same layout.
"""

import datasets

from ..languages import LANGUAGES, get_language
from .schema import standardize, undecoded

FLEURS = "google/fleurs"
COVOST2 = "facebook/covost2"
COMMON_VOICE = "mozilla-foundation/common_voice_17_0"

# Common Voice / CoVoST-2 locale names that differ from the ISO 639-1 code Whisper uses.
_LOCALES = {"zho": "zh-CN", "yue": "zh-HK", "nob": "nb-NO", "fil": "tl"}


def locale_of(code: str) -> str:
    """The Common Voice / CoVoST-2 locale of a language (`"eng"` -> `"en"`, `"zho"` -> `"zh-CN"`)."""
    language = get_language(code)
    locale = _LOCALES.get(language.code, language.whisper)
    if locale is None:
        raise ValueError(f"{language.name} ({language.code}) has no Common Voice / CoVoST-2 locale.")
    return locale


def load_fleurs(
    src_lang: str,
    tgt_lang: str | None = None,
    split: str = "train",
    path: str = FLEURS,
    streaming: bool = False,
):
    """FLEURS utterances of `src_lang`; with `tgt_lang`, X->Y pairs joined on the FLEURS sentence `id`.

    The transcript is the source utterance's `raw_transcription`; the translation is the `raw_transcription` of the
    same sentence `id` in the target language. Utterances whose sentence has no target counterpart are dropped.
    """
    source = get_language(src_lang)
    utterances = undecoded(datasets.load_dataset(path, source.fleurs, split=split, streaming=streaming))
    columns = {"audio": "audio", "id": "id", "transcript": "raw_transcription"}
    if tgt_lang is None:
        return standardize(utterances, columns, {"src_lang": source.code, "tgt_lang": None, "translation": None})
    target = get_language(tgt_lang)
    target_text = datasets.load_dataset(path, target.fleurs, split=split, streaming=streaming)
    target_text = target_text.select_columns(["id", "raw_transcription"])
    translations: dict[int, str] = {}
    for row in target_text:
        translations.setdefault(row["id"], row["raw_transcription"])
    paired = utterances.filter(lambda sentence_id: sentence_id in translations, input_columns=["id"])
    paired = paired.map(lambda sentence_id: {"translation": translations[sentence_id]}, input_columns=["id"])
    return standardize(
        paired, {**columns, "translation": "translation"}, {"src_lang": source.code, "tgt_lang": target.code}
    )


def load_covost2(
    src_lang: str,
    tgt_lang: str,
    split: str = "train",
    path: str = COVOST2,
    data_dir: str | None = None,
    streaming: bool = False,
):
    """CoVoST-2 `src_tgt` pairs: `sentence` is the transcript, `translation` the translation.

    The Hub loader needs the matching Common Voice release on disk: pass its folder as `data_dir`.
    """
    source, target = get_language(src_lang), get_language(tgt_lang)
    config = f"{locale_of(source.code)}_{locale_of(target.code)}"
    pairs = datasets.load_dataset(path, config, split=split, data_dir=data_dir, streaming=streaming)
    columns = {"audio": "audio", "id": "id", "transcript": "sentence", "translation": "translation"}
    return standardize(pairs, columns, {"src_lang": source.code, "tgt_lang": target.code})


def language_of_locale(locale: str) -> str:
    """The ISO 639-3 code of a Common Voice locale (`"en"` -> `"eng"`, `"zh-CN"` -> `"zho"`)."""
    for code, known in _LOCALES.items():
        if known == locale:
            return code
    for language in LANGUAGES.values():
        if language.whisper == locale.split("-")[0]:
            return language.code
    raise ValueError(f"Unknown Common Voice locale {locale!r}: no language of the registry uses it.")


def load_common_voice(src_lang: str, split: str = "train", path: str = COMMON_VOICE, streaming: bool = False):
    """Common Voice transcribed speech (ASR data): `sentence` is the transcript, `locale` gives the language, and
    the row id is the clip's `path`."""
    clips = undecoded(datasets.load_dataset(path, locale_of(src_lang), split=split, streaming=streaming))
    clips = clips.map(lambda locale: {"src_lang": language_of_locale(locale)}, input_columns=["locale"])
    columns = {"audio": "audio", "id": "path", "transcript": "sentence", "src_lang": "src_lang"}
    return standardize(clips, columns, {"tgt_lang": None, "translation": None})
