"""Common Voice releases as the Mozilla Data Collective publishes them (the corpus left the Hugging Face Hub in
October 2025): `cv-corpus-VERSION/{locale}/{train,dev,test,validated}.tsv` beside `{locale}/clips/*.mp3`.

TSV columns of recent releases: `client_id`, `path`, `sentence_id`, `sentence`, `sentence_domain`, `up_votes`,
`down_votes`, `age`, `gender`, `accents`, `variant`, `locale`, `segment`; only `path` and `sentence` are read.
"""

import csv
import logging
import os
from pathlib import Path

import pandas

from ..languages import LANGUAGES, get_language
from .loading_report import DataReport
from .schema import schema_dataset

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test", "validated")
MISSING_CLIP = "missing clip"
EMPTY_SENTENCE = "empty sentence"

# Common Voice / CoVoST-2 locale names that differ from the ISO 639-1 code Whisper uses.
_LOCALES = {"zho": "zh-CN", "yue": "zh-HK", "nob": "nb-NO", "fil": "tl", "swe": "sv-SE", "gle": "ga-IE",
            "hye": "hy-AM", "nep": "ne-NP", "pan": "pa-IN"}


def locale_of(code: str) -> str:
    """The Common Voice / CoVoST-2 locale of a language (`"eng"` -> `"en"`, `"zho"` -> `"zh-CN"`)."""
    language = get_language(code)
    locale = _LOCALES.get(language.code, language.whisper)
    if locale is None:
        raise ValueError(f"{language.name} ({language.code}) has no Common Voice / CoVoST-2 locale.")
    return locale


def language_of_locale(locale: str) -> str:
    """The ISO 639-3 code of a Common Voice locale (`"en"` -> `"eng"`, `"zh-CN"` -> `"zho"`)."""
    for code, known in _LOCALES.items():
        if known == locale:
            return code
    for language in LANGUAGES.values():
        if language.whisper == locale.split("-")[0]:
            return language.code
    raise ValueError(f"Unknown Common Voice locale {locale!r}: no language of the registry uses it.")


def read_tsv(path: str | os.PathLike, columns: list[str]) -> pandas.DataFrame:
    """A Common Voice or CoVoST-2 TSV, read as the reference loaders read it (no quoting, `\\` escapes, every
    field a string, empty fields kept as ""); `columns` must be among its header's."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"TSV file not found: {path}")
    table = pandas.read_csv(path, sep="\t", header=0, encoding="utf-8", escapechar="\\", quoting=csv.QUOTE_NONE,
                            na_filter=False, dtype=str)
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}; its header has {list(table.columns)}.")
    return table[columns]


def locale_folder(release: str | os.PathLike | None, locale: str) -> Path:
    """`{release}/{locale}`, or a `ValueError` that says which locales the release folder has."""
    if not release:
        raise ValueError("--data_dir must name a Common Voice release folder (cv-corpus-VERSION, one folder per "
                         "locale with clips/ and the split TSVs).")
    release = Path(release)
    if not release.is_dir():
        raise ValueError(f"Common Voice release folder not found: {release}")
    folder = release / locale
    if not folder.is_dir():
        present = sorted(entry.name for entry in release.iterdir() if (entry / "clips").is_dir())
        raise ValueError(f"{release} has no folder for the locale {locale!r}; it has: {', '.join(present) or 'none'}.")
    return folder


def existing_clips(folder: Path, paths, report: DataReport, direction: str) -> list[bool]:
    """Which of `paths` lie in `folder/clips` (one directory listing); the missing ones are counted and logged."""
    clips = folder / "clips"
    present = set(os.listdir(clips)) if clips.is_dir() else set()
    found = [path in present for path in paths]
    missing = found.count(False)
    if missing:
        report.skip(direction, MISSING_CLIP, missing)
        logger.warning("%s: %d of %d rows name a clip that is not in %s: left out.", direction, missing, len(found),
                       clips)
    return found


def load_common_voice(src_lang: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                      streaming: bool = False, report: DataReport | None = None):
    """Transcribed Common Voice clips of one language (ASR data): `sentence` is the transcript, the clip's file name
    (`path`) the example id. Rows whose clip is missing or whose sentence is empty are counted and left out."""
    if split not in SPLITS:
        raise ValueError(f"Common Voice has the splits {', '.join(SPLITS)}; got {split!r}.")
    report = report if report is not None else DataReport()
    language = get_language(src_lang)
    folder = locale_folder(data_dir, locale_of(language.code))
    rows = read_tsv(folder / f"{split}.tsv", ["path", "sentence"])
    found = existing_clips(folder, rows["path"], report, language.code)
    spoken = [bool(sentence.strip()) for sentence in rows["sentence"]]
    report.skip(language.code, EMPTY_SENTENCE, sum(ok and not said for ok, said in zip(found, spoken)))
    rows = rows[[ok and said for ok, said in zip(found, spoken)]]
    return schema_dataset(
        {"audio": [str(folder / "clips" / path) for path in rows["path"]], "id": list(rows["path"]),
         "src_lang": [language.code] * len(rows), "transcript": list(rows["sentence"])},
        streaming,
    )
